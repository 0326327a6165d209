//! The shared copy of each machine's record, next to its LUNs on the iSCSI storage, and the
//! lock leases that keep a machine's disks in one QEMU: what failover and migration read when a
//! host is dead, and what every read of the hosts uses to drop stale copies of a machine.
//!
//! ## Where the definitions come from when their host is dead
//!
//! nepho keeps no cluster database: a machine's truth is its libvirt domain and the nepho
//! metadata in it ([`MachineRecord`]). A dead host's domains cannot be read, so the record
//! must also live somewhere that outlives the host. The only place a movable machine
//! depends on anyway is the shared iSCSI storage: its disks are LUNs there. So the `domain`
//! step writes a copy of the record **next to the machine's LUN backing files**, on the iSCSI
//! target host (`<storage.iscsi.dir>/<formation>/<machine>.nepho-machine.json`, via the same
//! runner as `tgtadm`). It is a [`SharedRecord`]: the machine record, the pattern's labels,
//! the domain name, the host that owns the machine and a generation counter. The file travels
//! with the disks and goes with them (`formation:destroy`'s cleanup removes the directory).
//! Machines with qcow2 disks get one too (best effort), only so that failover can name them as
//! not movable.
//!
//! ## Stale copies when the dead host comes back
//!
//! The old host still has the domain defined (and, if it only lost its libvirtd, maybe
//! running). Every read of the hosts (`find_domains`, `host_loads`: list, describe, status,
//! placement, destroy) passes the domains through [`drop_stale`]: a domain whose shared
//! record (read next to its own LUNs) carries another domain UUID — or that has no shared
//! record while all its disks are gone (formation destroyed while the host was down) — is a
//! stale copy. It is destroyed (so it can never run a second instance on the same LUN) and
//! undefined, its seed and console log on that host are removed, and it is left out of the
//! result. Its disks are never touched. UUIDs, not host names, identify the owner: another
//! cluster file may call the same libvirt host by another name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nepho_provider_api::ProviderError;
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterFile, HostConfig, IscsiConfig};
use crate::libvirt::{self, DiskRecord, FoundDomain, MachineRecord};
use crate::names;
use crate::pattern::Machine;
use crate::storage::Runner;

const SUFFIX: &str = ".nepho-machine.json";
const SHORT: Duration = Duration::from_secs(30);

/// The copy of a machine's record kept on the shared storage side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedRecord {
    pub domain: String,
    /// The host that owns (runs) the machine.
    pub host: String,
    /// Bumped at every move.
    pub generation: u64,
    /// libvirt UUID of the owning domain, set when failover defines it: a domain of the same
    /// name with another UUID is a stale copy. Host names are not compared: two cluster files
    /// may name the same libvirt host differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub record: MachineRecord,
    /// The lockspace the owning domain holds its leases in (`storage.lockspace` when it was
    /// defined); absent: its domain has no `<lease>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockspace: Option<PathBuf>,
}

/// What the shared record says about the domain's leases.
pub(crate) enum Leases<'a> {
    /// The domain is about to be defined (with leases in this lockspace, or none).
    New(Option<&'a Path>),
    /// The domain exists already: keep what the record says.
    Unchanged,
}

/// The lockspace a machine's domain gets its leases in: the cluster's, for machines with LUNs.
pub(crate) fn lockspace_for<'a>(cluster: &'a ClusterFile, r: &MachineRecord) -> Option<&'a Path> {
    cluster.storage.lockspace.as_deref().filter(|_| has_lun(r))
}

/// The lease files must exist before libvirt starts the domain (virtlockd opens them, it does
/// not create them); made through `host`, which sees the lockspace like every host.
pub(crate) async fn ensure_lease_files(
    cluster: &ClusterFile,
    host: &HostConfig,
    r: &MachineRecord,
) -> Result<(), ProviderError> {
    let Some(lockspace) = lockspace_for(cluster, r) else {
        return Ok(());
    };
    let files: Vec<String> = libvirt::lease_files(lockspace, r)
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["--"];
    args.extend(files.iter().map(String::as_str));
    let out = Runner::for_host(host).run("touch", &args, SHORT).await?;
    if out.success {
        return Ok(());
    }
    Err(ProviderError::Failed {
        message: format!(
            "cannot create {}'s leases in the lockspace {} on host {}: {}",
            r.machine,
            lockspace.display(),
            host.name,
            out.stderr.trim()
        ),
        hint: Some(
            "storage.lockspace must be a directory every host sees (scripts/setup/lockd-conf.sh)"
                .into(),
        ),
    })
}

