//! `cluster:failover HOST`: restart a dead host's machines on other hosts.
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
//! ## Failover
//!
//! `failover(HOST)` refuses while HOST's libvirtd answers. Otherwise it lists the shared
//! records owned by HOST; machines with any local (qcow2) disk are reported as not movable;
//! the others are placed by the allocator ([`place::place`]: capacity and labels, against the
//! load read from the live hosts), their record is rewritten with the new owner (next
//! generation) **before** the domain is defined there, the seed ISO (the copy in the formation's work
//! dir on this machine) is uploaded to the new host, the domain is defined and started from
//! the record (same name, MACs, LUNs) and nepho waits for address + ssh + provisioner like
//! create does. The new domain gets a UUID chosen by nepho and written into the record first.
//! HOST must really be down: nepho checks that its libvirtd does not answer; a libvirtd that
//! does not answer does not prove that its QEMUs are gone (the host may only have lost its
//! management link), so a second copy must be fenced off:
//!
//! - With `storage.lockspace` in the cluster file (every host's libvirt uses the lock manager
//!   `lockd` on that shared directory), each iSCSI machine's domain carries a `<lease>` per
//!   target (see [`libvirt::lease_keys`]); the QEMU's virtlockd holds it while the QEMU runs.
//!   Starting the copy then fails in libvirt itself ("resource busy: Lockspace resource …
//!   is locked"): failover reports "another host still holds the disks of M", removes the
//!   copy it defined and leaves the running one alone. The shared record says whether the
//!   owning domain was defined with leases (`lockspace`); only then does failover rely on
//!   them.
//! - Otherwise (no lockspace, or a machine defined before it was set) the only check is that
//!   no LUN of the machine still has an iSCSI session (a QEMU still running it): weaker (a
//!   session that is reconnecting is not seen), and a powered-off host's session may linger
//!   on the target until it times out.
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
use std::time::{Duration, Instant};

use nepho_provider_api::{FailoverReport, FailoverResult, ProviderError, Watch};
use serde::{Deserialize, Serialize};

use crate::KvmProvider;
use crate::cluster::{ClusterFile, HostConfig, IscsiConfig};
use crate::libvirt::{self, DiskRecord, DomainSpec, FoundDomain, MachineRecord};
use crate::pattern::Machine;
use crate::place;
use crate::steps;
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
        .map_err(|e| crate::storage::io_failed(&staging_dir, e))?;
    let local = staging_dir.join(format!(".{}{SUFFIX}", shared.record.machine));
    let json = serde_json::to_string_pretty(shared).expect("records serialize");
    tokio::fs::write(&local, json)
        .await
        .map_err(|e| crate::storage::io_failed(&local, e))?;
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
        .map_err(|e| crate::storage::io_failed(path, e))
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
    let dir = steps::formation_dir(cluster, host, &d.record.formation);
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

impl KvmProvider {
    /// One round of `cluster:watch`: every host that has not answered for `grace` is failed
    /// over once per outage (again after another `grace` when a machine could not move yet:
    /// LUN still in use, no room). A host that answers again starts a new outage next time.
    pub async fn watch_round(
        &self,
        watch: &mut Watch,
        grace: Duration,
    ) -> Vec<Result<FailoverReport, ProviderError>> {
        let mut reports = Vec::new();
        for h in &self.cluster.hosts {
            if libvirt::list_all(&h.uri, Duration::from_secs(10))
                .await
                .is_ok()
            {
                watch.answered(&h.name);
                continue;
            }
            if !watch.due(&h.name, grace, Instant::now()) {
                continue;
            }
            let result = self
                .failover_host(&h.name)
                .await
                .map(|machines| FailoverReport {
                    host: h.name.clone(),
                    machines,
                });
            let complete = result.as_ref().is_ok_and(FailoverReport::complete);
            watch.failed_over(&h.name, complete, Instant::now());
            reports.push(result);
        }
        reports
    }

