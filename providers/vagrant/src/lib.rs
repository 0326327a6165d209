//! nepho's Vagrant provider: a formation is a Vagrant project directory under nepho's data
//! directory (`<formations>/<name>/work/<name>/`), built with `vagrant up --machine-readable`
//! whose records become progress events. The project directory is the source of truth for
//! what exists; `vagrant status` and `vagrant ssh-config` read it back.
//!
//! - create: `project` → `box`? → `up`
//! - update: `project` → `box`? → `provision`
//! - destroy: `destroy` (stop an orphaned vagrant, `destroy -f`, remove leftover domains,
//!   remove the project)
//!
//! State (`list`, `describe`, the ssh-config fallback) is read without Ruby for libvirt
//! projects: the domain UUIDs vagrant-libvirt records in `.vagrant/machines/*/libvirt/id`, asked
//! of libvirt in one `virsh` batch (`domain_state`); `vagrant status` answers the rest.

mod domain_state;
mod machine_ops;
mod machine_readable;
mod probe;
mod project;
mod run;
mod ssh_config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nepho_provider_api::{
    BoxFuture, Endpoints, EventKind, EventSink, EventStatus, FormationDetails, FormationSpec,
    FormationState, FormationSummary, MachineOps, Plan, PlannedChange, PowerAction, Progress,
    Provider, ProviderError, ProviderKind, ResourceStatus, Step, StepContext, StepId, StepOutcome,
    join_all,
};
use serde_json::json;

pub use machine_readable::{Meaning, Record, parse_line};
pub use project::{BoxSource, project_dir};
pub use run::INSTALL_HINT;

use project::ProjectMeta;
use run::Vagrant;

/// How the provider runs (from `<config>/providers/vagrant.yaml` and nepho's paths).
#[derive(Debug, Clone)]
pub struct VagrantSettings {
    /// nepho's formations directory: project directories live under it.
    pub formations_dir: PathBuf,
    /// The `vagrant` executable.
    pub vagrant: PathBuf,
    /// `VAGRANT_HOME` for every call; `None` inherits the environment (default `~/.vagrant.d`).
    pub vagrant_home: Option<PathBuf>,
    /// `--provider` when the scenario names none.
    pub default_provider: String,
    /// `NEPHO_LIBVIRT_DRIVER` for Vagrantfiles: `kvm`, `qemu`, or `None` to probe for KVM.
    pub libvirt_driver: Option<String>,
    /// libvirt connection, to remove domains a killed `vagrant up` left unrecorded.
    pub libvirt_uri: String,
    /// Limit for `vagrant up` / `provision` / `destroy`.
    pub up_timeout: Duration,
    /// Where the KVM probe's answer is kept (`None`: probe once per process).
    pub probe_cache: Option<PathBuf>,
}

impl VagrantSettings {
    pub fn new(formations_dir: impl Into<PathBuf>) -> VagrantSettings {
        VagrantSettings {
            formations_dir: formations_dir.into(),
            vagrant: PathBuf::from("vagrant"),
            vagrant_home: None,
            default_provider: "libvirt".into(),
            libvirt_driver: None,
            libvirt_uri: "qemu:///system".into(),
            up_timeout: Duration::from_secs(1800),
            probe_cache: None,
        }
    }
}

pub struct VagrantProvider {
    settings: VagrantSettings,
    kvm_probe: tokio::sync::OnceCell<bool>,
}

const STATUS_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks vagrant is installed (without starting Ruby) and builds the provider.
pub fn connect(settings: VagrantSettings) -> Result<VagrantProvider, ProviderError> {
    if !run::on_path(&settings.vagrant) {
        return Err(run::not_installed());
    }
    Ok(VagrantProvider {
        settings,
        kvm_probe: tokio::sync::OnceCell::new(),
    })
}

/// What a step does, as it is journaled in [`Step::action`] (`{"op": "up", "provider":
/// "libvirt"}`). The JSON is the one plans have always had, so a journal written by an older
/// nepho resumes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Action {
    Project {
        #[serde(default = "default_provider")]
        provider: String,
    },
    Box {
        #[serde(default)]
        name: String,
        #[serde(default)]
        source: String,
        #[serde(default = "default_provider")]
        provider: String,
    },
    Up {
        #[serde(default = "default_provider")]
        provider: String,
    },
    Provision {
        #[serde(default = "default_provider")]
        provider: String,
    },
    Destroy {
        #[serde(default)]
        formation: String,
    },
}

fn default_provider() -> String {
    "libvirt".into()
}

impl Action {
    fn of(step: &Step) -> Result<Action, ProviderError> {
        serde_json::from_value(step.action.clone())
            .map_err(|e| failed(format!("unknown vagrant step action: {e}")))
    }

    fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("actions serialize")
    }
}

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::Failed {
        message: message.into(),
        hint: None,
    }
}

impl VagrantProvider {
    pub fn settings(&self) -> &VagrantSettings {
        &self.settings
    }

    fn vagrant_home(&self) -> PathBuf {
        if let Some(h) = &self.settings.vagrant_home {
            return h.clone();
        }
        if let Some(h) = std::env::var_os("VAGRANT_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(h);
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".vagrant.d")
    }

