#!/usr/bin/env bash
# Build the tiny test guest: Debian's kernel + a busybox/dropbear initramfs that reads a
# NoCloud seed (label `cidata`), installs the ssh key, starts sshd and runs the provisioner.
#
# Usage: scripts/images/build-tiny-guest.sh [OUTDIR]      (default /var/cache/nepho-test/images)
#
# Outputs in OUTDIR:
#   tiny-guest.qcow2   BIOS-bootable disk (MBR + GRUB + ext2 partition with kernel+initramfs);
#                      use it like a cloud image (qcow2 overlay, or raw copy onto an iSCSI LUN)
#   vmlinuz, initrd.img, cmdline   for direct kernel boot (<os><kernel/><initrd/><cmdline/>)
#   tiny-guest.sha256  hash of this script + make-boot-disk.sh + input package versions;
#                      the build is skipped when it matches and all outputs exist.
# Env: NEPHO_FORCE_REBUILD=1 to rebuild anyway.
#
# Guest behaviour (see docs/test-infra.md for the seed contract):
#   PID 1 is busybox init; /etc/init.d/rcS loads virtio/cdrom/iso9660/... modules with insmod,
#   mounts the seed, sets the hostname, brings up lo + eth* with udhcpc, installs
#   nepho/authorized_keys for root, starts dropbear on :22, then runs nepho/provision.sh in
#   the background (log /var/log/nepho-provision.log, exit code -> /run/nepho/provision.rc).
#   The ACPI power button (virsh shutdown) powers the guest off via busybox acpid.
#   Kernel command line knobs: nepho.seed_timeout=SECONDS (default 10), nepho.debug=1.
set -euo pipefail

log() { printf '[tiny-guest] %s\n' "$*" >&2; }
die() { printf '[tiny-guest] ERROR: %s\n' "$*" >&2; exit 1; }

OUTDIR=${1:-/var/cache/nepho-test/images}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
BOOTDISK="$HERE/make-boot-disk.sh"
CMDLINE="console=tty0 console=ttyS0,115200n8 panic=-1"

# ---- inputs -------------------------------------------------------------------------------
KVER=${NEPHO_TINY_KVER:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -n1)}
[ -n "$KVER" ] || die "no /boot/vmlinuz-* : run scripts/setup/packages.sh (linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER
[ -r "$KERNEL" ] || die "$KERNEL not readable"
[ -f "$MODDIR/modules.dep" ] || die "$MODDIR/modules.dep missing"
[ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"
if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is not static (install busybox-static)"; fi
DROPBEAR=$(command -v dropbear || echo /usr/sbin/dropbear)
DROPBEARKEY=$(command -v dropbearkey || echo /usr/bin/dropbearkey)
[ -x "$DROPBEAR" ] && [ -x "$DROPBEARKEY" ] || die "dropbear missing (dropbear-bin)"
SFTP=/usr/lib/openssh/sftp-server   # optional

pkgver() { dpkg-query -W -f='${Package}=${Version} ' "$@" 2>/dev/null || true; }
HASH=$( {
  cat "$SELF" "$BOOTDISK"
  echo "$KVER"
  pkgver busybox-static dropbear-bin openssh-sftp-server grub-pc-bin "linux-image-$KVER"
} | sha256sum | awk '{print $1}')

OUTPUTS=(tiny-guest.qcow2 vmlinuz initrd.img cmdline)
up_to_date() {
  local f
  [ -f "$OUTDIR/tiny-guest.sha256" ] && [ "$(cat "$OUTDIR/tiny-guest.sha256")" = "$HASH" ] || return 1
  for f in "${OUTPUTS[@]}"; do [ -s "$OUTDIR/$f" ] || return 1; done
}

mkdir -p "$OUTDIR"
if [ "${NEPHO_FORCE_REBUILD:-0}" != 1 ] && up_to_date; then
  log "up to date: $OUTDIR/tiny-guest.qcow2"
  exit 0
fi
# serialise concurrent builds into the same OUTDIR
exec 9>"$OUTDIR/.tiny-guest.lock"
flock -w 300 9 || die "timed out waiting for $OUTDIR/.tiny-guest.lock"
if [ "${NEPHO_FORCE_REBUILD:-0}" != 1 ] && up_to_date; then
  log "up to date (built by a concurrent run): $OUTDIR/tiny-guest.qcow2"
  exit 0
fi

t_start=$(date +%s.%N)
work=$(mktemp -d "${TMPDIR:-/tmp}/nepho-tiny.XXXXXX")
trap 'rm -rf "$work"' EXIT
R=$work/root
log "building tiny guest (kernel $KVER) in $work"

mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/lib,etc/init.d,etc/dropbear,etc/acpi/PWRF,dev,proc,sys,run,tmp,var/log,root,home,lib64,lib/x86_64-linux-gnu,usr/share/udhcpc,mnt}
chmod 1777 "$R/tmp"
chmod 0700 "$R/root"
ln -s ../run "$R/var/run"

