#!/usr/bin/env bash
# Publish each model's gate decision: the step outputs (decision, results-path, report-path,
# image-digest), the job summary and, unless MLCI_INPUT_CHECK_RUN is false or the token is a
# fork's read-only one, a check run (or a commit status where check runs are refused).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
listing="$(bash "${here}/results.sh")"
mapfile -t results <<< "${listing}"
args=(publish "--name=${MLCI_INPUT_CHECK_NAME:-mlci}")
[[ -n "${MLCI_INPUT_IMAGE_DIGEST:-}" ]] && args+=("--image-digest=${MLCI_INPUT_IMAGE_DIGEST}")
[[ "${MLCI_INPUT_EXIT_ZERO:-false}" == true ]] && args+=(--exit-zero)
check_run="${MLCI_INPUT_CHECK_RUN:-true}"
if [[ "${check_run}" == true ]]; then
  fork="$(bash "${here}/fork-head.sh")"
  if [[ -n "${fork}" ]]; then
    echo "::notice title=mlci::pull request from the fork ${fork}: its token is read-only, so the check run is left to the comment-from-fork workflow"
    check_run=false
  fi
fi
case "${check_run}" in
  true) ;;
  false) args+=(--no-check) ;;
  *) echo "::error title=mlci::check-run must be true or false, not '${check_run}'"; exit 2 ;;
esac
MLCI_GITHUB_TOKEN="${MLCI_INPUT_GITHUB_TOKEN:-}" "${MLCI_BIN:?the setup step did not run}" \
  "${args[@]}" -- "${results[@]}"
