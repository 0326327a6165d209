//! Offline migration (`cluster:migrate`) and rebalancing (`cluster:rebalance`); live migration
//! (`--live`, and the moves of running machines on shared disks) is in `live.rs`.
//!
//! ## Migrating one machine
//!
//! The machine is shut down cleanly (forced after `shutdown_timeout_s`), its local qcow2
//! disks and its seed are copied to the destination host's formation directory (host to host
//! through this machine: `cp` when both are local, `ssh … cat | ssh … cat` otherwise; a
//! directory both hosts share is not copied at all), LUN disks stay where they are. The
//! source domain is undefined (its disks kept), the machine is defined on the destination
//! from its record with a new UUID (recorded first in the shared record, as failover does,
//! so a copy that reappears on the old host is known to be stale) and started again if it was
//! running, and nepho waits until it is ready. Only then are the old files removed. A machine
//! on a library image or with a library ISO uses the destination's own copies (`cluster:sync`
//! makes them): its copied overlay is rebased onto that host's image (`qemu-img rebase -u`).
//!
//! Any failure after the shutdown puts everything back: the destination domain and the
//! copies are removed, the source domain is defined again from its saved XML, the shared
//! record is restored and the machine is started again if it was running.
//!
//! ## Rebalancing
//!
//! Greedy, on memory (the scarce resource on a KVM host): while the spread between the most
//! and the least loaded reachable host (used / capacity) can be narrowed by moving one
//! machine from the first to the second (with room and matching labels), the machine that
//! narrows it most moves. The plan is computed first (`--dry-run` prints it), then each move
//! is a migration as above, one at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nepho_provider_api::{Hold, MigrateResult, MoveMode, ProviderError, RebalanceReport};

use crate::KvmProvider;
use crate::cluster::HostConfig;
use crate::cmd::{self, shell_quote};
use crate::libvirt::{self, DiskRecord, FoundDomain, MachineRecord};
use crate::names;
use crate::place::{self, HostLoad};
use crate::records::{self, SharedRecord};
use crate::steps;
use crate::storage::Runner;

const COPY_TIMEOUT: Duration = Duration::from_secs(1800);
const SHORT: Duration = Duration::from_secs(60);

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::Failed {
        message: message.into(),
        hint: None,
    }
}

fn invalid(message: impl Into<String>, hint: Option<String>) -> ProviderError {
    ProviderError::Invalid {
        message: message.into(),
        hint,
    }
}

/// A file's size on a host (0 when it cannot be read).
pub(super) async fn file_size(runner: &Runner, path: &Path) -> u64 {
    runner
        .run("stat", &["-c", "%s", "--", &path.to_string_lossy()], SHORT)
        .await
        .ok()
        .filter(|o| o.success)
        .and_then(|o| o.stdout.trim().parse().ok())
        .unwrap_or(0)
}

/// The shell words that run `line` on `runner`'s host.
fn shell_on(runner: &Runner, line: &str) -> String {
    match runner {
        Runner::Local => line.to_string(),
        Runner::Ssh(target) => {
            let mut words: Vec<String> = std::iter::once("ssh".to_string())
                .chain(target.ssh_args())
                .map(|w| shell_quote(&w))
                .collect();
            words.push(shell_quote(line));
            words.join(" ")
        }
    }
}

/// Copies `src` on one host to `dest` on another (written as `dest.tmp`, then renamed).
pub(super) async fn copy_between(
    from: &Runner,
    src: &Path,
    to: &Runner,
    dest: &Path,
) -> Result<(), ProviderError> {
    let tmp = PathBuf::from(format!("{}.tmp", dest.display()));
    let (s, t) = (src.to_string_lossy(), tmp.to_string_lossy());
    if matches!((from, to), (Runner::Local, Runner::Local)) {
        cmd::check("cp", &["--sparse=always", "--", &s, &t], COPY_TIMEOUT).await?;
    } else {
        let read = shell_on(from, &format!("cat -- {}", shell_quote(&s)));
        let write = shell_on(to, &format!("cat > {}", shell_quote(&t)));
        let line = format!("set -o pipefail; {read} | {write}");
        cmd::check("bash", &["-c", &line], COPY_TIMEOUT).await?;
    }
    to.rename(&tmp, dest).await
}

/// Same host-visible file on both sides (two local hosts sharing a directory).
pub(super) fn same_file(from: &Runner, to: &Runner, a: &Path, b: &Path) -> bool {
    matches!((from, to), (Runner::Local, Runner::Local)) && a == b
}

