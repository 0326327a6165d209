//! The KVM provider end to end on this machine's libvirt + QEMU (TCG) + tgtd: the tiny guest
//! the repo builds, the bundled `hello` and `webapp` cloudlets, checked with `virsh`, `tgtadm`
//! and the file system — what a user would look at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Env, wait_until};

const URI: &str = "qemu:///system";
const KVM_DIR: &str = "/var/lib/nepho/kvm";
const ISCSI_DIR: &str = "/var/lib/nepho/iscsi";

/// An Env registered on the local KVM cluster, or `None` (skip) outside CI without libvirtd.
pub(crate) fn kvm_env() -> Option<Env> {
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
    for c in ["hello", "webapp"] {
        env.run(&["cloudlet:install", c]).ok();
    }
    env.run(&["register", "kvm"]).ok();
    Some(env)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

pub(crate) fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn domains() -> String {
    sh("virsh", &["-c", URI, "list", "--all", "--name"])
}

fn domstate(domain: &str) -> String {
    sh("virsh", &["-c", URI, "domstate", domain])
        .trim()
        .to_string()
}

fn tgt_targets() -> String {
    sh(
        "tgtadm",
        &["--lld", "iscsi", "--op", "show", "--mode", "target"],
    )
}

/// Nothing of formation `name` on the host: no domain, LUN, disk, seed or address reservation.
pub(crate) fn assert_nothing_left(name: &str) {
    let domains = domains();
    assert!(
        !domains.contains(&format!("nepho-{name}-")),
        "domain left behind: {domains}"
    );
    let targets = tgt_targets();
    assert!(
        !targets.contains(&format!(":{name}:")),
        "iSCSI target left behind: {targets}"
    );
    for dir in [KVM_DIR, ISCSI_DIR] {
        let path = Path::new(dir).join(name);
        assert!(!path.exists(), "{} left behind", path.display());
    }
    let net = sh("virsh", &["-c", URI, "net-dumpxml", "default"]);
    assert!(
        !net.contains(&format!("nepho-{name}")),
        "DHCP reservation left behind"
    );
}

/// Destroys the formation when the test ends, also when it fails.
pub(crate) struct Teardown<'a> {
    env: &'a Env,
    name: String,
}

/// A unique formation name for this test, destroyed when the test ends.
pub(crate) fn formation<'a>(env: &'a Env, prefix: &str) -> (String, Teardown<'a>) {
    let name = unique(prefix);
    let teardown = Teardown {
        env,
        name: name.clone(),
    };
    (name, teardown)
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let _ = self
            .env
            .nepho()
            .args(["destroy", &self.name, "--yes"])
            .output();
    }
}

