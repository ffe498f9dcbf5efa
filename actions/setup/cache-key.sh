#!/usr/bin/env bash
# The key under which the actions cache pip's downloads: the runner, the Python version and a
# hash of the action's package (pyproject.toml and mlci/), that is of the commit the workflow
# pinned. Writes the step outputs key, prefix and dir (the folder for PIP_CACHE_DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${MLCI_INPUT_PYTHON:-python3}"
[[ "${python}" == -* ]] && { echo "::error title=mlci setup::bad python input: ${python}"; exit 2; }
pyver="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"
tree="$(cd "${root}" && find pyproject.toml mlci -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
  | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
prefix="mlci-pip-${RUNNER_OS:-os}-${RUNNER_ARCH:-arch}-py${pyver}-"
dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlci-pip-cache"
{
  echo "key=${prefix}${tree}"
  echo "prefix=${prefix}"
  echo "dir=${dir}"
} >> "${GITHUB_OUTPUT:-/dev/null}"
echo "pip download cache: ${dir} (key ${prefix}${tree})"
