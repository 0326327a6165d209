//! nepho's native KVM provider: machines from a `patterns/kvm/*.yaml` pattern become libvirt
//! domains on the hosts of a cluster file, with qcow2 overlays or iSCSI LUNs (tgt) as disks
//! and a NoCloud seed handing off to the provisioner. Everything is driven through `virsh`,
//! `qemu-img`, `tgtadm`, `genisoimage` and `ssh` processes; libvirt domain metadata is the
//! only record of what exists.
//!
//! Two layers, dependencies pointing down only:
//! - the provider: processes and files (`cmd`, `remote`, `yaml`), the cluster file and patterns
//!   (`net`, `pattern`, `cluster`, `names`), libvirt and storage (`libvirt`, `storage`), the
//!   shared machine records (`records`), the allocator (`place`), the formation steps (`steps`)
//!   and the machine operations on top of them (`media`, `drives`, `resize`, `nic`, `vnc`,
//!   reached through `MachineOps` in `machine_ops`);
//! - the cluster manager (`manager/`: failover and watch, migrate, rebalance, evacuate,
//!   usage, reached through `ClusterOps`), which uses the provider and is used by nothing in it.

mod cluster;
mod cmd;
mod drives;
mod libvirt;
mod machine_ops;
mod manager;
mod media;
mod names;
mod net;
mod nic;
mod pattern;
mod place;
mod records;
mod remote;
mod resize;
mod steps;
mod storage;
mod vnc;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nepho_provider_api::{
    BoxFuture, ClusterOps, Endpoints, FormationDetails, FormationSpec, FormationState,
    FormationSummary, MachineOps, Plan, PlannedChange, PowerAction, Provider, ProviderError,
    ProviderKind, ResourceStatus, SshEndpoint, Step, StepContext, StepOutcome,
};

// `crate::join_all` for the modules that wait on several machines at once.
use nepho_provider_api::join_all;

pub use cluster::{ClusterFile, local_cluster_yaml};
pub use records::SharedRecord;
// The result types live in the provider API (`MachineOps`, `ClusterOps`); these names are the
// ones callers of the inherent methods below have always used.
pub use nepho_provider_api::{
    AddressUsage, Capacity, ClusterStatus, ClusterUsage, DiskUsage, DriveChange, DriveResize,
    FailoverReport, FailoverResult, HostMachine, HostStatus, MachineOpError, MeasuredUsage,
    MediaChange, MigrateResult, NicChange, RebalanceReport, StorageKind, VncConsole, VncDisplay,
    Watch,
};
pub use vnc::VncForward;

use libvirt::{DiskRecord, FoundDomain};
use pattern::{Pattern, substitute};

/// Where the provider's settings live (written by `nepho register kvm`).
#[derive(Debug, Clone, Default)]
pub struct KvmSettings {
    pub cluster_file: PathBuf,
    /// Where the result of the KVM probe is kept between runs (it boots a guest: ~20 s where
    /// KVM hangs). `None` probes once per process.
    pub probe_cache: Option<PathBuf>,
    /// The image library (`nepho image:add`): name → each host's checked copy. A pattern's
    /// `image:` finds these before the cluster file's `images:`.
    pub library_images: BTreeMap<String, nepho_provider_api::HostCopies>,
    /// Holds the library images a build resolves (the copies it then uses are the held
    /// entry's); `None` uses `library_images` as they are.
    pub image_holds: Option<Arc<dyn nepho_provider_api::ImageHolds>>,
}

pub struct KvmProvider {
    cluster: ClusterFile,
    /// Patterns already parsed, keyed by what parsing reads from the spec (every step of a
    /// run asks for the same one).
    patterns: std::sync::Mutex<Vec<(String, Arc<Pattern>)>>,
    tgt_lock: tokio::sync::Mutex<()>,
    kvm_probe: tokio::sync::OnceCell<bool>,
    probe_cache: Option<PathBuf>,
    library_images: BTreeMap<String, nepho_provider_api::HostCopies>,
    image_holds: Option<Arc<dyn nepho_provider_api::ImageHolds>>,
}

