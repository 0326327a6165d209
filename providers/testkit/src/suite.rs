//! The conformance suite: what every provider must do against its real backend, checked the
//! same way for each, every plan run by the real engine with a real journal. A formation goes
//! through create (the engine crashing mid-way, then resuming from its journal) → list →
//! describe → endpoints → an idempotent re-run of the whole create → preview → update →
//! power (stop, start) → destroy (twice) → gone from list and describe; and a second
//! formation's create fails at its last step and is rolled back, leaving nothing.
//! [`Conformance`] runs one phase per call so a provider's test can check its own specifics in
//! between (ssh into a machine, a stack's tags); when it is dropped without every phase having
//! run, the test fails.

use std::collections::BTreeSet;
use std::sync::Arc;

use nepho_engine::journal;
use nepho_engine::{Harness, Operation, Outcome, RunOptions};
use nepho_provider_api::{
    BoxFuture, Endpoints, EventData, EventKind, EventStatus, FormationDetails, FormationSpec,
    FormationState, FormationSummary, OperationData, Plan, PlannedChange, PowerAction, Provider,
    ProviderError, Step, StepContext, StepOutcome,
};

use crate::recorder::Recorder;
use crate::runs::{EngineRun, Outcomes};

/// The backend itself, asked without going through the provider: is anything of the
/// formation there (a stack in DescribeStacks, a domain in `virsh list`)?
pub trait Backend: Sync {
    fn exists<'a>(&'a self, formation: &'a str) -> BoxFuture<'a, bool>;
}

/// A set of a plan's steps.
#[derive(Debug, Clone, Copy)]
pub enum Steps<'a> {
    All,
    Only(&'a [&'a str]),
}

impl Steps<'_> {
    fn contains(&self, id: &str) -> bool {
        match self {
            Steps::All => true,
            Steps::Only(ids) => ids.contains(&id),
        }
    }

    fn of<'p>(&self, plan: &'p Plan) -> Vec<&'p str> {
        plan.steps
            .iter()
            .map(|s| s.id.0.as_str())
            .filter(|id| self.contains(id))
            .collect()
    }
}

/// Where providers legitimately differ.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// How many create steps finish before the simulated crash (at least 1, fewer than all).
    pub crash_after: usize,
    /// Create steps that find their work done when they run again: on an idempotent re-run
    /// of a finished create, and as the interrupted step of a resume. (Steps that wait or
    /// record, like a readiness check, may do their work again.)
    pub rerun_already_done: Steps<'a>,
    /// Destroy steps that find nothing to do when the same destroy runs a second time; they
    /// must have had work the first time.
    pub destroy_rerun_already_done: Steps<'a>,
    /// Whether the provider has machines to stop and start (the power phase); without, the
    /// phase only logs why it is skipped.
    pub power: bool,
    /// Kinds of resource a preview lists as `modify` even when nothing changed (Vagrant
    /// re-renders its project and provisions again on every update).
    pub preview_always_modifies: &'a [&'a str],
    /// Why the backend cannot preview changes to an existing formation (a test double's
    /// gap); the phase logs it and checks only that a preview of the change answers.
    pub preview_gap: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Create,
    List,
    Describe,
    Endpoints,
    Rerun,
    Preview,
    Update,
    Power,
    Destroy,
    Rollback,
}

const PHASES: [Phase; 10] = [
    Phase::Create,
    Phase::List,
    Phase::Describe,
    Phase::Endpoints,
    Phase::Rerun,
    Phase::Preview,
    Phase::Update,
    Phase::Power,
    Phase::Destroy,
    Phase::Rollback,
];

/// One formation through the suite. Every phase must run once; list, describe, endpoints,
/// the re-run, preview, update and power come after create and before destroy; the rollback
/// (of another formation) may come at any time.
pub struct Conformance<'a> {
    provider: &'a dyn Provider,
    backend: &'a dyn Backend,
    spec: FormationSpec,
    expect: Expect<'a>,
    /// Events of every phase.
    pub events: Arc<Recorder>,
    /// The formation's journal, which every run of the engine writes.
    journal: EngineRun,
    plan: Option<Plan>,
    ran: BTreeSet<Phase>,
}

