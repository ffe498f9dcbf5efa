#!/usr/bin/env bash
# Print the fork a pull_request run comes from (owner/name), or nothing. Such a run holds a
# read-only token, so the comment and the check run are left to the comment-from-fork workflow.
set -euo pipefail
"${MLCI_BIN%/mlci}/python" -c '
from mlci.github.context import from_environment

context = from_environment()
print(context.head_repository if context.from_fork and context.event_name != "workflow_run" else "")
'