# ---- busybox + applet links ------------------------------------------------------------------
cp /bin/busybox "$R/bin/busybox"
/bin/busybox --list-full | while read -r p; do
  [ "$p" = bin/busybox ] && continue
  mkdir -p "$R/$(dirname "$p")"
  [ -e "$R/$p" ] || ln -s /bin/busybox "$R/$p"
done
ln -sf /bin/busybox "$R/init"   # kernel runs /init -> busybox init applet (argv0 "init")

# ---- dropbear (+ shared libs), optional sftp-server ---------------------------------------
copy_with_libs() { # src dst-in-root
  local src=$1 dst=$2 lib
  install -D -m 0755 "$src" "$R$dst"
  for lib in $(ldd "$src" | awk '/=> \//{print $3} /^[[:space:]]*\/lib/{print $1}'); do
    [ -e "$R$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$R$lib"
  done
}
copy_with_libs "$DROPBEAR" /usr/sbin/dropbear
copy_with_libs "$DROPBEARKEY" /usr/bin/dropbearkey
if [ -x "$SFTP" ]; then
  copy_with_libs "$SFTP" /usr/lib/sftp-server   # dropbear's compiled-in sftp path
  ln -s /usr/lib/sftp-server "$R/usr/lib/openssh-sftp-server" 2>/dev/null || true
else
  log "note: $SFTP not found; guest will have no sftp (install openssh-sftp-server)"
fi
# dynamic loader
[ -e "$R/lib64/ld-linux-x86-64.so.2" ] || install -D -m 0755 "$(readlink -f /lib64/ld-linux-x86-64.so.2)" "$R/lib64/ld-linux-x86-64.so.2"

# host keys, generated per build (every tiny guest from this build shares them)
for t in ed25519 ecdsa rsa; do
  "$DROPBEARKEY" -t "$t" -f "$R/etc/dropbear/dropbear_${t}_host_key" >/dev/null 2>&1 \
    || die "dropbearkey -t $t failed"
done

# ---- kernel modules (insmod order computed from modules.dep) -----------------------------------
WANT=(
  virtio_pci virtio_net virtio_blk virtio_scsi virtio_console virtio-rng virtio_balloon
  ata_piix ahci sr_mod sd_mod cdrom isofs vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859-1
  button evdev
)
declare -A seen=()
order=()
modpath() { # name -> relative path from modules.dep (names may use - or _)
  local re=${1//[-_]/[-_]}
  { grep -m1 -E "/${re}\.ko(\.xz|\.zst|\.gz)?:" "$MODDIR/modules.dep" || true; } | cut -d: -f1
}
add_mod() { # relative path
  local rel=$1 deps i arr
  [ -n "${seen[$rel]:-}" ] && return 0
  deps=$({ grep -m1 "^$rel:" "$MODDIR/modules.dep" || true; } | cut -d: -f2)
  # modules.dep lists deps so that the last one must be loaded first
  read -ra arr <<<"$deps"
  for (( i=${#arr[@]}-1; i>=0; i-- )); do add_mod "${arr[$i]}"; done
  seen[$rel]=1
  order+=("$rel")
}
for m in "${WANT[@]}"; do
  rel=$(modpath "$m")
  if [ -z "$rel" ]; then
    grep -qE "/${m//-/[-_]}\.ko" "$MODDIR/modules.builtin" 2>/dev/null \
      && { log "module $m is built in"; continue; }
    log "warning: module $m not found for $KVER, skipping"; continue
  fi
  add_mod "$rel"
done
: >"$R/etc/modules.order"
for rel in "${order[@]}"; do
  dst="/lib/modules/$KVER/${rel%.xz}"; dst=${dst%.zst}; dst=${dst%.gz}
  mkdir -p "$R$(dirname "$dst")"
  case "$rel" in
    *.ko.xz)  xz -dc "$MODDIR/$rel" >"$R$dst" ;;
    *.ko.zst) zstd -qdc "$MODDIR/$rel" >"$R$dst" ;;
    *.ko.gz)  gzip -dc "$MODDIR/$rel" >"$R$dst" ;;
    *)        cp "$MODDIR/$rel" "$R$dst" ;;
  esac
  echo "$dst" >>"$R/etc/modules.order"
done
log "${#order[@]} modules"

# ---- /etc -----------------------------------------------------------------------------------
cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
# '*' = no password login possible, but the account is not "locked" ('!'), which
# dropbear would refuse even for public-key logins.
cat >"$R/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
chmod 0600 "$R/etc/shadow"
printf '/bin/sh\n/bin/ash\n' >"$R/etc/shells"
echo nepho-tiny >"$R/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$R/etc/hosts"
: >"$R/etc/resolv.conf"
cat >"$R/etc/os-release" <<EOF
NAME="nepho tiny guest"
ID=nepho-tiny
ID_LIKE=debian
PRETTY_NAME="nepho tiny test guest (busybox + dropbear, Debian kernel $KVER)"
VERSION_ID=1
EOF
cat >"$R/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=${HOME:-/root}
PS1='\h:\w\$ '
EOF

cat >"$R/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
::restart:/sbin/init
EOF

# udhcpc event script: Debian's busybox udhcpc does nothing without one.
cat >"$R/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# busybox udhcpc event script: $1 = deconfig|bound|renew|leasefail|nak
[ -n "$interface" ] || exit 0
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface" 2>/dev/null
    ip link set "$interface" up
    ;;
  bound|renew)
    old=$(cat /run/nepho/ip."$interface" 2>/dev/null)
    if [ "$old" != "$ip" ]; then
      ip -4 addr flush dev "$interface" 2>/dev/null
    fi
    ip addr replace "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    if [ -n "$router" ] && ! ip -4 route show default | grep -q .; then
      for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    if [ -n "$dns" ]; then
      { [ -n "$domain" ] && echo "search $domain"; for d in $dns; do echo "nameserver $d"; done; } >/etc/resolv.conf
    fi
    mkdir -p /run/nepho
    echo "$ip" >/run/nepho/ip."$interface"
    echo "nepho: [$(cut -d" " -f1 /proc/uptime)] $interface $1 $ip/${mask:-24} router=${router:-none}" >/dev/console
    ;;
  leasefail|nak)
    echo "nepho: udhcpc $1 on $interface" >/dev/console
    ;;