    /// The vagrant runner for a project, with the environment stored at create time.
    fn vagrant(&self, dir: &Path) -> Vagrant {
        let mut env = project::read_env(dir);
        if let Some(h) = &self.settings.vagrant_home {
            env.insert("VAGRANT_HOME".into(), h.display().to_string());
        }
        Vagrant {
            program: self.settings.vagrant.clone(),
            env,
        }
    }

    fn dir_of(&self, formation: &str) -> PathBuf {
        project::project_dir(&self.settings.formations_dir, formation)
    }

    fn existing_dir(&self, formation: &str) -> Result<PathBuf, ProviderError> {
        let dir = self.dir_of(formation);
        if dir.join("Vagrantfile").is_file() {
            Ok(dir)
        } else {
            Err(ProviderError::NotFound(format!(
                "formation {formation} has no Vagrant project ({} does not exist)",
                dir.display()
            )))
        }
    }

    async fn libvirt_driver(&self) -> String {
        if let Ok(d) = std::env::var("NEPHO_LIBVIRT_DRIVER")
            && !d.is_empty()
        {
            return d;
        }
        if let Some(d) = self
            .settings
            .libvirt_driver
            .as_deref()
            .filter(|d| *d != "auto")
        {
            return d.to_string();
        }
        let kvm = *self
            .kvm_probe
            .get_or_init(|| probe::kvm_works(self.settings.probe_cache.as_deref()))
            .await;
        if kvm { "kvm" } else { "qemu" }.to_string()
    }