/// `virsh start`, with libvirt's lease refusal told as what it means.
pub(crate) async fn start_domain(
    host: &HostConfig,
    domain: &str,
    machine: &str,
) -> Result<(), ProviderError> {
    let out = libvirt::virsh_output(&host.uri, &["start", domain]).await?;
    // "already active": an earlier start of ours (a nanny killed mid-step) won the race.
    if out.success || out.stderr.contains("already active") {
        return Ok(());
    }
    let why = out.stderr.trim();
    if libvirt::is_lease_conflict(why) {
        return Err(ProviderError::Failed {
            message: format!(
                "another host still holds the disks of {machine}: not starting a second copy (libvirt on {}: {})",
                host.name,
                why.trim_start_matches("error: ").replace("\nerror: ", ": ")
            ),
            hint: Some(format!(
                "{machine}'s QEMU still runs where it was (a host that only lost its management link keeps its lease): stop it there or power that host off, then try again"
            )),
        });
    }
    if why.contains("Lockspace for path") && why.contains("does not exist") {
        return Err(ProviderError::Failed {
            message: format!("cannot start {machine} on {}: {why}", host.name),
            hint: Some(
                "that host's libvirt does not know the cluster's storage.lockspace: set lock_manager = \"lockd\" in qemu.conf and file_lockspace_dir (with auto_disk_leases = 1) in qemu-lockd.conf, then restart libvirtd (scripts/setup/lockd-conf.sh)".into(),
            ),
        });
    }
    Err(failed(format!(
        "virsh start {domain} on {} failed: {why}",
        host.name
    )))
}

pub(crate) fn record_path(iscsi: &IscsiConfig, formation: &str, machine: &str) -> PathBuf {
    iscsi.dir.join(formation).join(format!("{machine}{SUFFIX}"))
}

fn has_lun(r: &MachineRecord) -> bool {
    r.disks.iter().any(|d| matches!(d, DiskRecord::Lun { .. }))
}

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::Failed {
        message: message.into(),
        hint: None,
    }
}

/// `Ok(None)`: no such file; `Err`: the storage host cannot tell.
pub(crate) async fn read_shared(
    runner: &Runner,
    path: &Path,
) -> Result<Option<SharedRecord>, ProviderError> {
    let out = runner
        .run("cat", &["--", &path.to_string_lossy()], SHORT)
        .await?;
    if out.success {
        return serde_json::from_str(&out.stdout)
            .map(Some)
            .map_err(|e| failed(format!("{}: {e}", path.display())));
    }
    if out.stderr.contains("No such file") {
        return Ok(None);
    }
    Err(failed(format!(
        "cannot read {}: {}",
        path.display(),
        out.stderr.trim()
    )))
}

pub(crate) async fn write_shared(
    runner: &Runner,
    path: &Path,
    shared: &SharedRecord,
) -> Result<(), ProviderError> {
    let staging_dir = shared
        .record
        .key
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    tokio::fs::create_dir_all(&staging_dir)
        .await
        .map_err(|e| crate::cmd::io_failed(&staging_dir, e))?;
    let local = staging_dir.join(format!(".{}{SUFFIX}", shared.record.machine));
    let json = serde_json::to_string_pretty(shared).expect("records serialize");
    tokio::fs::write(&local, json)
        .await
        .map_err(|e| crate::cmd::io_failed(&local, e))?;
    if let Some(dir) = path.parent() {
        runner.mkdir(dir).await?;
    }
    let result = runner.upload_private(&local, path).await;
    let _ = tokio::fs::remove_file(&local).await;
    result
}

/// Called by the `domain` step before it defines a machine: the machine's record goes next to
/// its LUNs. Required for machines with iSCSI disks (they are the movable ones); best effort
/// for the others.
pub(crate) async fn save_record(
    cluster: &ClusterFile,
    domain: &str,
    record: &MachineRecord,
    labels: &BTreeMap<String, String>,
    leases: Leases<'_>,
) -> Result<(), ProviderError> {
    let Some(iscsi) = &cluster.storage.iscsi else {
        return Ok(());
    };
    let runner = Runner::for_iscsi(iscsi);
    let path = record_path(iscsi, &record.formation, &record.machine);
    let result = async {
        let old = read_shared(&runner, &path).await?;
        let lockspace = match leases {
            Leases::New(l) => l.map(Path::to_path_buf),
            Leases::Unchanged => old.as_ref().and_then(|o| o.lockspace.clone()),
        };
        let (generation, uuid) = match old {
            Some(old)
                if old.host == record.host
                    && old.record == *record
                    && old.lockspace == lockspace =>
            {
                return Ok(());
            }
            Some(old) if old.host == record.host => (old.generation, old.uuid),
            Some(old) => (old.generation + 1, None),
            None => (1, None),
        };
        let shared = SharedRecord {
            domain: domain.to_string(),
            host: record.host.clone(),
            generation,
            uuid,
            labels: labels.clone(),
            record: record.clone(),
            lockspace,
        };
        write_shared(&runner, &path, &shared).await
    }
    .await;
    match result {
        Err(e) if has_lun(record) => Err(e),
        _ => Ok(()),
    }
}

