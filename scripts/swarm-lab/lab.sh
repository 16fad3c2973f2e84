#!/usr/bin/env bash
# A multi-node Docker Swarm on ONE machine: every swarm node (manager and workers) is a Docker
# engine running inside a privileged container ("engine node") on the host engine. The host
# engine itself never joins or leaves a swarm. Where runc refuses --privileged (a capability
# missing from the host's bounding set), the nodes get the same privileges spelled out.
#
# Usage: scripts/swarm-lab/lab.sh COMMAND [ARGS]
#   up N            build the node image if missing or its inputs changed, start N engine nodes
#                   on a dedicated bridge network with fixed addresses, make node 1 the swarm
#                   manager (--advertise-addr its own address), join the others as workers, and
#                   load the images in LAB_IMAGES into every node (skipped when already there).
#                   Idempotent: running nodes are kept, stopped ones restarted, missing ones added.
#   down [--image]  remove every lab container, volume, network and the state folder; --image
#                   also removes the node image (kept by default: it is reused by the next `up`)
#   socket [NODE]   print the host path of a unix socket of NODE's engine (default: the manager),
#                   e.g. for dockerode: new Docker({ socketPath })
#   exec NODE CMD…  run CMD inside engine node NODE (e.g. `exec 1 docker node ls`)
#   docker NODE ARG… the host's docker CLI on NODE's engine (through its socket; stdin works)
#   load [NODE…]    (re)load the LAB_IMAGES into the given nodes (default: all)
#   status          list the engine nodes and the manager's `docker node ls`
#   build [--force] build the node image (clawloops/swarm-node:lab)
# NODE is a number (1 = manager) or a container name (clawloops-swarmlab-1).
#
# Environment:
#   LAB_IMAGES          host images loaded into each node (space separated;
#                       default clawloops/runtime-standin:1)
#   LAB_SUBNET          subnet of the lab bridge network (default: the first free of
#                       172.29.213.0/24, 192.168.213.0/24, 172.28.213.0/24)
#   LAB_STORAGE_DRIVER  inner engines' storage driver: auto (default; overlay2, vfs when overlay
#                       does not mount), overlay2 or vfs
#   LAB_NODE_MEMORY     memory limit of each engine-node container (default none, e.g. 2g)
#   LAB_MOUNTS          extra bind mounts of host folders into every node, read-only
#                       (space separated HOST:NODE pairs, e.g. the checkout for a control plane)
#   LAB_STATE_DIR       host folder holding the sockets (default /tmp/clawloops-swarm-lab)
#   LAB_CACHE_DIR       downloaded .debs and build context (default ~/.cache/clawloops/swarm-lab)
#   LAB_BASE_IMAGE      base of the node image (default clawloops/debian-minbase:bookworm,
#                       built by scripts/images/build-node-base-image.sh)
#
# Everything created on the host engine carries the label io.clawloops.swarm-lab=1.
# Needs root (privileged containers), the host engine, and apt (only to build the node image).
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LABEL_KEY=io.clawloops.swarm-lab
LABEL="$LABEL_KEY=1"
NODE_IMAGE=clawloops/swarm-node:lab
PREFIX=clawloops-swarmlab
NETWORK="$PREFIX"
BASE_IMAGE="${LAB_BASE_IMAGE:-clawloops/debian-minbase:bookworm}"
STATE_DIR="${LAB_STATE_DIR:-/tmp/clawloops-swarm-lab}"
CACHE_DIR="${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clawloops/swarm-lab}"
read -r -a IMAGES <<<"${LAB_IMAGES-clawloops/runtime-standin:1}"
SUBNET_CANDIDATES=(172.29.213.0/24 192.168.213.0/24 172.28.213.0/24)
# Debian packages installed into the node image (plus whatever they depend on that the base lacks).
NODE_PACKAGES=(docker.io iproute2)
# Docker on the host: Debian's client when present (the newer /usr/local/bin one also works).
DOCKER=docker
[[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=0

die() {
  echo "lab.sh: $*" >&2
  exit 1
}
say() { echo "== $*" >&2; }
usage() { sed -n '2,38p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

now_ms() { local t="${EPOCHREALTIME/[.,]/}"; echo "${t:0:-3}"; }

node_name() { # NODE (number or name) -> container name
  local n="$1"
  if [[ "$n" =~ ^[0-9]+$ ]]; then echo "$PREFIX-$n"; else echo "$n"; fi
}
lab_nodes() { # names of all lab node containers (running or not), sorted by index
  $DOCKER ps -a --filter "label=$LABEL" --filter "label=$LABEL_KEY.node" \
    --format '{{.Label "io.clawloops.swarm-lab.node"}} {{.Names}}' | sort -n | awk '{print $2}'
}
require_node() { # NODE -> container name of an existing lab node, or dies
  local name
  name="$(node_name "$1")"
  [[ "$($DOCKER inspect --format "{{index .Config.Labels \"$LABEL_KEY.node\"}}" "$name" 2>/dev/null)" != "" ]] ||
    die "no lab node '$1' (container $name); run: $0 up N"
  echo "$name"
}
socket_path() { echo "$STATE_DIR/$1/docker.sock"; }
node_docker() { # NAME ARGS... -> the host's docker CLI on the node's engine (through its socket)
  local name="$1"
  shift
  $DOCKER -H "unix://$(socket_path "$name")" "$@"
}
swarm_state() { node_docker "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unreachable; }

# ---------------------------------------------------------------------------------------------
# Node image

# Prints the packages (name=version) that NODE_PACKAGES need on top of the base image.
node_package_list() {
  local status="$1"
  apt-get install -s --no-install-recommends -o Dir::State::status="$status" "${NODE_PACKAGES[@]}" 2>&1 |
    awk '/^Inst /{ v=$3; if (v ~ /^\[/) v=$4; gsub(/[()]/, "", v); print $2 "=" v }' | sort
}

build_image() {
  local force="${1:-0}" ctx status pkgs hash existing t0
  $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
    die "base image $BASE_IMAGE is missing; build it with scripts/images/build-node-base-image.sh (it builds the Debian base first)"
  # The inputs: this recipe, the base image and the package names. Package versions are not
  # inputs (resolving them costs seconds): `build --force` picks up newer Debian packages.
  hash="$({ cat "$SCRIPT_DIR/Dockerfile" "$SCRIPT_DIR/node-entrypoint.sh"; echo "${NODE_PACKAGES[*]}"; $DOCKER image inspect --format '{{.Id}}' "$BASE_IMAGE"; } | sha256sum | cut -c1-16)"
  existing="$($DOCKER image inspect --format "{{index .Config.Labels \"$LABEL_KEY.inputs\"}}" "$NODE_IMAGE" 2>/dev/null || true)"
  if [[ "$force" == 0 && "$existing" == "$hash" ]]; then
    say "node image $NODE_IMAGE is current (inputs $hash)"
    return 0
  fi
  command -v apt-get >/dev/null || die "apt-get is needed on the host to download Debian's docker.io .debs"
  t0=$(now_ms)
  ctx="$CACHE_DIR/context"
  mkdir -p "$ctx/debs" "$CACHE_DIR/debs"
  status="$CACHE_DIR/base-dpkg-status"
  $DOCKER run --rm --network none --label "$LABEL" --entrypoint cat "$BASE_IMAGE" /var/lib/dpkg/status >"$status" ||
    die "could not read the dpkg status of $BASE_IMAGE"
  pkgs="$(node_package_list "$status")"
  if [[ -z "$pkgs" ]]; then
    say "apt knows no docker.io candidate: running apt-get update"
    apt-get update -qq || die "apt-get update failed"
    pkgs="$(node_package_list "$status")"
  fi
  [[ "$pkgs" == *docker.io=* ]] || die "apt cannot resolve ${NODE_PACKAGES[*]} for $BASE_IMAGE: $(apt-get install -s --no-install-recommends -o Dir::State::status="$status" "${NODE_PACKAGES[@]}" 2>&1 | tail -n 3)"
  say "building $NODE_IMAGE (inputs $hash): $(echo "$pkgs" | wc -l) packages"
  (
    cd "$CACHE_DIR/debs"
    local missing=()
    local p
    for p in $pkgs; do
      compgen -G "${p%%=*}_*.deb" >/dev/null && ls "${p%%=*}"_"$(echo "${p#*=}" | sed 's/:/%3a/')"_*.deb >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
      apt-get download -q "${missing[@]}" >/dev/null 2>download.err ||
        { apt-get update -qq && apt-get download -q "${missing[@]}" >/dev/null 2>download.err; } ||
        { cat download.err >&2; exit 1; }
    fi
  ) || die "apt-get download failed"
  rm -rf "$ctx/debs"
  mkdir -p "$ctx/debs"
  local p f
  for p in $pkgs; do
    f="$(ls "$CACHE_DIR/debs/${p%%=*}"_"$(echo "${p#*=}" | sed 's/:/%3a/')"_*.deb 2>/dev/null | head -n1)"
    [[ -n "$f" ]] || die "no .deb for $p in $CACHE_DIR/debs"
    cp "$f" "$ctx/debs/"
  done
  cp "$SCRIPT_DIR/Dockerfile" "$SCRIPT_DIR/node-entrypoint.sh" "$ctx/"
  local previous
  previous="$($DOCKER image inspect --format '{{.Id}}' "$NODE_IMAGE" 2>/dev/null || true)"
  $DOCKER build --network none -q --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "$LABEL" --label "$LABEL_KEY.inputs=$hash" -t "$NODE_IMAGE" "$ctx" >"$CACHE_DIR/build.log" 2>&1 ||
    { tail -n 30 "$CACHE_DIR/build.log" >&2; die "docker build of $NODE_IMAGE failed (log: $CACHE_DIR/build.log)"; }
  # The replaced image would stay behind untagged: remove it (fails harmlessly while in use).
  [[ -n "$previous" && "$previous" != "$($DOCKER image inspect --format '{{.Id}}' "$NODE_IMAGE")" ]] &&
    $DOCKER image rm "$previous" >/dev/null 2>&1 || true
  say "built $NODE_IMAGE in $((($(now_ms) - t0) / 1000))s ($($DOCKER image inspect --format '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
}

# ---------------------------------------------------------------------------------------------
# Network and nodes

network_subnet() {
  $DOCKER network inspect --format '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NETWORK" 2>/dev/null
}

ensure_network() {
  local subnet err
  if subnet="$(network_subnet)" && [[ -n "$subnet" ]]; then
    [[ "$($DOCKER network inspect --format "{{index .Labels \"$LABEL_KEY\"}}" "$NETWORK")" == 1 ]] ||
      die "a network named $NETWORK exists without the label $LABEL: not ours, not touching it"
    return 0
  fi
  local candidates=("${SUBNET_CANDIDATES[@]}")
  [[ -n "${LAB_SUBNET:-}" ]] && candidates=("$LAB_SUBNET")
  for subnet in "${candidates[@]}"; do
    if err="$($DOCKER network create --driver bridge --subnet "$subnet" --label "$LABEL" "$NETWORK" 2>&1)"; then
      say "network $NETWORK: $subnet"
      return 0
    fi
    echo "   subnet $subnet not usable: $err" >&2
  done
  die "could not create the bridge network $NETWORK (set LAB_SUBNET to a free /24)"
}

node_ip() { # index -> fixed address (.10 + index) in the lab subnet
  local subnet
  subnet="$(network_subnet)"
  echo "${subnet%.*/*}.$((10 + $1))"
}

wait_engine() { # name
  local name="$1" i
  for ((i = 0; i < 600; i++)); do
    node_docker "$name" version >/dev/null 2>&1 && return 0
    if [[ "$($DOCKER inspect --format '{{.State.Running}}' "$name")" != true ]]; then
      $DOCKER logs --tail 30 "$name" >&2 || true
      die "engine node $name exited (its log is above)"
    fi
    sleep 0.1
  done
  $DOCKER logs --tail 30 "$name" >&2 || true
  die "the engine in $name did not answer within 60 s (its log is above)"
}

# Linux capability names by number (CAP_LAST_CAP 40 on current kernels).
CAP_NAMES=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
  NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT
  SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
  AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ
  PERFMON BPF CHECKPOINT_RESTORE)

# Sets NODE_SEC: the flags that make an engine node. --privileged when the host engine can start
# a privileged container; otherwise (runc: "unable to apply caps: operation not permitted", seen
# where the host's capability bounding set lacks a capability, e.g. SYS_RESOURCE) the same
# privileges spelled out: every capability the bounding set has, no seccomp/AppArmor, unmasked
# /proc, all devices allowed; node-entrypoint.sh remounts /sys and the cgroups read-write.
NODE_SEC=()
decide_node_security() {
  ((${#NODE_SEC[@]})) && return 0
  local err bnd i drop=()
  if err="$($DOCKER run --rm --privileged --network none --label "$LABEL" --entrypoint true "$NODE_IMAGE" 2>&1)"; then
    NODE_SEC=(--privileged)
    return 0
  fi
  [[ "$err" == *"apply caps"* ]] || die "cannot start a privileged container on the host engine: $err"
  if [[ -n "${LAB_CAP_DROP:-}" ]]; then
    read -r -a drop <<<"$LAB_CAP_DROP"
  else
    bnd="$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)"
    for ((i = 0; i < ${#CAP_NAMES[@]}; i++)); do
      (((0x$bnd >> i) & 1)) || drop+=("${CAP_NAMES[$i]}")
    done
  fi
  say "--privileged fails here ($(echo "$err" | grep -o 'unable to apply caps[^:]*: [a-z ]*' | head -n1)); engine nodes run with all capabilities but ${drop[*]:-none} instead"
  NODE_SEC=(--cap-add ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined
    --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm')
  for i in "${drop[@]}"; do NODE_SEC+=(--cap-drop "$i"); done
}

start_node() { # index
  local i="$1" name ip mem=()
  name="$(node_name "$i")"
  ip="$(node_ip "$i")"
  mkdir -p "$STATE_DIR/$name"
  if $DOCKER inspect "$name" >/dev/null 2>&1; then
    [[ "$($DOCKER inspect --format "{{index .Config.Labels \"$LABEL_KEY.node\"}}" "$name")" == "$i" ]] ||
      die "a container named $name exists that is not a lab node: not touching it"
    if [[ "$($DOCKER inspect --format '{{.State.Running}}' "$name")" != true ]]; then
      say "starting stopped node $name"
      $DOCKER start "$name" >/dev/null
    fi
  else
    [[ -n "${LAB_NODE_MEMORY:-}" ]] && mem=(--memory "$LAB_NODE_MEMORY")
    local mounts=() pair
    for pair in ${LAB_MOUNTS:-}; do mounts+=(-v "$pair:ro"); done
    decide_node_security
    $DOCKER volume create --label "$LABEL" "$name-data" >/dev/null
    $DOCKER run -d --name "$name" --hostname "$name" "${NODE_SEC[@]}" \
      --label "$LABEL" --label "$LABEL_KEY.node=$i" \
      --network "$NETWORK" --ip "$ip" \
      -v "$name-data:/var/lib/docker" -v "$STATE_DIR/$name:/run/lab" \
      -e "LAB_STORAGE_DRIVER=${LAB_STORAGE_DRIVER:-auto}" \
      --log-opt max-size=10m --log-opt max-file=2 "${mem[@]}" "${mounts[@]}" \
      "$NODE_IMAGE" >/dev/null
    say "started node $name ($ip)"
  fi
}

load_images() { # name
  local name="$1" img want have t0
  for img in "${IMAGES[@]}"; do
    want="$($DOCKER image inspect --format '{{.Id}}' "$img" 2>/dev/null)" ||
      die "image $img (LAB_IMAGES) does not exist on the host engine"
    have="$(node_docker "$name" image inspect --format '{{.Id}}' "$img" 2>/dev/null || true)"
    [[ "$have" == "$want" ]] && continue
    t0=$(now_ms)
    $DOCKER save "$img" | node_docker "$name" load -q >/dev/null ||
      die "loading $img into $name failed"
    say "loaded $img into $name ($(($(now_ms) - t0)) ms)"
  done
}

load_parallel() { # NAME... -> load_images into all of them at once (each node's load is serial)
  local name pids=() failed=0 pid
  for name in "$@"; do
    load_images "$name" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || die "loading images failed (see above)"
}

cmd_up() {
  local n="${1:-}" i name mgr mgr_ip ip token state existing
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "usage: $0 up N (N >= 1 engine nodes; node 1 is the manager)"
  [[ "$(id -u)" == 0 ]] || die "needs root (privileged containers, bind-mounted socket folder)"
  $DOCKER info >/dev/null 2>&1 || die "the host Docker engine does not answer"
  build_image 0
  ensure_network
  existing="$(lab_nodes | wc -l)"
  ((existing > n)) && say "note: $existing nodes exist, more than $n: the extra ones are kept (down removes all)"
  for ((i = 1; i <= n; i++)); do start_node "$i"; done
  for ((i = 1; i <= n; i++)); do wait_engine "$(node_name "$i")"; done
  mgr="$(node_name 1)"
  mgr_ip="$(node_ip 1)"
  state="$(swarm_state "$mgr")"
  case "$state" in
    active) ;;
    inactive)
      node_docker "$mgr" swarm init --advertise-addr "$mgr_ip" >/dev/null ||
        die "docker swarm init on $mgr failed"
      say "swarm initialised on $mgr ($mgr_ip)"
      ;;
    *) die "manager $mgr is in swarm state '$state'; run: $0 down && $0 up $n" ;;
  esac
  token="$(node_docker "$mgr" swarm join-token -q worker)"
  for ((i = 2; i <= n; i++)); do
    name="$(node_name "$i")"
    ip="$(node_ip "$i")"
    state="$(swarm_state "$name")"
    case "$state" in
      active) ;;
      inactive)
        node_docker "$name" swarm join --token "$token" --advertise-addr "$ip" "$mgr_ip:2377" >/dev/null ||
          die "$name could not join the swarm at $mgr_ip:2377"
        say "$name joined as worker"
        ;;
      *) die "node $name is in swarm state '$state'; run: $0 down && $0 up $n" ;;
    esac
  done
  load_parallel $(for ((i = 1; i <= n; i++)); do node_name "$i"; done)
  # Wait until every node is Ready on the manager (a restarted worker takes a few seconds).
  local ready
  for ((i = 0; i < 300; i++)); do
    ready="$(node_docker "$mgr" node ls --format '{{.Status}}' | grep -c '^Ready$' || true)"
    ((ready >= n)) && break
    sleep 0.2
  done
  ((ready >= n)) || say "warning: only $ready of $n nodes are Ready on the manager"
  node_docker "$mgr" node ls >&2
  echo "manager socket: $(socket_path "$mgr")" >&2
}

cmd_down() {
  local ids
  ids="$($DOCKER ps -aq --filter "label=$LABEL")"
  [[ -n "$ids" ]] && $DOCKER rm -f -v $ids >/dev/null && say "removed $(echo "$ids" | wc -l) containers"
  ids="$($DOCKER volume ls -q --filter "label=$LABEL")"
  [[ -n "$ids" ]] && $DOCKER volume rm $ids >/dev/null && say "removed $(echo "$ids" | wc -l) volumes"
  ids="$($DOCKER network ls -q --filter "label=$LABEL")"
  [[ -n "$ids" ]] && $DOCKER network rm $ids >/dev/null && say "removed network(s)"
  if [[ -d "$STATE_DIR" ]]; then
    find "$STATE_DIR" -mindepth 1 -maxdepth 1 -name "$PREFIX-*" -exec rm -rf {} +
    rmdir "$STATE_DIR" 2>/dev/null || true
  fi
  # Node images replaced by a rebuild while nodes still used them.
  $DOCKER image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
  if [[ "${1:-}" == --image ]]; then
    $DOCKER image rm "$NODE_IMAGE" >/dev/null 2>&1 && say "removed image $NODE_IMAGE"
  fi
  return 0
}

cmd_socket() {
  local name sock
  name="$(require_node "${1:-1}")"
  sock="$(socket_path "$name")"
  [[ -S "$sock" ]] || die "no socket at $sock (is $name running? $0 up N)"
  node_docker "$name" version >/dev/null 2>&1 || die "the engine of $name does not answer on $sock (is it running? $0 up N)"
  echo "$sock"
}

cmd_exec() {
  [[ $# -ge 2 ]] || die "usage: $0 exec NODE CMD [ARGS...]"
  local name flags=()
  name="$(require_node "$1")"
  shift
  [[ -t 0 ]] || flags+=(-i)
  [[ -t 0 && -t 1 ]] && flags+=(-it)
  exec $DOCKER exec "${flags[@]}" "$name" "$@"
}

cmd_load() {
  local n
  if (($# == 0)); then
    load_parallel $(lab_nodes)
  else
    load_parallel $(for n in "$@"; do require_node "$n"; done)
  fi
}

cmd_status() {
  $DOCKER ps -a --filter "label=$LABEL" --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}'
  local mgr
  mgr="$(node_name 1)"
  if [[ "$($DOCKER inspect --format '{{.State.Running}}' "$mgr" 2>/dev/null)" == true ]]; then
    node_docker "$mgr" node ls || true
  fi
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    socket) cmd_socket "$@" ;;
    exec) cmd_exec "$@" ;;
    docker)
      [[ $# -ge 1 ]] || die "usage: $0 docker NODE ARGS..."
      local name
      name="$(require_node "$1")"
      shift
      exec $DOCKER -H "unix://$(socket_path "$name")" "$@"
      ;;
    load) cmd_load "$@" ;;
    status) cmd_status ;;
    build) [[ "${1:-}" == --force ]] && build_image 1 || build_image 0 ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command: $cmd" ;;
  esac
}

main "$@"
