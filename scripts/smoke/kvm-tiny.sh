#!/usr/bin/env bash
# End-to-end proof that the tiny guest works as a libvirt domain (TCG, <domain type='qemu'>):
# qcow2 overlay of the tiny guest + NoCloud seed ISO + NIC on network `default`;
# waits for the DHCP lease, ssh, the provisioner; checks hostname + provision.rc;
# ACPI shutdown; destroys + undefines + removes everything (also on failure).
#
# Usage: scripts/smoke/kvm-tiny.sh [--boot disk|kernel] [--keep-on-failure]
#   --boot disk    (default) boot the qcow2 overlay through its own MBR/GRUB
#   --boot kernel  direct kernel boot (<os><kernel/><initrd/><cmdline/>) with the same disk attached
# Env: NEPHO_IMAGE_DIR (default /var/cache/nepho-test/images), NEPHO_SMOKE_TIMEOUT (s, default 120),
#      NEPHO_MACHINE (pc = i440fx, seed on IDE, default | q35 = seed on SATA),
#      NEPHO_NETWORK (libvirt network, default `default`)
set -euo pipefail
SMOKE_NAME=kvm-tiny
# shellcheck source=scripts/smoke/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

boot=disk keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --boot) boot=$2; shift 2 ;;
    --keep-on-failure) keep=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
case "$boot" in disk|kernel) ;; *) die "--boot must be disk or kernel" ;; esac
TIMEOUT=${NEPHO_SMOKE_TIMEOUT:-120}
MACHINE=${NEPHO_MACHINE:-pc}
case "$MACHINE" in
  pc)  CDROM_TARGET="<target dev='hdc' bus='ide'/>" ;;
  q35) CDROM_TARGET="<target dev='sda' bus='sata'/>" ;;
  *) die "NEPHO_MACHINE must be pc or q35" ;;
esac

require_root
ensure_infra
make_workdir

DOM=nepho-smoke-tiny-$$-$RANDOM
HOST=tiny-$RANDOM
log "domain $DOM, hostname $HOST, boot=$boot, machine=$MACHINE, workdir $WORK"

make_ssh_key
cat >"$WORK/provision.sh" <<'P'
#!/bin/sh
echo "provisioner running as $(id -u) on $(hostname)"
echo "seed dir: $NEPHO_SEED_DIR"
echo provisioned >/root/provisioned
exit 0
P
t=$(now)
qemu-img create -q -f qcow2 -b "$IMAGE_DIR/tiny-guest.qcow2" -F qcow2 "$WORK/disk.qcow2"
log "overlay created in $(since "$t")s"
t=$(now)
"$REPO_ROOT/scripts/images/make-seed.sh" "$WORK/seed.iso" --hostname "$HOST" \
  --authorized-keys "$WORK/id_ed25519.pub" --provision "$WORK/provision.sh" 2>/dev/null
log "seed ISO created in $(since "$t")s"

if [ "$boot" = kernel ]; then
  OS_BOOT="<kernel>$IMAGE_DIR/vmlinuz</kernel>
    <initrd>$IMAGE_DIR/initrd.img</initrd>
    <cmdline>$(cat "$IMAGE_DIR/cmdline")</cmdline>"
else
  OS_BOOT="<boot dev='hd'/>"
fi
cat >"$WORK/domain.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <metadata>
    <nepho:instance xmlns:nepho="urn:nepho:libvirt:1"><nepho:formation>smoke</nepho:formation></nepho:instance>
  </metadata>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='$MACHINE'>hvm</type>
    $OS_BOOT
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$WORK/disk.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='$WORK/seed.iso'/>
      $CDROM_TARGET
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='${NEPHO_NETWORK:-default}'/>
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

fail() {
  show_console_tail "$WORK/console.log"
  if [ "$keep" = 1 ]; then
    log "--keep-on-failure: leaving $DOM and $WORK"
    CLEANUP=()
  fi
  die "$*"
}

t_def=$(now)
virsh define "$WORK/domain.xml" >/dev/null || fail "virsh define failed"
track_domain "$DOM"
log "defined in $(since "$t_def")s"
virsh start "$DOM" >/dev/null || fail "virsh start failed"
log "started ($(since "$t_def")s after define)"

wait_for_ip "$DOM" "$TIMEOUT" || fail "no DHCP lease"
T_LEASE=$(since "$t_def")
log "lease $DOM_IP at ${T_LEASE}s after define"
wait_for_ssh "$DOM_IP" "$TIMEOUT" || fail "no ssh"
T_SSH=$(since "$t_def")
log "ssh answers at ${T_SSH}s after define"
wait_for_provisioned "$DOM_IP" "$TIMEOUT" || fail "provisioner did not finish"
T_PROV=$(since "$t_def")
out=$(gssh "$DOM_IP" 'hostname; cat /run/nepho/provision.rc; cat /root/provisioned') || fail "ssh command failed"
log "guest says: $(echo "$out" | tr '\n' ' ')"
[ "$(echo "$out" | sed -n 1p)" = "$HOST" ] || fail "hostname is '$(echo "$out" | sed -n 1p)', expected $HOST"
[ "$(echo "$out" | sed -n 2p)" = 0 ] || fail "provision.rc is '$(echo "$out" | sed -n 2p)', expected 0"
[ "$(echo "$out" | sed -n 3p)" = provisioned ] || fail "provisioner side effect missing"
grep -q 'ssh ready' "$WORK/console.log" || fail "serial console log does not show the boot"
grep -a '^nepho:' "$WORK/console.log" | sed 's/^/    console| /' >&2 || true

t=$(now)
if acpi_shutdown "$DOM" 30; then T_SHUT=$(since "$t"); log "ACPI shutdown took ${T_SHUT}s"
else T_SHUT=timeout; log "warning: ACPI shutdown did not complete in 30s"; fi
t=$(now)
cleanup_domain "$DOM"
T_UNDEF=$(since "$t")
virsh dominfo "$DOM" >/dev/null 2>&1 && fail "domain still defined after undefine"

log "timings (boot=$boot, machine=$MACHINE): define->lease ${T_LEASE}s, define->ssh ${T_SSH}s, define->provisioned ${T_PROV}s, acpi shutdown ${T_SHUT}s, destroy+undefine ${T_UNDEF}s"
echo "kvm-tiny boot=$boot machine=$MACHINE define_to_lease=${T_LEASE} define_to_ssh=${T_SSH} define_to_provisioned=${T_PROV} acpi_shutdown=${T_SHUT} undefine=${T_UNDEF}"
