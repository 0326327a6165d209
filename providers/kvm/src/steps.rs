//! The steps of a KVM formation: `keypair`, `place`, then per machine `disk-<m>`, `seed-<m>`,
//! `domain-<m>`, `ready-<m>`, and `outputs`; destroy is `destroy-<m>` + `cleanup`. Every step
//! is idempotent and re-derives names and paths from the formation, so a re-run after a crash
//! finds its own work.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nepho_provider_api::{
    EventKind, EventStatus, FormationSpec, Plan, ProviderError, Step, StepContext, StepId,
    StepOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::KvmProvider;
use crate::cluster::{ClusterFile, HostConfig};
use crate::cmd::{self, shell_quote};
use crate::libvirt::{self, DiskRecord, DomainSpec, MachineRecord, NicRecord, SwapRecord};
use crate::names::{domain_name, formation_dir, iqn, iqn_formation};
use crate::net;
use crate::pattern::{Machine, Pattern, StorageKind, substitute};
use crate::place;
use crate::storage::{self, Runner, Tgt};

// ---- names and paths ---------------------------------------------------------------------------

pub fn key_path(work_dir: &Path) -> PathBuf {
    work_dir.join("id_ed25519")
}

fn local_seed(work_dir: &Path, machine: &str) -> PathBuf {
    work_dir.join("seeds").join(format!("{machine}.iso"))
}

/// The machine's swap file on `host` (local storage), if the pattern asks for swap.
pub fn swap_record(
    cluster: &ClusterFile,
    host: &HostConfig,
    formation: &str,
    m: &Machine,
) -> Option<SwapRecord> {
    (m.swap_mb > 0).then(|| SwapRecord {
        path: formation_dir(cluster, host, formation).join(format!("{}-swap.raw", m.name)),
        size_mb: m.swap_mb,
    })
}

/// Every disk of a machine on `host`, as the domain will reference it.
pub fn disk_records(
    cluster: &ClusterFile,
    host: &HostConfig,
    formation: &str,
    m: &Machine,
) -> Vec<DiskRecord> {
    let dir = formation_dir(cluster, host, formation);
    m.disks
        .iter()
        .enumerate()
        .map(|(i, d)| match (d.storage, &cluster.storage.iscsi) {
            (StorageKind::Iscsi, Some(iscsi)) => DiskRecord::Lun {
                iqn: iqn(cluster, formation, &m.name).unwrap_or_default(),
                lun: i as u32 + 1,
                portal: iscsi.portal.clone(),
                file: iscsi
                    .dir
                    .join(formation)
                    .join(format!("{}-disk{i}.raw", m.name)),
            },
            _ => DiskRecord::File {
                path: dir.join(format!("{}-disk{i}.qcow2", m.name)),
            },
        })
        .collect()
}

fn record_for(
    provider: &KvmProvider,
    spec: &FormationSpec,
    pattern: &Pattern,
    m: &Machine,
    host: &HostConfig,
    ips: &BTreeMap<String, String>,
) -> MachineRecord {
    let cluster = &provider.cluster;
    let dir = formation_dir(cluster, host, &spec.name);
    let nics = m
        .networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let net = cluster.network(n).unwrap_or(crate::cluster::NetworkConfig {
                name: n.clone(),
                bridge: None,
                vlan: None,
                pool: None,
            });
            NicRecord {
                network: n.clone(),
                libvirt_network: net.bridge.is_none().then(|| net.name.clone()),
                bridge: net.bridge.clone(),
                vlan: net.vlan,
                mac: net::mac_for(&spec.name, &m.name, i),
                ip: if i == 0 {
                    ips.get(&m.name).cloned()
                } else {
                    None
                },
            }
        })
        .collect();
    MachineRecord {
        formation: spec.name.clone(),
        cloudlet: spec.cloudlet.clone(),
        scenario: spec.scenario.clone(),
        machine: m.name.clone(),
        primary: m.primary,
        host: host.name.clone(),
        cpus: m.cpus,
        memory_mb: m.memory_mb,
        disks: disk_records(cluster, host, &spec.name, m),
        seed: dir.join(format!("{}-seed.iso", m.name)),
        console_log: dir.join(format!("{}-console.log", m.name)),
        key: key_path(&spec.work_dir),
        ssh_user: pattern.ssh_user(),
        outputs: pattern.outputs.clone(),
        nics,
        swap: swap_record(cluster, host, &spec.name, m),
        base_image: provider.image_on(&m.image, host).ok(),
    }
}

// ---- plans -------------------------------------------------------------------------------------

/// What a step does, as it is journaled in [`Step::action`] (`{"op": "disk", "machine": "web"}`).
/// The JSON is the one plans have always had, so a journal written by an older nepho resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Action {
    Keypair,
    Place,
    Disk {
        machine: String,
    },
    Seed {
        machine: String,
    },
    Domain {
        machine: String,
    },
    Ready {
        machine: String,
    },
    /// `formation:update` on a machine that already runs: the provisioner again, when it or
    /// its environment changed since it last ran there.
    Provision {
        machine: String,
    },
    Outputs,
    DestroyMachine {
        #[serde(default)]
        domain: String,
        #[serde(default)]
        host: String,
        record: Box<MachineRecord>,
    },
    Cleanup {
        #[serde(default)]
        formation: String,
        #[serde(default)]
        keys: Vec<PathBuf>,
    },
}

impl Action {
    pub fn of(step: &Step) -> Result<Action, ProviderError> {
        serde_json::from_value(step.action.clone())
            .map_err(|e| failed(format!("step {}: unknown KVM step action: {e}", step.id)))
    }
}

/// `formation:update`'s provision steps for `machines` (which already run): each after the
/// machine is ready and after the machines its environment names, before the outputs.
pub fn provision_steps(pattern: &Pattern, machines: &[String]) -> Vec<Step> {
    machines
        .iter()
        .filter_map(|name| pattern.machine(name))
        .map(|m| {
            let mut deps = vec![format!("ready-{}", m.name)];
            deps.extend(
                pattern
                    .env_dependencies(m)
                    .into_iter()
                    .map(|d| format!("ready-{d}")),
            );
            step(
                format!("provision-{}", m.name),
                format!("run the provisioner of {} again if it changed", m.name),
                deps,
                Action::Provision {
                    machine: m.name.clone(),
                },
            )
        })
        .collect()
}

fn step(id: String, description: String, depends_on: Vec<String>, action: Action) -> Step {
    Step {
        id: StepId(id),
        description,
        depends_on: depends_on.into_iter().map(StepId).collect(),
        action: serde_json::to_value(&action).expect("actions serialize"),
    }
}

