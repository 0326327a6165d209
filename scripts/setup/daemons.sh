#!/usr/bin/env bash
# Start virtlogd + virtlockd + libvirtd without systemd, with libvirt's lock manager (lockd)
# configured for nepho's fencing leases (scripts/setup/lockd-conf.sh), make sure libvirt's
# `default` NAT network is defined and active, and keep guests off the outside network.
# Idempotent: running daemons are left alone; quick when everything is already up. A running
# libvirtd is restarted (its guests keep running) when qemu.conf / qemu-lockd.conf changed
# since this script last started it.
#
# Usage: scripts/setup/daemons.sh
# Env:   NEPHO_LIBVIRT_TIMEOUT  seconds to wait for libvirtd to answer (default 90)
#        NEPHO_LOCKSPACE        shared lease directory (default /var/lib/nepho/lockspace)
set -euo pipefail

log() { printf '[daemons] %s\n' "$*" >&2; }
die() { printf '[daemons] ERROR: %s\n' "$*" >&2; exit 1; }
# A process that runs (a zombie nobody reaped has exited).
live() { local s; s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }

[ "$(id -u)" = 0 ] || die "must run as root"
TIMEOUT=${NEPHO_LIBVIRT_TIMEOUT:-90}
URI=qemu:///system

# ---- /dev/kvm permissions -------------------------------------------------------------
# Without group kvm + 0660 libvirt re-probes QEMU on every call (virsh define ~56 s).
if [ -e /dev/kvm ]; then
  getent group kvm >/dev/null || groupadd -r kvm
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
fi

# ---- daemons ----------------------------------------------------------------------------
running() { # name pidfile
  local pid
  if [ -f "$2" ] && pid=$(cat "$2" 2>/dev/null) && [ -n "$pid" ] && live "$pid" \
     && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$1" ]; then
    return 0
  fi
  # Started some other way: any such process in this mount namespace (host2.sh runs its own
  # libvirtd and virtlogd in another one; they do not count).
  local ns
  ns=$(readlink /proc/self/ns/mnt)
  for pid in $(pgrep -x "$1" 2>/dev/null); do
    [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] && live "$pid" && return 0
  done
  return 1
}

pid_of() { # name pidfile: the running daemon's pid (this mount namespace), or nothing
  local pid ns
  if [ -f "$2" ] && pid=$(cat "$2" 2>/dev/null) && [ -n "$pid" ] && live "$pid" \
     && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$1" ]; then
    echo "$pid"; return 0
  fi
  ns=$(readlink /proc/self/ns/mnt)
  for pid in $(pgrep -x "$1" 2>/dev/null); do
    if [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] && live "$pid"; then
      echo "$pid"; return 0
    fi
  done
  return 0
}

# The daemons must not inherit the caller's descriptors: a test's lock file (e.g.
# /run/nepho-host2.lock, or `flock LOCK daemons.sh`) would stay locked for their lifetime.
for fd in /proc/self/fd/*; do
  fd=${fd##*/}
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done

mkdir -p /run/libvirt /var/log/libvirt
"$(dirname "$0")"/lockd-conf.sh /etc/libvirt
CONF_SUM=/run/nepho-libvirtd.conf.sum
conf_sum() { { cat /etc/libvirt/qemu.conf /etc/libvirt/qemu-lockd.conf 2>/dev/null || true; } | sha256sum; }

if running virtlogd /run/virtlogd.pid; then
  log "virtlogd already running"
else
  log "starting virtlogd"
  virtlogd -d
fi

# virtlockd holds the leases (fcntl locks in the lockspace) for each QEMU; it must run before
# libvirtd starts a domain. Never stop it while guests run: when it exits it SIGTERMs every
# QEMU it holds a lease for (a QEMU must not run on without its lease). So this script never
# restarts it; libvirtd alone restarts without harm to running guests.
if running virtlockd /run/virtlockd.pid; then
  log "virtlockd already running"
else
  log "starting virtlockd"
  virtlockd -d
  for _ in $(seq 1 50); do [ -S /run/libvirt/virtlockd-sock ] && break; sleep 0.1; done
  [ -S /run/libvirt/virtlockd-sock ] || die "virtlockd did not create /run/libvirt/virtlockd-sock"
fi

if running libvirtd /run/libvirtd.pid && [ "$(conf_sum)" != "$(cat "$CONF_SUM" 2>/dev/null)" ]; then
  # Running guests survive a libvirtd restart (it reconnects to their QEMUs).
  pid=$(pid_of libvirtd /run/libvirtd.pid)
  log "libvirt's qemu.conf/qemu-lockd.conf changed since libvirtd started: restarting it (pid $pid)"
  kill -TERM "$pid"
  t0=$SECONDS
  while live "$pid"; do
    (( SECONDS - t0 < 30 )) || die "libvirtd (pid $pid) did not exit within 30 s"
    sleep 0.2
  done
fi
if running libvirtd /run/libvirtd.pid; then
  log "libvirtd already running"
else
  log "starting libvirtd (first start probes QEMU, ~12 s)"
  conf_sum >"$CONF_SUM"
  libvirtd -d
fi

# ---- wait until libvirtd answers ---------------------------------------------------------
t0=$SECONDS
until timeout 10 virsh -c "$URI" version >/dev/null 2>&1; do
  if (( SECONDS - t0 >= TIMEOUT )); then
    die "libvirtd did not answer on $URI within ${TIMEOUT}s (see /var/log/libvirt/libvirtd.log)"
  fi
  running libvirtd /run/libvirtd.pid || die "libvirtd is not running (exited at start?)"
  sleep 0.5
