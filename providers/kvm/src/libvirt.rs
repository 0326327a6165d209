//! libvirt through `virsh`: domain XML with nepho's metadata, finding nepho's domains on the
//! hosts (the metadata is the only record of what exists), states and addresses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nepho_provider_api::ProviderError;
use serde::{Deserialize, Serialize};

use crate::cluster::{HostConfig, lease_target};
use crate::cmd;

pub const NS: &str = "urn:nepho:libvirt:1";
const VIRSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything nepho needs to find, reach and remove a machine, kept in the domain's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub formation: String,
    pub cloudlet: String,
    pub scenario: String,
    pub machine: String,
    pub primary: bool,
    pub host: String,
    pub cpus: u32,
    pub memory_mb: u64,
    pub disks: Vec<DiskRecord>,
    pub seed: PathBuf,
    pub console_log: PathBuf,
    /// The formation's private key (on the machine running nepho).
    pub key: PathBuf,
    pub ssh_user: String,
    /// Output templates (with `${m.address}`), so describe/endpoints need no local state.
    pub outputs: BTreeMap<String, String>,
    pub nics: Vec<NicRecord>,
    /// Swap on the host's own (local, fast) storage: disposable, so it never keeps a machine
    /// from moving: failover and migration make a fresh one on the new host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapRecord>,
    /// The base image of the boot disk, on the machine's host when it was built (so the image
    /// library knows which machines still use an image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<PathBuf>,
}

/// A raw sparse file on the machine's host, seen by the guest as a virtio disk with serial
/// [`SWAP_SERIAL`] (`/dev/disk/by-id/virtio-nepho-swap`), made into swap at every boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapRecord {
    pub path: PathBuf,
    pub size_mb: u64,
}

pub const SWAP_SERIAL: &str = "nepho-swap";

/// Far from the data disks `vda`, `vdb`… that add-drive hands out.
pub const SWAP_DEV: &str = "vdz";

