#!/usr/bin/env bash
# Builds the image clawloops/runtime-standin:1: a tiny stand-in for the OpenClaw gateway
# (scripts/images/standin/server.js) that the runtime-manager tests start by the dozen.
#
# No container registry is reachable on our machines, so nothing can be pulled. The image is
# "Node on scratch": the host's own node binary, the shared libraries `ldd` lists for it and the
# dynamic loader, plus the server, tarred and `docker import`-ed. That takes a few seconds.
#
# Usage: scripts/images/build-standin-image.sh [--force]
#   STANDIN_IMAGE   tag to build (default clawloops/runtime-standin:1)
#   --force         rebuild even when an up-to-date image exists
#
# Idempotent: an image with this tag built from the same inputs (server.js, node binary,
# this script) is reused. The inputs' hash is stored in the image label
# clawloops.standin.inputs, so editing server.js rebuilds instead of silently testing old code.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE="${STANDIN_IMAGE:-clawloops/runtime-standin:1}"
SERVER_JS="$REPO_ROOT/scripts/images/standin/server.js"
SCRIPT_PATH="$REPO_ROOT/scripts/images/build-standin-image.sh"
# Fixed timestamps in the tar make the layer (its diff id) the same for the same inputs.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"

# shellcheck source=lib.sh
source "$REPO_ROOT/scripts/images/lib.sh"
parse_build_args "$SCRIPT_PATH" '2,15p' "$@"

step "standin image $IMAGE: docker engine"
bash "$REPO_ROOT/scripts/ensure-docker.sh"
step_done

step "inputs"
# The node binary may be a symlink (nvm, alternatives): copy the real file.
NODE_BIN="$(readlink -f "$(command -v node)")"
[[ -x "$NODE_BIN" ]] || { echo "no node binary found on PATH" >&2; exit 1; }
[[ -f "$SERVER_JS" ]] || { echo "missing $SERVER_JS" >&2; exit 1; }
inputs_hash="$(
  {
    sha256sum "$NODE_BIN" /usr/bin/setpriv "$SERVER_JS" "$SCRIPT_PATH" "$REPO_ROOT/scripts/images/lib.sh" | cut -d' ' -f1
    echo "$SOURCE_DATE_EPOCH"
  } | sha256sum | cut -c1-16
)"
echo "node: $NODE_BIN ($("$NODE_BIN" --version)), inputs hash: $inputs_hash"
step_done

exit_if_current "$IMAGE" clawloops.standin.inputs "$inputs_hash"

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
root_tree="$workdir/root"   # everything owned by root
home_tree="$workdir/home"   # /home/node, owned by node (1000:1000)
mkdir -p "$root_tree" "$home_tree"

