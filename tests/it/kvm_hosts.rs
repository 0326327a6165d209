//! The KVM provider on two libvirt hosts, end to end through the binary: this machine's
//! libvirtd (`h1`) and a second libvirtd in its own mount namespace (`h2`,
//! `scripts/setup/host2.sh`). The bundled `hello` cloudlet with its boot disk on an iSCSI LUN
//! lands on h2; h2 dies; `cluster:failover h2` restarts it on h1, where it answers over ssh;
//! destroy leaves no domain on either host, no LUN, no volume or seed. And `cluster:watch`
//! does the same by itself when h2 stays down.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::support::{Env, repo_root};

/// Both tests stop and start host2: one at a time.
static HOST2: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Also across processes (providers/kvm/tests/hosts.rs uses host2 too).
fn host2_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/nepho-host2.lock")
        .unwrap();
    f.lock().unwrap();
    f
}

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn host2(action: &str) -> (bool, String) {
    let (ok, out) = sh(&format!(
        "timeout 120 {}/scripts/setup/host2.sh {action}",
        repo_root().display()
    ));
    (ok, out.trim().to_string())
}

fn domains(uri: &str, name: &str) -> Vec<String> {
    let (_, out) = sh(&format!("virsh -q -c '{uri}' list --all --name"));
    out.lines()
        .filter(|l| l.contains(name))
        .map(str::to_string)
        .collect()
}

fn targets(name: &str) -> Vec<String> {
    let (_, out) = sh("tgtadm --lld iscsi --op show --mode target");
    out.lines()
        .filter(|l| l.starts_with("Target ") && l.contains(name))
        .map(str::to_string)
        .collect()
}

/// Removes whatever the test left, also when it failed (host2 is started for that).
struct Cleanup<'a> {
    env: &'a Env,
    name: String,
    h2: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = host2("start");
        let _ = self.env.run(&["destroy", &self.name]);
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

struct Setup {
    env: Env,
    h2: String,
    storage: PathBuf,
}

/// An Env whose cluster file has h2 (first, first-fit: machines go there) and h1; `None` when
/// the test must be skipped.
fn two_hosts() -> Option<Setup> {
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
        "hosts:\n  - name: h2\n    uri: '{h2}'\n    cpus: 2\n    memory_mb: 1024\n    dir: {s}/h2\n  - name: h1\n    uri: qemu:///system\n    cpus: 2\n    memory_mb: 1024\n    dir: {s}/h1\nnetworks:\n  - name: default\nstorage:\n  dir: {s}/vols\n  iscsi:\n    portal: 127.0.0.1:3260\n    iqn_prefix: iqn.2024-01.test.nepho\n    tgtadm: local\n    dir: {s}/luns\n    allow: 127.0.0.1\nimages:\n  tiny: /var/cache/nepho-test/images/tiny-guest.qcow2\ndomain_type: qemu\nplacement: first-fit\nready_timeout_s: 180\nshutdown_timeout_s: 20\n"
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

    env.run(&["destroy", &name]).ok();
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

    let mut watcher = env
        .nepho()
        .args([
            "-o",
            "json",
            "cluster:watch",
            "--interval",
            "1",
            "--grace",
            "3",
            "--timeout",
            "150",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (ok, _) = host2("stop");
    assert!(ok);
    let t_down = Instant::now();
    let mut seen = String::new();
    while !seen.contains("\"status\": \"moved\"") {
        match rx.recv_timeout(std::time::Duration::from_secs(150)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => break,
        }
    }
    let _ = watcher.kill();
    let out = watcher.wait_with_output().unwrap();
    let moved_after = t_down.elapsed().as_secs_f64();
    assert!(
        seen.contains("\"status\": \"moved\"") && seen.contains("\"to\": \"h1\""),
        "watch output: {seen}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(domains("qemu:///system", &name).len(), 1, "now on h1");
    let ssh = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(ssh.stdout.contains("Hello from nepho"), "{}", ssh.stdout);

    let (ok, _) = host2("start");
    assert!(ok);
    env.run(&["destroy", &name]).ok();
    assert!(domains("qemu:///system", &name).is_empty());
    assert!(domains(&h2, &name).is_empty());
    assert!(targets(&name).is_empty());
    let _ = std::fs::remove_dir_all(&storage);
    eprintln!(
        "kvm_hosts: cluster:watch moved the machine {moved_after:.1} s after host2 died (grace 3 s)"
    );
}