/// After a machine's disks changed (add/remove drive): the shared copy follows, keeping the
/// labels it was placed with.
pub(crate) async fn refresh_record(
    cluster: &ClusterFile,
    domain: &str,
    record: &MachineRecord,
) -> Result<(), ProviderError> {
    let Some(iscsi) = &cluster.storage.iscsi else {
        return Ok(());
    };
    let runner = Runner::for_iscsi(iscsi);
    let path = record_path(iscsi, &record.formation, &record.machine);
    let labels = match read_shared(&runner, &path).await {
        Ok(Some(old)) => old.labels,
        _ => BTreeMap::new(),
    };
    save_record(cluster, domain, record, &labels, Leases::Unchanged).await
}

/// Removes a machine's shared record (destroy, undo of `domain`).
pub(crate) async fn forget_record(cluster: &ClusterFile, formation: &str, machine: &str) {
    if let Some(iscsi) = &cluster.storage.iscsi {
        let _ = Runner::for_iscsi(iscsi)
            .remove(&[record_path(iscsi, formation, machine)])
            .await;
    }
}

/// Every shared record on the storage side.
pub(crate) async fn list_records(iscsi: &IscsiConfig) -> Result<Vec<SharedRecord>, ProviderError> {
    let runner = Runner::for_iscsi(iscsi);
    let dir = iscsi.dir.to_string_lossy().into_owned();
    let out = runner
        .run(
            "find",
            &[
                &dir,
                "-mindepth",
                "2",
                "-maxdepth",
                "2",
                "-name",
                &format!("*{SUFFIX}"),
            ],
            SHORT,
        )
        .await?;
    if !out.success && !out.stderr.contains("No such file") {
        return Err(failed(format!(
            "cannot list the machine records under {dir}: {}",
            out.stderr.trim()
        )));
    }
    let mut records = Vec::new();
    for path in out.stdout.lines().filter(|l| !l.is_empty()) {
        if let Some(r) = read_shared(&runner, Path::new(path)).await? {
            records.push(r);
        }
    }
    records.sort_by(|a, b| {
        (&a.record.formation, &a.record.machine).cmp(&(&b.record.formation, &b.record.machine))
    });
    Ok(records)
}

/// Leaves out (and removes) stale copies of moved or destroyed machines; see the module doc.
pub(crate) async fn drop_stale(cluster: &ClusterFile, found: Vec<FoundDomain>) -> Vec<FoundDomain> {
    let Some(iscsi) = &cluster.storage.iscsi else {
        return found;
    };
    let runner = Runner::for_iscsi(iscsi);
    let mut kept = Vec::with_capacity(found.len());
    for d in found {
        // Next to its own LUNs (the domain may come from another cluster file's storage dir).
        let path = d
            .record
            .disks
            .iter()
            .find_map(|disk| match disk {
                DiskRecord::Lun { file, .. } => file.parent(),
                DiskRecord::File { .. } => None,
            })
            .map(|dir| dir.join(format!("{}{SUFFIX}", d.record.machine)))
            .unwrap_or_else(|| record_path(iscsi, &d.record.formation, &d.record.machine));
        let stale = match read_shared(&runner, &path).await {
            Ok(Some(owner)) => match &owner.uuid {
                Some(u) => match domain_uuid(&d.uri, &d.name).await {
                    Some(mine) if mine != *u => Some(Some(owner)),
                    _ => None,
                },
                None => None,
            },
            // No record: stale only when all its disks are gone too (its formation was
            // destroyed while this host was down); machines made before records existed, or
            // on storage this cluster file does not know, keep working.
            Ok(None) => disks_gone(cluster, &runner, &d).await.then_some(None),
            Err(_) => None, // cannot tell: keep it
        };
        match stale {
            None => kept.push(d),
            Some(owner) => remove_stale(cluster, &d, owner.as_ref()).await,
        }
    }
    kept
}

pub(crate) async fn domain_uuid(uri: &str, name: &str) -> Option<String> {
    let out = libvirt::virsh_output(uri, &["domuuid", name]).await.ok()?;
    let uuid = out.stdout.trim().to_string();
    (out.success && !uuid.is_empty()).then_some(uuid)
}

