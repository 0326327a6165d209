#!/usr/bin/env bash
# Build a vagrant-libvirt box from the Debian 12 test image (build-debian-image.sh), so one
# Vagrant end-to-end test boots a real distribution: systemd, OpenSSH, real sudo and bash,
# cloud-init. No second debootstrap and no mount: the image's ext4 root is edited in place
# with `debugfs -w` (through e2fsprogs' `FILE?offset=N` io option) in a raw copy of the disk.
#
# Usage: scripts/images/make-debian-vagrant-box.sh [OUTDIR]   (default /var/cache/nepho-test/images)
# Output: OUTDIR/nepho-debian-12-libvirt.box  = tar of box.img (compressed qcow2), metadata.json,
#                                               Vagrantfile
#         OUTDIR/nepho-debian-12-libvirt.box.sha256 (rebuilt only when this script, the Debian
#         image's hash or Vagrant's insecure key changed; NEPHO_FORCE_REBUILD=1 rebuilds anyway)
#
# What the box adds to debian-12.qcow2:
#   - user and group `vagrant` (1000:1000, /home/vagrant, /bin/bash, password `*`: no password
#     login, key login works) in /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow, which keep
#     their modes and owners;
#   - /home/vagrant (0750, from /etc/skel) with .ssh (0700) and Vagrant's insecure public key
#     (from the vagrant package's keys/) as authorized_keys (0600);
#   - /etc/sudoers.d/vagrant: `vagrant ALL=(ALL) NOPASSWD:ALL` (0440 root);
#   - 1 GiB more (sparse) virtual disk: the image is 4 GiB + the 1 MiB before its partition,
#     and vagrant-libvirt gives the machine exactly metadata.json's virtual_size (whole GiB),
#     which must not cut the end off the filesystem.
# Under vagrant-libvirt there is no seed: cloud-init (datasource_list [NoCloud, None]) falls
# back to datasource None, DHCP on eth0 and host keys of the machine's own.
set -euo pipefail

log() { printf '[debian-vagrant-box] %s\n' "$*" >&2; }
die() { printf '[debian-vagrant-box] ERROR: %s\n' "$*" >&2; exit 1; }

OUTDIR=${1:-/var/cache/nepho-test/images}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
BOX="$OUTDIR/nepho-debian-12-libvirt.box"
IMAGE="$OUTDIR/debian-12.qcow2"
VAGRANT_UID=1000

"$HERE/build-debian-image.sh" "$OUTDIR" >/dev/null || die "build-debian-image.sh failed"
[ -s "$IMAGE" ] && [ -s "$OUTDIR/debian-12.sha256" ] || die "$IMAGE or its hash is missing"

KEY=
for k in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /usr/share/vagrant/keys/vagrant.pub \
         /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
  [ -f "$k" ] && { KEY=$k; break; }
done
[ -n "$KEY" ] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: install vagrant"

HASH=$(cat "$SELF" "$OUTDIR/debian-12.sha256" "$KEY" | sha256sum | awk '{print $1}')
up_to_date() {
  [ "${NEPHO_FORCE_REBUILD:-0}" != 1 ] && [ -s "$BOX" ] && [ "$(cat "$BOX.sha256" 2>/dev/null)" = "$HASH" ]
}
if up_to_date; then
  log "up to date: $BOX"
  exit 0
fi
exec 9>"$OUTDIR/.debian-vagrant-box.lock"
flock -w 900 9 || die "timed out waiting for $OUTDIR/.debian-vagrant-box.lock"
# Another build may have finished while this one waited.
if [ "${NEPHO_FORCE_REBUILD:-0}" != 1 ] && [ -s "$BOX" ] && [ "$(cat "$BOX.sha256" 2>/dev/null)" = "$HASH" ]; then
  log "up to date: $BOX"
  exit 0
fi

need=()
command -v debugfs >/dev/null || need+=(e2fsprogs)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

started=$SECONDS
# Beside the image, not in /tmp: the raw disk is a few GiB (sparse).
work=$(mktemp -d "$OUTDIR/.debian-vbox.XXXXXX")
trap 'rm -rf "$work"' EXIT
disk="$work/disk.raw"
qemu-img convert -q -f qcow2 -O raw "$IMAGE" "$disk" || die "qemu-img convert to raw failed"

# The root filesystem: partition 1 (sector 2048 as build-debian-image.sh makes it).
start=$(sfdisk -d "$disk" | sed -nE 's/^[^:]*1 : start= *([0-9]+),.*/\1/p')
[ -n "$start" ] || die "no partition 1 in $IMAGE"
FS="$disk?offset=$(( start * 512 ))"
[ "$(debugfs -R 'stats -h' "$FS" 2>/dev/null | sed -nE 's/^Filesystem volume name: *//p')" = nepho-root ] \
  || die "partition 1 of $IMAGE is not the nepho-root filesystem"

