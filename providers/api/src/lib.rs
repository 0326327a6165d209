//! The contract between nepho's engine and its providers (CloudFormation, Vagrant, KVM).
//!
//! A provider turns a rendered pattern into a [`Plan`] of idempotent [`Step`]s; the engine runs
//! the steps (in parallel where the dependency graph allows), journals each one, and publishes
//! [`Event`]s. Everything here is serializable so a plan and its progress survive a crash.

pub mod cluster;
pub mod files;
pub mod library;
pub mod machine;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use cluster::{
    AddressUsage, Capacity, ClusterOps, ClusterStatus, ClusterUsage, DiskUsage, FailoverReport,
    FailoverResult, Hold, HostMachine, HostStatus, MeasuredUsage, MigrateResult, MoveMode,
    RebalanceReport, Watch,
};
pub use library::{
    HostCopies, HostSync, ImageHolds, LibraryItem, LibraryKind, LibraryOps, LibraryUser, SyncedItem,
};
pub use machine::{
    ConsoleForward, DriveChange, DriveResize, IsoMedium, MachineOpError, MachineOps, MediaChange,
    NicChange, StorageKind, VncConsole, VncDisplay,
};

/// Version of the NDJSON event stream; bumped only for incompatible changes.
pub const EVENT_STREAM_VERSION: u32 = 1;