/// A world-readable scratch directory (QEMU runs as libvirt-qemu and must reach the files).
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        use std::os::unix::fs::PermissionsExt;
        let dir = PathBuf::from(format!("/var/tmp/nepho-it-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An ISO image holding `marker.txt`.
pub(crate) fn make_iso(dir: &Path, marker: &str) -> PathBuf {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("marker.txt"), marker).unwrap();
    let iso = dir.join("tools.iso");
    let ok = Command::new("genisoimage")
        .args(["-quiet", "-r", "-J", "-V", "TOOLS", "-o"])
        .arg(&iso)
        .arg(&content)
        .status()
        .unwrap()
        .success();
    assert!(ok, "genisoimage");
    iso
}

/// ssh into the formation, retrying while a rebooted machine comes back.
pub(crate) fn ssh_until(env: &Env, name: &str, cmd: &str, timeout: Duration) -> String {
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

/// The main job on the local KVM provider: create `hello`, ssh in, stop/start, destroy;
/// nothing left.
#[test]
fn kvm_main_job_create_ssh_destroy() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "it");
    let created = env
        .run(&["-o", "json", "create", "hello", "--name", &name])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded");
    let ssh = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(ssh.stdout.contains("Hello from nepho"));
    let status = env.run(&["-o", "json", "cluster:status"]).ok().json();
    assert!(
        status["hosts"][0]["machines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["formation"] == name.as_str()),
        "{status}"
    );
    let domain = format!("nepho-{name}-hello");
    env.run(&["formation:stop", &name]).ok();
    assert_eq!(domstate(&domain), "shut off");
    env.run(&["formation:start", &name]).ok();
    assert_eq!(domstate(&domain), "running");
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}

/// A machine booted from an iSCSI LUN; an ISO attached live, read in the guest, ejected;
/// stop/start/reset; destroy removes the LUN but never the user's ISO.
#[test]
fn kvm_iscsi_boot_disk_iso_and_power_cycle() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "iso");
    let scratch = Scratch::new("iso");
    let marker = format!("nepho iso {}", std::process::id());
    let iso = make_iso(&scratch.0, &marker);

    let created = env
        .run(&[
            "-o",
            "json",
            "create",
            "hello",
            "--name",
            &name,
            "--set",
            "disk_storage=iscsi",
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    assert!(
        tgt_targets().contains(&format!(":{name}:hello")),
        "the boot disk is a LUN on the target"
    );
    let described = env
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .json();
    assert!(
        described.to_string().contains("iscsi-lun"),
        "describe shows the LUN: {described}"
    );

    let attached = env
        .run(&[
            "-o",
            "json",
            "formation:attach-iso",
            &name,
            iso.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(attached["machine"], "hello");
    assert_eq!(attached["iso"], iso.to_str().unwrap());
    let domain = format!("nepho-{name}-hello");
    let blk = sh("virsh", &["-c", URI, "domblklist", &domain]);
    assert!(blk.contains(iso.to_str().unwrap()), "{blk}");
    let read = ssh_until(
        &env,
        &name,
        "mkdir -p /mnt/iso && mount -t iso9660 -o ro /dev/sr1 /mnt/iso && cat /mnt/iso/marker.txt; umount /mnt/iso",
        Duration::from_secs(60),
    );
    assert!(
        read.contains(&marker),
        "the guest reads the ISO live: {read}"
    );
    env.run(&["formation:detach-iso", &name]).ok();
    let blk = sh("virsh", &["-c", URI, "domblklist", &domain]);
    assert!(!blk.contains(iso.to_str().unwrap()), "ejected: {blk}");
    // Detaching again is a no-op.
    env.run(&["formation:detach-iso", &name]).ok();
    // A machine that does not exist is a clear error.
    let wrong = env
        .run(&[
            "formation:attach-iso",
            &name,
            iso.to_str().unwrap(),
            "-m",
            "nope",
        ])
        .code(3);
    assert!(wrong.stderr.contains("no machine nope"), "{}", wrong.stderr);

    env.run(&["formation:stop", &name]).ok();
    assert_eq!(domstate(&domain), "shut off");
    // Attaching to a stopped machine changes its definition; it is there at the next boot.
    env.run(&["formation:attach-iso", &name, iso.to_str().unwrap()])
        .ok();
    env.run(&["formation:start", &name]).ok();
    assert_eq!(domstate(&domain), "running");
    let read = ssh_until(
        &env,
        &name,
        "mkdir -p /mnt/iso && mount -t iso9660 -o ro /dev/sr1 /mnt/iso && cat /mnt/iso/marker.txt; umount /mnt/iso",
        Duration::from_secs(120),
    );
    assert!(read.contains(&marker), "ISO kept across a stop: {read}");
    // reset = hard reboot: what the running system kept in memory (/run) is gone.
    ssh_until(
        &env,
        &name,
        "touch /run/before-reset",
        Duration::from_secs(30),
    );
    env.run(&["formation:reset", &name]).ok();
    let after = ssh_until(
        &env,
        &name,
        "test -e /run/before-reset && echo kept || echo rebooted",
        Duration::from_secs(120),
    );
    assert_eq!(after.trim(), "rebooted");
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
    assert!(iso.is_file(), "destroy never removes the user's ISO");
}

/// kill -9 of the nanny while the machine is booting; `--resume` finishes the build and
/// destroy leaves no domain, LUN, disk or seed.
#[test]
fn kvm_killing_the_nanny_mid_create_then_resume_and_destroy_leaves_nothing() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "crash");
    env.run(&[
        "create",
        "hello",
        "--name",
        &name,
        "--set",
        "disk_storage=iscsi",
        "--detach",
    ])
    .ok();
    wait_until("the domain step", Duration::from_secs(180), || {
        env.journal(&name).iter().any(|e| {
            e["kind"] == "step" && e["step"] == "domain-hello" && e["status"] == "succeeded"
        })
    });
    env.kill_nanny(&name);
    assert!(
        domains().contains(&format!("nepho-{name}-hello")),
        "the machine was defined before the kill"
    );
    let refused = env.run(&["create", "hello", "--name", &name]).code(6);
    assert!(refused.stderr.contains("--resume"), "{}", refused.stderr);
    let resumed = env
        .run(&[
            "-o",
            "json",
            "formation:create",
            "--resume",
            "--name",
            &name,
        ])
        .ok()
        .json();
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    let motd = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(motd.stdout.contains("Hello from nepho"));
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}

/// Two machines of one formation are built in parallel: each one's boot overlaps the other's.
#[test]
fn kvm_two_machines_are_built_in_parallel() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "duo");
    let created = env
        .run(&[
            "-o", "json", "create", "hello", "--name", &name, "--set", "count=2",
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    let events = env.journal(&name);
    let when = |step: &str, status: &str| {
        events
            .iter()
            .position(|e| e["kind"] == "step" && e["step"] == step && e["status"] == status)
            .unwrap_or_else(|| panic!("no {status} event for {step}"))
    };
    let (one_started, one_ready) = (
        when("ready-hello-1", "started"),
        when("ready-hello-1", "succeeded"),
    );
    let (two_started, two_ready) = (
        when("ready-hello-2", "started"),
        when("ready-hello-2", "succeeded"),
    );
    assert!(
        one_started < two_ready && two_started < one_ready,
        "both machines were booting at the same time"
    );
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    assert!(list.to_string().contains(&name), "{list}");
    for machine in ["hello-1", "hello-2"] {
        let motd = env.run(&["ssh", &name, machine, "--", "hostname"]).ok();
        assert_eq!(motd.stdout.trim(), machine);
    }
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}

/// Two tiers: db (with a data disk on an iSCSI LUN) first, then web, which is handed db's
/// address; the secret password never reaches the journal; destroy removes both.
#[test]
fn kvm_two_tiers_with_an_iscsi_data_disk() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "tier");
    let created = env
        .run(&[
            "-o",
            "json",
            "create",
            "webapp",
            "--name",
            &name,
            "--set",
            "db_password=s3cret-pw",
            "--set",
            "db_disk.storage=iscsi",
            "--set",
            "db_disk.size_gb=1",
            "--set",
            "web_count=1",
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    let db = env
        .run(&["ssh", &name, "db", "--", "cat", "/sys/block/vdb/size"])
        .ok();
    assert_eq!(db.stdout.trim(), "2097152", "a 1 GiB data disk on the LUN");
    assert!(
        tgt_targets().contains(&format!(":{name}:db")),
        "the data disk is a LUN"
    );
    let db_ip = env
        .run(&["ssh", &name, "db", "--", "cat", "/run/nepho/ip.eth0"])
        .ok();
    let described = env
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .json();
    assert_eq!(
        described["details"]["outputs"]["url"]
            .as_str()
            .map(|u| u.starts_with("http://192.168.122.")),
        Some(true),
        "{described}"
    );
    let journal_text = std::fs::read_to_string(
        env.home()
            .join("state/formations")
            .join(&name)
            .join("journal.ndjson"),
    )
    .unwrap();
    assert!(
        !journal_text.contains("s3cret-pw"),
        "the secret is not journaled"
    );
    let web = env
        .run(&["ssh", &name, "web", "--", "cat", "/var/lib/webapp/web.conf"])
        .ok();
    assert_eq!(
        web.stdout.trim(),
        format!("db_host={}", db_ip.stdout.trim()),
        "web was handed db's address"
    );
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}

/// Data drives added to a running machine (a qcow2 volume, then a LUN) appear in the guest,
/// in describe, and go away with remove-drive; destroy removes the rest.
#[test]
fn kvm_add_and_remove_drives_live() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "drv");
    env.run(&["create", "hello", "--name", &name]).ok();
    let added = env
        .run(&["-o", "json", "formation:add-drive", &name, "--size-gb", "1"])
        .ok()
        .json();
    assert_eq!(
        (added["drive"].as_str(), added["device"].as_str()),
        (Some("disk1"), Some("vdb")),
        "{added}"
    );
    let lun = env
        .run(&[
            "-o",
            "json",
            "formation:add-drive",
            &name,
            "--size-gb",
            "2",
            "--storage",
            "iscsi",
        ])
        .ok()
        .json();
    assert_eq!(lun["device"], "vdc", "{lun}");
    assert!(
        tgt_targets().contains(&format!(":{name}:hello")),
        "the LUN is on the target"
    );
    let sizes = ssh_until(
        &env,
        &name,
        "cat /sys/block/vdb/size /sys/block/vdc/size",
        Duration::from_secs(60),
    );
    assert_eq!(
        sizes.split_whitespace().collect::<Vec<_>>(),
        ["2097152", "4194304"],
        "the guest sees both drives"
    );
    let described = env
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .json()
        .to_string();
    assert!(
        described.contains("hello/disk1") && described.contains("hello/disk2"),
        "{described}"
    );
    env.run(&["formation:remove-drive", &name, "disk0"]).code(4);
    env.run(&["formation:remove-drive", &name, "disk1"]).ok();
    let volume = added["id"].as_str().unwrap();
    assert!(!Path::new(volume).exists(), "the volume is deleted");
    let described = env
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .json()
        .to_string();
    assert!(!described.contains("hello/disk2"), "{described}");
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}

