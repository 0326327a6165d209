//! `domain_type: auto`: use KVM only when a guest actually runs under it. `/dev/kvm` existing
//! is not enough (nested setups hang), so boot a 512-byte boot sector that writes "OK" to the
//! serial port, with a short timeout.

use std::time::Duration;

use crate::cmd;

/// The boot sector: mov dx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al;
/// mov al,10; out dx,al; mov al,1; out 0xf4,al (isa-debug-exit: QEMU exits); cli; hlt; jmp.
fn boot_sector() -> Vec<u8> {
    let mut code = vec![
        0xBA, 0xF8, 0x03, 0xB0, b'O', 0xEE, 0xB0, b'K', 0xEE, 0xB0, 0x0A, 0xEE, 0xB0, 0x01, 0xE6,
        0xF4, 0xFA, 0xF4, 0xEB, 0xFD,
    ];
    code.resize(510, 0);
    code.extend_from_slice(&[0x55, 0xAA]);
    code
}

/// Whether a KVM guest boots on this machine within a few seconds.
pub async fn kvm_works() -> bool {
    if !std::path::Path::new("/dev/kvm").exists() || !cmd::on_path("qemu-system-x86_64") {
        return false;
    }
    // A real-mode boot sector runs even where KVM hangs in protected/long mode (nested PVM),
    // so when the host has a kernel, boot it without a root fs: "Kernel panic" on the serial
    // console proves the whole path works (QEMU exits thanks to panic=-1 + -no-reboot).
    if let Some(kernel) = host_kernel() {
        let out = cmd::run(
            "qemu-system-x86_64",
            &[
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
            ],
            Duration::from_secs(20),
        )
        .await;
        return matches!(out, Ok(o) if o.stdout.contains("Kernel panic"));
    }
    let path = std::env::temp_dir().join(format!("nepho-kvm-probe-{}.img", std::process::id()));
    if std::fs::write(&path, boot_sector()).is_err() {
        return false;
    }
    let drive = format!("file={},format=raw,if=ide", path.display());
    let out = cmd::run(
        "qemu-system-x86_64",
        &[
            "-accel",
            "kvm",
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "16",
            "-no-reboot",
            "-serial",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive",
            &drive,
        ],
        Duration::from_secs(8),
    )
    .await;
    let _ = std::fs::remove_file(&path);
    // isa-debug-exit makes QEMU exit with status 3 once the guest ran; a hang times out.
    matches!(out, Ok(o) if o.stdout.contains("OK"))
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

/// [`kvm_works`], remembered in `cache` (JSON) while what decides the answer is unchanged: the
/// host kernel, the QEMU binary and `/dev/kvm`'s owner and mode. A week at most, so a host
/// whose KVM was fixed some other way is re-probed eventually.
pub async fn kvm_works_cached(cache: Option<&std::path::Path>) -> bool {
    let Some(cache) = cache else {
        return kvm_works().await;
    };
    let key = probe_key();
    if let Some(kvm) = read_cache(cache, &key) {
        return kvm;
    }
    let kvm = kvm_works().await;
    write_cache(cache, &key, kvm);
    kvm
}

const CACHE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

fn probe_key() -> String {
    use std::os::unix::fs::MetadataExt;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qemu = cmd::which("qemu-system-x86_64")
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| format!("{}:{}", m.size(), m.mtime()))
        .unwrap_or_default();
    let dev = std::fs::metadata("/dev/kvm")
        .map(|m| format!("{}:{}:{:o}", m.uid(), m.gid(), m.mode()))
        .unwrap_or_else(|_| "absent".into());
    format!("{}|{qemu}|{dev}", kernel.trim())
}

fn read_cache(cache: &std::path::Path, key: &str) -> Option<bool> {
    let age = std::fs::metadata(cache)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    if age > CACHE_MAX_AGE {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(cache).ok()?).ok()?;
    (v["key"].as_str() == Some(key)).then_some(())?;
    v["kvm"].as_bool()
}

fn write_cache(cache: &std::path::Path, key: &str, kvm: bool) {
    let Some(dir) = cache.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
    let body = serde_json::json!({ "key": key, "kvm": kvm });
    if std::fs::write(&tmp, body.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, cache);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_answer_is_used_only_for_the_same_host_state() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("probe.json");
        let key = probe_key();
        assert_eq!(read_cache(&cache, &key), None);
        write_cache(&cache, &key, false);
        assert_eq!(read_cache(&cache, &key), Some(false));
        write_cache(&cache, &key, true);
        assert_eq!(read_cache(&cache, &key), Some(true));
        assert_eq!(read_cache(&cache, "another kernel"), None);
    }
}
