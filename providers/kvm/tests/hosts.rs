//! Two libvirt hosts: this machine's libvirtd (`h1`) and a second libvirtd in its own mount
//! namespace (`h2`, `scripts/setup/host2.sh`, network `default` on virbr-n2). Placement across
//! the hosts, the explanation of a placement that cannot fit, and `cluster:failover` of an
//! iSCSI-backed machine when h2 dies (stale copy removed when h2 comes back).
//!
//! Tests serialize on a lock (at most two TCG guests at once) and start host2 themselves.
//! Outside CI they are skipped, with the reason printed, when libvirt is not installed.

#![allow(clippy::await_holding_lock)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use nepho_provider_api::{FormationSpec, Provider, ProviderError};
use nepho_provider_kvm::KvmProvider;
use support::{Cluster, Formation, IMAGE, Recorder, run_plan, serial, ssh};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `false` (and prints why) when the tests cannot run here; in CI they must.
fn available() -> bool {
    let has_libvirt = sh("command -v virsh && command -v libvirtd").0;
    if !has_libvirt {
        assert!(
            std::env::var_os("CI").is_none(),
            "libvirt is not installed, but CI must run the two-host tests"
        );
        eprintln!("skipped: libvirt (virsh/libvirtd) is not installed");
        return false;
    }
    true
}

/// host2 is one per machine: tests that use it (here and in tests/it/kvm_hosts.rs, possibly
/// in another process) hold this lock for their whole run.
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

fn host2(action: &str) -> String {
    let (ok, out) = sh(&format!(
        "timeout 120 {}/scripts/setup/host2.sh {action}",
        root().display()
    ));
    assert!(ok, "host2.sh {action} failed");
    out.trim().to_string()
}

fn host2_uri() -> String {
    host2("uri")
}

/// Two hosts (h1 = this libvirtd, h2 = host2), each with its own storage dir.
fn two_hosts(hosts_first: &[&str], placement: &str, cpus: u32, memory_mb: u64) -> Cluster {
    support::ensure_infra();
    host2("start");
    let dir = support::storage_dir("nepho-kvm-hosts.");
    let d = dir.path().display();
    let host = |name: &str| match name {
        "h1" => format!(
            "  - name: h1\n    uri: qemu:///system\n    cpus: {cpus}\n    memory_mb: {memory_mb}\n    labels: {{rack: a}}\n    dir: {d}/vols-h1\n"
        ),
        _ => format!(
            "  - name: h2\n    uri: '{}'\n    cpus: {cpus}\n    memory_mb: {memory_mb}\n    labels: {{rack: b}}\n    dir: {d}/vols-h2\n",
            host2_uri()
        ),
    };
    let hosts: String = hosts_first.iter().map(|h| host(h)).collect();
    let file = dir.path().join("cluster.yaml");
    std::fs::write(
        &file,
        format!(
            "hosts:\n{hosts}networks:\n  - name: default\nstorage:\n  dir: {d}/vols\n  iscsi:\n    portal: 127.0.0.1:3260\n    iqn_prefix: iqn.2024-01.test.nepho\n    tgtadm: local\n    dir: {d}/luns\n    allow: 127.0.0.1\nimages:\n  tiny: {IMAGE}\ndomain_type: qemu\nplacement: {placement}\nready_timeout_s: 180\nshutdown_timeout_s: 20\n"
        ),
    )
    .unwrap();
    Cluster { dir, file }
}

/// A formation named `fo…`; on drop its domains on both hosts and its targets are removed
/// (host2 is started for that if it is down).
struct Fo(Formation);

impl Fo {
    fn new(cluster: &Cluster, prefix: &str) -> Fo {
        let mut f = Formation::new(cluster, prefix);
        f.name = format!("fo{}", &f.name[1..]);
        Fo(f)
    }

    fn domains_on(uri: &str, name: &str) -> Vec<String> {
        let (_, out) = sh(&format!("virsh -q -c '{uri}' list --all --name"));
        out.lines()
            .filter(|l| l.contains(name))
            .map(str::to_string)
            .collect()
    }

    fn h1_domains(&self) -> Vec<String> {
        Self::domains_on("qemu:///system", &self.0.name)
    }

    fn h2_domains(&self) -> Vec<String> {
        Self::domains_on(&host2_uri(), &self.0.name)
    }

    fn spec(&self, pattern: &str) -> FormationSpec {
        self.0
            .spec(pattern, Some("#!/bin/sh\nhostname > /root/where\n"))
    }

