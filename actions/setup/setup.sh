#!/usr/bin/env bash
# Create a virtual environment inside the action's own folder and install mlci into it from the
# action's source tree (so the version is the one the workflow pinned with `uses: ...@SHA`).
# Nothing from the runner's site-packages is used. Prints nothing but progress; writes the
# path of the mlci executable to the step output `mlci`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${root}/.mlci-venv"
python="${MLCI_INPUT_PYTHON:-python3}"
if [[ "${python}" == -* ]]; then
  echo "::error::mlci setup: the python input must be an interpreter, not an option: ${python}"
  exit 2
fi
if [[ ! -x "${venv}/bin/mlci" ]]; then
  "${python}" -m venv "${venv}"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${root}"
fi
"${venv}/bin/mlci" --version
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
  echo "mlci=${venv}/bin/mlci" >> "${GITHUB_OUTPUT}"
fi
if [[ -n "${GITHUB_PATH:-}" ]]; then
  echo "${venv}/bin" >> "${GITHUB_PATH}"
fi
