//! Whether to use KVM: only when a guest actually runs under it. `/dev/kvm` existing is not
//! enough (nested setups hang in protected/long mode), so boot something under `-accel kvm`
//! with a short timeout and look at the serial console. Shared by the KVM provider
//! (`domain_type: auto`) and the Vagrant provider (the libvirt driver).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

const QEMU: &str = "qemu-system-x86_64";

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

/// Whether a KVM guest boots on this machine within a few seconds: the host's kernel when
/// there is one ([`kernel_boots_under_kvm`]), else a real-mode boot sector.
pub async fn kvm_works() -> bool {
    if !Path::new("/dev/kvm").exists() || which(QEMU).is_none() {
        return false;
    }
    if let Some(booted) = kernel_boots_under_kvm().await {
        return booted;
    }
    boot_sector_runs_under_kvm().await
}

/// Boots the host's newest kernel under `-accel kvm` without a root fs: "Kernel panic" on the
/// serial console proves the whole path works (QEMU exits thanks to `panic=-1 -no-reboot`).
/// `None` when there is no kernel under /boot to try. The strict test: a real-mode boot
/// sector runs even where KVM hangs in protected/long mode (nested PVM).
pub async fn kernel_boots_under_kvm() -> Option<bool> {
    if !Path::new("/dev/kvm").exists() {
        return Some(false);
    }
    let kernel = host_kernel()?;
    let stdout = qemu(
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
    Some(stdout.is_some_and(|s| s.contains("Kernel panic")))
}

async fn boot_sector_runs_under_kvm() -> bool {
    let path = std::env::temp_dir().join(format!("nepho-kvm-probe-{}.img", std::process::id()));
    if std::fs::write(&path, boot_sector()).is_err() {
        return false;
    }
    let drive = format!("file={},format=raw,if=ide", path.display());
    let stdout = qemu(
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
    stdout.is_some_and(|s| s.contains("OK"))
}

/// QEMU's stdout, or `None` when it could not run or did not exit within `timeout` (it is
/// killed then).
async fn qemu(args: &[&str], timeout: Duration) -> Option<String> {
    let child = Command::new(QEMU)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => None,
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

fn which(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|p| p.join(program))
        .find(|p| p.is_file())
}

/// [`kvm_works`], remembered in `cache` (JSON) while what decides the answer is unchanged: the
/// host kernel, the QEMU binary and `/dev/kvm`'s owner and mode. A week at most, so a host
/// whose KVM was fixed some other way is re-probed eventually. `None` probes every call.
pub async fn kvm_works_cached(cache: Option<&Path>) -> bool {
    cached(cache, Test::Any, kvm_works()).await
}

/// [`kernel_boots_under_kvm`] (no kernel to try counts as no KVM), remembered in `cache` like
/// [`kvm_works_cached`]. Where KVM hangs, the uncached test costs its whole 20 s timeout.
pub async fn kernel_boots_under_kvm_cached(cache: Option<&Path>) -> bool {
    cached(cache, Test::Kernel, async {
        kernel_boots_under_kvm().await == Some(true)
    })
    .await
}

/// The two tests keep separate answers in one cache file.
#[derive(Clone, Copy)]
enum Test {
    Any,
    Kernel,
}

impl Test {
    fn field(self) -> &'static str {
        match self {
            Test::Any => "kvm",
            Test::Kernel => "kernel_kvm",
        }
    }
}

async fn cached(cache: Option<&Path>, test: Test, probe: impl Future<Output = bool>) -> bool {
    let Some(cache) = cache else {
        return probe.await;
    };
    let key = probe_key();
    if let Some(kvm) = read_cache(cache, &key, test) {
        return kvm;
    }
    let kvm = probe.await;
    write_cache(cache, &key, test, kvm);
    kvm
}

const CACHE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

fn probe_key() -> String {
    use std::os::unix::fs::MetadataExt;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qemu = which(QEMU)
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| format!("{}:{}", m.size(), m.mtime()))
        .unwrap_or_default();
    let dev = std::fs::metadata("/dev/kvm")
        .map(|m| format!("{}:{}:{:o}", m.uid(), m.gid(), m.mode()))
        .unwrap_or_else(|_| "absent".into());
    format!("{}|{qemu}|{dev}", kernel.trim())
}

fn read_cache(cache: &Path, key: &str, test: Test) -> Option<bool> {
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
    v[test.field()].as_bool()
}

/// Adds `test`'s answer to what the file holds for the same `key` (a new key starts afresh).
/// Written to a temporary file and renamed, so a reader never sees half a file.
fn write_cache(cache: &Path, key: &str, test: Test, kvm: bool) {
    let Some(dir) = cache.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut body = std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|v| v["key"].as_str() == Some(key) && v.is_object())
        .unwrap_or_else(|| serde_json::json!({ "key": key }));
    body[test.field()] = serde_json::Value::Bool(kvm);
    let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
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
        assert_eq!(read_cache(&cache, &key, Test::Any), None);
        write_cache(&cache, &key, Test::Any, false);
        assert_eq!(read_cache(&cache, &key, Test::Any), Some(false));
        write_cache(&cache, &key, Test::Any, true);
        assert_eq!(read_cache(&cache, &key, Test::Any), Some(true));
        assert_eq!(read_cache(&cache, "another kernel", Test::Any), None);
    }

    #[test]
    fn the_two_tests_keep_their_own_answers_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("probe.json");
        let key = probe_key();
        write_cache(&cache, &key, Test::Any, true);
        assert_eq!(read_cache(&cache, &key, Test::Kernel), None);
        write_cache(&cache, &key, Test::Kernel, false);
        assert_eq!(read_cache(&cache, &key, Test::Any), Some(true));
        assert_eq!(read_cache(&cache, &key, Test::Kernel), Some(false));
        // Another host state drops both answers.
        write_cache(&cache, "another kernel", Test::Kernel, true);
        assert_eq!(read_cache(&cache, "another kernel", Test::Any), None);
        assert_eq!(
            read_cache(&cache, "another kernel", Test::Kernel),
            Some(true)
        );
    }

    #[tokio::test]
    async fn a_cached_answer_skips_the_probe() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("probe.json");
        write_cache(&cache, &probe_key(), Test::Kernel, true);
        let probed = cached(Some(&cache), Test::Kernel, async { panic!("probed again") }).await;
        assert!(probed);
        let probed = cached(Some(&cache), Test::Any, async { false }).await;
        assert!(!probed);
        assert_eq!(read_cache(&cache, &probe_key(), Test::Any), Some(false));
    }

    #[test]
    fn the_boot_sector_is_one_bootable_sector() {
        let sector = boot_sector();
        assert_eq!(sector.len(), 512);
        assert_eq!(&sector[510..], &[0x55, 0xAA]);
    }
}
