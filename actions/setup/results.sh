#!/usr/bin/env bash
# Print the results.json files named by MLCI_INPUT_RESULTS (one path per line; a folder stands
# for every results.json below it), one absolute path per line. Fails when there are none.
set -euo pipefail
found=0
while IFS= read -r entry; do
  entry="${entry#"${entry%%[![:space:]]*}"}"
  entry="${entry%"${entry##*[![:space:]]}"}"
  [[ -z "${entry}" ]] && continue
  if [[ -d "${entry}" ]]; then
    while IFS= read -r -d '' file; do
      printf '%s\n' "$(realpath -- "${file}")"
      found=1
    done < <(find "${entry}" -name results.json -type f -print0 | LC_ALL=C sort -z)
  elif [[ -f "${entry}" ]]; then
    printf '%s\n' "$(realpath -- "${entry}")"
    found=1
  else
    echo "::error title=mlci::no such results file or folder: ${entry}" >&2
    exit 2
  fi
done <<< "${MLCI_INPUT_RESULTS:-mlci-out}"
if [[ "${found}" == 0 ]]; then
  echo "::error title=mlci::no results.json under ${MLCI_INPUT_RESULTS:-mlci-out}" >&2
  exit 2
fi
