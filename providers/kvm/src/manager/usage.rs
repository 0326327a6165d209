//! `cluster:usage`: what each machine uses, read from the hosts and the iSCSI target.
//!
//! - **Per disk / iSCSI export**: capacity and space really allocated (a LUN's backing file on
//!   the target host, or a qcow2 file on the machine's host: `stat`, `qemu-img info`), bytes
//!   read and written since the machine started (`virsh domblkstat`), and for LUNs the
//!   initiators that hold a session (`tgtadm --op show`).
//! - **Per address**: every interface's MAC, its IPv4 address (the pool's reservation, else
//!   libvirt's DHCP lease) and traffic since the machine started (`virsh domifstat`).
//!
//! Counters come from the running QEMU: a stopped machine shows its space, not its traffic.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nepho_provider_api::{AddressUsage, ClusterUsage, DiskUsage, ProviderError};

use crate::KvmProvider;
use crate::cluster::HostConfig;

use crate::libvirt::{self, DiskRecord, FoundDomain};
use crate::place;
use crate::storage::{self, Runner};

const SHORT: Duration = Duration::from_secs(30);

/// `virsh domblklist --details`: source (file path or `IQN/LUN`) -> target device.
fn parse_blklist(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 4 && w[1] == "disk").then(|| (w[3..].join(" "), w[2].to_string()))
        })
        .collect()
}

/// `virsh domblkstat` / `domifstat` lines (`DEV name value`) -> name -> value.
fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3).then(|| Some((w[1].to_string(), w[2].parse().ok()?)))?
        })
        .collect()
}

/// `virsh domiflist`: MAC -> interface device (`vnet3`); `-` devices (stopped) are left out.
fn parse_iflist(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 5 && w[0] != "-" && w[4].matches(':').count() == 5)
                .then(|| (w[4].to_ascii_lowercase(), w[0].to_string()))
        })
        .collect()
}

/// `virsh domifaddr --source lease`: MAC -> IPv4 address.
fn parse_ifaddr(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 4 && w[2] == "ipv4").then(|| {
                (
                    w[1].to_ascii_lowercase(),
                    w[3].split('/').next().unwrap_or(w[3]).to_string(),
                )
            })
        })
        .collect()
}

/// `stat -c '%s %b'` (bytes, 512-byte blocks) -> (size, allocated).
fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let mut w = text.split_whitespace();
    let size = w.next()?.parse().ok()?;
    let blocks: u64 = w.next()?.parse().ok()?;
    Some((size, blocks * 512))
}

async fn virsh_text(uri: &str, args: &[&str]) -> Option<String> {
    libvirt::virsh_output(uri, args)
        .await
        .ok()
        .filter(|o| o.success)
        .map(|o| o.stdout)
}

async fn file_usage(runner: &Runner, path: &Path) -> (Option<u64>, Option<u64>) {
    let p = path.to_string_lossy();
    let stat = runner
        .run("stat", &["-c", "%s %b", "--", &p], SHORT)
        .await
        .ok()
        .filter(|o| o.success)
        .and_then(|o| parse_stat(&o.stdout));
    (stat.map(|s| s.0), stat.map(|s| s.1))
}

async fn qcow2_usage(runner: &Runner, path: &Path) -> (Option<u64>, Option<u64>) {
    let info = runner
        .run(
            "qemu-img",
            &["info", "-U", "--output=json", &path.to_string_lossy()],
            SHORT,
        )
        .await
        .ok()
        .filter(|o| o.success)
        .and_then(|o| serde_json::from_str::<serde_json::Value>(&o.stdout).ok());
    match info {
        Some(v) => (v["virtual-size"].as_u64(), v["actual-size"].as_u64()),
        None => (None, None),
    }
}

