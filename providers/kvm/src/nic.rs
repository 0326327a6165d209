//! Plugging a machine into one more network of the cluster file, and unplugging it: a virtio
//! NIC hot-plugged into a running machine (and kept in its definition), with what the create
//! path gives a NIC — on a network with a `pool:`, a fixed address (DHCP reservation) and the
//! `clean-traffic` filter. The NIC joins the machine's record, so destroy releases its address.

use nepho_provider_api::{NicChange, ProviderError};

use crate::libvirt::{self, FoundDomain, NicRecord};
use crate::steps::reserve_address;
use crate::{KvmProvider, MachineOpError, net, place};

fn change(d: &FoundDomain, index: usize, nic: &NicRecord, live: bool) -> NicChange {
    NicChange {
        machine: d.record.machine.clone(),
        host: d.host.clone(),
        nic: format!("net{index}"),
        network: nic.network.clone(),
        mac: nic.mac.clone(),
        ip: nic.ip.clone(),
        filter: nic.ip.as_ref().map(|_| "clean-traffic".to_string()),
        live,
    }
}

/// The NIC `which` names: `netN`, or the only NIC on network `which`.
fn nic_index(d: &FoundDomain, which: &str) -> Result<usize, ProviderError> {
    let nics = &d.record.nics;
    let listing = || {
        nics.iter()
            .enumerate()
            .map(|(i, n)| format!("net{i} ({})", n.network))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(i) = which
        .strip_prefix("net")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|i| *i < nics.len())
    {
        return Ok(i);
    }
    let on: Vec<usize> = (0..nics.len())
        .filter(|i| nics[*i].network == which)
        .collect();
    match on[..] {
        [i] => Ok(i),
        [] => Err(ProviderError::NotFound(format!(
            "{} has no NIC {which} (NICs: {})",
            d.record.machine,
            listing()
        ))),
        _ => Err(ProviderError::Invalid {
            message: format!(
                "{} has several NICs on network {which}: {}",
                d.record.machine,
                listing()
            ),
            hint: Some("name one as netN".into()),
        }),
    }
}

