#!/usr/bin/env bash
# Benchmarks against the local Docker engine (the model gateway's needs none). Every figure is
# printed next to a baseline measured in the same run (ratios, never absolute thresholds); nothing
# here is asserted by the test suite.
#   bash bench/run.sh              everything, one part after the other:
#   bash bench/run.sh start        1. API start → ready vs raw dockerode (stand-in image), cold and
#                                     warm, with a breakdown of where an API start spends its time
#   bash bench/run.sh concurrent   2. 20 new users starting at once vs 20 × a single start
#   bash bench/run.sh openclaw     3. the real OpenClaw: start → ready and idle memory per runtime
#   bash bench/run.sh routing      4. workspace traffic, ~2 minutes: the built-in router vs the
#                                     runtime directly (latency, req/s, 1 MiB MB/s, WebSocket echo),
#                                     and Traefik's forward-auth decision vs /healthz
#                                     (throughput with wrk when on PATH: apt-get install wrk)
#   bash bench/run.sh files        5. workspace files, ~1 minute: a 1 GiB upload and download through
#                                     the file API vs raw putArchive/getArchive (MB/s, control-plane
#                                     RSS growth), and listing 10,000 empty vs ~1 GiB of files
#   bash bench/run.sh gateway      6. the model gateway, ~2 minutes, no Docker: /llm/v1 vs the test
#                                     upstream directly (latency, req/s at 32 connections, time to
#                                     first token, per-chunk delay of a 1,000-chunk stream), and
#                                     the ledger's share of the control plane's CPU per request
#   bash bench/run.sh web            7. the web console in chromium, ~1 minute: first-load bytes and
#                                     time until usable, and a 200-file folder drop on the Files
#                                     page (longest main-thread task, vs Node straight to the API)
#   bash bench/run.sh adminlist      8. the admin runtime list with 200 running runtimes, ~1 minute, no
#                                     Docker: one-shot stats per runtime on every load (the old way,
#                                     an engine pace of 45 ms per stats call) vs the list served from
#                                     the figures kept in the background, in-process and over HTTP
#   bash bench/run.sh backup         9. a backup of a 1 GiB volume vs raw getArchive of it, the
#                                     control plane's RSS growth meanwhile, and the restore of
#                                     that part vs raw putArchive, ~2 minutes
#   bash bench/run.sh egress        10. the egress proxy, ~1 minute, no Docker: a 1 GiB download
#                                     through it (CONNECT, and plain http) vs directly, and the
#                                     latency it adds to a new connection
#   bash bench/run.sh swarm         11. the swarm backend vs the Docker backend, ~6 minutes: start →
#                                     ready, 20 starts at once (one engine, a single-node swarm, and
#                                     three engines joined by scripts/swarm-lab), and the control
#                                     plane's memory and CPU with 20 runtimes running
#   bash bench/run.sh webdav        12. WebDAV, ~2 minutes: a 1 GiB PUT and GET through /dav/ vs the
#                                     file API vs raw putArchive/getArchive, and a PROPFIND of
#                                     10,000 entries vs the file API's listing of that folder
# Knobs: BENCH_ITERATIONS (15), BENCH_CONCURRENT (20), BENCH_BURSTS (3), BENCH_PROFILE_ITERATIONS (8),
# OPENCLAW_ITERATIONS (5), CLAWLOOPS_RUNTIME_MAX_PARALLEL (unset: the product default, 4);
# routing: BENCH_SAMPLES (2000), BENCH_CONNECTIONS (16), BENCH_DURATION (4), BENCH_ROUNDS (3),
# BENCH_WS_MESSAGES (2000), BENCH_CLIENT (wrk|node), BENCH_LOG_LEVEL (info); files: BENCH_FILE_MIB (1024),
# BENCH_FILE_ROUNDS (2), BENCH_LIST_ENTRIES (10000), BENCH_LIST_SAMPLES (10); gateway: BENCH_SAMPLES (2000),
# BENCH_TTFT_SAMPLES (500), BENCH_CONNECTIONS (32), BENCH_DURATION (4), BENCH_ROUNDS (3), BENCH_CHUNKS (1000),
# BENCH_CHUNK_GAP_MS (2), BENCH_STREAM_ROUNDS (3), BENCH_CLIENT (wrk|node), BENCH_LOG_LEVEL (info);
# web: BENCH_LOADS (10), BENCH_DROP_FILES (200); adminlist: BENCH_RUNTIMES (200), BENCH_ENGINE (serial, or
# overlapping: Docker's ~2 s one-shot stats that overlap), BENCH_STATS_MS (45 | 2000), BENCH_OLD_ROUNDS (3),
# BENCH_LIST_SAMPLES (100); backup: BENCH_BACKUP_MIB (1024), BENCH_ROUNDS (5); egress: BENCH_EGRESS_MIB (1024),
# BENCH_ROUNDS (5), BENCH_SAMPLES (300); swarm: BENCH_ITERATIONS (8), BENCH_CONCURRENT (20), BENCH_IDLE_SECONDS (30),
# BENCH_CLUSTER (1; 0 skips the three-engine swarm); webdav: BENCH_FILE_MIB, BENCH_FILE_ROUNDS, BENCH_LIST_ENTRIES, BENCH_LIST_SAMPLES as for files.
# Everything a run creates carries one instance label and is swept at the end, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-all}"
case "$which" in all | start | concurrent | openclaw | routing | files | gateway | web | adminlist | backup | egress | swarm | webdav) ;; *) echo "usage: $0 [all|start|concurrent|openclaw|routing|files|gateway|web|adminlist|backup|egress|swarm|webdav]" >&2; exit 2 ;; esac