    /// Files under the cluster's storage dirs that belong to this formation.
    fn files(&self) -> Vec<String> {
        let (_, out) = sh(&format!(
            "find {d} -path '*{n}*' 2>/dev/null; find {w}/seeds {w}/id_ed25519 2>/dev/null",
            d = self.0.cluster_dir.display(),
            n = self.0.name,
            w = self.0.work.path().join("work").display()
        ));
        out.lines().map(str::to_string).collect()
    }
}

impl Drop for Fo {
    fn drop(&mut self) {
        if sh(&format!(
            "{}/scripts/setup/host2.sh status",
            root().display()
        ))
        .0 || sh(&format!(
            "{}/scripts/setup/host2.sh start",
            root().display()
        ))
        .0
        {
            let uri = host2_uri();
            for d in self.h2_domains() {
                sh(&format!(
                    "virsh -c '{uri}' destroy {d}; virsh -c '{uri}' undefine {d}"
                ));
            }
        }
        // Formation's own Drop cleans h1 and the targets.
    }
}

async fn create(provider: &KvmProvider, spec: &FormationSpec) -> Result<(), String> {
    let plan = provider
        .plan_create(spec)
        .await
        .map_err(|e| e.to_string())?;
    run_plan(provider, &plan, spec, Arc::new(Recorder::default()))
        .await
        .map(|_| ())
        .map_err(|(id, e)| format!("{id}: {e}"))
}

async fn destroy(provider: &KvmProvider, name: &str, spec: &FormationSpec) {
    let plan = provider.plan_destroy(name).await.expect("plan_destroy");
    run_plan(provider, &plan, spec, Arc::new(Recorder::default()))
        .await
        .map_err(|(id, e)| format!("destroy step {id}: {e}"))
        .unwrap();
}

fn targets_of(name: &str) -> Vec<String> {
    let (_, out) = sh("tgtadm --lld iscsi --op show --mode target");
    out.lines()
        .filter(|l| l.starts_with("Target ") && l.contains(name))
        .map(str::to_string)
        .collect()
}

const SPREAD: &str = "machines:\n  - name: a\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    primary: true\n    labels: {rack: a}\n  - name: b\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    labels: {rack: b}\n";

