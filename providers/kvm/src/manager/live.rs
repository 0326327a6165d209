//! Live migration (`cluster:migrate --live`, and rebalance/evacuate for running machines whose
//! disks are all shared): the machine keeps running while libvirt copies its memory to the new
//! host, then pauses it for the last pages and resumes it there, with the same UUID, MACs and
//! address.
//!
//! ## How
//!
//! nepho connects to both hosts and runs `virsh migrate --live --persistent --undefinesource`
//! with the destination's URI from the cluster file: libvirt's managed direct migration (not
//! peer-to-peer), so neither libvirtd needs to reach the other; the source QEMU sends the
//! memory to the destination QEMU's migration port (on loopback when both hosts are this
//! machine). The destination gets the source's own migratable XML (`--xml` for the running
//! machine, `--persistent-xml` for its definition) with the host-local files moved to its
//! formation directory — the seed and an ISO in the spare drive are copied there first, the
//! console log starts anew — and the nepho record naming the new host. The disks are LUNs
//! that QEMU opens itself from either host; the leases in the shared lockspace are handed over
//! by libvirt (the source's virtlockd releases them when the source pauses, the destination's
//! takes them before it resumes), so no moment has two QEMUs writing the disks.
//!
//! The shared record (next to the LUNs) names the new host once the machine runs there. When
//! the migration fails, libvirt aborts it and the machine runs on where it was: nepho removes
//! the copies it made and reports that nothing changed.
//!
//! ## When it cannot be live
//!
//! A machine that is not running, a local (qcow2) disk or local swap (their contents live on
//! one host), or a network that is a separate subnet on each host (libvirt's NAT `default`:
//! the machine would keep an address the new host does not route) — refused for `--live`,
//! an offline move for rebalance and evacuate. A live move of a rebalance or evacuation that
//! fails with the machine still running where it was is made offline instead (the report says
//! why); an explicit `cluster:migrate --live` fails instead, changing nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nepho_provider_api::ProviderError;

use super::migrate::{copy_between, file_size, record_on, same_file};
use crate::KvmProvider;
use crate::cluster::HostConfig;
use crate::cmd;
use crate::libvirt::{self, DiskRecord, FoundDomain, MachineRecord, esc};
use crate::names;
use crate::net;
use crate::records::{self, SharedRecord};
use crate::storage::Runner;

/// A migration of a small machine takes seconds; a big busy one may take long, but not forever.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(1800);
const SHORT: Duration = Duration::from_secs(60);

/// What a live move did.
pub(super) struct LiveMove {
    /// Its address (the same as before the move).
    pub address: Option<String>,
    /// Bytes of files copied between the hosts (seed, ISO).
    pub copied_bytes: u64,
    /// How long it was paused, as libvirt measured it.
    pub downtime_ms: Option<u64>,
}

/// Why the machine itself cannot move live (none: it can, as far as it goes).
pub(super) fn machine_blocker(d: &FoundDomain) -> Option<String> {
    if d.state != "running" {
        return Some(format!(
            "it is {} (a live migration moves a running machine)",
            d.state
        ));
    }
    let r = &d.record;
    for (i, disk) in r.disks.iter().enumerate() {
        if let DiskRecord::File { path } = disk {
            return Some(format!(
                "disk{i} is a qcow2 file on host {}'s local storage ({}); a live migration needs every disk on shared (iSCSI) storage",
                d.host,
                path.display()
            ));
        }
    }
    if let Some(swap) = &r.swap {
        return Some(format!(
            "its swap is on host {}'s local storage ({}) and holds part of its memory",
            d.host,
            swap.path.display()
        ));
    }
    None
}

/// `Total downtime: 152 ms` from `virsh domjobinfo --completed`.
fn downtime_ms(jobinfo: &str) -> Option<u64> {
    jobinfo.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Total downtime:")?;
        let mut words = rest.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        (words.next() == Some("ms")).then_some(n)
    })
}

/// The source's migratable XML as the destination gets it: host-local files at their new
/// paths and the nepho record naming the new host.
fn retarget(xml: &str, moved: &[(PathBuf, PathBuf)], record: &MachineRecord) -> String {
    let mut xml = xml.to_string();
    for (a, b) in moved {
        for quote in ['\'', '"'] {
            xml = xml.replace(
                &format!("file={quote}{}{quote}", esc(&a.to_string_lossy())),
                &format!("file={quote}{}{quote}", esc(&b.to_string_lossy())),
            );
        }
    }
    let (open, close) = ("<nepho:record>", "</nepho:record>");
    if let Some(start) = xml.find(open).map(|i| i + open.len())
        && let Some(len) = xml[start..].find(close)
    {
        let json = serde_json::to_string(record).expect("records serialize");
        xml.replace_range(start..start + len, &esc(&json));
    }
    xml
}