if [[ "$which" != gateway && "$which" != adminlist && "$which" != egress ]]; then
  docker info >/dev/null 2>&1 || bash scripts/ensure-docker.sh >/dev/null
  # The image scripts reuse an image whose inputs have not changed (a fraction of a second).
  if [[ "$which" == openclaw || "$which" == all ]]; then
    bash scripts/images/build-test-images.sh >/dev/null
  else
    CLAWLOOPS_SKIP_OPENCLAW_IMAGE=1 bash scripts/images/build-test-images.sh >/dev/null
  fi
fi

BENCH_INSTANCE="bench-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
export BENCH_INSTANCE
sweep() {
  local label="io.clawloops.instance=$BENCH_INSTANCE"
  docker ps -aq --filter "label=$label" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network ls -q --filter "label=$label" | xargs -r docker network rm >/dev/null 2>&1 || true
  docker volume ls -q --filter "label=$label" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
}
trap sweep EXIT

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo 'n/a'), Node $(node --version), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"

status=0
case "$which" in
  start) npx tsx bench/runtimeStart.ts start || status=$? ;;
  concurrent) npx tsx bench/runtimeStart.ts concurrent || status=$? ;;
  openclaw) npx tsx bench/openclawStart.ts "${OPENCLAW_ITERATIONS:-5}" || status=$? ;;
  routing) npx tsx bench/workspaceRouting.ts proxy forwardauth || status=$? ;;
  files) npx tsx bench/workspaceFiles.ts transfer list || status=$? ;;
  webdav) npx tsx bench/workspaceFiles.ts webdav || status=$? ;;
  gateway) npx tsx bench/modelGateway.ts || status=$? ;;
  web) bash scripts/ensure-chromium.sh >/dev/null && npm run --silent build:web && npx tsx bench/webConsole.ts load drop || status=$? ;;
  adminlist) npx tsx bench/adminRuntimeList.ts || status=$? ;;
  backup) npx tsx bench/backup.ts || status=$? ;;
  egress) npx tsx bench/egress.ts || status=$? ;;
  swarm) npm run --silent build && npx tsx bench/swarm.ts || status=$? ;;
  all)
    npx tsx bench/runtimeStart.ts start concurrent || status=$?
    npx tsx bench/openclawStart.ts "${OPENCLAW_ITERATIONS:-5}" || status=$?
    npx tsx bench/workspaceRouting.ts proxy forwardauth || status=$?
    npx tsx bench/workspaceFiles.ts transfer list webdav || status=$?
    npx tsx bench/modelGateway.ts || status=$?
    bash scripts/ensure-chromium.sh >/dev/null && npm run --silent build:web && npx tsx bench/webConsole.ts load drop || status=$?
    npx tsx bench/adminRuntimeList.ts || status=$?
    npx tsx bench/backup.ts || status=$?
    npx tsx bench/egress.ts || status=$?
    npm run --silent build && npx tsx bench/swarm.ts || status=$?
    ;;
esac
exit "$status"