esac
exit 0
EOF
chmod 0755 "$R/usr/share/udhcpc/default.script"
mkdir -p "$R/etc/udhcpc"
ln -s /usr/share/udhcpc/default.script "$R/etc/udhcpc/default.script"

# ACPI power button -> clean poweroff (busybox acpid maps KEY_POWER to PWRF/00000080)
cat >"$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "nepho: power button pressed, powering off" >/dev/console
exec /sbin/poweroff
EOF
chmod 0755 "$R/etc/acpi/PWRF/00000080"

cat >"$R/etc/init.d/rcK" <<'EOF'
#!/bin/sh
echo "nepho: shutting down" >/dev/console
[ -f /run/dropbear.pid ] && kill "$(cat /run/dropbear.pid)" 2>/dev/null
for f in /run/udhcpc.*.pid; do [ -f "$f" ] && kill -USR2 "$(cat "$f")" 2>/dev/null; done
sync
umount /run/nepho/seed 2>/dev/null
exit 0
EOF
chmod 0755 "$R/etc/init.d/rcK"

cat >"$R/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# nepho tiny guest boot script (run once by busybox init)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
say() { echo "nepho: [$(cut -d" " -f1 /proc/uptime)] $*" >/dev/console; }

[ -e /proc/mounts ] || mount -t proc proc /proc
mounted() { grep -q "^[^ ]* $1 " /proc/mounts; }
mounted /sys  || mount -t sysfs sysfs /sys
mounted /dev  || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mounted /dev/pts || mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mounted /run || mount -t tmpfs -o mode=0755,nosuid tmpfs /run
mounted /tmp || mount -t tmpfs -o mode=1777,nosuid tmpfs /tmp
mkdir -p /run/nepho /run/nepho/seed /var/log
dmesg -n 4 2>/dev/null