    /// Restarts on other hosts the machines of the unreachable `host` whose disks are all on
    /// shared iSCSI storage; reports every machine that was on it.
    pub(crate) async fn failover_host(
        &self,
        host: &str,
    ) -> Result<Vec<FailoverResult>, ProviderError> {
        let cluster = &self.cluster;
        let dead = cluster.host(host).ok_or_else(|| {
            ProviderError::NotFound(format!("host {host} is not in the cluster file"))
        })?;
        if libvirt::list_all(&dead.uri, Duration::from_secs(15))
            .await
            .is_ok()
        {
            return Err(ProviderError::Invalid {
                message: format!(
                    "host {host} is reachable: failover only moves machines off a dead host"
                ),
                hint: Some(format!(
                    "failover is for a host that is down (powered off or fenced); while {host} answers, use formation:stop/start"
                )),
            });
        }
        let Some(iscsi) = &cluster.storage.iscsi else {
            return Err(ProviderError::Invalid {
                message: "the cluster file has no shared storage (storage.iscsi): no machine can move to another host".into(),
                hint: None,
            });
        };
        let records: Vec<SharedRecord> = list_records(iscsi)
            .await?
            .into_iter()
            .filter(|r| r.host == host)
            .collect();
        let mut loads = place::host_loads(cluster).await;
        let mut results = Vec::new();
        let mut moves: Vec<(SharedRecord, HostConfig)> = Vec::new();
        for shared in records {
            let r = &shared.record;
            let mut result = FailoverResult {
                formation: r.formation.clone(),
                machine: r.machine.clone(),
                domain: shared.domain.clone(),
                from: host.to_string(),
                to: None,
                status: "not-movable".into(),
                address: None,
                reason: None,
                seconds: 0.0,
            };
            let local: Vec<String> = r
                .disks
                .iter()
                .enumerate()
                .filter_map(|(i, d)| match d {
                    DiskRecord::File { path } => Some(format!("disk{i} ({})", path.display())),
                    DiskRecord::Lun { .. } => None,
                })
                .collect();
            if !local.is_empty() {
                result.reason = Some(format!(
                    "local qcow2 disk(s) on {host}: {}; only machines whose disks are all on iSCSI can move",
                    local.join(", ")
                ));
                results.push(result);
                continue;
            }
            let seed = local_seed(r);
            if !seed.exists() {
                result.reason = Some(format!(
                    "its seed ISO {} is not on this machine (run failover where the formation was created)",
                    seed.display()
                ));
                results.push(result);
                continue;
            }
            let machine = machine_for_placement(&shared);
            match place::place(
                cluster,
                &loads,
                &r.formation,
                std::slice::from_ref(&machine),
            ) {
                Err(why) => {
                    result.status = "no-room".into();
                    result.reason = Some(why);
                    results.push(result);
                }
                Ok(placed) => {
                    let to = placed[&r.machine].clone();
                    if let Some(l) = loads.iter_mut().find(|l| l.host.name == to) {
                        // Counted once even when a re-run finds it there already.
                        if !l.domains.iter().any(|d| {
                            d.record.formation == r.formation && d.record.machine == r.machine
                        }) {
                            l.used_cpus += r.cpus;
                            l.used_memory_mb += r.memory_mb;
                        }
                    }
                    let host = cluster.host(&to).cloned().expect("placed on a known host");
                    moves.push((shared, host));
                }
            }
        }
        let moved = crate::join_all(moves.iter().map(|(shared, to)| async move {
            let started = Instant::now();
            let outcome = self.move_machine(shared, to).await;
            (shared, to, outcome, started.elapsed().as_secs_f64())
        }))
        .await;
        for (shared, to, outcome, seconds) in moved {
            let (status, address, reason) = match outcome {
                Ok(address) => ("moved", Some(address), None),
                Err(e) => ("failed", None, Some(e.to_string())),
            };
            results.push(FailoverResult {
                formation: shared.record.formation.clone(),
                machine: shared.record.machine.clone(),
                domain: shared.domain.clone(),
                from: host.to_string(),
                to: Some(to.name.clone()),
                status: status.into(),
                address,
                reason,
                seconds,
            });
        }
        results.sort_by(|a, b| (&a.formation, &a.machine).cmp(&(&b.formation, &b.machine)));
        Ok(results)
    }