# Runs debugfs commands from stdin; any error message fails the build (debugfs exits 0).
debugfs_w() {
  debugfs -w -f - "$FS" >"$work/debugfs.out" 2>"$work/debugfs.err" || die "debugfs failed"
  if grep -v '^debugfs [0-9]' "$work/debugfs.err" >&2; then die "debugfs reported errors"; fi
}
# "MODE UID GID" of a file, MODE with its type bits (as set_inode_field wants it).
inode_meta() {
  debugfs -R "stat $1" "$FS" 2>/dev/null | awk '
    /Type: regular/ { t = "0100" } /Type: directory/ { t = "040" }
    /Mode:/ { for (i = 1; i <= NF; i++) if ($i == "Mode:") m = substr($(i + 1), length($(i + 1)) - 2) }
    /^User:/ { u = $2; g = $4 }
    END { if (t != "" && m != "") print t m, u, g }'
}
cat_file() { debugfs -R "cat $1" "$FS" 2>/dev/null; }

for f in passwd shadow group gshadow; do
  cat_file "/etc/$f" >"$work/$f"
  [ -s "$work/$f" ] || die "/etc/$f is empty or missing in the image"
  ! grep -q '^vagrant:' "$work/$f" || die "/etc/$f already has a vagrant entry"
  read -r mode uid gid < <(inode_meta "/etc/$f") || die "cannot stat /etc/$f"
  printf '%s %s %s\n' "$mode" "$uid" "$gid" >"$work/$f.meta"
done
! cut -d: -f3 "$work/passwd" | grep -qx "$VAGRANT_UID" || die "uid $VAGRANT_UID is taken in the image"
! cut -d: -f3 "$work/group" | grep -qx "$VAGRANT_UID" || die "gid $VAGRANT_UID is taken in the image"
echo "vagrant:x:$VAGRANT_UID:$VAGRANT_UID:vagrant:/home/vagrant:/bin/bash" >>"$work/passwd"
echo "vagrant:*:$(( $(date +%s) / 86400 )):0:99999:7:::" >>"$work/shadow"
echo "vagrant:x:$VAGRANT_UID:" >>"$work/group"
echo "vagrant:!::" >>"$work/gshadow"
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$work/sudoers"
for f in .bashrc .profile .bash_logout; do cat_file "/etc/skel/$f" >"$work/skel$f"; done

{
  for f in passwd shadow group gshadow; do
    read -r mode uid gid <"$work/$f.meta"
    printf 'rm /etc/%s\nwrite %s /etc/%s\n' "$f" "$work/$f" "$f"
    printf 'sif /etc/%s mode %s\nsif /etc/%s uid %s\nsif /etc/%s gid %s\n' "$f" "$mode" "$f" "$uid" "$f" "$gid"
  done
  own() { printf 'sif %s mode %s\nsif %s uid %s\nsif %s gid %s\n' "$1" "$2" "$1" "$3" "$1" "$3"; }
  echo "mkdir /home/vagrant"; own /home/vagrant 040750 "$VAGRANT_UID"
  for f in .bashrc .profile .bash_logout; do
    echo "write $work/skel$f /home/vagrant/$f"; own "/home/vagrant/$f" 0100644 "$VAGRANT_UID"
  done
  echo "mkdir /home/vagrant/.ssh"; own /home/vagrant/.ssh 040700 "$VAGRANT_UID"
  echo "write $KEY /home/vagrant/.ssh/authorized_keys"
  own /home/vagrant/.ssh/authorized_keys 0100600 "$VAGRANT_UID"
  echo "write $work/sudoers /etc/sudoers.d/vagrant"; own /etc/sudoers.d/vagrant 0100440 0
} | debugfs_w

# What was written is what the box needs, and the filesystem is clean.
cat_file /etc/passwd | grep -qx "vagrant:x:$VAGRANT_UID:$VAGRANT_UID:vagrant:/home/vagrant:/bin/bash" \
  || die "the vagrant user is not in /etc/passwd"
cmp -s <(cat_file /home/vagrant/.ssh/authorized_keys) "$KEY" || die "authorized_keys differs from $KEY"
for check in "/etc/shadow $(cat "$work/shadow.meta")" "/etc/sudoers.d/vagrant 0100440 0 0" \
             "/home/vagrant/.ssh 040700 $VAGRANT_UID $VAGRANT_UID" \
             "/home/vagrant/.ssh/authorized_keys 0100600 $VAGRANT_UID $VAGRANT_UID"; do
  read -r path want <<<"$check"
  [ "$(inode_meta "$path")" = "$want" ] || die "$path is $(inode_meta "$path"), not $want"
done
e2fsck -fn "$FS" >"$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log" >&2; die "e2fsck -fn found problems"; }

# Whole GiB for metadata.json's virtual_size, at least the image's size (see the header).
gib=$(( ($(stat -c %s "$disk") + (1 << 30) - 1) / (1 << 30) ))
truncate -s "$(( gib << 30 ))" "$disk"
mkdir -p "$work/box"
qemu-img convert -q -c -f raw -O qcow2 "$disk" "$work/box/box.img" || die "qemu-img convert to qcow2 failed"
rm -f "$disk"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$gib" >"$work/box/metadata.json"
cat >"$work/box/Vagrantfile" <<'V'
# Defaults of the nepho Debian 12 test box (systemd, OpenSSH, sudo, cloud-init without a seed).
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.insert_key = false
  config.ssh.username = "vagrant"
  # A whole distribution under TCG (no KVM) takes minutes to reach ssh on a busy host.
  config.vm.boot_timeout = 900
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "qemu"
    libvirt.memory = 768
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
log "wrote $BOX ($(du -h "$BOX" | awk '{print $1}'), ${gib} GiB virtual, $(( SECONDS - started )) s)"
