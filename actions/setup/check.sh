#!/usr/bin/env bash
# Run `mlci check` with the action's inputs and record its exit code as the step output
# `exit-code`; the step itself succeeds so that the comment and the check run still report a
# blocked model. Inputs arrive as MLCI_INPUT_* environment variables, never as script text.
set -uo pipefail
fail() {
  echo "::error title=mlci::$1"
  echo "exit-code=2" >> "${GITHUB_OUTPUT:-/dev/null}"
  exit 0
}
for name in CONFIG OUT SIGN_KEY; do
  value="MLCI_INPUT_${name}"
  [[ "${!value:-}" == -* ]] && fail "the ${name,,} input must be a path, not an option: ${!value}"
done
case "${MLCI_INPUT_FAIL_ON:-block}" in
  block | hold | never) ;;
  *) fail "fail-on must be block, hold or never, not '${MLCI_INPUT_FAIL_ON}'" ;;
esac
args=(check "--config=${MLCI_INPUT_CONFIG:-.}" "--out=${MLCI_INPUT_OUT:-mlci-out}"
  "--fail-on=${MLCI_INPUT_FAIL_ON:-block}")
[[ -n "${MLCI_INPUT_STAGES:-}" ]] && args+=("--only=${MLCI_INPUT_STAGES}")
[[ -n "${MLCI_INPUT_SKIP:-}" ]] && args+=("--skip=${MLCI_INPUT_SKIP}")
case "${MLCI_INPUT_PUSH:-false}" in
  true) args+=(--push) ;;
  false) ;;
  *) fail "push must be true or false, not '${MLCI_INPUT_PUSH}'" ;;
esac
case "${MLCI_INPUT_SIGN:-}" in
  "") ;;
  none | key | keyless) args+=("--sign=${MLCI_INPUT_SIGN}") ;;
  *) fail "sign must be none, key or keyless, not '${MLCI_INPUT_SIGN}'" ;;
esac
[[ -n "${MLCI_INPUT_SIGN_KEY:-}" ]] && args+=("--sign-key=${MLCI_INPUT_SIGN_KEY}")
# Credentials go to mlci through its own variables, and only when given.
[[ -n "${MLCI_INPUT_SIGN_KEY_PASSWORD:-}" ]] && export COSIGN_PASSWORD="${MLCI_INPUT_SIGN_KEY_PASSWORD}"
[[ -n "${MLCI_INPUT_REGISTRY_USERNAME:-}" ]] && export MLCI_REGISTRY_USERNAME="${MLCI_INPUT_REGISTRY_USERNAME}"
[[ -n "${MLCI_INPUT_REGISTRY_PASSWORD:-}" ]] && export MLCI_REGISTRY_PASSWORD="${MLCI_INPUT_REGISTRY_PASSWORD}"
unset MLCI_INPUT_SIGN_KEY_PASSWORD MLCI_INPUT_REGISTRY_PASSWORD
"${MLCI_BIN:?the setup step did not run}" "${args[@]}"
code=$?
echo "exit-code=${code}" >> "${GITHUB_OUTPUT:-/dev/null}"
exit 0