/// The record as it will be on `to`: local files in `to`'s formation directory.
pub(super) fn record_on(
    cluster: &crate::ClusterFile,
    old: &MachineRecord,
    to: &HostConfig,
) -> MachineRecord {
    let dir = names::formation_dir(cluster, to, &old.formation);
    let moved = |p: &Path| dir.join(p.file_name().unwrap_or_default());
    let mut record = old.clone();
    // A library image: the new host's own copy (the overlay is rebased onto it).
    if let (Some(from), Some(base)) = (cluster.host(&old.host), &old.base_image)
        && let Some(there) = names::library_counterpart(cluster, from, to, base)
    {
        record.base_image = Some(there);
    }
    record.host = to.name.clone();
    record.seed = moved(&old.seed);
    record.console_log = moved(&old.console_log);
    if let Some(swap) = &mut record.swap {
        swap.path = moved(&swap.path);
    }
    record.disks = old
        .disks
        .iter()
        .map(|d| match d {
            DiskRecord::File { path } => DiskRecord::File { path: moved(path) },
            lun => lun.clone(),
        })
        .collect();
    record
}

/// Memory used / capacity per reachable host.
fn spread_of(loads: &[HostLoad]) -> BTreeMap<String, f64> {
    loads
        .iter()
        .filter(|l| l.reachable() && l.host.memory_mb > 0)
        .map(|l| {
            (
                l.host.name.clone(),
                l.used_memory_mb as f64 / l.host.memory_mb as f64,
            )
        })
        .collect()
}

/// Moves `d`'s share (vCPUs, memory) from its host to `to` in a plan's loads.
fn move_load(loads: &mut [HostLoad], d: &FoundDomain, to: &str) {
    for l in loads.iter_mut() {
        if l.host.name == d.host {
            l.used_cpus -= d.record.cpus;
            l.used_memory_mb -= d.record.memory_mb;
        } else if l.host.name == to {
            l.used_cpus += d.record.cpus;
            l.used_memory_mb += d.record.memory_mb;
        }
    }
}

/// A move of `d` to `to` that has not been made (yet).
fn planned(d: &FoundDomain, to: &str, mode: MoveMode) -> MigrateResult {
    MigrateResult {
        formation: d.record.formation.clone(),
        machine: d.record.machine.clone(),
        domain: d.name.clone(),
        from: d.host.clone(),
        to: to.to_string(),
        status: "planned".into(),
        mode,
        was_running: d.state == "running",
        address: None,
        copied_bytes: 0,
        memory_mb: d.record.memory_mb,
        downtime_ms: None,
        reason: None,
        seconds: 0.0,
    }
}

/// The greedy rebalancing plan: (formation, machine, from, to) moves, at most `max_moves`.
pub(crate) fn plan_rebalance(
    loads: &[HostLoad],
    labels: &BTreeMap<(String, String), BTreeMap<String, String>>,
    max_moves: usize,
) -> Vec<(FoundDomain, String)> {
    let mut loads: Vec<HostLoad> = loads
        .iter()
        .filter(|l| l.reachable() && l.host.memory_mb > 0)
        .cloned()
        .collect();
    let frac = |l: &HostLoad| l.used_memory_mb as f64 / l.host.memory_mb as f64;
    let mut moves = Vec::new();
    while moves.len() < max_moves && loads.len() > 1 {
        let (hi, lo) = {
            let mut order: Vec<usize> = (0..loads.len()).collect();
            order.sort_by(|a, b| frac(&loads[*a]).partial_cmp(&frac(&loads[*b])).unwrap());
            (*order.last().unwrap(), order[0])
        };
        let gap = frac(&loads[hi]) - frac(&loads[lo]);
        let (cap_hi, cap_lo) = (
            loads[hi].host.memory_mb as f64,
            loads[lo].host.memory_mb as f64,
        );
        let best = loads[hi]
            .domains
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                let l = &loads[lo];
                let wanted = labels
                    .get(&(d.record.formation.clone(), d.record.machine.clone()))
                    .cloned()
                    .unwrap_or_default();
                wanted.iter().all(|(k, v)| l.host.labels.get(k) == Some(v))
                    && l.host.cpus as i64 - l.used_cpus as i64 >= d.record.cpus as i64
                    && l.host.memory_mb as i64 - l.used_memory_mb as i64
                        >= d.record.memory_mb as i64
            })
            .map(|(i, d)| {
                let m = d.record.memory_mb as f64;
                let new_gap =
                    ((frac(&loads[hi]) - m / cap_hi) - (frac(&loads[lo]) + m / cap_lo)).abs();
                (i, new_gap)
            })
            .filter(|(_, new_gap)| *new_gap + 1e-9 < gap)
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        let Some((i, _)) = best else {
            break;
        };
        let d = loads[hi].domains.remove(i);
        let to = loads[lo].host.name.clone();
        move_load(&mut loads, &d, &to);
        loads[lo].domains.push(d.clone());
        moves.push((d, to));
    }
    moves
}