#[tokio::test(flavor = "multi_thread")]
async fn machines_spread_over_two_hosts_and_a_misfit_is_explained() {
    if !available() {
        return;
    }
    let _lock = serial();
    let _host2 = host2_lock();
    let t0 = Instant::now();
    // Labels pin one machine to each host (h1 is rack a, h2 rack b). Capacity is not used
    // for the spread: other engineers' test guests may run on h1 and count as its load.
    let cluster = two_hosts(&["h1", "h2"], "least-loaded", 4, 2048);
    let provider = cluster.provider().await;
    let f = Fo::new(&cluster, "spread");
    let spec = f.spec(SPREAD);
    create(&provider, &spec).await.unwrap();
    eprintln!(
        "two machines on two hosts up in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(f.h1_domains().len(), 1, "one machine on h1");
    assert_eq!(f.h2_domains().len(), 1, "one machine on h2");

    let status = provider.cluster_status().await.unwrap();
    assert_eq!(status.hosts.len(), 2);
    for h in &status.hosts {
        assert!(h.reachable, "{h:?}");
        let mine: Vec<_> = h
            .machines
            .iter()
            .filter(|m| m.formation == spec.name)
            .collect();
        assert_eq!(mine.len(), 1, "{}: {:?}", h.name, h.machines);
        assert_eq!(mine[0].state, "running");
        assert!(h.used.cpus >= 1);
    }
    // Both answer over ssh, each with its own hostname; h2's guest is on 192.168.124.0/24.
    let endpoints = provider.endpoints(&spec.name).await.unwrap();
    assert_eq!(endpoints.ssh.len(), 2);
    for e in &endpoints.ssh {
        let (ok, out) = ssh(e, "cat /root/where");
        assert!(ok && out.trim() == e.machine, "{}: {out}", e.machine);
    }
    assert!(
        endpoints
            .ssh
            .iter()
            .any(|e| e.host.starts_with("192.168.124.")),
        "{:?}",
        endpoints.ssh
    );

    // A machine bigger than what is left on the only host with its label: the error says why.
    let g = Fo::new(&cluster, "misfit");
    let gspec = g.spec("machines:\n  - name: extra\n    cpus: 1\n    memory_mb: 2000\n    image: tiny\n    labels: {rack: b}\n");
    let err = create(&provider, &gspec).await.unwrap_err();
    assert!(
        err.starts_with("place: ")
            && err.contains("no host can take machine extra (1 vCPU, 2000 MiB, labels rack=b)")
            && err.contains("lacks labels rack=b")
            && err.contains("host h2: 3 of 4 vCPUs free, 1792 of 2048 MiB free"),
        "{err}"
    );
    assert!(g.h1_domains().is_empty() && g.h2_domains().is_empty());

    destroy(&provider, &spec.name, &spec).await;
    assert!(f.h1_domains().is_empty(), "{:?}", f.h1_domains());
    assert!(f.h2_domains().is_empty(), "{:?}", f.h2_domains());
    assert!(f.files().is_empty(), "files left: {:?}", f.files());
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}

const FAILOVER: &str = "machines:\n  - name: db\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    primary: true\n    disks: [{size_gb: 1, storage: iscsi}]\n  - name: scratch\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    disks: [{size_gb: 1, storage: qcow2}]\n";

#[tokio::test(flavor = "multi_thread")]
async fn failover_moves_the_iscsi_machine_of_a_dead_host() {
    if !available() {
        return;
    }
    let _lock = serial();
    let _host2 = host2_lock();
    let t0 = Instant::now();
    // h2 first + first-fit: both machines go to h2.
    let cluster = two_hosts(&["h2", "h1"], "first-fit", 2, 1024);
    let provider = cluster.provider().await;
    let f = Fo::new(&cluster, "over");
    let spec = f.spec(FAILOVER);
    let name = spec.name.clone();

    // Failover of a live host is refused.
    let err = provider.failover("h2").await.unwrap_err();
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("is reachable"), "{err}");

    create(&provider, &spec).await.unwrap();
    let created = t0.elapsed().as_secs_f64();
    assert_eq!(f.h2_domains().len(), 2, "both on h2");
    assert!(f.h1_domains().is_empty());

    // h2's libvirtd dies but its QEMUs run on: the LUN is still in use, failover refuses.
    let (ok, _) = sh("kill -9 $(cat /run/nepho-host2/libvirtd.pid)");
    assert!(ok);
    let t_refused = Instant::now();
    let refused = provider.failover("h2").await.unwrap();
    let db = refused.iter().find(|r| r.machine == "db").unwrap();
    assert_eq!(db.status, "failed", "{db:?}");
    assert!(
        db.reason
            .as_deref()
            .unwrap()
            .contains("still has an iSCSI session"),
        "{db:?}"
    );
    assert!(f.h1_domains().is_empty(), "nothing started on h1");
    eprintln!(
        "failover refused (LUN in use) after {:.1} s",
        t_refused.elapsed().as_secs_f64()
    );

    // h2 dies for good (everything in it killed, as at power loss).
    host2("stop");
    let t_fail = Instant::now();
    let results = provider.failover("h2").await.unwrap();
    let failover_s = t_fail.elapsed().as_secs_f64();
    eprintln!("failover results: {results:#?}");
    assert_eq!(results.len(), 2, "{results:?}");
    let db = results.iter().find(|r| r.machine == "db").unwrap();
    assert_eq!(db.status, "moved", "{db:?}");
    assert_eq!(db.to.as_deref(), Some("h1"));
    assert!(db.address.is_some());
    let scratch = results.iter().find(|r| r.machine == "scratch").unwrap();
    assert_eq!(scratch.status, "not-movable");
    assert!(
        scratch.reason.as_deref().unwrap().contains("local qcow2"),
        "{scratch:?}"
    );
    assert_eq!(f.h1_domains(), [format!("nepho-{name}-db")]);

    // The moved machine answers over ssh, booted from the same LUN, on h1's network.
    let endpoints = provider.endpoints(&name).await.unwrap();
    let e = endpoints.ssh.iter().find(|e| e.machine == "db").unwrap();
    assert!(e.host.starts_with("192.168.122."), "{e:?}");
    let (ok, out) = ssh(e, "cat /root/where; cat /proc/cmdline");
    assert!(ok && out.starts_with("db\n"), "{out}");
    assert!(
        out.contains("BOOT_IMAGE=/boot/vmlinuz"),
        "booted from the LUN: {out}"
    );

    let status = provider.cluster_status().await.unwrap();
    let h1 = status.hosts.iter().find(|h| h.name == "h1").unwrap();
    let h2 = status.hosts.iter().find(|h| h.name == "h2").unwrap();
    assert!(!h2.reachable);
    assert!(
        h1.machines
            .iter()
            .any(|m| m.formation == name && m.machine == "db" && m.state == "running"),
        "{h1:?}"
    );
    let describe = provider.describe(&name).await.unwrap();
    let db_res = describe
        .resources
        .iter()
        .find(|r| r.resource == "db")
        .unwrap();
    assert!(
        db_res.reason.as_deref().unwrap().starts_with("host h1"),
        "{db_res:?}"
    );

    // h2 comes back with its stale (shut off) copy of db: the next read removes it, so it
    // can never start a second instance on the LUN; scratch stays on h2.
    host2("start");
    assert_eq!(f.h2_domains().len(), 2, "h2 still has both definitions");
    let list = provider.list().await.unwrap();
    assert!(list.iter().any(|s| s.name == name));
    assert_eq!(
        f.h2_domains(),
        [format!("nepho-{name}-scratch")],
        "the stale copy of db is gone from h2"
    );
    let found = provider.describe(&name).await.unwrap();
    assert_eq!(
        found
            .resources
            .iter()
            .filter(|r| r.kind == "machine")
            .count(),
        2
    );

    // Destroy while h2 is down again: scratch's definition stays on h2 (unreachable) while
    // its disk, seed and the LUN go; when h2 comes back, that leftover is removed at the
    // first look.
    host2("stop");
    destroy(&provider, &name, &spec).await;
    assert!(f.h1_domains().is_empty(), "{:?}", f.h1_domains());
    host2("start");
    assert_eq!(f.h2_domains(), [format!("nepho-{name}-scratch")]);
    let status = provider.cluster_status().await.unwrap();
    assert!(
        status
            .hosts
            .iter()
            .all(|h| h.machines.iter().all(|m| m.formation != name)),
        "{status:?}"
    );
    assert!(f.h2_domains().is_empty(), "{:?}", f.h2_domains());
    assert!(
        targets_of(&name).is_empty(),
        "targets left: {:?}",
        targets_of(&name)
    );
    assert!(f.files().is_empty(), "files left: {:?}", f.files());
    eprintln!(
        "create {created:.1} s, failover (define+boot+ssh on h1) {failover_s:.1} s, whole test {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

const LEASED: &str = "machines:\n  - name: db\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    primary: true\n    disks: [{size_gb: 1, storage: iscsi}]\n";

/// The lockspace both test libvirtds use (scripts/setup/lockd-conf.sh).
fn lockspace() -> String {
    std::env::var("NEPHO_LOCKSPACE").unwrap_or_else(|_| "/var/lib/nepho/lockspace".into())
}

fn qemu_of(domain: &str) -> Option<String> {
    let (ok, out) = sh(&format!("pgrep -f 'guest={domain},'"));
    ok.then(|| out.trim().to_string())
}

/// Fencing with libvirt's lock manager: the machine's QEMU on h2 holds a virtlockd lease on
/// its iSCSI target in the lockspace both hosts share. While it runs, neither a hand-made copy
/// of the domain nor nepho's failover can start the disks on h1 (h2 has only lost its
/// libvirtd, as a host that lost its management link); once h2 is powered off, failover
/// moves the machine.
#[tokio::test(flavor = "multi_thread")]
async fn a_leased_machine_is_not_started_twice() {
    if !available() {
        return;
    }
    let _lock = serial();
    let _host2 = host2_lock();
    let t0 = Instant::now();
    // Both libvirtds with lock_manager = "lockd" (restarted if their config lacked it).
    assert!(
        sh(&format!(
            "{}/scripts/setup/daemons.sh >&2",
            root().display()
        ))
        .0,
        "daemons.sh"
    );
    // h2 first + first-fit (with room to spare for other tests' leftovers): db goes to h2.
    let cluster = two_hosts(&["h2", "h1"], "first-fit", 8, 4096);
    let yaml = std::fs::read_to_string(&cluster.file).unwrap();
    let yaml = yaml.replacen(
        "storage:\n",
        &format!("storage:\n  lockspace: {}\n", lockspace()),
        1,
    );
    std::fs::write(&cluster.file, yaml).unwrap();
    let provider = cluster.provider().await;
    let f = Fo::new(&cluster, "lease");
    let spec = f.spec(LEASED);
    let name = spec.name.clone();
    let domain = format!("nepho-{name}-db");
    create(&provider, &spec).await.unwrap();
    assert_eq!(f.h2_domains(), std::slice::from_ref(&domain));
    let (ok, xml) = sh(&format!(
        "virsh -c '{}' dumpxml --inactive {domain}",
        host2_uri()
    ));
    assert!(ok);
    let key = format!("nepho-iqn.2024-01.test.nepho:{name}:db");
    assert!(
        xml.contains(&format!("<key>{key}</key>")),
        "the domain holds a lease on its target: {xml}"
    );
    let lease_file = Path::new(&lockspace()).join(&key);
    assert!(lease_file.exists());
    let qemu = qemu_of(&domain).expect("db's QEMU runs on h2");

    // Directly in libvirt: a copy of the domain (same disks, same lease) defined on h1 does
    // not start.
    let copy = format!("{domain}-copy");
    let copy_xml = f.0.work.path().join("copy.xml");
    let xml = xml
        .replace(
            &format!("<name>{domain}</name>"),
            &format!("<name>{copy}</name>"),
        )
        .lines()
        .filter(|l| !l.trim_start().starts_with("<uuid>") && !l.contains("<mac address"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&copy_xml, xml).unwrap();
    let (ok, _) = sh(&format!(
        "virsh -c qemu:///system define {}",
        copy_xml.display()
    ));
    assert!(ok, "define the copy on h1");
    let out = Command::new("virsh")
        .args(["-c", "qemu:///system", "start", &copy])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    sh(&format!(
        "virsh -c qemu:///system destroy {copy}; virsh -c qemu:///system undefine {copy}"
    ));
    assert!(!out.status.success(), "the copy started on h1");
    assert!(
        stderr.contains(&format!("Lockspace resource '{key}' is locked")),
        "{stderr}"
    );
    eprintln!("virsh start of a copy on h1: {}", stderr.trim());

    // h2 loses its libvirtd (its QEMU and virtlockd run on): nepho takes h2 for dead, but
    // libvirt on h1 refuses the second copy and failover says so.
    let (ok, _) = sh("kill -9 $(cat /run/nepho-host2/libvirtd.pid)");
    assert!(ok);
    let t_refused = Instant::now();
    let refused = provider.failover("h2").await.unwrap();
    eprintln!("failover while db still runs on h2: {refused:#?}");
    let db = refused.iter().find(|r| r.machine == "db").unwrap();
    assert_eq!(db.status, "failed", "{db:?}");
    let reason = db.reason.as_deref().unwrap();
    assert!(
        reason.contains("another host still holds the disks of db: not starting a second copy")
            && reason.contains("is locked"),
        "{reason}"
    );
    assert!(
        f.h1_domains().is_empty(),
        "no copy left on h1: {:?}",
        f.h1_domains()
    );
    assert_eq!(
        qemu_of(&domain),
        Some(qemu),
        "the running copy is left alone"
    );
    eprintln!(
        "failover refused by the lease in {:.1} s",
        t_refused.elapsed().as_secs_f64()
    );

    // h2 is powered off (its QEMU and virtlockd die, the lease goes): failover moves db.
    host2("stop");
    let results = provider.failover("h2").await.unwrap();
    let db = results.iter().find(|r| r.machine == "db").unwrap();
    assert_eq!(db.status, "moved", "{db:?}");
    assert_eq!(db.to.as_deref(), Some("h1"));
    assert_eq!(f.h1_domains(), std::slice::from_ref(&domain));
    let endpoints = provider.endpoints(&name).await.unwrap();
    let e = endpoints.ssh.iter().find(|e| e.machine == "db").unwrap();
    let (ok, out) = ssh(e, "cat /root/where");
    assert!(ok && out.starts_with("db\n"), "{out}");
    let (_, xml) = sh(&format!(
        "virsh -c qemu:///system dumpxml --inactive {domain}"
    ));
    assert!(
        xml.contains(&format!("<key>{key}</key>")),
        "still leased on h1"
    );

    // h2 comes back: its stale copy is removed at the first look, then everything goes.
    host2("start");
    provider.list().await.unwrap();
    assert!(f.h2_domains().is_empty(), "{:?}", f.h2_domains());
    destroy(&provider, &name, &spec).await;
    assert!(f.h1_domains().is_empty(), "{:?}", f.h1_domains());
    assert!(
        targets_of(&name).is_empty(),
        "targets left: {:?}",
        targets_of(&name)
    );
    assert!(
        !lease_file.exists(),
        "lease file left: {}",
        lease_file.display()
    );
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}
