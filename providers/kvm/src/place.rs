//! The allocator: which host each machine runs on. Load is read from the hosts themselves
//! (the vCPUs and memory of nepho's domains there), so there is no cluster database to drift.
//! `least-used` also reads what the hosts really use (`virsh nodememstats`, `nodecpustats`).

use std::collections::BTreeMap;
use std::time::Duration;

use nepho_provider_api::{Capacity, HostMachine, HostStatus, MeasuredUsage};

use crate::cluster::{ClusterFile, HostConfig, Placement};
use crate::cmd;
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
    /// What the host itself reports using (read for `least-used` and `cluster:status`).
    pub measured: Option<MeasuredUsage>,
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

/// `virsh nodememstats` (`total  :  24684092 KiB`, free, buffers, cached) -> (total, in use)
/// in MiB. Buffers and cached are given back under pressure, so they do not count as used.
pub fn parse_nodememstats(text: &str) -> Option<(u64, u64)> {
    let kib: BTreeMap<&str, u64> = text
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let value = value.split_whitespace().next()?.parse().ok()?;
            Some((name.trim(), value))
        })
        .collect();
    let total = *kib.get("total")?;
    let free = *kib.get("free")?;
    let reclaimable = kib.get("buffers").unwrap_or(&0) + kib.get("cached").unwrap_or(&0);
    let used = total.saturating_sub(free).saturating_sub(reclaimable);
    Some((total / 1024, used / 1024))
}

/// `virsh nodecpustats --percent` (`usage:  1.5%`, user, system, `idle: 98.5%`, iowait) ->
/// busy percent: `usage`, else 100 - idle.
pub fn parse_nodecpustats_percent(text: &str) -> Option<f64> {
    let percent = |name: &str| {
        text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim().trim_end_matches('%').trim().parse::<f64>().ok())?
        })
    };
    let busy = percent("usage").or_else(|| percent("idle").map(|idle| 100.0 - idle))?;
    // Raw counters (no `--percent`) are nanoseconds, not a share: refuse them.
    (-1.0..=101.0)
        .contains(&busy)
        .then(|| busy.clamp(0.0, 100.0))
}

/// Reads a host's usage; `None` when libvirt answers neither question. The CPU sample takes
/// about a second (virsh samples twice itself).
pub async fn measure(uri: &str) -> Option<MeasuredUsage> {
    const TIMEOUT: Duration = Duration::from_secs(15);
    let ask = |args: &'static [&'static str]| async move {
        let mut full = vec!["-q", "-c", uri];
        full.extend_from_slice(args);
        cmd::run("virsh", &full, TIMEOUT)
            .await
            .ok()
            .filter(|o| o.success)
            .map(|o| o.stdout)
    };
    let (memory, cpu) = tokio::join!(ask(&["nodememstats"]), ask(&["nodecpustats", "--percent"]));
    let memory = memory.as_deref().and_then(parse_nodememstats);
    let cpu = cpu.as_deref().and_then(parse_nodecpustats_percent);
    (memory.is_some() || cpu.is_some()).then(|| MeasuredUsage {
        memory_total_mb: memory.map(|m| m.0),
        memory_used_mb: memory.map(|m| m.1),
        cpu_busy_percent: cpu,
    })
}

/// Every host's load; measured usage too when the cluster places `least-used`.
pub async fn host_loads(cluster: &ClusterFile) -> Vec<HostLoad> {
    loads(cluster, cluster.placement == Placement::LeastUsed).await
}

/// Every host's load with its measured usage (`cluster:status`).
pub async fn measured_host_loads(cluster: &ClusterFile) -> Vec<HostLoad> {
    loads(cluster, true).await
}

