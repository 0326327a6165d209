//! Live migration between the two test libvirt hosts (this machine's libvirtd `h1` and
//! `scripts/setup/host2.sh`'s `h2`, which has a host UUID of its own), end to end through the
//! binary: the bundled `hello` cloudlet with its boot disk on an iSCSI LUN and its NIC on
//! `nepho-shared` (a segment both hosts share: host1's NAT network, bridged into host2) moves
//! h1 → h2 with `cluster:migrate --live` while a client keeps talking to it; an evacuation of
//! h2 while h1's migration ports are firewalled falls back to an offline move; it moves live
//! to h2 again, and an evacuation of h2 brings it back live. Measured: the longest gap a client saw and the total
//! time of the move (printed).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::kvm_hosts::{Cleanup, HOST2, domains, host2, host2_lock, sh, targets};
use crate::support::{Env, repo_root};

const SHARED_NET: &str = "nepho-shared";

/// The lockspace both test libvirtds use (scripts/setup/lockd-conf.sh).
fn lockspace() -> String {
    std::env::var("NEPHO_LOCKSPACE").unwrap_or_else(|_| "/var/lib/nepho/lockspace".into())
}

/// h1 first (first-fit: machines are created there), then h2; the shared network and the
/// lockspace. `None` when the test must be skipped.
fn setup() -> Option<(Env, String, PathBuf)> {
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
    let (ok, _) = sh(&format!(
        "{}/scripts/setup/tgtd.sh start 3260 >&2",
        repo_root().display()
    ));
    assert!(ok, "tgtd");
    let (_, h2) = host2("uri");
    let mut env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let storage: PathBuf = tempfile::Builder::new()
        .prefix("nepho-it-live.")
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
        "hosts:\n  - name: h1\n    uri: qemu:///system\n    cpus: 64\n    memory_mb: 65536\n    dir: {s}/h1\n  - name: h2\n    uri: '{h2}'\n    cpus: 2\n    memory_mb: 1024\n    dir: {s}/h2\nnetworks:\n  - name: default\n  - name: {SHARED_NET}\nstorage:\n  dir: {s}/vols\n  lockspace: {}\n  iscsi:\n    portal: 127.0.0.1:3260\n    iqn_prefix: iqn.2024-01.test.nepho\n    tgtadm: local\n    dir: {s}/luns\n    allow: 127.0.0.1\nimages:\n  tiny: /var/cache/nepho-test/images/tiny-guest.qcow2\ndomain_type: qemu\nplacement: first-fit\nready_timeout_s: 180\nshutdown_timeout_s: 20\n",
        lockspace()
    );
    let dir = env.path("kvm");
    std::fs::create_dir_all(&dir).unwrap();
    let cluster_file = dir.join("cluster.yaml");
    std::fs::write(&cluster_file, cluster).unwrap();
    env.vars
        .push(("NEPHO_CLUSTER".into(), cluster_file.display().to_string()));
    Some((env, h2, storage))
}

/// What a client loop saw: answers, failures, and the longest time without an answer.
#[derive(Debug, Default)]
struct Seen {
    answered: usize,
    lost: Vec<String>,
    longest_gap: Duration,
}

/// Runs `probe` back to back (with `pause` between) until `stop`, timing the answers.
fn client_loop(
    stop: Arc<AtomicBool>,
    pause: Duration,
    mut probe: impl FnMut(usize) -> Result<(), String> + Send + 'static,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut seen = Seen::default();
        let mut last = Instant::now();
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            match probe(n) {
                Ok(()) => {
                    seen.longest_gap = seen.longest_gap.max(last.elapsed());
                    last = Instant::now();
                    seen.answered += 1;
                }
                Err(e) => seen.lost.push(format!("#{n}: {e}")),
            }
            std::thread::sleep(pause);
        }
        seen.longest_gap = seen.longest_gap.max(last.elapsed());
        seen
    })
}

/// A TCP connection to the guest's sshd that reads its banner (the guest itself answers).
fn banner(addr: SocketAddr) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    if buf.starts_with(b"SSH-") {
        Ok(())
    } else {
        Err(format!("banner {:?}", String::from_utf8_lossy(&buf)))
    }
}

