#!/usr/bin/env bash
# Print the results.json files named by MLCI_INPUT_RESULTS (one path per line; a folder stands
# for every results.json below it), one per line. Fails when there are none.
set -euo pipefail
found=0
while IFS= read -r entry; do
  [[ -z "${entry// /}" ]] && continue
  if [[ -d "${entry}" ]]; then
    while IFS= read -r file; do
      printf '%s\n' "${file}"
      found=1
    done < <(find "${entry}" -name results.json -type f | sort)
  elif [[ -f "${entry}" ]]; then
    printf '%s\n' "${entry}"
    found=1
  else
    echo "::error::mlci: no such results file or folder: ${entry}" >&2
    exit 2
  fi
done <<< "${MLCI_INPUT_RESULTS:-mlci-out}"
if [[ "${found}" == 0 ]]; then
  echo "::error::mlci: no results.json under ${MLCI_INPUT_RESULTS:-mlci-out}" >&2
  exit 2
fi
