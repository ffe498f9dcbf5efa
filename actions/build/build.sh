#!/usr/bin/env bash
# Build the serving image into an OCI layout and optionally push it. Step outputs: digest,
# layout and, when pushed, image (the reference pinned by digest).
set -euo pipefail
fail() {
  echo "::error title=mlci build::$1"
  exit 2
}
for name in CONFIG BASE LAYOUT TAG IMAGE RESULTS MODEL_NAME; do
  value="MLCI_INPUT_${name}"
  [[ "${!value:-}" == -* ]] && fail "the ${name,,} input must not start with '-': ${!value}"
done
base="${MLCI_INPUT_BASE:?the base input is required}"
if [[ "${base}" == docker:* ]]; then
  # The runner's Docker has the image (or pulls it); mlci reads the saved archive.
  name="${base#docker:}"
  archive="${RUNNER_TEMP:-/tmp}/mlci-base-$(printf '%s' "${name}" | sha256sum | cut -c1-12).tar"
  docker image inspect "${name}" >/dev/null 2>&1 || docker pull --quiet "${name}" >/dev/null
  docker save "${name}" -o "${archive}"
  base="${archive}"
fi
layout="${MLCI_INPUT_LAYOUT:-mlci-image}"
args=(build "--config=${MLCI_INPUT_CONFIG:-.}" "--base=${base}" "--output=oci:${layout}")
[[ -n "${MLCI_INPUT_MODEL_NAME:-}" ]] && args+=("--model-name=${MLCI_INPUT_MODEL_NAME}")
[[ -n "${MLCI_INPUT_TAG:-}" ]] && args+=("--tag=${MLCI_INPUT_TAG}")
if [[ -n "${GITHUB_REPOSITORY:-}" ]]; then
  args+=("--source=${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY}")
fi
[[ -n "${GITHUB_SHA:-}" ]] && args+=("--revision=${GITHUB_SHA}")
digest="$("${MLCI_BIN:?the setup step did not run}" "${args[@]}" | tail -n 1)"
[[ "${digest}" == sha256:* ]] || fail "mlci build printed no digest"
{
  echo "digest=${digest}"
  echo "layout=$(realpath -- "${layout}")"
} >> "${GITHUB_OUTPUT:-/dev/null}"
if [[ -n "${MLCI_INPUT_IMAGE:-}" ]]; then
  [[ -n "${MLCI_INPUT_REGISTRY_USERNAME:-}" ]] && export MLCI_REGISTRY_USERNAME="${MLCI_INPUT_REGISTRY_USERNAME}"
  [[ -n "${MLCI_INPUT_REGISTRY_PASSWORD:-}" ]] && export MLCI_REGISTRY_PASSWORD="${MLCI_INPUT_REGISTRY_PASSWORD}"
  unset MLCI_INPUT_REGISTRY_PASSWORD
  push=(push "${layout}" "${MLCI_INPUT_IMAGE}")
  [[ -n "${MLCI_INPUT_RESULTS:-}" ]] && push+=("--results=${MLCI_INPUT_RESULTS}")
  # mlci push writes the digest and image outputs itself; keep its stdout for the log.
  pinned="$("${MLCI_BIN}" "${push[@]}" | tail -n 1)"
  echo "pushed ${pinned}"
  echo "image=${pinned}" >> "${GITHUB_OUTPUT:-/dev/null}"
fi
