#!/usr/bin/env bash
# A second libvirt "host" on this machine, for the KVM provider's multi-host tests (placement
# across hosts, cluster:failover, offline and live migration).
#
# Usage: scripts/setup/host2.sh start|stop|status|uri
#
# How: virtlogd + virtlockd + libvirtd run in their own mount namespace (`unshare -m`), where private
# directories are bind-mounted over libvirt's state and config:
#   /run/libvirt       <- /run/nepho-host2/run        (runtime: sockets, pid files; wiped at stop)
#   /etc/libvirt       <- /var/lib/nepho-host2/etc    (config + persistent domains/networks)
#   /var/lib/libvirt   <- /var/lib/nepho-host2/lib
#   /var/cache/libvirt <- /var/lib/nepho-host2/cache  (seeded from this host's QEMU caps cache)
#   /var/log/libvirt   <- /var/lib/nepho-host2/log
# The network namespace is shared, so host2's guests sit on their own NAT network `default`
# (bridge virbr-n2, 192.168.124.0/24) and nepho reaches them over ssh like host1's guests.
# Clients connect with  qemu:///system?socket=/run/nepho-host2/run/libvirt-sock  (`uri`
# prints it).
# Fencing: host2's libvirt uses the lock manager (lockd) with its own virtlockd, and the same
# lockspace directory as host1 (NEPHO_LOCKSPACE, default /var/lib/nepho/lockspace, outside
# the bind mounts: scripts/setup/lockd-conf.sh), so a lease one host holds stops the other
# from starting the same disks, as a lockspace on NFS would between real hosts.
# Live migration: host2 has a host UUID of its own (`host_uuid` in its libvirtd.conf; libvirt
# refuses to migrate between two daemons that report the same one) and incoming-migration ports
# apart from host1's; `start` also sets up `nepho-shared`, one segment both hosts' guests can be
# on (host1's NAT network on bridge virbr-sh, 192.168.126.0/24, and host2's network of that
# name in bridge mode on virbr-sh), since a live-migrated guest keeps its address.
#
# - start:  idempotent; waits (NEPHO_HOST2_TIMEOUT, default 90 s) until libvirtd answers,
#           defines/starts network `default` (virbr-n2) and `nepho-shared` on both hosts
#           (host1's half too), keeps the FORWARD DROP on the uplink
#           first in the chain (guests only reach this machine).
# - stop:   simulates a dead host (power loss): SIGKILL to every process in host2's mount
#           namespace (libvirtd, virtlogd, dnsmasq, QEMU guests), then removes what a reboot
#           would (bridge virbr-n2, its iptables rules, the runtime dir). Persistent state
#           (defined domains and networks) survives, as on a real host. virtlockd dies with
#           the rest, so host2's leases are released (as a lease on NFS expires). `stop --purge` also
#           deletes that state.
# - status: exit 0 if libvirtd answers (prints the URI), 3 if not.
# Logs go to stderr; stdout only carries `status`/`uri` output.
set -euo pipefail

log() { printf '[host2] %s\n' "$*" >&2; }
die() { printf '[host2] ERROR: %s\n' "$*" >&2; exit 1; }
# A process that runs (a zombie nobody reaped has exited).
live() { local s; s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }

RUN=/run/nepho-host2
STATE=${NEPHO_HOST2_STATE:-/var/lib/nepho-host2}
SOCK=$RUN/run/libvirt-sock
URI="qemu:///system?socket=$SOCK"
BRIDGE=virbr-n2
SUBNET=192.168.124
SHARED_NET=nepho-shared
SHARED_BRIDGE=virbr-sh
SHARED_SUBNET=192.168.126
TIMEOUT=${NEPHO_HOST2_TIMEOUT:-90}
NSFILE=$RUN/mntns          # "mnt:[ino]" of host2's mount namespace
LIBVIRTD_PID=$RUN/libvirtd.pid
VIRTLOGD_PID=$RUN/virtlogd.pid
VIRTLOCKD_PID=$RUN/virtlockd.pid