    /// Defines and starts the machine on `to` from its shared record, then waits until it is
    /// ready; returns its address. The record names the new owner before the domain exists.
    async fn move_machine(
        &self,
        shared: &SharedRecord,
        to: &HostConfig,
    ) -> Result<String, ProviderError> {
        let cluster = &self.cluster;
        let iscsi = cluster.storage.iscsi.as_ref().expect("checked");
        let storage = Runner::for_iscsi(iscsi);
        let old = &shared.record;
        // With leases in the cluster's lockspace, libvirt refuses the second copy itself (see
        // the module doc); without, the iSCSI sessions are all there is to look at.
        let leased = shared.lockspace.is_some()
            && shared.lockspace.as_deref() == cluster.storage.lockspace.as_deref();
        if !leased {
            wait_detached(iscsi, old).await?;
        }
        let dir = steps::formation_dir(cluster, to, &old.formation);
        let mut record = old.clone();
        record.host = to.name.clone();
        record.seed = dir.join(format!("{}-seed.iso", old.machine));
        record.console_log = dir.join(format!("{}-console.log", old.machine));
        let runner = Runner::for_host(to);
        runner.mkdir(&dir).await?;
        // Swap lived on the dead host's own storage: a blank one on the new host.
        if let Some(swap) = &mut record.swap {
            swap.path = dir.join(format!("{}-swap.raw", old.machine));
            crate::storage::create_swap(&runner, swap).await?;
        }
        runner
            .upload_private(&local_seed(old), &record.seed)
            .await?;
        let path = record_path(iscsi, &old.formation, &old.machine);
        // The new domain's UUID is chosen here and recorded before it exists, so every copy
        // elsewhere is stale from then on.
        let uuid = match domain_uuid(&to.uri, &shared.domain).await {
            Some(u) => u,
            None => new_uuid().await?,
        };
        let moved = SharedRecord {
            host: to.name.clone(),
            generation: shared.generation + 1,
            uuid: Some(uuid.clone()),
            record: record.clone(),
            lockspace: lockspace_for(cluster, &record).map(Path::to_path_buf),
            ..shared.clone()
        };
        write_shared(&storage, &path, &moved).await?;
        let defined = self
            .define_and_start(&shared.domain, &record, to, &uuid, true)
            .await;
        if let Err(e) = defined {
            // Give the machine back to the dead host, so a later failover can try again, and
            // leave no second (stopped) definition behind on `to`.
            let _ = write_shared(&storage, &path, shared).await;
            if libvirt::domain_state(&to.uri, &shared.domain)
                .await
                .as_deref()
                != Some("running")
            {
                let _ = libvirt::remove_domain(&to.uri, &shared.domain).await;
            }
            if let Some(swap) = &record.swap {
                let _ = runner.remove(std::slice::from_ref(&swap.path)).await;
            }
            return Err(e);
        }
        self.wait_ready(&shared.domain, &record, to).await
    }

