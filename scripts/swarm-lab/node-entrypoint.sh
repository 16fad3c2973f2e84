#!/bin/sh
# Entrypoint of clawloops/swarm-node:lab: starts a Docker engine inside this (privileged)
# container. Listens on /var/run/docker.sock and, for the host, on /run/lab/docker.sock (lab.sh
# bind-mounts a host folder on /run/lab).
#   LAB_STORAGE_DRIVER   overlay2 | vfs | auto (default auto: overlay2 when an overlay mount works
#                        on /var/lib/docker, vfs otherwise)
#   LAB_DOCKERD_ARGS     extra dockerd arguments
#   LAB_LOG_LEVEL        dockerd log level (default warn)
set -eu

log() { echo "swarm-node: $*" >&2; }

# Without --privileged (lab.sh's fallback where the host's capability bounding set lacks a
# capability, so runc cannot grant "all"), /sys and the cgroup mounts come read-only: the inner
# engine must create cgroups and network namespaces, so make them writable, as --privileged would.
if grep -q ' /sys sysfs ro[, ]' /proc/mounts; then mount -o remount,rw /sys || log "cannot remount /sys rw"; fi
awk '$3 == "cgroup" || $3 == "cgroup2" { print $2, $4 }' /proc/mounts | while read -r dir opts; do
  case ",$opts," in *,ro,*) mount -o remount,bind,rw "$dir" || log "cannot remount $dir rw" ;; esac
done

# cgroup v2 (unified) hosts: move ourselves out of the root cgroup and delegate the controllers,
# as the official docker:dind does; cgroup v1 needs nothing.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
    > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
fi

driver="${LAB_STORAGE_DRIVER:-auto}"
if [ "$driver" = auto ]; then
  probe=/var/lib/docker/.overlay-probe
  rm -rf "$probe"
  mkdir -p "$probe/l" "$probe/u" "$probe/w" "$probe/m"
  if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/tmp/overlay-probe.err; then
    umount "$probe/m"
    driver=overlay2
  else
    log "overlay mount on /var/lib/docker failed ($(cat /tmp/overlay-probe.err)): using vfs"
    driver=vfs
  fi
  rm -rf "$probe"
fi
log "storage driver $driver"

mkdir -p /run/lab
# A restarted node keeps its root fs: drop the stale sockets and pid files of the last run.
rm -f /run/lab/docker.sock /var/run/docker.sock
find /run -name "*.pid" -type f -delete 2>/dev/null || :
# shellcheck disable=SC2086
exec dockerd \
  --host=unix:///var/run/docker.sock \
  --host=unix:///run/lab/docker.sock \
  --storage-driver="$driver" \
  --log-level="${LAB_LOG_LEVEL:-warn}" \
  ${LAB_DOCKERD_ARGS:-}
