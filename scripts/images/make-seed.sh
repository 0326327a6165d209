#!/usr/bin/env bash
# Build a NoCloud seed ISO (volume label `cidata`) for the tiny guest and for real
# cloud-init images.
#
# Usage: make-seed.sh OUT.iso --hostname H --authorized-keys FILE [--provision FILE]
#                     [--instance-id ID] [--user-data FILE] [--extra DIR]
#
# Layout written (the seed contract, docs/test-infra.md):
#   meta-data              instance-id + local-hostname
#   user-data              #cloud-config (hostname + ssh_authorized_keys + runcmd of the
#                          provisioner) unless --user-data is given
#   nepho/authorized_keys  the public key(s), installed for root by the tiny guest
#   nepho/hostname         the hostname
#   nepho/provision.sh     the provisioner (if --provision)
#   nepho/...              contents of --extra DIR (payload the provisioner may use)
set -euo pipefail

log() { printf '[seed] %s\n' "$*" >&2; }
die() { printf '[seed] ERROR: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: make-seed.sh OUT.iso --hostname H --authorized-keys FILE [--provision FILE]"
out=$1; shift
host='' keys='' prov='' iid='' udata='' extra=''
while [ $# -gt 0 ]; do
  case "$1" in
    --hostname) host=$2; shift 2 ;;
    --authorized-keys) keys=$2; shift 2 ;;
    --provision) prov=$2; shift 2 ;;
    --instance-id) iid=$2; shift 2 ;;
    --user-data) udata=$2; shift 2 ;;
    --extra) extra=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[ -n "$host" ] || die "--hostname required"
[[ "$host" =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$ ]] || die "invalid hostname: $host"
[ -f "$keys" ] || die "--authorized-keys FILE required"
[ -z "$prov" ] || [ -f "$prov" ] || die "provisioner $prov not found"
[ -z "$udata" ] || [ -f "$udata" ] || die "user-data $udata not found"
[ -z "$extra" ] || [ -d "$extra" ] || die "--extra $extra is not a directory"
iid=${iid:-$host-$(date +%s)}
mkiso=$(command -v genisoimage || command -v mkisofs || command -v xorrisofs || true)
[ -n "$mkiso" ] || die "genisoimage missing (apt-get install genisoimage)"

work=$(mktemp -d "${TMPDIR:-/tmp}/nepho-seed.XXXXXX")
trap 'rm -rf "$work"' EXIT
d=$work/seed
mkdir -p "$d/nepho"
if [ -n "$extra" ]; then cp -a "$extra"/. "$d/nepho/"; fi
printf 'instance-id: %s\nlocal-hostname: %s\n' "$iid" "$host" >"$d/meta-data"
cp "$keys" "$d/nepho/authorized_keys"
echo "$host" >"$d/nepho/hostname"
if [ -n "$prov" ]; then cp "$prov" "$d/nepho/provision.sh"; chmod 0755 "$d/nepho/provision.sh"; fi
if [ -n "$udata" ]; then
  cp "$udata" "$d/user-data"
else
  {
    echo "#cloud-config"
    echo "hostname: $host"
    echo "ssh_authorized_keys:"
    grep -v '^[[:space:]]*\(#\|$\)' "$keys" | sed 's/^/  - /'
    if [ -n "$prov" ]; then
      # real cloud-init images: run the same provisioner from the seed, same contract
      cat <<'UD'
runcmd:
  - [sh, -c, 'mkdir -p /run/nepho /mnt/nepho-seed && (mount -r -L cidata /mnt/nepho-seed || mount -r /dev/sr0 /mnt/nepho-seed) && cd /root && NEPHO_SEED_DIR=/mnt/nepho-seed sh /mnt/nepho-seed/nepho/provision.sh >/var/log/nepho-provision.log 2>&1; echo $? >/run/nepho/provision.rc.tmp; mkdir -p /var/lib/nepho; cp /run/nepho/provision.rc.tmp /var/lib/nepho/provision.rc; mv /run/nepho/provision.rc.tmp /run/nepho/provision.rc']
UD
    else
      cat <<'UD'
runcmd:
  - [sh, -c, 'mkdir -p /run/nepho && echo 0 >/run/nepho/provision.rc']
UD
    fi
  } >"$d/user-data"
fi

mkdir -p "$(dirname "$out")"
# -J -r: Joliet + Rock Ridge so long, lower-case names survive
"$mkiso" -quiet -output "$out.tmp.$$" -volid cidata -joliet -rock "$d" 2>"$work/err" \
  || { cat "$work/err" >&2; die "$mkiso failed"; }
mv -f "$out.tmp.$$" "$out"
log "wrote $out (hostname $host, instance-id $iid${prov:+, provisioner $(basename "$prov")})"