/// A boxed future, so the trait stays object safe (`Box<dyn Provider>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The kinds of infrastructure nepho drives. The serialized names are the directory names
/// under `patterns/` and the `provider:` values in scenarios.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// AWS CloudFormation.
    Aws,
    /// Vagrant (any Vagrant provider; libvirt by default).
    Vagrant,
    /// Native KVM/libvirt + iSCSI cluster.
    Kvm,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] =
        [ProviderKind::Aws, ProviderKind::Vagrant, ProviderKind::Kvm];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Vagrant => "vagrant",
            ProviderKind::Kvm => "kvm",
        }
    }

    /// Accepts the canonical names and the common aliases users type.
    pub fn parse(name: &str) -> Option<ProviderKind> {
        match name.to_ascii_lowercase().as_str() {
            "aws" | "cloudformation" | "cfn" => Some(ProviderKind::Aws),
            "vagrant" => Some(ProviderKind::Vagrant),
            "kvm" | "libvirt" => Some(ProviderKind::Kvm),
            _ => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file produced by rendering a pattern (a CloudFormation template, a Vagrantfile, a KVM
/// machine spec). `name` is relative to the pattern directory.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RenderedFile {
    pub name: String,
    pub contents: String,
}

/// Everything a provider needs to build a formation. Secret parameter values are present in
/// `parameters` (providers must pass them on) but their keys are listed in `secret_keys` so
/// nothing that logs or journals prints them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormationSpec {
    pub name: String,
    pub cloudlet: String,
    pub scenario: String,
    pub provider: ProviderKind,
    pub pattern: Vec<RenderedFile>,
    pub parameters: serde_json::Map<String, serde_json::Value>,
    pub secret_keys: BTreeSet<String>,
    /// The provisioner script handed off to after minimal cloud-init, if the scenario has one.
    pub provisioner: Option<PathBuf>,
    /// Files shipped to instances (native `provisioners/`, Nepho 1.x `payload/`).
    pub payload_dir: Option<PathBuf>,
    /// True for Nepho 1.x cloudlets (1.x conventions: `PayloadURL`, `NEPHO_*` variables).
    #[serde(default)]
    pub v1: bool,
    /// Per-formation working directory owned by the provider (Vagrant project dir, keys, seeds).
    pub work_dir: PathBuf,
}

impl FormationSpec {
    /// Parameters with secret values replaced, for anything that is printed or stored.
    pub fn redacted_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        self.parameters
            .iter()
            .map(|(k, v)| {
                let v = if self.secret_keys.contains(k) {
                    serde_json::Value::String(REDACTED.to_string())
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// What secrets are replaced with wherever a value would be shown.
pub const REDACTED: &str = "********";

/// Identifies a step within a plan; stable across re-plans so the journal can be replayed.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct StepId(pub String);

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StepId {
    fn from(s: &str) -> Self {
        StepId(s.to_string())
    }
}

/// One idempotent unit of work. `action` is provider-specific and opaque to the engine; it is
/// journaled, so it must never contain secret values (providers look those up from the spec).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub id: StepId,
    /// Shown to the user: "create disk web-1 (10 GiB, iSCSI)".
    pub description: String,
    pub depends_on: Vec<StepId>,
    pub action: serde_json::Value,
}

/// A dependency graph of steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("step {0} appears twice in the plan")]
    DuplicateStep(StepId),
    #[error("step {step} depends on {missing}, which is not in the plan")]
    UnknownDependency { step: StepId, missing: StepId },
    #[error("the plan has a dependency cycle through step {0}")]
    Cycle(StepId),
}

impl Plan {
    /// Checks ids are unique, dependencies exist and the graph is acyclic.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut ids = BTreeSet::new();
        for step in &self.steps {
            if !ids.insert(&step.id) {
                return Err(PlanError::DuplicateStep(step.id.clone()));
            }
        }
        for step in &self.steps {
            for dep in &step.depends_on {
                if !ids.contains(dep) {
                    return Err(PlanError::UnknownDependency {
                        step: step.id.clone(),
                        missing: dep.clone(),
                    });
                }
            }
        }
        // Kahn's algorithm: if not every step can be ordered, there is a cycle.
        let mut done: BTreeSet<StepId> = BTreeSet::new();
        loop {
            let ready = self.ready_steps(&done, &BTreeSet::new());
            if ready.is_empty() {
                break;
            }
            for step in ready {
                done.insert(step.id.clone());
            }
        }
        match self.steps.iter().find(|s| !done.contains(&s.id)) {
            Some(stuck) => Err(PlanError::Cycle(stuck.id.clone())),
            None => Ok(()),
        }
    }

    /// Steps not yet done or running whose dependencies are all done: these may run in parallel.
    pub fn ready_steps(&self, done: &BTreeSet<StepId>, running: &BTreeSet<StepId>) -> Vec<&Step> {
        self.steps
            .iter()
            .filter(|s| !done.contains(&s.id) && !running.contains(&s.id))
            .filter(|s| s.depends_on.iter().all(|d| done.contains(d)))
            .collect()
    }

    /// The order in which to undo completed steps: dependents before their dependencies.
    pub fn unwind_order(&self, done: &BTreeSet<StepId>) -> Vec<&Step> {
        let mut order = Vec::new();
        let mut remaining: BTreeSet<StepId> = done.clone();
        while !remaining.is_empty() {
            let before = remaining.len();
            for step in self.steps.iter().rev() {
                if !remaining.contains(&step.id) {
                    continue;
                }
                let has_live_dependent = self.steps.iter().any(|other| {
                    remaining.contains(&other.id) && other.depends_on.contains(&step.id)
                });
                if !has_live_dependent {
                    remaining.remove(&step.id);
                    order.push(step);
                }
            }
            if remaining.len() == before {
                // Only possible with a cycle; validate() rejects those before anything runs.
                break;
            }
        }
        order
    }
}

/// The result of running one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepOutcome {
    /// True when the step found its work already done (idempotent re-run).
    pub already_done: bool,
    /// Values later steps or outputs may use (resource ids, addresses). Never secrets.
    pub outputs: BTreeMap<String, serde_json::Value>,
}

/// How to reach a formation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoints {
    pub ssh: Vec<SshEndpoint>,
    pub url: Option<String>,
    /// Every output the provider reports (CloudFormation outputs, KVM pattern outputs).
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SshEndpoint {
    pub machine: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    /// Extra `-o` options the provider needs (e.g. a known-hosts file of its own).
    pub options: Vec<String>,
}

/// Lifecycle state of a formation as reported by its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormationState {
    Creating,
    Running,
    Updating,
    Stopped,
    Failed,
    Destroying,
    Destroyed,
    Unknown,
}

/// A formation as the provider sees it (the source of truth; local records only cache it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FormationSummary {
    pub name: String,
    pub provider: ProviderKind,
    pub cloudlet: Option<String>,
    pub scenario: Option<String>,
    pub state: FormationState,
    pub status_reason: Option<String>,
}

/// Progress of an event's step or resource, when the provider knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The formation-level operation (create, update, destroy).
    Formation,
    /// An engine step.
    Step,
    /// A provider resource (a stack resource, a libvirt domain, a Vagrant machine).
    Resource,
    /// Output of a provisioner or of a provider's tool.
    Log,
    /// `formation:stop|start|reset` of one machine or all of a formation's.
    Power,
    /// An ISO inserted into or ejected from a machine's CD-ROM.
    Media,
    /// A virtual drive attached, detached or resized.
    Drive,
    /// A network interface attached or detached.
    Nic,
    /// `cluster:failover`: a dead host's machines restarted elsewhere.
    Failover,
    /// `cluster:migrate`: a machine moved to another host.
    Migrate,
    /// `cluster:rebalance`: machines moved to even out the hosts.
    Rebalance,
    /// A host emptied of its machines (maintenance).
    Evacuate,
    /// The image and ISO library: an entry added or removed, the hosts synced.
    Library,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Started,
    InProgress,
    Waiting,
    Succeeded,
    Skipped,
    Failed,
    Cancelled,
    Info,
}