/// A library copy the destination lacks: the move is put back.
pub(super) fn missing_on(to: &HostConfig, path: &Path) -> ProviderError {
    ProviderError::Failed {
        message: format!(
            "host {} has no library copy {} (the machine uses the library's)",
            to.name,
            path.display()
        ),
        hint: Some("run `nepho cluster:sync` to copy the library to every host".into()),
    }
}

impl KvmProvider {
    /// A qcow2 boot disk over a library image names the old host's copy as its backing file:
    /// the copy on the new host points at that host's own copy instead (`qemu-img rebase -u`:
    /// both copies have the same content, checked by checksum).
    async fn rebase_on_library(
        &self,
        dst: &Runner,
        old: &MachineRecord,
        new: &MachineRecord,
    ) -> Result<(), ProviderError> {
        let (Some(DiskRecord::File { path: overlay }), Some(was), Some(base)) =
            (new.disks.first(), &old.base_image, &new.base_image)
        else {
            return Ok(());
        };
        if was == base {
            return Ok(());
        }
        let to = self
            .cluster
            .host(&new.host)
            .ok_or_else(|| failed(format!("host {} is not in the cluster file", new.host)))?;
        if !dst.exists(base).await {
            return Err(missing_on(to, base));
        }
        dst.check(
            "qemu-img",
            &[
                "rebase",
                "-u",
                "-F",
                "qcow2",
                "-b",
                &base.to_string_lossy(),
                &overlay.to_string_lossy(),
            ],
            SHORT,
        )
        .await
        .map(|_| ())
    }

    /// `cluster:migrate FORMATION MACHINE [--to HOST] [--live]`: see the module doc (offline)
    /// and `live.rs` (live). Without `to`, the allocator picks among the other hosts.
    pub async fn migrate(
        &self,
        formation: &str,
        machine: &str,
        to: Option<&str>,
        mode: MoveMode,
    ) -> Result<MigrateResult, ProviderError> {
        let d = self
            .find_machines(formation, Some(machine))
            .await?
            .into_iter()
            .next()
            .expect("machines() returns at least one");
        let refuse = |why: String| {
            invalid(
                format!("{machine} of {formation} cannot move live: {why}"),
                Some(format!(
                    "without --live it moves offline (shut down, moved, started again): `nepho cluster:migrate {formation} {machine}{}`",
                    to.map(|t| format!(" --to {t}")).unwrap_or_default()
                )),
            )
        };
        if mode == MoveMode::Live
            && let Some(why) = super::live::machine_blocker(&d)
        {
            return Err(refuse(why));
        }
        let loads = place::host_loads(&self.cluster).await;
        let labels = self.labels_of(&d).await;
        let to = self.destination(&d, &loads, &labels, to)?;
        let started = Instant::now();
        if mode == MoveMode::Live {
            if let Some(why) = self.network_blocker(&d, &to).await {
                return Err(refuse(why));
            }
            let moved = self.move_live(&d, &to).await?;
            return Ok(MigrateResult {
                status: "moved".into(),
                address: moved.address,
                copied_bytes: moved.copied_bytes,
                downtime_ms: moved.downtime_ms,
                seconds: started.elapsed().as_secs_f64(),
                ..planned(&d, &to.name, mode)
            });
        }
        let (address, copied_bytes) = self.move_offline(&d, &to).await?;
        Ok(MigrateResult {
            status: "moved".into(),
            address,
            copied_bytes,
            seconds: started.elapsed().as_secs_f64(),
            ..planned(&d, &to.name, mode)
        })
    }

    /// How a rebalance or evacuation moves `d` to `to`: live when it runs and nothing stands
    /// in the way (every disk shared, no local swap, its networks span both hosts), offline
    /// otherwise.
    async fn mode_for(&self, d: &FoundDomain, to: &str) -> MoveMode {
        let Some(to) = self.cluster.host(to) else {
            return MoveMode::Offline;
        };
        if super::live::machine_blocker(d).is_none() && self.network_blocker(d, to).await.is_none()
        {
            MoveMode::Live
        } else {
            MoveMode::Offline
        }
    }