    /// A provider plugin Vagrant needs for `provider`, checked from files (no Ruby).
    fn check_plugin(&self, provider: &str) -> Result<(), ProviderError> {
        let plugin = match provider {
            "libvirt" => "vagrant-libvirt",
            _ => return Ok(()),
        };
        let mut found = [
            "/usr/share/vagrant-plugins/plugins.d",
            "/usr/share/rubygems-integration/all/gems",
        ]
        .iter()
        .any(|d| {
            std::fs::read_dir(d)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .any(|e| e.file_name().to_string_lossy().starts_with(plugin))
                })
                .unwrap_or(false)
        });
        for f in [
            self.vagrant_home().join("plugins.json"),
            PathBuf::from("/usr/share/vagrant-plugins/plugins.json"),
            PathBuf::from("/opt/vagrant/embedded/plugins.json"),
        ] {
            if std::fs::read_to_string(&f).is_ok_and(|s| s.contains(&format!("\"{plugin}\""))) {
                found = true;
            }
        }
        if found {
            Ok(())
        } else {
            Err(ProviderError::Unavailable {
                message: format!(
                    "the {plugin} plugin is not installed: vagrant cannot use the {provider} provider"
                ),
                hint: Some(format!(
                    "{INSTALL_HINT} (or `vagrant plugin install {plugin}`)"
                )),
            })
        }
    }

    fn check_spec(&self, spec: &FormationSpec) -> Result<String, ProviderError> {
        project::vagrantfile(spec)?;
        let provider = project::vagrant_provider(spec, &self.settings.default_provider);
        self.check_plugin(&provider)?;
        if let Some(b) = project::box_source(spec)?
            && let Some(src) = &b.source
            && let Some(path) = project::local_box_path(src)
            && !path.is_file()
        {
            return Err(ProviderError::Invalid {
                message: format!(
                    "box file {} (for box {}) does not exist",
                    path.display(),
                    b.name
                ),
                hint: None,
            });
        }
        Ok(provider)
    }

    fn plan(&self, spec: &FormationSpec, last: &str) -> Result<Plan, ProviderError> {
        let provider = self.check_spec(spec)?;
        let mut steps = vec![Step {
            id: "project".into(),
            description: format!("prepare the Vagrant project for {}", spec.name),
            depends_on: vec![],
            action: Action::Project {
                provider: provider.clone(),
            }
            .to_value(),
        }];
        let mut last_deps = vec![StepId::from("project")];
        if let Some(b) = project::box_source(spec)?
            && let Some(source) = &b.source
        {
            steps.push(Step {
                id: "box".into(),
                description: format!("add box {} from {source}", b.name),
                depends_on: vec![],
                action: Action::Box {
                    name: b.name.clone(),
                    source: source.clone(),
                    provider: provider.clone(),
                }
                .to_value(),
            });
            last_deps.push("box".into());
        }
        let (description, action) = match last {
            "up" => (
                format!("vagrant up --provider={provider}"),
                Action::Up { provider },
            ),
            _ => (
                "vagrant provision".to_string(),
                Action::Provision { provider },
            ),
        };
        steps.push(Step {
            id: last.into(),
            description,
            depends_on: last_deps,
            action: action.to_value(),
        });
        let plan = Plan { steps };
        plan.validate().map_err(|e| failed(e.to_string()))?;
        Ok(plan)
    }

    async fn run_step_impl(
        &self,
        step: &Step,
        cx: StepContext<'_>,
    ) -> Result<StepOutcome, ProviderError> {
        match Action::of(step)? {
            Action::Project { provider } => {
                let driver = if provider == "libvirt" {
                    Some(self.libvirt_driver().await)
                } else {
                    None
                };
                let env = project::environment(cx.spec, driver.as_deref());
                let meta = ProjectMeta {
                    formation: cx.spec.name.clone(),
                    cloudlet: cx.spec.cloudlet.clone(),
                    scenario: cx.spec.scenario.clone(),
                    vagrant_provider: provider.clone(),
                    v1: cx.spec.v1,
                };
                let dir = project::write(cx.spec, &meta, &env)?;
                let mut outputs = BTreeMap::new();
                outputs.insert("project_dir".into(), json!(dir.display().to_string()));
                if let Some(d) = driver {
                    outputs.insert("libvirt_driver".into(), json!(d));
                }
                Ok(StepOutcome {
                    already_done: false,
                    outputs,
                })
            }
            Action::Box {
                name,
                source,
                provider,
            } => self.add_box(&name, &source, &provider, &cx.events).await,
            Action::Up { provider } => {
                let dir = project::spec_project_dir(cx.spec);
                // Resumed after the nanny died: let the vagrant it started finish first (it
                // holds Vagrant's machine lock), and drop domains it created but never recorded.
                self.wait_for_earlier_run(&dir, &cx.events).await;
                if provider == "libvirt" {
                    self.remove_leftover_domains(&cx.spec.name, &dir, &cx.events, true)
                        .await?;
                }
                let args = [
                    "up",
                    &format!("--provider={provider}"),
                    "--machine-readable",
                ];
                // Addresses may change: `endpoints` asks `vagrant ssh-config` again when needed
                // (not here, so a create pays no extra Ruby start-up).
                let _ = std::fs::remove_file(dir.join(project::SSH_CACHE_FILE));
                self.stream(&dir, &args, &cx.events, "vagrant up").await?;
                Ok(StepOutcome::default())
            }
            Action::Provision { .. } => {
                let dir = project::spec_project_dir(cx.spec);
                let args = ["provision", "--machine-readable"];
                self.stream(&dir, &args, &cx.events, "vagrant provision")
                    .await?;
                Ok(StepOutcome::default())
            }
            Action::Destroy { formation } => {
                let done = self.destroy(&formation, &cx.events).await?;
                Ok(StepOutcome {
                    already_done: !done,
                    outputs: BTreeMap::new(),
                })
            }
        }
    }

    async fn undo_step_impl(&self, step: &Step, cx: StepContext<'_>) -> Result<(), ProviderError> {
        match Action::of(step) {
            // Rollback of a failed create: the machines go, and with them the project.
            Ok(Action::Up { .. } | Action::Project { .. }) => {
                self.destroy(&cx.spec.name, &cx.events).await?;
                Ok(())
            }
            // Boxes are a cache shared by every project; updates keep machines.
            _ => Ok(()),
        }
    }

    async fn add_box(
        &self,
        name: &str,
        source: &str,
        provider: &str,
        events: &Arc<dyn EventSink>,
    ) -> Result<StepOutcome, ProviderError> {
        if project::box_installed(&self.vagrant_home(), name, provider) {
            return Ok(StepOutcome {
                already_done: true,
                outputs: BTreeMap::new(),
            });
        }
        let dir = std::env::temp_dir();
        let args = [
            "box",
            "add",
            "--name",
            name,
            "--provider",
            provider,
            "--machine-readable",
            source,
        ];
        let runner = Vagrant {
            program: self.settings.vagrant.clone(),
            env: self
                .settings
                .vagrant_home
                .as_ref()
                .map(|h| BTreeMap::from([("VAGRANT_HOME".to_string(), h.display().to_string())]))
                .unwrap_or_default(),
        };
        let f = runner
            .run(&dir, &args, self.settings.up_timeout, false, |r| {
                report(events.as_ref(), r)
            })
            .await?;
        if !f.success {
            let text = f.error_text();
            // Another formation may have added it meanwhile.
            if project::box_installed(&self.vagrant_home(), name, provider) {
                return Ok(StepOutcome::default());
            }
            return Err(ProviderError::Failed {
                message: format!("`vagrant box add {name} {source}` failed:\n{text}"),
                hint: None,
            });
        }
        Ok(StepOutcome::default())
    }

    /// Runs a long vagrant command, reporting its records as events.
    async fn stream(
        &self,
        dir: &Path,
        args: &[&str],
        events: &Arc<dyn EventSink>,
        what: &str,
    ) -> Result<run::Finished, ProviderError> {
        let vagrant = self.vagrant(dir);
        let f = vagrant
            .run(dir, args, self.settings.up_timeout, true, |r| {
                report(events.as_ref(), r)
            })
            .await?;
        if f.success {
            Ok(f)
        } else {
            Err(run::failure(what, &f))
        }
    }

    async fn wait_for_earlier_run(&self, dir: &Path, events: &Arc<dyn EventSink>) {
        if !run_in_progress(dir) {
            return;
        }
        events.emit(
            EventKind::Step,
            EventStatus::Waiting,
            "waiting for the vagrant started before the interruption to finish",
            None,
        );
        let started = std::time::Instant::now();
        while run_in_progress(dir) && started.elapsed() < self.settings.up_timeout {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        run::stop_orphan(dir, Duration::from_secs(20)).await;
    }

    /// `vagrant ssh-config` of every machine, cached in the project until the machines' power
    /// changes. When some machine is not running (ssh-config fails for all), the running ones
    /// are asked one by one, and that partial answer is not cached.
    async fn ssh_config(&self, dir: &Path) -> Result<String, ProviderError> {
        let cache = dir.join(project::SSH_CACHE_FILE);
        if let Ok(text) = std::fs::read_to_string(&cache) {
            return Ok(text);
        }
        let vagrant = self.vagrant(dir);
        match vagrant.check(dir, &["ssh-config"], STATUS_TIMEOUT).await {
            Ok(f) => {
                if !ssh_config::parse(&f.stdout).is_empty() {
                    let _ = project::write_atomic(&cache, f.stdout.as_bytes(), 0o644);
                }
                Ok(f.stdout)
            }
            Err(e) => {
                let running: Vec<String> = self
                    .machine_states(&[dir])
                    .await
                    .pop()
                    .expect("one answer per project")?
                    .into_iter()
                    .filter(|(_, state)| state == "running")
                    .map(|(m, _)| m)
                    .collect();
                if running.is_empty() {
                    return Err(e);
                }
                let mut text = String::new();
                for m in &running {
                    let f = vagrant
                        .check(dir, &["ssh-config", m], STATUS_TIMEOUT)
                        .await?;
                    text.push_str(&f.stdout);
                }
                Ok(text)
            }
        }
    }

    /// Destroys the formation's machines and removes its project. False when there was
    /// nothing to destroy.
    async fn destroy(
        &self,
        formation: &str,
        events: &Arc<dyn EventSink>,
    ) -> Result<bool, ProviderError> {
        let dir = self.dir_of(formation);
        if !dir.exists() {
            return Ok(false);
        }
        run::stop_orphan(&dir, Duration::from_secs(20)).await;
        let provider = project::read_meta(&dir)
            .map(|m| m.vagrant_provider)
            .unwrap_or_else(|| self.settings.default_provider.clone());
        if dir.join("Vagrantfile").is_file() {
            let vagrant = self.vagrant(&dir);
            let f = vagrant
                .run(
                    &dir,
                    &["destroy", "-f", "--machine-readable"],
                    self.settings.up_timeout,
                    true,
                    |r| report(events.as_ref(), r),
                )
                .await?;
            if !f.success {
                // With libvirt nepho can finish the job itself (the Vagrantfile may no longer
                // load, say): the machines' ids are in the project.
                if provider != "libvirt" {
                    return Err(run::failure("vagrant destroy -f", &f));
                }
                events.emit(
                    EventKind::Log,
                    EventStatus::Info,
                    &format!(
                        "vagrant destroy -f failed ({}); removing the domains through libvirt",
                        f.error_text().lines().next().unwrap_or_default()
                    ),
                    None,
                );
                self.remove_recorded_domains(&dir, events).await?;
            }
        }
        if provider == "libvirt" {
            self.remove_leftover_domains(formation, &dir, events, false)
                .await?;
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| failed(format!("removing the project {}: {e}", dir.display())))?;
        Ok(true)
    }

    /// The domains whose ids vagrant-libvirt recorded in the project.
    async fn remove_recorded_domains(
        &self,
        dir: &Path,
        events: &Arc<dyn EventSink>,
    ) -> Result<(), ProviderError> {
        let uri = self.settings.libvirt_uri.as_str();
        for machine in project::known_machines(dir) {
            let Ok(id) = std::fs::read_to_string(
                dir.join(".vagrant/machines")
                    .join(&machine)
                    .join("libvirt/id"),
            ) else {
                continue;
            };
            let id = id.trim();
            if virsh(uri, &["domname", id]).await.is_err() {
                continue;
            }
            events.emit(
                EventKind::Resource,
                EventStatus::InProgress,
                &format!("removing machine {machine} (domain {id})"),
                None,
            );
            remove_domain(uri, id).await?;
        }
        Ok(())
    }

    /// A `vagrant up` killed between creating a domain and recording its id leaves a domain
    /// Vagrant does not know. vagrant-libvirt names them `<project dir>_<machine>` and puts
    /// the Vagrantfile's path in the description: remove those (and their volumes).
    /// With `only_unrecorded`, only machines Vagrant has no id for are touched (before
    /// `vagrant up`, which would otherwise fail on the taken domain name).
    async fn remove_leftover_domains(
        &self,
        formation: &str,
        dir: &Path,
        events: &Arc<dyn EventSink>,
        only_unrecorded: bool,
    ) -> Result<(), ProviderError> {
        let uri = self.settings.libvirt_uri.as_str();
        let Ok(list) = virsh(uri, &["list", "--all", "--name"]).await else {
            return Ok(());
        };
        let prefix = format!("{formation}_");
        let source = format!("{}/Vagrantfile", dir.display());
        let recorded = |machine: &str| {
            dir.join(".vagrant/machines")
                .join(machine)
                .join("libvirt/id")
                .is_file()
        };
        for domain in list
            .lines()
            .map(str::trim)
            .filter(|d| d.starts_with(&prefix))
            .filter(|d| !only_unrecorded || !recorded(&d[prefix.len()..]))
        {
            let desc = virsh(uri, &["desc", domain]).await.unwrap_or_default();
            if !desc.contains(&source) {
                continue;
            }
            events.emit(
                EventKind::Resource,
                EventStatus::InProgress,
                &format!("removing domain {domain}, left behind by an interrupted vagrant"),
                None,
            );
            remove_domain(uri, domain).await?;
        }
        // Volumes created before their domain was defined.
        for machine in project::known_machines(dir)
            .into_iter()
            .filter(|m| !only_unrecorded || !recorded(m))
        {
            let volume = format!("{prefix}{machine}.img");
            if virsh(uri, &["vol-info", "--pool", "default", &volume])
                .await
                .is_ok()
                && !list
                    .lines()
                    .any(|d| d.trim() == format!("{prefix}{machine}"))
            {
                let _ = virsh(uri, &["vol-delete", "--pool", "default", &volume]).await;
            }
        }
        Ok(())
    }

    /// `vagrant status --machine-readable`: machine → state, in Vagrantfile order.
    async fn status(&self, dir: &Path) -> Result<Vec<(String, String)>, ProviderError> {
        let f = self
            .vagrant(dir)
            .check(dir, &["status", "--machine-readable"], STATUS_TIMEOUT)
            .await?;
        Ok(f.records
            .iter()
            .filter(|r| r.kind == "state" && !r.target.is_empty())
            .map(|r| (r.target.clone(), r.data(0).to_string()))
            .collect())
    }

    /// Whether a project's states can be read from libvirt (see `domain_state`).
    fn libvirt_probe(&self, dir: &Path) -> Result<domain_state::Probe, String> {
        if std::env::var("NEPHO_VAGRANT_STATE").is_ok_and(|v| v == "vagrant") {
            return Err("NEPHO_VAGRANT_STATE=vagrant".into());
        }
        let meta = project::read_meta(dir).ok_or("no project metadata")?;
        let mut env = BTreeMap::new();
        if let Ok(uri) = std::env::var("LIBVIRT_DEFAULT_URI") {
            env.insert("LIBVIRT_DEFAULT_URI".to_string(), uri);
        }
        env.extend(project::read_env(dir));
        domain_state::probe(dir, &meta.vagrant_provider, &env, &self.vagrant_home())
    }

    /// Machine states of several projects as `vagrant status` reports them: from libvirt
    /// where the project allows it (one virsh batch per connection for all of them), else
    /// (or when virsh fails) from `vagrant status`, run concurrently.
    async fn machine_states(
        &self,
        dirs: &[&Path],
    ) -> Vec<Result<Vec<(String, String)>, ProviderError>> {
        let fast = self.libvirt_states(dirs).await;
        let answers = dirs.iter().zip(fast).map(|(dir, fast)| async move {
            match fast {
                Ok(states) => Ok(states),
                Err(_) => self.status(dir).await,
            }
        });
        join_all(answers).await
    }

    /// The libvirt half of `machine_states`: `Err` (with why) for every project it cannot
    /// answer for.
    async fn libvirt_states(&self, dirs: &[&Path]) -> Vec<Result<Vec<(String, String)>, String>> {
        let probes: Vec<Result<domain_state::Probe, String>> =
            dirs.iter().map(|d| self.libvirt_probe(d)).collect();
        let mut by_uri: BTreeMap<&str, Vec<&domain_state::Probe>> = BTreeMap::new();
        for p in probes.iter().flatten() {
            by_uri.entry(p.uri.as_str()).or_default().push(p);
        }
        let reads = by_uri.into_iter().map(|(uri, probes)| async move {
            (uri.to_string(), read_libvirt(uri, &probes).await)
        });
        let snapshots: BTreeMap<String, Result<domain_state::Snapshot, String>> =
            join_all(reads).await.into_iter().collect();
        probes
            .into_iter()
            .map(|p| {
                let p = p?;
                match &snapshots[&p.uri] {
                    Ok(snap) => domain_state::resolve(&p, snap),
                    Err(e) => Err(e.clone()),
                }
            })
            .collect()
    }

    /// One formation's machine states, from libvirt where possible (for tests and tools
    /// that want to know the fast path answered): `Err` says why it could not.
    pub async fn libvirt_machine_states(
        &self,
        formation: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let dir = self.existing_dir(formation).map_err(|e| e.to_string())?;
        self.libvirt_states(&[dir.as_path()])
            .await
            .pop()
            .expect("one answer per project")
    }

    fn summary(
        formation: &str,
        dir: &Path,
        machines: Result<Vec<(String, String)>, ProviderError>,
    ) -> FormationSummary {
        let meta = project::read_meta(dir);
        let (state, status_reason) = match machines {
            Ok(machines) => state_of(&machines, run_in_progress(dir)),
            Err(e) => (FormationState::Unknown, Some(e.to_string())),
        };
        FormationSummary {
            name: formation.to_string(),
            provider: ProviderKind::Vagrant,
            cloudlet: meta.as_ref().map(|m| m.cloudlet.clone()),
            scenario: meta.as_ref().map(|m| m.scenario.clone()),
            state,
            status_reason,
        }
    }

    /// Formations that have a Vagrant project.
    fn projects(&self) -> Vec<(String, PathBuf)> {
        let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(&self.settings.formations_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .map(|name| {
                        let dir = self.dir_of(&name);
                        (name, dir)
                    })
                    .filter(|(_, dir)| dir.join(project::META_FILE).is_file())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }
}

/// Stops and undefines a domain (by name or UUID) with its storage.
async fn remove_domain(uri: &str, domain: &str) -> Result<(), ProviderError> {
    let _ = virsh(uri, &["destroy", domain]).await;
    let full = [
        "undefine",
        domain,
        "--remove-all-storage",
        "--managed-save",
        "--snapshots-metadata",
        "--nvram",
    ];
    if virsh(uri, &full).await.is_err() {
        virsh(uri, &["undefine", domain, "--remove-all-storage"])
            .await
            .map_err(|e| failed(format!("removing domain {domain}: {e}")))?;
    }
    Ok(())
}

async fn virsh(uri: &str, args: &[&str]) -> Result<String, String> {
    virsh_within(uri, args, Duration::from_secs(60)).await
}

/// `virsh -c URI args…` in the C locale (state words are parsed), within `limit`.
async fn virsh_within(uri: &str, args: &[&str], limit: Duration) -> Result<String, String> {
    let out = tokio::process::Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(limit, out).await {
        Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(Ok(o)) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("virsh {} timed out", args.join(" "))),
    }
}

