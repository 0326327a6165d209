#!/usr/bin/env bash
# Build a real distribution guest for the end-to-end tests that must not take the tiny guest's
# shortcuts: Debian 12 (bookworm) from Debian's packages with systemd, a kernel and initramfs,
# openssh-server and the real cloud-init, which reads nepho's NoCloud seed (ISO labelled
# `cidata`) for the user, ssh key, hostname, network and the provisioner (`runcmd`).
#
# Usage: scripts/images/build-debian-image.sh [OUTDIR]    (default /var/cache/nepho-test/images)
#
# Outputs in OUTDIR:
#   debian-12.qcow2     compressed qcow2, BIOS boot (MBR + GRUB core.img with an embedded
#                       config, ext4 root labelled nepho-root, 4 GiB virtual); use it as a base
#                       image (qcow2 overlay, or raw copy onto an iSCSI LUN)
#   debian-12.sha256    hash of this script and the mirror; the build is skipped when it
#                       matches and the image exists (NEPHO_FORCE_REBUILD=1 rebuilds anyway)
# Env: NEPHO_DEBIAN_MIRROR (default: the first deb.debian.org-style URI in apt's sources).
# Needs root (debootstrap, chroot). Nothing is downloaded outside the package registry.
# Takes 3–6 minutes; about 300 MB.
set -euo pipefail

log() { printf '[debian-image] %s\n' "$*" >&2; }
die() { printf '[debian-image] ERROR: %s\n' "$*" >&2; exit 1; }

OUTDIR=${1:-/var/cache/nepho-test/images}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
NAME=debian-12
SUITE=bookworm
LABEL=nepho-root
FS_SIZE=4G
CMDLINE="root=LABEL=$LABEL ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"
# cloud-init and what it needs to run here: python3-cffi-backend (else cloud-init stays
# unconfigured while debootstrap exits 0), ifupdown + isc-dhcp-client for the network config
# it writes, eject/util-linux for the seed, the ordinary kernel for the CD-ROM and virtio drivers.
PACKAGES=systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,openssh-server,cloud-init,python3-cffi-backend,ifupdown,isc-dhcp-client,iproute2,netbase,ca-certificates,sudo,less,procps,kmod