impl<'a> Conformance<'a> {
    pub fn new(
        provider: &'a dyn Provider,
        backend: &'a dyn Backend,
        spec: FormationSpec,
        expect: Expect<'a>,
    ) -> Conformance<'a> {
        let events = Arc::new(Recorder::default());
        Conformance {
            provider,
            backend,
            journal: EngineRun::new(&spec.name, events.clone()),
            spec,
            expect,
            events,
            plan: None,
            ran: BTreeSet::new(),
        }
    }

    /// Every phase in order, for a provider with nothing of its own to check in between:
    /// `changed` is the update, `doomed` (with its backend) the formation rolled back.
    pub async fn run_all(
        mut self,
        changed: FormationSpec,
        rollback_backend: &dyn Backend,
        doomed: FormationSpec,
    ) {
        self.create().await;
        self.list().await;
        self.describe().await;
        self.endpoints().await;
        self.rerun().await;
        self.preview(&changed).await;
        self.update(changed, |_| Ok(())).await;
        self.power().await;
        self.destroy().await;
        self.rollback(rollback_backend, doomed).await;
    }

    pub fn spec(&self) -> &FormationSpec {
        &self.spec
    }

    /// The create plan (after [`create`](Self::create)).
    pub fn plan(&self) -> &Plan {
        self.plan.as_ref().expect("create ran")
    }

    fn enter(&mut self, phase: Phase) {
        assert!(self.ran.insert(phase), "{phase:?} ran twice");
        if phase == Phase::Rollback {
            return;
        }
        if phase != Phase::Create {
            assert!(self.ran.contains(&Phase::Create), "{phase:?} before create");
        }
        if phase != Phase::Destroy {
            assert!(
                !self.ran.contains(&Phase::Destroy),
                "{phase:?} after destroy"
            );
        }
    }

    /// Create through the engine, which crashes once `crash_after` steps are journaled;
    /// the journal line of the last of them is then torn, as a crash between that step's
    /// work and its journal line leaves it. The engine's resume re-runs that interrupted step
    /// (it must find its work done when it is in `rerun_already_done`) and finishes the rest.
    /// Every step doing its first run does real work (`already_done` is false). Returns the
    /// outcomes as the journal holds them after the resume.
    pub async fn create(&mut self) -> Outcomes {
        self.enter(Phase::Create);
        let name = &self.spec.name;
        assert!(
            !self.backend.exists(name).await,
            "{name} exists before the create"
        );
        let plan = self.provider.plan_create(&self.spec).await.unwrap();
        let crash_after = self.expect.crash_after;
        assert!(
            (1..plan.steps.len()).contains(&crash_after),
            "a crash after {crash_after} of {} steps is not mid-run",
            plan.steps.len()
        );
        let harness = Harness {
            plan: Some(plan.clone()),
            stop_after_steps: Some(crash_after),
        };
        let (outcome, before) = self
            .journal
            .run(
                self.provider,
                &self.spec,
                Operation::Create,
                no_rollback(false),
                harness,
            )
            .await;
        match outcome {
            Outcome::Cancelled => {}
            Outcome::Failed(e) => {
                let step = self.journal.failed_step(before);
                panic!("create step {step}: {e}")
            }
            Outcome::Succeeded => panic!("the create finished before its crash"),
        }
        let crashed = self.journal.outcomes_after(before);
        assert_eq!(crashed.len(), crash_after, "{crashed:?}");
        for (id, outcome) in &crashed {
            assert!(!outcome.already_done, "{id} found a fresh formation done");
        }
        let torn = self.journal.tear_last_line();
        let interrupted = match (&torn.step, torn.kind, torn.status) {
            (Some(id), EventKind::Step, EventStatus::Succeeded) => id.clone(),
            _ => panic!("the crash came after {torn:?}, not after a step"),
        };
        // What the engine reads back: the torn step is interrupted, the others done.
        let events = self.journal.events();
        let start = journal::last_run_start(&events).expect("the run's start is journaled");
        assert_eq!(journal::run_finished(&events, start), None);
        assert!(
            journal::interrupted_steps(&events, start).contains(&interrupted),
            "{interrupted} is not interrupted"
        );
        let journaled: BTreeSet<_> = journal::finished_steps(&events, start)
            .into_keys()
            .collect();
        assert_eq!(journaled.len(), crash_after - 1);

        let harness = Harness {
            plan: Some(plan.clone()),
            stop_after_steps: None,
        };
        let (outcome, resumed_at) = self
            .journal
            .run(
                self.provider,
                &self.spec,
                Operation::Create,
                no_rollback(true),
                harness,
            )
            .await;
        if let Outcome::Failed(e) = &outcome {
            let step = self.journal.failed_step(resumed_at);
            panic!("resumed create step {step}: {e}");
        }
        assert!(matches!(outcome, Outcome::Succeeded), "{outcome:?}");
        let resumed = self.journal.outcomes_after(resumed_at);
        for step in &plan.steps {
            if journaled.contains(&step.id) {
                assert!(
                    !resumed.contains_key(&step.id),
                    "{} ran again though its end was journaled",
                    step.id
                );
                continue;
            }
            let outcome = resumed
                .get(&step.id)
                .unwrap_or_else(|| panic!("{} did not run", step.id));
            if step.id == interrupted {
                if self.expect.rerun_already_done.contains(&step.id.0) {
                    assert!(
                        outcome.already_done,
                        "the interrupted step {} did its work again on resume",
                        step.id
                    );
                }
            } else {
                assert!(
                    !outcome.already_done,
                    "{} found its work done on its first run",
                    step.id
                );
            }
        }
        assert!(self.backend.exists(name).await, "{name} is not there");
        self.plan = Some(plan);
        self.journal.outcomes_after(0)
    }

    /// `list` shows the formation once, running, with its cloudlet and provider.
    pub async fn list(&mut self) -> FormationSummary {
        self.enter(Phase::List);
        let name = &self.spec.name;
        let list = self.provider.list().await.unwrap();
        let mine: Vec<_> = list.iter().filter(|s| &s.name == name).collect();
        assert_eq!(mine.len(), 1, "{name} in {list:?}");
        let summary = mine[0].clone();
        assert_eq!(summary.state, FormationState::Running, "{summary:?}");
        assert_eq!(summary.provider, self.provider.kind());
        assert_eq!(
            summary.cloudlet.as_deref(),
            Some(self.spec.cloudlet.as_str())
        );
        summary
    }

    /// `describe` reads the formation back, running, with its resources.
    pub async fn describe(&mut self) -> FormationDetails {
        self.enter(Phase::Describe);
        let details = self.provider.describe(&self.spec.name).await.unwrap();
        assert_eq!(details.summary.name, self.spec.name);
        assert_eq!(details.summary.state, FormationState::Running);
        assert!(!details.resources.is_empty(), "{details:?}");
        details
    }

    /// `endpoints` answers, and every ssh endpoint says where and as whom.
    pub async fn endpoints(&mut self) -> Endpoints {
        self.enter(Phase::Endpoints);
        let endpoints = self.provider.endpoints(&self.spec.name).await.unwrap();
        for ssh in &endpoints.ssh {
            assert!(
                !ssh.host.is_empty() && !ssh.user.is_empty() && ssh.port != 0,
                "{ssh:?}"
            );
        }
        endpoints
    }

    /// The whole create runs again on the finished formation (a resume after a crash at the
    /// very end): the `rerun_already_done` steps find their work done, and there is still
    /// one formation.
    pub async fn rerun(&mut self) -> Outcomes {
        self.enter(Phase::Rerun);
        let plan = self.plan.clone().expect("create ran");
        let again = self
            .run(Operation::Create, Some(plan.clone()), "re-run")
            .await;
        let plan = &plan;
        for id in self.expect.rerun_already_done.of(plan) {
            assert!(
                again[&id.into()].already_done,
                "{id} should find its work done"
            );
        }
        let list = self.provider.list().await.unwrap();
        assert_eq!(
            list.iter().filter(|s| s.name == self.spec.name).count(),
            1,
            "{list:?}"
        );
        again
    }

    /// Preview: of the formation as it is, nothing to change (but the `modify` of kinds in
    /// `preview_always_modifies`); of `changed`, at least one change. Returns the latter.
    pub async fn preview(&mut self, changed: &FormationSpec) -> Vec<PlannedChange> {
        self.enter(Phase::Preview);
        if let Some(gap) = self.expect.preview_gap {
            eprintln!("conformance: preview checks skipped: {gap}");
            return self.provider.preview(changed).await.unwrap();
        }
        let same = self.provider.preview(&self.spec).await.unwrap();
        let always = self.expect.preview_always_modifies;
        let unexpected: Vec<_> = same
            .iter()
            .filter(|c| !(c.action == "modify" && always.contains(&c.kind.as_str())))
            .collect();
        assert!(
            unexpected.is_empty(),
            "a preview of the unchanged formation lists changes: {unexpected:?}"
        );
        let changes = self.provider.preview(changed).await.unwrap();
        assert!(
            !changes.is_empty(),
            "a preview of the changed formation lists no change"
        );
        changes
    }

    /// Update to `changed` through the engine (the provider plans it): it succeeds, the
    /// formation runs, and `shows` finds the change in what describe reads back. From here
    /// on, the suite's spec is `changed`.
    pub async fn update(
        &mut self,
        changed: FormationSpec,
        shows: impl FnOnce(&FormationDetails) -> Result<(), String>,
    ) -> FormationDetails {
        self.enter(Phase::Update);
        assert_eq!(
            changed.name, self.spec.name,
            "an update of another formation"
        );
        self.spec = changed;
        self.run(Operation::Update, None, "update").await;
        let details = self.provider.describe(&self.spec.name).await.unwrap();
        assert_eq!(
            details.summary.state,
            FormationState::Running,
            "{details:?}"
        );
        if let Err(e) = shows(&details) {
            panic!("the update does not show: {e}\n{details:?}");
        }
        details
    }

    /// Stop every machine, then start them again, each journaled as the ops layer journals
    /// it (`nepho_engine::record_operation`): describe says stopped, then running, and the
    /// endpoints answer. Skipped, saying why, for a provider without machines.
    pub async fn power(&mut self) {
        self.enter(Phase::Power);
        let name = self.spec.name.clone();
        if !self.expect.power {
            eprintln!(
                "conformance: power phase skipped: the {} provider has no machines to stop and start",
                self.provider.kind()
            );
            return;
        }
        for (action, state) in [
            (PowerAction::Stop, FormationState::Stopped),
            (PowerAction::Start, FormationState::Running),
        ] {
            let data = OperationData::Power {
                formation: name.clone(),
                machine: None,
                action,
            };
            let before = self.journal.events().last().map_or(0, |e| e.seq);
            self.journal
                .record_operation(data.clone(), self.provider.power(&name, None, action))
                .await
                .unwrap_or_else(|e| panic!("{action} {name}: {e}"));
            let journaled: Vec<_> = self
                .journal
                .events()
                .into_iter()
                .filter(|e| e.seq > before)
                .map(|e| (e.kind, e.status, e.data))
                .collect();
            let data = Some(EventData::Operation(data));
            assert_eq!(
                journaled,
                [
                    (EventKind::Power, EventStatus::Started, data.clone()),
                    (EventKind::Power, EventStatus::Succeeded, data),
                ],
                "{action} is journaled"
            );
            let details = self.provider.describe(&name).await.unwrap();
            assert_eq!(details.summary.state, state, "after {action}: {details:?}");
        }
        self.provider.endpoints(&name).await.unwrap();
    }

    /// Destroy removes everything from the backend; list no longer shows the formation;
    /// describe and endpoints say NotFound; the same destroy again succeeds with nothing to
    /// do. Returns the first destroy's outcomes.
    pub async fn destroy(&mut self) -> Outcomes {
        self.enter(Phase::Destroy);
        let name = self.spec.name.clone();
        let plan = self.provider.plan_destroy(&name).await.unwrap();
        let outcomes = self
            .run(Operation::Destroy, Some(plan.clone()), "destroy")
            .await;
        let again = self
            .run(Operation::Destroy, Some(plan.clone()), "second destroy")
            .await;
        for id in self.expect.destroy_rerun_already_done.of(&plan) {
            assert!(!outcomes[&id.into()].already_done, "{id} had nothing to do");
            assert!(
                again[&id.into()].already_done,
                "{id} found something to do again"
            );
        }
        assert_gone(self.provider, self.backend, &name).await;
        outcomes
    }
}

