# shellcheck shell=bash
# Shared helpers for scripts/smoke/*.sh (sourced, not executed).
# Every wait has an explicit timeout; every created object is registered for cleanup.

SMOKE_NAME=${SMOKE_NAME:-smoke}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE_DIR=${NEPHO_IMAGE_DIR:-/var/cache/nepho-test/images}
URI=${LIBVIRT_DEFAULT_URI:-qemu:///system}
export LIBVIRT_DEFAULT_URI=$URI

log()  { printf '[%s %6.1fs] %s\n' "$SMOKE_NAME" "$(elapsed)" "$*" >&2; }
die()  { printf '[%s] FAIL: %s\n' "$SMOKE_NAME" "$*" >&2; exit 1; }

T0=$(date +%s.%N)
now() { date +%s.%N; }
elapsed() { awk -v a="$T0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# wait_for TIMEOUT_S INTERVAL_S DESCRIPTION CMD... : run CMD until it succeeds
wait_for() {
  local timeout=$1 interval=$2 what=$3; shift 3
  local start; start=$(now)
  while ! "$@"; do
    if awk -v a="$start" -v b="$(now)" -v t="$timeout" 'BEGIN{exit !(b-a>=t)}'; then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep "$interval"
  done
}

require_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# ---- cleanup registry -----------------------------------------------------------------------
CLEANUP=()
on_exit() { local s; printf -v s '%q ' "$@"; CLEANUP+=("$s"); }
run_cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for (( i=${#CLEANUP[@]}-1; i>=0; i-- )); do eval "${CLEANUP[$i]}" >/dev/null 2>&1 || true; done
  if [ "$rc" = 0 ]; then log "PASS"; else log "cleaned up after failure (rc=$rc)"; fi
  exit "$rc"
}
trap run_cleanup EXIT
trap 'exit 130' INT TERM

# a temp dir that qemu (running as libvirt-qemu) can traverse
make_workdir() {
  WORK=$(mktemp -d "${NEPHO_SMOKE_TMP:-/var/tmp}/nepho-$SMOKE_NAME.XXXXXX")
  chmod 0755 "$WORK"
  on_exit rm -rf "$WORK"
}

# ---- prerequisites ------------------------------------------------------------------------------
ensure_infra() {
  "$REPO_ROOT/scripts/setup/daemons.sh" || die "daemons.sh failed"
  "$REPO_ROOT/scripts/images/build-tiny-guest.sh" "$IMAGE_DIR" || die "build-tiny-guest.sh failed"
}

# ---- ssh ------------------------------------------------------------------------------------------
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
          -o BatchMode=yes -o ConnectTimeout=3 -o ServerAliveInterval=5 -o ServerAliveCountMax=2)
make_ssh_key() {
  ssh-keygen -q -t ed25519 -N '' -C "nepho-$SMOKE_NAME" -f "$WORK/id_ed25519" </dev/null
}
gssh() { # host cmd...
  local h=$1; shift
  timeout 30 ssh "${SSH_OPTS[@]}" -i "$WORK/id_ed25519" "root@$h" "$@"
}

# ---- libvirt domains ----------------------------------------------------------------------------
# register a domain for destroy+undefine at exit
cleanup_domain() {
  virsh destroy "$1" >/dev/null 2>&1 || true
  virsh undefine "$1" >/dev/null 2>&1 || true
}
track_domain() { on_exit cleanup_domain "$1"; }

dom_state() { virsh domstate "$1" 2>/dev/null | awk 'NR==1'; }

# first IPv4 address of the domain from libvirt's DHCP leases (empty if none yet)
dom_ip() {
  virsh domifaddr "$1" --source lease 2>/dev/null \
    | awk '$3=="ipv4" && !done {sub(/\/.*/,"",$4); print $4; done=1}'
}

# IP via lease, polling until TIMEOUT; sets DOM_IP
wait_for_ip() { # dom timeout
  local dom=$1 timeout=$2
  _have_ip() {
    DOM_IP=$(dom_ip "$dom")
    [ -n "$DOM_IP" ] && return 0
    [ "$(dom_state "$dom")" = running ] || die "domain $dom is $(dom_state "$dom") before getting a lease"
    return 1
  }
  wait_for "$timeout" 0.5 "DHCP lease of $dom" _have_ip
}

wait_for_ssh() { # host timeout
  wait_for "$2" 0.5 "ssh on $1" gssh "$1" true 2>/dev/null
}

wait_for_provisioned() { # host timeout
  wait_for "$2" 1 "/run/nepho/provision.rc on $1" gssh "$1" test -f /run/nepho/provision.rc
}

# clean ACPI shutdown; returns 1 if the domain is not shut off within TIMEOUT
acpi_shutdown() { # dom timeout
  virsh shutdown "$1" >/dev/null
  _is_off() { [ "$(dom_state "$1")" = "shut off" ]; }
  wait_for "$2" 0.5 "ACPI shutdown of $1" _is_off "$1"
}

show_console_tail() { # logfile
  [ -f "$1" ] || return 0
  log "last lines of the serial console ($1):"
  tail -n 25 "$1" | sed 's/^/    | /' >&2
}
