//! `cluster:failover HOST`: restart a dead host's machines on other hosts, from the shared
//! records kept next to their LUNs (see `records.rs`).
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

use std::path::Path;
use std::time::{Duration, Instant};

use nepho_provider_api::{FailoverReport, FailoverResult, ProviderError, Watch};

use crate::KvmProvider;
use crate::cluster::{HostConfig, IscsiConfig};
use crate::libvirt::{self, DiskRecord, DomainSpec, MachineRecord};
use crate::names;
use crate::place;
use crate::records::{
    SharedRecord, domain_uuid, ensure_lease_files, list_records, local_seed, lockspace_for,
    machine_for_placement, new_uuid, record_path, start_domain, write_shared,
};
use crate::steps;
use crate::storage::{self, Runner};

const SHORT: Duration = Duration::from_secs(30);

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::Failed {
        message: message.into(),
        hint: None,
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
        let dir = names::formation_dir(cluster, to, &old.formation);
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
                .map_err(|e| crate::cmd::io_failed(&file, e))?;
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
        let sessions = storage::sessions_by_target(&out);
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
