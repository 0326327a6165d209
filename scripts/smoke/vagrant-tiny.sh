#!/usr/bin/env bash
# End-to-end proof that Vagrant + vagrant-libvirt drive the tiny guest:
# vagrant box add -> vagrant up --provider=libvirt -> vagrant ssh -c hostname -> vagrant status
# -> vagrant halt -> vagrant destroy -f,
# with a private VAGRANT_HOME; removes the box and the box volume vagrant-libvirt uploaded
# into libvirt's `default` pool, also on failure.
#
# Usage: scripts/smoke/vagrant-tiny.sh
# Env: NEPHO_IMAGE_DIR, NEPHO_SMOKE_TIMEOUT (s, default 300 for `vagrant up`)
set -euo pipefail
SMOKE_NAME=vagrant-tiny
# shellcheck source=scripts/smoke/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT=${NEPHO_SMOKE_TIMEOUT:-300}
require_root
ensure_infra
command -v vagrant >/dev/null || die "vagrant not installed (scripts/setup/packages.sh)"
"$REPO_ROOT/scripts/images/make-vagrant-box.sh" "$IMAGE_DIR" || die "make-vagrant-box.sh failed"
make_workdir

export VAGRANT_HOME=$WORK/vagrant.d VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1
export VAGRANT_DEFAULT_PROVIDER=libvirt VAGRANT_NO_COLOR=1
BOXNAME=nepho-tiny-smoke-$$
PREFIX=nepho-smoke-vagrant-$$-
PROJ=$WORK/project
mkdir -p "$PROJ"

cat >"$PROJ/Vagrantfile" <<V
Vagrant.configure("2") do |config|
  config.vm.box = "$BOXNAME"
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.insert_key = false
  config.vm.boot_timeout = $TIMEOUT
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "qemu"
    libvirt.uri = "$URI"
    libvirt.default_prefix = "$PREFIX"
    libvirt.memory = 256
    libvirt.cpus = 1
    libvirt.management_network_name = "default"
    libvirt.management_network_address = "192.168.122.0/24"
    libvirt.management_network_keep = true
    libvirt.graphics_type = "none"
    libvirt.video_type = "none"
    libvirt.serial :type => "file", :source => { :path => "$WORK/console.log" }
  end
end
V

vagrant_() { ( cd "$PROJ" && timeout "$1" vagrant "${@:2}" ); }

cleanup_vagrant() {
  local d v
  ( cd "$PROJ" && timeout 120 vagrant destroy -f ) >/dev/null 2>&1 || true
  for d in $(virsh list --all --name 2>/dev/null | grep "^$PREFIX" || true); do cleanup_domain "$d"; done
  timeout 60 vagrant box remove -f "$BOXNAME" >/dev/null 2>&1 || true
  for v in $(virsh vol-list default 2>/dev/null | awk -v b="$BOXNAME" 'index($1,b){print $1}'); do
    virsh vol-delete --pool default "$v" >/dev/null 2>&1 || true
  done
}
on_exit cleanup_vagrant

fail() { show_console_tail "$WORK/console.log"; [ -f "$WORK/up.log" ] && tail -n 30 "$WORK/up.log" | sed 's/^/    up| /' >&2; die "$*"; }

t=$(now)
vagrant_ 120 box add --name "$BOXNAME" "$IMAGE_DIR/nepho-tiny-libvirt.box" >"$WORK/box-add.log" 2>&1 \
  || { cat "$WORK/box-add.log" >&2; fail "vagrant box add failed"; }
T_ADD=$(since "$t"); log "box add ${T_ADD}s"

t=$(now)
vagrant_ $((TIMEOUT + 60)) up --provider=libvirt --machine-readable >"$WORK/up.log" 2>&1 || fail "vagrant up failed"
T_UP=$(since "$t"); log "vagrant up ${T_UP}s"

t=$(now)
out=$(vagrant_ 60 ssh -c 'hostname; id -u; sudo -n true && echo sudo-ok' 2>/dev/null | tr -d '\r') || fail "vagrant ssh failed"
T_SSH=$(since "$t"); log "vagrant ssh -c: $(echo "$out" | tr '\n' ' ')(${T_SSH}s)"
[[ "$out" == *sudo-ok* ]] || fail "sudo does not work in the guest"

t=$(now)
st=$(vagrant_ 60 status --machine-readable 2>/dev/null | awk -F, '$3=="state"{print $4}')
T_STATUS=$(since "$t"); log "vagrant status: $st (${T_STATUS}s)"
[ "$st" = running ] || fail "vagrant status says $st"

t=$(now)
vagrant_ 120 halt >"$WORK/halt.log" 2>&1 || { cat "$WORK/halt.log" >&2; fail "vagrant halt failed"; }
T_HALT=$(since "$t")
st=$(vagrant_ 60 status --machine-readable 2>/dev/null | awk -F, '$3=="state"{print $4}')
log "vagrant halt ${T_HALT}s -> $st"
[ "$st" = shutoff ] || fail "vagrant status after halt says $st"

t=$(now)
vagrant_ 120 destroy -f >"$WORK/destroy.log" 2>&1 || { cat "$WORK/destroy.log" >&2; fail "vagrant destroy failed"; }
T_DESTROY=$(since "$t"); log "vagrant destroy ${T_DESTROY}s"
left=$(virsh list --all --name | grep "^$PREFIX" || true)
[ -z "$left" ] || fail "domain(s) left after destroy: $left"
virsh net-info default >/dev/null 2>&1 || fail "libvirt network default vanished after destroy"

log "timings: box add ${T_ADD}s, up ${T_UP}s, ssh -c ${T_SSH}s, status ${T_STATUS}s, halt ${T_HALT}s, destroy ${T_DESTROY}s"
echo "vagrant-tiny box_add=${T_ADD} up=${T_UP} ssh=${T_SSH} status=${T_STATUS} halt=${T_HALT} destroy=${T_DESTROY}"