pub(crate) async fn new_uuid() -> Result<String, ProviderError> {
    let path = Path::new("/proc/sys/kernel/random/uuid");
    tokio::fs::read_to_string(path)
        .await
        .map(|u| u.trim().to_string())
        .map_err(|e| crate::cmd::io_failed(path, e))
}

/// Every disk of the domain is missing (`test -e` exits 1; ssh trouble counts as present).
async fn disks_gone(cluster: &ClusterFile, storage: &Runner, d: &FoundDomain) -> bool {
    let Some(host) = cluster.host(&d.host) else {
        return false;
    };
    let on_host = Runner::for_host(host);
    if d.record.disks.is_empty() {
        return false;
    }
    for disk in &d.record.disks {
        let (runner, file) = match disk {
            DiskRecord::Lun { file, .. } => (storage, file),
            DiskRecord::File { path } => (&on_host, path),
        };
        let out = runner
            .run("test", &["-e", &file.to_string_lossy()], SHORT)
            .await;
        if !matches!(&out, Ok(o) if !o.success && o.stderr.is_empty()) {
            return false;
        }
    }
    true
}

async fn remove_stale(cluster: &ClusterFile, d: &FoundDomain, owner: Option<&SharedRecord>) {
    let _ = libvirt::remove_domain(&d.uri, &d.name).await;
    let Some(host) = cluster.host(&d.host) else {
        return;
    };
    // Its seed, console log and swap, unless the owner uses the very same files (hosts
    // sharing a directory).
    let owner_files = |o: &SharedRecord| -> Vec<PathBuf> {
        [&o.record.seed, &o.record.console_log]
            .into_iter()
            .cloned()
            .chain(o.record.swap.iter().map(|s| s.path.clone()))
            .collect()
    };
    let files: Vec<PathBuf> = [&d.record.seed, &d.record.console_log]
        .into_iter()
        .cloned()
        .chain(d.record.swap.iter().map(|s| s.path.clone()))
        .filter(|p| owner.is_none_or(|o| !owner_files(o).contains(p)))
        .collect();
    let runner = Runner::for_host(host);
    let _ = runner.remove(&files).await;
    let dir = names::formation_dir(cluster, host, &d.record.formation);
    let _ = runner.run("rmdir", &[&dir.to_string_lossy()], SHORT).await;
}

pub(crate) fn machine_for_placement(shared: &SharedRecord) -> Machine {
    let r = &shared.record;
    Machine {
        name: r.machine.clone(),
        cpus: r.cpus,
        memory_mb: r.memory_mb,
        image: String::new(),
        disks: Vec::new(),
        networks: Vec::new(),
        primary: r.primary,
        labels: shared.labels.clone(),
        env: BTreeMap::new(),
        secret_env: Vec::new(),
        swap_mb: r.swap.as_ref().map_or(0, |s| s.size_mb),
    }
}

/// The seed ISO kept in the formation's work dir on the machine running nepho.
pub(crate) fn local_seed(record: &MachineRecord) -> PathBuf {
    record
        .key
        .parent()
        .unwrap_or(Path::new("."))
        .join("seeds")
        .join(format!("{}.iso", record.machine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_records_round_trip() {
        let shared = SharedRecord {
            domain: "nepho-f-db".into(),
            host: "h1".into(),
            generation: 2,
            uuid: Some("8f0c2a4e-0000-4000-8000-000000000001".into()),
            labels: BTreeMap::from([("rack".into(), "a".into())]),
            lockspace: Some("/shared/lockspace".into()),
            record: MachineRecord {
                formation: "f".into(),
                cloudlet: "c".into(),
                scenario: "s".into(),
                machine: "db".into(),
                primary: true,
                host: "h1".into(),
                cpus: 1,
                memory_mb: 256,
                disks: vec![DiskRecord::Lun {
                    iqn: "iqn.x:f:db".into(),
                    lun: 1,
                    portal: "127.0.0.1:3260".into(),
                    file: "/l/f/db-disk0.raw".into(),
                }],
                seed: "/d/f/db-seed.iso".into(),
                console_log: "/d/f/db-console.log".into(),
                key: "/w/id_ed25519".into(),
                ssh_user: "root".into(),
                outputs: BTreeMap::new(),
                nics: vec![],
                swap: None,
                base_image: None,
            },
        };
        let json = serde_json::to_string(&shared).unwrap();
        assert_eq!(serde_json::from_str::<SharedRecord>(&json).unwrap(), shared);
        assert!(has_lun(&shared.record));
        assert_eq!(local_seed(&shared.record), PathBuf::from("/w/seeds/db.iso"));
        let m = machine_for_placement(&shared);
        assert_eq!((m.cpus, m.memory_mb, m.labels.len()), (1, 256, 1));
    }
}
