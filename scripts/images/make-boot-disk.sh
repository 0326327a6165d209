#!/usr/bin/env bash
# Build a BIOS-bootable qcow2 disk holding a kernel + initramfs, without loop devices,
# partition devices or grub-install (none of which work here):
#   MBR (GRUB boot.img) | GRUB core.img in the post-MBR gap | partition 1: ext2 with /boot/{vmlinuz,initrd.img}
# core.img is built with grub-mkimage -O i386-pc and carries an embedded config that
# boots the kernel directly (no `normal` module, no /boot/grub/*.mod needed).
#
# Usage: make-boot-disk.sh --kernel FILE --initrd FILE --out OUT.qcow2
#                          [--cmdline "ARGS"] [--label nepho-boot] [--virtual-size SIZE]
#   --virtual-size  grow the qcow2's virtual size (qemu-img resize syntax, e.g. 1G);
#                   the partition stays small, the rest is unused.
set -euo pipefail

log() { printf '[boot-disk] %s\n' "$*" >&2; }
die() { printf '[boot-disk] ERROR: %s\n' "$*" >&2; exit 1; }

kernel='' initrd='' out='' label=nepho-boot vsize=''
cmdline="console=tty0 console=ttyS0,115200n8"
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernel=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cmdline) cmdline=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    --virtual-size) vsize=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[ -f "$kernel" ] || die "--kernel FILE required"
[ -f "$initrd" ] || die "--initrd FILE required"
[ -n "$out" ] || die "--out FILE required"
GRUBDIR=/usr/lib/grub/i386-pc
[ -f "$GRUBDIR/boot.img" ] || die "$GRUBDIR/boot.img missing (apt-get install grub-pc-bin)"
for b in grub-mkimage sfdisk mke2fs qemu-img; do command -v "$b" >/dev/null || die "$b missing"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/nepho-bootdisk.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- partition contents ---------------------------------------------------------------
mkdir -p "$work/root/boot"
cp "$kernel" "$work/root/boot/vmlinuz"
cp "$initrd" "$work/root/boot/initrd.img"
printf '%s\n' "$cmdline" >"$work/root/boot/cmdline"
# size: contents + 25% + 2 MiB for metadata, in MiB
kib=$(du -sk "$work/root" | awk '{print $1}')
fs_mib=$(( (kib * 5 / 4) / 1024 + 3 ))
mke2fs -q -F -t ext2 -L "$label" -m 0 -E root_owner=0:0 -d "$work/root" "$work/part.img" "${fs_mib}M" >/dev/null \
  || die "mke2fs failed"

# ---- GRUB core.img with an embedded boot script ----------------------------------------
# The embedded config runs in GRUB's rescue parser: only simple commands.
cat >"$work/embed.cfg" <<CFG
set root=(hd0,msdos1)
search --no-floppy --label --set=root $label
linux /boot/vmlinuz $cmdline
initrd /boot/initrd.img
boot
CFG
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/embed.cfg" -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2 linux search search_label echo \
  || die "grub-mkimage failed"
core_bytes=$(stat -c %s "$work/core.img")
(( core_bytes <= 2047 * 512 )) || die "core.img too big ($core_bytes bytes) for the 1 MiB gap"

# ---- assemble the raw disk ---------------------------------------------------------------
part_sectors=$(( fs_mib * 2048 ))
disk="$work/disk.raw"
truncate -s $(( (2048 + part_sectors) * 512 )) "$disk"
printf 'label: dos\nstart=2048, size=%d, type=83, bootable\n' "$part_sectors" \
  | sfdisk -q "$disk" >/dev/null || die "sfdisk failed"
dd if="$work/part.img" of="$disk" bs=512 seek=2048 conv=notrunc status=none
# boot.img: only the first 440 bytes (keep the partition table); its kernel-sector
# field already points at LBA 1, and core.img's blocklist already starts at LBA 2.
dd if="$GRUBDIR/boot.img" of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none

mkdir -p "$(dirname "$out")"
qemu-img convert -q -f raw -O qcow2 "$disk" "$out.tmp.$$" || die "qemu-img convert failed"
if [ -n "$vsize" ]; then qemu-img resize -q -f qcow2 "$out.tmp.$$" "$vsize" >/dev/null; fi
mv -f "$out.tmp.$$" "$out"
log "wrote $out ($(du -h "$out" | awk '{print $1}'), partition ${fs_mib} MiB, core.img ${core_bytes} B)"
