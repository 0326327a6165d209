//! Plans run through the real engine, as `formation:create|update|destroy` run them, with a
//! journal in a temporary directory; what each step returned is read back from that journal.
//! Every event of a run also goes to the test's [`EventSink`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nepho_engine::journal;
use nepho_engine::{Harness, Journal, Operation, Outcome, RunOptions};
use nepho_provider_api::{
    Event, EventData, EventKind, EventSink, EventStatus, FormationSpec, OperationData, Plan,
    Provider, ProviderError, StepId, StepOutcome,
};
use tokio::sync::{broadcast, watch};

/// What each finished step returned.
pub type Outcomes = BTreeMap<StepId, StepOutcome>;

/// The step that failed and why.
pub type StepFailure = (StepId, ProviderError);

/// A formation's journal in a temporary directory, and runs of the engine against it.
pub struct EngineRun {
    dir: tempfile::TempDir,
    formation: String,
    events: Arc<dyn EventSink>,
}

impl EngineRun {
    pub fn new(formation: &str, events: Arc<dyn EventSink>) -> EngineRun {
        EngineRun {
            dir: tempfile::Builder::new()
                .prefix("nepho-testkit.")
                .tempdir()
                .expect("a temporary directory"),
            formation: formation.to_string(),
            events,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("journal.ndjson")
    }

    /// Every event in the journal.
    pub fn events(&self) -> Vec<Event> {
        journal::read(&self.path()).expect("the journal reads")
    }

    /// Runs `op` through the engine. The journal knows no secret values, so what a provider
    /// emits reaches the event sink (and the journal) as the provider wrote it: a test can
    /// check that no secret is in it. Returns the outcome and the last event before the run.
    pub async fn run(
        &self,
        provider: &dyn Provider,
        spec: &FormationSpec,
        op: Operation,
        options: RunOptions,
        harness: Harness,
    ) -> (Outcome, u64) {
        let journal =
            Journal::open(&self.path(), &self.formation, Vec::new()).expect("the journal opens");
        let before = journal.last_seq();
        let (_cancel, cancelled) = watch::channel(false);
        let run = nepho_engine::run_with(
            provider,
            spec,
            op,
            journal.clone(),
            cancelled,
            options,
            harness,
        );
        let outcome = forward(journal.subscribe(), &*self.events, run).await;
        (outcome, before)
    }

    /// Runs `operation` (a machine or cluster operation described by `data`) journaled
    /// through [`nepho_engine::record_operation`], its events also going to the sink.
    pub async fn record_operation<T, E: std::fmt::Display>(
        &self,
        data: OperationData,
        operation: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let journal =
            Journal::open(&self.path(), &self.formation, Vec::new()).expect("the journal opens");
        let recorded = nepho_engine::record_operation(&journal, data, operation);
        forward(journal.subscribe(), &*self.events, recorded).await
    }

    /// What each step finished after event `after` returned (a later event of a step wins).
    pub fn outcomes_after(&self, after: u64) -> Outcomes {
        step_outcomes(self.events().iter().filter(|e| e.seq > after))
    }

    /// The step that failed first after event `after` (`plan` when the plan itself failed).
    pub fn failed_step(&self, after: u64) -> StepId {
        self.events()
            .iter()
            .filter(|e| e.seq > after)
            .find(|e| e.kind == EventKind::Step && e.status == EventStatus::Failed)
            .and_then(|e| e.step.clone())
            .unwrap_or_else(|| StepId::from("plan"))
    }

    /// Tears the journal's last line in half, as a crash between a step's work and its
    /// journal line leaves it, and returns the event that line held.
    pub fn tear_last_line(&self) -> Event {
        tear_last_line(&self.path())
    }
}

/// Runs `plan` to completion through the engine (no rollback). On a failure, the steps running
/// alongside finish first, then the first step to fail and its error are returned.
pub async fn run_plan(
    provider: &dyn Provider,
    plan: &Plan,
    spec: &FormationSpec,
    events: Arc<dyn EventSink>,
) -> Result<Outcomes, StepFailure> {
    let run = EngineRun::new(&spec.name, events);
    let (outcome, before) = run
        .run(
            provider,
            spec,
            // The engine runs the plan it is given; the operation only names the run.
            Operation::Update,
            RunOptions {
                resume: false,
                rollback: false,
            },
            Harness {
                plan: Some(plan.clone()),
                ..Harness::default()
            },
        )
        .await;
    match outcome {
        Outcome::Succeeded => Ok(run.outcomes_after(before)),
        Outcome::Failed(e) => Err((run.failed_step(before), e)),
        Outcome::Cancelled => Err((run.failed_step(before), ProviderError::Cancelled)),
    }
}

/// Undoes the `done` steps of `plan`, dependents first, through the engine's unwind (the
/// rollback of a failed create). Every step is tried; the first failure is returned.
pub async fn undo_steps(
    provider: &dyn Provider,
    plan: &Plan,
    spec: &FormationSpec,
    events: Arc<dyn EventSink>,
    done: &BTreeSet<StepId>,
) -> Result<(), StepFailure> {
    let run = EngineRun::new(&spec.name, events);
    let journal = Journal::open(&run.path(), &spec.name, Vec::new()).expect("the journal opens");
    let done = done
        .iter()
        .map(|id| (id.clone(), BTreeMap::new()))
        .collect();
    let unwind = nepho_engine::unwind(provider, spec, plan, &journal, &done);
    let failures = forward(journal.subscribe(), &*run.events, unwind).await;
    match failures.into_iter().next() {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// Awaits `work`, handing every event published meanwhile to `sink`.
async fn forward<T>(
    mut live: broadcast::Receiver<Event>,
    sink: &dyn EventSink,
    work: impl Future<Output = T>,
) -> T {
    let emit = |e: Event| sink.emit(e.kind, e.status, &e.message, e.progress);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            event = live.recv() => match event {
                Ok(e) => emit(e),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return work.await,
            },
            out = &mut work => {
                while let Ok(e) = live.try_recv() {
                    emit(e);
                }
                return out;
            }
        }
    }
}

/// What each step's last finishing event says it returned.
fn step_outcomes<'e>(events: impl Iterator<Item = &'e Event>) -> Outcomes {
    let mut outcomes = Outcomes::new();
    for e in events.filter(|e| e.kind == EventKind::Step) {
        let Some(step) = &e.step else { continue };
        let already_done = match e.status {
            EventStatus::Succeeded => false,
            EventStatus::Skipped => true,
            _ => continue,
        };
        let outputs = match &e.data {
            Some(EventData::Outputs(o)) => o.outputs.clone(),
            _ => BTreeMap::new(),
        };
        outcomes.insert(
            step.clone(),
            StepOutcome {
                already_done,
                outputs,
            },
        );
    }
    outcomes
}

fn tear_last_line(path: &Path) -> Event {
    let bytes = std::fs::read(path).expect("the journal");
    let body = bytes.strip_suffix(b"\n").expect("a finished last line");
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let event: Event = serde_json::from_slice(&body[start..]).expect("the last line is an event");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("the journal opens for writing");
    file.set_len((start + (body.len() - start) / 2) as u64)
        .expect("the journal is torn");
    event
}
