#!/usr/bin/env bash
# The one command that tests ClawLoops on a fresh machine or a developer's workstation:
# installs dependencies (reusing node_modules when the lockfile has not changed), makes sure a
# Docker engine is reachable, type-checks, lints, builds, and runs the whole jest suite.
# Extra arguments go to jest (e.g. `scripts/test.sh test/http`).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
# A stamp of the lockfile we installed from: an unchanged lockfile reuses node_modules.
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.clawloops-installed-lock
if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" ]]; then
  echo "node_modules matches package-lock.json"
else
  npm ci --no-audit --no-fund
  echo "$lock_hash" > "$stamp"
fi

step "docker engine"
bash scripts/ensure-docker.sh

step "docker compose (validates the appliance's compose files)"
bash scripts/ensure-compose.sh

step "browser (Debian's chromium, for test/browser)"
bash scripts/ensure-chromium.sh

step "age (backups are checked against the reference tool)"
bash scripts/ensure-age.sh

step "WebDAV clients: litmus, rclone, davfs2 (test/http/webdav*, test/integration/webdavEngine)"
bash scripts/ensure-webdav-clients.sh

step "test images"
bash scripts/images/build-test-images.sh

step "typecheck"
npm run --silent typecheck

step "lint"
npm run --silent lint

step "build"
npm run --silent build

if [[ $# -gt 0 ]]; then
  step "tests ($*)"
  npx jest --ci "$@"
  exit
fi
step "tests"
npx jest --ci --testPathIgnorePatterns '/test/browser/' '/test/integration/applianceRestore' '/test/integration/runtimeBackends' '/test/integration/swarmCluster'
# Alone: it turns the engine into a single-node swarm (and back), which changes the engine's
# networks under anything running beside it.
step "runtime backends: single-host Docker and Docker Swarm (control plane in a container)"
# The control plane runs this checkout's build in the local Node base image (built once, reused).
bash scripts/images/build-node-base-image.sh
npx jest --ci test/integration/runtimeBackends
# Alone: three Docker engines in containers (scripts/swarm-lab/lab.sh) joined into one swarm,
# with runtimes on each; the node image is built once from Debian's docker.io and reused.
step "a swarm of three engines: placement, files on a worker, drained and stopped nodes, moves"
npx jest --ci test/integration/swarmCluster
# Alone: two members' 256 MiB transfers, a backup and a restore of them, and the real OpenClaw
# twice would take the machine's disk and two cores from whatever ran beside them (measured: the
# event-stream reconnect test then missed its 20 s window).
step "whole-appliance backup and restore (real OpenClaw)"
npx jest --ci test/integration/applianceRestore
# Alone: Chromium rendering OpenClaw's UI next to other suites' OpenClaw runtimes would compete
# for the machine's two cores and turn waits into timeouts.
step "browser tests"
npx jest --ci test/browser