/// One ssh command to the guest with the formation's key: `echo N` must come back.
fn ssh_echo(key: &Path, ip: &str, n: usize) -> Result<(), String> {
    let out = Command::new("ssh")
        .args([
            "-i",
            &key.to_string_lossy(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            &format!("root@{ip}"),
            &format!("echo {n}"),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && said == n.to_string() {
        Ok(())
    } else {
        Err(format!(
            "exit {:?}, stdout {said:?}, stderr {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `nepho ssh NAME -- echo N` (nepho finds the machine on whichever host runs it).
fn nepho_ssh_echo(base: &Command, name: &str, n: usize) -> Result<(), String> {
    let mut cmd = Command::new(base.get_program());
    cmd.env_clear();
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    if let Some(dir) = base.get_current_dir() {
        cmd.current_dir(dir);
    }
    let out = cmd
        .args(["ssh", name, "--", "echo", &n.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && said == n.to_string() {
        Ok(())
    } else {
        Err(format!(
            "exit {:?}, stdout {said:?}, stderr {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `nepho -o json cluster:migrate NAME hello --to HOST --live`.
fn migrate_live(env: &Env, name: &str, to: &str) -> crate::support::Run {
    env.run(&[
        "-o",
        "json",
        "cluster:migrate",
        name,
        "hello",
        "--to",
        to,
        "--live",
    ])
}

/// host1's incoming-migration ports (libvirt's default range; host2 uses 49300-49363).
const H1_MIGRATION_PORTS: &str = "49152:49215";

/// Connections to these local ports are refused (reset) while it lives.
struct PortBlock(String);

impl PortBlock {
    fn new(ports: &str) -> Self {
        let rule = format!("INPUT -i lo -p tcp --dport {ports} -j REJECT --reject-with tcp-reset");
        let (ok, out) = sh(&format!("iptables -I {rule} 2>&1"));
        assert!(ok, "iptables: {out}");
        PortBlock(rule)
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        sh(&format!("iptables -D {}", self.0));
    }
}

/// The pid holding the lock on a lease file (from /proc/locks), if any.
fn lease_holder(file: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(file).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // "15: POSIX  ADVISORY  WRITE 19637 fe:00:1015834 0 0"
        let dev_ino = w.get(5)?;
        (dev_ino.rsplit(':').next()? == ino.to_string())
            .then(|| w.get(4)?.parse().ok())
            .flatten()
    })
}

fn pid_file(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn kvm_live_migration_keeps_an_iscsi_machine_answering() {
    let _lock = HOST2.lock().unwrap_or_else(|e| e.into_inner());
    let _host2 = host2_lock();
    let Some((env, h2, storage)) = setup() else {
        return;
    };
    let s = storage.display();
    let name = format!("lmit{}", std::process::id());
    let _cleanup = Cleanup {
        env: &env,
        name: name.clone(),
        h2: h2.clone(),
    };
    let h1 = "qemu:///system";
    let dom = format!("nepho-{name}-hello");
    let on = |uri: &str| domains(uri, &name).contains(&dom);

    // One boot: an iSCSI machine on the shared segment, on h1.
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
            "--set",
            &format!("network={SHARED_NET}"),
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    assert!(on(h1) && !on(&h2));
    let (_, addr) = sh(&format!("virsh -q -c {h1} domifaddr {dom}"));
    let ip = addr
        .split_whitespace()
        .find_map(|w| w.strip_suffix("/24"))
        .unwrap_or_else(|| panic!("no address: {addr}"))
        .to_string();
    assert!(ip.starts_with("192.168.126."), "{ip}");
    let key = env
        .home()
        .join("state/formations")
        .join(&name)
        .join("work/id_ed25519");
    assert!(key.exists(), "{}", key.display());
    let lease = Path::new(&lockspace()).join(format!("nepho-iqn.2024-01.test.nepho:{name}:hello"));
    let h1_lockd = pid_file("/run/virtlockd.pid");
    let h2_lockd = pid_file("/run/nepho-host2/virtlockd.pid").expect("host2's virtlockd");
    let holder = lease_holder(&lease);
    assert!(
        holder.is_some() && holder != Some(h2_lockd),
        "h1 holds the lease: {holder:?}"
    );
    if let Some(pid) = h1_lockd {
        assert_eq!(holder, Some(pid), "h1's virtlockd holds the lease");
    }

    // Refused, with nothing changed: a local qcow2 drive (hot-plugged, so no second boot).
    env.run(&[
        "formation:add-drive",
        &name,
        "--size-gb",
        "1",
        "--storage",
        "qcow2",
    ])
    .ok();
    let refused = env.run(&["cluster:migrate", &name, "hello", "--to", "h2", "--live"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot move live") && refused.stderr.contains("qcow2"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("without --live"),
        "a hint: {}",
        refused.stderr
    );
    assert!(on(h1) && !on(&h2));
    let (_, state) = sh(&format!("virsh -c {h1} domstate {dom}"));
    assert_eq!(state.trim(), "running");
    env.run(&["formation:remove-drive", &name, "disk1"]).ok();

    // A library ISO in its spare drive: each host has its own copy, and the move uses h2's.
    let iso = crate::kvm::make_iso(&storage, "from the library");
    env.run(&["iso:add", "tools", iso.to_str().unwrap()]).ok();
    let library_iso = |host: &str| format!("{s}/{host}/_library/isos/tools.iso");
    env.run(&["formation:attach-iso", &name, "tools"]).ok();
    let (_, xml) = sh(&format!("virsh -c {h1} dumpxml {dom}"));
    assert!(xml.contains(&library_iso("h1")), "{xml}");

    // Clients talk to it throughout: TCP pings to its sshd every 50 ms, ssh commands back
    // to back, and `nepho ssh` commands back to back.
    let stop = Arc::new(AtomicBool::new(false));
    let sock: SocketAddr = format!("{ip}:22").parse().unwrap();
    let pings = client_loop(stop.clone(), Duration::from_millis(50), move |_| {
        banner(sock)
    });
    let (k, a) = (key.clone(), ip.clone());
    let commands = client_loop(stop.clone(), Duration::from_millis(0), move |n| {
        ssh_echo(&k, &a, n)
    });
    let (base, n) = (env.nepho(), name.clone());
    let nepho_ssh = client_loop(stop.clone(), Duration::from_millis(0), move |i| {
        nepho_ssh_echo(&base, &n, i)
    });
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    let moved = migrate_live(&env, &name, "h2").ok();
    let total = t.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let (pings, commands) = (pings.join().unwrap(), commands.join().unwrap());
    let nepho_ssh = nepho_ssh.join().unwrap();
    let moved = moved.json();
    eprintln!(
        "live migration h1 -> h2: total {:.2} s (nepho: {:.2} s), libvirt downtime {} ms; \
         TCP pings: {} answered, longest gap {:.3} s; ssh commands: {} answered, longest gap {:.3} s; \
         nepho ssh: {} answered, longest gap {:.3} s",
        total.as_secs_f64(),
        moved["seconds"].as_f64().unwrap_or(0.0),
        moved["downtime_ms"],
        pings.answered,
        pings.longest_gap.as_secs_f64(),
        commands.answered,
        commands.longest_gap.as_secs_f64(),
        nepho_ssh.answered,
        nepho_ssh.longest_gap.as_secs_f64()
    );
    assert!(pings.lost.is_empty(), "pings lost: {:?}", pings.lost);
    assert!(
        commands.lost.is_empty(),
        "ssh commands lost: {:?}",
        commands.lost
    );
    assert!(
        nepho_ssh.lost.is_empty(),
        "nepho ssh lost: {:?}",
        nepho_ssh.lost
    );
    assert!(
        pings.answered > 20 && commands.answered > 3 && nepho_ssh.answered > 1,
        "{pings:?} {commands:?} {nepho_ssh:?}"
    );
    assert_eq!(
        (
            moved["status"].as_str(),
            moved["mode"].as_str(),
            moved["from"].as_str(),
            moved["to"].as_str(),
            moved["address"].as_str()
        ),
        (
            Some("moved"),
            Some("live"),
            Some("h1"),
            Some("h2"),
            Some(ip.as_str())
        ),
        "{moved}"
    );
    assert!(moved["downtime_ms"].as_u64().is_some(), "{moved}");

    // It runs on h2 and is gone from h1; h2's virtlockd holds the lease now.
    assert!(on(&h2) && !on(h1));
    let (_, state) = sh(&format!("virsh -c '{h2}' domstate {dom}"));
    assert_eq!(state.trim(), "running");
    assert_eq!(
        lease_holder(&lease),
        Some(h2_lockd),
        "the lease moved to h2"
    );
    let (_, left) = sh(&format!("find {s}/h1 -path '*{name}*'"));
    assert!(left.trim().is_empty(), "h1 keeps no files: {left}");
    let (_, xml) = sh(&format!("virsh -c '{h2}' dumpxml {dom}"));
    assert!(xml.contains(&library_iso("h2")), "h2's library copy: {xml}");
    let (_, copied) = sh(&format!("find {s}/h2 -name '*.iso' -path '*{name}*'"));
    assert!(
        copied.trim().lines().all(|f| f.ends_with("-seed.iso")),
        "no copy of a library ISO: {copied}"
    );

    // nepho finds it there: ssh, describe.
    let ssh = env.run(&["ssh", &name, "--", "hostname"]).ok();
    assert_eq!(ssh.stdout.trim(), "hello");
    let describe = env.run(&["formation:describe", &name]).ok().stdout;
    assert!(
        describe.contains("host h2") && describe.contains(&ip),
        "{describe}"
    );

    // The move is journaled, live, in the formation's stream and the cluster's.
    let events = env
        .run(&["-o", "json", "formation:events", &name])
        .ok()
        .stdout;
    assert!(
        events.lines().any(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            e["kind"] == "migrate"
                && e["status"] == "succeeded"
                && e["data"]["live"] == true
                && e["data"]["to"] == "h2"
        }),
        "{events}"
    );
    let cluster = env.run(&["-o", "json", "cluster:events"]).ok().stdout;
    assert!(
        cluster.contains("\"kind\":\"migrate\"") && cluster.contains("\"live\":true"),
        "{cluster}"
    );

    // While something else changes the formation (its lock held, as a create or update
    // holds it), the cluster does not move its machine: migrate exits 6, an evacuation
    // reports it busy and leaves it where it is.
    {
        let lock = env.home().join("state/formations").join(&name).join("lock");
        let held = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
        held.lock().unwrap();
        let busy = env
            .run(&["cluster:migrate", &name, "hello", "--to", "h1"])
            .code(6);
        assert!(busy.stderr.contains("is busy"), "{}", busy.stderr);
        let report = env.run(&["-o", "json", "cluster:evacuate", "h2"]);
        drop(held);
        assert_ne!(report.code, 0, "{}", report.stderr);
        let report = report.json();
        assert_eq!(report["moves"][0]["status"], "busy", "{report}");
        assert!(on(&h2) && !on(h1));
    }

    // Maintenance on h2 while h1 refuses incoming migrations (a firewall on its migration
    // ports): the live move fails, the machine runs on where it was, and the evacuation moves
    // it offline instead, saying why.
    {
        let _blocked = PortBlock::new(H1_MIGRATION_PORTS);
        let done = env
            .run(&["-o", "json", "cluster:evacuate", "h2"])
            .ok()
            .json();
        let m = &done["moves"][0];
        assert_eq!(
            (m["status"].as_str(), m["mode"].as_str(), m["to"].as_str()),
            (Some("moved"), Some("offline"), Some("h1")),
            "{done}"
        );
        assert!(
            m["reason"]
                .as_str()
                .is_some_and(|r| r.contains("live move failed")),
            "{done}"
        );
    }
    assert!(on(h1) && !on(&h2));
    let ssh = env.run(&["ssh", &name, "--", "hostname"]).ok();
    assert_eq!(ssh.stdout.trim(), "hello");
    let moved = migrate_live(&env, &name, "h2").ok().json();
    assert_eq!(moved["mode"], "live", "{moved}");
    assert!(on(&h2) && !on(h1));

    // Maintenance on h2: the evacuation plans a live move and makes it.
    let plan = env
        .run(&["-o", "json", "cluster:evacuate", "h2", "--dry-run"])
        .ok()
        .json();
    assert_eq!(
        (
            plan["moves"][0]["mode"].as_str(),
            plan["moves"][0]["to"].as_str()
        ),
        (Some("live"), Some("h1")),
        "{plan}"
    );
    let t = Instant::now();
    let done = env
        .run(&["-o", "json", "cluster:evacuate", "h2"])
        .ok()
        .json();
    eprintln!(
        "evacuation of h2 (live, h2 -> h1): {:.2} s, libvirt downtime {} ms",
        t.elapsed().as_secs_f64(),
        done["moves"][0]["downtime_ms"]
    );
    assert_eq!(
        (
            done["moves"][0]["status"].as_str(),
            done["moves"][0]["mode"].as_str()
        ),
        (Some("moved"), Some("live")),
        "{done}"
    );
    assert!(on(h1) && !on(&h2));
    let human = env.run(&["cluster:evacuate", "h2"]).ok();
    assert!(
        human.stdout.contains("no nepho machines"),
        "{}",
        human.stdout
    );
    let ssh = env.run(&["ssh", &name, "--", "hostname"]).ok();
    assert_eq!(ssh.stdout.trim(), "hello");

    // Destroy leaves nothing on either host.
    env.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(h1, &name).is_empty() && domains(&h2, &name).is_empty());
    assert!(targets(&name).is_empty());
    let (_, left) = sh(&format!("find {s} -path '*{name}*'"));
    assert!(left.trim().is_empty(), "left behind: {left}");
    let _ = std::fs::remove_dir_all(&storage);
}
