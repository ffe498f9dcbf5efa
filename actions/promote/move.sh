#!/usr/bin/env bash
# Run `mlci promote` or `mlci rollback` from the action's inputs (MLCI_INPUT_*). Every input is
# passed as --option=value or after --, so no input can become another option. The request id
# is the workflow run (GITHUB_RUN_ID): re-running the job changes nothing.
set -euo pipefail
args=()
case "${MLCI_INPUT_ACTION:-promote}" in
  promote)
    args=(promote "--to=${MLCI_INPUT_POINTER}")
    if [[ -n "${MLCI_INPUT_MODEL:-}" ]]; then
      args+=("--model=${MLCI_INPUT_MODEL}")
    fi
    ;;
  rollback)
    args=(rollback)
    ;;
  *)
    echo "::error::mlci promote: the action input must be promote or rollback, not '${MLCI_INPUT_ACTION}'"
    exit 2
    ;;
esac
if [[ -n "${MLCI_INPUT_SIGN_KEY:-}" ]]; then
  args+=("--key=${MLCI_INPUT_SIGN_KEY}")
else
  args+=(--keyless)
fi
if [[ -n "${MLCI_INPUT_REASON:-}" ]]; then
  args+=("--reason=${MLCI_INPUT_REASON}")
fi
if [[ -n "${MLCI_INPUT_GIT_REMOTE:-}" ]]; then
  args+=("--push=${MLCI_INPUT_GIT_REMOTE}")
fi
if [[ "${args[0]}" == promote ]]; then
  "${MLCI_BIN:-mlci}" "${args[@]}" -- "${MLCI_INPUT_RESULTS:-mlci-out/results.json}"
else
  "${MLCI_BIN:-mlci}" "${args[@]}" -- "${MLCI_INPUT_POINTER}"
fi
