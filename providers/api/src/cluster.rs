//! Operations on the cluster a provider runs formations on (the KVM provider's hosts): status,
//! usage, moving machines between hosts and restarting a dead host's machines elsewhere.
//! Reached through [`crate::Provider::cluster`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use crate::{BoxFuture, ProviderError};

/// `cluster:status`: hosts, capacity, usage and the machines on each.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClusterStatus {
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HostStatus {
    pub name: String,
    pub uri: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub used: Capacity,
    /// What the host really uses, every process counted; null when it cannot be read.
    pub measured: Option<MeasuredUsage>,
    pub machines: Vec<HostMachine>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Capacity {
    pub cpus: u32,
    pub memory_mb: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HostMachine {
    pub formation: String,
    pub machine: String,
    pub domain: String,
    pub state: String,
    pub cpus: u32,
    pub memory_mb: u64,
}

/// A host's real usage, every process counted (other domains, the host's own), as libvirt
/// reads it from the host's kernel. A part that could not be read is null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct MeasuredUsage {
    /// Physical memory (`virsh nodememstats`: total).
    pub memory_total_mb: Option<u64>,
    /// Memory really in use: total - free - buffers - cached.
    pub memory_used_mb: Option<u64>,
    /// CPU busy over about a second, all cores (`virsh nodecpustats --percent`: usage).
    pub cpu_busy_percent: Option<f64>,
}

/// What `cluster:failover HOST` prints (`-o json`): every machine the dead host had.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FailoverReport {
    /// The dead host.
    pub host: String,
    pub machines: Vec<FailoverResult>,
}

impl FailoverReport {
    /// False when a machine could not move yet (it failed, or no host had room): worth
    /// another try later.
    pub fn complete(&self) -> bool {
        !self
            .machines
            .iter()
            .any(|m| m.status == "failed" || m.status == "no-room")
    }
}

/// One machine of the dead host and what failover did with it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FailoverResult {
    pub formation: String,
    pub machine: String,
    pub domain: String,
    pub from: String,
    /// The host it runs on now (`moved`), or would have gone to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `moved`, `not-movable`, `no-room` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub seconds: f64,
}

/// How a machine moves between two hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MoveMode {
    /// Live migration: the machine keeps running (its memory is copied while it runs, then
    /// it resumes on the new host with the same address); every disk must be shared (iSCSI).
    Live,
    /// Clean shutdown, local disks copied, defined and started again on the new host.
    Offline,
}

/// What `cluster:migrate` prints (`-o json`), and one move of `cluster:rebalance`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MigrateResult {
    pub formation: String,
    pub machine: String,
    pub domain: String,
    pub from: String,
    pub to: String,
    /// `moved`, `planned` (`--dry-run`), `failed` (everything was put back), `busy` (its
    /// formation was being changed: not moved) or `no-room`.
    pub status: String,
    /// How it moved (or would move, when planned): `live` or `offline`.
    pub mode: MoveMode,
    /// Whether it was running (it runs again after the move).
    pub was_running: bool,
    /// Its address on the new host, once ready (running machines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Bytes of local disks and seed copied between the hosts.
    pub copied_bytes: u64,
    pub memory_mb: u64,
    /// A live move: how long the machine was paused, as libvirt measured it (the last copy of
    /// its memory and the switch-over), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub seconds: f64,
}

/// What a rebalance or evacuation holds while it moves a machine of a formation (given its
/// name): the formation's lock, so that no create, update, destroy or other move of it runs
/// meanwhile. `Err(why)`: the formation is busy and its machine stays where it is.
pub type Hold = dyn Fn(&str) -> Result<Box<dyn std::any::Any + Send>, String> + Send + Sync;

/// What `cluster:rebalance` and `cluster:evacuate` print (`-o json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RebalanceReport {
    /// Memory used / capacity per reachable host, before and after (as planned).
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    pub moves: Vec<MigrateResult>,
}

/// What `cluster:usage` prints (`-o json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClusterUsage {
    pub disks: Vec<DiskUsage>,
    pub addresses: Vec<AddressUsage>,
    /// Hosts that did not answer (their machines are missing above).
    pub unreachable: Vec<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DiskUsage {
    pub host: String,
    pub formation: String,
    pub machine: String,
    /// `disk0`, `disk1`… as `formation:describe` lists them.
    pub disk: String,
    /// `qcow2`, `iscsi` or `swap` (the host's local swap file).
    pub kind: String,
    /// The iSCSI export (`IQN/LUN`) or the qcow2 file.
    pub export: String,
    /// The file holding the data (a LUN's backing file on the target host).
    pub file: String,
    pub capacity_bytes: Option<u64>,
    pub allocated_bytes: Option<u64>,
    /// Since the machine started (running machines only).
    pub read_bytes: Option<u64>,
    pub written_bytes: Option<u64>,
    /// Initiators with a session on the LUN's target (iSCSI only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AddressUsage {
    pub host: String,
    pub formation: String,
    pub machine: String,
    /// `net0`, `net1`… in the machine's order.
    pub nic: String,
    pub network: String,
    pub mac: String,
    pub ip: Option<String>,
    /// Since the machine started, as the host sees the machine's interface.
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub rx_packets: Option<u64>,
    pub tx_packets: Option<u64>,
}

