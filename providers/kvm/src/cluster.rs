//! The cluster file: which hosts nepho may place machines on, their capacity, networks,
//! storage (qcow2 directories and an iSCSI portal) and named base images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nepho_provider_api::ProviderError;
use serde::{Deserialize, Serialize};

use crate::yaml;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub hosts: Vec<HostConfig>,
    #[serde(default)]
    pub networks: Vec<NetworkConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
    /// Image name → path of a qcow2 base image (cloud-init or the tiny guest's seed contract).
    #[serde(default)]
    pub images: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub domain_type: DomainType,
    /// How `place` picks among hosts that fit (by capacity and labels): `least-loaded`
    /// (default: most free allocatable memory), `first-fit` (the first in the file) or
    /// `least-used` (lowest measured + allocated usage, see `place::usage_score`).
    #[serde(default)]
    pub placement: Placement,
    /// Seconds a machine may take from start to "provisioned" (TCG guests are slow).
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_s: u64,
    /// Seconds an ACPI shutdown may take before the machine is forced off.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_s: u64,
}

fn default_ready_timeout() -> u64 {
    300
}
fn default_shutdown_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub name: String,
    /// `qemu:///system` (this machine) or `qemu+ssh://user@host/system`.
    pub uri: String,
    pub cpus: u32,
    pub memory_mb: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where this host keeps qcow2 disks, seeds and console logs (overrides `storage.dir`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

impl HostConfig {
    /// Local hosts run qemu-img/cp here; remote ones over ssh.
    pub fn is_local(&self) -> bool {
        self.uri.starts_with("qemu:///")
    }

    /// The ssh destination (and port, key, host-key policy) of a `qemu+ssh://` URI.
    pub fn ssh_target(&self) -> Option<crate::remote::SshTarget> {
        crate::remote::SshTarget::from_uri(&self.uri)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The name patterns use; also the libvirt network unless `bridge` is set.
    pub name: String,
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Static addresses `first-last` (IPv4): each machine gets one, reserved in the libvirt
    /// network's DHCP and enforced with nwfilter `clean-traffic`.
    #[serde(default)]
    pub pool: Option<String>,
}

impl NetworkConfig {
    /// Checks a network's host bridge on this machine (`sys_class_net` is `/sys/class/net`): it
    /// must exist, and a VLAN tag needs an Open vSwitch bridge — libvirt (9.x) tags a guest's
    /// traffic only there, and a Linux bridge (one with a `bridge/` directory) would fail at
    /// domain start, after disks were made.
    pub fn check_bridge(&self, sys_class_net: &Path) -> Result<(), String> {
        let Some(bridge) = &self.bridge else {
            return Ok(());
        };
        let dev = sys_class_net.join(bridge);
        if !dev.exists() {
            return Err(format!(
                "network `{}`: bridge {bridge} does not exist on this host",
                self.name
            ));
        }
        if let Some(vlan) = self.vlan
            && dev.join("bridge").is_dir()
        {
            return Err(format!(
                "network `{}`: VLAN {vlan} on {bridge}, a Linux bridge: libvirt tags VLANs only on Open vSwitch bridges; \
                 use an OVS bridge, or a Linux bridge per VLAN (on top of {bridge}'s uplink.{vlan}) without `vlan:`",
                self.name
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    #[serde(default)]
    pub iscsi: Option<IscsiConfig>,
    /// Fencing: a directory every host sees (NFS in production), configured on every host as
    /// virtlockd's lockspace (`file_lockspace_dir` in qemu-lockd.conf, `lock_manager =
    /// "lockd"` in qemu.conf; `scripts/setup/lockd-conf.sh`). When set, each iSCSI machine's
    /// domain carries a `<lease>` per target in it, so libvirt itself refuses to start a
    /// second copy of the machine's disks on another host while the first QEMU runs.
    #[serde(default)]
    pub lockspace: Option<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: default_dir(),
            iscsi: None,
            lockspace: None,
        }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("/var/lib/nepho/kvm")
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiConfig {
    /// `host:port` the guests' QEMU connects to.
    pub portal: String,
    /// Targets are named `<iqn_prefix>:<formation>:<machine>`.
    #[serde(default = "default_iqn_prefix")]
    pub iqn_prefix: String,
    /// `local` (run tgtadm here) or `ssh:user@host` (run tgtadm there).
    #[serde(default = "default_tgtadm")]
    pub tgtadm: String,
    /// tgtd's control port (`tgtadm -C`): 0 for the default instance.
    #[serde(default)]
    pub control_port: u16,
    /// Directory on the target host holding the LUNs' backing files.
    #[serde(default = "default_lun_dir")]
    pub dir: PathBuf,
    /// Initiator addresses allowed to log in (`tgtadm --op bind -I`): `ALL` or an address.
    #[serde(default = "default_allow")]
    pub allow: String,
}

fn default_iqn_prefix() -> String {
    "iqn.2024-01.org.nepho".to_string()
}
fn default_tgtadm() -> String {
    "local".to_string()
}
fn default_lun_dir() -> PathBuf {
    PathBuf::from("/var/lib/nepho/iscsi")
}
fn default_allow() -> String {
    "ALL".to_string()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainType {
    /// Use KVM only if a short probe boot works, else QEMU/TCG (with a warning).
    #[default]
    Auto,
    Kvm,
    Qemu,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    #[default]
    LeastLoaded,
    FirstFit,
    LeastUsed,
}

impl ClusterFile {
    pub fn parse(src: &str, what: &str) -> Result<ClusterFile, ProviderError> {
        let invalid = |message: String| ProviderError::Invalid {
            message,
            hint: Some("see `nepho register kvm` for an example cluster file".to_string()),
        };
        let cluster: ClusterFile = yaml::from_yaml(src, what).map_err(invalid)?;
        cluster
            .check()
            .map_err(|m| invalid(format!("{what}: {m}")))?;
        Ok(cluster)
    }

    pub fn load(path: &Path) -> Result<ClusterFile, ProviderError> {
        let src = std::fs::read_to_string(path).map_err(|e| ProviderError::Unavailable {
            message: format!("cannot read the KVM cluster file {}: {e}", path.display()),
            hint: Some("run `nepho register kvm` to write one for this machine".to_string()),
        })?;
        ClusterFile::parse(&src, &path.display().to_string())
    }

    fn check(&self) -> Result<(), String> {
        if self.hosts.is_empty() {
            return Err("`hosts` is empty: declare at least one host".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for h in &self.hosts {
            if !seen.insert(&h.name) {
                return Err(format!("host `{}` is declared twice", h.name));
            }
            if !crate::pattern::is_simple_name(&h.name) {
                return Err(format!("host name `{}`: use letters, digits and -", h.name));
            }
            if !(h.uri.starts_with("qemu:///") || h.uri.starts_with("qemu+ssh://")) {
                return Err(format!(
                    "host `{}`: uri `{}` must be qemu:///system or qemu+ssh://user@host/system",
                    h.name, h.uri
                ));
            }
            if h.cpus == 0 || h.memory_mb == 0 {
                return Err(format!("host `{}`: cpus and memory_mb must be > 0", h.name));
            }
        }
        for n in &self.networks {
            if let Some(pool) = &n.pool {
                crate::net::parse_pool(pool)
                    .map_err(|e| format!("network `{}`: pool: {e}", n.name))?;
            }
        }
        if let Some(l) = &self.storage.lockspace
            && lease_target(l).is_none()
        {
            return Err(format!(
                "storage.lockspace `{}` must be an absolute path below a directory (like /var/lib/nepho/lockspace)",
                l.display()
            ));
        }
        if let Some(i) = &self.storage.iscsi {
            if i.tgtadm != "local" && !i.tgtadm.starts_with("ssh:") {
                return Err(format!(
                    "storage.iscsi.tgtadm `{}` must be `local` or `ssh:user@host`",
                    i.tgtadm
                ));
            }
            if !i.portal.contains(':') {
                return Err(format!(
                    "storage.iscsi.portal `{}` must be host:port",
                    i.portal
                ));
            }
        }
        Ok(())
    }

    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn host_dir(&self, host: &HostConfig) -> PathBuf {
        host.dir.clone().unwrap_or_else(|| self.storage.dir.clone())
    }

    pub fn network(&self, name: &str) -> Option<NetworkConfig> {
        if self.networks.is_empty() {
            // No networks declared: any libvirt network by name.
            return Some(NetworkConfig {
                name: name.to_string(),
                bridge: None,
                vlan: None,
                pool: None,
            });
        }
        self.networks.iter().find(|n| n.name == name).cloned()
    }
}

/// A lockspace directory as libvirt's `<lease>` names it: `<target path>` is the parent
/// directory and `<lockspace>` the last component (lockd locks `<path>/<lockspace>/<key>`).
pub fn lease_target(lockspace: &Path) -> Option<(String, String)> {
    if !lockspace.is_absolute() {
        return None;
    }
    let name = lockspace.file_name()?.to_str()?.to_string();
    let parent = lockspace.parent()?.to_str()?.to_string();
    Some((parent, name))
}

/// The cluster file `nepho register kvm` writes for this machine.
pub fn local_cluster_yaml() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(1024);
    let vcpus = cpus * 4;
    format!(
        r#"# nepho KVM cluster file (written by `nepho register kvm` for this machine).
# hosts: every libvirt host nepho may place machines on, with the capacity it may use.
#   Remote hosts: uri: qemu+ssh://root@host2/system (qemu-img/tgtadm run there over ssh).
#   labels: {{rack: a}} lets a pattern's `labels:` pin machines to matching hosts.
#   cpus: the vCPUs nepho may allocate on the host (here 4 per core: guests rarely keep every
#   vCPU busy); memory_mb is never overcommitted.
hosts:
  - name: local
    uri: qemu:///system
    cpus: {vcpus}
    memory_mb: {memory_mb}
# networks: libvirt networks (name) or host bridges (bridge: br0, optional vlan: 10).
#   pool: 192.168.122.200-192.168.122.250 assigns static addresses (DHCP reservation +
#   nwfilter clean-traffic against address spoofing).
networks:
  - name: default
storage:
  dir: /var/lib/nepho/kvm          # qcow2 overlays, seeds and console logs, per formation
  iscsi:
    portal: 127.0.0.1:3260         # tgtd (scripts/setup/tgtd.sh start)
    iqn_prefix: iqn.2024-01.org.nepho
    tgtadm: local                  # or ssh:root@storage-host
    dir: /var/lib/nepho/iscsi      # LUN backing files on the target host
    allow: 127.0.0.1               # initiators allowed to log in (ALL for every host)
  # lockspace: fencing for iSCSI machines. A directory every host sees (NFS), set as
  #   file_lockspace_dir (with auto_disk_leases = 1) in each host's qemu-lockd.conf and
  #   lock_manager = "lockd" in qemu.conf (scripts/setup/lockd-conf.sh does both): libvirt then
  #   refuses to start a machine's disks on a second host while its QEMU runs on the first.
  # lockspace: /var/lib/nepho/lockspace
# images: name -> qcow2 base image with cloud-init (or the tiny guest's seed contract).
#   Add your own: `debian: /var/lib/nepho/images/debian-12-genericcloud-amd64.qcow2`,
#   then use `image: debian` in a pattern. The file must exist on every host; or let nepho
#   copy it to every host: `nepho image:add debian ./debian.qcow2` (no entry here then).
images:
  tiny: /var/cache/nepho-test/images/tiny-guest.qcow2
# auto: use KVM when a short probe boot works, else QEMU/TCG (with a warning).
domain_type: auto
# placement: which host gets a machine, among those with the vCPUs, memory and labels it needs:
#   least-loaded  the most free memory (of memory_mb) left after nepho's machines (default)
#   first-fit     the first host in the list
#   least-used    the lowest measured usage (virsh nodememstats/nodecpustats: memory really in
#                 use and CPU busy, every process counted) averaged with nepho's allocation
placement: least-loaded
ready_timeout_s: 300
shutdown_timeout_s: 60
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_must_exist_and_carry_vlans_only_when_they_are_ovs() {
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("br0/bridge")).unwrap();
        std::fs::create_dir_all(sys.path().join("ovsbr")).unwrap();
        let net = |bridge: &str, vlan: Option<u16>| NetworkConfig {
            name: "n".into(),
            bridge: Some(bridge.into()),
            vlan,
            pool: None,
        };
        assert_eq!(net("br0", None).check_bridge(sys.path()), Ok(()));
        assert_eq!(net("ovsbr", Some(10)).check_bridge(sys.path()), Ok(()));
        let linux = net("br0", Some(10)).check_bridge(sys.path()).unwrap_err();
        assert!(linux.contains("Open vSwitch"), "{linux}");
        let missing = net("nope", None).check_bridge(sys.path()).unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
    }

    #[test]
    fn the_local_cluster_file_parses() {
        let c = ClusterFile::parse(&local_cluster_yaml(), "t").unwrap();
        assert_eq!(c.hosts[0].uri, "qemu:///system");
        assert!(c.images.contains_key("tiny"));
        assert_eq!(c.storage.iscsi.unwrap().portal, "127.0.0.1:3260");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = ClusterFile::parse(
            "hosts: [{name: a, uri: 'qemu:///system', cpus: 1, memory_mb: 1, colour: red}]",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour"), "{err}");
        let err = ClusterFile::parse("hosts: []\nfoo: 1\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("foo"), "{err}");
    }

    #[test]
    fn lockspace_is_optional_and_absolute() {
        let base = "hosts: [{name: a, uri: 'qemu:///system', cpus: 1, memory_mb: 1}]\n";
        assert_eq!(
            ClusterFile::parse(base, "t").unwrap().storage.lockspace,
            None
        );
        let c = ClusterFile::parse(
            &format!("{base}storage: {{lockspace: /srv/lockd/nepho}}\n"),
            "t",
        )
        .unwrap();
        assert_eq!(c.storage.lockspace, Some(PathBuf::from("/srv/lockd/nepho")));
        let err = ClusterFile::parse(&format!("{base}storage: {{lockspace: lockd}}\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage.lockspace `lockd` must be an absolute path"),
            "{err}"
        );
    }

    #[test]
    fn placement_values() {
        let parse = |p: &str| {
            ClusterFile::parse(
                &format!(
                    "hosts: [{{name: a, uri: 'qemu:///system', cpus: 1, memory_mb: 1}}]\nplacement: {p}\n"
                ),
                "t",
            )
        };
        assert_eq!(parse("least-used").unwrap().placement, Placement::LeastUsed);
        assert_eq!(parse("first-fit").unwrap().placement, Placement::FirstFit);
        assert_eq!(
            parse("least-loaded").unwrap().placement,
            Placement::LeastLoaded
        );
        let err = parse("most-free").unwrap_err().to_string();
        for value in ["most-free", "least-loaded", "first-fit", "least-used"] {
            assert!(err.contains(value), "{err}");
        }
    }

    #[test]
    fn ssh_targets() {
        let h = HostConfig {
            name: "b".into(),
            uri: "qemu+ssh://root@h2/system".into(),
            cpus: 1,
            memory_mb: 1,
            labels: BTreeMap::new(),
            dir: None,
        };
        assert_eq!(
            h.ssh_target().map(|t| t.destination).as_deref(),
            Some("root@h2")
        );
        assert!(!h.is_local());
    }
}