seed_timeout=10 debug=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    nepho.seed_timeout=*) seed_timeout=${arg#*=} ;;
    nepho.debug=*) debug=${arg#*=} ;;
  esac
done
[ "$debug" = 1 ] && set -x

say "boot: uptime $(cut -d' ' -f1 /proc/uptime)s, loading modules"
while read -r m; do insmod "$m" 2>/dev/null; done </etc/modules.order

hostname "$(cat /etc/hostname)"

# ---- NoCloud seed -------------------------------------------------------------------------
# a CD or disk labelled cidata carrying meta-data (and, for this guest, nepho/*)
SEED=/run/nepho/seed
found=
try_seed() {
  [ -b "$1" ] || return 1
  mount -r "$1" "$SEED" 2>/dev/null || return 1
  if [ -f "$SEED/meta-data" ] || [ -d "$SEED/nepho" ]; then found=$1; return 0; fi
  umount "$SEED" 2>/dev/null
  return 1
}
end=$(( $(cut -d. -f1 /proc/uptime) + seed_timeout ))
while :; do
  d=$(findfs LABEL=cidata 2>/dev/null) && try_seed "$d" && break
  d=$(findfs LABEL=CIDATA 2>/dev/null) && try_seed "$d" && break
  for d in /dev/sr0 /dev/sr1 /dev/vd[b-z] /dev/sd[a-z] /dev/vda; do
    try_seed "$d" && break 2
  done
  [ "$(cut -d. -f1 /proc/uptime)" -ge "$end" ] && break
  sleep 0.25
done

metaval() { # key -> value from a simple YAML/JSON meta-data file
  sed -n -e "s/^[[:space:]{,]*\"\{0,1\}$1\"\{0,1\}[[:space:]]*:[[:space:]]*//p" "$SEED/meta-data" 2>/dev/null \
    | head -n1 | sed -e 's/[[:space:]]*[,}][[:space:]]*$//' -e 's/^["'\'']//' -e 's/["'\'']$//' -e 's/[[:space:]]*$//'
}
if [ -n "$found" ]; then
  say "seed found on $found"
  iid=$(metaval instance-id)
  [ -n "$iid" ] && echo "$iid" >/run/nepho/instance-id
  h=$(metaval local-hostname)
  [ -f "$SEED/nepho/hostname" ] && h=$(head -n1 "$SEED/nepho/hostname" | tr -d ' \r\t')
  if [ -n "$h" ]; then hostname "$h"; echo "$h" >/etc/hostname; fi
  mkdir -p /root/.ssh && chmod 0700 /root/.ssh
  if [ -f "$SEED/nepho/authorized_keys" ]; then
    cp "$SEED/nepho/authorized_keys" /root/.ssh/authorized_keys
  elif [ -f "$SEED/user-data" ]; then
    # fallback: "ssh_authorized_keys:" list items in a #cloud-config
    awk '/^[[:space:]]*ssh_authorized_keys:/{f=1;next} f&&/^[[:space:]]*-[[:space:]]/{sub(/^[[:space:]]*-[[:space:]]*/,"");gsub(/^["'\'']|["'\'']$/,"");print;next} f&&/^[^[:space:]-]/{f=0}' \
      "$SEED/user-data" >/root/.ssh/authorized_keys
  fi
  [ -f /root/.ssh/authorized_keys ] && chmod 0600 /root/.ssh/authorized_keys
else
  say "no seed (label cidata) found after ${seed_timeout}s"
fi
h=$(hostname)
grep -q " $h\$" /etc/hosts || echo "127.0.1.1 $h" >>/etc/hosts

# ---- swap -----------------------------------------------------------------------------------
# nepho gives a machine swap as a virtio disk with serial nepho-swap (a file on the host's own
# storage, blank after a move to another host): made into swap at every boot.
for b in /sys/block/vd*; do
  [ "$(cat "$b/serial" 2>/dev/null)" = nepho-swap ] || continue
  d=/dev/${b##*/}
  if swapon "$d" 2>/dev/null || { mkswap "$d" >/dev/null 2>&1 && swapon "$d"; }; then
    say "swap on $d"
  else
    say "swap on $d failed"
  fi
done

# ---- network ------------------------------------------------------------------------------
ip link set lo up
for n in /sys/class/net/eth*; do
  [ -e "$n" ] || continue
  i=${n##*/}
  ip link set "$i" up
  # -b: go on in the background if there is no lease yet; keeps renewing afterwards
  udhcpc -i "$i" -s /usr/share/udhcpc/default.script -p /run/udhcpc."$i".pid \
    -x hostname:"$h" -t 20 -T 1 -A 5 -b >/dev/null 2>&1
done

# ---- ssh -------------------------------------------------------------------------------------
keys=
for k in /etc/dropbear/dropbear_*_host_key; do keys="$keys -r $k"; done
# -s: no password logins
dropbear $keys -p 22 -s -P /run/dropbear.pid
i=0
while ! netstat -ltn 2>/dev/null | grep -q ':22 '; do
  i=$((i+1)); [ $i -gt 50 ] && { say "dropbear did not start"; break; }
  sleep 0.1
done
say "ssh ready: hostname $h, eth0 $(cat /run/nepho/ip.eth0 2>/dev/null || echo none), uptime $(cut -d' ' -f1 /proc/uptime)s"

# ---- ACPI power button ------------------------------------------------------------------------
acpid -c /etc/acpi -l /var/log/acpid.log 2>/dev/null || say "acpid failed to start"

# ---- provisioner -----------------------------------------------------------------------------
# /run/nepho/provision.rc appears only when the provisioner has finished (atomic rename).
if [ -n "$found" ] && [ -f "$SEED/nepho/provision.sh" ]; then
  (
    cd /root
    NEPHO_SEED_DIR=$SEED /bin/sh "$SEED/nepho/provision.sh" >/var/log/nepho-provision.log 2>&1 </dev/null
    rc=$?
    echo "$rc" >/run/nepho/provision.rc.tmp && mv /run/nepho/provision.rc.tmp /run/nepho/provision.rc
    echo "nepho: provision finished rc=$rc" >/dev/console
  ) &
else
  : >/var/log/nepho-provision.log
  echo 0 >/run/nepho/provision.rc.tmp && mv /run/nepho/provision.rc.tmp /run/nepho/provision.rc
  say "no provisioner; provision.rc=0"
fi
exit 0
EOF
chmod 0755 "$R/etc/init.d/rcS"

# ---- pack -------------------------------------------------------------------------------------
( cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) | gzip -6 >"$work/initrd.img" \
  || die "cpio failed"
cp "$KERNEL" "$work/vmlinuz"
echo "$CMDLINE" >"$work/cmdline"
"$BOOTDISK" --kernel "$work/vmlinuz" --initrd "$work/initrd.img" --cmdline "$CMDLINE" \
  --out "$work/tiny-guest.qcow2"

# ---- publish atomically (each file renamed into place; hash last) --------------------------
rm -f "$OUTDIR/tiny-guest.sha256"
for f in "${OUTPUTS[@]}"; do
  cp "$work/$f" "$OUTDIR/.$f.new" && mv -f "$OUTDIR/.$f.new" "$OUTDIR/$f"
done
echo "$HASH" >"$OUTDIR/tiny-guest.sha256"
t_end=$(date +%s.%N)
log "done in $(awk -v a="$t_start" -v b="$t_end" 'BEGIN{printf "%.1f", b-a}')s: $OUTDIR/{tiny-guest.qcow2,vmlinuz,initrd.img} (initrd $(du -h "$OUTDIR/initrd.img" | awk '{print $1}'))"
