#!/usr/bin/env bash
# Build a vagrant-libvirt box from the tiny guest.
#
# Usage: scripts/images/make-vagrant-box.sh [OUTDIR]   (default /var/cache/nepho-test/images)
# Output: OUTDIR/nepho-tiny-libvirt.box  = tar of box.img (qcow2), metadata.json, Vagrantfile
#         OUTDIR/nepho-tiny-libvirt.box.sha256 (rebuilt only when this script or the tiny guest changed)
#
# The box's initramfs = the tiny guest's initrd.img + an appended cpio overlay (the kernel
# unpacks concatenated archives in order, later files win) that adds:
#   - user `vagrant` with uid 0 (so sudo needs no privilege change) and Vagrant's insecure
#     public key (from the vagrant package's keys/) in /home/vagrant/.ssh/authorized_keys
#   - /usr/bin/sudo: a shim that drops sudo's options and runs the command (we are uid 0)
#   - /bin/bash: a shim running busybox sh (Vagrant's default ssh.shell is `bash -l`)
#   - /sbin/shutdown: a shim mapping `shutdown -h|-r` to busybox poweroff/reboot
#   - /etc/issue mentioning Linux (Vagrant's generic linux guest detection)
# and the kernel command line sets nepho.seed_timeout=1 (a box boots without a seed).
set -euo pipefail

log() { printf '[vagrant-box] %s\n' "$*" >&2; }
die() { printf '[vagrant-box] ERROR: %s\n' "$*" >&2; exit 1; }

OUTDIR=${1:-/var/cache/nepho-test/images}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
BOX="$OUTDIR/nepho-tiny-libvirt.box"

"$HERE/build-tiny-guest.sh" "$OUTDIR" || die "build-tiny-guest.sh failed"

KEY=
for k in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /usr/share/vagrant/keys/vagrant.pub \
         /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
  [ -f "$k" ] && { KEY=$k; break; }
done
[ -n "$KEY" ] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: install vagrant"

HASH=$(cat "$SELF" "$HERE/make-boot-disk.sh" "$OUTDIR/tiny-guest.sha256" "$KEY" | sha256sum | awk '{print $1}')
if [ "${NEPHO_FORCE_REBUILD:-0}" != 1 ] && [ -s "$BOX" ] && [ "$(cat "$BOX.sha256" 2>/dev/null)" = "$HASH" ]; then
  log "up to date: $BOX"
  exit 0
fi
exec 9>"$OUTDIR/.vagrant-box.lock"
flock -w 300 9 || die "timed out waiting for $OUTDIR/.vagrant-box.lock"

work=$(mktemp -d "${TMPDIR:-/tmp}/nepho-vbox.XXXXXX")
trap 'rm -rf "$work"' EXIT
O=$work/overlay
mkdir -p "$O"/{etc,home/vagrant/.ssh,usr/bin,bin,sbin}

# the full files from the base image, plus vagrant
cat >"$O/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
vagrant:x:0:0:vagrant:/home/vagrant:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$O/etc/group" <<'P'
root:x:0:vagrant
vagrant:x:0:
nogroup:x:65534:
P
cat >"$O/etc/shadow" <<'P'
root:*:19000:0:99999:7:::
vagrant:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
P
chmod 0600 "$O/etc/shadow"
printf '/bin/sh\n/bin/ash\n/bin/bash\n' >"$O/etc/shells"
echo nepho-tiny-vagrant >"$O/etc/hostname"
# Vagrant's generic `linux` guest is detected from /etc/issue (os-release ID is nepho-tiny)
printf 'nepho tiny test guest (busybox, Linux) \\n \\l\n\n' >"$O/etc/issue"
install -m 0600 "$KEY" "$O/home/vagrant/.ssh/authorized_keys"
chmod 0700 "$O/home/vagrant/.ssh"

cat >"$O/usr/bin/sudo" <<'S'
#!/bin/sh
# sudo shim for the nepho tiny guest: every login is already uid 0.
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -u|-g|-p|-C|-D|-h|-r|-t|-U|-T) shift 2 ;;
    -i|-s) shift; [ $# -eq 0 ] && exec /bin/sh -l ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -eq 0 ] && exec /bin/sh -l
exec "$@"
S
cat >"$O/bin/bash" <<'S'
#!/bin/sh
# bash shim: busybox ash understands most of what Vagrant sends
exec /bin/sh "$@"
S
cat >"$O/sbin/shutdown" <<'S'
#!/bin/sh
# shutdown shim: -r reboots, anything else powers off
for a in "$@"; do [ "$a" = -r ] && exec /sbin/reboot; done
exec /sbin/poweroff
S
chmod 0755 "$O/usr/bin/sudo" "$O/bin/bash" "$O/sbin/shutdown"
# OpenSSH scp (needs only libc, already in the guest): Vagrant uploads shell provisioners with scp.
[ -x /usr/bin/scp ] || die "/usr/bin/scp not found: apt-get install openssh-client"
install -m 0755 /usr/bin/scp "$O/usr/bin/scp"

( cd "$O" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) | gzip -6 >"$work/overlay.cpio.gz"
cat "$OUTDIR/initrd.img" "$work/overlay.cpio.gz" >"$work/initrd.img"

CMDLINE="$(cat "$OUTDIR/cmdline") nepho.seed_timeout=1"
mkdir -p "$work/box"
"$HERE/make-boot-disk.sh" --kernel "$OUTDIR/vmlinuz" --initrd "$work/initrd.img" \
  --cmdline "$CMDLINE" --virtual-size 1G --out "$work/box/box.img"
cat >"$work/box/metadata.json" <<'J'
{"provider":"libvirt","format":"qcow2","virtual_size":1}
J
cat >"$work/box/Vagrantfile" <<'V'
# Defaults of the nepho tiny test box (busybox + dropbear; vagrant is uid 0).
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.insert_key = false
  config.ssh.username = "vagrant"
  config.ssh.shell = "sh -l"
  config.vm.guest = :linux
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "qemu"
    libvirt.memory = 256
    libvirt.cpus = 1
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
    libvirt.graphics_type = "none"
    libvirt.video_type = "none"
    libvirt.management_network_keep = true
  end
end
V
tar -cf "$work/box.tar" -C "$work/box" metadata.json Vagrantfile box.img
mv -f "$work/box.tar" "$BOX"
echo "$HASH" >"$BOX.sha256"
log "wrote $BOX ($(du -h "$BOX" | awk '{print $1}'))"