/// How much an event matters (Terraform's `@level`): what a log filter or a UI colour keys on.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EventLevel {
    #[default]
    Info,
    Warn,
    Error,
}

impl EventLevel {
    /// The level an event of this status and message has: failures are errors; cancellations,
    /// undone steps and `warning:` messages are warnings. Also how the level of a journal line
    /// written before events had one is derived.
    pub fn of(status: EventStatus, message: &str) -> EventLevel {
        match status {
            EventStatus::Failed => EventLevel::Error,
            EventStatus::Cancelled => EventLevel::Warn,
            _ if message.starts_with("warning:") => EventLevel::Warn,
            _ => EventLevel::Info,
        }
    }
}

/// One line of the versioned NDJSON event stream (`formation:events -o json`).
///
/// The stream only grows compatibly (still version 1): `level` and the machine and cluster
/// [`EventKind`]s and [`EventData`] payloads were added; a line without `level` (written
/// before it existed) gets the one [`EventLevel::of`] derives from its status.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Event {
    /// Stream version ([`EVENT_STREAM_VERSION`]).
    pub v: u32,
    /// Position in the formation's journal, starting at 1.
    pub seq: u64,
    /// RFC 3339 UTC timestamp.
    pub ts: String,
    /// The formation the event is about; empty in the cluster's own journal.
    pub formation: String,
    pub step: Option<StepId>,
    pub kind: EventKind,
    pub status: EventStatus,
    /// info | warn | error; derived from `status` when absent (journals of older versions).
    #[serde(default)]
    pub level: EventLevel,
    pub message: String,
    pub progress: Option<Progress>,
    /// Machine-readable details (see [`EventData`]). Never secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<EventData>,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        /// An event as written, any version: `level` may be missing.
        #[derive(Deserialize)]
        struct Line {
            v: u32,
            seq: u64,
            ts: String,
            formation: String,
            step: Option<StepId>,
            kind: EventKind,
            status: EventStatus,
            #[serde(default)]
            level: Option<EventLevel>,
            message: String,
            progress: Option<Progress>,
            #[serde(default)]
            data: Option<EventData>,
        }
        let line = Line::deserialize(deserializer)?;
        Ok(Event {
            level: line
                .level
                .unwrap_or_else(|| EventLevel::of(line.status, &line.message)),
            v: line.v,
            seq: line.seq,
            ts: line.ts,
            formation: line.formation,
            step: line.step,
            kind: line.kind,
            status: line.status,
            message: line.message,
            progress: line.progress,
            data: line.data,
        })
    }
}

/// The machine-readable details of an event, written without a tag so journals keep the
/// shapes they always had: `{"op": "create"}` on a run's formation events (with `"steps"` on
/// the plan event), `{"outputs": {...}}` on finished steps, and `{"operation": "power", ...}`
/// on machine and cluster operations. Anything else read back is kept as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EventData {
    Operation(OperationData),
    Run(RunData),
    Outputs(StepOutputs),
    Other(serde_json::Value),
}

impl EventData {
    /// `{"op": op}`: the run (create, update, destroy) a formation event belongs to.
    pub fn run(op: &str) -> EventData {
        EventData::Run(RunData {
            op: op.to_string(),
            steps: None,
        })
    }

    /// The run's operation, when the event belongs to one.
    pub fn op(&self) -> Option<&str> {
        match self {
            EventData::Run(run) => Some(&run.op),
            EventData::Other(v) => v.get("op")?.as_str(),
            _ => None,
        }
    }
}

/// A run of the engine (create, update, destroy) and, on its plan event, the plan's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunData {
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<PlannedStep>>,
}

/// A step as the plan event lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedStep {
    pub id: StepId,
    pub description: String,
    pub depends_on: Vec<StepId>,
}

/// What a finished step handed on to later steps (its [`StepOutcome::outputs`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepOutputs {
    pub outputs: BTreeMap<String, serde_json::Value>,
}