pub fn create_plan(cluster: &ClusterFile, pattern: &Pattern) -> Result<Plan, ProviderError> {
    let mut steps = vec![
        step(
            "keypair".into(),
            "create the formation's ssh key pair".into(),
            vec![],
            Action::Keypair,
        ),
        step(
            "place".into(),
            format!(
                "place {} machine(s) on the cluster's hosts",
                pattern.machines.len()
            ),
            vec![],
            Action::Place,
        ),
    ];
    for m in &pattern.machines {
        let n = &m.name;
        let disks: Vec<String> = m
            .disks
            .iter()
            .map(|d| {
                format!(
                    "{} GiB {}",
                    d.size_gb,
                    match d.storage {
                        StorageKind::Qcow2 => "qcow2",
                        StorageKind::Iscsi => "iSCSI",
                    }
                )
            })
            .collect();
        if m.disks.iter().any(|d| d.storage == StorageKind::Iscsi)
            && cluster.storage.iscsi.is_none()
        {
            return Err(ProviderError::Invalid {
                message: format!(
                    "machine {n} has an iSCSI disk but the cluster file has no storage.iscsi"
                ),
                hint: None,
            });
        }
        steps.push(step(
            format!("disk-{n}"),
            format!("create disks of {n} ({})", disks.join(", ")),
            vec!["place".into()],
            Action::Disk { machine: n.clone() },
        ));
        let mut seed_deps = vec!["keypair".to_string(), "place".to_string()];
        seed_deps.extend(
            pattern
                .env_dependencies(m)
                .into_iter()
                .map(|d| format!("ready-{d}")),
        );
        steps.push(step(
            format!("seed-{n}"),
            format!("build the cloud-init seed of {n}"),
            seed_deps,
            Action::Seed { machine: n.clone() },
        ));
        steps.push(step(
            format!("domain-{n}"),
            format!(
                "define and start {n} ({} vCPU, {} MiB)",
                m.cpus, m.memory_mb
            ),
            vec![format!("disk-{n}"), format!("seed-{n}")],
            Action::Domain { machine: n.clone() },
        ));
        steps.push(step(
            format!("ready-{n}"),
            format!("wait for {n}: address, ssh, provisioner"),
            vec![format!("domain-{n}")],
            Action::Ready { machine: n.clone() },
        ));
    }
    steps.push(step(
        "outputs".into(),
        "record the formation's outputs".into(),
        pattern
            .machines
            .iter()
            .map(|m| format!("ready-{}", m.name))
            .collect(),
        Action::Outputs,
    ));
    let plan = Plan { steps };
    plan.validate().map_err(|e| ProviderError::Invalid {
        message: format!("the machines' env references form a loop: {e}"),
        hint: Some("a machine cannot need the address of a machine that needs its own".into()),
    })?;
    Ok(plan)
}

pub fn destroy_plan(formation: &str, found: &[libvirt::FoundDomain], keys: Vec<PathBuf>) -> Plan {
    let mut steps: Vec<Step> = found
        .iter()
        .map(|d| {
            step(
                format!("destroy-{}", d.record.machine),
                format!("remove machine {} from host {}", d.record.machine, d.host),
                vec![],
                Action::DestroyMachine {
                    domain: d.name.clone(),
                    host: d.host.clone(),
                    record: Box::new(d.record.clone()),
                },
            )
        })
        .collect();
    let deps = steps.iter().map(|s| s.id.0.clone()).collect();
    steps.push(step(
        "cleanup".into(),
        format!("remove what is left of {formation}: disks, LUNs, seeds, keys"),
        deps,
        Action::Cleanup {
            formation: formation.to_string(),
            keys,
        },
    ));
    Plan { steps }
}

// ---- running steps -----------------------------------------------------------------------------

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::Failed {
        message: message.into(),
        hint: None,
    }
}

fn machine_of<'p>(pattern: &'p Pattern, name: &str) -> Result<&'p Machine, ProviderError> {
    pattern
        .machine(name)
        .ok_or_else(|| failed(format!("machine {name} is not in the pattern any more")))
}

fn done(already_done: bool, outputs: BTreeMap<String, Value>) -> StepOutcome {
    StepOutcome {
        already_done,
        outputs,
    }
}

impl KvmProvider {
    /// The host a machine was placed on (from the `place` step, else where its domain is).
    async fn host_of(
        &self,
        cx: &StepContext<'_>,
        machine: &str,
    ) -> Result<HostConfig, ProviderError> {
        let placed = cx
            .outputs
            .get(&StepId::from("place"))
            .and_then(|o| o.get("hosts"))
            .and_then(|h| h.get(machine))
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = match placed {
            Some(h) => h,
            None => self
                .find_domains(&cx.spec.name)
                .await?
                .into_iter()
                .find(|d| d.record.machine == machine)
                .map(|d| d.host)
                .ok_or_else(|| failed(format!("no placement for {machine}: run `place` first")))?,
        };
        self.cluster
            .host(&name)
            .cloned()
            .ok_or_else(|| failed(format!("host {name} is not in the cluster file")))
    }

    fn ips_of(cx: &StepContext<'_>) -> BTreeMap<String, String> {
        cx.outputs
            .get(&StepId::from("place"))
            .and_then(|o| o.get("ips"))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    pub(crate) async fn run(
        &self,
        step: &Step,
        cx: StepContext<'_>,
    ) -> Result<StepOutcome, ProviderError> {
        let (action, pattern) = match Action::of(step)? {
            Action::DestroyMachine { domain, record, .. } => {
                let existed = self.remove_machine(&record, &domain).await?;
                return Ok(done(!existed, BTreeMap::new()));
            }
            Action::Cleanup { formation, keys } => {
                return self.cleanup_step(&cx, &formation, keys).await;
            }
            action => (action, self.pattern(cx.spec)?),
        };
        match action {
            Action::Keypair => self.keypair(cx.spec).await,
            Action::Place => self.place_step(cx.spec, &pattern).await,
            Action::Disk { machine } => self.disk(&cx, machine_of(&pattern, &machine)?).await,
            Action::Seed { machine } => {
                self.seed(&cx, &pattern, machine_of(&pattern, &machine)?)
                    .await
            }
            Action::Domain { machine } => {
                self.domain(&cx, &pattern, machine_of(&pattern, &machine)?)
                    .await
            }
            Action::Ready { machine } => {
                self.ready(&cx, &pattern, machine_of(&pattern, &machine)?)
                    .await
            }
            Action::Provision { machine } => {
                self.provision(&cx, &pattern, machine_of(&pattern, &machine)?)
                    .await
            }
            Action::Outputs => Ok(self.outputs_step(&cx, &pattern)),
            Action::DestroyMachine { .. } | Action::Cleanup { .. } => {
                unreachable!("destroy steps are run above")
            }
        }
    }

    async fn keypair(&self, spec: &FormationSpec) -> Result<StepOutcome, ProviderError> {
        let key = key_path(&spec.work_dir);
        let public = key.with_extension("pub");
        if key.exists() && public.exists() {
            return Ok(done(true, BTreeMap::from([("key".into(), json!(key))])));
        }
        tokio::fs::create_dir_all(&spec.work_dir)
            .await
            .map_err(|e| cmd::io_failed(&spec.work_dir, e))?;
        let _ = tokio::fs::remove_file(&key).await;
        let _ = tokio::fs::remove_file(&public).await;
        cmd::check(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("nepho-{}", spec.name),
                "-f",
                &key.to_string_lossy(),
            ],
            Duration::from_secs(30),
        )
        .await?;
        Ok(done(false, BTreeMap::from([("key".into(), json!(key))])))
    }

    async fn place_step(
        &self,
        spec: &FormationSpec,
        pattern: &Pattern,
    ) -> Result<StepOutcome, ProviderError> {
        let loads = place::host_loads(&self.cluster).await;
        let hosts = place::place(&self.cluster, &loads, &spec.name, &pattern.machines).map_err(
            |message| ProviderError::Invalid {
                message,
                hint: Some(
                    "add capacity to the cluster file, free hosts, or make the machines smaller"
                        .into(),
                ),
            },
        )?;
        let leased = self.leased_addresses(spec, pattern, &hosts).await;
        let ips = self.assign_ips(spec, pattern, &loads, &leased)?;
        let existing = loads
            .iter()
            .flat_map(|l| &l.domains)
            .any(|d| d.record.formation == spec.name);
        Ok(done(
            existing,
            BTreeMap::from([("hosts".into(), json!(hosts)), ("ips".into(), json!(ips))]),
        ))
    }