    /// Makes the planned moves one at a time (unless `dry_run`); a move that failed, or a
    /// machine the plan found no room for (`Err(why)`), is reported and the rest go on.
    async fn make_moves(
        &self,
        plan: Vec<(FoundDomain, Result<String, String>)>,
        dry_run: bool,
        hold: &Hold,
    ) -> Vec<MigrateResult> {
        let mut moves = Vec::new();
        for (d, to) in plan {
            let r = match to {
                Err(why) => MigrateResult {
                    status: "no-room".into(),
                    reason: Some(why),
                    ..planned(&d, "", MoveMode::Offline)
                },
                Ok(to) => {
                    let mode = self.mode_for(&d, &to).await;
                    if dry_run {
                        planned(&d, &to, mode)
                    } else {
                        match hold(&d.record.formation) {
                            Ok(_held) => self.move_planned(&d, &to, mode).await,
                            Err(why) => MigrateResult {
                                status: "busy".into(),
                                reason: Some(why),
                                ..planned(&d, &to, mode)
                            },
                        }
                    }
                }
            };
            moves.push(r);
        }
        moves
    }

    /// One planned move of a rebalance or evacuation. A live move that failed with the machine
    /// still running where it was (libvirt aborted: a firewalled migration port, a destination
    /// QEMU that would not start, a migration that never converged) is made offline instead,
    /// as a host emptied for maintenance must still be emptied; the result says why.
    async fn move_planned(&self, d: &FoundDomain, to: &str, mode: MoveMode) -> MigrateResult {
        let (formation, machine) = (&d.record.formation, &d.record.machine);
        let failed = |e: ProviderError, mode| MigrateResult {
            status: "failed".into(),
            reason: Some(e.to_string()),
            ..planned(d, to, mode)
        };
        let live_error = match self.migrate(formation, machine, Some(to), mode).await {
            Ok(r) => return r,
            Err(e) if mode == MoveMode::Live => e,
            Err(e) => return failed(e, mode),
        };
        let runs_on = libvirt::domain_state(&d.uri, &d.name).await;
        if runs_on.as_deref() != Some("running") {
            return failed(live_error, mode);
        }
        let why = live_error.to_string();
        match self
            .migrate(formation, machine, Some(to), MoveMode::Offline)
            .await
        {
            Ok(r) => MigrateResult {
                reason: Some(format!("the live move failed ({why}); it moved offline")),
                ..r
            },
            Err(e) => MigrateResult {
                reason: Some(format!(
                    "the live move failed ({why}), then the offline move: {e}"
                )),
                ..failed(e, MoveMode::Offline)
            },
        }
    }

    /// `cluster:rebalance`: plans moves (see the module doc) and, unless `dry_run`, makes them
    /// one at a time. A failed move is reported and the rest go on.
    pub async fn rebalance(
        &self,
        dry_run: bool,
        max_moves: usize,
        hold: &Hold,
    ) -> Result<RebalanceReport, ProviderError> {
        let loads = place::host_loads(&self.cluster).await;
        if loads.iter().filter(|l| l.reachable()).count() < 2 {
            return Err(invalid(
                "rebalancing needs at least two reachable hosts",
                Some("cluster:status shows which hosts answer".into()),
            ));
        }
        let mut labels = BTreeMap::new();
        for d in loads.iter().flat_map(|l| &l.domains) {
            labels.insert(
                (d.record.formation.clone(), d.record.machine.clone()),
                self.labels_of(d).await,
            );
        }
        let plan = plan_rebalance(&loads, &labels, max_moves);
        let before = spread_of(&loads);
        let mut after_loads = loads.clone();
        for (d, to) in &plan {
            move_load(&mut after_loads, d, to);
        }
        let after = spread_of(&after_loads);
        let plan = plan.into_iter().map(|(d, to)| (d, Ok(to))).collect();
        Ok(RebalanceReport {
            before,
            after,
            moves: self.make_moves(plan, dry_run, hold).await,
        })
    }

    /// `cluster:evacuate HOST`: every machine off a live host (maintenance), each to the host
    /// the allocator picks among the others, biggest first; a machine that fits nowhere is
    /// reported (`no-room`) and stays. Unless `dry_run`, the moves are made one at a time.
    pub async fn evacuate(
        &self,
        host: &str,
        dry_run: bool,
        hold: &Hold,
    ) -> Result<RebalanceReport, ProviderError> {
        if self.cluster.host(host).is_none() {
            return Err(invalid(
                format!("host {host} is not in the cluster file"),
                None,
            ));
        }
        let loads = place::host_loads(&self.cluster).await;
        let here = loads
            .iter()
            .find(|l| l.host.name == host)
            .expect("checked above");
        if let Some(e) = &here.error {
            return Err(ProviderError::Unavailable {
                message: format!("host {host} does not answer ({e})"),
                hint: Some(format!(
                    "a dead host's machines move with `nepho cluster:failover {host}`"
                )),
            });
        }
        let mut machines = here.domains.clone();
        machines.sort_by_key(|d| std::cmp::Reverse(d.record.memory_mb));
        let before = spread_of(&loads);
        let mut after_loads = loads.clone();
        let mut plan: Vec<(FoundDomain, Result<String, String>)> = Vec::new();
        for d in machines {
            let labels = self.labels_of(&d).await;
            match self.destination(&d, &after_loads, &labels, None) {
                Ok(to) => {
                    move_load(&mut after_loads, &d, &to.name);
                    plan.push((d, Ok(to.name)));
                }
                Err(e) => plan.push((d, Err(e.to_string()))),
            }
        }
        let after = spread_of(&after_loads);
        Ok(RebalanceReport {
            before,
            after,
            moves: self.make_moves(plan, dry_run, hold).await,
        })
    }