/// Reads and validates the cluster file and checks the tools are installed.
pub async fn connect(settings: &KvmSettings) -> Result<KvmProvider, ProviderError> {
    if !cmd::on_path("virsh") {
        return Err(ProviderError::Unavailable {
            message: "virsh is not installed: the KVM provider drives libvirt through it".into(),
            hint: Some(
                "apt-get install libvirt-clients libvirt-daemon-system qemu-system-x86 (and start libvirtd)"
                    .into(),
            ),
        });
    }
    let cluster = ClusterFile::load(&settings.cluster_file)?;
    let mut provider = KvmProvider::new(cluster)?;
    provider.probe_cache = settings.probe_cache.clone();
    provider.library_images = settings.library_images.clone();
    provider.image_holds = settings.image_holds.clone();
    Ok(provider)
}

impl KvmProvider {
    pub fn new(cluster: ClusterFile) -> Result<KvmProvider, ProviderError> {
        for tool in ["qemu-img", "genisoimage", "ssh", "ssh-keygen"] {
            if !cmd::on_path(tool) {
                return Err(ProviderError::Unavailable {
                    message: format!("{tool} is not installed"),
                    hint: Some(cmd::install_hint(tool).into()),
                });
            }
        }
        Ok(KvmProvider {
            cluster,
            patterns: std::sync::Mutex::new(Vec::new()),
            tgt_lock: tokio::sync::Mutex::new(()),
            kvm_probe: tokio::sync::OnceCell::new(),
            probe_cache: None,
            library_images: BTreeMap::new(),
            image_holds: None,
        })
    }

    pub fn cluster(&self) -> &ClusterFile {
        &self.cluster
    }

