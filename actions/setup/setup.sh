#!/usr/bin/env bash
# Install mlci from the action's own source tree into a virtual environment inside the action's
# folder, so the version is exactly the one the workflow pinned with `uses: ...@SHA`: nothing
# is installed from the package index under the name mlci, and nothing from the runner's
# site-packages is used. Every action of this repository calls this script; the first call in
# a job installs, later ones only add missing extras.
#
# Inputs (environment):
#   MLCI_INPUT_PYTHON       interpreter to build the environment with (default python3)
#   MLCI_INPUT_EXTRAS       extras, separated by commas: 'auto' (default) adds what the
#                           configuration needs, 'none' adds nothing
#   MLCI_INPUT_CONFIG       mlci.yaml (or its folder) that 'auto' reads, relative to the
#                           current folder
#   MLCI_INPUT_ONNXRUNTIME  replace onnxruntime with this package (e.g. onnxruntime-gpu)
#   PIP_CACHE_DIR           where pip keeps its downloads (the actions cache it)
# Step outputs: mlci, python, version, extras. Adds a folder holding only `mlci` to PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${root}/.mlci-venv"
python="${MLCI_INPUT_PYTHON:-python3}"
extras_input="${MLCI_INPUT_EXTRAS:-auto}"
config="${MLCI_INPUT_CONFIG:-}"
ort="${MLCI_INPUT_ONNXRUNTIME:-}"
# no cache step (cache: false) leaves PIP_CACHE_DIR empty: then pip's own default applies
[[ -z "${PIP_CACHE_DIR:-}" ]] && unset PIP_CACHE_DIR

fail() {
  echo "::error title=mlci setup::$1"
  exit 2
}
[[ "${python}" == -* ]] && fail "the python input must be an interpreter, not an option: ${python}"
[[ "${extras_input}" =~ ^[a-z,\ ]*$ ]] || fail "extras must be names separated by commas: ${extras_input}"
if [[ -n "${ort}" && ! "${ort}" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*([=\<\>~!]=?[A-Za-z0-9.*+-]+)?$ ]]; then
  fail "onnxruntime must be a package name with an optional version (onnxruntime-gpu==1.20.1): ${ort}"
fi
command -v "${python}" >/dev/null 2>&1 || fail "no Python interpreter '${python}' on this runner (use actions/setup-python first)"
pip=(-m pip --disable-pip-version-check --no-input --quiet)

if [[ ! -x "${venv}/bin/mlci" ]]; then
  echo "Installing mlci from ${root}"
  rm -rf "${venv}"
  "${python}" -m venv "${venv}"
  "${venv}/bin/python" "${pip[@]}" install --upgrade pip
  "${venv}/bin/python" "${pip[@]}" install "${root}"
  : > "${venv}/.mlci-extras"
fi

args=(--extras "${extras_input}")
[[ -n "${config}" ]] && args+=(--config "${config}")
if ! extras="$("${venv}/bin/mlci" extras "${args[@]}")"; then
  # A configuration that cannot be read is reported, with its line, by the mlci command that
  # uses it; setup installs what it can so that command runs and says what is wrong.
  [[ "${extras_input}" == auto ]] || fail "unknown extras: ${extras_input}"
  echo "::warning title=mlci setup::could not read ${config} to choose extras; installing none"
  extras=""
fi
missing=()
IFS=',' read -r -a wanted <<< "${extras}"
for extra in "${wanted[@]}"; do
  [[ -z "${extra}" ]] && continue
  grep -qx "${extra}" "${venv}/.mlci-extras" || missing+=("${extra}")
done
if (( ${#missing[@]} )); then
  joined="$(IFS=,; echo "${missing[*]}")"
  echo "Installing the extras mlci needs here: ${joined}"
  "${venv}/bin/python" "${pip[@]}" install "${root}[${joined}]"
  printf '%s\n' "${missing[@]}" >> "${venv}/.mlci-extras"
fi

if [[ -n "${ort}" ]] && ! grep -qx "onnxruntime=${ort}" "${venv}/.mlci-extras"; then
  # onnxruntime and its GPU builds share one module name: keep only the one asked for.
  "${venv}/bin/python" "${pip[@]}" uninstall --yes onnxruntime onnxruntime-gpu >/dev/null 2>&1 || true
  "${venv}/bin/python" "${pip[@]}" install "${ort}"
  echo "onnxruntime=${ort}" >> "${venv}/.mlci-extras"
fi

bin="${root}/.mlci-bin"
mkdir -p "${bin}"
ln -sf "${venv}/bin/mlci" "${bin}/mlci"
version="$("${venv}/bin/mlci" --version)"
echo "${version} in ${venv} (extras: $(paste -sd, "${venv}/.mlci-extras" | sed 's/^$/none/'))"
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
  {
    echo "mlci=${venv}/bin/mlci"
    echo "python=${venv}/bin/python"
    echo "version=${version#mlci }"
    echo "extras=$(grep -v = "${venv}/.mlci-extras" | paste -sd, -)"
  } >> "${GITHUB_OUTPUT}"
fi
if [[ -n "${GITHUB_PATH:-}" ]]; then
  echo "${bin}" >> "${GITHUB_PATH}"
fi
