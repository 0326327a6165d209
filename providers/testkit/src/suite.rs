//! The conformance suite: what every provider must do against its real backend, checked the
//! same way for each. A formation goes through create (crashing mid-way, then resuming) →
//! list → describe → endpoints → an idempotent re-run of the whole create → destroy (twice)
//! → gone from list and describe. [`Conformance`] runs one phase per call so a provider's test
//! can check its own specifics in between (ssh into a machine, a stack's tags); when it is
//! dropped without every phase having run, the test fails.

use std::collections::BTreeSet;
use std::sync::Arc;

use nepho_provider_api::{
    BoxFuture, Endpoints, FormationDetails, FormationSpec, FormationState, FormationSummary, Plan,
    Provider, ProviderError,
};

use crate::driver::{Outcomes, resume_plan, run_plan, run_plan_until_crash};
use crate::recorder::Recorder;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Create,
    List,
    Describe,
    Endpoints,
    Rerun,
    Destroy,
}

const PHASES: [Phase; 6] = [
    Phase::Create,
    Phase::List,
    Phase::Describe,
    Phase::Endpoints,
    Phase::Rerun,
    Phase::Destroy,
];

/// One formation through the suite. Every phase must run once; list, describe, endpoints and
/// the re-run come after create and before destroy.
pub struct Conformance<'a> {
    provider: &'a dyn Provider,
    backend: &'a dyn Backend,
    spec: FormationSpec,
    expect: Expect<'a>,
    /// Events of every phase.
    pub events: Arc<Recorder>,
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
        Conformance {
            provider,
            backend,
            spec,
            expect,
            events: Arc::new(Recorder::default()),
            plan: None,
            ran: BTreeSet::new(),
        }
    }

    /// Every phase in order, for a provider with nothing of its own to check in between.
    pub async fn run_all(mut self) {
        self.create().await;
        self.list().await;
        self.describe().await;
        self.endpoints().await;
        self.rerun().await;
        self.destroy().await;
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

    /// Create, crashing after `crash_after` steps: the resume re-runs the interrupted step
    /// (it must find its work done when it is in `rerun_already_done`) and finishes the rest.
    /// Every step doing its first run does real work (`already_done` is false). Returns the
    /// outcomes as a journal would hold them after the resume.
    pub async fn create(&mut self) -> Outcomes {
        self.enter(Phase::Create);
        let name = &self.spec.name;
        assert!(
            !self.backend.exists(name).await,
            "{name} exists before the create"
        );
        let plan = self.provider.plan_create(&self.spec).await.unwrap();
        let crashed = run_plan_until_crash(
            self.provider,
            &plan,
            &self.spec,
            self.events.clone(),
            self.expect.crash_after,
        )
        .await
        .map_err(|(id, e)| format!("create step {id}: {e}"))
        .unwrap();
        let (interrupted, first_run) = &crashed.interrupted;
        for (id, outcome) in crashed.journaled.iter().chain([(interrupted, first_run)]) {
            assert!(!outcome.already_done, "{id} found a fresh formation done");
        }
        let journaled: BTreeSet<_> = crashed.journaled.keys().cloned().collect();
        let outcomes = resume_plan(
            self.provider,
            &plan,
            &self.spec,
            self.events.clone(),
            crashed.journaled,
        )
        .await
        .map_err(|(id, e)| format!("resumed create step {id}: {e}"))
        .unwrap();
        for step in &plan.steps {
            let outcome = outcomes
                .get(&step.id)
                .unwrap_or_else(|| panic!("{} did not run", step.id));
            if &step.id == interrupted {
                if self.expect.rerun_already_done.contains(&step.id.0) {
                    assert!(
                        outcome.already_done,
                        "the interrupted step {} did its work again on resume",
                        step.id
                    );
                }
            } else if !journaled.contains(&step.id) {
                assert!(
                    !outcome.already_done,
                    "{} found its work done on its first run",
                    step.id
                );
            }
        }
        assert!(self.backend.exists(name).await, "{name} is not there");
        self.plan = Some(plan);
        outcomes
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
        let plan = self.plan.as_ref().expect("create ran");
        let again = run_plan(self.provider, plan, &self.spec, self.events.clone())
            .await
            .map_err(|(id, e)| format!("re-run step {id}: {e}"))
            .unwrap();
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

    /// Destroy removes everything from the backend; list no longer shows the formation;
    /// describe and endpoints say NotFound; the same destroy again succeeds with nothing to
    /// do. Returns the first destroy's outcomes.
    pub async fn destroy(&mut self) -> Outcomes {
        self.enter(Phase::Destroy);
        let name = self.spec.name.clone();
        let plan = self.provider.plan_destroy(&name).await.unwrap();
        let outcomes = run_plan(self.provider, &plan, &self.spec, self.events.clone())
            .await
            .map_err(|(id, e)| format!("destroy step {id}: {e}"))
            .unwrap();
        let again = run_plan(self.provider, &plan, &self.spec, self.events.clone())
            .await
            .map_err(|(id, e)| format!("second destroy step {id}: {e}"))
            .unwrap();
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
    let plan = provider.plan_destroy(&spec.name).await.unwrap();
    let outcomes = run_plan(provider, &plan, spec, Arc::new(Recorder::default()))
        .await
        .map_err(|(id, e)| format!("destroy step {id}: {e}"))
        .unwrap();
    assert_gone(provider, backend, &spec.name).await;
    outcomes
}