/// What a device operation did to a machine's drive or network interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceAction {
    Attach,
    Detach,
    Resize,
}

/// A machine or cluster operation outside the engine's runs, as journaled (tagged by
/// `operation`, which names its [`EventKind`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum OperationData {
    Power {
        formation: String,
        /// None: every machine of the formation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        machine: Option<String>,
        action: PowerAction,
    },
    Media {
        formation: String,
        machine: String,
        /// The ISO inserted; none: the drive was ejected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iso: Option<String>,
    },
    Drive {
        formation: String,
        machine: String,
        drive: String,
        action: DeviceAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_gb: Option<u64>,
    },
    Nic {
        formation: String,
        machine: String,
        nic: String,
        action: DeviceAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
    Failover {
        /// The dead host.
        host: String,
    },
    Migrate {
        formation: String,
        machine: String,
        from: String,
        to: String,
        live: bool,
    },
    Rebalance {},
    Evacuate {
        host: String,
    },
    Library {
        /// `add`, `replace`, `remove` or `sync`.
        action: String,
        /// None for `sync` (every entry).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<library::LibraryKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The entry's SHA-256 (add, replace).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
}

impl OperationData {
    /// The kind of the events that journal this operation.
    pub fn kind(&self) -> EventKind {
        match self {
            OperationData::Power { .. } => EventKind::Power,
            OperationData::Media { .. } => EventKind::Media,
            OperationData::Drive { .. } => EventKind::Drive,
            OperationData::Nic { .. } => EventKind::Nic,
            OperationData::Failover { .. } => EventKind::Failover,
            OperationData::Migrate { .. } => EventKind::Migrate,
            OperationData::Rebalance {} => EventKind::Rebalance,
            OperationData::Library { .. } => EventKind::Library,
            OperationData::Evacuate { .. } => EventKind::Evacuate,
        }
    }

    /// The formation the operation is about, if it is about one.
    pub fn formation(&self) -> Option<&str> {
        match self {
            OperationData::Power { formation, .. }
            | OperationData::Media { formation, .. }
            | OperationData::Drive { formation, .. }
            | OperationData::Nic { formation, .. }
            | OperationData::Migrate { formation, .. } => Some(formation),
            _ => None,
        }
    }
}

impl fmt::Display for OperationData {
    /// For people: "stop web of agmedia", "migrate web of agmedia from h1 to h2 (live)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let of = |machine: &str, formation: &str| format!("{machine} of {formation}");
        match self {
            OperationData::Power {
                formation,
                machine,
                action,
            } => match machine {
                Some(m) => write!(f, "{action} {}", of(m, formation)),
                None => write!(f, "{action} {formation}"),
            },
            OperationData::Media {
                formation,
                machine,
                iso,
            } => match iso {
                Some(iso) => write!(f, "insert {iso} into {}", of(machine, formation)),
                None => write!(f, "eject the ISO of {}", of(machine, formation)),
            },
            OperationData::Drive {
                formation,
                machine,
                drive,
                action,
                size_gb,
            } => {
                let size = size_gb.map(|g| format!(" ({g} GiB)")).unwrap_or_default();
                let action = serde_json::to_value(action).unwrap_or_default();
                let action = action.as_str().unwrap_or("change");
                write!(
                    f,
                    "{action} drive {drive}{size} of {}",
                    of(machine, formation)
                )
            }
            OperationData::Nic {
                formation,
                machine,
                nic,
                action,
                network,
            } => {
                let on = network
                    .as_ref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default();
                let action = serde_json::to_value(action).unwrap_or_default();
                let action = action.as_str().unwrap_or("change");
                write!(
                    f,
                    "{action} interface {nic}{on} of {}",
                    of(machine, formation)
                )
            }
            OperationData::Failover { host } => write!(f, "fail over the machines of {host}"),
            OperationData::Migrate {
                formation,
                machine,
                from,
                to,
                live,
            } => write!(
                f,
                "migrate {} from {from} to {to}{}",
                of(machine, formation),
                if *live { " (live)" } else { "" }
            ),
            OperationData::Rebalance {} => f.write_str("rebalance the cluster"),
            OperationData::Evacuate { host } => write!(f, "evacuate {host}"),
            OperationData::Library {
                action, kind, name, ..
            } => match (kind, name) {
                (Some(kind), Some(name)) => write!(f, "library: {action} {kind} {name}"),
                _ => write!(f, "library: {action} every host"),
            },
        }
    }
}

