#!/usr/bin/env bash
# End-to-end proof that a libvirt domain boots from an iSCSI LUN served by tgtd on
# 127.0.0.1 through QEMU's own iSCSI client (qemu-block-extra / libiscsi):
#   tgtd (scripts/setup/tgtd.sh) -> target + LUN 1 backed by a raw copy of the tiny guest
#   -> <disk type='network'><source protocol='iscsi' name='IQN/1'> -> lease -> ssh ->
#   cleanup (domain, target, LUN file) -> verify the target is gone.
# Also lists the LUN through a transient libvirt `iscsi-direct` pool (if the driver is installed).
#
# Usage: scripts/smoke/kvm-iscsi.sh [PORT]     (iSCSI portal port, default 3260)
# Env: NEPHO_IMAGE_DIR, NEPHO_SMOKE_TIMEOUT (s, default 120)
set -euo pipefail
SMOKE_NAME=kvm-iscsi
# shellcheck source=scripts/smoke/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${1:-3260}
TIMEOUT=${NEPHO_SMOKE_TIMEOUT:-120}
TGTD="$REPO_ROOT/scripts/setup/tgtd.sh"
if [ "$PORT" = 3260 ]; then CTL=0; else CTL=$PORT; fi
tgtadm_() { tgtadm -C "${NEPHO_TGT_CONTROL:-$CTL}" --lld iscsi "$@"; }

require_root
ensure_infra
"$TGTD" start "$PORT" || die "tgtd.sh start failed"
make_workdir

DOM=nepho-smoke-iscsi-$$-$RANDOM
HOST=iscsi-$RANDOM
IQN=iqn.2024-01.test.nepho:smoke-$$-$RANDOM
INITIATOR=iqn.2024-01.test.nepho:initiator-$HOST
log "domain $DOM, target $IQN, portal 127.0.0.1:$PORT, workdir $WORK"

make_ssh_key
printf '#!/bin/sh\necho booted from iSCSI; cat /proc/partitions\n' >"$WORK/provision.sh"
"$REPO_ROOT/scripts/images/make-seed.sh" "$WORK/seed.iso" --hostname "$HOST" \
  --authorized-keys "$WORK/id_ed25519.pub" --provision "$WORK/provision.sh" 2>/dev/null

# ---- LUN ----------------------------------------------------------------------------------------
t=$(now)
qemu-img convert -q -f qcow2 -O raw "$IMAGE_DIR/tiny-guest.qcow2" "$WORK/lun1.raw"
log "raw LUN image ($(du -h --apparent-size "$WORK/lun1.raw" | awk '{print $1}')) in $(since "$t")s"

# free target id = highest existing + 1
TID=$(( $(tgtadm_ --op show --mode target | sed -n 's/^Target \([0-9]\+\):.*/\1/p' | sort -n | tail -n1 || echo 0) + 1 ))
t=$(now)
tgtadm_ --op new --mode target --tid "$TID" -T "$IQN"
delete_target() {
  tgtadm_ --op delete --mode target --tid "$TID" --force >/dev/null 2>&1 || true
}
on_exit delete_target
tgtadm_ --op new --mode logicalunit --tid "$TID" --lun 1 -b "$WORK/lun1.raw"
tgtadm_ --op bind --mode target --tid "$TID" -I 127.0.0.1
log "target tid $TID + LUN 1 created in $(since "$t")s"

# ---- optional: the LUN as seen through libvirt's iscsi-direct pool ----------------------------------
if [[ "$(virsh pool-capabilities 2>/dev/null)" == *"<pool type='iscsi-direct' supported='yes'"* ]]; then
  POOL=nepho-smoke-pool-$$
  cat >"$WORK/pool.xml" <<XML
<pool type='iscsi-direct'>
  <name>$POOL</name>
  <source>
    <host name='127.0.0.1' port='$PORT'/>
    <device path='$IQN'/>
    <initiator><iqn name='$INITIATOR-pool'/></initiator>
  </source>