    /// The labels the machine was placed with (kept in its shared record).
    async fn labels_of(&self, d: &FoundDomain) -> BTreeMap<String, String> {
        let Some(iscsi) = &self.cluster.storage.iscsi else {
            return BTreeMap::new();
        };
        let path = records::record_path(iscsi, &d.record.formation, &d.record.machine);
        match records::read_shared(&Runner::for_iscsi(iscsi), &path).await {
            Ok(Some(shared)) => shared.labels,
            _ => BTreeMap::new(),
        }
    }

    fn destination(
        &self,
        d: &FoundDomain,
        loads: &[HostLoad],
        labels: &BTreeMap<String, String>,
        to: Option<&str>,
    ) -> Result<HostConfig, ProviderError> {
        let r = &d.record;
        if let Some(to) = to {
            let host = self.cluster.host(to).ok_or_else(|| {
                invalid(
                    format!("host {to} is not in the cluster file"),
                    Some(format!(
                        "hosts: {}",
                        self.cluster
                            .hosts
                            .iter()
                            .map(|h| h.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                )
            })?;
            if host.name == d.host {
                return Err(invalid(
                    format!("{} of {} already runs on host {to}", r.machine, r.formation),
                    None,
                ));
            }
        }
        let candidates: Vec<HostLoad> = loads
            .iter()
            .filter(|l| l.host.name != d.host && to.is_none_or(|t| l.host.name == t))
            .cloned()
            .collect();
        let shared = SharedRecord {
            domain: d.name.clone(),
            host: d.host.clone(),
            generation: 0,
            uuid: None,
            labels: labels.clone(),
            record: r.clone(),
            lockspace: None, // only placed, never written
        };
        let machine = records::machine_for_placement(&shared);
        let placed = place::place(
            &self.cluster,
            &candidates,
            &r.formation,
            std::slice::from_ref(&machine),
        )
        .map_err(|why| ProviderError::Failed {
            message: format!("{} cannot move: {why}", r.machine),
            hint: Some("cluster:status shows each host's free capacity and labels".into()),
        })?;
        let name = &placed[&r.machine];
        Ok(self
            .cluster
            .host(name)
            .cloned()
            .expect("placed on a known host"))
    }

    /// Stops, copies, re-defines and restarts the machine on `to`; puts everything back on
    /// failure. Returns its new address (when it was running) and the bytes copied.
    async fn move_offline(
        &self,
        d: &FoundDomain,
        to: &HostConfig,
    ) -> Result<(Option<String>, u64), ProviderError> {
        let from = self
            .cluster
            .host(&d.host)
            .cloned()
            .ok_or_else(|| failed(format!("host {} is not in the cluster file", d.host)))?;
        let was_running = d.state == "running";
        let saved_xml = libvirt::virsh(&d.uri, &["dumpxml", "--inactive", &d.name]).await?;
        if d.state != "shut off" {
            self.stop(&d.record.formation, Some(&d.record.machine))
                .await?;
        }
        let src = Runner::for_host(&from);
        let dst = Runner::for_host(to);
        let old = &d.record;
        let new = record_on(&self.cluster, old, to);
        let iso = crate::media::attached_iso(&saved_xml);
        let src_dir = names::formation_dir(&self.cluster, &from, &old.formation);
        // Where the ISO will be on `to`: nepho's own copies (under the formation's directory,
        // made for remote hosts) and any ISO when a host is remote move to `to`'s `iso/`.
        // A library ISO is the new host's own copy.
        let iso_on = |to: &HostConfig, iso: &Path| -> PathBuf {
            if let Some(there) = names::library_counterpart(&self.cluster, &from, to, iso) {
                there
            } else if to.is_local() && from.is_local() && !iso.starts_with(&src_dir) {
                iso.to_path_buf()
            } else {
                names::formation_dir(&self.cluster, to, &old.formation)
                    .join("iso")
                    .join(iso.file_name().unwrap_or_default())
            }
        };
        let mut copies: Vec<PathBuf> = Vec::new();
        let mut undo = Undo {
            provider: self,
            d,
            from: &from,
            to,
            saved_xml: &saved_xml,
            was_running,
            shared_before: None,
            copies: &mut copies,
            undefined_source: false,
        };
        let outcome: Result<(Option<String>, u64), ProviderError> = async {
            dst.mkdir(&names::formation_dir(&self.cluster, to, &old.formation))
                .await?;
            let mut copied = 0;
            let pairs = old
                .disks
                .iter()
                .zip(&new.disks)
                .filter_map(|pair| match pair {
                    (DiskRecord::File { path: a }, DiskRecord::File { path: b }) => {
                        Some((a.clone(), b.clone()))
                    }
                    _ => None,
                })
                .chain([(old.seed.clone(), new.seed.clone())]);
            for (a, b) in pairs {
                if same_file(&src, &dst, &a, &b) {
                    continue;
                }
                copied += file_size(&src, &a).await;
                copy_between(&src, &a, &dst, &b).await?;
                undo.copies.push(b);
            }
            // The ISO in the spare drive goes along: a local ISO used in place stays where it
            // is when both hosts see it; anything else is copied next to the machine.
            self.rebase_on_library(&dst, old, &new).await?;
            if let Some(iso) = &iso {
                let target = iso_on(to, iso);
                let from_library =
                    names::library_counterpart(&self.cluster, &from, to, iso).is_some();
                if from_library && !dst.exists(&target).await {
                    return Err(missing_on(to, &target));
                }
                if !from_library && !same_file(&src, &dst, iso, &target) {
                    if let Some(dir) = target.parent() {
                        dst.mkdir(dir).await?;
                    }
                    copy_between(&src, iso, &dst, &target).await?;
                    undo.copies.push(target);
                }
            }
            // Swap is not copied: the guest makes a blank one into swap at boot.
            if let (Some(a), Some(b)) = (&old.swap, &new.swap)
                && !same_file(&src, &dst, &a.path, &b.path)
            {
                let _ = dst.remove(std::slice::from_ref(&b.path)).await;
                crate::storage::create_swap(&dst, b).await?;
                undo.copies.push(b.path.clone());
            }
            // The shared record names the new owner (and its UUID) before the domain exists.
            let uuid = records::new_uuid().await?;
            if let Some(iscsi) = &self.cluster.storage.iscsi {
                let storage = Runner::for_iscsi(iscsi);
                let path = records::record_path(iscsi, &old.formation, &old.machine);
                let before = records::read_shared(&storage, &path).await.ok().flatten();
                let moved = SharedRecord {
                    domain: d.name.clone(),
                    host: to.name.clone(),
                    generation: before.as_ref().map_or(1, |b| b.generation + 1),
                    uuid: Some(uuid.clone()),
                    labels: before
                        .as_ref()
                        .map(|b| b.labels.clone())
                        .unwrap_or_default(),
                    record: new.clone(),
                    lockspace: records::lockspace_for(&self.cluster, &new).map(Path::to_path_buf),
                };
                undo.shared_before = before;
                let written = records::write_shared(&storage, &path, &moved).await;
                if written.is_err()
                    && old
                        .disks
                        .iter()
                        .any(|x| matches!(x, DiskRecord::Lun { .. }))
                {
                    written?;
                }
            }
            libvirt::virsh(&d.uri, &["undefine", &d.name]).await?;
            undo.undefined_source = true;
            self.define_and_start(&d.name, &new, to, &uuid, false)
                .await?;
            if let Some(iso) = &iso {
                let target = iso_on(to, iso).to_string_lossy().into_owned();
                libvirt::virsh(
                    &to.uri,
                    &[
                        "change-media",
                        &d.name,
                        crate::media::ISO_TARGET,
                        &target,
                        "--update",
                        "--config",
                    ],
                )
                .await?;
            }
            if was_running {
                records::start_domain(to, &d.name, &old.machine).await?;
            }
            let address = if was_running {
                Some(self.wait_ready(&d.name, &new, to).await?)
            } else {
                None
            };
            Ok((address, copied))
        }
        .await;
        match outcome {
            Ok(done) => {
                // The old host's files; LUNs and shared files stay.
                let mut stale: Vec<PathBuf> = Vec::new();
                for (a, b) in old
                    .disks
                    .iter()
                    .zip(&new.disks)
                    .filter_map(|pair| match pair {
                        (DiskRecord::File { path: a }, DiskRecord::File { path: b }) => {
                            Some((a.clone(), b.clone()))
                        }
                        _ => None,
                    })
                    .chain([
                        (old.seed.clone(), new.seed.clone()),
                        (old.console_log.clone(), new.console_log.clone()),
                    ])
                    .chain(
                        old.swap
                            .iter()
                            .zip(&new.swap)
                            .map(|(a, b)| (a.path.clone(), b.path.clone())),
                    )
                {
                    if !same_file(&src, &dst, &a, &b) {
                        stale.push(a);
                    }
                }
                // nepho's copy of the ISO (never the user's own file).
                if let Some(iso) = &iso
                    && iso.starts_with(&src_dir)
                    && !same_file(&src, &dst, iso, &iso_on(to, iso))
                {
                    stale.push(iso.clone());
                }
                let _ = src.remove(&stale).await;
                let iso_dir = src_dir.join("iso");
                let _ = src.run("rmdir", &[&iso_dir.to_string_lossy()], SHORT).await;
                let _ = src.run("rmdir", &[&src_dir.to_string_lossy()], SHORT).await;
                if from.uri != to.uri {
                    for nic in &old.nics {
                        if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
                            steps::release_address(&from.uri, net, &nic.mac, ip).await;
                        }
                    }
                }
                Ok(done)
            }
            Err(e) => {
                let restored = undo.run().await;
                Err(match restored {
                    Ok(()) => ProviderError::Failed {
                        message: format!("moving {} to {} failed: {e}", old.machine, to.name),
                        hint: Some(format!(
                            "nothing changed: {} is back on {}{}",
                            old.machine,
                            from.name,
                            if was_running { " and running" } else { "" }
                        )),
                    },
                    Err(u) => ProviderError::Failed {
                        message: format!(
                            "moving {} to {} failed: {e}; putting it back failed too: {u}",
                            old.machine, to.name
                        ),
                        hint: Some(format!(
                            "its source definition was saved by libvirt as dumped; check `virsh -c {} list --all`",
                            from.uri
                        )),
                    },
                })
            }
        }
    }
}

/// What a failed move puts back.
struct Undo<'a> {
    provider: &'a KvmProvider,
    d: &'a FoundDomain,
    from: &'a HostConfig,
    to: &'a HostConfig,
    saved_xml: &'a str,
    was_running: bool,
    shared_before: Option<SharedRecord>,
    copies: &'a mut Vec<PathBuf>,
    undefined_source: bool,
}

impl Undo<'_> {
    async fn run(self) -> Result<(), ProviderError> {
        let cluster = &self.provider.cluster;
        let d = self.d;
        // The destination's domain (only if it is ours: the source's UUID differs).
        if self.from.uri != self.to.uri && libvirt::domain_exists(&self.to.uri, &d.name).await {
            let _ = libvirt::remove_domain(&self.to.uri, &d.name).await;
        }
        let _ = Runner::for_host(self.to).remove(self.copies).await;
        if let (Some(iscsi), Some(before)) = (&cluster.storage.iscsi, &self.shared_before) {
            let path = records::record_path(iscsi, &d.record.formation, &d.record.machine);
            let _ = records::write_shared(&Runner::for_iscsi(iscsi), &path, before).await;
        }
        if self.undefined_source || !libvirt::domain_exists(&d.uri, &d.name).await {
            let dir = d
                .record
                .key
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(std::env::temp_dir);
            let file = dir.join(format!("{}.restore.xml", d.name));
            tokio::fs::write(&file, self.saved_xml)
                .await
                .map_err(|e| crate::cmd::io_failed(&file, e))?;
            let out = libvirt::virsh(&d.uri, &["define", &file.to_string_lossy()]).await;
            let _ = tokio::fs::remove_file(&file).await;
            out?;
        }
        if self.was_running {
            if libvirt::domain_state(&d.uri, &d.name).await.as_deref() != Some("running") {
                libvirt::virsh(&d.uri, &["start", &d.name]).await?;
            }
            // "Nothing changed" includes being reachable again.
            self.provider
                .wait_ready(&d.name, &d.record, self.from)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterFile;

    fn cluster() -> ClusterFile {
        ClusterFile::parse(
            "hosts:\n  - {name: a, uri: 'qemu:///system', cpus: 8, memory_mb: 4096, dir: /a}\n  - {name: b, uri: 'qemu+ssh://root@b/system', cpus: 8, memory_mb: 4096, dir: /b, labels: {rack: r2}}\nnetworks:\n  - name: default\nstorage:\n  dir: /v\nimages:\n  tiny: /i/tiny.qcow2\n",
            "cluster.yaml",
        )
        .unwrap()
    }

    fn domain(host: &str, machine: &str, memory_mb: u64) -> FoundDomain {
        FoundDomain {
            host: host.into(),
            uri: String::new(),
            name: format!("nepho-f-{machine}"),
            state: "running".into(),
            record: MachineRecord {
                formation: "f".into(),
                cloudlet: "c".into(),
                scenario: "s".into(),
                machine: machine.into(),
                primary: false,
                host: host.into(),
                cpus: 1,
                memory_mb,
                disks: vec![
                    DiskRecord::File {
                        path: format!("/{host}/f/{machine}-disk0.qcow2").into(),
                    },
                    DiskRecord::Lun {
                        iqn: "iqn.x:f:m".into(),
                        lun: 1,
                        portal: "127.0.0.1:3260".into(),
                        file: "/l/f/m-disk1.raw".into(),
                    },
                ],
                seed: format!("/{host}/f/{machine}-seed.iso").into(),
                console_log: format!("/{host}/f/{machine}-console.log").into(),
                key: "/w/id_ed25519".into(),
                ssh_user: "root".into(),
                outputs: BTreeMap::new(),
                nics: vec![],
                swap: Some(crate::libvirt::SwapRecord {
                    path: format!("/{host}/f/{machine}-swap.raw").into(),
                    size_mb: 64,
                }),
                base_image: None,
            },
        }
    }

    fn load(c: &ClusterFile, host: &str, domains: Vec<FoundDomain>) -> HostLoad {
        HostLoad {
            host: c.host(host).unwrap().clone(),
            error: None,
            used_cpus: domains.iter().map(|d| d.record.cpus).sum(),
            used_memory_mb: domains.iter().map(|d| d.record.memory_mb).sum(),
            domains,
            measured: None,
        }
    }

    #[test]
    fn local_files_move_to_the_destination_directory_and_luns_stay() {
        let c = cluster();
        let d = domain("a", "web", 512);
        let r = record_on(&c, &d.record, c.host("b").unwrap());
        assert_eq!(r.host, "b");
        assert_eq!(r.seed, PathBuf::from("/b/f/web-seed.iso"));
        assert_eq!(r.console_log, PathBuf::from("/b/f/web-console.log"));
        assert_eq!(
            r.disks[0],
            DiskRecord::File {
                path: "/b/f/web-disk0.qcow2".into()
            }
        );
        assert_eq!(r.disks[1], d.record.disks[1]);
        assert_eq!(
            r.swap.as_ref().map(|s| s.path.clone()),
            Some(PathBuf::from("/b/f/web-swap.raw"))
        );
    }

    #[test]
    fn rebalance_moves_from_the_fullest_host_until_the_gap_stops_narrowing() {
        let c = cluster();
        let loads = vec![
            load(
                &c,
                "a",
                vec![
                    domain("a", "m1", 1024),
                    domain("a", "m2", 1024),
                    domain("a", "m3", 512),
                ],
            ),
            load(&c, "b", vec![]),
        ];
        let plan = plan_rebalance(&loads, &BTreeMap::new(), 10);
        let moved: Vec<(&str, &str)> = plan
            .iter()
            .map(|(d, to)| (d.record.machine.as_str(), to.as_str()))
            .collect();
        // 2560 MiB on a, none on b: moving m1 (1024) gives 1536/1024, then nothing narrows
        // the gap further (m3 would give 1024/1536).
        assert_eq!(moved, vec![("m1", "b")]);
        // Balanced already: nothing to do.
        let even = vec![
            load(&c, "a", vec![domain("a", "m1", 512)]),
            load(&c, "b", vec![domain("b", "m2", 512)]),
        ];
        assert!(plan_rebalance(&even, &BTreeMap::new(), 10).is_empty());
    }

    #[test]
    fn rebalance_honours_labels_and_room() {
        let c = cluster();
        let loads = vec![
            load(
                &c,
                "a",
                vec![domain("a", "m1", 1024), domain("a", "m2", 1024)],
            ),
            load(&c, "b", vec![]),
        ];
        let labels = BTreeMap::from([
            (
                ("f".to_string(), "m1".to_string()),
                BTreeMap::from([("rack".to_string(), "r1".to_string())]),
            ),
            (
                ("f".to_string(), "m2".to_string()),
                BTreeMap::from([("rack".to_string(), "r1".to_string())]),
            ),
        ]);
        assert!(plan_rebalance(&loads, &labels, 10).is_empty());
        let big = vec![
            load(&c, "a", vec![domain("a", "m1", 6000)]),
            load(&c, "b", vec![]),
        ];
        assert!(plan_rebalance(&big, &BTreeMap::new(), 10).is_empty());
    }
}