answers() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }


ns_pids() { # every process in host2's mount namespace, and host2's QEMUs (by pid file)
  local ns pid f
  if [ -f "$NSFILE" ] && ns=$(cat "$NSFILE") && [ -n "$ns" ]; then
    for pid in /proc/[0-9]*; do
      pid=${pid#/proc/}
      [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] && live "$pid" || continue
      # Only host2's namespace has libvirt's config bind-mounted from $STATE (guards against
      # a stale $NSFILE whose inode a new, unrelated namespace reuses).
      [[ "$(cat "/proc/$pid/mountinfo" 2>/dev/null)" == *" $STATE/etc /etc/libvirt "* ]] && echo "$pid"
    done
  fi
  for f in "$RUN"/run/qemu/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == qemu-system* ]] && live "$pid" && echo "$pid"
  done
  return 0
}

alive() { # pidfile name
  local pid
  [ -f "$1" ] && pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] \
    && live "$pid" && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]
}
libvirtd_alive() { alive "$LIBVIRTD_PID" libvirtd; }

# The config libvirtd read at start: a change restarts host2.
conf_sum() { { cat "$STATE/etc/qemu.conf" "$STATE/etc/qemu-lockd.conf" "$STATE/etc/libvirtd.conf" 2>/dev/null || true; } | sha256sum; }

keep_drop_first() {
  local dev first
  for dev in $(ip -4 route show default | awk '{for(i=1;i<NF;i++) if($i=="dev") print $(i+1)}' | sort -u); do
    first=$(iptables -S FORWARD | sed -n 2p)
    if [ "$first" != "-A FORWARD -o $dev -j DROP" ]; then
      log "iptables: putting FORWARD -o $dev DROP first again"
      iptables -D FORWARD -o "$dev" -j DROP 2>/dev/null || true
      iptables -I FORWARD 1 -o "$dev" -j DROP
    fi
  done
}