/// A network with an address pool: the machine gets the first free address of the pool (a DHCP
/// reservation), and libvirt's clean-traffic filter drops what it sends from any other address.
#[test]
fn kvm_static_address_from_the_pool_and_no_spoofing() {
    let Some(env) = kvm_env() else { return };
    crate::support::edit_cluster(
        &env,
        "networks:\n  - name: default\n",
        "networks:\n  - name: default\n    pool: 192.168.122.240-192.168.122.249\n",
    );
    let (name, _teardown) = formation(&env, "pool");
    env.run(&["create", "hello", "--name", &name]).ok();
    let address = env
        .run(&["ssh", &name, "--", "cat", "/run/nepho/ip.eth0"])
        .ok();
    let address = address.stdout.trim().to_string();
    let last: u32 = address
        .strip_prefix("192.168.122.")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{address} is not on the default network"));
    assert!((240..=249).contains(&last), "{address} is from the pool");
    let net = sh("virsh", &["-c", URI, "net-dumpxml", "default"]);
    assert!(net.contains(&format!("ip='{address}'")), "reserved: {net}");
    let filter = sh(
        "virsh",
        &["-c", URI, "dumpxml", &format!("nepho-{name}-hello")],
    );
    assert!(filter.contains("clean-traffic"), "{filter}");

    let own = env
        .nepho()
        .args([
            "ssh",
            &name,
            "--",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "192.168.122.1",
        ])
        .output()
        .unwrap();
    assert!(
        own.status.success(),
        "the machine reaches the host from its own address"
    );
    let spoofed = env
        .nepho()
        .args([
            "ssh",
            &name,
            "--",
            "ip addr add 192.168.122.77/24 dev eth0 && ping -c 2 -W 2 -I 192.168.122.77 192.168.122.1",
        ])
        .output()
        .unwrap();
    assert!(
        !spoofed.status.success(),
        "packets from a spoofed address must be dropped: {}",
        String::from_utf8_lossy(&spoofed.stdout)
    );
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
    let net = sh("virsh", &["-c", URI, "net-dumpxml", "default"]);
    assert!(
        !net.contains(&format!("ip='{address}'")),
        "reservation released"
    );
}