/// Where a provider reports what it is doing while a step runs.
pub trait EventSink: Send + Sync {
    fn emit(&self, kind: EventKind, status: EventStatus, message: &str, progress: Option<Progress>);
}

/// Context handed to a running step (owned, so steps can run concurrently).
pub struct StepContext<'a> {
    pub spec: &'a FormationSpec,
    /// Outputs of steps already done, keyed by step id (a snapshot taken when the step started).
    pub outputs: BTreeMap<StepId, BTreeMap<String, serde_json::Value>>,
    pub events: std::sync::Arc<dyn EventSink>,
}

/// One change a create or update would make (`formation:create --dry-run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedChange {
    /// add | modify | remove
    pub action: String,
    /// The resource's name in the pattern (logical id, machine name).
    pub resource: String,
    /// Provider type (`AWS::EC2::Instance`, `machine`, `disk`).
    pub kind: String,
    /// Whether the change replaces the resource: true | false | conditional (CloudFormation's words).
    pub replacement: Option<String>,
    pub details: Option<String>,
}

/// One resource of a formation and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceStatus {
    pub resource: String,
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    /// Provider id (physical resource id, domain UUID).
    pub id: Option<String>,
}

/// Everything `formation:describe` shows, read from the infrastructure.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FormationDetails {
    pub summary: FormationSummary,
    pub resources: Vec<ResourceStatus>,
    pub outputs: BTreeMap<String, String>,
    /// Most recent provider events, newest last, already formatted for people.
    pub recent_events: Vec<String>,
}

/// A provider failure a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider's tool, daemon or API is not installed or not reachable.
    #[error("{message}")]
    Unavailable {
        message: String,
        hint: Option<String>,
    },
    /// The rendered pattern or parameters were rejected.
    #[error("{message}")]
    Invalid {
        message: String,
        hint: Option<String>,
    },
    /// The formation or a resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The infrastructure reported a failure (a stack rolled back, a domain failed to start).
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    #[error("cancelled")]
    Cancelled,
}

/// One provider implementation. Every method must be safe to call again after a crash:
/// `run_step` and `undo_step` are idempotent, and what exists is read back from the
/// infrastructure (stack tags, domain metadata, the Vagrant working directory).
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Checks the rendered pattern without touching infrastructure.
    fn validate<'a>(&'a self, spec: &'a FormationSpec) -> BoxFuture<'a, Result<(), ProviderError>>;

    fn plan_create<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>>;

    fn plan_update<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>>;

    fn plan_destroy<'a>(&'a self, formation: &'a str)
    -> BoxFuture<'a, Result<Plan, ProviderError>>;

    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepOutcome, ProviderError>>;

    /// Reverses a completed step (rollback after a failed create).
    fn undo_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<FormationSummary>, ProviderError>>;

    fn describe<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<FormationDetails, ProviderError>>;

    /// What a create (or update, when the formation exists) would change, without changing it.
    fn preview<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Vec<PlannedChange>, ProviderError>>;

    fn endpoints<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Endpoints, ProviderError>>;

    /// `formation:stop|start|reset`: one machine, or all of the formation's machines when
    /// `machine` is `None`. Providers without machines to power (CloudFormation) keep the default.
    fn power<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        action: PowerAction,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        let _ = (formation, machine);
        let kind = self.kind();
        Box::pin(async move {
            Err(ProviderError::Invalid {
                message: format!("formation:{action} is not supported by the {kind} provider"),
                hint: Some("it works on kvm and vagrant formations".into()),
            })
        })
    }

    /// The machine operations this provider offers (power, media, drives, NICs, console), if
    /// any. CloudFormation has none.
    fn machines(&self) -> Option<&dyn MachineOps> {
        None
    }

    /// The cluster this provider manages (status, usage, failover, migration), if any.
    fn cluster(&self) -> Option<&dyn ClusterOps> {
        None
    }

    /// The image and ISO library on the cluster's hosts, if the provider has one.
    fn library(&self) -> Option<&dyn LibraryOps> {
        None
    }
}

/// Runs futures concurrently on the current task and returns their outputs in order. No
/// spawning, so the futures may borrow (the provider, a step): what providers use to wait on
/// several machines at once and test drivers use to run ready steps together.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in futures.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| r.expect("every future finished"))
        .collect()
}

/// What `formation:stop|start|reset` asks of a formation's machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    /// Clean shutdown (ACPI / `vagrant halt`), forced after a timeout.
    Stop,
    /// Start stopped machines.
    Start,
    /// Hard reset (`virsh reset`, `vagrant reload`); stopped machines are started.
    Reset,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Stop => "stop",
            PowerAction::Start => "start",
            PowerAction::Reset => "reset",
        }
    }
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---- outputs: `${machine.address}` templates (KVM patterns, Vagrantfile annotations) ----

