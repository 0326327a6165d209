//! The KVM provider on two libvirt hosts, end to end through the binary: this machine's
//! libvirtd (`h1`) and a second libvirtd in its own mount namespace (`h2`,
//! `scripts/setup/host2.sh`). The bundled `hello` cloudlet with its boot disk on an iSCSI LUN
//! lands on h2; h2 dies; `cluster:failover h2` restarts it on h1, where it answers over ssh;
//! destroy leaves no domain on either host, no LUN, no volume or seed. And `cluster:watch`
//! does the same by itself when h2 stays down.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Env, repo_root, wait_until};

/// Both tests stop and start host2: one at a time.
pub(crate) static HOST2: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Also across processes (providers/kvm/tests/hosts.rs uses host2 too).
pub(crate) fn host2_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/nepho-host2.lock")
        .unwrap();
    f.lock().unwrap();
    f
}

pub(crate) fn sh(script: &str) -> (bool, String) {
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub(crate) fn host2(action: &str) -> (bool, String) {
    let (ok, out) = sh(&format!(
        "timeout 120 {}/scripts/setup/host2.sh {action}",
        repo_root().display()
    ));
    (ok, out.trim().to_string())
}

pub(crate) fn domains(uri: &str, name: &str) -> Vec<String> {
    let (_, out) = sh(&format!("virsh -q -c '{uri}' list --all --name"));
    out.lines()
        .filter(|l| l.contains(name))
        .map(str::to_string)
        .collect()
}

pub(crate) fn targets(name: &str) -> Vec<String> {
    let (_, out) = sh("tgtadm --lld iscsi --op show --mode target");
    out.lines()
        .filter(|l| l.starts_with("Target ") && l.contains(name))
        .map(str::to_string)
        .collect()
}

/// Removes whatever the test left, also when it failed (host2 is started for that).
pub(crate) struct Cleanup<'a> {
    pub(crate) env: &'a Env,
    pub(crate) name: String,
    pub(crate) h2: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.env.run(&["cluster:watch", "--stop"]);
        let _ = host2("start");
        let _ = self.env.run(&["destroy", &self.name, "--yes"]);
        for uri in ["qemu:///system", self.h2.as_str()] {
            for d in domains(uri, &self.name) {
                sh(&format!(
                    "virsh -c '{uri}' destroy {d}; virsh -c '{uri}' undefine {d}"
                ));
            }
        }
        for t in targets(&self.name) {
            if let Some(tid) = t.strip_prefix("Target ").and_then(|r| r.split(':').next()) {
                sh(&format!(
                    "tgtadm --lld iscsi --op delete --mode target --tid {tid} --force"
                ));
            }
        }
    }
}

pub(crate) struct Setup {
    pub(crate) env: Env,
    pub(crate) h2: String,
    pub(crate) storage: PathBuf,
}

/// An Env whose cluster file has h2 (first, first-fit: machines go there) and h1; `None` when
/// the test must be skipped. h1 is this machine's libvirtd, where other tests run machines at
/// the same time: it is made big, so that their load hardly counts against it.
pub(crate) fn two_hosts() -> Option<Setup> {
    let libvirt =
        sh("command -v virsh && command -v libvirtd && virsh -c qemu:///system version").0;
    if !libvirt {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install and start libvirtd (scripts/test does)"
        );
        eprintln!("SKIPPED: libvirt is not installed or libvirtd is not running");
        return None;
    }
    let (ok, _) = host2("start");
    assert!(ok, "scripts/setup/host2.sh start failed");
    let (_, h2) = host2("uri");
    let mut env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let dir = env.path("kvm");
    std::fs::create_dir_all(&dir).unwrap();
    let storage: PathBuf = tempfile::Builder::new()
        .prefix("nepho-it-hosts.")
        .tempdir_in("/var/tmp")
        .unwrap()
        .keep();
    std::fs::set_permissions(
        &storage,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let s = storage.display();
    let cluster = format!(
        "hosts:\n  - name: h2\n    uri: '{h2}'\n    cpus: 2\n    memory_mb: 1024\n    dir: {s}/h2\n  - name: h1\n    uri: qemu:///system\n    cpus: 64\n    memory_mb: 65536\n    dir: {s}/h1\nnetworks:\n  - name: default\nstorage:\n  dir: {s}/vols\n  iscsi:\n    portal: 127.0.0.1:3260\n    iqn_prefix: iqn.2024-01.test.nepho\n    tgtadm: local\n    dir: {s}/luns\n    allow: 127.0.0.1\nimages:\n  tiny: /var/cache/nepho-test/images/tiny-guest.qcow2\ndomain_type: qemu\nplacement: first-fit\nready_timeout_s: 180\nshutdown_timeout_s: 20\n"
    );
    let cluster_file = dir.join("cluster.yaml");
    std::fs::write(&cluster_file, cluster).unwrap();
    env.vars
        .push(("NEPHO_CLUSTER".into(), cluster_file.display().to_string()));
    Some(Setup { env, h2, storage })
}