/// The MAC nepho gives NIC `nic` of `machine` (the provider's `net::mac_for`: QEMU's prefix,
/// then 24 bits of FNV-1a).
fn nepho_mac(formation: &str, machine: &str, nic: usize) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in format!("{formation}/{machine}/{nic}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (h >> 16) as u8,
        (h >> 8) as u8,
        h as u8
    )
}

/// Found by scripts/faults: a nanny killed inside `domain` after it reserved the machine's
/// address and before `virsh define` left the reservation behind, since destroy only released
/// the addresses of domains it found. Here the kill lands in the step's (delayed) start and the
/// reservation the dead nanny would have made is added by hand, with the MAC and the address
/// nepho chose; destroy must release it.
#[test]
fn kvm_destroy_releases_a_reservation_whose_domain_was_never_defined() {
    let Some(mut env) = kvm_env() else { return };
    crate::support::edit_cluster(
        &env,
        "networks:\n  - name: default\n",
        "networks:\n  - name: default\n    pool: 192.168.122.230-192.168.122.239\n",
    );
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "5000".into()));
    let (name, _teardown) = formation(&env, "resv");
    env.run(&["create", "hello", "--name", &name, "--detach"])
        .ok();
    wait_until("the domain step to start", Duration::from_secs(120), || {
        env.journal(&name)
            .iter()
            .any(|e| e["kind"] == "step" && e["step"] == "domain-hello" && e["status"] == "started")
    });
    env.kill_nanny(&name);
    assert!(
        !domains().contains(&format!("nepho-{name}-hello")),
        "killed before the domain was defined"
    );
    let ip = env
        .journal(&name)
        .iter()
        .find(|e| e["step"] == "place" && e["status"] == "succeeded")
        .and_then(|e| {
            e["data"]["outputs"]["ips"]["hello"]
                .as_str()
                .map(String::from)
        })
        .expect("place chose an address from the pool");
    let entry = format!(
        "<host mac='{}' name='hello' ip='{ip}'/>",
        nepho_mac(&name, "hello", 0)
    );
    let added = Command::new("virsh")
        .args([
            "-c",
            URI,
            "net-update",
            "default",
            "add-last",
            "ip-dhcp-host",
        ])
        .arg(&entry)
        .args(["--live", "--config"])
        .status()
        .unwrap();
    assert!(added.success(), "virsh net-update add {entry}");
    env.run(&["destroy", &name, "--yes"]).ok();
    let net = sh("virsh", &["-c", URI, "net-dumpxml", "default"]);
    assert!(
        !net.contains(&format!("ip='{ip}'")),
        "reservation left behind: {net}"
    );
    assert_nothing_left(&name);
}

