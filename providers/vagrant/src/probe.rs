//! Which libvirt driver Vagrant should use: `kvm` only when a KVM guest really runs here.
//! `/dev/kvm` existing is not enough (nested setups hang in protected mode), so boot the
//! host's kernel under `-accel kvm` without a root fs and look for its panic on the serial
//! console (QEMU exits thanks to `panic=-1 -no-reboot`).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

pub async fn kvm_works() -> bool {
    if !std::path::Path::new("/dev/kvm").exists() {
        return false;
    }
    let Some(kernel) = host_kernel() else {
        return false;
    };
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "kvm",
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "256",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
            &kernel,
            "-append",
            "console=ttyS0 panic=-1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(child) = child else {
        return false;
    };
    match tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).contains("Kernel panic"),
        _ => false,
    }
}

fn host_kernel() -> Option<String> {
    let mut kernels: Vec<String> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.starts_with("/boot/vmlinuz-"))
        .collect();
    kernels.sort();
    kernels.pop()
}
