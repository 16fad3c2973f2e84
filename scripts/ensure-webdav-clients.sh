#!/usr/bin/env bash
# Makes sure the WebDAV clients the tests run against /dav/ are installed, all Debian packages:
# `litmus` (the compliance suite), `rclone` (sync, and `rclone mount`), `davfs2` (a kernel mount)
# and `fuse3` (fusermount, which rclone mount needs). When one is missing and we run as root on
# Debian, installs it with apt-get (~10 s); otherwise the tests that need it are skipped with a note.
set -euo pipefail

missing=()
command -v litmus >/dev/null 2>&1 || missing+=(litmus)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
[[ -x /usr/sbin/mount.davfs || -x /sbin/mount.davfs ]] || missing+=(davfs2)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "webdav clients: litmus, davfs2, fuse3 and $(rclone version 2>/dev/null | head -1)"
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