/// Found by scripts/faults: resumed after a nanny killed inside `domain`, the step saw the
/// machine not running yet, but the dead nanny's `virsh start` finished first and the resumed
/// start failed with "Domain is already active" (and the create rolled back). A `virsh` on PATH
/// that lets another start win that race every time reproduces it.
#[test]
fn kvm_a_start_that_loses_the_race_to_an_earlier_one_still_creates() {
    let Some(mut env) = kvm_env() else { return };
    let shim = env.path("shim");
    std::fs::create_dir_all(&shim).unwrap();
    let real = sh("sh", &["-c", "command -v virsh"]).trim().to_string();
    std::fs::write(
        shim.join("virsh"),
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = start ] && {{ {real} \"$@\" >/dev/null 2>&1; break; }}; done\nexec {real} \"$@\"\n"
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(shim.join("virsh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        shim.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.vars.push(("PATH".into(), path));
    let (name, _teardown) = formation(&env, "race");
    let created = env
        .run(&["-o", "json", "create", "hello", "--name", &name])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}

/// A cluster host reached over ssh (`qemu+ssh://root@127.0.0.1:2222/system?keyfile=…`, a real
/// sshd on loopback): libvirt, qemu-img, the seed and an ISO upload all go through ssh; destroy
/// removes everything there.
#[test]
fn kvm_remote_host_over_qemu_ssh() {
    let Some(env) = kvm_env() else { return };
    crate::support::use_loopback_sshd_host(&env);
    let (name, _teardown) = formation(&env, "rmt");
    let scratch = Scratch::new("rmt");
    let iso = make_iso(&scratch.0, "over ssh");

    env.run(&["create", "hello", "--name", &name]).ok();
    let status = env.run(&["-o", "json", "cluster:status"]).ok().json();
    assert_eq!(status["hosts"][0]["name"], "remote");
    assert_eq!(status["hosts"][0]["reachable"], true, "{status}");
    assert!(status.to_string().contains(&name), "{status}");
    let motd = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(motd.stdout.contains("Hello from nepho"));
    let attached = env
        .run(&[
            "-o",
            "json",
            "formation:attach-iso",
            &name,
            iso.to_str().unwrap(),
        ])
        .ok()
        .json();
    let copy = PathBuf::from(attached["iso"].as_str().unwrap());
    assert!(
        copy.starts_with(Path::new(KVM_DIR).join(&name)),
        "a remote host gets its own copy: {attached}"
    );
    assert!(copy.is_file());
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
    assert!(iso.is_file(), "the user's ISO stays");
}

/// A network whose bridge is missing, or a VLAN on a Linux bridge (libvirt tags VLANs only on
/// Open vSwitch), is refused before anything is built.
#[test]
fn kvm_bridges_that_cannot_work_are_refused_up_front() {
    let Some(env) = kvm_env() else { return };
    let cluster = env.home().join("cluster.yaml");
    let original = std::fs::read_to_string(&cluster).unwrap();
    for (network, expected) in [
        ("    bridge: virbr0\n    vlan: 10\n", "Open vSwitch"),
        ("    bridge: nepho-nobr0\n", "does not exist"),
    ] {
        let text = original.replacen(
            "networks:\n  - name: default\n",
            &format!("networks:\n  - name: default\n{network}"),
            1,
        );
        std::fs::write(&cluster, text).unwrap();
        let name = unique("br");
        let refused = env.run(&["create", "hello", "--name", &name]).code(4);
        assert!(refused.stderr.contains(expected), "{}", refused.stderr);
        assert_nothing_left(&name);
    }
}