impl Conformance<'_> {
    /// A create of `doomed` (another formation, seen through `backend`) whose last step
    /// fails: the engine rolls back what the steps before it built, and nothing of it is
    /// left in the backend, list, describe or endpoints.
    pub async fn rollback(&mut self, backend: &dyn Backend, doomed: FormationSpec) {
        self.enter(Phase::Rollback);
        assert_ne!(
            doomed.name, self.spec.name,
            "the rollback needs a formation of its own"
        );
        let name = doomed.name.clone();
        assert!(
            !backend.exists(&name).await,
            "{name} exists before the create"
        );
        let plan = self.provider.plan_create(&doomed).await.unwrap();
        let last = plan.steps.last().expect("a plan with steps").id.clone();
        let failing = FailingStep {
            inner: self.provider,
            step: last.0.clone(),
        };
        let run = EngineRun::new(&name, self.events.clone());
        let options = RunOptions {
            resume: false,
            rollback: true,
        };
        let harness = Harness {
            plan: Some(plan.clone()),
            stop_after_steps: None,
        };
        let (outcome, _) = run
            .run(&failing, &doomed, Operation::Create, options, harness)
            .await;
        assert!(
            matches!(&outcome, Outcome::Failed(ProviderError::Failed { message, .. }) if message.contains("injected")),
            "{outcome:?}"
        );
        let events = run.events();
        let undone: BTreeSet<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::Step && e.status == EventStatus::Cancelled)
            .filter_map(|e| e.step.clone())
            .collect();
        // Every step is undone, the failed one too: it may have made part of its resource
        // before failing, and undo is idempotent.
        let built: BTreeSet<_> = plan.steps.iter().map(|s| s.id.clone()).collect();
        assert_eq!(
            undone, built,
            "every step up to the failed {last} is undone"
        );
        let failures: Vec<_> = events
            .iter()
            .filter(|e| e.message.starts_with("could not undo"))
            .map(|e| e.message.clone())
            .collect();
        assert!(failures.is_empty(), "{failures:?}");
        assert_gone(self.provider, backend, &name).await;
    }

    /// Runs `op` through the engine (with `plan`, or the provider's own), which must succeed.
    async fn run(&self, op: Operation, plan: Option<Plan>, what: &str) -> Outcomes {
        let harness = Harness {
            plan,
            stop_after_steps: None,
        };
        let (outcome, before) = self
            .journal
            .run(self.provider, &self.spec, op, no_rollback(false), harness)
            .await;
        match outcome {
            Outcome::Succeeded => self.journal.outcomes_after(before),
            Outcome::Failed(e) => {
                let step = self.journal.failed_step(before);
                panic!("{what} step {step}: {e}")
            }
            Outcome::Cancelled => panic!("{what} was cancelled"),
        }
    }
}

