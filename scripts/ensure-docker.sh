#!/usr/bin/env bash
# Makes sure a Docker engine answers on the socket the tests use.
#   - An engine already answering (a developer's Docker, or one started earlier): use it.
#   - Otherwise, when running as root on Debian with apt (our CI machines), install Debian's
#     docker.io if needed and start dockerd in the background.
#   - Otherwise fail with a message saying what to do. Tests never silently skip the engine.
# Set CLAWLOOPS_NO_DOCKER_INSTALL=1 to forbid installing or starting anything.
set -euo pipefail

SOCKET="${CLAWLOOPS_DOCKER_SOCKET:-/var/run/docker.sock}"

engine_answers() {
  # Node is the one tool we know is present; curl may not be.
  node -e '
    const req = require("http").request({ socketPath: process.argv[1], path: "/_ping", timeout: 2000 }, (res) => process.exit(res.statusCode === 200 ? 0 : 1));
    req.on("error", () => process.exit(1));
    req.on("timeout", () => { req.destroy(); process.exit(1); });
    req.end();
  ' "$SOCKET"
}

if engine_answers; then
  echo "docker: engine reachable at $SOCKET"
  exit 0
fi

if [[ "${CLAWLOOPS_NO_DOCKER_INSTALL:-}" == "1" ]]; then
  echo "docker: no engine at $SOCKET and CLAWLOOPS_NO_DOCKER_INSTALL=1; start Docker and retry." >&2
  exit 1
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "docker: no engine at $SOCKET. Start Docker (or run as root on Debian so this script can install docker.io)." >&2
  exit 1
fi
if [[ "$SOCKET" != "/var/run/docker.sock" ]]; then
  echo "docker: no engine at $SOCKET; this script only starts the default engine at /var/run/docker.sock." >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  # A pid file left by a daemon that died (machine reuse) makes dockerd refuse to start.
  rm -f /var/run/docker.pid
  echo "docker: starting dockerd (log: /var/log/dockerd.log)"
  setsid nohup dockerd --log-level=warn >/var/log/dockerd.log 2>&1 < /dev/null &
fi

for _ in $(seq 1 600); do
  if engine_answers; then
    echo "docker: engine reachable at $SOCKET"
    exit 0
  fi
  sleep 0.1
done
echo "docker: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