    /// Addresses of the pool networks that dnsmasq has leased to other MACs than the machine's
    /// own: a lease outlives its domain (up to an hour), and dnsmasq will not hand a leased
    /// address to a new MAC even when it is reserved for it.
    async fn leased_addresses(
        &self,
        spec: &FormationSpec,
        pattern: &Pattern,
        hosts: &BTreeMap<String, String>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut leased: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut asked: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        for m in &pattern.machines {
            let Some(network) = m.networks.first().and_then(|n| self.cluster.network(n)) else {
                continue;
            };
            let (Some(_), None) = (&network.pool, &network.bridge) else {
                continue;
            };
            let Some(host) = hosts.get(&m.name).and_then(|h| self.cluster.host(h)) else {
                continue;
            };
            let key = (host.uri.clone(), network.name.clone());
            if !asked.contains_key(&key) {
                let out = libvirt::virsh(&host.uri, &["net-dhcp-leases", &network.name])
                    .await
                    .unwrap_or_default();
                asked.insert(key.clone(), net::parse_leases(&out));
            }
            let own_mac = net::mac_for(&spec.name, &m.name, 0);
            leased.insert(
                m.name.clone(),
                asked[&key]
                    .iter()
                    .filter(|(mac, _)| !mac.eq_ignore_ascii_case(&own_mac))
                    .map(|(_, ip)| ip.clone())
                    .collect(),
            );
        }
        leased
    }