/// How long the state batch may take before `vagrant status` is asked instead.
const VIRSH_STATE_TIMEOUT: Duration = Duration::from_secs(20);

/// Every recorded domain's state on one libvirt connection: one virsh batch, plus one for
/// the leases of the running ones.
async fn read_libvirt(
    uri: &str,
    probes: &[&domain_state::Probe],
) -> Result<domain_state::Snapshot, String> {
    let ids: std::collections::BTreeSet<String> = probes
        .iter()
        .flat_map(|p| p.machines.iter())
        .filter_map(|(_, r)| match r {
            domain_state::Recorded::Domain(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    if ids.is_empty() {
        return Ok(domain_state::Snapshot::default());
    }
    let out = virsh_within(
        uri,
        &[&domain_state::state_script(&ids)],
        VIRSH_STATE_TIMEOUT,
    )
    .await?;
    let mut snap = domain_state::parse_states(&out)?;
    let running = domain_state::running_ids(probes, &snap);
    if !running.is_empty() {
        let out = virsh_within(
            uri,
            &[&domain_state::address_script(&running)],
            VIRSH_STATE_TIMEOUT,
        )
        .await?;
        domain_state::parse_addresses(&out, &mut snap)?;
    }
    Ok(snap)
}

/// Whether a vagrant started by nepho is still running in the project.
fn run_in_progress(dir: &Path) -> bool {
    run::running_group(dir).is_some()
}

fn state_of(machines: &[(String, String)], busy: bool) -> (FormationState, Option<String>) {
    let running = machines.iter().filter(|(_, s)| s == "running").count();
    let created = machines.iter().filter(|(_, s)| s != "not_created").count();
    let total = machines.len();
    if busy {
        return (
            FormationState::Creating,
            Some(format!(
                "vagrant is running ({running} of {total} machines up)"
            )),
        );
    }
    match (running, created) {
        (0, 0) => (
            FormationState::Unknown,
            Some("no machine is created".into()),
        ),
        (0, _) => {
            // Paused, inaccessible (running without an address), crashed…: say which.
            let other: Vec<String> = machines
                .iter()
                .filter(|(_, s)| s != "shutoff" && s != "not_created")
                .map(|(m, s)| format!("{m}: {s}"))
                .collect();
            (
                FormationState::Stopped,
                (!other.is_empty()).then(|| other.join(", ")),
            )
        }
        (r, _) if r == total => (FormationState::Running, None),
        (r, _) => (
            FormationState::Running,
            Some(format!("{r} of {total} machines running")),
        ),
    }
}

/// Turns one machine-readable record into an event for the user.
fn report(events: &dyn EventSink, r: &Record) {
    match machine_readable::meaning(r) {
        Meaning::State { machine, state } => events.emit(
            EventKind::Resource,
            EventStatus::InProgress,
            &format!("machine {machine}: {state}"),
            None,
        ),
        Meaning::Action {
            machine,
            action,
            phase,
        } => {
            let status = if phase == "end" {
                EventStatus::Succeeded
            } else {
                EventStatus::Started
            };
            events.emit(
                EventKind::Resource,
                status,
                &format!("machine {machine}: {action} {phase}"),
                None,
            )
        }
        Meaning::WaitingForBoot { machine } => events.emit(
            EventKind::Resource,
            EventStatus::Waiting,
            &format!("machine {machine}: waiting for machine to boot"),
            None,
        ),
        Meaning::BoxImport { machine, text } => {
            let what = if machine.is_empty() {
                "box".to_string()
            } else {
                format!("machine {machine}: box")
            };
            events.emit(
                EventKind::Resource,
                EventStatus::InProgress,
                &format!(
                    "{what}: {}",
                    text.trim_start_matches("==> ")
                        .trim_start_matches(&format!("{machine}: "))
                        .trim()
                ),
                None,
            )
        }
        Meaning::Progress { percent, text } => events.emit(
            EventKind::Log,
            EventStatus::InProgress,
            &text,
            Some(Progress {
                done: percent,
                total: 100,
            }),
        ),
        Meaning::ErrorExit { message, .. } => {
            events.emit(EventKind::Log, EventStatus::Failed, &message, None)
        }
        Meaning::Log { level, text, .. } => {
            let status = if level == "error" {
                EventStatus::Failed
            } else {
                EventStatus::Info
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                events.emit(EventKind::Log, status, line.trim_end(), None);
            }
        }
        Meaning::Ignore => {}
    }
}

impl Provider for VagrantProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Vagrant
    }

    fn validate<'a>(&'a self, spec: &'a FormationSpec) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { self.check_spec(spec).map(|_| ()) })
    }

    fn plan_create<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move { self.plan(spec, "up") })
    }

    fn plan_update<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move {
            self.existing_dir(&spec.name)?;
            self.plan(spec, "provision")
        })
    }

    fn plan_destroy<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move {
            Ok(Plan {
                steps: vec![Step {
                    id: "destroy".into(),
                    description: format!(
                        "vagrant destroy -f and remove the project of {formation}"
                    ),
                    depends_on: vec![],
                    action: Action::Destroy {
                        formation: formation.to_string(),
                    }
                    .to_value(),
                }],
            })
        })
    }

    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepOutcome, ProviderError>> {
        Box::pin(self.run_step_impl(step, cx))
    }

    fn undo_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.undo_step_impl(step, cx))
    }

    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<FormationSummary>, ProviderError>> {
        Box::pin(async move {
            // libvirt projects: one virsh batch for all; others: `vagrant status` each, all
            // at once.
            let projects = self.projects();
            let dirs: Vec<&Path> = projects.iter().map(|(_, d)| d.as_path()).collect();
            let states = self.machine_states(&dirs).await;
            Ok(projects
                .iter()
                .zip(states)
                .map(|((name, dir), machines)| Self::summary(name, dir, machines))
                .collect())
        })
    }

    fn describe<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<FormationDetails, ProviderError>> {
        Box::pin(async move {
            let dir = self.existing_dir(formation)?;
            let meta = project::read_meta(&dir);
            let machines = self
                .machine_states(&[dir.as_path()])
                .await
                .pop()
                .expect("one answer per project")?;
            let (state, status_reason) = state_of(&machines, run_in_progress(&dir));
            let cached = std::fs::read_to_string(dir.join(project::SSH_CACHE_FILE))
                .map(|s| ssh_config::parse(&s))
                .unwrap_or_default();
            let provider = meta
                .as_ref()
                .map(|m| m.vagrant_provider.clone())
                .unwrap_or_default();
            let resources = machines
                .iter()
                .map(|(m, s)| ResourceStatus {
                    resource: m.clone(),
                    kind: "machine".into(),
                    status: s.clone(),
                    reason: cached
                        .iter()
                        .find(|e| &e.machine == m)
                        .map(|e| format!("{provider}, ssh {}@{}:{}", e.user, e.host, e.port)),
                    id: std::fs::read_to_string(
                        dir.join(".vagrant/machines")
                            .join(m)
                            .join(&provider)
                            .join("id"),
                    )
                    .ok()
                    .map(|s| s.trim().to_string()),
                })
                .collect();
            let mut outputs = BTreeMap::new();
            outputs.insert("project_dir".into(), dir.display().to_string());
            outputs.insert("vagrant_provider".into(), provider);
            for e in &cached {
                outputs.insert(
                    format!("{}.ssh", e.machine),
                    format!("{}@{}:{}", e.user, e.host, e.port),
                );
            }
            // Declared outputs, for running machines only (a stopped one's cached address
            // may be gone).
            let running: Vec<_> = cached
                .iter()
                .filter(|e| {
                    machines
                        .iter()
                        .any(|(m, s)| *m == e.machine && s == "running")
                })
                .cloned()
                .collect();
            let declared = std::fs::read_to_string(dir.join("Vagrantfile"))
                .map(|v| project::output_templates(&v))
                .unwrap_or_default();
            outputs.extend(project::outputs_from(&declared, &running));
            Ok(FormationDetails {
                summary: FormationSummary {
                    name: formation.to_string(),
                    provider: ProviderKind::Vagrant,
                    cloudlet: meta.as_ref().map(|m| m.cloudlet.clone()),
                    scenario: meta.as_ref().map(|m| m.scenario.clone()),
                    state,
                    status_reason,
                },
                resources,
                outputs,
                recent_events: Vec::new(),
            })
        })
    }

    fn preview<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Vec<PlannedChange>, ProviderError>> {
        Box::pin(async move {
            let provider = self.check_spec(spec)?;
            let dir = self.dir_of(&spec.name);
            let mut changes = Vec::new();
            if let Some(b) = project::box_source(spec)?
                && !project::box_installed(&self.vagrant_home(), &b.name, &provider)
            {
                changes.push(PlannedChange {
                    action: "add".into(),
                    resource: b.name.clone(),
                    kind: "box".into(),
                    replacement: None,
                    details: b.source.clone().or(Some("added by vagrant up".into())),
                });
            }
            let exists = dir.join("Vagrantfile").is_file();
            changes.push(PlannedChange {
                action: if exists { "modify" } else { "add" }.into(),
                resource: spec.name.clone(),
                kind: "vagrant-project".into(),
                replacement: None,
                details: Some(if exists {
                    "re-render the Vagrantfile and run vagrant provision".into()
                } else {
                    format!("vagrant up --provider={provider} in {}", dir.display())
                }),
            });
            Ok(changes)
        })
    }

    fn endpoints<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Endpoints, ProviderError>> {
        Box::pin(async move {
            let dir = self.existing_dir(formation)?;
            let text = self.ssh_config(&dir).await?;
            let mut ssh = ssh_config::parse(&text);
            // `formation:ssh` without a machine goes to the primary one, as `vagrant ssh` does.
            if let Some(primary) = std::fs::read_to_string(dir.join("Vagrantfile"))
                .ok()
                .and_then(|v| project::primary_machine(&v))
                && let Some(i) = ssh.iter().position(|e| e.machine == primary)
            {
                let e = ssh.remove(i);
                ssh.insert(0, e);
            }
            let mut outputs = BTreeMap::new();
            for e in &ssh {
                outputs.insert(
                    format!("{}.ssh", e.machine),
                    format!("{}@{}:{}", e.user, e.host, e.port),
                );
            }
            let declared = std::fs::read_to_string(dir.join("Vagrantfile"))
                .map(|v| project::output_templates(&v))
                .unwrap_or_default();
            outputs.extend(project::outputs_from(&declared, &ssh));
            Ok(Endpoints {
                url: outputs.get("url").cloned(),
                ssh,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plans journaled before the actions were typed: what `json!` made then.
    #[test]
    fn actions_are_the_json_older_journals_hold() {
        let cases = [
            (
                Action::Project {
                    provider: "libvirt".into(),
                },
                json!({"op": "project", "provider": "libvirt"}),
            ),
            (
                Action::Box {
                    name: "tiny".into(),
                    source: "/b/tiny.box".into(),
                    provider: "libvirt".into(),
                },
                json!({"op": "box", "name": "tiny", "source": "/b/tiny.box", "provider": "libvirt"}),
            ),
            (
                Action::Up {
                    provider: "virtualbox".into(),
                },
                json!({"op": "up", "provider": "virtualbox"}),
            ),
            (
                Action::Provision {
                    provider: "libvirt".into(),
                },
                json!({"op": "provision", "provider": "libvirt"}),
            ),
            (
                Action::Destroy {
                    formation: "lab".into(),
                },
                json!({"op": "destroy", "formation": "lab"}),
            ),
        ];
        for (action, old) in cases {
            assert_eq!(action.to_value().to_string(), old.to_string());
            let step = Step {
                id: "s".into(),
                description: String::new(),
                depends_on: vec![],
                action: old,
            };
            assert_eq!(Action::of(&step).unwrap(), action);
        }
        // The provider defaulted to libvirt when an action had none.
        let step = Step {
            id: "up".into(),
            description: String::new(),
            depends_on: vec![],
            action: json!({"op": "up"}),
        };
        assert_eq!(
            Action::of(&step).unwrap(),
            Action::Up {
                provider: "libvirt".into()
            }
        );
    }

    #[test]
    fn formation_state_follows_the_machines() {
        let m = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            state_of(&m(&[("a", "running")]), false).0,
            FormationState::Running
        );
        assert_eq!(
            state_of(&m(&[("a", "shutoff")]), false).0,
            FormationState::Stopped
        );
        assert_eq!(
            state_of(&m(&[("a", "running"), ("b", "shutoff")]), false),
            (
                FormationState::Running,
                Some("1 of 2 machines running".into())
            )
        );
        assert_eq!(
            state_of(&m(&[("a", "not_created")]), false).0,
            FormationState::Unknown
        );
        assert_eq!(
            state_of(&m(&[("a", "not_created")]), true).0,
            FormationState::Creating
        );
        // A domain removed behind nepho's back reads as not_created.
        assert_eq!(
            state_of(&m(&[("a", "not_created"), ("b", "not_created")]), false),
            (
                FormationState::Unknown,
                Some("no machine is created".into())
            )
        );
        assert_eq!(
            state_of(&m(&[("a", "paused"), ("b", "shutoff")]), false),
            (FormationState::Stopped, Some("a: paused".into()))
        );
    }
}
