#!/usr/bin/env bash
# Run one stage command (MLCI_COMMAND: test, evaluate or bench) with the action's inputs and
# write the step outputs exit-code, results-path, report-path and junit-path (when the stage
# wrote JUnit XML). Exits with the command's exit code unless MLCI_INPUT_FAIL is false.
set -uo pipefail
case "${MLCI_COMMAND:-}" in
  test | evaluate | bench) ;;
  *) echo "::error title=mlci::unknown stage command '${MLCI_COMMAND:-}'"; exit 2 ;;
esac
for name in CONFIG OUT; do
  value="MLCI_INPUT_${name}"
  if [[ "${!value:-}" == -* ]]; then
    echo "::error title=mlci::the ${name,,} input must be a path, not an option: ${!value}"
    exit 2
  fi
done
out="${MLCI_INPUT_OUT:-mlci-out}"
[[ -n "${MLCI_INPUT_DEVICE:-}" ]] && export MLCI_BENCHMARK_DEVICE="${MLCI_INPUT_DEVICE}"
"${MLCI_BIN:?the setup step did not run}" "${MLCI_COMMAND}" "--config=${MLCI_INPUT_CONFIG:-.}" "--out=${out}"
code=$?
{
  echo "exit-code=${code}"
  if [[ -d "${out}" ]]; then
    results="$(find "${out}" -name results.json -type f | LC_ALL=C sort | head -n 1)"
    if [[ -n "${results}" ]]; then
      echo "results-path=$(realpath -- "${results}")"
      dir="$(dirname -- "$(realpath -- "${results}")")"
      [[ -f "${dir}/report.md" ]] && echo "report-path=${dir}/report.md"
      [[ -f "${dir}/junit.xml" ]] && echo "junit-path=${dir}/junit.xml"
    fi
  fi
} >> "${GITHUB_OUTPUT:-/dev/null}"
if [[ "${MLCI_INPUT_FAIL:-true}" == false ]]; then
  exit $(( code == 2 ? 2 : 0 ))
fi
exit "${code}"
