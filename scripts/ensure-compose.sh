#!/usr/bin/env bash
# Makes sure `docker-compose` (to validate docker-compose.yml) and Python's YAML module (to read
# what `docker-compose config` prints) are available for the appliance tests.
#   - Both present: use them.
#   - Otherwise, when running as root on Debian with apt (our CI machines), install Debian's
#     docker-compose (1.29, ~8 s; it brings python3-yaml) and python3-yaml.
#   - Otherwise fail with a message saying what to do (the test then skips, saying why).
# Set CLAWLOOPS_NO_DOCKER_INSTALL=1 to forbid installing anything.
# Prints the docker-compose version on success.
set -euo pipefail

have_compose() { command -v docker-compose >/dev/null 2>&1 && docker-compose version --short >/dev/null 2>&1; }
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
have_yaml() { command -v "$PY" >/dev/null 2>&1 && "$PY" -c 'import yaml' >/dev/null 2>&1; }

if have_compose && have_yaml; then
  echo "compose: docker-compose $(docker-compose version --short)"
  exit 0
fi

missing=()
have_compose || missing+=(docker-compose)
have_yaml || missing+=(python3-yaml)

if [[ "${CLAWLOOPS_NO_DOCKER_INSTALL:-}" == "1" ]]; then
  echo "compose: missing ${missing[*]} and CLAWLOOPS_NO_DOCKER_INSTALL=1; install them (apt-get install docker-compose python3-yaml) and retry." >&2
  exit 1
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "compose: missing ${missing[*]}. Install them (Debian: apt-get install docker-compose python3-yaml), or run as root on Debian so this script can." >&2
  exit 1
fi

echo "compose: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if have_compose && have_yaml; then
  echo "compose: docker-compose $(docker-compose version --short)"
  exit 0
fi
echo "compose: docker-compose or python3-yaml still unusable after apt-get install" >&2
exit 1