done
log "libvirtd answers after $(( SECONDS - t0 ))s"

# ---- default network -----------------------------------------------------------------------
if ! virsh -c "$URI" net-info default >/dev/null 2>&1; then
  src=/usr/share/libvirt/networks/default.xml
  if [ ! -f "$src" ]; then
    src=$(mktemp)
    cat >"$src" <<'XML'
<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
  </ip>
</network>
XML
  fi
  log "defining network default from $src"
  virsh -c "$URI" net-define "$src" >/dev/null
fi
if [ "$(virsh -c "$URI" net-info default | awk '/^Active:/{print $2}')" != yes ]; then
  log "starting network default"
  virsh -c "$URI" net-start default >/dev/null
fi
virsh -c "$URI" net-autostart default >/dev/null 2>&1 || true

# dnsmasq pings every new address for ~3 s before offering it; every test guest pays that
# at boot. Add dnsmasq's `no-ping` to `default` (set NEPHO_DNSMASQ_NO_PING=0 to leave the
# network alone). Applied only while no guest is attached (the network must be restarted).
# (No `cmd | grep -q` under pipefail anywhere here: grep -q exiting early can SIGPIPE the
# writer and make the pipeline fail at random.)
if [ "${NEPHO_DNSMASQ_NO_PING:-1}" = 1 ] \
   && [[ "$(virsh -c "$URI" net-dumpxml --inactive default)" != *"value='no-ping'"* ]]; then
  conns=$(virsh -c "$URI" net-dumpxml default | sed -n "s/.*<network[^>]*connections='\([0-9]*\)'.*/\1/p")
  if [ -n "$conns" ] && [ "$conns" != 0 ]; then
    log "network default has $conns guest(s) attached: not adding dnsmasq no-ping now"
  else
    log "adding dnsmasq option no-ping to network default (saves ~3 s per guest boot)"
    tmpx=$(mktemp)
    xml=$(virsh -c "$URI" net-dumpxml --inactive default)
    if [[ "$xml" != *"xmlns:dnsmasq="* ]]; then
      xml=$(sed "s|^<network\([ >]\)|<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'\1|" <<<"$xml")
    fi
    if [[ "$xml" == *"<dnsmasq:options>"* ]]; then
      xml=$(sed "s|<dnsmasq:options>|<dnsmasq:options><dnsmasq:option value='no-ping'/>|" <<<"$xml")
    else
      xml=$(sed "s|^</network>|  <dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>\n</network>|" <<<"$xml")
    fi
    printf '%s\n' "$xml" >"$tmpx"
    virsh -c "$URI" net-define "$tmpx" >/dev/null
    rm -f "$tmpx"
    virsh -c "$URI" net-destroy default >/dev/null
    virsh -c "$URI" net-start default >/dev/null
  fi
fi

# ---- default storage pool (dir, /var/lib/libvirt/images) -----------------------------------
# vagrant-libvirt uploads boxes into it (and would create it itself); the kvm provider may
# put volumes there too.
if ! virsh -c "$URI" pool-info default >/dev/null 2>&1; then
  mkdir -p /var/lib/libvirt/images
  log "defining storage pool default (/var/lib/libvirt/images)"
  virsh -c "$URI" pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
fi
if [ "$(virsh -c "$URI" pool-info default | awk '/^State:/{print $2}')" != running ]; then
  virsh -c "$URI" pool-start default >/dev/null
fi
virsh -c "$URI" pool-autostart default >/dev/null 2>&1 || true

# ---- keep guests off the outside network -----------------------------------------------------
# libvirt turns on IP forwarding and masquerading for `default`; drop anything forwarded
# out of the uplink so guests can only reach this host.
uplinks=$(ip -4 route show default | awk '{for(i=1;i<NF;i++) if($i=="dev") print $(i+1)}' | sort -u)
[ -n "$uplinks" ] || log "no IPv4 default route: no uplink to block"
for dev in $uplinks; do
  if iptables -C FORWARD -o "$dev" -j DROP 2>/dev/null; then
    log "iptables: FORWARD -o $dev DROP already present"
  else
    log "iptables: inserting FORWARD -o $dev DROP"
    iptables -I FORWARD 1 -o "$dev" -j DROP
  fi
done
if command -v ip6tables >/dev/null; then
  for dev in $(ip -6 route show default | awk '{for(i=1;i<NF;i++) if($i=="dev") print $(i+1)}' | sort -u); do
    ip6tables -C FORWARD -o "$dev" -j DROP 2>/dev/null || ip6tables -I FORWARD 1 -o "$dev" -j DROP || true
  done
fi
# libvirt may have (re)inserted its own FORWARD rules above ours when the network started;
# make sure the DROP is first.
for dev in $uplinks; do
  first=$(iptables -S FORWARD | sed -n 2p)
  if [ "$first" != "-A FORWARD -o $dev -j DROP" ]; then
    iptables -D FORWARD -o "$dev" -j DROP 2>/dev/null || true
    iptables -I FORWARD 1 -o "$dev" -j DROP
  fi
done

log "ok: $(virsh -c "$URI" version 2>/dev/null | awk -F': ' '/Running hypervisor/{print $2}'), network + pool default active"
