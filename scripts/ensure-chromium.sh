#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests (test/browser). Never downloads
# a browser from anywhere else: when /usr/bin/chromium is missing and we run as root on Debian,
# installs the `chromium` package with apt-get (~1 minute); otherwise fails saying what to do.
# Set CLAWLOOPS_NO_BROWSER_INSTALL=1 to forbid installing it.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if [[ "${CLAWLOOPS_NO_BROWSER_INSTALL:-}" == "1" ]]; then
  echo "chromium: /usr/bin/chromium is missing and CLAWLOOPS_NO_BROWSER_INSTALL=1; install Debian's chromium package and retry." >&2
  exit 1
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: /usr/bin/chromium is missing. Install Debian's chromium package (apt-get install chromium), or run as root on Debian so this script can." >&2
  exit 1
fi
echo "chromium: installing Debian's chromium package with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
