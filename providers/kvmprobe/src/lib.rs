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
    // earlyprintk: the kernel writes from its first protected-mode steps on, so a guest that
    // stops there (nested setups) goes silent at once instead of after the console starts.
    let seen = qemu(
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
            "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1",
        ],
        "Kernel panic",
        Budget::KERNEL,
    )
    .await;
    Some(seen)
}

async fn boot_sector_runs_under_kvm() -> bool {
    let path = std::env::temp_dir().join(format!("nepho-kvm-probe-{}.img", std::process::id()));
    if std::fs::write(&path, boot_sector()).is_err() {
        return false;
    }
    let drive = format!("file={},format=raw,if=ide", path.display());
    let seen = qemu(
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
        "OK",
        Budget::BOOT_SECTOR,
    )
    .await;
    let _ = std::fs::remove_file(&path);
    seen
}

/// How long a probe guest may take: to say anything at all (QEMU's own start included), to
/// go quiet between two lines of output, and in all.
struct Budget {
    first: Duration,
    silence: Duration,
    total: Duration,
}

impl Budget {
    /// A kernel that works under KVM prints continuously and panics (no root fs) within a
    /// second or two; even under TCG its longest quiet stretch here is under a second. Where
    /// KVM hangs (nested PVM), BIOS text comes out and then nothing: the silence ends the
    /// probe rather than the whole 20 s.
    const KERNEL: Budget = Budget {
        first: Duration::from_secs(10),
        silence: Duration::from_secs(4),
        total: Duration::from_secs(20),
    };
    const BOOT_SECTOR: Budget = Budget {
        first: Duration::from_secs(8),
        silence: Duration::from_secs(8),
        total: Duration::from_secs(8),
    };
}

/// Runs QEMU until its serial output (stdout) contains `expect`: true then (QEMU is killed,
/// it has shown what it had to). False when it could not run, exited without it, or kept
/// quiet or ran longer than `budget` allows.
async fn qemu(args: &[&str], expect: &str, budget: Budget) -> bool {
    let mut command = Command::new(QEMU);
    command.args(args);
    watch(command, expect, budget).await
}

/// [`qemu`]'s watch over any program's stdout.
async fn watch(mut command: Command, expect: &str, budget: Budget) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut child) = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    else {
        return false;
    };
    let Some(mut stdout) = child.stdout.take() else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + budget.total;
    // The text seen so far, capped: only a window as long as `expect` needs to be kept.
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut wait = budget.first;
    loop {
        let until = (tokio::time::Instant::now() + wait).min(deadline);
        match tokio::time::timeout_at(until, stdout.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(expect.len()).any(|w| w == expect.as_bytes()) {
                    let _ = child.start_kill();
                    return true;
                }
                let keep = seen.len().saturating_sub(expect.len());
                seen.drain(..keep);
                wait = budget.silence;
            }
            // End of output (QEMU exited) or a read error, or quiet for too long.
            _ => {
                let _ = child.start_kill();
                return false;
            }
        }
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
/// [`kvm_works_cached`]. Where KVM hangs, the uncached test costs about 8 s (QEMU start, BIOS
/// text, then the silence that ends it).
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

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    const QUICK: Budget = Budget {
        first: Duration::from_secs(2),
        silence: Duration::from_millis(300),
        total: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn the_probe_sees_its_text_even_split_across_writes_and_stops_there() {
        let split = "printf 'Probing EDD\\n'; sleep 0.1; printf 'Kernel pa'; sleep 0.1; printf 'nic - not syncing'; sleep 60";
        assert!(watch(sh(split), "Kernel panic", QUICK).await);
    }

    #[tokio::test]
    async fn a_guest_that_goes_quiet_or_never_speaks_or_exits_fails_the_probe() {
        // BIOS text, then the hang nested KVM shows: ended by the silence, not the 60 s.
        assert!(!watch(sh("echo 'Probing EDD'; sleep 60"), "Kernel panic", QUICK).await);
        assert!(!watch(sh("sleep 60"), "Kernel panic", QUICK).await);
        assert!(!watch(sh("echo booted; exit 0"), "Kernel panic", QUICK).await);
        // Talking all the time without the text: the total budget ends it.
        let chatty = Budget {
            total: Duration::from_secs(1),
            ..QUICK
        };
        assert!(
            !watch(
                sh("while :; do echo line; sleep 0.05; done"),
                "Kernel panic",
                chatty
            )
            .await
        );
    }

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