init_state() {
  mkdir -p "$STATE"/{lib,cache,log}
  if [ ! -d "$STATE/etc" ]; then
    log "initialising host2's config in $STATE/etc (from /etc/libvirt, without domains/networks/pools)"
    mkdir -p "$STATE/etc.tmp"
    cp -a /etc/libvirt/. "$STATE/etc.tmp/"
    rm -rf "$STATE/etc.tmp/qemu" "$STATE/etc.tmp/storage" "$STATE/etc.tmp/secrets"
    mkdir -p "$STATE/etc.tmp/qemu/networks/autostart" "$STATE/etc.tmp/storage"
    mv "$STATE/etc.tmp" "$STATE/etc"
  fi
  mkdir -p "$STATE/lib/qemu" "$STATE/lib/dnsmasq" "$STATE/lib/images" "$STATE/log/qemu"
  # libvirt puts each QEMU in a mount namespace of its own (private /dev) by default; keep
  # them in host2's namespace instead, so `stop` finds and kills them with the rest.
  if ! grep -q '^namespaces *=' "$STATE/etc/qemu.conf" 2>/dev/null; then
    printf '\n# nepho host2: QEMU stays in host2'"'"'s mount namespace (host2.sh stop kills it)\nnamespaces = []\n' \
      >>"$STATE/etc/qemu.conf"
  fi
  # Both libvirtds share this machine's network stack: VNC displays (autoport) must come from
  # ranges that do not overlap, or two QEMUs race for the same port (the default range starts
  # at 5900 for both).
  if ! grep -q '^remote_display_port_min *=' "$STATE/etc/qemu.conf" 2>/dev/null; then
    printf '\n# nepho host2: VNC ports apart from host1'"'"'s (which start at 5900)\nremote_display_port_min = 6500\nremote_display_port_max = 6599\n' \
      >>"$STATE/etc/qemu.conf"
  fi
  # Its own host UUID: both daemons read this machine's SMBIOS/machine-id, and libvirt refuses
  # to migrate a domain to "the same host" when source and destination report one UUID.
  # Generated once and kept with the rest of host2's state.
  if ! grep -q '^host_uuid *=' "$STATE/etc/libvirtd.conf" 2>/dev/null; then
    printf '\n# nepho host2: a host UUID of its own (live migration between host1 and host2)\nhost_uuid = "%s"\n' \
      "$(cat /proc/sys/kernel/random/uuid)" >>"$STATE/etc/libvirtd.conf"
  fi
  # Both libvirtds hand out incoming-migration ports from 49152 by default: keep host2's apart.
  if ! grep -q '^migration_port_min *=' "$STATE/etc/qemu.conf" 2>/dev/null; then
    printf '\n# nepho host2: incoming-migration ports apart from host1'"'"'s (49152-49215)\nmigration_port_min = 49300\nmigration_port_max = 49363\n' \
      >>"$STATE/etc/qemu.conf"
  fi
  # Leases in the lockspace both hosts share (lock_manager = "lockd").
  "$(dirname "$0")"/lockd-conf.sh "$STATE/etc"
  # Without a capabilities cache libvirtd probes QEMU at its first start (~12 s).
  if [ -d /var/cache/libvirt/qemu ] && [ ! -d "$STATE/cache/qemu" ]; then
    cp -a /var/cache/libvirt/qemu "$STATE/cache/qemu" || true
  fi
  # Same owners/modes as the real directories (QEMU runs as libvirt-qemu).
  local d
  for d in lib cache log; do
    chown --reference="/var/${d/log/log}/libvirt" "$STATE/$d" 2>/dev/null || true
  done
  chown --reference=/var/lib/libvirt/qemu "$STATE/lib/qemu" 2>/dev/null || true
  chmod --reference=/var/lib/libvirt/qemu "$STATE/lib/qemu" 2>/dev/null || true
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v libvirtd >/dev/null || die "libvirtd is not installed (scripts/setup/packages.sh)"
  if libvirtd_alive && answers && [ -f "$STATE/etc/qemu.conf" ]; then
    # A host2 started by an older version of this script restarts to pick up config it lacks.
    init_state
    if [ "$(conf_sum)" != "$(cat "$RUN/qemu.conf.sum" 2>/dev/null)" ]; then
      log "host2's qemu.conf/qemu-lockd.conf/libvirtd.conf changed since it started: restarting it"
      stop_
    elif ! alive "$VIRTLOCKD_PID" virtlockd; then
      log "host2 runs without its virtlockd: restarting it"
      stop_
    fi
  fi
  if libvirtd_alive && answers; then
    log "already running ($URI)"
  else
    if [ -n "$(ns_pids)" ]; then
      log "leftovers of a previous host2 found: stopping them first"
      stop_
    fi
    init_state
    rm -rf "$RUN/run"
    mkdir -p "$RUN/run"
    chmod 0755 "$RUN" "$RUN/run"
    log "starting virtlogd + virtlockd + libvirtd in a private mount namespace"
    # The inner shell sets up the mounts, starts both daemons (they daemonize) and exits;
    # the namespace lives on with them.
    unshare -m --propagation private -- /bin/bash -euo pipefail -c '
      RUN=$1; STATE=$2
      # The daemons must not inherit the caller'"'"'s descriptors (e.g. a test'"'"'s lock file).
      for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
      done
      mount --bind "$RUN/run" /run/libvirt
      mount --bind "$STATE/etc" /etc/libvirt
      mount --bind "$STATE/lib" /var/lib/libvirt
      mount --bind "$STATE/cache" /var/cache/libvirt
      mount --bind "$STATE/log" /var/log/libvirt
      readlink /proc/self/ns/mnt >"$RUN/mntns"
      virtlogd -d -p "$RUN/virtlogd.pid"
      virtlockd -d -p "$RUN/virtlockd.pid"
      for _ in $(seq 1 100); do
        [ -S /run/libvirt/virtlogd-sock ] && [ -S /run/libvirt/virtlockd-sock ] && break
        sleep 0.1
      done
      libvirtd -d -p "$RUN/libvirtd.pid"
    ' host2 "$RUN" "$STATE"
    local t0=$SECONDS
    until answers; do
      if (( SECONDS - t0 >= TIMEOUT )); then
        die "host2's libvirtd did not answer on $URI within ${TIMEOUT}s (see $STATE/log/libvirtd.log)"
      fi
      [ -n "$(ns_pids)" ] || die "host2's libvirtd exited at start (see $STATE/log)"
      sleep 0.3
    done
    log "libvirtd answers after $(( SECONDS - t0 ))s"
    conf_sum >"$RUN/qemu.conf.sum"
  fi

  if ! virsh -c "$URI" net-info default >/dev/null 2>&1; then
    local x
    x=$(mktemp)
    cat >"$x" <<XML
<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='$BRIDGE' stp='on' delay='0'/>
  <ip address='$SUBNET.1' netmask='255.255.255.0'>
    <dhcp><range start='$SUBNET.2' end='$SUBNET.254'/></dhcp>
  </ip>
  <dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>
</network>
XML
    log "defining network default ($BRIDGE, $SUBNET.0/24)"
    virsh -c "$URI" net-define "$x" >/dev/null
    rm -f "$x"
  fi
  if [ "$(virsh -c "$URI" net-info default | awk '/^Active:/{print $2}')" != yes ]; then
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
      log "bridge $BRIDGE is left from a previous host2 (network inactive): removing it"
      clear_bridge
    fi
    log "starting network default ($BRIDGE)"
    virsh -c "$URI" net-start default >/dev/null
  fi
  virsh -c "$URI" net-autostart default >/dev/null 2>&1 || true
  shared_network
  keep_drop_first
  log "ok: host2 at $URI"
}

