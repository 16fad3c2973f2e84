#!/usr/bin/env bash
# Makes sure Debian's `litmus` (the WebDAV compliance suite) and `rclone` are installed: the tests
# test/http/webdavLitmus and test/http/webdavRclone run them against /dav/. When one is missing and
# we run as root on Debian, installs it with apt-get (~10 s); otherwise those tests are skipped with a note.
set -euo pipefail

missing=()
command -v litmus >/dev/null 2>&1 || missing+=(litmus)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "webdav clients: litmus and rclone $(rclone version 2>/dev/null | head -1)"
  exit 0
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "webdav clients: ${missing[*]} not installed (apt-get install ${missing[*]}); the tests that run them are skipped"
  exit 0
fi
echo "webdav clients: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "webdav clients: installed ${missing[*]}"