impl KvmProvider {
    /// Why `d`'s networks would not reach it on `to` after a live move (none: they would). A
    /// NIC on a libvirt network needs that network on `to`, and not as a subnet of its own
    /// on both hosts (two NAT networks are two islands, whatever their names); a host bridge
    /// (`bridge:` in the cluster file) is the same segment everywhere by declaration.
    pub(super) async fn network_blocker(&self, d: &FoundDomain, to: &HostConfig) -> Option<String> {
        for nic in &d.record.nics {
            let Some(net) = &nic.libvirt_network else {
                continue;
            };
            let there = match libvirt::virsh_output(&to.uri, &["net-dumpxml", net]).await {
                Ok(out) if out.success => out.stdout,
                _ => return Some(format!("host {} has no network {net}", to.name)),
            };
            let here = libvirt::virsh_output(&d.uri, &["net-dumpxml", net])
                .await
                .ok()
                .filter(|o| o.success)
                .map(|o| o.stdout)
                .unwrap_or_default();
            if net::serves_subnet(&here) && net::serves_subnet(&there) {
                return Some(format!(
                    "network {net} is a separate subnet on each host (libvirt serves it on {} and on {}): it would keep its address and be unreachable on {}; put it on a network both hosts share (a bridge)",
                    d.host, to.name, to.name
                ));
            }
        }
        None
    }