fn no_rollback(resume: bool) -> RunOptions {
    RunOptions {
        resume,
        rollback: false,
    }
}

/// A provider whose `step` fails before doing anything (a failure injected at that step);
/// everything else is the real provider's.
struct FailingStep<'a> {
    inner: &'a dyn Provider,
    step: String,
}

impl Provider for FailingStep<'_> {
    fn kind(&self) -> nepho_provider_api::ProviderKind {
        self.inner.kind()
    }
    fn validate<'a>(&'a self, spec: &'a FormationSpec) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.inner.validate(spec)
    }
    fn plan_create<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        self.inner.plan_create(spec)
    }
    fn plan_update<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        self.inner.plan_update(spec)
    }
    fn plan_destroy<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        self.inner.plan_destroy(formation)
    }
    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepOutcome, ProviderError>> {
        if step.id.0 == self.step {
            return Box::pin(async move {
                Err(ProviderError::Failed {
                    message: format!("{}: a failure injected by the conformance suite", step.id),
                    hint: None,
                })
            });
        }
        self.inner.run_step(step, cx)
    }
    fn undo_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.inner.undo_step(step, cx)
    }
    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<FormationSummary>, ProviderError>> {
        self.inner.list()
    }
    fn describe<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<FormationDetails, ProviderError>> {
        self.inner.describe(formation)
    }
    fn preview<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Vec<PlannedChange>, ProviderError>> {
        self.inner.preview(spec)
    }
    fn endpoints<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Endpoints, ProviderError>> {
        self.inner.endpoints(formation)
    }
}