fn swap_xml(swap: &SwapRecord) -> String {
    // cache='unsafe': swap is thrown away at every boot, its writes never need to be durable.
    format!(
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw' cache='unsafe' discard='unmap'/>\n      <source file='{}'/>\n      <target dev='{SWAP_DEV}' bus='virtio'/>\n      <serial>{SWAP_SERIAL}</serial>\n    </disk>\n",
        esc(&swap.path.to_string_lossy())
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DiskRecord {
    File {
        path: PathBuf,
    },
    Lun {
        iqn: String,
        lun: u32,
        portal: String,
        file: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicRecord {
    pub network: String,
    pub libvirt_network: Option<String>,
    pub bridge: Option<String>,
    pub vlan: Option<u16>,
    pub mac: String,
    pub ip: Option<String>,
}

/// A nepho domain found on a host.
#[derive(Debug, Clone)]
pub struct FoundDomain {
    pub host: String,
    pub uri: String,
    pub name: String,
    pub state: String,
    pub record: MachineRecord,
}

pub async fn virsh(uri: &str, args: &[&str]) -> Result<String, ProviderError> {
    let mut full = vec!["-q", "-c", uri];
    full.extend_from_slice(args);
    cmd::check("virsh", &full, VIRSH_TIMEOUT).await
}

pub async fn virsh_output(uri: &str, args: &[&str]) -> Result<cmd::Output, ProviderError> {
    let mut full = vec!["-q", "-c", uri];
    full.extend_from_slice(args);
    cmd::run("virsh", &full, VIRSH_TIMEOUT).await
}

/// Every domain on the host: (name, state).
pub async fn list_all(
    uri: &str,
    timeout: Duration,
) -> Result<Vec<(String, String)>, ProviderError> {
    let out = cmd::run("virsh", &["-q", "-c", uri, "list", "--all"], timeout).await?;
    if !out.success {
        return Err(ProviderError::Unavailable {
            message: format!("libvirt at {uri} does not answer: {}", out.stderr.trim()),
            hint: Some("is libvirtd running? (scripts/setup/daemons.sh)".to_string()),
        });
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let _id = words.next()?;
            let name = words.next()?.to_string();
            Some((name, words.collect::<Vec<_>>().join(" ")))
        })
        .collect())
}

/// Nepho's domains on one host (optionally of one formation).
pub async fn nepho_domains(
    host: &HostConfig,
    formation: Option<&str>,
) -> Result<Vec<FoundDomain>, ProviderError> {
    let mut found = Vec::new();
    for (name, state) in list_all(&host.uri, Duration::from_secs(20)).await? {
        let Ok(xml) = virsh(&host.uri, &["dumpxml", &name]).await else {
            continue; // vanished meanwhile
        };
        let Some(mut record) = record_from_xml(&xml) else {
            continue;
        };
        // The live definition wins over the record (someone may have resized the domain).
        let (cpus, memory_mb) = size_from_xml(&xml);
        if cpus > 0 && memory_mb > 0 {
            (record.cpus, record.memory_mb) = (cpus, memory_mb);
        }
        if formation.is_some_and(|f| f != record.formation) {
            continue;
        }
        found.push(FoundDomain {
            host: host.name.clone(),
            uri: host.uri.clone(),
            name,
            state,
            record,
        });
    }
    Ok(found)
}

pub fn record_from_xml(xml: &str) -> Option<MachineRecord> {
    let start = xml.find("<nepho:record>")? + "<nepho:record>".len();
    let end = start + xml[start..].find("</nepho:record>")?;
    serde_json::from_str(&unescape(&xml[start..end])).ok()
}

pub async fn domain_state(uri: &str, name: &str) -> Option<String> {
    let out = virsh_output(uri, &["domstate", name]).await.ok()?;
    out.success
        .then(|| out.stdout.lines().next().unwrap_or("").trim().to_string())
}

/// Whether the machine `d` (as listed) is in the middle of a live migration: gone from the
/// host it was listed on, paused for the switch-over (`paused (migrating)`), an incoming copy
/// not started yet (`paused (starting up)`), or in another state than when listed.
pub async fn in_switch_over(d: &FoundDomain) -> bool {
    let Ok(out) = virsh_output(&d.uri, &["domstate", "--reason", &d.name]).await else {
        return false;
    };
    if !out.success {
        return true; // gone from that host
    }
    let now = out.stdout.lines().next().unwrap_or("").trim();
    switching_over(&d.state, now)
}

/// See `in_switch_over`: `listed` is the state the domain was listed with, `now` what
/// `virsh domstate --reason` says now.
fn switching_over(listed: &str, now: &str) -> bool {
    let state = now.split(" (").next().unwrap_or(now);
    state != listed || now == "paused (migrating)" || now == "paused (starting up)"
}

pub async fn domain_exists(uri: &str, name: &str) -> bool {
    domain_state(uri, name).await.is_some()
}

/// destroy (if running) + undefine; a missing domain is fine.
pub async fn remove_domain(uri: &str, name: &str) -> Result<bool, ProviderError> {
    let Some(state) = domain_state(uri, name).await else {
        return Ok(false);
    };
    if state != "shut off" {
        let _ = virsh_output(uri, &["destroy", name]).await;
    }
    let out = virsh_output(uri, &["undefine", name]).await?;
    if !out.success && domain_exists(uri, name).await {
        return Err(ProviderError::Failed {
            message: format!("virsh undefine {name} failed: {}", out.stderr.trim()),
            hint: None,
        });
    }
    Ok(true)
}

/// First IPv4 address libvirt knows for the domain: its newest DHCP lease, then guest agent,
/// then ARP.
pub async fn address(uri: &str, name: &str) -> Option<String> {
    address_polled(uri, name, true).await
}

/// [`address`] for a poll: without `fallbacks`, a domain on a libvirt network is looked up in
/// its leases only. Asking the agent and the ARP table too costs three more virsh runs, host
/// CPU that machines booting under TCG beside it need; a poller asks them now and then (a
/// network whose DHCP another host serves has no lease here).
pub async fn address_polled(uri: &str, name: &str, fallbacks: bool) -> Option<String> {
    match newest_lease(uri, name).await {
        Some(Some(ip)) => return Some(ip),
        Some(None) if !fallbacks => return None,
        _ => {}
    }
    // Leases were read above, all of them: `domifaddr --source lease` shows one, maybe stale.
    for source in ["agent", "arp"] {
        let Ok(out) = virsh_output(uri, &["domifaddr", name, "--source", source]).await else {
            continue;
        };
        if !out.success {
            continue;
        }
        for line in out.stdout.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| *w == "ipv4")
                && let Some(addr) = words.get(i + 1)
            {
                let ip = addr.split('/').next().unwrap_or(addr);
                if !ip.starts_with("127.") {
                    return Some(ip.to_string());
                }
            }
        }
    }
    None
}