    /// Moves the running machine `d` to `to` with libvirt's live migration; see the module doc.
    pub(super) async fn move_live(
        &self,
        d: &FoundDomain,
        to: &HostConfig,
    ) -> Result<LiveMove, ProviderError> {
        let from = self
            .cluster
            .host(&d.host)
            .cloned()
            .ok_or_else(|| failed(format!("host {} is not in the cluster file", d.host)))?;
        let old = &d.record;
        let new = record_on(&self.cluster, old, to);
        let address = self.address_of(d).await;
        let running = libvirt::virsh(&d.uri, &["dumpxml", "--migratable", &d.name]).await?;
        let persistent =
            libvirt::virsh(&d.uri, &["dumpxml", "--inactive", "--migratable", &d.name]).await?;
        let (src, dst) = (Runner::for_host(&from), Runner::for_host(to));
        let src_dir = names::formation_dir(&self.cluster, &from, &old.formation);
        let dst_dir = names::formation_dir(&self.cluster, to, &old.formation);

        // Files the destination QEMU opens: the seed and an ISO in the spare drive (nepho's
        // copy, or any ISO when a host is remote) go to its formation directory.
        let mut moved = vec![
            (old.seed.clone(), new.seed.clone()),
            (old.console_log.clone(), new.console_log.clone()),
        ];
        let mut to_copy = vec![(old.seed.clone(), new.seed.clone())];
        let mut library_isos = Vec::new();
        if let Some(iso) = crate::media::attached_iso(&running) {
            if let Some(there) = names::library_counterpart(&self.cluster, &from, to, &iso) {
                // A library ISO: the new host's own copy (`cluster:sync` made it).
                moved.push((iso, there.clone()));
                library_isos.push(there);
            } else {
                let target = if from.is_local() && to.is_local() && !iso.starts_with(&src_dir) {
                    iso.clone()
                } else {
                    dst_dir
                        .join("iso")
                        .join(iso.file_name().unwrap_or_default())
                };
                moved.push((iso.clone(), target.clone()));
                to_copy.push((iso, target));
            }
        }
        let mut copies: Vec<PathBuf> = Vec::new();
        let mut copied_bytes = 0;
        let prepared: Result<(), ProviderError> = async {
            for there in &library_isos {
                if !dst.exists(there).await {
                    return Err(super::migrate::missing_on(to, there));
                }
            }
            dst.mkdir(&dst_dir).await?;
            for (a, b) in &to_copy {
                if same_file(&src, &dst, a, b) {
                    continue;
                }
                if let Some(dir) = b.parent() {
                    dst.mkdir(dir).await?;
                }
                copied_bytes += file_size(&src, a).await;
                copy_between(&src, a, &dst, b).await?;
                copies.push(b.clone());
            }
            records::ensure_lease_files(&self.cluster, to, &new).await
        }
        .await;

        let migrated = match prepared {
            Ok(()) => {
                let running = retarget(&running, &moved, &new);
                let persistent = retarget(&persistent, &moved, &new);
                self.run_migration(d, &from, to, &running, &persistent)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = migrated {
            // libvirt aborted: the machine runs on where it was (unless it really arrived).
            let arrived = libvirt::domain_state(&to.uri, &d.name).await.as_deref()
                == Some("running")
                && !libvirt::domain_exists(&d.uri, &d.name).await;
            if !arrived {
                let _ = dst.remove(&copies).await;
                let _ = dst
                    .run("rmdir", &[&dst_dir.join("iso").to_string_lossy()], SHORT)
                    .await;
                let _ = dst.run("rmdir", &[&dst_dir.to_string_lossy()], SHORT).await;
                let state = libvirt::domain_state(&d.uri, &d.name)
                    .await
                    .unwrap_or_else(|| "not found".into());
                return Err(ProviderError::Failed {
                    message: format!("moving {} live to {} failed: {e}", old.machine, to.name),
                    hint: Some(if state == "running" {
                        format!(
                            "nothing changed: {} still runs on {}",
                            old.machine, from.name
                        )
                    } else {
                        format!(
                            "{} is {state} on {}: `virsh -c {} list --all` on both hosts shows where it is",
                            old.machine, from.name, from.uri
                        )
                    }),
                });
            }
        }

        // Where the machine's MAC is now, for every switch on the way (here: the bridge both
        // hosts share): QEMU's announce-self sends gratuitous RARPs from each NIC for about a
        // second, after the old host's tap may still have been learnt. Without it a client's
        // ARP probe could go to the old port until its entry failed ("No route to host").
        let announce = r#"{"execute":"announce-self","arguments":{"initial":50,"max":550,"rounds":10,"step":100}}"#;
        let _ = libvirt::virsh_output(&to.uri, &["qemu-monitor-command", &d.name, announce]).await;

        // It runs on `to`: the shared record follows (same UUID: the domain moved, it was
        // not defined anew), and the old host's files go.
        self.record_moved(d, to, &new).await?;
        let mut stale: Vec<PathBuf> = moved
            .iter()
            .filter(|(a, b)| !same_file(&src, &dst, a, b))
            .map(|(a, _)| a.clone())
            .filter(|a| a.starts_with(&src_dir))
            .collect();
        stale.dedup();
        let _ = src.remove(&stale).await;
        let _ = src
            .run("rmdir", &[&src_dir.join("iso").to_string_lossy()], SHORT)
            .await;
        let _ = src.run("rmdir", &[&src_dir.to_string_lossy()], SHORT).await;
        let downtime_ms = libvirt::virsh_output(&to.uri, &["domjobinfo", &d.name, "--completed"])
            .await
            .ok()
            .filter(|o| o.success)
            .and_then(|o| downtime_ms(&o.stdout));
        Ok(LiveMove {
            address,
            copied_bytes,
            downtime_ms,
        })
    }

    /// `virsh migrate --live` from `from` to `to` with the destination's XML.
    async fn run_migration(
        &self,
        d: &FoundDomain,
        from: &HostConfig,
        to: &HostConfig,
        running_xml: &str,
        persistent_xml: &str,
    ) -> Result<(), ProviderError> {
        let dir = d
            .record
            .key
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let live_file = dir.join(format!("{}.migrate.xml", d.name));
        let conf_file = dir.join(format!("{}.migrate-persistent.xml", d.name));
        for (file, xml) in [(&live_file, running_xml), (&conf_file, persistent_xml)] {
            tokio::fs::write(file, xml)
                .await
                .map_err(|e| cmd::io_failed(file, e))?;
        }
        let (live, conf) = (live_file.to_string_lossy(), conf_file.to_string_lossy());
        let mut args = vec![
            "-q",
            "-c",
            &from.uri,
            "migrate",
            "--live",
            "--persistent",
            "--undefinesource",
            "--xml",
            &live,
            "--persistent-xml",
            &conf,
            &d.name,
            &to.uri,
        ];
        // Two libvirtds on one machine: the destination QEMU listens on loopback (libvirt
        // would otherwise use the host name, which need not resolve here).
        if from.is_local() && to.is_local() {
            args.extend(["--migrateuri", "tcp://127.0.0.1"]);
        }
        let out = cmd::run("virsh", &args, MIGRATE_TIMEOUT).await;
        let _ = tokio::fs::remove_file(&live_file).await;
        let _ = tokio::fs::remove_file(&conf_file).await;
        let out = out?;
        if out.success {
            return Ok(());
        }
        let why = out.stderr.trim().trim_start_matches("error: ").to_string();
        Err(failed(if libvirt::is_lease_conflict(&why) {
            format!(
                "host {} cannot take {}'s disk leases: {why}",
                to.name, d.record.machine
            )
        } else {
            why
        }))
    }

    /// The shared record names `to` as the owner (generation bumped, UUID unchanged).
    async fn record_moved(
        &self,
        d: &FoundDomain,
        to: &HostConfig,
        new: &MachineRecord,
    ) -> Result<(), ProviderError> {
        let Some(iscsi) = &self.cluster.storage.iscsi else {
            return Ok(());
        };
        let storage = Runner::for_iscsi(iscsi);
        let path = records::record_path(iscsi, &new.formation, &new.machine);
        let before = records::read_shared(&storage, &path).await.ok().flatten();
        let uuid = match before.as_ref().and_then(|b| b.uuid.clone()) {
            Some(u) => Some(u),
            None => records::domain_uuid(&to.uri, &d.name).await,
        };
        let moved = SharedRecord {
            domain: d.name.clone(),
            host: to.name.clone(),
            generation: before.as_ref().map_or(1, |b| b.generation + 1),
            uuid,
            labels: before
                .as_ref()
                .map(|b| b.labels.clone())
                .unwrap_or_default(),
            record: new.clone(),
            lockspace: before.as_ref().and_then(|b| b.lockspace.clone()),
        };
        records::write_shared(&storage, &path, &moved)
            .await
            .map_err(|e| ProviderError::Failed {
                message: format!(
                    "{} runs on {} now, but its shared record could not say so: {e}",
                    new.machine, to.name
                ),
                hint: Some(
                    "failover reads that record: move it again or fix the storage host, then `nepho cluster:status`"
                        .into(),
                ),
            })
    }
}

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::Failed {
        message: message.into(),
        hint: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(host: &str) -> MachineRecord {
        MachineRecord {
            formation: "f".into(),
            cloudlet: "c".into(),
            scenario: "s".into(),
            machine: "web".into(),
            primary: true,
            host: host.into(),
            cpus: 1,
            memory_mb: 256,
            disks: vec![DiskRecord::Lun {
                iqn: "iqn.x:f:web".into(),
                lun: 1,
                portal: "127.0.0.1:3260".into(),
                file: "/l/f/web-disk0.raw".into(),
            }],
            seed: format!("/{host}/f/web-seed.iso").into(),
            console_log: format!("/{host}/f/web-console.log").into(),
            key: "/w/id_ed25519".into(),
            ssh_user: "root".into(),
            outputs: BTreeMap::new(),
            nics: vec![],
            swap: None,
            base_image: None,
        }
    }

    fn found(state: &str, r: MachineRecord) -> FoundDomain {
        FoundDomain {
            host: r.host.clone(),
            uri: String::new(),
            name: "nepho-f-web".into(),
            state: state.into(),
            record: r,
        }
    }

    #[test]
    fn only_running_machines_on_shared_disks_without_local_swap_move_live() {
        assert_eq!(machine_blocker(&found("running", record("a"))), None);
        let off = machine_blocker(&found("shut off", record("a"))).unwrap();
        assert!(off.contains("it is shut off"), "{off}");
        let mut local = record("a");
        local.disks.push(DiskRecord::File {
            path: "/a/f/web-disk1.qcow2".into(),
        });
        let why = machine_blocker(&found("running", local)).unwrap();
        assert!(why.contains("disk1 is a qcow2 file"), "{why}");
        let mut swap = record("a");
        swap.swap = Some(crate::libvirt::SwapRecord {
            path: "/a/f/web-swap.raw".into(),
            size_mb: 64,
        });
        let why = machine_blocker(&found("running", swap)).unwrap();
        assert!(why.contains("swap"), "{why}");
    }

    #[test]
    fn the_destination_xml_has_the_new_paths_and_record() {
        let (a, b) = (record("a"), record("b"));
        let xml = format!(
            "<domain><metadata><nepho:instance xmlns:nepho=\"urn:nepho:libvirt:1\"><nepho:record>{}</nepho:record></nepho:instance></metadata>\n<source file='/a/f/web-seed.iso'/>\n<log file='/a/f/web-console.log' append='off'/>\n<source file='/a/f/web-seed.iso.bak'/>\n</domain>",
            serde_json::to_string(&a).unwrap()
        );
        let moved = [
            (a.seed.clone(), b.seed.clone()),
            (a.console_log.clone(), b.console_log.clone()),
        ];
        let out = retarget(&xml, &moved, &b);
        assert!(out.contains("<source file='/b/f/web-seed.iso'/>"), "{out}");
        assert!(out.contains("<log file='/b/f/web-console.log'"), "{out}");
        assert!(
            out.contains("<source file='/a/f/web-seed.iso.bak'/>"),
            "only whole paths: {out}"
        );
        assert_eq!(libvirt::record_from_xml(&out), Some(b));
    }

    #[test]
    fn downtime_is_read_from_the_completed_job() {
        let info = "Job type:         Completed\nTime elapsed:     2584         ms\nTotal downtime:   152          ms\nDowntime w/o network: 146          ms\n";
        assert_eq!(downtime_ms(info), Some(152));
        assert_eq!(downtime_ms("Job type: None\n"), None);
    }
}
