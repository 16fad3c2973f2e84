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
