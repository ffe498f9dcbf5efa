#!/usr/bin/env bash
# Post or update each model's pull-request comment from the results named by
# MLCI_INPUT_RESULTS. On a pull request from a fork the workflow's token is read-only, so this
# says so and leaves posting to the comment-from-fork workflow.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
fork="$(bash "${here}/fork-head.sh")"
if [[ -n "${fork}" ]]; then
  echo "::notice title=mlci::pull request from the fork ${fork}: its token is read-only, so the comment is left to the comment-from-fork workflow"
  exit 0
fi
listing="$(bash "${here}/results.sh")"
mapfile -t results <<< "${listing}"
args=(comment --skip-without-pr)
[[ -n "${MLCI_INPUT_WORKFLOW:-}" ]] && args+=("--workflow=${MLCI_INPUT_WORKFLOW}")
[[ -n "${MLCI_INPUT_COMMENT_AUTHOR:-}" ]] && args+=("--author=${MLCI_INPUT_COMMENT_AUTHOR}")
MLCI_GITHUB_TOKEN="${MLCI_INPUT_GITHUB_TOKEN:-}" "${MLCI_BIN:?the setup step did not run}" \
  "${args[@]}" -- "${results[@]}"
