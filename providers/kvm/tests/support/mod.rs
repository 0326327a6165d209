//! Test support for the KVM provider against the real libvirtd, QEMU (TCG) and tgtd: a cluster
//! file in a private storage directory and a formation guard that removes everything the
//! formation made when dropped (also when the test fails). The step driver (ready steps in
//! parallel, like the engine) and the recording event sink come from `nepho-provider-testkit`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use nepho_provider_api::{BoxFuture, FormationSpec, Provider, ProviderKind, RenderedFile};
use nepho_provider_kvm::{KvmProvider, KvmSettings};
pub use nepho_provider_testkit::{Recorder, run_plan};

pub const IMAGE: &str = "/var/cache/nepho-test/images/tiny-guest.qcow2";

/// At most one test (so at most two guests) at a time on a 2-core machine.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Makes sure libvirtd, tgtd and the tiny guest are there (the repo's setup scripts).
pub fn ensure_infra() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (ok, _) = sh("virsh -c qemu:///system version >/dev/null 2>&1");
    if !ok {
        assert!(
            sh(&format!("{}/scripts/setup/daemons.sh >&2", root.display())).0,
            "daemons.sh"
        );
    }
    if !Path::new(IMAGE).exists() {
        assert!(
            sh(&format!(
                "{}/scripts/images/build-tiny-guest.sh >&2",
                root.display()
            ))
            .0
        );
    }
    let (ok, _) = sh("tgtadm --lld iscsi --op show --mode target >/dev/null 2>&1");
    if !ok {
        assert!(
            sh(&format!(
                "{}/scripts/setup/tgtd.sh start 3260 >&2",
                root.display()
            ))
            .0
        );
    }
}

/// A private cluster: one local host, storage under a temp dir QEMU can traverse.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
}

/// A private storage directory under /var/tmp that QEMU (another user) can traverse.
pub fn storage_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

impl Cluster {
    pub fn new(domain_type: &str, memory_mb: u64) -> Cluster {
        ensure_infra();
        let dir = storage_dir("nepho-kvm-test.");
        let file = dir.path().join("cluster.yaml");
        std::fs::write(
            &file,
            format!(
                "hosts:\n  - name: local\n    uri: qemu:///system\n    cpus: 4\n    memory_mb: {memory_mb}\n    labels: {{rack: a}}\nnetworks:\n  - name: default\nstorage:\n  dir: {d}/vols\n  iscsi:\n    portal: 127.0.0.1:3260\n    iqn_prefix: iqn.2024-01.test.nepho\n    tgtadm: local\n    dir: {d}/luns\n    allow: 127.0.0.1\nimages:\n  tiny: {IMAGE}\ndomain_type: {domain_type}\nready_timeout_s: 180\nshutdown_timeout_s: 30\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        Cluster { dir, file }
    }

    pub async fn provider(&self) -> KvmProvider {
        nepho_provider_kvm::connect(&KvmSettings {
            cluster_file: self.file.clone(),
            probe_cache: None,
            library_images: Default::default(),
            image_holds: None,
        })
        .await
        .expect("connect")
    }
}

/// One formation under test; on drop, everything it may have made is removed.
pub struct Formation {
    pub name: String,
    pub work: tempfile::TempDir,
    pub cluster_dir: PathBuf,
}

impl Formation {
    pub fn new(cluster: &Cluster, prefix: &str) -> Formation {
        let name = format!(
            "t{prefix}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_micros()
        );
        Formation {
            name,
            work: tempfile::tempdir().unwrap(),
            cluster_dir: cluster.dir.path().to_path_buf(),
        }
    }

    pub fn spec(&self, pattern: &str, provisioner: Option<&str>) -> FormationSpec {
        let provisioner = provisioner.map(|p| {
            let path = self.work.path().join("provision.sh");
            std::fs::write(&path, p).unwrap();
            path
        });
        let mut parameters = serde_json::Map::new();
        parameters.insert("db_password".into(), "s3cret-value".into());
        FormationSpec {
            name: self.name.clone(),
            cloudlet: "test".into(),
            scenario: "default".into(),
            provider: ProviderKind::Kvm,
            pattern: vec![RenderedFile {
                name: "test.yaml".into(),
                contents: pattern.to_string(),
            }],
            parameters,
            secret_keys: BTreeSet::from(["db_password".to_string()]),
            provisioner,
            payload_dir: None,
            v1: false,
            work_dir: self.work.path().join("work"),
        }
    }

    pub fn domains(&self) -> Vec<String> {
        let (_, out) = sh("virsh -q -c qemu:///system list --all --name");
        out.lines()
            .filter(|l| l.contains(&self.name))
            .map(str::to_string)
            .collect()
    }

    pub fn targets(&self) -> Vec<String> {
        let (_, out) = sh("tgtadm --lld iscsi --op show --mode target");
        out.lines()
            .filter(|l| l.starts_with("Target ") && l.contains(&self.name))
            .map(str::to_string)
            .collect()
    }

    pub fn files(&self) -> Vec<String> {
        let (_, out) = sh(&format!(
            "find {d}/vols/{n} {d}/luns/{n} {w}/seeds {w}/id_ed25519 -mindepth 0 2>/dev/null",
            d = self.cluster_dir.display(),
            n = self.name,
            w = self.work.path().join("work").display()
        ));
        out.lines().map(str::to_string).collect()
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        for d in self.domains() {
            sh(&format!(
                "virsh -c qemu:///system destroy {d}; virsh -c qemu:///system undefine {d}"
            ));
        }
        let (_, out) = sh("tgtadm --lld iscsi --op show --mode target");
        for line in out.lines().filter(|l| l.contains(&self.name)) {
            if let Some(tid) = line
                .strip_prefix("Target ")
                .and_then(|r| r.split(':').next())
            {
                sh(&format!(
                    "tgtadm --lld iscsi --op delete --mode target --tid {tid} --force"
                ));
            }
        }
    }
}

/// A domain in `virsh list` is what exists of a formation.
impl nepho_provider_testkit::Backend for Formation {
    fn exists<'a>(&'a self, formation: &'a str) -> BoxFuture<'a, bool> {
        assert_eq!(formation, self.name);
        Box::pin(async move { !self.domains().is_empty() })
    }
}

pub async fn destroy(provider: &KvmProvider, spec: &FormationSpec) {
    let plan = provider
        .plan_destroy(&spec.name)
        .await
        .expect("plan_destroy");
    run_plan(provider, &plan, spec, Arc::new(Recorder::default()))
        .await
        .map_err(|(id, e)| format!("destroy step {id}: {e}"))
        .unwrap();
}

/// Runs a command on a machine through the endpoint the provider reports.
pub fn ssh(endpoint: &nepho_provider_api::SshEndpoint, command: &str) -> (bool, String) {
    let mut args: Vec<String> = vec![
        "-i".into(),
        endpoint
            .identity_file
            .as_ref()
            .unwrap()
            .display()
            .to_string(),
        "-p".into(),
        endpoint.port.to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "ConnectTimeout=10".into(),
    ];
    for o in &endpoint.options {
        args.push("-o".into());
        args.push(o.clone());
    }
    args.push(format!("{}@{}", endpoint.user, endpoint.host));
    args.push(command.into());
    let out = Command::new("timeout")
        .arg("60")
        .arg("ssh")
        .args(&args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