step "collect node, its libraries and the loader"
# Copy each file to the path under which the loader looks for it: the node binary at
# /usr/local/bin/node, each library at the path ldd resolved (e.g. /lib/x86_64-linux-gnu/...),
# the loader at the interpreter path written into the binary (PT_INTERP). `cp -L` copies the
# target of versioned symlinks (libstdc++.so.6 -> libstdc++.so.6.0.30) under the soname.
install -D -m 0755 "$NODE_BIN" "$root_tree/usr/local/bin/node"
# util-linux's setpriv, as the official image has it: the swarm backend runs every runtime under
# `setpriv --no-new-privs` (swarm services have no no-new-privileges option).
SETPRIV_BIN="$(readlink -f /usr/bin/setpriv)"
install -D -m 0755 "$SETPRIV_BIN" "$root_tree/usr/bin/setpriv"
mapfile -t libs < <(for bin in "$NODE_BIN" "$SETPRIV_BIN"; do ldd "$bin"; done | awk '
  $2 == "=>" && $3 ~ /^\// { print $3 }   # libfoo.so => /path/libfoo.so (0x...)
  $1 ~ /^\// { print $1 }                  # /lib64/ld-linux-x86-64.so.2 (0x...)
' | sort -u)
if [[ "${#libs[@]}" == 0 ]]; then
  echo "ldd listed no libraries for $NODE_BIN (a static binary needs none; continuing)"
fi
for lib in "${libs[@]}"; do
  mkdir -p "$root_tree$(dirname "$lib")"
  cp -L "$lib" "$root_tree$lib"
  chmod 0755 "$root_tree$lib"
  echo "   $lib"
done
step_done

step "lay out the file system"
install -D -m 0644 "$SERVER_JS" "$root_tree/opt/standin/server.js"
# The product runs the official image's command, `node dist/index.js gateway ...` in /app; the
# same server sits there so the stand-in runs under the product's default command unchanged.
install -D -m 0644 "$SERVER_JS" "$root_tree/app/dist/index.js"
# Users by number are enough for Docker (USER 1000:1000), but passwd/group let tools and
# os.userInfo() name them, and keep `docker exec -u node` working.
mkdir -p "$root_tree/etc"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'node:x:1000:1000:node:/home/node:/sbin/nologin' \
  >"$root_tree/etc/passwd"
printf '%s\n' 'root:x:0:' 'node:x:1000:' >"$root_tree/etc/group"
chmod 0644 "$root_tree/etc/passwd" "$root_tree/etc/group"
# Node's os.tmpdir() is /tmp; anyone may write there (sticky). /root exists for root's HOME.
mkdir -p "$root_tree/tmp" "$root_tree/root" "$root_tree/home"
chmod 1777 "$root_tree/tmp"
chmod 0700 "$root_tree/root"
chmod 0755 "$root_tree/home"
# /home/node/.openclaw owned 1000:1000, mode 0700: Docker copies the ownership and mode of the
# image's directory into a new, empty named volume mounted there, so the runtime (uid 1000,
# all capabilities dropped) can write its state without any chown step.
mkdir -p "$home_tree/home/node/.openclaw"
chmod 0755 "$home_tree/home/node"
chmod 0700 "$home_tree/home/node/.openclaw"
step_done

step "tar the root file system"
# Ownership comes from the tar headers, not from the files on disk, so this works the same
# without root: one archive for root-owned files, then the home directory appended as 1000.
# Sorted names, fixed mtimes and no atime/ctime make the archive byte-identical per input.
rootfs_tar="$workdir/rootfs.tar"
tar_opts=(--format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f --pax-option=delete=atime
  --pax-option=delete=ctime --sort=name --mtime="@$SOURCE_DATE_EPOCH" --numeric-owner)
tar "${tar_opts[@]}" --owner=0 --group=0 -C "$root_tree" -cf "$rootfs_tar" .
tar "${tar_opts[@]}" --owner=1000 --group=1000 -C "$home_tree" -rf "$rootfs_tar" ./home/node
echo "   $(du -h "$rootfs_tar" | cut -f1), layer sha256 $(sha256sum "$rootfs_tar" | cut -c1-16)"
step_done

step "docker import as $IMAGE"
previous_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
docker import \
  --change 'USER 1000:1000' \
  --change 'WORKDIR /app' \
  --change 'ENV HOME=/home/node' \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'EXPOSE 18789' \
  --change "LABEL clawloops.standin.inputs=$inputs_hash" \
  --change 'CMD ["/usr/local/bin/node","/opt/standin/server.js"]' \
  --message "clawloops runtime stand-in ($inputs_hash)" \
  "$rootfs_tar" "$IMAGE" >/dev/null
echo "   $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$IMAGE")"
# The tag moved to the new image: drop the old one unless a container still uses it.
if [[ -n "$previous_id" && "$previous_id" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]]; then
  docker image rm "$previous_id" >/dev/null 2>&1 || true
fi
step_done

step "smoke test: node runs inside the image"
# Cheap proof that the binary found all its libraries (a missing one fails here, not in tests).
docker run --rm --network none --entrypoint /usr/local/bin/node "$IMAGE" \
  -e 'process.stdout.write(`node ${process.version} as ${process.getuid()}:${process.getgid()}\n`)'
step_done

echo "== built $IMAGE in $(fmt_since "$started")"