    pub(crate) async fn define_and_start(
        &self,
        domain: &str,
        record: &MachineRecord,
        to: &HostConfig,
        uuid: &str,
        start: bool,
    ) -> Result<(), ProviderError> {
        ensure_lease_files(&self.cluster, to, record).await?;
        if !libvirt::domain_exists(&to.uri, domain).await {
            for nic in &record.nics {
                if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
                    steps::reserve_address(&to.uri, net, &nic.mac, ip, &record.machine).await?;
                }
            }
            let dtype = self.domain_type(None).await;
            let xml = libvirt::domain_xml(&DomainSpec {
                name: domain,
                domain_type: &dtype,
                record,
                lockspace: lockspace_for(&self.cluster, record),
            })
            .replacen(
                "</name>\n",
                &format!("</name>\n  <uuid>{}</uuid>\n", libvirt::esc(uuid)),
                1,
            );
            let work = record
                .key
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(std::env::temp_dir);
            let file = work.join(format!("{domain}.failover.xml"));
            tokio::fs::write(&file, &xml)
                .await
                .map_err(|e| crate::storage::io_failed(&file, e))?;
            let out = libvirt::virsh(&to.uri, &["define", &file.to_string_lossy()]).await;
            let _ = tokio::fs::remove_file(&file).await;
            out?;
        }
        if start && libvirt::domain_state(&to.uri, domain).await.as_deref() != Some("running") {
            start_domain(to, domain, &record.machine).await?;
        }
        Ok(())
    }

    /// Address + ssh + provisioner finished, like the `ready` step.
    pub(crate) async fn wait_ready(
        &self,
        domain: &str,
        record: &MachineRecord,
        to: &HostConfig,
    ) -> Result<String, ProviderError> {
        let timeout = Duration::from_secs(self.cluster.ready_timeout_s);
        let started = Instant::now();
        let mut waiting_for = "a DHCP lease".to_string();
        while started.elapsed() < timeout {
            let state = libvirt::domain_state(&to.uri, domain).await;
            if state.as_deref() != Some("running") {
                return Err(failed(format!(
                    "{} is {} on {} instead of running (console log {})",
                    record.machine,
                    state.unwrap_or_else(|| "not defined".into()),
                    to.name,
                    record.console_log.display()
                )));
            }
            let address = match record.nics.first().and_then(|n| n.ip.clone()) {
                Some(ip) => Some(ip),
                None => libvirt::address(&to.uri, domain).await,
            };
            if let Some(address) = address {
                waiting_for = format!("ssh and the provisioner at {address}");
                let probe = steps::ssh_run(
                    &record.key,
                    &record.ssh_user,
                    &address,
                    "cat /run/nepho/provision.rc 2>/dev/null || echo pending",
                    Duration::from_secs(20),
                )
                .await;
                if let Ok(out) = probe
                    && out.success
                {
                    match out.stdout.trim() {
                        "pending" => {}
                        "0" => return Ok(address),
                        rc => {
                            return Err(failed(format!(
                                "the provisioner failed on {} after the move (exit {rc})",
                                record.machine
                            )));
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(failed(format!(
            "{} was not ready on {} within {} s (waiting for {waiting_for}; console log {})",
            record.machine,
            to.name,
            timeout.as_secs(),
            record.console_log.display()
        )))
    }
}

/// Fencing check: a LUN that still has an iSCSI session is in use by some QEMU (the "dead"
/// host may only have lost its libvirtd). Starting a second instance on it would corrupt the
/// disk, so wait a little for the session to drop (a killed QEMU's TCP connection closes at
/// once), then refuse.
async fn wait_detached(iscsi: &IscsiConfig, record: &MachineRecord) -> Result<(), ProviderError> {
    let iqns: Vec<&str> = record
        .disks
        .iter()
        .filter_map(|d| match d {
            DiskRecord::Lun { iqn, .. } => Some(iqn.as_str()),
            DiskRecord::File { .. } => None,
        })
        .collect();
    let runner = Runner::for_iscsi(iscsi);
    let port = iscsi.control_port.to_string();
    let started = Instant::now();
    loop {
        let out = runner
            .check(
                "tgtadm",
                &[
                    "-C", &port, "--lld", "iscsi", "--op", "show", "--mode", "target",
                ],
                SHORT,
            )
            .await?;
        let sessions = sessions_by_target(&out);
        let busy: Vec<String> = iqns
            .iter()
            .filter_map(|i| {
                sessions
                    .get(*i)
                    .map(|s| format!("{i} from {}", s.join(", ")))
            })
            .collect();
        if busy.is_empty() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(15) {
            return Err(ProviderError::Failed {
                message: format!(
                    "{}: its LUN still has an iSCSI session ({}): a QEMU on the old host may still be running it",
                    record.machine,
                    busy.join("; ")
                ),
                hint: Some(
                    "power the old host off (fence it), then run cluster:failover again".into(),
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Target IQN -> initiators with a session (`I_T nexus`), from `tgtadm --op show`.
pub(crate) fn sessions_by_target(show: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in show.lines() {
        if let Some(rest) = line.strip_prefix("Target ") {
            current = rest.split_once(": ").map(|(_, iqn)| iqn.trim().to_string());
            continue;
        }
        let t = line.trim();
        if let (Some(iqn), Some(who)) = (&current, t.strip_prefix("Initiator: ")) {
            let who = who.split(" alias:").next().unwrap_or(who).trim();
            map.entry(iqn.clone()).or_default().push(who.to_string());
        } else if let (Some(iqn), Some(ip)) = (&current, t.strip_prefix("IP Address: "))
            && let Some(last) = map.get_mut(iqn).and_then(|v| v.last_mut())
        {
            last.push_str(&format!(" ({})", ip.trim()));
        }
    }
    map
}

/// The seed ISO kept in the formation's work dir on the machine running nepho.
fn local_seed(record: &MachineRecord) -> PathBuf {
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
    fn sessions_are_read_from_tgtadm_show() {
        let show = "Target 1: iqn.a:f:db\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n        I_T nexus: 3\n            Initiator: iqn.a:f:db:initiator alias: none\n            Connection: 0\n                IP Address: 127.0.0.1\n    LUN information:\n        LUN: 0\nTarget 2: iqn.a:f:idle\n    System information:\n        Driver: iscsi\n    I_T nexus information:\n    LUN information:\n";
        let s = sessions_by_target(show);
        assert_eq!(
            s.get("iqn.a:f:db").unwrap(),
            &vec!["iqn.a:f:db:initiator (127.0.0.1)".to_string()]
        );
        assert!(!s.contains_key("iqn.a:f:idle"));
    }

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
