//! The step engine: runs a provider's plan, independent steps in parallel, journaling each
//! step's start and end; resumes from the journal after a crash, and unwinds completed steps
//! when a create fails (the CloudStack orchestration RFC's idempotent-steps design).
//!
//! Every change is an event: the engine's runs journal themselves ([`run`]); machine and
//! cluster operations journal through [`record_operation`], a formation's in the formation's
//! journal, the cluster's in `<state>/cluster/journal.ndjson` ([`Journal::open_cluster`]).

mod error;
pub mod journal;
mod operation;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use nepho_provider_api::{
    EventData, EventKind, EventStatus, FormationSpec, Plan, PlannedStep, Provider, ProviderError,
    RunData, StepContext, StepId, StepOutputs,
};
use serde_json::Value;
use tokio::sync::watch;

pub use error::{Error, Result, rfc3339};
pub use journal::{Journal, cluster_journal_path};
pub use operation::record_operation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update,
    Destroy,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Destroy => "destroy",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        match s {
            "create" => Some(Operation::Create),
            "update" => Some(Operation::Update),
            "destroy" => Some(Operation::Destroy),
            _ => None,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Succeeded,
    Failed(ProviderError),
    Cancelled,
}

pub struct RunOptions {
    /// Continue the last unfinished run of this operation instead of starting afresh.
    pub resume: bool,
    /// On a failed create, undo the steps that completed.
    pub rollback: bool,
}

/// What tests and fault injection change about a run; nepho itself never sets any of it.
#[derive(Debug, Clone, Default)]
pub struct Harness {
    /// The plan to run instead of the one the provider makes for the operation (a test runs
    /// the plan it already checked).
    pub plan: Option<Plan>,
    /// A crash after this many steps: the run starts no more than this many steps, and once
    /// they have finished and been journaled it stops as a killed process would, with no
    /// terminal event, so the run stays resumable. The outcome is [`Outcome::Cancelled`].
    pub stop_after_steps: Option<usize>,
}

/// Runs `op` for `spec` to completion, publishing every change to `journal`.
pub async fn run(
    provider: &dyn Provider,
    spec: &FormationSpec,
    op: Operation,
    journal: Arc<Journal>,
    cancel: watch::Receiver<bool>,
    options: RunOptions,
) -> Outcome {
    run_with(
        provider,
        spec,
        op,
        journal,
        cancel,
        options,
        Harness::default(),
    )
    .await
}

