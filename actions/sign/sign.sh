#!/usr/bin/env bash
# Sign an image or a file with mlci sign. Step output: bundle (for a file).
set -euo pipefail
fail() {
  echo "::error title=mlci sign::$1"
  exit 2
}
for name in TARGET KEY SBOM RESULTS; do
  value="MLCI_INPUT_${name}"
  [[ "${!value:-}" == -* ]] && fail "the ${name,,} input must not start with '-': ${!value}"
done
target="${MLCI_INPUT_TARGET:?the target input is required}"
args=(sign "${target}")
case "${MLCI_INPUT_METHOD:-keyless}" in
  keyless)
    [[ -n "${MLCI_INPUT_KEY:-}" ]] && fail "method keyless takes no key; use method: key"
    args+=(--keyless)
    ;;
  key)
    [[ -n "${MLCI_INPUT_KEY:-}" ]] || fail "method key needs the key input"
    args+=("--key=${MLCI_INPUT_KEY}")
    ;;
  *) fail "method must be keyless or key, not '${MLCI_INPUT_METHOD}'" ;;
esac
[[ -n "${MLCI_INPUT_SBOM:-}" ]] && args+=("--sbom=${MLCI_INPUT_SBOM}")
[[ -n "${MLCI_INPUT_RESULTS:-}" ]] && args+=("--results=${MLCI_INPUT_RESULTS}")
if [[ -f "${target}" ]]; then
  bundle="$(realpath -- "${target}").sigstore.json"
  args+=("--bundle=${bundle}")
fi
[[ -n "${MLCI_INPUT_KEY_PASSWORD:-}" ]] && export COSIGN_PASSWORD="${MLCI_INPUT_KEY_PASSWORD}"
[[ -n "${MLCI_INPUT_REGISTRY_USERNAME:-}" ]] && export MLCI_REGISTRY_USERNAME="${MLCI_INPUT_REGISTRY_USERNAME}"
[[ -n "${MLCI_INPUT_REGISTRY_PASSWORD:-}" ]] && export MLCI_REGISTRY_PASSWORD="${MLCI_INPUT_REGISTRY_PASSWORD}"
unset MLCI_INPUT_KEY_PASSWORD MLCI_INPUT_REGISTRY_PASSWORD
"${MLCI_BIN:?the setup step did not run}" "${args[@]}"
[[ -n "${bundle:-}" ]] && echo "bundle=${bundle}" >> "${GITHUB_OUTPUT:-/dev/null}"
exit 0