/// The address the newest DHCP lease of the domain's first NIC on a libvirt network gives.
/// A machine made again under the same name has the same MAC, and a guest whose DHCP client
/// id changes with each first boot (Debian's dhclient: a DUID with a timestamp) gets a second
/// lease beside the old one, which lives on for an hour; `domifaddr` shows only one of the two,
/// often the old. The lease renewed last is the machine's.
/// `None` when the domain has no NIC on a libvirt network (or virsh could not tell).
async fn newest_lease(uri: &str, name: &str) -> Option<Option<String>> {
    let nics = virsh_output(uri, &["domiflist", name]).await.ok()?;
    // Interface  Type  Source  Model  MAC
    let (network, mac) = nics.stdout.lines().find_map(|line| {
        let w: Vec<&str> = line.split_whitespace().collect();
        (w.len() == 5 && w[1] == "network").then(|| (w[2].to_string(), w[4].to_string()))
    })?;
    let leases = virsh_output(uri, &["net-dhcp-leases", &network, "--mac", &mac])
        .await
        .ok()
        .filter(|out| out.success)?;
    Some(newest_ipv4(&leases.stdout))
}

/// From `virsh net-dhcp-leases` output: the IPv4 address of the lease that expires last.
fn newest_ipv4(leases: &str) -> Option<String> {
    leases
        .lines()
        .filter_map(|line| {
            // Expiry (date, time), MAC, protocol, address/prefix, hostname, client id
            let w: Vec<&str> = line.split_whitespace().collect();
            (w.len() >= 5 && w[3] == "ipv4").then(|| {
                let ip = w[4].split('/').next().unwrap_or(w[4]);
                (format!("{} {}", w[0], w[1]), ip.to_string())
            })
        })
        .max()
        .map(|(_, ip)| ip)
}

/// vCPUs and memory (MiB) of a domain from its XML.
pub fn size_from_xml(xml: &str) -> (u32, u64) {
    let vcpus = between(xml, "<vcpu", "</vcpu>")
        .and_then(|s| s.split('>').nth(1))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let memory = between(xml, "<memory", "</memory>").unwrap_or("");
    let amount: u64 = memory
        .split('>')
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let mib = if memory.contains("unit='MiB'") {
        amount
    } else if memory.contains("unit='GiB'") {
        amount * 1024
    } else {
        amount / 1024
    };
    (vcpus, mib)
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)?;
    let end = start + s[start..].find(close)?;
    Some(&s[start..end])
}

/// Inputs of [`domain_xml`].
pub struct DomainSpec<'a> {
    pub name: &'a str,
    pub domain_type: &'a str,
    pub record: &'a MachineRecord,
    /// The cluster's `storage.lockspace`: one `<lease>` per iSCSI target of the machine.
    pub lockspace: Option<&'a Path>,
}