/// [`run`], changed by a test's [`Harness`].
pub async fn run_with(
    provider: &dyn Provider,
    spec: &FormationSpec,
    op: Operation,
    journal: Arc<Journal>,
    mut cancel: watch::Receiver<bool>,
    options: RunOptions,
    harness: Harness,
) -> Outcome {
    let events = journal::read(&journal.path).unwrap_or_default();
    let mut done: BTreeMap<StepId, BTreeMap<String, Value>> = BTreeMap::new();
    let resumable = journal::last_run_start(&events).filter(|&start| {
        journal::op_of(&events[start]) == Some(op.as_str())
            && journal::run_finished(&events, start).is_none()
    });
    let op_data = Some(EventData::run(op.as_str()));
    match (options.resume, resumable) {
        (true, Some(start)) => {
            done = journal::finished_steps(&events, start);
            let again = journal::interrupted_steps(&events, start);
            let note = if again.is_empty() {
                String::new()
            } else {
                format!(
                    "; re-running interrupted {}",
                    again
                        .iter()
                        .map(|s| s.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            journal.record(
                None,
                EventKind::Formation,
                EventStatus::InProgress,
                &format!(
                    "{} resumed: {} step(s) already done{note}",
                    op.as_str(),
                    done.len()
                ),
                None,
                op_data.clone(),
            );
        }
        _ => {
            journal.record(
                None,
                EventKind::Formation,
                EventStatus::Started,
                &format!("{} {}", op.as_str(), spec.name),
                None,
                op_data.clone(),
            );
        }
    }

    let plan = match (harness.plan, op) {
        (Some(plan), _) => Ok(plan),
        (None, Operation::Create) => provider.plan_create(spec).await,
        (None, Operation::Update) => provider.plan_update(spec).await,
        (None, Operation::Destroy) => provider.plan_destroy(&spec.name).await,
    };
    let plan = match plan.and_then(|p| {
        p.validate().map(|_| p).map_err(|e| ProviderError::Invalid {
            message: e.to_string(),
            hint: None,
        })
    }) {
        Ok(p) => p,
        Err(e) => return finish(&journal, op, Outcome::Failed(e), op_data),
    };
    done.retain(|id, _| plan.steps.iter().any(|s| &s.id == id));
    let total = plan.steps.len();
    journal.record(
        None,
        EventKind::Formation,
        EventStatus::InProgress,
        &format!(
            "plan: {total} step(s): {}",
            plan.steps
                .iter()
                .map(|s| s.id.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(nepho_provider_api::Progress {
            done: done.len() as u64,
            total: total as u64,
        }),
        Some(EventData::Run(RunData {
            op: op.as_str().to_string(),
            steps: Some(
                plan.steps
                    .iter()
                    .map(|s| PlannedStep {
                        id: s.id.clone(),
                        description: s.description.clone(),
                        depends_on: s.depends_on.clone(),
                    })
                    .collect(),
            ),
        })),
    );

    let mut steps = Steps {
        provider,
        spec,
        plan: &plan,
        journal: &journal,
        total,
        budget: harness.stop_after_steps,
        unfinished: BTreeSet::new(),
    };
    let failure = steps.run(&mut cancel, &mut done).await;
    match failure {
        None => finish(&journal, op, Outcome::Succeeded, op_data),
        // A simulated crash: no terminal event, nothing undone.
        Some(Stop::Crashed) => Outcome::Cancelled,
        Some(Stop::Failed(err)) if op == Operation::Create && options.rollback => {
            journal.record(
                None,
                EventKind::Formation,
                EventStatus::InProgress,
                &format!("create failed ({err}); rolling back"),
                None,
                None,
            );
            let made = with_unfinished(done, &steps.unfinished);
            unwind(provider, spec, &plan, &journal, &made).await;
            finish(&journal, op, Outcome::Failed(err), op_data)
        }
        Some(Stop::Failed(err)) => finish(&journal, op, Outcome::Failed(err), op_data),
        // A cancelled create (Ctrl-C, `formation:cancel`, `--timeout`) rolls back like a
        // failed one, interrupted steps included.
        Some(Stop::Cancelled) if op == Operation::Create && options.rollback => {
            journal.record(
                None,
                EventKind::Formation,
                EventStatus::InProgress,
                "create cancelled; rolling back",
                None,
                None,
            );
            let made = with_unfinished(done, &steps.unfinished);
            unwind(provider, spec, &plan, &journal, &made).await;
            finish(&journal, op, Outcome::Cancelled, op_data)
        }
        Some(Stop::Cancelled) => finish(&journal, op, Outcome::Cancelled, op_data),
    }
}

/// The completed steps and, with no outputs, those that started and did not finish.
fn with_unfinished(
    mut done: BTreeMap<StepId, BTreeMap<String, Value>>,
    unfinished: &BTreeSet<StepId>,
) -> BTreeMap<StepId, BTreeMap<String, Value>> {
    for id in unfinished {
        done.entry(id.clone()).or_default();
    }
    done
}

/// Why the steps stopped before all were done.
enum Stop {
    Failed(ProviderError),
    Cancelled,
    /// [`Harness::stop_after_steps`] was reached.
    Crashed,
}

/// One run's steps and where their events go.
struct Steps<'r> {
    provider: &'r dyn Provider,
    spec: &'r FormationSpec,
    plan: &'r Plan,
    journal: &'r Arc<Journal>,
    total: usize,
    /// Steps this run may still start before its simulated crash.
    budget: Option<usize>,
    /// Steps that started but did not finish (failed, or stopped by a cancel): a rollback
    /// undoes them too, since they may have made part of their resource (undo is idempotent).
    unfinished: BTreeSet<StepId>,
}

impl Steps<'_> {
    /// Runs every step not yet `done`, each as soon as its dependencies are; `None` when all
    /// finished.
    async fn run(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        done: &mut BTreeMap<StepId, BTreeMap<String, Value>>,
    ) -> Option<Stop> {
        let Steps {
            provider,
            spec,
            plan,
            journal,
            total,
            ..
        } = *self;
        let mut running: BTreeSet<StepId> = BTreeSet::new();
        let mut in_flight = FuturesUnordered::new();
        let mut failure: Option<Stop> = None;
        loop {
            if failure.is_none() && !*cancel.borrow() {
                let done_ids: BTreeSet<StepId> = done.keys().cloned().collect();
                let mut ready = plan.ready_steps(&done_ids, &running);
                if let Some(budget) = &mut self.budget {
                    ready.truncate(*budget);
                    *budget -= ready.len();
                }
                for step in ready {
                    running.insert(step.id.clone());
                    journal.record(
                        Some(&step.id),
                        EventKind::Step,
                        EventStatus::Started,
                        &step.description,
                        None,
                        None,
                    );
                    let cx = StepContext {
                        spec,
                        outputs: done.clone(),
                        events: Arc::new(journal::StepSink {
                            journal: journal.clone(),
                            step: step.id.clone(),
                        }),
                    };
                    in_flight.push(async move {
                        step_delay().await;
                        (step, provider.run_step(step, cx).await)
                    });
                }
            }
            if in_flight.is_empty() {
                if failure.is_none() && self.budget == Some(0) && done.len() < total {
                    failure = Some(Stop::Crashed);
                }
                break;
            }
            tokio::select! {
                Some((step, result)) = in_flight.next() => {
                    running.remove(&step.id);
                    match result {
                        Ok(outcome) => {
                            let status = if outcome.already_done { EventStatus::Skipped } else { EventStatus::Succeeded };
                            let message = if outcome.already_done { format!("{} (already done)", step.description) } else { step.description.clone() };
                            done.insert(step.id.clone(), outcome.outputs.clone());
                            journal.record(
                                Some(&step.id),
                                EventKind::Step,
                                status,
                                &message,
                                Some(nepho_provider_api::Progress { done: done.len() as u64, total: total as u64 }),
                                Some(EventData::Outputs(StepOutputs { outputs: outcome.outputs })),
                            );
                        }
                        Err(ProviderError::Cancelled) => {
                            self.unfinished.insert(step.id.clone());
                            journal.record(Some(&step.id), EventKind::Step, EventStatus::Cancelled, &format!("{}: cancelled", step.description), None, None);
                            failure.get_or_insert(Stop::Cancelled);
                        }
                        Err(err) => {
                            self.unfinished.insert(step.id.clone());
                            journal.record(Some(&step.id), EventKind::Step, EventStatus::Failed, &format!("{}: {err}", step.description), None, None);
                            failure.get_or_insert(Stop::Failed(err));
                        }
                    }
                }
                changed = cancel.changed(), if failure.is_none() => {
                    if changed.is_ok() && *cancel.borrow() {
                        journal.record(None, EventKind::Formation, EventStatus::InProgress, "cancel requested: waiting for running steps to stop", None, None);
                        failure = Some(Stop::Cancelled);
                        // Dropping the futures stops the provider's waiting; steps are idempotent.
                        self.unfinished.extend(running.iter().cloned());
                        in_flight.clear();
                        running.clear();
                        break;
                    }
                }
            }
        }
        failure
    }
}

/// `NEPHO_STEP_DELAY_MS` slows every step down: a debugging aid for watching, detaching and
/// crash-resume behaviour on backends that finish instantly (a mock).
async fn step_delay() {
    if let Some(ms) = std::env::var("NEPHO_STEP_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Undoes the `done` steps of `plan` (with their outputs), dependents first: a failed
/// create's rollback. Failures are journaled and the unwind goes on; returns them.
pub async fn unwind(
    provider: &dyn Provider,
    spec: &FormationSpec,
    plan: &Plan,
    journal: &Arc<Journal>,
    done: &BTreeMap<StepId, BTreeMap<String, Value>>,
) -> Vec<(StepId, ProviderError)> {
    let mut failures = Vec::new();
    let done_ids: BTreeSet<StepId> = done.keys().cloned().collect();
    for step in plan.unwind_order(&done_ids) {
        let cx = StepContext {
            spec,
            outputs: done.clone(),
            events: Arc::new(journal::StepSink {
                journal: journal.clone(),
                step: step.id.clone(),
            }),
        };
        match provider.undo_step(step, cx).await {
            Ok(()) => {
                journal.record(
                    Some(&step.id),
                    EventKind::Step,
                    EventStatus::Cancelled,
                    &format!("undone: {}", step.description),
                    None,
                    None,
                );
            }
            Err(e) => {
                journal.record(
                    Some(&step.id),
                    EventKind::Step,
                    EventStatus::Failed,
                    &format!("could not undo {}: {e}", step.description),
                    None,
                    None,
                );
                failures.push((step.id.clone(), e));
            }
        }
    }
    failures
}

fn finish(journal: &Journal, op: Operation, outcome: Outcome, data: Option<EventData>) -> Outcome {
    let (status, message) = match &outcome {
        Outcome::Succeeded => (EventStatus::Succeeded, format!("{} succeeded", op.as_str())),
        Outcome::Failed(e) => (EventStatus::Failed, format!("{} failed: {e}", op.as_str())),
        Outcome::Cancelled => (EventStatus::Cancelled, format!("{} cancelled", op.as_str())),
    };
    journal.record(None, EventKind::Formation, status, &message, None, data);
    outcome
}

#[cfg(test)]
mod tests {
    //! The engine against a scripted in-memory provider: ordering, parallelism, resume,
    //! rollback. (Real providers run the end-to-end suite in tests/it.)
    use std::sync::Mutex;
    use std::time::Duration;

    use nepho_provider_api::*;

    use super::*;

    #[derive(Default)]
    struct Scripted {
        log: Mutex<Vec<String>>,
        fail: Option<&'static str>,
        slow: Duration,
    }

    fn step(id: &str, deps: &[&str]) -> Step {
        Step {
            id: id.into(),
            description: format!("do {id}"),
            depends_on: deps.iter().map(|d| StepId::from(*d)).collect(),
            action: serde_json::json!({}),
        }
    }

    impl Provider for Scripted {
        fn kind(&self) -> ProviderKind {
            ProviderKind::Kvm
        }
        fn validate<'a>(
            &'a self,
            _: &'a FormationSpec,
        ) -> BoxFuture<'a, Result<(), ProviderError>> {
            Box::pin(async { Ok(()) })
        }
        fn plan_create<'a>(
            &'a self,
            _: &'a FormationSpec,
        ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
            Box::pin(async {
                Ok(Plan {
                    steps: vec![
                        step("disk-a", &[]),
                        step("disk-b", &[]),
                        step("vm", &["disk-a", "disk-b"]),
                        step("ready", &["vm"]),
                    ],
                })
            })
        }
        fn plan_update<'a>(
            &'a self,
            s: &'a FormationSpec,
        ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
            self.plan_create(s)
        }
        fn plan_destroy<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Plan, ProviderError>> {
            Box::pin(async {
                Ok(Plan {
                    steps: vec![step("delete", &[])],
                })
            })
        }
        fn run_step<'a>(
            &'a self,
            step: &'a Step,
            cx: StepContext<'a>,
        ) -> BoxFuture<'a, Result<StepOutcome, ProviderError>> {
            Box::pin(async move {
                self.log.lock().unwrap().push(format!("start {}", step.id));
                cx.events.emit(
                    EventKind::Resource,
                    EventStatus::InProgress,
                    "working",
                    None,
                );
                tokio::time::sleep(self.slow).await;
                self.log.lock().unwrap().push(format!("end {}", step.id));
                if self.fail == Some(step.id.0.as_str()) {
                    return Err(ProviderError::Failed {
                        message: format!("{} broke", step.id),
                        hint: None,
                    });
                }
                let mut outputs = std::collections::BTreeMap::new();
                outputs.insert(
                    "id".to_string(),
                    serde_json::json!(format!("{}-1", step.id)),
                );
                Ok(StepOutcome {
                    already_done: false,
                    outputs,
                })
            })
        }
        fn undo_step<'a>(
            &'a self,
            step: &'a Step,
            _: StepContext<'a>,
        ) -> BoxFuture<'a, Result<(), ProviderError>> {
            Box::pin(async move {
                self.log.lock().unwrap().push(format!("undo {}", step.id));
                Ok(())
            })
        }
        fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<FormationSummary>, ProviderError>> {
            Box::pin(async { Ok(vec![]) })
        }
        fn describe<'a>(
            &'a self,
            _: &'a str,
        ) -> BoxFuture<'a, Result<FormationDetails, ProviderError>> {
            Box::pin(async { Err(ProviderError::NotFound("x".into())) })
        }
        fn preview<'a>(
            &'a self,
            _: &'a FormationSpec,
        ) -> BoxFuture<'a, Result<Vec<PlannedChange>, ProviderError>> {
            Box::pin(async { Ok(vec![]) })
        }
        fn endpoints<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Endpoints, ProviderError>> {
            Box::pin(async { Ok(Endpoints::default()) })
        }
    }

    fn spec() -> FormationSpec {
        FormationSpec {
            name: "f".into(),
            cloudlet: "c".into(),
            scenario: "default".into(),
            provider: ProviderKind::Kvm,
            pattern: vec![],
            parameters: Default::default(),
            secret_keys: Default::default(),
            provisioner: None,
            payload_dir: None,
            v1: false,
            work_dir: std::env::temp_dir(),
        }
    }

    fn go(p: &Scripted, journal: Arc<Journal>, resume: bool) -> Outcome {
        let (_tx, rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(
            p,
            &spec(),
            Operation::Create,
            journal,
            rx,
            RunOptions {
                resume,
                rollback: true,
            },
        ))
    }

    #[test]
    fn independent_steps_run_in_parallel_and_dependents_wait() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.ndjson"), "f", vec![]).unwrap();
        let p = Scripted {
            slow: Duration::from_millis(30),
            ..Default::default()
        };
        assert!(matches!(go(&p, journal.clone(), false), Outcome::Succeeded));
        let log = p.log.lock().unwrap().clone();
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(
            pos("start disk-b") < pos("end disk-a"),
            "disks should overlap: {log:?}"
        );
        assert!(pos("end disk-a") < pos("start vm") && pos("end disk-b") < pos("start vm"));
        let events = journal::read(&journal.path).unwrap();
        assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::Resource
                    && e.step.as_ref().is_some_and(|s| s.0 == "vm"))
        );
        assert_eq!(events.last().unwrap().status, EventStatus::Succeeded);
    }

    #[test]
    fn a_failed_create_unwinds_completed_steps() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.ndjson"), "f", vec![]).unwrap();
        let p = Scripted {
            fail: Some("vm"),
            ..Default::default()
        };
        assert!(matches!(go(&p, journal.clone(), false), Outcome::Failed(_)));
        let log = p.log.lock().unwrap().clone();
        assert!(
            log.contains(&"undo disk-a".to_string()) && log.contains(&"undo disk-b".to_string()),
            "{log:?}"
        );
        assert!(!log.iter().any(|l| l == "start ready"));
    }

    #[test]
    fn a_cancelled_create_undoes_finished_and_interrupted_steps() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.ndjson"), "f", vec![]).unwrap();
        let p = Scripted {
            slow: Duration::from_millis(300),
            ..Default::default()
        };
        let (tx, rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spec = spec();
        let outcome = rt.block_on(async {
            let cancel = async {
                // disk-a and disk-b are done; vm is running.
                tokio::time::sleep(Duration::from_millis(450)).await;
                tx.send(true).unwrap();
                std::future::pending::<()>().await
            };
            let run = run(
                &p,
                &spec,
                Operation::Create,
                journal.clone(),
                rx,
                RunOptions {
                    resume: false,
                    rollback: true,
                },
            );
            tokio::select! {
                outcome = run => outcome,
                _ = cancel => unreachable!(),
            }
        });
        assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
        let log = p.log.lock().unwrap().clone();
        for undone in ["undo disk-a", "undo disk-b", "undo vm"] {
            assert!(log.contains(&undone.to_string()), "{undone}: {log:?}");
        }
        let events = journal::read(&journal.path).unwrap();
        let start = journal::last_run_start(&events).unwrap();
        assert_eq!(
            journal::run_finished(&events, start),
            Some(EventStatus::Cancelled)
        );
    }

    #[test]
    fn resume_skips_finished_steps_and_reruns_interrupted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.ndjson");
        {
            // A run that died after disk-a finished while disk-b was running.
            let j = Journal::open(&path, "f", vec![]).unwrap();
            j.record(
                None,
                EventKind::Formation,
                EventStatus::Started,
                "create f",
                None,
                Some(EventData::run("create")),
            );
            j.record(
                Some(&"disk-a".into()),
                EventKind::Step,
                EventStatus::Started,
                "do disk-a",
                None,
                None,
            );
            j.record(
                Some(&"disk-b".into()),
                EventKind::Step,
                EventStatus::Started,
                "do disk-b",
                None,
                None,
            );
            j.record(
                Some(&"disk-a".into()),
                EventKind::Step,
                EventStatus::Succeeded,
                "do disk-a",
                None,
                Some(EventData::Outputs(StepOutputs {
                    outputs: [("id".to_string(), serde_json::json!("disk-a-1"))].into(),
                })),
            );
        }
        let journal = Journal::open(&path, "f", vec![]).unwrap();
        let p = Scripted::default();
        assert!(matches!(go(&p, journal, true), Outcome::Succeeded));
        let log = p.log.lock().unwrap().clone();
        assert!(!log.contains(&"start disk-a".to_string()), "{log:?}");
        assert!(log.contains(&"start disk-b".to_string()));
    }

    #[test]
    fn a_run_stopped_after_journaled_steps_is_resumed_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.ndjson"), "f", vec![]).unwrap();
        let p = Scripted::default();
        let (_tx, rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(run_with(
            &p,
            &spec(),
            Operation::Create,
            journal.clone(),
            rx,
            RunOptions {
                resume: false,
                rollback: true,
            },
            Harness {
                plan: None,
                stop_after_steps: Some(2),
            },
        ));
        assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
        let events = journal::read(&journal.path).unwrap();
        let start = journal::last_run_start(&events).unwrap();
        assert_eq!(
            journal::run_finished(&events, start),
            None,
            "no terminal event"
        );
        assert_eq!(
            journal::finished_steps(&events, start).len(),
            2,
            "disk-a and disk-b"
        );
        assert!(journal::interrupted_steps(&events, start).is_empty());
        assert!(!p.log.lock().unwrap().iter().any(|l| l == "undo disk-a"));

        let p = Scripted::default();
        assert!(matches!(go(&p, journal.clone(), true), Outcome::Succeeded));
        assert_eq!(
            *p.log.lock().unwrap(),
            ["start vm", "end vm", "start ready", "end ready"]
        );
    }

    #[test]
    fn secrets_are_scrubbed_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(
            &dir.path().join("j.ndjson"),
            "f",
            vec!["hunter2-secret".into()],
        )
        .unwrap();
        journal.record(
            None,
            EventKind::Log,
            EventStatus::Info,
            "password is hunter2-secret",
            None,
            Some(EventData::Other(serde_json::json!({"x": "hunter2-secret"}))),
        );
        let text = std::fs::read_to_string(&journal.path).unwrap();
        assert!(
            !text.contains("hunter2-secret") && text.contains("********"),
            "{text}"
        );
    }
}