/// The `x` of every `${x.address}` in `text`.
pub fn address_references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        if let Some(name) = after[..end].strip_suffix(".address") {
            out.push(name.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

/// Replaces `${x.address}` using `address_of(x)`; unknown references stay as they are.
pub fn substitute_addresses(
    text: &str,
    address_of: &(dyn Fn(&str) -> Option<String> + Sync),
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        match inner.strip_suffix(".address").and_then(address_of) {
            Some(v) => out.push_str(&v),
            None => {
                out.push_str("${");
                out.push_str(inner);
                out.push('}');
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, deps: &[&str]) -> Step {
        Step {
            id: id.into(),
            description: id.to_string(),
            depends_on: deps.iter().map(|d| StepId::from(*d)).collect(),
            action: serde_json::Value::Null,
        }
    }

    #[test]
    fn independent_steps_are_ready_together() {
        let plan = Plan {
            steps: vec![
                step("disk-a", &[]),
                step("disk-b", &[]),
                step("vm-a", &["disk-a"]),
            ],
        };
        plan.validate().unwrap();
        let ready: Vec<_> = plan
            .ready_steps(&BTreeSet::new(), &BTreeSet::new())
            .iter()
            .map(|s| s.id.0.clone())
            .collect();
        assert_eq!(ready, ["disk-a", "disk-b"]);
        let done = BTreeSet::from([StepId::from("disk-a")]);
        let running = BTreeSet::from([StepId::from("disk-b")]);
        let ready: Vec<_> = plan
            .ready_steps(&done, &running)
            .iter()
            .map(|s| s.id.0.clone())
            .collect();
        assert_eq!(ready, ["vm-a"]);
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_rejected() {
        let cyclic = Plan {
            steps: vec![step("a", &["b"]), step("b", &["a"])],
        };
        assert!(matches!(cyclic.validate(), Err(PlanError::Cycle(_))));
        let dangling = Plan {
            steps: vec![step("a", &["zzz"])],
        };
        assert!(matches!(
            dangling.validate(),
            Err(PlanError::UnknownDependency { .. })
        ));
        let dup = Plan {
            steps: vec![step("a", &[]), step("a", &[])],
        };
        assert_eq!(dup.validate(), Err(PlanError::DuplicateStep("a".into())));
    }

    #[test]
    fn unwind_removes_dependents_first() {
        let plan = Plan {
            steps: vec![
                step("net", &[]),
                step("disk", &[]),
                step("vm", &["net", "disk"]),
                step("dns", &["vm"]),
            ],
        };
        let done: BTreeSet<StepId> = ["net", "disk", "vm", "dns"]
            .iter()
            .map(|s| StepId::from(*s))
            .collect();
        let order: Vec<_> = plan
            .unwind_order(&done)
            .iter()
            .map(|s| s.id.0.clone())
            .collect();
        let pos = |id: &str| order.iter().position(|s| s == id).unwrap();
        assert!(pos("dns") < pos("vm"));
        assert!(pos("vm") < pos("net") && pos("vm") < pos("disk"));
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn provider_names_and_aliases() {
        assert_eq!(
            ProviderKind::parse("CloudFormation"),
            Some(ProviderKind::Aws)
        );
        assert_eq!(ProviderKind::parse("libvirt"), Some(ProviderKind::Kvm));
        assert_eq!(ProviderKind::parse("openstack"), None);
        assert_eq!(
            serde_json::to_string(&ProviderKind::Vagrant).unwrap(),
            "\"vagrant\""
        );
    }

    #[test]
    fn redaction_hides_secret_values() {
        let mut parameters = serde_json::Map::new();
        parameters.insert("db_password".into(), "hunter2".into());
        parameters.insert("size".into(), 3.into());
        let spec = FormationSpec {
            name: "f".into(),
            cloudlet: "c".into(),
            scenario: "default".into(),
            provider: ProviderKind::Kvm,
            pattern: vec![],
            parameters,
            secret_keys: BTreeSet::from(["db_password".to_string()]),
            provisioner: None,
            payload_dir: None,
            v1: false,
            work_dir: PathBuf::from("/tmp"),
        };
        let shown = serde_json::to_string(&spec.redacted_parameters()).unwrap();
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains(REDACTED));
    }
}
