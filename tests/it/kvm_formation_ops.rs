//! Day-2 operations on KVM machines, end to end on this machine's libvirt + QEMU (TCG) + tgtd:
//! offline drive growth (qcow2 and LUN) checked from inside the guest, VNC consoles reached
//! locally and through an ssh forward, and network cards plugged into running machines.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Env;

const URI: &str = "qemu:///system";

/// An Env registered on the local KVM cluster, or `None` (skip) outside CI without libvirtd.
fn kvm_env() -> Option<Env> {
    let up = Command::new("virsh")
        .args(["-c", URI, "version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start libvirtd (scripts/test does)"
        );
        eprintln!("SKIPPED: libvirtd is not running; run scripts/setup/daemons.sh");
        return None;
    }
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    env.run(&["register", "kvm"]).ok();
    Some(env)
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Destroys the formation when the test ends, also when it fails.
struct Teardown<'a> {
    env: &'a Env,
    name: String,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let _ = self.env.nepho().args(["destroy", &self.name]).output();
    }
}

fn formation<'a>(env: &'a Env, prefix: &str) -> (String, Teardown<'a>) {
    let name = format!("{prefix}{}", std::process::id());
    let teardown = Teardown {
        env,
        name: name.clone(),
    };
    (name, teardown)
}

/// ssh into the formation, retrying while a (re)started machine comes up.
fn ssh_until(env: &Env, name: &str, cmd: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = env.nepho().args(["ssh", name, "--", cmd]).output().unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "ssh {cmd:?} kept failing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn virtual_size(path: &Path) -> u64 {
    let info = sh(
        "qemu-img",
        &["info", "-U", "--output=json", path.to_str().unwrap()],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

/// A qcow2 data drive and a LUN data drive grow while the machine is shut off and the guest
/// sees the new sizes after a start; a running machine and a shrink are refused, unchanged.
#[test]
fn kvm_resize_drives_offline() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "rsz");
    env.run(&["create", "hello", "--name", &name]).ok();
    let qcow2 = env
        .run(&["-o", "json", "formation:add-drive", &name, "--size-gb", "1"])
        .ok()
        .json();
    assert_eq!(qcow2["drive"], "disk1", "{qcow2}");
    let lun = env
        .run(&[
            "-o",
            "json",
            "formation:add-drive",
            &name,
            "--size-gb",
            "1",
            "--storage",
            "iscsi",
        ])
        .ok()
        .json();
    assert_eq!(lun["drive"], "disk2", "{lun}");
    let volume = Path::new(qcow2["id"].as_str().unwrap()).to_path_buf();

    let refused = env
        .run(&[
            "formation:resize-drive",
            &name,
            "hello",
            "disk1",
            "--size-gb",
            "3",
        ])
        .code(6);
    assert!(
        refused.stderr.contains("shut off") && refused.stderr.contains("formation:stop"),
        "{}",
        refused.stderr
    );
    assert_eq!(virtual_size(&volume), 1 << 30, "nothing changed");

    env.run(&["formation:stop", &name, "hello"]).ok();
    let grown = env
        .run(&[
            "-o",
            "json",
            "formation:resize-drive",
            &name,
            "hello",
            "disk1",
            "--size-gb",
            "3",
        ])
        .ok()
        .json();
    assert_eq!(
        (&grown["previous_bytes"], &grown["bytes"], &grown["changed"]),
        (
            &serde_json::json!(1u64 << 30),
            &serde_json::json!(3u64 << 30),
            &serde_json::json!(true)
        ),
        "{grown}"
    );
    assert_eq!(virtual_size(&volume), 3 << 30);
    let grown_lun = env
        .run(&[
            "-o",
            "json",
            "formation:resize-drive",
            &name,
            "hello",
            "disk2",
            "--size-gb",
            "2",
        ])
        .ok()
        .json();
    assert_eq!(grown_lun["storage"], "iscsi", "{grown_lun}");

    let shrink = env
        .run(&[
            "formation:resize-drive",
            &name,
            "hello",
            "disk1",
            "--size-gb",
            "2",
        ])
        .code(4);
    assert!(shrink.stderr.contains("cannot shrink"), "{}", shrink.stderr);
    assert_eq!(
        virtual_size(&volume),
        3 << 30,
        "a refused shrink changes nothing"
    );
    env.run(&[
        "formation:resize-drive",
        &name,
        "hello",
        "disk9",
        "--size-gb",
        "2",
    ])
    .code(3);

    env.run(&["formation:start", &name, "hello"]).ok();
    let sizes = ssh_until(
        &env,
        &name,
        "cat /sys/block/vdb/size /sys/block/vdc/size",
        Duration::from_secs(120),
    );
    assert_eq!(
        sizes.split_whitespace().collect::<Vec<_>>(),
        ["6291456", "4194304"],
        "the guest sees 3 GiB on the volume and 2 GiB on the LUN"
    );
    env.run(&["destroy", &name]).ok();
    assert!(!volume.exists(), "destroy removes the grown volume");
    let targets = sh(
        "tgtadm",
        &["--lld", "iscsi", "--op", "show", "--mode", "target"],
    );
    assert!(!targets.contains(&format!(":{name}:")), "{targets}");
}
