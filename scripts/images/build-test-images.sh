#!/usr/bin/env bash
# Builds (or reuses) every image the tests need, without any container registry:
#   clawloops/runtime-standin:1          scripts/images/build-standin-image.sh (a few seconds)
#   ghcr.io/openclaw/openclaw:<version>  scripts/images/build-openclaw-image.sh (~90 s the first
#                                        time, ~20 s with its caches, ~0.1 s when up to date)
#
# Usage: scripts/images/build-test-images.sh [--force]
#   CLAWLOOPS_SKIP_OPENCLAW_IMAGE=1   build only the stand-in
#   --force                           passed to both scripts: rebuild even when up to date
# The scripts' own variables (STANDIN_IMAGE, OPENCLAW_IMAGE, OPENCLAW_VERSION, ...) apply.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for arg in "$@"; do
  case "$arg" in
    --force) ;;
    -h | --help)
      sed -n '2,10p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (usage: $0 [--force])" >&2
      exit 2
      ;;
  esac
done

started="${EPOCHREALTIME/[.,]/}"
elapsed() { local t="${EPOCHREALTIME/[.,]/}"; printf '%d.%01ds' "$(((t - started) / 1000000))" "$(((t - started) / 100000 % 10))"; }

echo "### stand-in image"
bash "$HERE/build-standin-image.sh" "$@"

if [[ "${CLAWLOOPS_SKIP_OPENCLAW_IMAGE:-}" == "1" ]]; then
  echo "### OpenClaw image: skipped (CLAWLOOPS_SKIP_OPENCLAW_IMAGE=1)"
else
  echo "### OpenClaw image"
  bash "$HERE/build-openclaw-image.sh" "$@"
fi

echo "### test images ready ($(elapsed))"