    /// The spec's pattern, parsed once per content.
    fn pattern(&self, spec: &FormationSpec) -> Result<Arc<Pattern>, ProviderError> {
        const KEPT: usize = 4;
        let key = Pattern::cache_key(spec);
        let mut patterns = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = patterns.iter().find(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let parsed = Arc::new(Pattern::from_spec(spec)?);
        if patterns.len() == KEPT {
            patterns.remove(0);
        }
        patterns.push((key, parsed.clone()));
        Ok(parsed)
    }

    /// The formation's domains on every reachable host (unreachable hosts are skipped; an
    /// error only when no host answers).
    async fn find_domains(&self, formation: &str) -> Result<Vec<FoundDomain>, ProviderError> {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for host in &self.cluster.hosts {
            match libvirt::nepho_domains(host, Some(formation)).await {
                Ok(d) => found.extend(records::drop_stale(&self.cluster, d).await),
                Err(e) => errors.push(e),
            }
        }
        if errors.len() == self.cluster.hosts.len() {
            return Err(errors.remove(0));
        }
        keep_running_copies(&mut found);
        found.sort_by(|a, b| {
            (!a.record.primary, &a.record.machine).cmp(&(!b.record.primary, &b.record.machine))
        });
        Ok(found)
    }

    /// The formation's machines (or one of them), primary first.
    async fn find_machines(
        &self,
        formation: &str,
        machine: Option<&str>,
    ) -> Result<Vec<FoundDomain>, ProviderError> {
        let found = self.find_domains(formation).await?;
        if found.is_empty() {
            return Err(ProviderError::NotFound(format!(
                "formation {formation} has no machines on the KVM cluster"
            )));
        }
        let selected: Vec<FoundDomain> = found
            .iter()
            .filter(|d| machine.is_none_or(|m| d.record.machine == m))
            .cloned()
            .collect();
        if selected.is_empty() {
            return Err(ProviderError::NotFound(format!(
                "formation {formation} has no machine {} (machines: {})",
                machine.unwrap_or_default(),
                found
                    .iter()
                    .map(|d| d.record.machine.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(selected)
    }

    /// Clean ACPI shutdown; forced off after `shutdown_timeout_s`.
    pub async fn stop(&self, formation: &str, machine: Option<&str>) -> Result<(), ProviderError> {
        let domains = self.find_machines(formation, machine).await?;
        let timeout = Duration::from_secs(self.cluster.shutdown_timeout_s);
        let stops = domains.iter().map(|d| async move {
            if libvirt::domain_state(&d.uri, &d.name).await.as_deref() == Some("shut off") {
                return Ok(());
            }
            let _ = libvirt::virsh_output(&d.uri, &["shutdown", &d.name]).await;
            let started = Instant::now();
            while started.elapsed() < timeout {
                if libvirt::domain_state(&d.uri, &d.name).await.as_deref() == Some("shut off") {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let _ = libvirt::virsh_output(&d.uri, &["destroy", &d.name]).await;
            match libvirt::domain_state(&d.uri, &d.name).await.as_deref() {
                Some("shut off") => Ok(()),
                other => Err(ProviderError::Failed {
                    message: format!("{} did not stop (state {other:?})", d.record.machine),
                    hint: None,
                }),
            }
        });
        join_all(stops).await.into_iter().collect()
    }

    pub async fn start(&self, formation: &str, machine: Option<&str>) -> Result<(), ProviderError> {
        for d in self.find_machines(formation, machine).await? {
            if libvirt::domain_state(&d.uri, &d.name).await.as_deref() != Some("running") {
                libvirt::virsh(&d.uri, &["start", &d.name]).await?;
            }
        }
        Ok(())
    }

    /// Hard reset (like the reset button); stopped machines are started.
    pub async fn reset(&self, formation: &str, machine: Option<&str>) -> Result<(), ProviderError> {
        for d in self.find_machines(formation, machine).await? {
            if libvirt::domain_state(&d.uri, &d.name).await.as_deref() == Some("running") {
                libvirt::virsh(&d.uri, &["reset", &d.name]).await?;
            } else {
                libvirt::virsh(&d.uri, &["start", &d.name]).await?;
            }
        }
        Ok(())
    }

    pub async fn cluster_status(&self) -> Result<ClusterStatus, ProviderError> {
        let loads = place::measured_host_loads(&self.cluster).await;
        Ok(ClusterStatus {
            hosts: loads.iter().map(HostStatus::from).collect(),
        })
    }

    /// Restarts on other hosts the machines of an unreachable host whose disks are all on
    /// shared iSCSI storage (see `failover.rs` for where their definitions come from);
    /// reports every machine that was on the host: moved (where, address), not movable (why),
    /// no room (the allocator's explanation) or failed.
    pub async fn failover(&self, host: &str) -> Result<Vec<FailoverResult>, ProviderError> {
        self.failover_host(host).await
    }

    async fn address_of(&self, d: &FoundDomain) -> Option<String> {
        if let Some(ip) = d.record.nics.first().and_then(|n| n.ip.clone()) {
            return Some(ip);
        }
        if let Some(ip) = libvirt::address(&d.uri, &d.name).await {
            return Some(ip);
        }
        self.lease_elsewhere(d).await
    }

    /// The DHCP lease of the machine's first NIC held by another host's network of the same
    /// name: a network that spans the hosts (a bridge, as live migration needs) has one DHCP
    /// server, which need not be on the host the machine runs on now.
    async fn lease_elsewhere(&self, d: &FoundDomain) -> Option<String> {
        let nic = d.record.nics.first()?;
        let network = nic.libvirt_network.as_deref()?;
        // Where the machine's host serves the network itself, its leases are the only truth
        // (another host's network of that name is another subnet, with stale leases).
        let here = libvirt::virsh_output(&d.uri, &["net-dumpxml", network])
            .await
            .ok()?;
        if !here.success || net::serves_subnet(&here.stdout) {
            return None;
        }
        for host in self.cluster.hosts.iter().filter(|h| h.uri != d.uri) {
            let Ok(out) =
                libvirt::virsh_output(&host.uri, &["net-dhcp-leases", network, "--mac", &nic.mac])
                    .await
            else {
                continue;
            };
            if let Some((_, ip)) = net::parse_leases(&out.stdout)
                .into_iter()
                .find(|(mac, _)| mac.eq_ignore_ascii_case(&nic.mac))
            {
                return Some(ip);
            }
        }
        None
    }

    async fn addresses(&self, found: &[FoundDomain]) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for d in found {
            if d.state == "running"
                && let Some(a) = self.address_of(d).await
            {
                map.insert(d.record.machine.clone(), a);
            }
        }
        map
    }

    fn outputs_from(
        found: &[FoundDomain],
        addresses: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let Some(first) = found.first() else {
            return BTreeMap::new();
        };
        let names: Vec<String> = found.iter().map(|d| d.record.machine.clone()).collect();
        let address_of = |r: &str| -> Option<String> {
            let name = if names.iter().any(|n| n == r) {
                r.to_string()
            } else {
                format!("{r}-1")
            };
            addresses.get(&name).cloned()
        };
        first
            .record
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), substitute(v, &address_of)))
            .collect()
    }
}

/// During a live migration a machine is on two hosts for a moment (running on one, paused on
/// the other): the running copy is the one that answers, the other is left out.
fn keep_running_copies(found: &mut Vec<FoundDomain>) {
    let running: Vec<String> = found
        .iter()
        .filter(|d| d.state == "running")
        .map(|d| d.name.clone())
        .collect();
    found.retain(|d| d.state == "running" || !running.contains(&d.name));
}

fn state_of(found: &[FoundDomain]) -> (FormationState, Option<String>) {
    let running = found.iter().filter(|d| d.state == "running").count();
    if found.iter().any(|d| d.state == "crashed") {
        return (FormationState::Failed, Some("a machine crashed".into()));
    }
    match running {
        0 => (FormationState::Stopped, None),
        n if n == found.len() => (FormationState::Running, None),
        n => (
            FormationState::Running,
            Some(format!("{n} of {} machines running", found.len())),
        ),
    }
}

impl Provider for KvmProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Kvm
    }

    fn validate<'a>(&'a self, spec: &'a FormationSpec) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let pattern = self.pattern(spec)?;
            for m in &pattern.machines {
                let local = self.cluster.hosts.iter().all(|h| h.is_local());
                for host in &self.cluster.hosts {
                    let image = self.image_on(&m.image, host)?;
                    if local && !image.exists() {
                        return Err(ProviderError::Invalid {
                            message: format!(
                                "image `{}` ({}) does not exist",
                                m.image,
                                image.display()
                            ),
                            hint: Some(if self.library_images.contains_key(&m.image) {
                                "run `nepho cluster:sync` to copy the library to every host again"
                                    .into()
                            } else {
                                "build it (scripts/images/build-tiny-guest.sh) or fix `images:` in the cluster file".into()
                            }),
                        });
                    }
                }
                for n in &m.networks {
                    let Some(network) = self.cluster.network(n) else {
                        return Err(ProviderError::Invalid {
                            message: format!(
                                "machine {}: network `{n}` is not in the cluster file",
                                m.name
                            ),
                            hint: None,
                        });
                    };
                    if local {
                        network
                            .check_bridge(std::path::Path::new("/sys/class/net"))
                            .map_err(|message| ProviderError::Invalid {
                                message,
                                hint: Some("fix `networks:` in the cluster file".into()),
                            })?;
                    }
                }
            }
            if let Some(p) = &spec.provisioner
                && !p.exists()
            {
                return Err(ProviderError::Invalid {
                    message: format!("provisioner {} does not exist", p.display()),
                    hint: None,
                });
            }
            steps::create_plan(&self.cluster, &pattern).map(|_| ())
        })
    }

    fn plan_create<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move {
            self.validate(spec).await?;
            steps::create_plan(&self.cluster, &*self.pattern(spec)?)
        })
    }

    /// Creates what is missing (every step is idempotent), runs the provisioner again on the
    /// machines that already run when it changed, and removes machines the pattern no longer
    /// has.
    fn plan_update<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move {
            self.validate(spec).await?;
            let pattern = self.pattern(spec)?;
            let mut plan = steps::create_plan(&self.cluster, &pattern)?;
            let (kept, gone): (Vec<FoundDomain>, Vec<FoundDomain>) = self
                .find_domains(&spec.name)
                .await?
                .into_iter()
                .partition(|d| pattern.machine(&d.record.machine).is_some());
            // Machines that already run get their provisioner again when it changed.
            let mut running: Vec<String> = kept.into_iter().map(|d| d.record.machine).collect();
            running.sort();
            running.dedup();
            plan.steps
                .extend(steps::provision_steps(&pattern, &running));
            let removal = steps::destroy_plan(&spec.name, &gone, vec![]);
            plan.steps
                .extend(removal.steps.into_iter().filter(|s| s.id.0 != "cleanup"));
            Ok(plan)
        })
    }

    fn plan_destroy<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move {
            let found = self.find_domains(formation).await?;
            let mut keys: Vec<PathBuf> = found.iter().map(|d| d.record.key.clone()).collect();
            keys.sort();
            keys.dedup();
            Ok(steps::destroy_plan(formation, &found, keys))
        })
    }

    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepOutcome, ProviderError>> {
        Box::pin(self.run(step, cx))
    }

    fn undo_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.undo(step, cx))
    }

    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<FormationSummary>, ProviderError>> {
        Box::pin(async move {
            let loads = place::host_loads(&self.cluster).await;
            if loads.iter().all(|l| !l.reachable()) {
                return Err(ProviderError::Unavailable {
                    message: format!(
                        "no KVM host answers: {}",
                        loads
                            .iter()
                            .filter_map(|l| l.error.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    hint: Some("is libvirtd running? (scripts/setup/daemons.sh)".into()),
                });
            }
            let mut by_formation: BTreeMap<String, Vec<FoundDomain>> = BTreeMap::new();
            for d in loads.into_iter().flat_map(|l| l.domains) {
                by_formation
                    .entry(d.record.formation.clone())
                    .or_default()
                    .push(d);
            }
            Ok(by_formation
                .into_iter()
                .map(|(name, found)| {
                    let (state, status_reason) = state_of(&found);
                    FormationSummary {
                        name,
                        provider: ProviderKind::Kvm,
                        cloudlet: Some(found[0].record.cloudlet.clone()),
                        scenario: Some(found[0].record.scenario.clone()),
                        state,
                        status_reason,
                    }
                })
                .collect())
        })
    }

    fn describe<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<FormationDetails, ProviderError>> {
        Box::pin(async move {
            let found = self.find_machines(formation, None).await?;
            let addresses = self.addresses(&found).await;
            let mut resources = Vec::new();
            for d in &found {
                let address = addresses.get(&d.record.machine);
                resources.push(ResourceStatus {
                    resource: d.record.machine.clone(),
                    kind: "machine".into(),
                    status: d.state.clone(),
                    reason: Some(format!(
                        "host {}, {} vCPU, {} MiB{}",
                        d.host,
                        d.record.cpus,
                        d.record.memory_mb,
                        address
                            .map(|a| format!(", address {a}"))
                            .unwrap_or_default()
                    )),
                    id: Some(d.name.clone()),
                });
                for (i, disk) in d.record.disks.iter().enumerate() {
                    let (kind, id) = match disk {
                        DiskRecord::File { path } => ("disk", path.display().to_string()),
                        DiskRecord::Lun { iqn, lun, .. } => ("iscsi-lun", format!("{iqn}/{lun}")),
                    };
                    resources.push(ResourceStatus {
                        resource: format!("{}/disk{i}", d.record.machine),
                        kind: kind.into(),
                        status: "attached".into(),
                        reason: None,
                        id: Some(id),
                    });
                }
            }
            let (state, status_reason) = state_of(&found);
            Ok(FormationDetails {
                summary: FormationSummary {
                    name: formation.to_string(),
                    provider: ProviderKind::Kvm,
                    cloudlet: Some(found[0].record.cloudlet.clone()),
                    scenario: Some(found[0].record.scenario.clone()),
                    state,
                    status_reason,
                },
                resources,
                outputs: Self::outputs_from(&found, &addresses),
                recent_events: Vec::new(),
            })
        })
    }

    fn preview<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Vec<PlannedChange>, ProviderError>> {
        Box::pin(async move {
            self.validate(spec).await?;
            let pattern = self.pattern(spec)?;
            let existing = self.find_domains(&spec.name).await.unwrap_or_default();
            let mut changes = Vec::new();
            let add = |resource: String, kind: &str, details: String| PlannedChange {
                action: "add".into(),
                resource,
                kind: kind.into(),
                replacement: None,
                details: Some(details),
            };
            for m in &pattern.machines {
                if let Some(d) = existing.iter().find(|d| d.record.machine == m.name) {
                    // An update keeps a running machine as it is: say so when the pattern now
                    // asks for another size, rather than pretend it will be resized.
                    let mut differs = Vec::new();
                    if d.record.cpus != m.cpus {
                        differs.push(format!("vCPU {} -> {}", d.record.cpus, m.cpus));
                    }
                    if d.record.memory_mb != m.memory_mb {
                        differs.push(format!(
                            "memory {} -> {} MiB",
                            d.record.memory_mb, m.memory_mb
                        ));
                    }
                    if !differs.is_empty() {
                        changes.push(PlannedChange {
                            action: "modify".into(),
                            resource: m.name.clone(),
                            kind: "machine".into(),
                            replacement: Some("destroy and create to apply".into()),
                            details: Some(format!(
                                "{} (an update keeps the running machine as it is)",
                                differs.join(", ")
                            )),
                        });
                    }
                    continue;
                }
                changes.push(add(
                    m.name.clone(),
                    "machine",
                    format!(
                        "{} vCPU, {} MiB, image {}, networks {}",
                        m.cpus,
                        m.memory_mb,
                        m.image,
                        m.networks.join(",")
                    ),
                ));
                for (i, d) in m.disks.iter().enumerate() {
                    let what = match (i, d.storage) {
                        (0, StorageKind::Qcow2) => "qcow2 overlay of the image (boot)",
                        (0, StorageKind::Iscsi) => "iSCSI LUN with a copy of the image (boot)",
                        (_, StorageKind::Qcow2) => "empty qcow2 volume",
                        (_, StorageKind::Iscsi) => "empty iSCSI LUN",
                    };
                    changes.push(add(
                        format!("{}/disk{i}", m.name),
                        "disk",
                        format!("{} GiB, {what}", d.size_gb),
                    ));
                }
                changes.push(add(
                    format!("{}/seed", m.name),
                    "seed",
                    "cloud-init NoCloud seed ISO".into(),
                ));
            }
            for d in &existing {
                if pattern.machine(&d.record.machine).is_none() {
                    changes.push(PlannedChange {
                        action: "remove".into(),
                        resource: d.record.machine.clone(),
                        kind: "machine".into(),
                        replacement: None,
                        details: Some(format!("on host {}", d.host)),
                    });
                }
            }
            Ok(changes)
        })
    }

    fn endpoints<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Endpoints, ProviderError>> {
        Box::pin(async move {
            // A machine caught in a live migration's switch-over (paused on both hosts, or
            // gone from the host it was listed on before its address was asked) is looked
            // for again, for as long as a switch-over takes: `nepho ssh` keeps working
            // while machines move.
            let deadline = Instant::now() + Duration::from_secs(10);
            let (found, addresses) = loop {
                let found = self.find_machines(formation, None).await?;
                let addresses = self.addresses(&found).await;
                let mut moving = false;
                for d in found
                    .iter()
                    .filter(|d| !addresses.contains_key(&d.record.machine))
                {
                    moving |= libvirt::in_switch_over(d).await;
                }
                if !moving || Instant::now() >= deadline {
                    break (found, addresses);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let ssh = found
                .iter()
                .filter_map(|d| {
                    Some(SshEndpoint {
                        machine: d.record.machine.clone(),
                        host: addresses.get(&d.record.machine)?.clone(),
                        port: 22,
                        user: d.record.ssh_user.clone(),
                        identity_file: Some(d.record.key.clone()),
                        options: steps::host_key_options(&d.record.key)
                            .into_iter()
                            .chain(["LogLevel=ERROR".into(), "IdentitiesOnly=yes".into()])
                            .collect(),
                    })
                })
                .collect();
            let outputs = Self::outputs_from(&found, &addresses);
            Ok(Endpoints {
                ssh,
                url: outputs.get("url").filter(|u| !u.contains("${")).cloned(),
                outputs,
            })
        })
    }

    fn power<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        action: PowerAction,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            MachineOps::power(self, formation, machine, action)
                .await
                .map_err(ProviderError::from)
        })
    }

    fn machines(&self) -> Option<&dyn MachineOps> {
        Some(self)
    }

    fn library(&self) -> Option<&dyn nepho_provider_api::LibraryOps> {
        Some(self)
    }

    fn cluster(&self) -> Option<&dyn ClusterOps> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use nepho_provider_api::RenderedFile;

    use super::*;

    fn spec(pattern: &str) -> FormationSpec {
        FormationSpec {
            name: "f".into(),
            cloudlet: "c".into(),
            scenario: "default".into(),
            provider: ProviderKind::Kvm,
            pattern: vec![RenderedFile {
                name: "machines.yaml".into(),
                contents: pattern.into(),
            }],
            parameters: serde_json::Map::new(),
            secret_keys: BTreeSet::new(),
            provisioner: None,
            payload_dir: None,
            v1: false,
            work_dir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn a_pattern_is_parsed_once_per_content() {
        let cluster = ClusterFile::parse(&local_cluster_yaml(), "test").unwrap();
        let Ok(kvm) = KvmProvider::new(cluster) else {
            eprintln!("skipped: the KVM tools are not installed");
            return;
        };
        let one = "machines:\n  - name: web\n    image: tiny\n";
        let first = kvm.pattern(&spec(one)).unwrap();
        let again = kvm.pattern(&spec(one)).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other = kvm
            .pattern(&spec("machines:\n  - name: db\n    image: tiny\n"))
            .unwrap();
        assert_eq!(other.machines[0].name, "db");
        // A secret_env naming a parameter the spec lacks is still refused, not cached.
        let secret = "machines:\n  - name: web\n    image: tiny\n    secret_env: [pw]\n";
        assert!(kvm.pattern(&spec(secret)).is_err());
        let mut with_pw = spec(secret);
        with_pw.parameters.insert("pw".into(), "x".into());
        assert!(kvm.pattern(&with_pw).is_ok());
        assert!(kvm.pattern(&spec(secret)).is_err());
    }

    #[test]
    fn a_machine_caught_mid_migration_is_its_running_copy() {
        let domain = |host: &str, name: &str, state: &str| FoundDomain {
            host: host.into(),
            uri: format!("qemu:///{host}"),
            name: name.into(),
            state: state.into(),
            record: libvirt::MachineRecord {
                formation: "f".into(),
                cloudlet: "c".into(),
                scenario: "s".into(),
                machine: name.trim_start_matches("nepho-f-").into(),
                primary: false,
                host: host.into(),
                cpus: 1,
                memory_mb: 256,
                disks: vec![],
                seed: "/s.iso".into(),
                console_log: "/c.log".into(),
                key: "/k".into(),
                ssh_user: "root".into(),
                outputs: BTreeMap::new(),
                nics: vec![],
                swap: None,
                base_image: None,
            },
        };
        let mut found = vec![
            domain("h1", "nepho-f-web", "paused"),
            domain("h2", "nepho-f-web", "running"),
            domain("h1", "nepho-f-db", "shut off"),
        ];
        keep_running_copies(&mut found);
        let kept: Vec<(&str, &str)> = found
            .iter()
            .map(|d| (d.host.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(kept, [("h2", "nepho-f-web"), ("h1", "nepho-f-db")]);
    }
}