impl Drop for Conformance<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let skipped: Vec<_> = PHASES.iter().filter(|p| !self.ran.contains(p)).collect();
        assert!(
            skipped.is_empty(),
            "the conformance suite skipped {skipped:?}"
        );
    }
}

async fn assert_gone(provider: &dyn Provider, backend: &dyn Backend, name: &str) {
    assert!(!backend.exists(name).await, "{name} is still there");
    let list = provider.list().await.unwrap();
    assert!(list.iter().all(|s| s.name != name), "{list:?}");
    let described = provider.describe(name).await;
    assert!(
        matches!(described, Err(ProviderError::NotFound(_))),
        "{described:?}"
    );
    let endpoints = provider.endpoints(name).await;
    assert!(
        matches!(endpoints, Err(ProviderError::NotFound(_))),
        "{endpoints:?}"
    );
}

/// Destroying a formation that was never created succeeds, and it is not there afterwards.
/// Returns the destroy's outcomes.
pub async fn destroy_missing(
    provider: &dyn Provider,
    backend: &dyn Backend,
    spec: &FormationSpec,
) -> Outcomes {
    let run = EngineRun::new(&spec.name, Arc::new(Recorder::default()));
    let (outcome, before) = run
        .run(
            provider,
            spec,
            Operation::Destroy,
            no_rollback(false),
            Harness::default(),
        )
        .await;
    if let Outcome::Failed(e) = outcome {
        panic!("destroy step {}: {e}", run.failed_step(before));
    }
    assert_gone(provider, backend, &spec.name).await;
    run.outcomes_after(before)
}
