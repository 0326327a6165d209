//! The allocator: which host each machine runs on. Load is read from the hosts themselves
//! (the vCPUs and memory of nepho's domains there), so there is no cluster database to drift.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::{ClusterFile, HostConfig, Placement};
use crate::libvirt::{self, FoundDomain};
use crate::pattern::Machine;

/// A host with what nepho's domains use on it.
#[derive(Debug, Clone)]
pub struct HostLoad {
    pub host: HostConfig,
    pub error: Option<String>,
    pub used_cpus: u32,
    pub used_memory_mb: u64,
    pub domains: Vec<FoundDomain>,
}

impl HostLoad {
    pub fn reachable(&self) -> bool {
        self.error.is_none()
    }
    fn free_cpus(&self) -> i64 {
        self.host.cpus as i64 - self.used_cpus as i64
    }
    fn free_memory(&self) -> i64 {
        self.host.memory_mb as i64 - self.used_memory_mb as i64
    }
}

pub async fn host_loads(cluster: &ClusterFile) -> Vec<HostLoad> {
    let mut loads = Vec::new();
    for host in &cluster.hosts {
        let mut load = HostLoad {
            host: host.clone(),
            error: None,
            used_cpus: 0,
            used_memory_mb: 0,
            domains: Vec::new(),
        };
        match libvirt::list_all(&host.uri, Duration::from_secs(15)).await {
            Err(e) => load.error = Some(e.to_string()),
            Ok(_) => match libvirt::nepho_domains(host, None).await {
                Ok(domains) => {
                    let domains = crate::failover::drop_stale(cluster, domains).await;
                    for d in &domains {
                        load.used_cpus += d.record.cpus;
                        load.used_memory_mb += d.record.memory_mb;
                    }
                    load.domains = domains;
                }
                Err(e) => load.error = Some(e.to_string()),
            },
        }
        loads.push(load);
    }
    loads
}

/// The host of every machine; machines that already exist keep theirs.
pub fn place(
    cluster: &ClusterFile,
    loads: &[HostLoad],
    formation: &str,
    machines: &[Machine],
) -> Result<BTreeMap<String, String>, String> {
    let mut loads: Vec<HostLoad> = loads.to_vec();
    let mut placement = BTreeMap::new();
    for m in machines {
        if let Some(existing) = loads
            .iter()
            .flat_map(|l| &l.domains)
            .find(|d| d.record.formation == formation && d.record.machine == m.name)
        {
            placement.insert(m.name.clone(), existing.host.clone());
        }
    }
    let pinned: Vec<String> = placement.keys().cloned().collect();
    for m in machines.iter().filter(|m| !pinned.contains(&m.name)) {
        let fits = |l: &HostLoad| {
            l.reachable()
                && m.labels
                    .iter()
                    .all(|(k, v)| l.host.labels.get(k) == Some(v))
                && l.free_cpus() >= m.cpus as i64
                && l.free_memory() >= m.memory_mb as i64
        };
        let candidates = loads.iter().enumerate().filter(|(_, l)| fits(l));
        let chosen = match cluster.placement {
            Placement::FirstFit => candidates.map(|(i, _)| i).next(),
            // Most free memory relative to capacity; ties go to the first host in the file.
            Placement::LeastLoaded => candidates
                .max_by(|(ia, a), (ib, b)| {
                    let fa = a.free_memory() as f64 / a.host.memory_mb as f64;
                    let fb = b.free_memory() as f64 / b.host.memory_mb as f64;
                    fa.partial_cmp(&fb).unwrap().then(ib.cmp(ia))
                })
                .map(|(i, _)| i),
        };
        let Some(i) = chosen else {
            return Err(explain(m, &loads));
        };
        loads[i].used_cpus += m.cpus;
        loads[i].used_memory_mb += m.memory_mb;
        placement.insert(m.name.clone(), loads[i].host.name.clone());
    }
    Ok(placement)
}

fn explain(m: &Machine, loads: &[HostLoad]) -> String {
    let mut text = format!(
        "no host can take machine {} ({} vCPU, {} MiB{}):",
        m.name,
        m.cpus,
        m.memory_mb,
        if m.labels.is_empty() {
            String::new()
        } else {
            format!(
                ", labels {}",
                m.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    );
    for l in loads {
        text.push_str(&format!("\n  host {}: ", l.host.name));
        if let Some(e) = &l.error {
            text.push_str(&format!("unreachable ({e})"));
            continue;
        }
        text.push_str(&format!(
            "{} of {} vCPUs free, {} of {} MiB free",
            l.free_cpus(),
            l.host.cpus,
            l.free_memory(),
            l.host.memory_mb
        ));
        let missing: Vec<String> = m
            .labels
            .iter()
            .filter(|(k, v)| l.host.labels.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !missing.is_empty() {
            text.push_str(&format!(", lacks labels {}", missing.join(",")));
        }
    }
    text
}

/// `cluster:status`: hosts, capacity, usage and the machines on each.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ClusterStatus {
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HostStatus {
    pub name: String,
    pub uri: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub used: Capacity,
    pub machines: Vec<HostMachine>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Capacity {
    pub cpus: u32,
    pub memory_mb: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HostMachine {
    pub formation: String,
    pub machine: String,
    pub domain: String,
    pub state: String,
    pub cpus: u32,
    pub memory_mb: u64,
}

impl From<&HostLoad> for HostStatus {
    fn from(l: &HostLoad) -> Self {
        HostStatus {
            name: l.host.name.clone(),
            uri: l.host.uri.clone(),
            reachable: l.reachable(),
            error: l.error.clone(),
            labels: l.host.labels.clone(),
            capacity: Capacity {
                cpus: l.host.cpus,
                memory_mb: l.host.memory_mb,
            },
            used: Capacity {
                cpus: l.used_cpus,
                memory_mb: l.used_memory_mb,
            },
            machines: l
                .domains
                .iter()
                .map(|d| HostMachine {
                    formation: d.record.formation.clone(),
                    machine: d.record.machine.clone(),
                    domain: d.name.clone(),
                    state: d.state.clone(),
                    cpus: d.record.cpus,
                    memory_mb: d.record.memory_mb,
                })
                .collect(),
        }
    }
}