    /// Static addresses from the first network's pool, skipping addresses in use (by nepho's
    /// machines, or leased to another MAC).
    fn assign_ips(
        &self,
        spec: &FormationSpec,
        pattern: &Pattern,
        loads: &[place::HostLoad],
        leased: &BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let mut ips = BTreeMap::new();
        let mut used: Vec<String> = Vec::new();
        for d in loads.iter().flat_map(|l| &l.domains) {
            for nic in &d.record.nics {
                if let Some(ip) = &nic.ip {
                    if d.record.formation == spec.name {
                        ips.insert(d.record.machine.clone(), ip.clone());
                    }
                    used.push(ip.clone());
                }
            }
        }
        for m in &pattern.machines {
            if ips.contains_key(&m.name) {
                continue;
            }
            let Some(pool) = m
                .networks
                .first()
                .and_then(|n| self.cluster.network(n))
                .and_then(|n| n.pool)
            else {
                continue;
            };
            let free = net::parse_pool(&pool)
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.to_string())
                .find(|a| !used.contains(a) && !leased.get(&m.name).is_some_and(|l| l.contains(a)))
                .ok_or_else(|| ProviderError::Invalid {
                    message: format!("address pool {pool} is exhausted (machine {})", m.name),
                    hint: None,
                })?;
            used.push(free.clone());
            ips.insert(m.name.clone(), free);
        }
        Ok(ips)
    }

    async fn disk(&self, cx: &StepContext<'_>, m: &Machine) -> Result<StepOutcome, ProviderError> {
        let host = self.host_of(cx, &m.name).await?;
        let runner = Runner::for_host(&host);
        let image = self.image_on(&m.image, &host)?;
        let records = disk_records(&self.cluster, &host, &cx.spec.name, m);
        let mut created = false;
        runner
            .mkdir(&formation_dir(&self.cluster, &host, &cx.spec.name))
            .await?;
        for (i, (disk, record)) in m.disks.iter().zip(&records).enumerate() {
            let base = (i == 0).then_some(image.as_path());
            match record {
                DiskRecord::File { path } => {
                    created |= storage::create_qcow2(&runner, path, base, disk.size_gb).await?;
                }
                DiskRecord::Lun { iqn, lun, file, .. } => {
                    let iscsi = self
                        .cluster
                        .storage
                        .iscsi
                        .as_ref()
                        .expect("checked by the plan");
                    let tgt = Tgt::new(iscsi);
                    if let Some(dir) = file.parent() {
                        tgt.runner.mkdir(dir).await?;
                    }
                    cx.events.emit(
                        EventKind::Resource,
                        EventStatus::InProgress,
                        &format!(
                            "creating iSCSI LUN {lun} of {} ({} GiB)",
                            m.name, disk.size_gb
                        ),
                        None,
                    );
                    created |= storage::create_raw(&tgt.runner, file, base, disk.size_gb).await?;
                    // tids are allocated "highest + 1": one allocation at a time per process.
                    let _guard = self.tgt_lock.lock().await;
                    let tid = tgt.ensure_target(iqn).await?;
                    created |= tgt.ensure_lun(tid, *lun, file).await?;
                }
            }
        }
        if let Some(swap) = swap_record(&self.cluster, &host, &cx.spec.name, m) {
            created |= storage::create_swap(&runner, &swap).await?;
        }
        Ok(done(
            !created,
            BTreeMap::from([("disks".into(), serde_json::to_value(&records).unwrap())]),
        ))
    }

    /// The base image `image` on `host`: the library's copy there (`nepho image:add`), else
    /// the cluster file's `images:` path (the same on every host). The library wins: `image:add`
    /// refuses a name the cluster file declares, so both can only name one image when the
    /// cluster file was edited afterwards.
    pub(crate) fn image_on(
        &self,
        image: &str,
        host: &HostConfig,
    ) -> Result<PathBuf, ProviderError> {
        if let Some(copies) = self.library_images.get(image) {
            let held = match &self.image_holds {
                Some(holds) => holds.hold(image)?.ok_or_else(|| {
                    ProviderError::NotFound(format!(
                        "library image `{image}` was removed from the library meanwhile"
                    ))
                })?,
                None => copies.clone(),
            };
            return held.get(&host.name).cloned().ok_or_else(|| ProviderError::Invalid {
                message: format!(
                    "library image `{image}` has no copy on host {} (added before the host joined the cluster)",
                    host.name
                ),
                hint: Some("run `nepho cluster:sync` to copy the library to every host".into()),
            });
        }
        self.cluster
            .images
            .get(image)
            .cloned()
            .ok_or_else(|| {
                let mut known: Vec<String> = self.library_images.keys().cloned().collect();
                known.extend(self.cluster.images.keys().cloned());
                ProviderError::Invalid {
                    message: format!(
                        "image `{image}` is neither in the image library nor in the cluster file (images: {})",
                        known.join(", ")
                    ),
                    hint: Some(
                        "add it with `nepho image:add NAME FILE`, or under `images:` in the cluster file".into(),
                    ),
                }
            })
    }

    async fn seed(
        &self,
        cx: &StepContext<'_>,
        pattern: &Pattern,
        m: &Machine,
    ) -> Result<StepOutcome, ProviderError> {
        let spec = cx.spec;
        let host = self.host_of(cx, &m.name).await?;
        let public = tokio::fs::read_to_string(key_path(&spec.work_dir).with_extension("pub"))
            .await
            .map_err(|e| {
                failed(format!(
                    "the formation's public key is missing ({e}): run `keypair` first"
                ))
            })?;
        let (provision, has_provisioner) = provision_script(cx, pattern, m).await?;
        let hostname = m.name.clone();
        let keys: Vec<&str> = public.lines().filter(|l| !l.trim().is_empty()).collect();
        // Host keys: ed25519 and ECDSA (every ssh client of the last ten years speaks one of
        // them). cloud-init's default adds RSA, whose key generation alone is seconds of a
        // software-emulated guest's first boot.
        let mut user_data = format!(
            "#cloud-config\nhostname: {hostname}\ndisable_root: false\nssh_genkeytypes: [ed25519, ecdsa]\nssh_authorized_keys:\n{}\n",
            keys.iter()
                .map(|k| format!("  - {k}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        if m.swap_mb > 0 {
            // Every boot: the swap disk is the host's, and a new host gives a blank one.
            user_data.push_str(&format!(
                "bootcmd:\n  - [sh, -c, 'd=/dev/disk/by-id/virtio-{serial}; [ -b $d ] && (swapon $d 2>/dev/null || (mkswap $d && swapon $d))']\n",
                serial = libvirt::SWAP_SERIAL
            ));
        }
        user_data.push_str(if has_provisioner {
            "runcmd:\n  - [sh, -c, 'mkdir -p /run/nepho /mnt/nepho-seed && (mount -r -L cidata /mnt/nepho-seed || mount -r /dev/sr0 /mnt/nepho-seed) && cd /root && NEPHO_SEED_DIR=/mnt/nepho-seed sh /mnt/nepho-seed/nepho/provision.sh >/var/log/nepho-provision.log 2>&1; echo $? >/run/nepho/provision.rc.tmp; mkdir -p /var/lib/nepho; cp /run/nepho/provision.rc.tmp /var/lib/nepho/provision.rc; mv /run/nepho/provision.rc.tmp /run/nepho/provision.rc']\n"
        } else {
            "runcmd:\n  - [sh, -c, 'mkdir -p /run/nepho /var/lib/nepho && echo 0 >/var/lib/nepho/provision.rc && echo 0 >/run/nepho/provision.rc']\n"
        });
        let mut files = vec![
            (
                "meta-data".to_string(),
                format!(
                    "instance-id: {}-{}\nlocal-hostname: {hostname}\n",
                    spec.name, m.name
                ),
            ),
            ("user-data".to_string(), user_data),
            ("nepho/authorized_keys".to_string(), public.clone()),
            ("nepho/hostname".to_string(), format!("{hostname}\n")),
        ];
        if has_provisioner {
            files.push(("nepho/provision.sh".to_string(), provision.clone()));
        }
        let seeds = spec.work_dir.join("seeds");
        tokio::fs::create_dir_all(&seeds)
            .await
            .map_err(|e| cmd::io_failed(&seeds, e))?;
        tokio::fs::set_permissions(&seeds, std::fs::Permissions::from_mode(0o700))
            .await
            .map_err(|e| cmd::io_failed(&seeds, e))?;
        // What first boot runs: `formation:update` runs the provisioner again when it changes.
        let hash = provision_hash(&provision, spec.payload_dir.as_deref()).await?;
        let marker = seeds.join(format!("{}.seeded", m.name));
        tokio::fs::write(&marker, &hash)
            .await
            .map_err(|e| cmd::io_failed(&marker, e))?;
        let local = local_seed(&spec.work_dir, &m.name);
        let staging = seeds.join(format!(".{}.d", m.name));
        if let Some(payload) = &spec.payload_dir {
            // Payload files ride along under nepho/ (the provisioner finds them in NEPHO_SEED_DIR).
            let _ = tokio::fs::remove_dir_all(&staging).await;
            tokio::fs::create_dir_all(staging.join("nepho"))
                .await
                .map_err(|e| cmd::io_failed(&staging, e))?;
            copy_payload(payload, &staging).await?;
        }
        storage::build_seed_iso(&files, &staging, &local).await?;
        let record = record_for(self, spec, pattern, m, &host, &Self::ips_of(cx));
        let runner = Runner::for_host(&host);
        runner
            .mkdir(&formation_dir(&self.cluster, &host, &spec.name))
            .await?;
        runner.upload_private(&local, &record.seed).await?;
        Ok(done(
            false,
            BTreeMap::from([("seed".into(), json!(record.seed))]),
        ))
    }

    pub(crate) async fn domain_type(&self, cx_events: Option<&StepContext<'_>>) -> String {
        use crate::cluster::DomainType;
        match self.cluster.domain_type {
            DomainType::Kvm => "kvm".into(),
            DomainType::Qemu => "qemu".into(),
            DomainType::Auto => {
                let kvm = *self
                    .kvm_probe
                    .get_or_init(|| nepho_kvm_probe::kvm_works_cached(self.probe_cache.as_deref()))
                    .await;
                if !kvm && let Some(cx) = cx_events {
                    cx.events.emit(
                        EventKind::Log,
                        EventStatus::Info,
                        "warning: KVM acceleration does not start guests on this host; using QEMU software emulation (TCG), which is much slower",
                        None,
                    );
                }
                if kvm { "kvm".into() } else { "qemu".into() }
            }
        }
    }

    async fn domain(
        &self,
        cx: &StepContext<'_>,
        pattern: &Pattern,
        m: &Machine,
    ) -> Result<StepOutcome, ProviderError> {
        let spec = cx.spec;
        let host = self.host_of(cx, &m.name).await?;
        let name = domain_name(&spec.name, &m.name);
        let mut already = true;
        // Held (and still in the library) until the domain that records it as its base exists,
        // also when a resumed build did the disks before: removal then sees the machine.
        self.image_on(&m.image, &host)?;
        let record = record_for(self, spec, pattern, m, &host, &Self::ips_of(cx));
        let exists = libvirt::domain_exists(&host.uri, &name).await;
        // Fencing: the domain will hold a lease per iSCSI target in the cluster's lockspace.
        let lockspace = crate::records::lockspace_for(&self.cluster, &record);
        let leases = if exists {
            crate::records::Leases::Unchanged
        } else {
            crate::records::Leases::New(lockspace)
        };
        // A copy for cluster:failover, next to the LUNs (before the domain exists).
        crate::records::save_record(&self.cluster, &name, &record, &m.labels, leases).await?;
        crate::records::ensure_lease_files(&self.cluster, &host, &record).await?;
        if !exists {
            already = false;
            for nic in &record.nics {
                if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
                    reserve_address(&host.uri, net, &nic.mac, ip, &m.name).await?;
                }
            }
            let dtype = self.domain_type(Some(cx)).await;
            let xml = libvirt::domain_xml(&DomainSpec {
                name: &name,
                domain_type: &dtype,
                record: &record,
                lockspace,
            });
            let file = spec.work_dir.join(format!("{name}.xml"));
            tokio::fs::write(&file, &xml)
                .await
                .map_err(|e| cmd::io_failed(&file, e))?;
            let defined = libvirt::virsh(&host.uri, &["define", &file.to_string_lossy()]).await;
            let _ = tokio::fs::remove_file(&file).await;
            defined?;
        }
        if libvirt::domain_state(&host.uri, &name).await.as_deref() != Some("running") {
            already = false;
            // Resumed after the nanny died inside this step, its `virsh start` may still be
            // bringing the domain up: `start_domain` counts "already active" as started.
            crate::records::start_domain(&host, &name, &m.name).await?;
        }
        cx.events.emit(
            EventKind::Resource,
            EventStatus::Succeeded,
            &format!("{} is running on host {}", m.name, host.name),
            None,
        );
        Ok(done(
            already,
            BTreeMap::from([
                ("domain".into(), json!(name)),
                ("host".into(), json!(host.name)),
            ]),
        ))
    }

    async fn ready(
        &self,
        cx: &StepContext<'_>,
        pattern: &Pattern,
        m: &Machine,
    ) -> Result<StepOutcome, ProviderError> {
        let host = self.host_of(cx, &m.name).await?;
        let name = domain_name(&cx.spec.name, &m.name);
        let record = record_for(self, cx.spec, pattern, m, &host, &Self::ips_of(cx));
        let timeout = Duration::from_secs(self.cluster.ready_timeout_s);
        let started = Instant::now();
        let mut polls = 0u32;
        let mut said = String::new();
        let say = |said: &mut String, msg: String| {
            if *said != msg {
                cx.events
                    .emit(EventKind::Resource, EventStatus::Waiting, &msg, None);
                *said = msg;
            }
        };
        loop {
            if started.elapsed() > timeout {
                return Err(ProviderError::Failed {
                    message: format!(
                        "{} was not ready within {} s ({said})",
                        m.name,
                        timeout.as_secs()
                    ),
                    hint: Some(format!(
                        "the serial console log is {} on host {}; raise ready_timeout_s in the cluster file for slow hosts",
                        record.console_log.display(),
                        host.name
                    )),
                });
            }
            let state = libvirt::domain_state(&host.uri, &name).await;
            if state.as_deref() != Some("running") {
                return Err(failed(format!(
                    "{} is {} instead of running (see its console log {})",
                    m.name,
                    state.unwrap_or_else(|| "not defined".into()),
                    record.console_log.display()
                )));
            }
            let address = match record.nics.first().and_then(|n| n.ip.clone()) {
                Some(ip) => Some(ip),
                None => {
                    polls += 1;
                    libvirt::address_polled(&host.uri, &name, polls % 4 == 1).await
                }
            };
            let Some(address) = address else {
                say(&mut said, format!("waiting for DHCP lease of {}", m.name));
                tokio::time::sleep(POLL).await;
                continue;
            };
            let probe = ssh_run(
                &record.key,
                &record.ssh_user,
                &address,
                PROVISIONED_WAIT,
                Duration::from_secs(30),
            )
            .await;
            match probe {
                Ok(out) if out.success && out.stdout.contains("rc=") => {
                    let rc = out
                        .stdout
                        .trim()
                        .trim_start_matches("rc=")
                        .trim()
                        .to_string();
                    if rc != "0" {
                        let hint = format!(
                            "look around: nepho formation:ssh {} {}",
                            cx.spec.name, m.name
                        );
                        return Err(provisioner_failed(&record, &address, &m.name, &rc, hint).await);
                    }
                    // The provisioner first boot ran is the one seeded (kept when an update
                    // finds the machine already up: the provision step compares against it).
                    let seeds = cx.spec.work_dir.join("seeds");
                    let provisioned = seeds.join(format!("{}.provisioned", m.name));
                    if !provisioned.exists()
                        && let Ok(hash) =
                            tokio::fs::read(seeds.join(format!("{}.seeded", m.name))).await
                    {
                        let _ = tokio::fs::write(&provisioned, hash).await;
                    }
                    cx.events.emit(
                        EventKind::Resource,
                        EventStatus::Succeeded,
                        &format!(
                            "{} is ready at {address} ({:.0} s)",
                            m.name,
                            started.elapsed().as_secs_f64()
                        ),
                        None,
                    );
                    return Ok(done(
                        false,
                        BTreeMap::from([
                            ("address".into(), json!(address)),
                            ("host".into(), json!(host.name)),
                        ]),
                    ));
                }
                Ok(out) if out.success => say(
                    &mut said,
                    format!("waiting for the provisioner on {} ({address})", m.name),
                ),
                _ => say(
                    &mut said,
                    format!("waiting for ssh on {address} ({})", m.name),
                ),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs the machine's provisioner again over ssh when it (or the payload, or the
    /// environment it is given) differs from the one that last ran there: the new script and
    /// payload go over ssh's stdin (never on a command line), run as first boot runs them
    /// (`NEPHO_SEED_DIR`, log in /var/log/nepho-provision.log), and a non-zero exit fails the
    /// update with the log's last lines.
    async fn provision(
        &self,
        cx: &StepContext<'_>,
        pattern: &Pattern,
        m: &Machine,
    ) -> Result<StepOutcome, ProviderError> {
        let spec = cx.spec;
        let (script, has_provisioner) = provision_script(cx, pattern, m).await?;
        if !has_provisioner {
            return Ok(done(false, BTreeMap::new()));
        }
        let seeds = spec.work_dir.join("seeds");
        let hash = provision_hash(&script, spec.payload_dir.as_deref()).await?;
        let provisioned = seeds.join(format!("{}.provisioned", m.name));
        if tokio::fs::read_to_string(&provisioned)
            .await
            .ok()
            .as_deref()
            == Some(hash.as_str())
        {
            cx.events.emit(
                EventKind::Resource,
                EventStatus::Succeeded,
                &format!("{}: the provisioner is unchanged", m.name),
                None,
            );
            return Ok(done(false, BTreeMap::new()));
        }
        let host = self.host_of(cx, &m.name).await?;
        let record = record_for(self, spec, pattern, m, &host, &Self::ips_of(cx));
        let address = cx
            .outputs
            .get(&StepId(format!("ready-{}", m.name)))
            .and_then(|o| o.get("address"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| failed(format!("{} has no address to provision over", m.name)))?;
        // The bundle: nepho/provision.sh and the payload, as a tar on ssh's stdin.
        let staging = seeds.join(format!(".{}.update.d", m.name));
        let _ = tokio::fs::remove_dir_all(&staging).await;
        tokio::fs::create_dir_all(staging.join("nepho"))
            .await
            .map_err(|e| cmd::io_failed(&staging, e))?;
        if let Some(payload) = &spec.payload_dir {
            copy_payload(payload, &staging).await?;
        }
        let script_path = staging.join("nepho").join("provision.sh");
        tokio::fs::write(&script_path, &script)
            .await
            .map_err(|e| cmd::io_failed(&script_path, e))?;
        let bundle = seeds.join(format!(".{}.update.tar", m.name));
        let packed = cmd::check(
            "tar",
            &[
                "-C",
                &staging.to_string_lossy(),
                "-cf",
                &bundle.to_string_lossy(),
                "nepho",
            ],
            Duration::from_secs(60),
        )
        .await;
        let bytes = tokio::fs::read(&bundle).await;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        let _ = tokio::fs::remove_file(&bundle).await;
        packed?;
        let bytes = bytes.map_err(|e| cmd::io_failed(&bundle, e))?;
        cx.events.emit(
            EventKind::Resource,
            EventStatus::InProgress,
            &format!("running the provisioner again on {} ({address})", m.name),
            None,
        );
        let started = Instant::now();
        let run = "d=/run/nepho/update; rm -rf $d && mkdir -p $d && tar -C $d -xf - && cd /root \
            && NEPHO_SEED_DIR=$d sh $d/nepho/provision.sh >/var/log/nepho-provision.log 2>&1 </dev/null; \
            rc=$?; rm -f $d/nepho/provision.sh; echo rc=$rc";
        let mut args = ssh_args(&record.key, &record.ssh_user, &address);
        args.push(run.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cmd::run_with_input(
            "ssh",
            &args,
            Some(bytes),
            Duration::from_secs(self.cluster.ready_timeout_s),
        )
        .await?;
        let rc = out
            .stdout
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("rc="))
            .map(str::to_string);
        match rc.as_deref() {
            Some("0") => {}
            Some(rc) => {
                let hint = format!(
                    "fix the provisioner and run the update again; look around: nepho formation:ssh {} {}",
                    spec.name, m.name
                );
                return Err(provisioner_failed(&record, &address, &m.name, rc, hint).await);
            }
            None => {
                return Err(failed(format!(
                    "could not run the provisioner on {} over ssh: {}",
                    m.name,
                    out.stderr.trim()
                )));
            }
        }
        tokio::fs::write(&provisioned, &hash)
            .await
            .map_err(|e| cmd::io_failed(&provisioned, e))?;
        cx.events.emit(
            EventKind::Resource,
            EventStatus::Succeeded,
            &format!(
                "{} provisioned again ({:.0} s)",
                m.name,
                started.elapsed().as_secs_f64()
            ),
            None,
        );
        Ok(done(false, BTreeMap::new()))
    }

    fn outputs_step(&self, cx: &StepContext<'_>, pattern: &Pattern) -> StepOutcome {
        let address_of = |r: &str| -> Option<String> {
            let name = pattern.resolve_name(r)?;
            cx.outputs
                .get(&StepId(format!("ready-{name}")))
                .and_then(|o| o.get("address"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let outputs = pattern
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), json!(substitute(v, &address_of))))
            .collect();
        done(false, outputs)
    }

    async fn cleanup_step(
        &self,
        cx: &StepContext<'_>,
        formation: &str,
        mut keys: Vec<PathBuf>,
    ) -> Result<StepOutcome, ProviderError> {
        if cx.spec.name == formation {
            keys.push(key_path(&cx.spec.work_dir));
            self.release_unrecorded_addresses(cx.spec).await;
        }
        self.cleanup_formation(formation, &keys).await?;
        Ok(done(false, BTreeMap::new()))
    }

    /// Domain, its disks and LUNs, its seed, its address reservation.
    pub(crate) async fn remove_machine(
        &self,
        record: &MachineRecord,
        domain: &str,
    ) -> Result<bool, ProviderError> {
        let host = self.cluster.host(&record.host).cloned();
        let mut existed = false;
        if let Some(host) = &host {
            existed = libvirt::remove_domain(&host.uri, domain).await?;
            for nic in &record.nics {
                if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
                    release_address(&host.uri, net, &nic.mac, ip).await;
                }
            }
            let runner = Runner::for_host(host);
            let mut files = vec![record.seed.clone(), record.console_log.clone()];
            for d in &record.disks {
                if let DiskRecord::File { path } = d {
                    files.push(path.clone());
                }
            }
            files.extend(record.swap.iter().map(|s| s.path.clone()));
            // Its lease files: the domain is gone, and its LUNs go below.
            if let Some(lockspace) = crate::records::lockspace_for(&self.cluster, record) {
                files.extend(libvirt::lease_files(lockspace, record));
            }
            runner.remove(&files).await?;
        }
        if let Some(iscsi) = &self.cluster.storage.iscsi {
            let iqns: Vec<String> = record
                .disks
                .iter()
                .filter_map(|d| match d {
                    DiskRecord::Lun { iqn, .. } => Some(iqn.clone()),
                    _ => None,
                })
                .collect();
            if !iqns.is_empty() {
                let tgt = Tgt::new(iscsi);
                let mut files = tgt.delete_targets(&|i| iqns.iter().any(|x| x == i)).await?;
                files.extend(record.disks.iter().filter_map(|d| match d {
                    DiskRecord::Lun { file, .. } => Some(file.clone()),
                    _ => None,
                }));
                tgt.runner.remove(&files).await?;
            }
        }
        crate::records::forget_record(&self.cluster, &record.formation, &record.machine).await;
        let local = record.key.parent().map(|w| local_seed(w, &record.machine));
        if let Some(local) = local {
            let _ = tokio::fs::remove_file(local).await;
        }
        Ok(existed)
    }

    /// Address reservations no domain records: the `domain` step reserves a machine's address
    /// just before `virsh define`, so a nanny killed in between leaves a reservation that no
    /// `destroy-machine` step knows of. They are found by the MAC each NIC of the formation's
    /// machines gets (`net::mac_for`), in every network of the pattern on every host.
    async fn release_unrecorded_addresses(&self, spec: &FormationSpec) {
        let Ok(pattern) = Pattern::from_spec(spec) else {
            return;
        };
        let mut macs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &pattern.machines {
            for (i, n) in m.networks.iter().enumerate() {
                let network = self
                    .cluster
                    .network(n)
                    .map_or_else(|| n.clone(), |c| c.name);
                if self.cluster.network(n).is_some_and(|c| c.bridge.is_some()) {
                    continue;
                }
                macs.entry(network)
                    .or_default()
                    .push(net::mac_for(&spec.name, &m.name, i));
            }
        }
        for host in &self.cluster.hosts {
            for (network, ours) in &macs {
                let Ok(out) = libvirt::virsh_output(&host.uri, &["net-dumpxml", network]).await
                else {
                    continue;
                };
                if !out.success {
                    continue;
                }
                for (mac, ip) in net::parse_reservations(&out.stdout) {
                    if ours.contains(&mac) {
                        release_address(&host.uri, network, &mac, &ip).await;
                    }
                }
            }
        }
    }

    /// Whatever a crashed create may have left without a domain: the formation's directories
    /// on every reachable host, its iSCSI targets, its local seeds and keys.
    pub(crate) async fn cleanup_formation(
        &self,
        formation: &str,
        keys: &[PathBuf],
    ) -> Result<(), ProviderError> {
        for host in &self.cluster.hosts {
            let runner = Runner::for_host(host);
            if let Err(e) = runner
                .remove(&[formation_dir(&self.cluster, host, formation)])
                .await
                && host.is_local()
            {
                return Err(e);
            }
        }
        if let Some(iscsi) = &self.cluster.storage.iscsi {
            let tgt = Tgt::new(iscsi);
            let prefix = format!("{}:{}:", iscsi.iqn_prefix, iqn_formation(formation));
            // A stopped tgtd holds no targets of ours: nothing to delete.
            if let Ok(files) = tgt.delete_targets(&|i| i.starts_with(&prefix)).await {
                tgt.runner.remove(&files).await?;
            }
            tgt.runner.remove(&[iscsi.dir.join(formation)]).await.ok();
        }
        for key in keys {
            let _ = tokio::fs::remove_file(key).await;
            let _ = tokio::fs::remove_file(key.with_extension("pub")).await;
            if let Some(work) = key.parent() {
                let _ = tokio::fs::remove_dir_all(work.join("seeds")).await;
                let _ = tokio::fs::remove_file(work.join("known_hosts")).await;
            }
        }
        Ok(())
    }

    pub(crate) async fn undo(&self, step: &Step, cx: StepContext<'_>) -> Result<(), ProviderError> {
        let spec = cx.spec;
        // An action this version does not know has nothing of its own to undo.
        let Ok(action) = Action::of(step) else {
            return Ok(());
        };
        match &action {
            Action::Keypair => {
                let key = key_path(&spec.work_dir);
                let _ = tokio::fs::remove_file(&key).await;
                let _ = tokio::fs::remove_file(key.with_extension("pub")).await;
            }
            Action::Disk { machine } => {
                let pattern = self.pattern(spec)?;
                let Some(m) = pattern.machine(machine) else {
                    return Ok(());
                };
                for host in &self.cluster.hosts {
                    for d in disk_records(&self.cluster, host, &spec.name, m) {
                        if let DiskRecord::File { path } = d {
                            let _ = Runner::for_host(host).remove(&[path]).await;
                        }
                    }
                    if let Some(swap) = swap_record(&self.cluster, host, &spec.name, m) {
                        let _ = Runner::for_host(host).remove(&[swap.path]).await;
                    }
                }
                if let (Some(iscsi), Some(iqn)) = (
                    &self.cluster.storage.iscsi,
                    iqn(&self.cluster, &spec.name, machine),
                ) {
                    let tgt = Tgt::new(iscsi);
                    if let Ok(files) = tgt.delete_targets(&|i| i == iqn).await {
                        tgt.runner.remove(&files).await?;
                    }
                    let lun_files: Vec<PathBuf> = (0..m.disks.len())
                        .map(|i| {
                            iscsi
                                .dir
                                .join(&spec.name)
                                .join(format!("{machine}-disk{i}.raw"))
                        })
                        .collect();
                    tgt.runner.remove(&lun_files).await?;
                }
            }
            Action::Seed { machine } => {
                let _ = tokio::fs::remove_file(local_seed(&spec.work_dir, machine)).await;
                // What the provisioner was seeded with and last ran (formation:update's markers).
                let seeds = spec.work_dir.join("seeds");
                for marker in ["seeded", "provisioned"] {
                    let _ = tokio::fs::remove_file(seeds.join(format!("{machine}.{marker}"))).await;
                }
                for host in &self.cluster.hosts {
                    let seed = formation_dir(&self.cluster, host, &spec.name)
                        .join(format!("{machine}-seed.iso"));
                    let _ = Runner::for_host(host).remove(&[seed]).await;
                }
            }
            Action::Domain { machine } => {
                let name = domain_name(&spec.name, machine);
                crate::records::forget_record(&self.cluster, &spec.name, machine).await;
                for d in self.find_domains(&spec.name).await? {
                    if d.name == name {
                        libvirt::remove_domain(&d.uri, &d.name).await?;
                        if let Some(host) = self.cluster.host(&d.host) {
                            let _ = Runner::for_host(host)
                                .remove(std::slice::from_ref(&d.record.console_log))
                                .await;
                        }
                        for nic in &d.record.nics {
                            if let (Some(ip), Some(net)) = (&nic.ip, &nic.libvirt_network) {
                                release_address(&d.uri, net, &nic.mac, ip).await;
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        // Directories made for this formation go once they are empty (rmdir fails otherwise).
        if matches!(
            action,
            Action::Disk { .. } | Action::Seed { .. } | Action::Domain { .. }
        ) {
            let _ = tokio::fs::remove_dir(spec.work_dir.join("seeds")).await;
            for host in &self.cluster.hosts {
                let dir = formation_dir(&self.cluster, host, &spec.name);
                let _ = Runner::for_host(host)
                    .run("rmdir", &[&dir.to_string_lossy()], Duration::from_secs(30))
                    .await;
            }
            if let Some(iscsi) = &self.cluster.storage.iscsi {
                let dir = iscsi.dir.join(&spec.name);
                let _ = Runner::for_iscsi(iscsi)
                    .run("rmdir", &[&dir.to_string_lossy()], Duration::from_secs(30))
                    .await;
            }
        }
        Ok(())
    }
}

/// `db_password` → `DB_PASSWORD`.
pub fn env_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The formation's own known_hosts, beside its key: a machine's host key is learnt at its first
/// ssh contact (while nepho waits for it) and checked from then on; destroy removes the file.
/// How often `ready` asks libvirt for a lease and tries ssh, while the machine has neither.
const POLL: Duration = Duration::from_millis(500);

/// What `ready` runs over ssh: waits in the machine (up to 20 s) for the provisioner's exit
/// code, so one ssh session sees it within a fifth of a second instead of a new login every
/// second (each one costs a slow guest real CPU: under TCG a key exchange is a second of it).
/// /run is empty after a reboot and cloud-init runs `runcmd` once per machine: the copy in
/// /var/lib says the provisioner finished at an earlier boot.
const PROVISIONED_WAIT: &str = "s=0.2; n=100; sleep $s 2>/dev/null || { s=1; n=20; }; \
while :; do \
if test -f /run/nepho/provision.rc; then echo rc=$(cat /run/nepho/provision.rc); exit 0; \
elif test -f /var/lib/nepho/provision.rc; then echo rc=$(cat /var/lib/nepho/provision.rc); exit 0; fi; \
n=$((n-1)); if [ $n -le 0 ]; then echo pending; exit 0; fi; sleep $s; done";

pub fn known_hosts(key: &Path) -> PathBuf {
    key.with_file_name("known_hosts")
}

/// ssh options that pin host keys in the formation's known_hosts.
pub fn host_key_options(key: &Path) -> [String; 2] {
    [
        "StrictHostKeyChecking=accept-new".into(),
        format!("UserKnownHostsFile={}", known_hosts(key).display()),
    ]
}

pub fn ssh_args(key: &Path, user: &str, address: &str) -> Vec<String> {
    let [strict, known] = host_key_options(key);
    vec![
        "-i".into(),
        key.to_string_lossy().into_owned(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        strict,
        "-o".into(),
        known,
        "-o".into(),
        "LogLevel=ERROR".into(),
        "-o".into(),
        "ConnectTimeout=5".into(),
        format!("{user}@{address}"),
    ]
}

/// The machine's `nepho/provision.sh`: its environment (addresses of the machines it names,
/// secrets), then the cloudlet's provisioner; and whether there is anything to run.
async fn provision_script(
    cx: &StepContext<'_>,
    pattern: &Pattern,
    m: &Machine,
) -> Result<(String, bool), ProviderError> {
    let spec = cx.spec;
    let address_of = |r: &str| -> Option<String> {
        let name = pattern.resolve_name(r)?;
        cx.outputs
            .get(&StepId(format!("ready-{name}")))
            .and_then(|o| o.get("address"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut provision = String::from(
        "#!/bin/sh\n# written by nepho: the machine's environment, then the provisioner\n",
    );
    for (k, v) in &m.env {
        provision.push_str(&format!(
            "export {}={}\n",
            env_name(k),
            shell_quote(&substitute(v, &address_of))
        ));
    }
    for key in &m.secret_env {
        let value = match spec.parameters.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        provision.push_str(&format!(
            "export {}={}\n",
            env_name(key),
            shell_quote(&value)
        ));
    }
    provision.push_str(&format!(
        "export NEPHO_FORMATION={}\nexport NEPHO_MACHINE={}\n",
        shell_quote(&spec.name),
        shell_quote(&m.name)
    ));
    let has_provisioner = match &spec.provisioner {
        Some(p) => {
            let script = tokio::fs::read_to_string(p)
                .await
                .map_err(|e| failed(format!("provisioner {}: {e}", p.display())))?;
            provision.push_str("\n# ---- provisioner ----\n");
            provision.push_str(&script);
            true
        }
        None => !m.env.is_empty() || !m.secret_env.is_empty(),
    };
    Ok((provision, has_provisioner))
}

/// The cloudlet's payload into `staging/nepho/` (the provisioner finds it in NEPHO_SEED_DIR).
async fn copy_payload(payload: &Path, staging: &Path) -> Result<(), ProviderError> {
    cmd::check(
        "cp",
        &[
            "-a",
            &format!("{}/.", payload.display()),
            &staging.join("nepho").to_string_lossy(),
        ],
        Duration::from_secs(60),
    )
    .await
    .map(|_| ())
}

/// A provisioner that exited `rc` on `machine`: the error carries the last lines of its log.
async fn provisioner_failed(
    record: &MachineRecord,
    address: &str,
    machine: &str,
    rc: &str,
    hint: String,
) -> ProviderError {
    let log = ssh_run(
        &record.key,
        &record.ssh_user,
        address,
        "tail -n 20 /var/log/nepho-provision.log",
        Duration::from_secs(20),
    )
    .await
    .map(|o| o.stdout)
    .unwrap_or_default();
    ProviderError::Failed {
        message: format!(
            "the provisioner failed on {machine} (exit {rc}); last lines of /var/log/nepho-provision.log:\n{}",
            log.trim_end()
        ),
        hint: Some(hint),
    }
}

/// A digest of what a provisioner run is given: the script (with its environment) and every
/// payload file's path, mode and contents.
async fn provision_hash(script: &str, payload: Option<&Path>) -> Result<String, ProviderError> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(script.as_bytes());
    if let Some(dir) = payload {
        let mut stack = vec![dir.to_path_buf()];
        let mut files = Vec::new();
        while let Some(d) = stack.pop() {
            let mut entries = tokio::fs::read_dir(&d)
                .await
                .map_err(|e| cmd::io_failed(&d, e))?;
            while let Some(e) = entries
                .next_entry()
                .await
                .map_err(|e| cmd::io_failed(&d, e))?
            {
                let kind = e
                    .file_type()
                    .await
                    .map_err(|err| cmd::io_failed(&e.path(), err))?;
                if kind.is_dir() {
                    stack.push(e.path());
                } else {
                    files.push(e.path());
                }
            }
        }
        files.sort();
        for f in files {
            let meta = tokio::fs::symlink_metadata(&f)
                .await
                .map_err(|e| cmd::io_failed(&f, e))?;
            hasher.update(b"\0");
            hasher.update(
                f.strip_prefix(dir)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .as_bytes(),
            );
            hasher.update(meta.permissions().mode().to_le_bytes());
            if meta.is_file() {
                let bytes = tokio::fs::read(&f)
                    .await
                    .map_err(|e| cmd::io_failed(&f, e))?;
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub async fn ssh_run(
    key: &Path,
    user: &str,
    address: &str,
    command: &str,
    timeout: Duration,
) -> Result<cmd::Output, ProviderError> {
    let mut args = ssh_args(key, user, address);
    args.push(command.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cmd::run("ssh", &args, timeout).await
}

pub(crate) async fn reserve_address(
    uri: &str,
    network: &str,
    mac: &str,
    ip: &str,
    name: &str,
) -> Result<(), ProviderError> {
    let entry = format!("<host mac='{mac}' name='{name}' ip='{ip}'/>");
    let out = libvirt::virsh_output(
        uri,
        &[
            "net-update",
            network,
            "add-last",
            "ip-dhcp-host",
            &entry,
            "--live",
            "--config",
        ],
    )
    .await?;
    if !out.success && !out.stderr.contains("existing") {
        return Err(failed(format!(
            "cannot reserve {ip} for {name} in network {network}: {}",
            out.stderr.trim()
        )));
    }
    Ok(())
}

pub(crate) async fn release_address(uri: &str, network: &str, mac: &str, ip: &str) {
    let entry = format!("<host mac='{mac}' ip='{ip}'/>");
    let _ = libvirt::virsh_output(
        uri,
        &[
            "net-update",
            network,
            "delete",
            "ip-dhcp-host",
            &entry,
            "--live",
            "--config",
        ],
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MachineRecord {
        MachineRecord {
            formation: "f".into(),
            cloudlet: "c".into(),
            scenario: "s".into(),
            machine: "web".into(),
            primary: true,
            host: "h1".into(),
            cpus: 1,
            memory_mb: 256,
            disks: vec![DiskRecord::File {
                path: "/d/f/web-disk0.qcow2".into(),
            }],
            seed: "/d/f/web-seed.iso".into(),
            console_log: "/d/f/web-console.log".into(),
            key: "/w/id_ed25519".into(),
            ssh_user: "root".into(),
            outputs: BTreeMap::new(),
            nics: vec![],
            swap: None,
            base_image: None,
        }
    }

    /// Plans journaled before the actions were typed: what `json!` made then.
    #[test]
    fn actions_are_the_json_older_journals_hold() {
        let record = record();
        let keys = vec![PathBuf::from("/w/id_ed25519")];
        let cases = [
            (Action::Keypair, json!({"op": "keypair"})),
            (Action::Place, json!({"op": "place"})),
            (
                Action::Disk {
                    machine: "web".into(),
                },
                json!({"op": "disk", "machine": "web"}),
            ),
            (
                Action::Seed {
                    machine: "web".into(),
                },
                json!({"op": "seed", "machine": "web"}),
            ),
            (
                Action::Domain {
                    machine: "web".into(),
                },
                json!({"op": "domain", "machine": "web"}),
            ),
            (
                Action::Ready {
                    machine: "web".into(),
                },
                json!({"op": "ready", "machine": "web"}),
            ),
            (Action::Outputs, json!({"op": "outputs"})),
            (
                Action::DestroyMachine {
                    domain: "nepho-f-web".into(),
                    host: "h1".into(),
                    record: Box::new(record.clone()),
                },
                json!({"op": "destroy-machine", "domain": "nepho-f-web", "host": "h1",
                       "record": serde_json::to_value(&record).unwrap()}),
            ),
            (
                Action::Cleanup {
                    formation: "f".into(),
                    keys: keys.clone(),
                },
                json!({"op": "cleanup", "formation": "f", "keys": keys}),
            ),
        ];
        for (action, old) in cases {
            let step = step("s".into(), "s".into(), vec![], action.clone());
            // Same text, key order included: journals are compared and diffed as text.
            assert_eq!(step.action.to_string(), old.to_string());
            let journaled = Step {
                action: old,
                ..step
            };
            assert_eq!(Action::of(&journaled).unwrap(), action);
        }
        let unknown = Step {
            id: "x".into(),
            description: String::new(),
            depends_on: vec![],
            action: json!({"op": "teleport"}),
        };
        assert!(
            Action::of(&unknown)
                .unwrap_err()
                .to_string()
                .contains("teleport")
        );
    }

    #[test]
    fn plans_carry_typed_actions() {
        let pattern = Pattern::parse(
            "machines:\n  - name: web\n    image: tiny\n    disks: [{size_gb: 1}]\n",
            "test",
        )
        .unwrap();
        let cluster = ClusterFile::parse(&crate::local_cluster_yaml(), "test").unwrap();
        let plan = create_plan(&cluster, &pattern).unwrap();
        let actions: Vec<Action> = plan.steps.iter().map(|s| Action::of(s).unwrap()).collect();
        assert_eq!(actions[0], Action::Keypair);
        assert!(actions.contains(&Action::Ready {
            machine: "web".into()
        }));
        assert_eq!(actions.last(), Some(&Action::Outputs));
    }
}
