//! Which libvirt driver Vagrant should use: `kvm` only when a KVM guest really runs here.
//! Vagrant takes the strict test only (the host's kernel booting under `-accel kvm`): with no
//! kernel to try, it assumes no KVM rather than trusting a real-mode boot sector.

pub async fn kvm_works(cache: Option<&std::path::Path>) -> bool {
    nepho_kvm_probe::kernel_boots_under_kvm_cached(cache).await
}
