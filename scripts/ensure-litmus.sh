#!/usr/bin/env bash
# Makes sure Debian's `litmus` (the WebDAV compliance suite) is installed: test/process/webdavLitmus
# runs its basic, copymove, props and locks groups against /dav/. When it is missing and we run as
# root on Debian, installs the package with apt-get (~5 s); otherwise that test is skipped with a note.
set -euo pipefail

if command -v litmus >/dev/null 2>&1; then
  echo "litmus: $(command -v litmus)"
  exit 0
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "litmus: not installed (apt-get install litmus); the WebDAV compliance test is skipped"
  exit 0
fi
echo "litmus: installing with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends litmus >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends litmus >/dev/null
fi
echo "litmus: $(command -v litmus)"
