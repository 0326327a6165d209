//! Runs a plan's steps through `run_step`/`undo_step` as the engine does: every ready step at
//! once, each with a snapshot of the outputs of the steps done before it. A run can stop after
//! some steps (a simulated crash) and be resumed from what a journal would hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nepho_provider_api::{
    EventSink, FormationSpec, Plan, Provider, ProviderError, StepContext, StepId, StepOutcome,
    join_all,
};

/// What each finished step returned.
pub type Outcomes = BTreeMap<StepId, StepOutcome>;

/// The step that failed and why.
pub type StepFailure = (StepId, ProviderError);

/// Runs `plan` to completion. On a failure, the steps running alongside finish first (as in
/// the engine), then the first failing step (in plan order) and its error are returned.
pub async fn run_plan(
    provider: &dyn Provider,
    plan: &Plan,
    spec: &FormationSpec,
    events: Arc<dyn EventSink>,
) -> Result<Outcomes, StepFailure> {
    drive(provider, plan, spec, events, Outcomes::new(), None).await
}

/// Continues `plan` after a crash: steps in `journaled` are done (their outputs are handed on
/// to later steps), every other step runs.
pub async fn resume_plan(
    provider: &dyn Provider,
    plan: &Plan,
    spec: &FormationSpec,
    events: Arc<dyn EventSink>,
    journaled: Outcomes,
) -> Result<Outcomes, StepFailure> {
    drive(provider, plan, spec, events, journaled, None).await
}

/// Where a simulated crash left a run.
#[derive(Debug)]
pub struct Crashed {
    /// Steps finished and journaled before the crash.
    pub journaled: Outcomes,
    /// The last step to finish: its work is done, but the crash came before the journal
    /// recorded it, so a resume runs it again (the engine's "interrupted" step).
    pub interrupted: (StepId, StepOutcome),
}

/// Runs `steps` steps of `plan` (at least one) and stops as if the process had died right
/// after the last of them finished.
pub async fn run_plan_until_crash(
    provider: &dyn Provider,
    plan: &Plan,
    spec: &FormationSpec,
    events: Arc<dyn EventSink>,
    steps: usize,
) -> Result<Crashed, StepFailure> {
    assert!(
        (1..plan.steps.len()).contains(&steps),
        "a crash after {steps} of {} steps is not mid-run",
        plan.steps.len()
    );
    let mut order = Vec::new();
    let mut journaled = drive(
        provider,
        plan,
        spec,
        events,
        Outcomes::new(),
        Some((steps, &mut order)),
    )
    .await?;
    let last = order.pop().expect("at least one step ran");
    let outcome = journaled.remove(&last).expect("the last step's outcome");
    Ok(Crashed {
        journaled,
        interrupted: (last, outcome),
    })
}

/// Undoes the `done` steps of `plan`, dependents first (the engine's rollback of a failed
/// create). Stops at the first step that cannot be undone.
pub async fn undo_steps(
    provider: &dyn Provider,
    plan: &Plan,
    spec: &FormationSpec,
    events: Arc<dyn EventSink>,
    done: &BTreeSet<StepId>,
) -> Result<(), StepFailure> {
    for step in plan.unwind_order(done) {
        let cx = StepContext {
            spec,
            outputs: BTreeMap::new(),
            events: events.clone(),
        };
        provider
            .undo_step(step, cx)
            .await
            .map_err(|e| (step.id.clone(), e))?;
    }
    Ok(())
}

async fn drive(
    provider: &dyn Provider,
    plan: &Plan,
    spec: &FormationSpec,
    events: Arc<dyn EventSink>,
    mut outcomes: Outcomes,
    mut stop: Option<(usize, &mut Vec<StepId>)>,
) -> Result<Outcomes, StepFailure> {
    plan.validate().expect("a valid plan");
    loop {
        let done: BTreeSet<StepId> = outcomes.keys().cloned().collect();
        let mut ready = plan.ready_steps(&done, &BTreeSet::new());
        if let Some((budget, order)) = &stop {
            ready.truncate(budget.saturating_sub(order.len()));
        }
        if ready.is_empty() {
            return Ok(outcomes);
        }
        let snapshot: BTreeMap<StepId, BTreeMap<String, serde_json::Value>> = outcomes
            .iter()
            .map(|(id, o)| (id.clone(), o.outputs.clone()))
            .collect();
        let runs = ready.iter().map(|step| {
            let cx = StepContext {
                spec,
                outputs: snapshot.clone(),
                events: events.clone(),
            };
            async move { (step.id.clone(), provider.run_step(step, cx).await) }
        });
        let results = join_all(runs).await;
        let mut failure = None;
        for (id, result) in results {
            match result {
                Ok(outcome) => {
                    if let Some((_, order)) = &mut stop {
                        order.push(id.clone());
                    }
                    outcomes.insert(id, outcome);
                }
                Err(e) => {
                    failure.get_or_insert((id, e));
                }
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
}