# One segment both hosts share, for live migration (a migrated guest keeps its address, so
# its network must be the same on both hosts): host1's NAT network $SHARED_NET on bridge
# $SHARED_BRIDGE ($SHARED_SUBNET.0/24, DHCP from host1's dnsmasq) and, on host2, a network of
# the same name in bridge mode on that bridge (no DHCP of its own). As two real hosts would
# share a LAN bridge with one DHCP server on it.
shared_network() {
  local x
  if ! virsh -c qemu:///system net-info "$SHARED_NET" >/dev/null 2>&1; then
    x=$(mktemp)
    cat >"$x" <<XML
<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>$SHARED_NET</name>
  <forward mode='nat'/>
  <bridge name='$SHARED_BRIDGE' stp='off' delay='0'/>
  <ip address='$SHARED_SUBNET.1' netmask='255.255.255.0'>
    <dhcp><range start='$SHARED_SUBNET.2' end='$SHARED_SUBNET.254'/></dhcp>
  </ip>
  <dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>
</network>
XML
    log "defining host1's network $SHARED_NET ($SHARED_BRIDGE, $SHARED_SUBNET.0/24)"
    virsh -c qemu:///system net-define "$x" >/dev/null
    rm -f "$x"
  fi
  if [ "$(virsh -c qemu:///system net-info "$SHARED_NET" | awk '/^Active:/{print $2}')" != yes ]; then
    log "starting host1's network $SHARED_NET"
    virsh -c qemu:///system net-start "$SHARED_NET" >/dev/null
  fi
  virsh -c qemu:///system net-autostart "$SHARED_NET" >/dev/null 2>&1 || true
  no_stp
  if ! virsh -c "$URI" net-info "$SHARED_NET" >/dev/null 2>&1; then
    x=$(mktemp)
    printf "<network>\n  <name>%s</name>\n  <forward mode='bridge'/>\n  <bridge name='%s'/>\n</network>\n" \
      "$SHARED_NET" "$SHARED_BRIDGE" >"$x"
    log "defining host2's network $SHARED_NET (bridge mode on $SHARED_BRIDGE)"
    virsh -c "$URI" net-define "$x" >/dev/null
    rm -f "$x"
  fi
  if [ "$(virsh -c "$URI" net-info "$SHARED_NET" | awk '/^Active:/{print $2}')" != yes ]; then
    virsh -c "$URI" net-start "$SHARED_NET" >/dev/null
  fi
  virsh -c "$URI" net-autostart "$SHARED_NET" >/dev/null 2>&1 || true
}