/// State of `cluster:watch` between checks: since when each host has been down, and whether
/// its outage was handled.
#[derive(Debug, Default)]
pub struct Watch {
    down_since: BTreeMap<String, Instant>,
    handled: BTreeSet<String>,
}

impl Watch {
    /// `host` answered: a later outage is a new one.
    pub fn answered(&mut self, host: &str) {
        self.down_since.remove(host);
        self.handled.remove(host);
    }

    /// `host` did not answer at `now`: whether to fail it over now (once it has been down for
    /// `grace`, once per outage).
    pub fn due(&mut self, host: &str, grace: Duration, now: Instant) -> bool {
        let since = *self.down_since.entry(host.to_string()).or_insert(now);
        now.duration_since(since) >= grace && !self.handled.contains(host)
    }

    /// A failover of `host` ran at `now`. When it left machines behind (or failed as a
    /// whole), it is tried again after another grace period; otherwise not before the host
    /// has answered again.
    pub fn failed_over(&mut self, host: &str, complete: bool, now: Instant) {
        if complete {
            self.handled.insert(host.to_string());
        } else {
            self.down_since.insert(host.to_string(), now);
        }
    }
}

/// Operations on the provider's cluster of hosts.
pub trait ClusterOps: Send + Sync {
    /// The hosts' names, as the cluster file declares them.
    fn hosts(&self) -> Vec<String>;

    /// `cluster:status`: every host with its capacity, usage and machines.
    fn status(&self) -> BoxFuture<'_, Result<ClusterStatus, ProviderError>>;

    /// `cluster:usage`: disks and addresses, of every formation or of one.
    fn usage<'a>(
        &'a self,
        formation: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ClusterUsage, ProviderError>>;

    /// `cluster:failover HOST`: restarts the machines of an unreachable host elsewhere.
    fn failover<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<FailoverReport, ProviderError>>;

    /// `cluster:migrate`: moves one machine to `to` (default: where the allocator puts it),
    /// offline, or running (`mode` live: refused unless the machine runs and every disk is
    /// shared).
    fn migrate<'a>(
        &'a self,
        formation: &'a str,
        machine: &'a str,
        to: Option<&'a str>,
        mode: MoveMode,
    ) -> BoxFuture<'a, Result<MigrateResult, ProviderError>>;

    /// `cluster:rebalance`: evens out memory use with at most `max_moves` moves (live for
    /// running machines whose disks are all shared, offline otherwise). Each move holds what
    /// `hold` gives for the machine's formation while it is made; a formation `hold` refuses
    /// is not moved (status `busy`).
    fn rebalance<'a>(
        &'a self,
        dry_run: bool,
        max_moves: usize,
        hold: &'a Hold,
    ) -> BoxFuture<'a, Result<RebalanceReport, ProviderError>>;

    /// `cluster:evacuate HOST`: every machine off a live host (live or offline, as rebalance).
    fn evacuate<'a>(
        &'a self,
        host: &'a str,
        dry_run: bool,
        hold: &'a Hold,
    ) -> BoxFuture<'a, Result<RebalanceReport, ProviderError>>;

    /// One round of `cluster:watch`: fails over each host down for `grace` (see [`Watch`]).
    fn watch_round<'a>(
        &'a self,
        watch: &'a mut Watch,
        grace: Duration,
    ) -> BoxFuture<'a, Vec<Result<FailoverReport, ProviderError>>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: &str) -> FailoverResult {
        FailoverResult {
            formation: "lab".into(),
            machine: "web".into(),
            domain: "nepho-lab-web".into(),
            from: "h1".into(),
            to: None,
            status: status.into(),
            address: None,
            reason: None,
            seconds: 0.0,
        }
    }

    #[test]
    fn a_failover_is_complete_unless_a_machine_could_not_move_yet() {
        let report = |statuses: &[&str]| FailoverReport {
            host: "h1".into(),
            machines: statuses.iter().map(|s| result(s)).collect(),
        };
        assert!(report(&[]).complete());
        assert!(report(&["moved", "not-movable"]).complete());
        assert!(!report(&["moved", "no-room"]).complete());
        assert!(!report(&["failed"]).complete());
    }

    #[test]
    fn a_host_is_failed_over_after_grace_and_once_per_outage() {
        let grace = Duration::from_secs(30);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut watch = Watch::default();
        assert!(!watch.due("h1", grace, at(0)));
        assert!(!watch.due("h1", grace, at(29)));
        assert!(watch.due("h1", grace, at(30)));
        watch.failed_over("h1", true, at(31));
        assert!(!watch.due("h1", grace, at(100)), "handled: once per outage");
        // Back, then down again: a new outage with its own grace.
        watch.answered("h1");
        assert!(!watch.due("h1", grace, at(200)));
        assert!(watch.due("h1", grace, at(230)));
    }

    #[test]
    fn machines_left_behind_are_tried_again_after_another_grace() {
        let grace = Duration::from_secs(10);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut watch = Watch::default();
        watch.due("h1", grace, at(0));
        assert!(watch.due("h1", grace, at(10)));
        watch.failed_over("h1", false, at(12));
        assert!(!watch.due("h1", grace, at(21)));
        assert!(watch.due("h1", grace, at(22)));
        // Another host's outage is its own.
        assert!(!watch.due("h2", grace, at(22)));
    }
}