mirror() {
  if [ -n "${NEPHO_DEBIAN_MIRROR:-}" ]; then echo "$NEPHO_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
          /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v security | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' \
        | awk '{print $1}' | head -n1)
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=$(mirror)
HASH=$( { cat "$SELF"; echo "$MIRROR"; } | sha256sum | awk '{print $1}')
OUT="$OUTDIR/$NAME.qcow2"
if [ "${NEPHO_FORCE_REBUILD:-}" != 1 ] && [ -s "$OUT" ] && [ -f "$OUTDIR/$NAME.sha256" ] \
   && [ "$(cat "$OUTDIR/$NAME.sha256")" = "$HASH" ]; then
  log "up to date: $OUT"
  echo "$OUT"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v grub-mkimage >/dev/null || need+=(grub-pc-bin grub-common)
[ -f /usr/lib/grub/i386-pc/boot.img ] || need+=(grub-pc-bin)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$OUTDIR"
work=$(mktemp -d "$OUTDIR/.debian-build.XXXXXX")
root="$work/rootfs"
cleanup() {
  umount "$root/proc" 2>/dev/null || umount -l "$root/proc" 2>/dev/null || true
  # Never remove a tree something is still mounted in.
  if ! grep -q " $work/" /proc/mounts; then rm -rf "$work"; fi
}
trap cleanup EXIT

log "debootstrap $SUITE from $MIRROR (a few minutes)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
audit=$(chroot "$root" dpkg --audit 2>&1 || true)
[ -z "$audit" ] || { echo "$audit" >&2; die "packages left unconfigured (dpkg --audit)"; }

log "configuring"
echo "$NAME" >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'LABEL=%s\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' "$LABEL" >"$root/etc/fstab"
cat >"$root/etc/network/interfaces" <<'EOF'
# cloud-init writes the guest's network configuration into interfaces.d (from the seed's
# network-config, else DHCP on the first NIC).
auto lo
iface lo inet loopback
source /etc/network/interfaces.d/*
EOF
mkdir -p "$root/etc/network/interfaces.d"
cat >"$root/etc/cloud/cloud.cfg.d/90-nepho.cfg" <<'EOF'
# nepho's test image: the NoCloud seed only (no metadata-service probing), and a locale
# that exists (cloud-init ends in error generating one otherwise).
datasource_list: [NoCloud, None]
locale: C.UTF-8
EOF
# A machine id and ssh host keys of its own for every machine made from this image.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
# Console login on the serial port (virsh console) comes from console=ttyS0 on the cmdline.
chroot "$root" passwd -l root >/dev/null
# Smaller: no package lists, docs, man pages or foreign locales; kernel modules no virtual
# machine needs (sound, wireless, GPUs, media, InfiniBand, ...).
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' ! -name locale.alias \
  -exec rm -rf {} + 2>/dev/null || true
kver=$(ls "$root/lib/modules" | sort -V | tail -n1)
[ -n "$kver" ] || die "no kernel installed"
moddir="$root/lib/modules/$kver/kernel"
for d in sound drivers/gpu drivers/net/wireless drivers/media drivers/infiniband drivers/staging \
         drivers/bluetooth drivers/isdn drivers/iio drivers/hid/intel-ish-hid drivers/usb/serial \
         drivers/net/can drivers/input/joystick drivers/input/touchscreen net/wireless net/mac80211 \
         net/bluetooth; do
  rm -rf "${moddir:?}/$d"
done
chroot "$root" depmod "$kver"
# A smaller initramfs with the modules this machine's disks need (virtio, ata, sd, ext4).
cat >>"$root/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
virtio_scsi
virtio_net
ata_piix
ahci
sd_mod
sr_mod
ext4
EOF
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
mount -t proc proc "$root/proc"
chroot "$root" update-initramfs -u -k "$kver" >"$work/initramfs.log" 2>&1 \
  || { tail -n 20 "$work/initramfs.log" >&2; die "update-initramfs failed"; }
umount "$root/proc"
kernel="boot/vmlinuz-$kver"
initrd="boot/initrd.img-$kver"
[ -f "$root/$kernel" ] && [ -f "$root/$initrd" ] || die "kernel or initramfs missing in the image"

log "making the disk"
mkfs.ext4 -q -F -L "$LABEL" -d "$root" "$work/part.img" "$FS_SIZE" || die "mkfs.ext4 failed"
cat >"$work/embed.cfg" <<CFG
set root=(hd0,msdos1)
search --no-floppy --label --set=root $LABEL
linux /$kernel $CMDLINE
initrd /$initrd
boot
CFG
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/embed.cfg" -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2 linux search search_label echo || die "grub-mkimage failed"
part_sectors=$(( $(stat -c %s "$work/part.img") / 512 ))
disk="$work/disk.raw"
truncate -s $(( (2048 + part_sectors) * 512 )) "$disk"
printf 'label: dos\nstart=2048, size=%d, type=83, bootable\n' "$part_sectors" | sfdisk -q "$disk" >/dev/null
dd if="$work/part.img" of="$disk" bs=512 seek=2048 conv=notrunc,sparse status=none
dd if=/usr/lib/grub/i386-pc/boot.img of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none
qemu-img convert -q -c -f raw -O qcow2 "$disk" "$work/out.qcow2" || die "qemu-img convert failed"
mv -f "$work/out.qcow2" "$OUT"
echo "$HASH" >"$OUTDIR/$NAME.sha256"
log "wrote $OUT ($(du -h "$OUT" | awk '{print $1}'), kernel $kver)"
echo "$OUT"
