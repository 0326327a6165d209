#!/usr/bin/env bash
# Install every Debian package the KVM / iSCSI / Vagrant provider tests need.
# Idempotent: packages already installed are skipped; when everything is there
# it returns in well under a second without touching apt.
#
# Usage: scripts/setup/packages.sh [--no-vagrant]
#   --no-vagrant   skip vagrant + vagrant-libvirt (saves ~100 MB when only KVM tests run)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { printf '[packages] %s\n' "$*" >&2; }
die() { printf '[packages] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

with_vagrant=1
for a in "$@"; do
  case "$a" in
    --no-vagrant) with_vagrant=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown argument: $a" ;;
  esac
done

# Packages installed with --no-install-recommends.
PKGS=(
  # libvirt (monolithic libvirtd 9.0 in bookworm) + NAT network
  libvirt-daemon-system libvirt-clients dnsmasq-base iptables
  # iSCSI target (userspace; LIO is impossible here: no configfs/target modules)
  tgt
  # tiny guest: kernel, busybox, dropbear, tooling to assemble the initramfs + disk
  linux-image-amd64 busybox-static dropbear-bin kmod cpio
  # sftp-server copied into the guest so scp/sftp (OpenSSH 9 scp speaks SFTP) work
  openssh-sftp-server
  # bootable disk: partition table, ext2 via mke2fs -d, GRUB i386-pc embedded by hand
  fdisk e2fsprogs grub-pc-bin grub-common
  # NoCloud seed ISOs
  genisoimage cloud-image-utils
  # host side of the smoke tests; sshd on loopback for the qemu+ssh:// remote-host test
  openssh-client openssh-server procps iproute2 coreutils util-linux
  # the registry web site's browser test (headless, driven over WebDriver on 127.0.0.1)
  chromium chromium-driver
)
OPTIONAL_PKGS=(libvirt-daemon-driver-storage-iscsi-direct)
if [ "$with_vagrant" = 1 ]; then
  PKGS+=(vagrant vagrant-libvirt)
fi

installed() { # pkg -> 0 if installed
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}
installed_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2}'; }

lists_fresh=0
apt_update() {
  [ "$lists_fresh" = 1 ] && return 0
  log "apt-get update"
  apt-get update -qq >&2 || die "apt-get update failed"
  lists_fresh=1
}

# ---- QEMU: bookworm's 7.2, with qemu-utils pinned to the same version -------------
# The base image ships qemu-utils 10.0 from backports, which conflicts with bookworm's
# qemu-system-x86; install all three at the qemu-system-x86 candidate version.
qemu_ok=1
for p in qemu-system-x86 qemu-block-extra qemu-utils; do installed "$p" || qemu_ok=0; done
if [ "$qemu_ok" = 1 ]; then
  v=$(installed_version qemu-system-x86)
  for p in qemu-block-extra qemu-utils; do
    [ "$(installed_version "$p")" = "$v" ] || qemu_ok=0
  done
fi
if [ "$qemu_ok" = 1 ]; then
  log "qemu-system-x86 $(installed_version qemu-system-x86) already installed"
else
  apt_update
  v=$(candidate qemu-system-x86)
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "no candidate for qemu-system-x86"
  log "installing qemu-system-x86/qemu-block-extra/qemu-utils = $v"
  apt-get install -y -q --no-install-recommends --allow-downgrades \
    "qemu-system-x86=$v" "qemu-block-extra=$v" "qemu-utils=$v" >&2 \
    || die "QEMU install failed"
fi

# ---- everything else ----------------------------------------------------------------
missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${OPTIONAL_PKGS[@]}"; do
  installed "$p" && continue
  if [ "$lists_fresh" = 0 ] && [ -z "$(candidate "$p")" ]; then apt_update; fi
  c=$(candidate "$p")
  if [ -n "$c" ] && [ "$c" != "(none)" ]; then missing+=("$p")
  else log "optional package $p not available, skipping"; fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  log "all packages already installed"
else
  apt_update
  log "installing: ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || die "apt-get install failed"
fi

# ---- sanity --------------------------------------------------------------------------
for b in qemu-system-x86_64 qemu-img virsh libvirtd virtlogd tgtd tgtadm grub-mkimage \
         sfdisk mke2fs genisoimage dropbear dropbearkey ssh ssh-keygen cpio chromium chromedriver; do
  command -v "$b" >/dev/null || die "expected binary $b missing after install"
done
ls /boot/vmlinuz-* >/dev/null 2>&1 || die "no /boot/vmlinuz-* (linux-image-amd64)"
[ -x /bin/busybox ] || die "/bin/busybox missing"
[ -f /usr/lib/grub/i386-pc/boot.img ] || die "/usr/lib/grub/i386-pc/boot.img missing"
if [ "$with_vagrant" = 1 ]; then command -v vagrant >/dev/null || die "vagrant missing"; fi
log "ok"