impl KvmProvider {
    /// Plugs `machine` (default: the primary one) into `network`, live when it runs.
    pub async fn attach_nic(
        &self,
        formation: &str,
        machine: Option<&str>,
        network: &str,
    ) -> Result<NicChange, MachineOpError> {
        let d = self.one_machine(formation, machine).await?;
        let host = self.machine_host(&d)?;
        let config = self.cluster().network(network).ok_or_else(|| {
            ProviderError::NotFound(format!(
                "network {network} is not in the cluster file (networks: {})",
                self.cluster()
                    .networks
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if host.is_local() {
            config
                .check_bridge(std::path::Path::new("/sys/class/net"))
                .map_err(|message| ProviderError::Invalid {
                    message,
                    hint: Some("fix `networks:` in the cluster file".into()),
                })?;
        }
        let live_xml = libvirt::virsh(&d.uri, &["dumpxml", &d.name]).await?;
        let config_xml = libvirt::virsh(&d.uri, &["dumpxml", "--inactive", &d.name]).await?;
        // A MAC neither the record nor either definition uses (a detached NIC's may linger).
        let mac = (0..)
            .map(|i| net::mac_for(formation, &d.record.machine, i))
            .find(|mac| {
                !d.record
                    .nics
                    .iter()
                    .any(|n| n.mac.eq_ignore_ascii_case(mac))
                    && !live_xml.contains(&format!("'{mac}'"))
                    && !config_xml.contains(&format!("'{mac}'"))
            })
            .expect("an unused MAC");
        let libvirt_network = config.bridge.is_none().then(|| config.name.clone());
        let ip = match &config.pool {
            Some(pool) => Some(
                self.free_pool_address(&d, pool, libvirt_network.as_deref(), &mac)
                    .await?,
            ),
            None => None,
        };
        let nic = NicRecord {
            network: config.name.clone(),
            libvirt_network,
            bridge: config.bridge.clone(),
            vlan: config.vlan,
            mac,
            ip,
        };
        let index = d.record.nics.len();
        if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
            // libvirt refuses a second entry with the machine's name: the NIC's is its own.
            let host_name = format!("{}-net{index}", d.record.machine);
            reserve_address(&d.uri, net, &nic.mac, ip, &host_name).await?;
            // reserve_address takes an existing entry for success: it must be this NIC's.
            let xml = libvirt::virsh(&d.uri, &["net-dumpxml", net]).await?;
            let entry = xml.split("<host ").skip(1).find(|h| {
                h.to_ascii_lowercase()
                    .contains(&format!("mac='{}'", nic.mac))
            });
            if !entry.is_some_and(|h| h.contains(&format!("ip='{ip}'"))) {
                return Err(ProviderError::Failed {
                    message: format!(
                        "network {net} did not take the reservation of {ip} for {}",
                        nic.mac
                    ),
                    hint: Some(format!(
                        "look for a conflicting entry: virsh net-dumpxml {net}"
                    )),
                }
                .into());
            }
        }
        let running = d.state == "running";
        if let Err(e) = self.plug_nic(&d, &nic, running).await {
            if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
                crate::steps::release_address(&d.uri, net, &nic.mac, ip).await;
            }
            return Err(e.into());
        }
        let mut record = d.record.clone();
        record.nics.push(nic.clone());
        libvirt::set_record(&d.uri, &d.name, &record, running).await?;
        crate::records::refresh_record(self.cluster(), &d.name, &record).await?;
        Ok(change(&d, index, &nic, running))
    }

    /// Unplugs the NIC `which` (`netN`, or a network with one NIC of the machine) and releases
    /// its address. `net0`, the NIC the machine is reached through, stays.
    pub async fn detach_nic(
        &self,
        formation: &str,
        machine: Option<&str>,
        which: &str,
    ) -> Result<NicChange, MachineOpError> {
        let d = self.one_machine(formation, machine).await?;
        let index = nic_index(&d, which)?;
        if index == 0 {
            return Err(ProviderError::Invalid {
                message: format!(
                    "net0 is the NIC {} is reached through (ssh, outputs)",
                    d.record.machine
                ),
                hint: Some("destroy the formation to remove it".into()),
            }
            .into());
        }
        let nic = d.record.nics[index].clone();
        let running = d.state == "running";
        let kind = if nic.bridge.is_some() {
            "bridge"
        } else {
            "network"
        };
        let live_xml = libvirt::virsh(&d.uri, &["dumpxml", &d.name]).await?;
        let has = |xml: &str| xml.contains(&format!("<mac address='{}'/>", nic.mac));
        if running && has(&live_xml) {
            libvirt::virsh(
                &d.uri,
                &[
                    "detach-interface",
                    &d.name,
                    kind,
                    "--mac",
                    &nic.mac,
                    "--live",
                ],
            )
            .await?;
            self.wait_nic_unplugged(&d, &nic.mac).await?;
        }
        let config_xml = libvirt::virsh(&d.uri, &["dumpxml", "--inactive", &d.name]).await?;
        if has(&config_xml) {
            libvirt::virsh(
                &d.uri,
                &[
                    "detach-interface",
                    &d.name,
                    kind,
                    "--mac",
                    &nic.mac,
                    "--config",
                ],
            )
            .await?;
        }
        let mut record = d.record.clone();
        record.nics.remove(index);
        libvirt::set_record(&d.uri, &d.name, &record, running).await?;
        crate::records::refresh_record(self.cluster(), &d.name, &record).await?;
        if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
            crate::steps::release_address(&d.uri, net, &nic.mac, ip).await;
        }
        Ok(change(&d, index, &nic, running))
    }

    /// The first address of `pool` no nepho machine holds and dnsmasq has not leased to
    /// another MAC (a lease outlives its NIC; dnsmasq would not hand the address out again).
    async fn free_pool_address(
        &self,
        d: &FoundDomain,
        pool: &str,
        libvirt_network: Option<&str>,
        mac: &str,
    ) -> Result<String, ProviderError> {
        let mut used: Vec<String> = place::host_loads(self.cluster())
            .await
            .iter()
            .flat_map(|l| &l.domains)
            .flat_map(|d| d.record.nics.iter().filter_map(|n| n.ip.clone()))
            .collect();
        if let Some(network) = libvirt_network {
            let leases = libvirt::virsh(&d.uri, &["net-dhcp-leases", network])
                .await
                .unwrap_or_default();
            used.extend(
                net::parse_leases(&leases)
                    .into_iter()
                    .filter(|(m, _)| !m.eq_ignore_ascii_case(mac))
                    .map(|(_, ip)| ip),
            );
        }
        net::parse_pool(pool)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.to_string())
            .find(|a| !used.contains(a))
            .ok_or_else(|| ProviderError::Invalid {
                message: format!(
                    "address pool {pool} is exhausted (machine {})",
                    d.record.machine
                ),
                hint: None,
            })
    }

    async fn plug_nic(
        &self,
        d: &FoundDomain,
        nic: &NicRecord,
        running: bool,
    ) -> Result<(), ProviderError> {
        let tag = nic.mac.replace(':', "");
        libvirt::attach_device(d, &libvirt::interface_xml(nic), &tag, running).await
    }

    async fn wait_nic_unplugged(&self, d: &FoundDomain, mac: &str) -> Result<(), ProviderError> {
        libvirt::wait_unplugged(
            d,
            &format!("<mac address='{mac}'/>"),
            &format!("the NIC {mac}"),
            "detach again",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(networks: &[&str]) -> FoundDomain {
        let nics: Vec<serde_json::Value> = networks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                serde_json::json!({"network": n, "libvirt_network": n, "bridge": null,
                    "vlan": null, "mac": net::mac_for("f", "m", i), "ip": null})
            })
            .collect();
        let record = serde_json::json!({
            "formation": "f", "cloudlet": "c", "scenario": "s", "machine": "m", "primary": true,
            "host": "local", "cpus": 1, "memory_mb": 128, "disks": [], "seed": "/s.iso",
            "console_log": "/c.log", "key": "/k", "ssh_user": "root", "outputs": {}, "nics": nics,
        });
        FoundDomain {
            host: "local".into(),
            uri: "qemu:///system".into(),
            name: "nepho-f-m".into(),
            state: "running".into(),
            record: serde_json::from_value(record).unwrap(),
        }
    }

    #[test]
    fn nics_are_named_by_index_or_by_their_only_network() {
        let d = domain(&["default", "back", "back", "front"]);
        assert_eq!(nic_index(&d, "net2").unwrap(), 2);
        assert_eq!(nic_index(&d, "front").unwrap(), 3);
        assert!(matches!(
            nic_index(&d, "back"),
            Err(ProviderError::Invalid { .. })
        ));
        assert!(matches!(
            nic_index(&d, "net4"),
            Err(ProviderError::NotFound(_))
        ));
    }
}