</pool>
XML
  t=$(now)
  if virsh pool-create "$WORK/pool.xml" >/dev/null 2>"$WORK/pool.err"; then
    on_exit virsh pool-destroy "$POOL"
    vols=$(virsh vol-list "$POOL" 2>/dev/null | awk 'NR>2 && NF{print $1" ("$2")"}' | tr '\n' ' ')
    log "iscsi-direct pool lists: ${vols:-nothing} ($(since "$t")s)"
    virsh pool-destroy "$POOL" >/dev/null 2>&1 || true
  else
    log "note: iscsi-direct pool failed: $(tr '\n' ' ' <"$WORK/pool.err")"
  fi
else
  log "note: iscsi-direct storage driver not available, skipping pool listing"
fi

# ---- domain ---------------------------------------------------------------------------------------
cat >"$WORK/domain.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source protocol='iscsi' name='$IQN/1'>
        <host name='127.0.0.1' port='$PORT'/>
        <initiator><iqn name='$INITIATOR'/></initiator>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='$WORK/seed.iso'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='default'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <serial type='pty'>
      <log file='$WORK/console.log' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
XML

fail() { show_console_tail "$WORK/console.log"; die "$*"; }

t_def=$(now)
virsh define "$WORK/domain.xml" >/dev/null || fail "virsh define failed"
track_domain "$DOM"
virsh start "$DOM" >/dev/null || fail "virsh start failed (is qemu-block-extra installed?)"
log "started ($(since "$t_def")s after define)"
# the initiator must be logged in now
[[ "$(tgtadm_ --op show --mode conn --tid "$TID")" == *Initiator* ]] \
  || log "warning: no iSCSI connection visible on tid $TID"

wait_for_ip "$DOM" "$TIMEOUT" || fail "no DHCP lease"
T_LEASE=$(since "$t_def"); log "lease $DOM_IP at ${T_LEASE}s after define"
wait_for_ssh "$DOM_IP" "$TIMEOUT" || fail "no ssh"
T_SSH=$(since "$t_def"); log "ssh answers at ${T_SSH}s after define"
wait_for_provisioned "$DOM_IP" "$TIMEOUT" || fail "provisioner did not finish"
out=$(gssh "$DOM_IP" 'hostname; cat /run/nepho/provision.rc; head -n1 /var/log/nepho-provision.log; cat /proc/cmdline') \
  || fail "ssh command failed"
log "guest says: $(echo "$out" | tr '\n' ' ')"
[ "$(echo "$out" | sed -n 1p)" = "$HOST" ] || fail "wrong hostname"
[ "$(echo "$out" | sed -n 2p)" = 0 ] || fail "provision.rc != 0"
[[ "$out" == *BOOT_IMAGE=/boot/vmlinuz* ]] || fail "guest was not booted by GRUB from the LUN"
grep -a '^nepho:' "$WORK/console.log" | sed 's/^/    console| /' >&2 || true

# ---- cleanup + verification -------------------------------------------------------------------------
t=$(now)
cleanup_domain "$DOM"
delete_target
rm -f "$WORK/lun1.raw"
T_CLEAN=$(since "$t")
virsh dominfo "$DOM" >/dev/null 2>&1 && fail "domain still defined"
left=$(tgtadm_ --op show --mode target)
if [[ "$left" == *"$IQN"* ]]; then fail "target $IQN still present"; fi
if [ -n "$left" ]; then
  log "note: other targets exist on this tgtd (not ours): $(echo "$left" | grep '^Target' | tr '\n' ' ')"
else
  log "tgtadm --op show --mode target: empty"
fi
[ -e "$WORK/lun1.raw" ] && fail "LUN file still present"

log "timings: define->lease ${T_LEASE}s, define->ssh ${T_SSH}s, cleanup ${T_CLEAN}s"
echo "kvm-iscsi define_to_lease=${T_LEASE} define_to_ssh=${T_SSH} cleanup=${T_CLEAN}"