# STP off on the shared bridge, as on a LAN bridge two hosts' guests share. With STP on, the
# kernel raises the forward delay to its 2 s minimum, and a port new to the bridge (the tap of
# a live migration's destination QEMU) forwards only after listening and learning, 4 s: the
# migrated guest was unreachable for about 3.4 s after the switch, long enough for the host's
# ARP to give up ("No route to host"). A network defined with STP on by an older version of
# this script is redefined (persistent config) and its running bridge switched over.
no_stp() {
  local x
  if virsh -c qemu:///system net-dumpxml --inactive "$SHARED_NET" | grep -q "stp='on'"; then
    x=$(mktemp)
    virsh -c qemu:///system net-dumpxml --inactive "$SHARED_NET" | sed "s/stp='on'/stp='off'/" >"$x"
    log "network $SHARED_NET: STP off (redefined)"
    virsh -c qemu:///system net-define "$x" >/dev/null
    rm -f "$x"
  fi
  if [ "$(cat "/sys/class/net/$SHARED_BRIDGE/bridge/stp_state" 2>/dev/null)" != 0 ]; then
    log "bridge $SHARED_BRIDGE: STP off"
    ip link set dev "$SHARED_BRIDGE" type bridge stp_state 0
  fi
}

stop_() {
  local pids t0
  pids=$(ns_pids | tr '\n' ' ')
  if [ -n "${pids// /}" ]; then
    log "killing host2's processes (power off): $pids"
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    t0=$SECONDS
    while [ -n "$(ns_pids)" ]; do
      (( SECONDS - t0 < 20 )) || die "host2's processes did not exit: $(ns_pids | tr '\n' ' ')"
      sleep 0.1
    done
  else
    log "not running"
  fi
  # What a reboot clears: the bridge and the rules libvirt added for it, the runtime dir.
  clear_bridge
  rm -rf "$RUN/run" "$NSFILE" "$LIBVIRTD_PID" "$VIRTLOGD_PID" "$VIRTLOCKD_PID"
}

# The bridge and its iptables rules. Also cleared before the network starts: a machine
# restored without its processes (or a host2 killed some other way) keeps the bridge, and
# libvirt then refuses to start the network ("Network is already in use by interface
# virbr-n2"). Only host2's network uses this bridge, so an inactive network means a stale one.
clear_bridge() {
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE" 2>/dev/null || true
  fi
  local table rule
  for table in filter nat mangle; do
    while read -r rule; do
      [ -n "$rule" ] || continue
      # shellcheck disable=SC2086
      eval "iptables -t $table ${rule/-A /-D }" 2>/dev/null || true
    done < <(iptables -t "$table" -S 2>/dev/null | awk -v b="$BRIDGE" -v s="$SUBNET." 'index($0, b) || index($0, s)')
  done
}

case "${1:-}" in
  start) start ;;
  stop)
    [ "$(id -u)" = 0 ] || die "must run as root"
    stop_
    if [ "${2:-}" = --purge ]; then
      log "purging host2's state ($STATE)"
      rm -rf "$STATE"
    fi
    ;;
  status)
    if libvirtd_alive && answers; then
      echo "$URI"
    else
      exit 3
    fi
    ;;
  uri) echo "$URI" ;;
  *) die "usage: $0 start|stop [--purge]|status|uri" ;;
esac
