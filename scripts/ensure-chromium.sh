#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests (test/browser), with a font that
# has Chinese glyphs (fonts-wqy-microhei, 1.6 MB) so screenshots of the Chinese console are
# legible. Never downloads a browser from anywhere else: when something is missing and we run as
# root on Debian, installs the packages with apt-get (~1 minute); otherwise fails saying what to do.
# Set CLAWLOOPS_NO_BROWSER_INSTALL=1 to forbid installing them.
set -euo pipefail

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || missing+=(fonts-wqy-microhei)

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if [[ ! " ${missing[*]} " =~ " chromium " ]] && { [[ "${CLAWLOOPS_NO_BROWSER_INSTALL:-}" == "1" ]] || [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; }; then
  # Only the font is missing and it may not be installed: the tests run, Chinese shows as boxes.
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1) (no CJK font: Chinese text in screenshots shows as boxes)"
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
echo "chromium: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
