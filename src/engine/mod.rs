//! The step engine: runs a provider's plan, independent steps in parallel, journaling each
//! step's start and end; resumes from the journal after a crash, and unwinds completed steps
//! when a create fails (the CloudStack orchestration RFC's idempotent-steps design).

pub mod journal;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use nepho_provider_api::{
    EventKind, EventStatus, FormationSpec, Plan, Provider, ProviderError, StepContext, StepId,
};
use serde_json::{Value, json};
use tokio::sync::watch;

pub use journal::Journal;

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

/// Runs `op` for `spec` to completion, publishing every change to `journal`.
pub async fn run(
    provider: &dyn Provider,
    spec: &FormationSpec,
    op: Operation,
    journal: Arc<Journal>,
    mut cancel: watch::Receiver<bool>,
    options: RunOptions,
) -> Outcome {
    let events = journal::read(&journal.path).unwrap_or_default();
    let mut done: BTreeMap<StepId, BTreeMap<String, Value>> = BTreeMap::new();
    let resumable = journal::last_run_start(&events).filter(|&start| {
        journal::op_of(&events[start]) == Some(op.as_str())
            && journal::run_finished(&events, start).is_none()
    });
    let op_data = Some(json!({ "op": op.as_str() }));
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

    let plan = match op {
        Operation::Create => provider.plan_create(spec).await,
        Operation::Update => provider.plan_update(spec).await,
        Operation::Destroy => provider.plan_destroy(&spec.name).await,
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
        &format!("plan: {total} step(s): {}", plan.steps.iter().map(|s| s.id.0.as_str()).collect::<Vec<_>>().join(", ")),
        Some(nepho_provider_api::Progress { done: done.len() as u64, total: total as u64 }),
        Some(json!({ "op": op.as_str(), "steps": plan.steps.iter().map(|s| json!({"id": s.id, "description": s.description, "depends_on": s.depends_on})).collect::<Vec<_>>() })),
    );

    let failure = run_steps(
        provider,
        spec,
        &plan,
        &journal,
        &mut cancel,
        &mut done,
        total,
    )
    .await;
    match failure {
        None => finish(&journal, op, Outcome::Succeeded, op_data),
        Some(Outcome::Failed(err)) if op == Operation::Create && options.rollback => {
            journal.record(
                None,
                EventKind::Formation,
                EventStatus::InProgress,
                &format!("create failed ({err}); rolling back"),
                None,
                None,
            );
            unwind(provider, spec, &plan, &journal, &done).await;
            finish(&journal, op, Outcome::Failed(err), op_data)
        }
        Some(outcome) => finish(&journal, op, outcome, op_data),
    }
}

async fn run_steps(
    provider: &dyn Provider,
    spec: &FormationSpec,
    plan: &Plan,
    journal: &Arc<Journal>,
    cancel: &mut watch::Receiver<bool>,
    done: &mut BTreeMap<StepId, BTreeMap<String, Value>>,
    total: usize,
) -> Option<Outcome> {
    let mut running: BTreeSet<StepId> = BTreeSet::new();
    let mut in_flight = FuturesUnordered::new();
    let mut failure: Option<Outcome> = None;
    loop {
        if failure.is_none() && !*cancel.borrow() {
            let done_ids: BTreeSet<StepId> = done.keys().cloned().collect();
            for step in plan.ready_steps(&done_ids, &running) {
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
                            Some(json!({ "outputs": outcome.outputs })),
                        );
                    }
                    Err(ProviderError::Cancelled) => {
                        journal.record(Some(&step.id), EventKind::Step, EventStatus::Cancelled, &format!("{}: cancelled", step.description), None, None);
                        failure.get_or_insert(Outcome::Cancelled);
                    }
                    Err(err) => {
                        journal.record(Some(&step.id), EventKind::Step, EventStatus::Failed, &format!("{}: {err}", step.description), None, None);
                        failure.get_or_insert(Outcome::Failed(err));
                    }
                }
            }
            changed = cancel.changed(), if failure.is_none() => {
                if changed.is_ok() && *cancel.borrow() {
                    journal.record(None, EventKind::Formation, EventStatus::InProgress, "cancel requested: waiting for running steps to stop", None, None);
                    failure = Some(Outcome::Cancelled);
                    // Dropping the futures stops the provider's waiting; steps are idempotent.
                    in_flight.clear();
                    running.clear();
                    break;
                }
            }
        }
    }
    failure
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

/// Undoes completed steps, dependents first. Failures are reported and the unwind goes on.
async fn unwind(
    provider: &dyn Provider,
    spec: &FormationSpec,
    plan: &Plan,
    journal: &Arc<Journal>,
    done: &BTreeMap<StepId, BTreeMap<String, Value>>,
) {
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
            }
        }
    }
}

fn finish(journal: &Journal, op: Operation, outcome: Outcome, data: Option<Value>) -> Outcome {
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
                Some(serde_json::json!({"op": "create"})),
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
                Some(serde_json::json!({"outputs": {"id": "disk-a-1"}})),
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
            Some(serde_json::json!({"x": "hunter2-secret"})),
        );
        let text = std::fs::read_to_string(&journal.path).unwrap();
        assert!(
            !text.contains("hunter2-secret") && text.contains("********"),
            "{text}"
        );
    }
}