/// The lease keys of a machine: one per iSCSI target (its LUNs, hot-plugged ones included,
/// live on the machine's own target), `nepho-<iqn>` with anything but `[A-Za-z0-9._:-]`
/// replaced (a key is a file name in the lockspace).
pub fn lease_keys(r: &MachineRecord) -> Vec<String> {
    let mut keys: Vec<String> = r
        .disks
        .iter()
        .filter_map(|d| match d {
            DiskRecord::Lun { iqn, .. } => Some(format!(
                "nepho-{}",
                iqn.chars()
                    .map(|c| if c.is_ascii_alphanumeric() || ".:-".contains(c) {
                        c
                    } else {
                        '_'
                    })
                    .collect::<String>()
            )),
            DiskRecord::File { .. } => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The lease files in the lockspace (virtlockd opens them, it does not create them).
pub fn lease_files(lockspace: &Path, r: &MachineRecord) -> Vec<PathBuf> {
    lease_keys(r).iter().map(|k| lockspace.join(k)).collect()
}

fn leases_xml(lockspace: Option<&Path>, r: &MachineRecord) -> String {
    let Some((path, space)) = lockspace.and_then(lease_target) else {
        return String::new();
    };
    lease_keys(r)
        .iter()
        .map(|key| {
            format!(
                "    <lease>\n      <lockspace>{}</lockspace>\n      <key>{}</key>\n      <target path='{}'/>\n    </lease>\n",
                esc(&space),
                esc(key),
                esc(&path)
            )
        })
        .collect()
}

/// libvirt's refusal when another host's QEMU holds a lease of the machine (lockd:
/// "resource busy: Lockspace resource 'KEY' is locked"; sanlock: "Failed to acquire lock").
pub fn is_lease_conflict(message: &str) -> bool {
    (message.contains("resource busy") && message.contains("is locked"))
        || message.contains("Failed to acquire lock")
}

/// The guest device of a machine's `i`th disk (vda is the boot disk).
pub fn disk_dev(i: usize) -> String {
    format!("vd{}", (b'a' + i as u8) as char)
}

/// One `<disk>` element: a qcow2 file or an iSCSI LUN through QEMU's own initiator.
pub fn disk_xml(disk: &DiskRecord, dev: &str) -> String {
    match disk {
        DiskRecord::File { path } => format!(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='{}'/>\n      <target dev='{dev}' bus='virtio'/>\n    </disk>\n",
            esc(&path.to_string_lossy())
        ),
        DiskRecord::Lun {
            iqn, lun, portal, ..
        } => {
            let (host, port) = portal.rsplit_once(':').unwrap_or((portal, "3260"));
            format!(
                "    <disk type='network' device='disk'>\n      <driver name='qemu' type='raw' cache='none'/>\n      <source protocol='iscsi' name='{}/{lun}'>\n        <host name='{}' port='{}'/>\n        <initiator><iqn name='{}'/></initiator>\n      </source>\n      <target dev='{dev}' bus='virtio'/>\n    </disk>\n",
                esc(iqn),
                esc(host),
                esc(port),
                esc(&format!("{iqn}:initiator"))
            )
        }
    }
}

/// Rewrites the nepho record in a domain's metadata (persistent definition, and the running
/// domain when `live`), after its disks changed.
pub async fn set_record(
    uri: &str,
    name: &str,
    r: &MachineRecord,
    live: bool,
) -> Result<(), ProviderError> {
    let record_json = serde_json::to_string(r).expect("records serialize");
    let xml = format!(
        "<instance><formation>{}</formation><cloudlet>{}</cloudlet><scenario>{}</scenario><machine>{}</machine><record>{}</record></instance>",
        esc(&r.formation),
        esc(&r.cloudlet),
        esc(&r.scenario),
        esc(&r.machine),
        esc(&record_json)
    );
    let mut args = vec![
        "metadata", name, NS, "--key", "nepho", "--set", &xml, "--config",
    ];
    if live {
        args.push("--live");
    }
    virsh(uri, &args).await.map(|_| ())
}

/// One `<interface>`: a libvirt network or a host bridge (with its VLAN), virtio, and
/// libvirt's `clean-traffic` filter when the NIC has a fixed address.
pub fn interface_xml(nic: &NicRecord) -> String {
    let source = match (&nic.bridge, &nic.libvirt_network) {
        (Some(br), _) => format!("type='bridge'>\n      <source bridge='{}'/>", esc(br)),
        (None, Some(net)) => format!("type='network'>\n      <source network='{}'/>", esc(net)),
        (None, None) => "type='network'>\n      <source network='default'/>".to_string(),
    };
    let vlan = nic
        .vlan
        .map(|v| format!("      <vlan><tag id='{v}'/></vlan>\n"))
        .unwrap_or_default();
    let filter = nic
        .ip
        .as_ref()
        .map(|ip| {
            format!(
                "      <filterref filter='clean-traffic'><parameter name='IP' value='{}'/></filterref>\n",
                esc(ip)
            )
        })
        .unwrap_or_default();
    format!(
        "    <interface {source}\n      <mac address='{}'/>\n{vlan}      <model type='virtio'/>\n{filter}      <rom enabled='no'/>\n    </interface>\n",
        nic.mac
    )
}

pub fn domain_xml(d: &DomainSpec) -> String {
    let r = d.record;
    let record_json = serde_json::to_string(r).expect("records serialize");
    let mut disks = String::new();
    for (i, disk) in r.disks.iter().enumerate() {
        disks.push_str(&disk_xml(disk, &disk_dev(i)));
    }
    if let Some(swap) = &r.swap {
        disks.push_str(&swap_xml(swap));
    }
    let nics: String = r.nics.iter().map(interface_xml).collect();
    let leases = leases_xml(d.lockspace, r);
    format!(
        r#"<domain type='{dtype}'>
  <name>{name}</name>
  <metadata>
    <nepho:instance xmlns:nepho="{NS}">
      <nepho:formation>{formation}</nepho:formation>
      <nepho:cloudlet>{cloudlet}</nepho:cloudlet>
      <nepho:scenario>{scenario}</nepho:scenario>
      <nepho:machine>{machine}</nepho:machine>
      <nepho:record>{record}</nepho:record>
    </nepho:instance>
  </metadata>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>{cpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{disks}    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{seed}'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdd' bus='ide'/>
      <readonly/>
    </disk>
{nics}    <serial type='pty'>
      <log file='{console}' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video><model type='vga' heads='1'/></video>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
{leases}  </devices>
</domain>
"#,
        dtype = esc(d.domain_type),
        name = esc(d.name),
        formation = esc(&r.formation),
        cloudlet = esc(&r.cloudlet),
        scenario = esc(&r.scenario),
        machine = esc(&r.machine),
        record = esc(&record_json),
        memory = r.memory_mb,
        cpus = r.cpus,
        seed = esc(&r.seed.to_string_lossy()),
        console = esc(&r.console_log.to_string_lossy()),
    )
}

/// Hot-plugs a device (disk or interface XML) into the saved definition, and into the running
/// machine too when `running`.
pub async fn attach_device(
    d: &FoundDomain,
    xml: &str,
    tag: &str,
    running: bool,
) -> Result<(), ProviderError> {
    let file = std::env::temp_dir().join(format!("nepho-{}-{tag}.xml", d.name));
    tokio::fs::write(&file, xml)
        .await
        .map_err(|e| crate::cmd::io_failed(&file, e))?;
    let path = file.to_string_lossy().into_owned();
    let mut args = vec!["attach-device", d.name.as_str(), path.as_str(), "--config"];
    if running {
        args.push("--live");
    }
    let attached = virsh(&d.uri, &args).await;
    let _ = tokio::fs::remove_file(&file).await;
    attached.map(|_| ())
}

/// A live unplug needs the guest's cooperation (ACPI hotplug): waits up to 30 s until the
/// live XML no longer contains `needle`; `what` names the device in the error, `again` says
/// what to do after stopping the machine.
pub async fn wait_unplugged(
    d: &FoundDomain,
    needle: &str,
    what: &str,
    again: &str,
) -> Result<(), ProviderError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let xml = virsh(&d.uri, &["dumpxml", &d.name]).await?;
        if !xml.contains(needle) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(ProviderError::Failed {
        message: format!(
            "the guest {} did not release {what} within 30 s",
            d.record.machine
        ),
        hint: Some(format!(
            "stop the machine (nepho formation:stop {} {}) and {again}",
            d.record.formation, d.record.machine
        )),
    })
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_over_is_told_from_a_paused_or_booting_machine() {
        // Seen on both hosts during `virsh migrate --live`.
        assert!(switching_over("paused", "paused (migrating)"));
        assert!(switching_over("paused", "paused (starting up)"));
        assert!(switching_over("running", "paused (migrating)"));
        assert!(switching_over("paused", "running (migrated)"));
        // A machine paused by its user, still booting, or stopped: nothing to wait for.
        assert!(!switching_over("paused", "paused (user)"));
        assert!(!switching_over("running", "running (booted)"));
        assert!(!switching_over("shut off", "shut off (destroyed)"));
    }

    #[test]
    fn the_lease_renewed_last_gives_the_address() {
        let leases = " 2026-12-01 22:50:32   52:54:00:0e:ba:9d   ipv4       192.168.122.10/24   hello      ff:00:0e:ba:9d:00:01:00:01:32:a1:fd:a7:52:54:00:0e:ba:9d
 2026-12-01 22:15:47   52:54:00:0e:ba:9d   ipv4       192.168.122.9/24    -          ff:00:0e:ba:9d:00:01:00:01:32:a1:f5:83:52:54:00:0e:ba:9d
 2026-12-01 23:01:00   52:54:00:0e:ba:9d   ipv6       fd00::5/64          -          00:01
";
        assert_eq!(newest_ipv4(leases).as_deref(), Some("192.168.122.10"));
        assert_eq!(newest_ipv4(""), None);
    }

    #[test]
    fn the_record_round_trips_through_the_xml() {
        let record = MachineRecord {
            formation: "f<&>".into(),
            cloudlet: "c".into(),
            scenario: "s".into(),
            machine: "web-1".into(),
            primary: true,
            host: "local".into(),
            cpus: 2,
            memory_mb: 300,
            disks: vec![
                DiskRecord::File {
                    path: "/d/a.qcow2".into(),
                },
                DiskRecord::Lun {
                    iqn: "iqn.x:f:web-1".into(),
                    lun: 2,
                    portal: "127.0.0.1:3260".into(),
                    file: "/l/b.raw".into(),
                },
            ],
            seed: "/d/seed.iso".into(),
            console_log: "/d/console.log".into(),
            key: "/k/id".into(),
            ssh_user: "root".into(),
            outputs: BTreeMap::from([("url".into(), "http://${web-1.address}/'\"".into())]),
            nics: vec![],
            swap: Some(SwapRecord {
                path: "/d/web-1-swap.raw".into(),
                size_mb: 64,
            }),
            base_image: None,
        };
        let xml = domain_xml(&DomainSpec {
            name: "nepho-f-web-1",
            domain_type: "qemu",
            record: &record,
            lockspace: None,
        });
        assert!(!xml.contains("<lease>"));
        let leased = domain_xml(&DomainSpec {
            name: "nepho-f-web-1",
            domain_type: "qemu",
            record: &record,
            lockspace: Some(Path::new("/shared/lockd/nepho")),
        });
        assert_eq!(lease_keys(&record), ["nepho-iqn.x:f:web-1"]);
        assert_eq!(
            leased.matches("<lease>").count(),
            1,
            "one per target: {leased}"
        );
        assert!(leased.contains("<lockspace>nepho</lockspace>\n      <key>nepho-iqn.x:f:web-1</key>\n      <target path='/shared/lockd'/>"), "{leased}");
        assert_eq!(
            lease_files(Path::new("/shared/lockd/nepho"), &record),
            [PathBuf::from("/shared/lockd/nepho/nepho-iqn.x:f:web-1")]
        );
        assert_eq!(lease_target(Path::new("relative/x")), None);
        assert_eq!(lease_target(Path::new("/")), None);
        assert!(is_lease_conflict(
            "error: resource busy: Lockspace resource 'nepho-iqn.x:f:web-1' is locked"
        ));
        assert_eq!(record_from_xml(&xml).unwrap(), record);
        assert_eq!(size_from_xml(&xml), (2, 300));
        assert!(xml.contains("name='iqn.x:f:web-1/2'"));
        assert!(xml.contains("<source file='/d/web-1-swap.raw'/>"));
        assert!(
            xml.contains("<target dev='vdz' bus='virtio'/>\n      <serial>nepho-swap</serial>")
        );
        // Records written before swap existed still read.
        let old = serde_json::to_value(&record).unwrap();
        let mut old = old.as_object().unwrap().clone();
        old.remove("swap");
        let back: MachineRecord = serde_json::from_value(old.into()).unwrap();
        assert_eq!(back.swap, None);
    }
}