impl KvmProvider {
    /// `cluster:usage`, optionally for one formation.
    pub async fn usage(&self, formation: Option<&str>) -> Result<ClusterUsage, ProviderError> {
        let loads = place::host_loads(&self.cluster).await;
        let unreachable: Vec<String> = loads
            .iter()
            .filter(|l| !l.reachable())
            .map(|l| l.host.name.clone())
            .collect();
        if unreachable.len() == loads.len() {
            return Err(ProviderError::Unavailable {
                message: "no host of the cluster answers".into(),
                hint: Some("cluster:status shows why".into()),
            });
        }
        let sessions = match &self.cluster.storage.iscsi {
            Some(iscsi) => {
                let runner = Runner::for_iscsi(iscsi);
                let port = iscsi.control_port.to_string();
                runner
                    .check(
                        "tgtadm",
                        &[
                            "-C", &port, "--lld", "iscsi", "--op", "show", "--mode", "target",
                        ],
                        SHORT,
                    )
                    .await
                    .map(|show| storage::sessions_by_target(&show))
                    .unwrap_or_default()
            }
            None => BTreeMap::new(),
        };
        let mut usage = ClusterUsage {
            disks: Vec::new(),
            addresses: Vec::new(),
            unreachable,
        };
        for l in loads.iter().filter(|l| l.reachable()) {
            for d in l
                .domains
                .iter()
                .filter(|d| formation.is_none_or(|f| d.record.formation == f))
            {
                self.machine_usage(&l.host, d, &sessions, &mut usage).await;
            }
        }
        let key = |h: &str, f: &str, m: &str| (h.to_string(), f.to_string(), m.to_string());
        usage.disks.sort_by(|a, b| {
            key(&a.formation, &a.machine, &a.disk).cmp(&key(&b.formation, &b.machine, &b.disk))
        });
        usage.addresses.sort_by(|a, b| {
            key(&a.formation, &a.machine, &a.nic).cmp(&key(&b.formation, &b.machine, &b.nic))
        });
        Ok(usage)
    }

