#!/usr/bin/env bash
# Verify an image or a file with mlci verify. Step output: verified=true.
set -euo pipefail
fail() {
  echo "::error title=mlci verify::$1"
  exit 2
}
for name in TARGET KEY BUNDLE RESULTS; do
  value="MLCI_INPUT_${name}"
  [[ "${!value:-}" == -* ]] && fail "the ${name,,} input must not start with '-': ${!value}"
done
args=(verify "${MLCI_INPUT_TARGET:?the target input is required}")
if [[ -n "${MLCI_INPUT_KEY:-}" ]]; then
  [[ -n "${MLCI_INPUT_CERTIFICATE_IDENTITY:-}" ]] && fail "give key or certificate-identity, not both"
  args+=("--key=${MLCI_INPUT_KEY}")
elif [[ -n "${MLCI_INPUT_CERTIFICATE_IDENTITY:-}" ]]; then
  args+=("--certificate-identity=${MLCI_INPUT_CERTIFICATE_IDENTITY}"
    "--certificate-oidc-issuer=${MLCI_INPUT_CERTIFICATE_OIDC_ISSUER}")
else
  fail "give the policy: key, or certificate-identity (and certificate-oidc-issuer)"
fi
[[ -n "${MLCI_INPUT_BUNDLE:-}" ]] && args+=("--bundle=${MLCI_INPUT_BUNDLE}")
[[ -f "${MLCI_INPUT_TARGET}" ]] || args+=("--require=${MLCI_INPUT_REQUIRE:-signature,sbom,evaluation}")
[[ -n "${MLCI_INPUT_RESULTS:-}" ]] && args+=("--results=${MLCI_INPUT_RESULTS}")
[[ -n "${MLCI_INPUT_REGISTRY_USERNAME:-}" ]] && export MLCI_REGISTRY_USERNAME="${MLCI_INPUT_REGISTRY_USERNAME}"
[[ -n "${MLCI_INPUT_REGISTRY_PASSWORD:-}" ]] && export MLCI_REGISTRY_PASSWORD="${MLCI_INPUT_REGISTRY_PASSWORD}"
unset MLCI_INPUT_REGISTRY_PASSWORD
"${MLCI_BIN:?the setup step did not run}" "${args[@]}"
echo "verified=true" >> "${GITHUB_OUTPUT:-/dev/null}"