async fn loads(cluster: &ClusterFile, with_usage: bool) -> Vec<HostLoad> {
    // All hosts are sampled at once, while their domains are listed: the CPU sample's second
    // is paid once, and mostly hidden behind the listing.
    let mut sampling = tokio::task::JoinSet::new();
    if with_usage {
        for (i, host) in cluster.hosts.iter().enumerate() {
            let uri = host.uri.clone();
            sampling.spawn(async move { (i, measure(&uri).await) });
        }
    }
    let mut loads = Vec::new();
    for host in &cluster.hosts {
        let mut load = HostLoad {
            host: host.clone(),
            error: None,
            used_cpus: 0,
            used_memory_mb: 0,
            domains: Vec::new(),
            measured: None,
        };
        match libvirt::list_all(&host.uri, Duration::from_secs(15)).await {
            Err(e) => load.error = Some(e.to_string()),
            Ok(_) => match libvirt::nepho_domains(host, None).await {
                Ok(domains) => {
                    let domains = crate::records::drop_stale(cluster, domains).await;
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
    while let Some(sample) = sampling.join_next().await {
        if let Ok((i, measured)) = sample {
            let load: &mut HostLoad = &mut loads[i];
            if load.reachable() {
                load.measured = measured;
            }
        }
    }
    loads
}

/// The `least-used` score of a host for a machine, lower is better; fractions in 0..=1, each
/// counting the machine as if it ran there. The measured part is the larger of memory in use /
/// physical memory and CPU busy; the allocated part the larger of nepho's vCPUs / `cpus` and
/// nepho's memory / `memory_mb`. Score = their mean: measured usage sees what nepho does not
/// (other domains, the host's own processes), allocation sees machines that have not booted
/// yet. A host that cannot be measured is scored on its allocation alone.
pub fn usage_score(
    memory_in_use: Option<f64>,
    cpu_busy: Option<f64>,
    allocated_cpus: f64,
    allocated_memory: f64,
) -> f64 {
    let allocated = allocated_cpus.max(allocated_memory);
    let measured = match (memory_in_use, cpu_busy) {
        (Some(m), Some(c)) => m.max(c),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return allocated,
    };
    (measured + allocated) / 2.0
}

fn score_for(l: &HostLoad, m: &Machine) -> f64 {
    let measured = l.measured.clone().unwrap_or_default();
    let memory_in_use = match (measured.memory_used_mb, measured.memory_total_mb) {
        (Some(used), Some(total)) if total > 0 => Some((used + m.memory_mb) as f64 / total as f64),
        _ => None,
    };
    usage_score(
        memory_in_use,
        measured.cpu_busy_percent.map(|p| p / 100.0),
        (l.used_cpus + m.cpus) as f64 / l.host.cpus as f64,
        (l.used_memory_mb + m.memory_mb) as f64 / l.host.memory_mb as f64,
    )
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
            // Lowest measured + allocated usage; ties go to the first host in the file.
            Placement::LeastUsed => candidates
                .min_by(|(ia, a), (ib, b)| {
                    score_for(a, m)
                        .partial_cmp(&score_for(b, m))
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(ia.cmp(ib))
                })
                .map(|(i, _)| i),
        };
        let Some(i) = chosen else {
            return Err(explain(m, &loads));
        };
        loads[i].used_cpus += m.cpus;
        loads[i].used_memory_mb += m.memory_mb;
        // The next machine of this plan sees this one as using its memory already.
        if let Some(used) = loads[i]
            .measured
            .as_mut()
            .and_then(|u| u.memory_used_mb.as_mut())
        {
            *used += m.memory_mb;
        }
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
        if let Some(u) = &l.measured
            && let (Some(used), Some(total)) = (u.memory_used_mb, u.memory_total_mb)
        {
            text.push_str(&format!(" (measured: {used} of {total} MiB in use"));
            if let Some(busy) = u.cpu_busy_percent {
                text.push_str(&format!(", CPU {busy:.0}% busy"));
            }
            text.push(')');
        }
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
            measured: l.measured.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Seen on a Debian 12 host with libvirt 9.0.
    const NODEMEMSTATS: &str = "total  :             24684092 KiB\nfree   :             20839024 KiB\nbuffers:                 9856 KiB\ncached :              2911984 KiB\n\n";
    const NODECPUSTATS_PERCENT: &str = "usage:            1.5%\nuser:             0.5%\nsystem:           1.0%\nidle:            98.5%\niowait:           0.0%\n\n";

    #[test]
    fn memory_in_use_leaves_out_free_buffers_and_cache() {
        // 24684092 - 20839024 - 9856 - 2911984 = 923228 KiB
        assert_eq!(
            parse_nodememstats(NODEMEMSTATS),
            Some((24684092 / 1024, 923228 / 1024))
        );
        assert_eq!(
            parse_nodememstats("total  : 2048 KiB\nfree   : 1024 KiB\n"),
            Some((2, 1))
        );
        assert_eq!(
            parse_nodememstats("error: this function is not supported"),
            None
        );
        assert_eq!(parse_nodememstats(""), None);
    }

    #[test]
    fn cpu_busy_is_usage_or_what_idle_leaves() {
        assert_eq!(parse_nodecpustats_percent(NODECPUSTATS_PERCENT), Some(1.5));
        assert_eq!(
            parse_nodecpustats_percent("user: 30.0%\nsystem: 20.0%\nidle: 45.5%\n"),
            Some(54.5)
        );
        assert_eq!(parse_nodecpustats_percent("usage: 100.4%\n"), Some(100.0));
        // The raw counters (no --percent) are not percentages.
        assert_eq!(
            parse_nodecpustats_percent("user: 9462360000000\nidle: 8167770000000\n"),
            None
        );
        assert_eq!(parse_nodecpustats_percent("usage: n/a\n"), None);
    }

    #[test]
    fn the_score_averages_the_busier_measured_part_with_the_busier_allocated_part() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // Measured: max(0.2 memory, 0.6 CPU) = 0.6; allocated: max(0.25, 0.5) = 0.5.
        assert!(close(usage_score(Some(0.2), Some(0.6), 0.25, 0.5), 0.55));
        // Memory in use dominates when it is the larger.
        assert!(close(usage_score(Some(0.9), Some(0.1), 0.1, 0.1), 0.5));
        // One measured part is enough; none at all leaves the allocation alone.
        assert!(close(usage_score(None, Some(0.3), 0.1, 0.1), 0.2));
        assert!(close(usage_score(None, None, 0.4, 0.7), 0.7));
    }

    fn cluster(placement: &str) -> ClusterFile {
        ClusterFile::parse(
            &format!(
                "hosts:\n  - {{name: a, uri: 'qemu:///system', cpus: 8, memory_mb: 8192}}\n  - {{name: b, uri: 'qemu:///system', cpus: 8, memory_mb: 8192}}\n  - {{name: c, uri: 'qemu:///system', cpus: 1, memory_mb: 512, labels: {{rack: r2}}}}\nplacement: {placement}\n"
            ),
            "t",
        )
        .unwrap()
    }

    fn load(
        c: &ClusterFile,
        host: &str,
        used_memory_mb: u64,
        measured: Option<(u64, u64, f64)>,
    ) -> HostLoad {
        HostLoad {
            host: c.host(host).unwrap().clone(),
            error: None,
            used_cpus: 0,
            used_memory_mb,
            domains: Vec::new(),
            measured: measured.map(|(used, total, busy)| MeasuredUsage {
                memory_total_mb: Some(total),
                memory_used_mb: Some(used),
                cpu_busy_percent: Some(busy),
            }),
        }
    }

    fn machine(name: &str, memory_mb: u64) -> Machine {
        Machine {
            name: name.into(),
            cpus: 1,
            memory_mb,
            image: "tiny".into(),
            disks: Vec::new(),
            networks: Vec::new(),
            primary: false,
            labels: BTreeMap::new(),
            env: BTreeMap::new(),
            secret_env: Vec::new(),
            swap_mb: 0,
        }
    }

    fn hosts(placement: BTreeMap<String, String>) -> Vec<String> {
        placement.into_values().collect()
    }

    #[test]
    fn least_used_prefers_the_host_that_really_uses_less() {
        let c = cluster("least-used");
        // Nepho allocated nothing on either; a's host is busy with other work.
        let loads = vec![
            load(&c, "a", 0, Some((14000, 16000, 10.0))),
            load(&c, "b", 0, Some((2000, 16000, 10.0))),
            load(&c, "c", 0, Some((100, 16000, 0.0))),
        ];
        let m = [machine("web", 256)];
        assert_eq!(hosts(place(&c, &loads, "f", &m).unwrap()), ["b"]);
        // least-loaded sees only the allocation: a tie, so the first host.
        let ll = cluster("least-loaded");
        assert_eq!(hosts(place(&ll, &loads, "f", &m).unwrap()), ["a"]);
        // CPU counts as much as memory.
        let loads = vec![
            load(&c, "a", 0, Some((2000, 16000, 95.0))),
            load(&c, "b", 0, Some((4000, 16000, 20.0))),
        ];
        assert_eq!(hosts(place(&c, &loads, "f", &m).unwrap()), ["b"]);
    }

    #[test]
    fn least_used_blends_in_the_allocation_and_spreads_a_plan() {
        let c = cluster("least-used");
        // Same measured usage; b has 6 of 8 GiB allocated to machines (maybe not booted yet).
        let loads = vec![
            load(&c, "b", 6144, Some((4000, 16000, 30.0))),
            load(&c, "a", 0, Some((4000, 16000, 30.0))),
        ];
        let m = [machine("web", 512)];
        assert_eq!(hosts(place(&c, &loads, "f", &m).unwrap()), ["a"]);
        // Equal everywhere: the first host in the file.
        let loads = vec![
            load(&c, "a", 0, Some((4000, 16000, 30.0))),
            load(&c, "b", 0, Some((4000, 16000, 30.0))),
        ];
        assert_eq!(hosts(place(&c, &loads, "f", &m).unwrap()), ["a"]);
        // Two 4 GiB machines of one plan: the first one's memory counts for the second.
        let loads = vec![
            load(&c, "a", 0, Some((1000, 16000, 0.0))),
            load(&c, "b", 0, Some((1500, 16000, 0.0))),
        ];
        let two = [machine("m1", 4096), machine("m2", 4096)];
        let placed = place(&c, &loads, "f", &two).unwrap();
        assert_eq!((placed["m1"].as_str(), placed["m2"].as_str()), ("a", "b"));
    }

    #[test]
    fn least_used_keeps_the_hard_constraints() {
        let c = cluster("least-used");
        // c is idle but too small, then lacks nothing but the machine needs rack=r1.
        let loads = vec![
            load(&c, "a", 0, Some((15000, 16000, 90.0))),
            load(&c, "c", 0, Some((10, 16000, 0.0))),
        ];
        assert_eq!(
            hosts(place(&c, &loads, "f", &[machine("big", 1024)]).unwrap()),
            ["a"]
        );
        let mut labelled = machine("db", 256);
        labelled.labels.insert("rack".into(), "r1".into());
        let err = place(&c, &loads, "f", &[labelled]).unwrap_err();
        assert!(err.contains("no host can take machine db"), "{err}");
        assert!(err.contains("host c: 1 of 1 vCPUs free, 512 of 512 MiB free (measured: 10 of 16000 MiB in use, CPU 0% busy), lacks labels rack=r1"), "{err}");
        // An unreachable host is never chosen, however idle it looks.
        let mut dead = load(&c, "b", 0, Some((10, 16000, 0.0)));
        dead.error = Some("libvirt at qemu:///system does not answer".into());
        let loads = vec![load(&c, "a", 0, Some((15000, 16000, 90.0))), dead];
        assert_eq!(
            hosts(place(&c, &loads, "f", &[machine("web", 256)]).unwrap()),
            ["a"]
        );
    }

    #[test]
    fn an_unmeasured_host_is_scored_on_its_allocation() {
        let c = cluster("least-used");
        let loads = vec![
            load(&c, "a", 4096, None),
            load(&c, "b", 0, Some((12000, 16000, 10.0))),
        ];
        // a: allocated max(1/8, 4352/8192) = 0.53; b: (max(12256/16000, 0.1) + 0.125) / 2 = 0.45.
        assert_eq!(
            hosts(place(&c, &loads, "f", &[machine("web", 256)]).unwrap()),
            ["b"]
        );
    }

    /// The real virsh output parses (skipped without libvirtd).
    #[tokio::test]
    async fn this_machine_measures_sanely() {
        if !cmd::on_path("virsh") {
            return;
        }
        let Some(u) = measure("qemu:///system").await else {
            assert!(std::env::var_os("CI").is_none(), "CI runs libvirtd");
            return;
        };
        let (total, used) = (u.memory_total_mb.unwrap(), u.memory_used_mb.unwrap());
        assert!(0 < used && used < total, "{u:?}");
        let busy = u.cpu_busy_percent.unwrap();
        assert!((0.0..=100.0).contains(&busy), "{u:?}");
    }
}