fn create_on_h2(env: &Env, h2: &str, name: &str) {
    let created = env.run(&[
        "-o",
        "json",
        "create",
        "hello",
        "--name",
        name,
        "--set",
        "disk_storage=iscsi",
        "--set",
        "swap_mb=64",
    ]);
    let created = created.ok().json();
    assert_eq!(created["status"], "succeeded", "{created}");
    assert_eq!(domains(h2, name).len(), 1, "on h2");
    assert!(domains("qemu:///system", name).is_empty());
    assert_eq!(targets(name).len(), 1);
}

#[test]
fn kvm_two_hosts_failover_of_an_iscsi_machine() {
    let _lock = HOST2.lock().unwrap_or_else(|e| e.into_inner());
    let _host2 = host2_lock();
    let Some(Setup { env, h2, storage }) = two_hosts() else {
        return;
    };
    let s = storage.display();
    let t0 = Instant::now();
    let name = format!("foit{}", std::process::id());
    let _cleanup = Cleanup {
        env: &env,
        name: name.clone(),
        h2: h2.clone(),
    };

    // Failover of a live host is refused with a readable reason.
    let refused = env.run(&["cluster:failover", "h2"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("is reachable"),
        "{}",
        refused.stderr
    );

    create_on_h2(&env, &h2, &name);
    let t_created = t0.elapsed().as_secs_f64();

    // Usage per iSCSI export and per address, read from tgtd and the running QEMU.
    let usage = env
        .run(&["-o", "json", "cluster:usage", "--formation", &name])
        .ok()
        .json();
    let disks = usage["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 2, "{usage}");
    let swap = disks.iter().find(|d| d["kind"] == "swap").unwrap();
    assert_eq!(swap["capacity_bytes"], 64u64 << 20, "{usage}");
    assert!(swap["file"].as_str().unwrap().contains("/h2/"), "{usage}");
    assert_eq!(swap_kib(&env, &name, "hello"), 65532, "swap in the guest");
    let d = disks.iter().find(|d| d["kind"] == "iscsi").unwrap();
    assert_eq!(
        (d["kind"].as_str(), d["host"].as_str()),
        (Some("iscsi"), Some("h2"))
    );
    assert!(
        d["export"].as_str().unwrap().ends_with(":hello/1"),
        "{usage}"
    );
    assert_eq!(d["capacity_bytes"], 1u64 << 30, "{usage}");
    assert!(d["allocated_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        d["read_bytes"].as_u64().unwrap() > 0,
        "it booted from it: {usage}"
    );
    assert_eq!(d["sessions"].as_array().unwrap().len(), 1, "{usage}");
    let a = &usage["addresses"][0];
    assert!(
        a["ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("192.168.124.")),
        "{usage}"
    );
    assert!(
        a["rx_bytes"].as_u64().unwrap() > 0 && a["tx_bytes"].as_u64().unwrap() > 0,
        "{usage}"
    );
    let table = env.run(&["cluster:usage"]).ok().stdout;
    assert!(
        table.contains("SESSIONS") && table.contains(&name),
        "{table}"
    );

    let status = env.run(&["-o", "json", "cluster:status"]).ok().json();
    let hosts = status["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let on = |host: &str, status: &serde_json::Value| -> bool {
        status["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == host)
            .unwrap()["machines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["formation"] == name.as_str() && m["state"] == "running")
    };
    assert!(on("h2", &status), "{status}");

    // h2 dies; its machine moves to h1 and answers there.
    let (ok, _) = host2("stop");
    assert!(ok);
    let t_fail = Instant::now();
    let moved = env.run(&["-o", "json", "cluster:failover", "h2"]);
    let failover_s = t_fail.elapsed().as_secs_f64();
    let moved = moved.ok().json();
    let m = &moved["machines"][0];
    assert_eq!(moved["machines"].as_array().unwrap().len(), 1, "{moved}");
    assert_eq!(
        (
            m["machine"].as_str(),
            m["status"].as_str(),
            m["to"].as_str()
        ),
        (Some("hello"), Some("moved"), Some("h1")),
        "{moved}"
    );
    assert_eq!(domains("qemu:///system", &name).len(), 1, "now on h1");
    let ssh = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(ssh.stdout.contains("Hello from nepho"), "{}", ssh.stdout);
    // Local swap did not keep it from moving: a blank one on h1, swap again in the guest.
    assert_eq!(swap_kib(&env, &name, "hello"), 65532);
    let (_, swap_files) = sh(&format!("find {s}/h1 -name 'hello-swap.raw'"));
    assert_eq!(swap_files.lines().count(), 1, "{swap_files}");

    let status = env.run(&["-o", "json", "cluster:status"]).ok().json();
    assert!(on("h1", &status), "{status}");
    let h2_row = status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "h2")
        .unwrap()
        .clone();
    assert_eq!(h2_row["reachable"], false);
    let table = env.run(&["cluster:status"]).ok().stdout;
    assert!(table.contains("NO"), "{table}");
    let describe = env
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .stdout;
    assert!(describe.contains("host h1"), "{describe}");

    // h2 returns with its stale copy: the next look at the cluster removes it.
    let (ok, _) = host2("start");
    assert!(ok);
    assert_eq!(domains(&h2, &name).len(), 1, "the stale copy is back");
    let list = env.run(&["-o", "json", "formation:list"]).ok().stdout;
    assert!(list.contains(&name), "{list}");
    assert!(
        domains(&h2, &name).is_empty(),
        "the stale copy must be undefined"
    );

    env.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains("qemu:///system", &name).is_empty());
    assert!(domains(&h2, &name).is_empty());
    assert!(targets(&name).is_empty(), "{:?}", targets(&name));
    let (_, left) = sh(&format!("find {s} -path '*{name}*'"));
    assert!(left.trim().is_empty(), "left behind: {left}");
    let _ = std::fs::remove_dir_all(&storage);
    eprintln!(
        "kvm_hosts: create on h2 {t_created:.1} s, failover to h1 (until ssh-ready) {failover_s:.1} s, whole test {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn kvm_cluster_watch_fails_over_a_host_that_stays_down() {
    let _lock = HOST2.lock().unwrap_or_else(|e| e.into_inner());
    let _host2 = host2_lock();
    let Some(Setup { env, h2, storage }) = two_hosts() else {
        return;
    };
    let name = format!("foitw{}", std::process::id());
    let _cleanup = Cleanup {
        env: &env,
        name: name.clone(),
        h2: h2.clone(),
    };
    create_on_h2(&env, &h2, &name);

    // The watcher runs in the background (its own session), one per nepho home.
    let started = env
        .run(&[
            "-o",
            "json",
            "cluster:watch",
            "--detach",
            "--interval",
            "1",
            "--grace",
            "3",
            "--timeout",
            "300",
        ])
        .ok()
        .json();
    let pid = started["pid"].as_u64().unwrap();
    let (_, sid) = sh(&format!("ps -o sid= -p {pid}"));
    assert_eq!(sid.trim(), pid.to_string(), "a session of its own");
    let status = env
        .run(&["-o", "json", "cluster:watch", "--status"])
        .ok()
        .json();
    assert_eq!(
        (status["running"].as_bool(), status["pid"].as_u64()),
        (Some(true), Some(pid))
    );
    let again = env.run(&["cluster:watch", "--detach"]);
    assert_eq!(again.code, 6, "one watcher only: {}", again.stderr);
    let log = std::path::PathBuf::from(status["log"].as_str().unwrap());

    std::thread::sleep(std::time::Duration::from_secs(2));
    let (ok, _) = host2("stop");
    assert!(ok);
    let t_down = Instant::now();
    let mut seen = String::new();
    while t_down.elapsed() < Duration::from_secs(180) {
        seen = std::fs::read_to_string(&log).unwrap_or_default();
        if seen.contains("\"status\": \"moved\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let moved_after = t_down.elapsed().as_secs_f64();
    assert!(
        seen.contains("\"status\": \"moved\"") && seen.contains("\"to\": \"h1\""),
        "watch log: {seen}"
    );
    assert!(seen.contains("host h2 is down: failover done"), "{seen}");
    env.run(&["cluster:watch", "--stop"]).ok();
    let stopped = env.run(&["cluster:watch", "--status"]);
    assert_eq!(stopped.code, 3, "{}", stopped.stdout);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the watcher exited (or is a zombie nobody reaped yet): {stat}"
    );
    assert_eq!(domains("qemu:///system", &name).len(), 1, "now on h1");
    let ssh = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(ssh.stdout.contains("Hello from nepho"), "{}", ssh.stdout);

    let (ok, _) = host2("start");
    assert!(ok);
    env.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains("qemu:///system", &name).is_empty());
    assert!(domains(&h2, &name).is_empty());
    assert!(targets(&name).is_empty());
    let _ = std::fs::remove_dir_all(&storage);
    eprintln!(
        "kvm_hosts: cluster:watch moved the machine {moved_after:.1} s after host2 died (grace 3 s)"
    );
}

/// The size of the machine's swap (KiB in `/proc/swaps`) on the disk with serial nepho-swap
/// (the guest's own name for it depends on PCI order, not on libvirt's `vdz`).
fn swap_kib(env: &Env, name: &str, machine: &str) -> u64 {
    let script = "for b in /sys/block/vd*; do [ \"$(cat $b/serial 2>/dev/null)\" = nepho-swap ] && grep \"^/dev/${b##*/} \" /proc/swaps; done; true";
    let out = env.run(&["ssh", name, machine, "--", script]).ok().stdout;
    out.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no swap on the nepho-swap disk: {out}"))
}

/// Reads the marker written at 600 MiB into a machine's boot disk (past the tiny guest's
/// partition, so it survives reboots): it proves the disk itself travelled.
fn disk_marker(env: &Env, name: &str, machine: &str) -> String {
    env.run(&[
        "ssh",
        name,
        machine,
        "--",
        "dd if=/dev/vda bs=1M skip=600 count=1 2>/dev/null | head -c 32",
    ])
    .ok()
    .stdout
    .trim_end_matches('\0')
    .to_string()
}

#[test]
fn kvm_offline_migration_and_rebalance_between_two_hosts() {
    let _lock = HOST2.lock().unwrap_or_else(|e| e.into_inner());
    let _host2 = host2_lock();
    let Some(Setup { env, h2, storage }) = two_hosts() else {
        return;
    };
    let s = storage.display();
    let name = format!("mgit{}", std::process::id());
    let _cleanup = Cleanup {
        env: &env,
        name: name.clone(),
        h2: h2.clone(),
    };
    let h1 = "qemu:///system";
    let dom = |m: &str| format!("nepho-{name}-{m}");
    let on = |uri: &str, m: &str| domains(uri, &name).contains(&dom(m));
    let alive = |m: &str| {
        let ssh = env.run(&["ssh", &name, m, "--", "echo", "alive"]).ok();
        assert_eq!(ssh.stdout.trim(), "alive", "{m}");
    };

    // Two qcow2 machines, both on the small h2 (first-fit): half of its memory.
    let created = env
        .run(&[
            "-o",
            "json",
            "create",
            "hello",
            "--name",
            &name,
            "--set",
            "count=2",
            "--set",
            "swap_mb=32",
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    assert!(on(&h2, "hello-1") && on(&h2, "hello-2"));
    let usage = env
        .run(&["-o", "json", "cluster:usage", "--formation", &name])
        .ok()
        .json();
    for d in usage["disks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] != "swap")
    {
        assert_eq!(d["kind"], "qcow2", "{usage}");
        assert_eq!(d["capacity_bytes"], 1u64 << 30, "{usage}");
        assert!(d["allocated_bytes"].as_u64().unwrap() > 0, "{usage}");
    }
    let marker = format!("nepho-marker-{name}");
    env.run(&[
        "ssh",
        &name,
        "hello-1",
        "--",
        &format!(
            "printf '%s' {marker} | dd of=/dev/vda bs=1M seek=600 conv=notrunc,fsync 2>/dev/null && sync"
        ),
    ])
    .ok();
    assert_eq!(disk_marker(&env, &name, "hello-1"), marker);

    // The plan only: both would go to the big, nearly empty h1; nothing moves.
    let plan = env
        .run(&["-o", "json", "cluster:rebalance", "--dry-run"])
        .ok()
        .json();
    let moves = plan["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 2, "{plan}");
    for m in moves {
        assert_eq!(
            (m["from"].as_str(), m["to"].as_str(), m["status"].as_str()),
            (Some("h2"), Some("h1"), Some("planned")),
            "{plan}"
        );
        assert_eq!(m["mode"], "offline", "qcow2 disks: {plan}");
    }
    assert_eq!(plan["before"]["h2"], 0.5, "{plan}");
    assert_eq!(plan["after"]["h2"], 0.0, "{plan}");
    assert!(on(&h2, "hello-1") && on(&h2, "hello-2"));

    // Bad destinations: refused before anything stops.
    let same = env.run(&["cluster:migrate", &name, "hello-1", "--to", "h2"]);
    assert_eq!(same.code, 4, "{}", same.stderr);
    assert!(
        same.stderr.contains("already runs on host h2"),
        "{}",
        same.stderr
    );
    let unknown = env.run(&["cluster:migrate", &name, "hello-1", "--to", "nosuch"]);
    assert_eq!(unknown.code, 4, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("hosts: h2, h1"),
        "{}",
        unknown.stderr
    );

    // --live is refused for a qcow2 machine, before anything stops.
    let live = env.run(&["cluster:migrate", &name, "hello-1", "--to", "h1", "--live"]);
    assert_eq!(live.code, 4, "{}", live.stderr);
    assert!(live.stderr.contains("qcow2"), "{}", live.stderr);
    assert!(on(&h2, "hello-1") && !on(h1, "hello-1"));

    // A move that fails half-way (h1's formation directory cannot be made) puts it all back,
    // running and reachable.
    let blocker = storage.join("h1").join(&name);
    std::fs::create_dir_all(storage.join("h1")).unwrap();
    let _ = std::fs::remove_dir_all(&blocker);
    std::fs::write(&blocker, "not a directory").unwrap();
    let failed = env.run(&["cluster:migrate", &name, "hello-1", "--to", "h1"]);
    assert_eq!(failed.code, 5, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("nothing changed"),
        "{}",
        failed.stderr
    );
    std::fs::remove_file(&blocker).unwrap();
    assert!(on(&h2, "hello-1") && !on(h1, "hello-1"));
    assert_eq!(disk_marker(&env, &name, "hello-1"), marker, "back on h2");

    // Rebalancing for real, one move: a running machine goes to h1 and runs there.
    let done = env
        .run(&["-o", "json", "cluster:rebalance", "--max-moves", "1"])
        .ok()
        .json();
    let moves = done["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{done}");
    let m = &moves[0];
    assert_eq!(
        (m["status"].as_str(), m["from"].as_str(), m["to"].as_str()),
        (Some("moved"), Some("h2"), Some("h1")),
        "{done}"
    );
    assert_eq!(m["was_running"], true);
    assert_eq!(m["mode"], "offline", "{done}");
    assert!(m["copied_bytes"].as_u64().unwrap() > 0, "{done}");
    assert!(
        m["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("192.168.122.")),
        "{done}"
    );
    let first = m["machine"].as_str().unwrap().to_string();
    let other = if first == "hello-1" {
        "hello-2"
    } else {
        "hello-1"
    };
    assert!(on(h1, &first) && !on(&h2, &first) && on(&h2, other));
    alive(&first);
    assert_eq!(swap_kib(&env, &name, &first), 32764, "a blank swap on h1");
    let (_, left) = sh(&format!("find {s}/h2 -name '{first}*'"));
    assert!(left.trim().is_empty(), "h2 keeps no copy: {left}");

    // A stopped machine moves stopped (the allocator picks the only other host) and starts
    // there later.
    env.run(&["formation:stop", &name, other]).ok();
    let moved = env
        .run(&["-o", "json", "cluster:migrate", &name, other])
        .ok()
        .json();
    assert_eq!(
        (moved["to"].as_str(), moved["was_running"].as_bool()),
        (Some("h1"), Some(false)),
        "{moved}"
    );
    assert!(on(h1, other) && !on(&h2, other));
    let (_, state) = sh(&format!("virsh -c {h1} domstate {}", dom(other)));
    assert_eq!(state.trim(), "shut off");
    env.run(&["formation:start", &name, other]).ok();
    // start returns once the domain runs; ssh answers when the guest has booted.
    wait_until("ssh after start", Duration::from_secs(180), || {
        env.run(&["ssh", &name, other, "--", "true"]).code == 0
    });
    alive(other);

    // An ISO in hello-1's spare drive stays in it across the move.
    let scratch = crate::kvm::Scratch::new("mgiso");
    let iso = crate::kvm::make_iso(&scratch.0, "travels along");
    env.run(&[
        "formation:attach-iso",
        &name,
        iso.to_str().unwrap(),
        "-m",
        "hello-1",
    ])
    .ok();

    // And back to h2 by name: the disk travelled both ways.
    let back = env
        .run(&[
            "-o",
            "json",
            "cluster:migrate",
            &name,
            "hello-1",
            "--to",
            "h2",
        ])
        .ok()
        .json();
    assert_eq!(back["status"], "moved", "{back}");
    assert!(on(&h2, "hello-1") && !on(h1, "hello-1"));
    assert_eq!(
        disk_marker(&env, &name, "hello-1"),
        marker,
        "the disk moved"
    );
    let (_, blk) = sh(&format!("virsh -c '{h2}' domblklist {}", dom("hello-1")));
    assert!(
        blk.lines()
            .any(|l| l.contains("hdd") && l.contains(iso.to_str().unwrap())),
        "the ISO is still in the spare drive: {blk}"
    );
    let describe = env.run(&["formation:describe", &name]).ok().stdout;
    assert!(describe.contains("host h2"), "{describe}");

    // Maintenance on h2: evacuate it (the plan, then for real).
    let plan = env
        .run(&["-o", "json", "cluster:evacuate", "h2", "--dry-run"])
        .ok()
        .json();
    let moves = plan["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{plan}");
    assert_eq!(
        (moves[0]["machine"].as_str(), moves[0]["to"].as_str()),
        (Some("hello-1"), Some("h1")),
        "{plan}"
    );
    assert!(on(&h2, "hello-1"), "a plan moves nothing");
    let done = env
        .run(&["-o", "json", "cluster:evacuate", "h2"])
        .ok()
        .json();
    assert_eq!(done["moves"][0]["status"], "moved", "{done}");
    assert!(domains(&h2, &name).is_empty() && on(h1, "hello-1") && on(h1, "hello-2"));
    let (_, blk) = sh(&format!("virsh -c {h1} domblklist {}", dom("hello-1")));
    assert!(blk.contains(iso.to_str().unwrap()), "{blk}");
    let empty = env.run(&["cluster:evacuate", "h2"]).ok();
    assert!(
        empty.stdout.contains("no nepho machines"),
        "{}",
        empty.stdout
    );
    let unknown = env.run(&["cluster:evacuate", "h9"]);
    assert_eq!(unknown.code, 4, "{}", unknown.stderr);

    // Every change is an event: the stop, the ISO and each move are in the formation's
    // journal (versioned, with a level and typed data); the moves are in the cluster's too.
    let events: Vec<serde_json::Value> = env
        .run(&["-o", "json", "formation:events", &name])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = |kind: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["status"] == "succeeded")
            .collect()
    };
    let stop = done("power");
    assert!(
        stop.iter().any(|e| e["data"]["operation"] == "power"
            && e["data"]["action"] == "stop"
            && e["data"]["machine"] == other),
        "{events:?}"
    );
    let media = done("media");
    assert!(
        media
            .iter()
            .any(|e| e["data"]["iso"] == iso.to_str().unwrap()),
        "{events:?}"
    );
    let moves = done("migrate");
    assert!(
        moves
            .iter()
            .any(|e| e["data"]["machine"] == "hello-1" && e["data"]["to"] == "h2"),
        "{events:?}"
    );
    assert!(
        moves.len() >= 3,
        "three moves of this formation: {events:?}"
    );
    for e in stop.iter().chain(&media).chain(&moves) {
        assert_eq!(
            (&e["v"], &e["level"]),
            (&serde_json::json!(1), &serde_json::json!("info")),
            "{e}"
        );
    }
    let cluster = env.run(&["-o", "json", "cluster:events"]).ok().stdout;
    assert!(
        cluster.contains("\"kind\":\"migrate\"") && cluster.contains("\"kind\":\"evacuate\""),
        "{cluster}"
    );

    env.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(h1, &name).is_empty() && domains(&h2, &name).is_empty());
    let (_, left) = sh(&format!("find {s} -path '*{name}*'"));
    assert!(left.trim().is_empty(), "left behind: {left}");
    let _ = std::fs::remove_dir_all(&storage);
}
