#!/usr/bin/env bash
# Makes sure Debian's `age` is installed: the tests decrypt ClawLoops backups with it, the tool a
# person restores with when ClawLoops itself is gone (docs/operate.md#backups). When it is
# missing and we run as root on Debian, installs the package with apt-get (~5 s, 4 MB); otherwise
# the interoperability tests are skipped with a note (the rest of the suite does not need it).
set -euo pipefail

if command -v age >/dev/null 2>&1; then
  echo "age: $(age --version 2>/dev/null)"
  exit 0
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "age: not installed (apt-get install age); the tests that check backups against it are skipped"
  exit 0
fi
echo "age: installing with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends age >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends age >/dev/null
fi
echo "age: $(age --version 2>/dev/null)"