    async fn machine_usage(
        &self,
        host: &HostConfig,
        d: &FoundDomain,
        sessions: &BTreeMap<String, Vec<String>>,
        usage: &mut ClusterUsage,
    ) {
        let running = d.state == "running";
        let on_host = Runner::for_host(host);
        let targets = virsh_text(&d.uri, &["domblklist", &d.name, "--details"])
            .await
            .map(|t| parse_blklist(&t))
            .unwrap_or_default();
        for (i, disk) in d.record.disks.iter().enumerate() {
            let (kind, export, file, source) = match disk {
                DiskRecord::File { path } => (
                    "qcow2",
                    path.display().to_string(),
                    path.clone(),
                    path.display().to_string(),
                ),
                DiskRecord::Lun { iqn, lun, file, .. } => (
                    "iscsi",
                    format!("{iqn}/{lun}"),
                    file.clone(),
                    format!("{iqn}/{lun}"),
                ),
            };
            let (capacity, allocated) = match disk {
                DiskRecord::File { path } => qcow2_usage(&on_host, path).await,
                DiskRecord::Lun { file, .. } => match &self.cluster.storage.iscsi {
                    Some(iscsi) => file_usage(&Runner::for_iscsi(iscsi), file).await,
                    None => (None, None),
                },
            };
            let stats = match (running, targets.get(&source)) {
                (true, Some(dev)) => virsh_text(&d.uri, &["domblkstat", &d.name, dev])
                    .await
                    .map(|t| parse_stats(&t))
                    .unwrap_or_default(),
                _ => BTreeMap::new(),
            };
            let sessions = match disk {
                DiskRecord::Lun { iqn, .. } => sessions.get(iqn).cloned().unwrap_or_default(),
                DiskRecord::File { .. } => Vec::new(),
            };
            usage.disks.push(DiskUsage {
                host: d.host.clone(),
                formation: d.record.formation.clone(),
                machine: d.record.machine.clone(),
                disk: format!("disk{i}"),
                kind: kind.into(),
                export,
                file: file.display().to_string(),
                capacity_bytes: capacity,
                allocated_bytes: allocated,
                read_bytes: stats.get("rd_bytes").copied(),
                written_bytes: stats.get("wr_bytes").copied(),
                sessions,
            });
        }
        if let Some(swap) = &d.record.swap {
            let (capacity, allocated) = file_usage(&on_host, &swap.path).await;
            let stats = match running {
                true => virsh_text(&d.uri, &["domblkstat", &d.name, libvirt::SWAP_DEV])
                    .await
                    .map(|t| parse_stats(&t))
                    .unwrap_or_default(),
                false => BTreeMap::new(),
            };
            usage.disks.push(DiskUsage {
                host: d.host.clone(),
                formation: d.record.formation.clone(),
                machine: d.record.machine.clone(),
                disk: "swap".into(),
                kind: "swap".into(),
                export: swap.path.display().to_string(),
                file: swap.path.display().to_string(),
                capacity_bytes: capacity,
                allocated_bytes: allocated,
                read_bytes: stats.get("rd_bytes").copied(),
                written_bytes: stats.get("wr_bytes").copied(),
                sessions: Vec::new(),
            });
        }
        let (devices, leases) = if running {
            (
                virsh_text(&d.uri, &["domiflist", &d.name])
                    .await
                    .map(|t| parse_iflist(&t))
                    .unwrap_or_default(),
                virsh_text(&d.uri, &["domifaddr", &d.name, "--source", "lease"])
                    .await
                    .map(|t| parse_ifaddr(&t))
                    .unwrap_or_default(),
            )
        } else {
            (BTreeMap::new(), BTreeMap::new())
        };
        for (i, nic) in d.record.nics.iter().enumerate() {
            let mac = nic.mac.to_ascii_lowercase();
            let stats = match devices.get(&mac) {
                Some(dev) => virsh_text(&d.uri, &["domifstat", &d.name, dev])
                    .await
                    .map(|t| parse_stats(&t))
                    .unwrap_or_default(),
                None => BTreeMap::new(),
            };
            usage.addresses.push(AddressUsage {
                host: d.host.clone(),
                formation: d.record.formation.clone(),
                machine: d.record.machine.clone(),
                nic: format!("net{i}"),
                network: nic.network.clone(),
                mac: nic.mac.clone(),
                ip: nic.ip.clone().or_else(|| leases.get(&mac).cloned()),
                rx_bytes: stats.get("rx_bytes").copied(),
                tx_bytes: stats.get("tx_bytes").copied(),
                rx_packets: stats.get("rx_packets").copied(),
                tx_packets: stats.get("tx_packets").copied(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_virsh_block_and_interface_listings() {
        let blk = " Type      Device   Target   Source\n-------------------------------------------\n file      disk     vda      /k/f/web-disk0.qcow2\n network   disk     vdb      iqn.2024-01.test.nepho:f:web/1\n file      cdrom    hdc      /k/f/web-seed.iso\n";
        let t = parse_blklist(blk);
        assert_eq!(t["/k/f/web-disk0.qcow2"], "vda");
        assert_eq!(t["iqn.2024-01.test.nepho:f:web/1"], "vdb");
        assert_eq!(t.len(), 2, "cdroms are not disks");

        let stat = "vda rd_req 1201\nvda rd_bytes 24694784\nvda wr_req 3\nvda wr_bytes 12288\nvda errs 0\n";
        let s = parse_stats(stat);
        assert_eq!((s["rd_bytes"], s["wr_bytes"]), (24694784, 12288));

        let ifl = " Interface   Type      Source    Model    MAC\n-------------------------------------------------------------\n vnet3       network   default   virtio   52:54:00:AA:bb:01\n -           network   back      virtio   52:54:00:aa:bb:02\n";
        let i = parse_iflist(ifl);
        assert_eq!(i["52:54:00:aa:bb:01"], "vnet3");
        assert_eq!(i.len(), 1);

        let addr = " Name       MAC address          Protocol     Address\n-------------------------------------------------------------------------------\n vnet3      52:54:00:aa:bb:01    ipv4         192.168.122.57/24\n";
        assert_eq!(parse_ifaddr(addr)["52:54:00:aa:bb:01"], "192.168.122.57");
        assert_eq!(parse_stat("1073741824 2048\n"), Some((1073741824, 1048576)));
    }
}
