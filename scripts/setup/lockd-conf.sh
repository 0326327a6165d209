#!/usr/bin/env bash
# Configure a libvirt config dir for virtlockd leases (fencing of iSCSI machines).
#
# Usage: scripts/setup/lockd-conf.sh [ETC_DIR]     (default /etc/libvirt)
# Env:   NEPHO_LOCKSPACE  the shared lockspace directory (default /var/lib/nepho/lockspace)
#
# Sets, in ETC_DIR (idempotent; only lines it owns are changed):
#   qemu.conf:       lock_manager = "lockd"
#   qemu-lockd.conf: auto_disk_leases = 1, require_lease_for_disks = 0,
#                    file_lockspace_dir = "$NEPHO_LOCKSPACE"
# and creates the lockspace directory. Takes effect at libvirtd's next start (daemons.sh and
# host2.sh restart it when these files changed).
#
# Why these values (measured on libvirt 9.0, see docs/test-infra.md "Fencing"):
# - lockd never leases a network disk (`<disk type='network'>`, QEMU's own iSCSI client) by
#   itself, with or without auto_disk_leases: nepho writes an explicit `<lease>` per iSCSI
#   target into the domain XML, in lockspace `basename($NEPHO_LOCKSPACE)` under target path
#   `dirname($NEPHO_LOCKSPACE)`.
# - virtlockd only knows a lease's lockspace if libvirtd registered it, and libvirtd registers
#   `file_lockspace_dir` only with auto_disk_leases = 1 (otherwise: "Lockspace for path …
#   does not exist"). As a side effect file disks get leases there too (sha256 of the path).
# - require_lease_for_disks = 0: domains without `<lease>` (everything but nepho's iSCSI
#   machines) still start.
# Every host of a cluster must use the same directory (NFS in production; here both test
# libvirtds are on one machine, so a local directory is shared by both).
set -euo pipefail

log() { printf '[lockd-conf] %s\n' "$*" >&2; }

ETC=${1:-/etc/libvirt}
LOCKSPACE=${NEPHO_LOCKSPACE:-/var/lib/nepho/lockspace}
[ -d "$ETC" ] || { log "ERROR: no such directory: $ETC"; exit 1; }
case "$LOCKSPACE" in /?*/?*) ;; *) log "ERROR: NEPHO_LOCKSPACE must be an absolute path two levels deep at least: $LOCKSPACE"; exit 1 ;; esac

# set_conf FILE KEY VALUE: replace an uncommented `KEY = …` line, or append one.
set_conf() {
  local file=$1 key=$2 value=$3 line
  line="$key = $value"
  touch "$file"
  if grep -q "^[[:space:]]*$key[[:space:]]*=" "$file"; then
    if ! grep -qxF "$line" "$file"; then
      log "$file: $line"
      sed -i "s|^[[:space:]]*$key[[:space:]]*=.*|$line|" "$file"
    fi
  else
    log "$file: $line"
    printf '\n# nepho (scripts/setup/lockd-conf.sh): fencing leases\n%s\n' "$line" >>"$file"
  fi
}

set_conf "$ETC/qemu.conf" lock_manager '"lockd"'
set_conf "$ETC/qemu-lockd.conf" auto_disk_leases 1
set_conf "$ETC/qemu-lockd.conf" require_lease_for_disks 0
set_conf "$ETC/qemu-lockd.conf" file_lockspace_dir "\"$LOCKSPACE\""
mkdir -p "$LOCKSPACE"
chmod 0755 "$LOCKSPACE"
