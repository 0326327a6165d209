//! The testkit against an in-memory provider: the engine's crash, resume and undo as the
//! testkit drives them, and the conformance suite passing on a well-behaved provider and
//! failing on one that is not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use nepho_engine::{Harness, Operation, Outcome, RunOptions};
use nepho_provider_api::{
    BoxFuture, Endpoints, FormationDetails, FormationSpec, FormationState, FormationSummary, Plan,
    PlannedChange, PowerAction, Provider, ProviderError, ProviderKind, ResourceStatus, SshEndpoint,
    Step, StepContext, StepId, StepOutcome,
};
use nepho_provider_testkit::{
    Backend, Conformance, EngineRun, Expect, Recorder, Steps, destroy_missing, run_plan, undo_steps,
};
use serde_json::json;

/// Formations as sets of resources; `machine` makes a formation running.
#[derive(Default)]
struct Memory {
    formations: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The parameters each formation was last built with (by its outputs step).
    applied: Mutex<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    /// Formations whose machine is stopped.
    stopped: Mutex<BTreeSet<String>>,
    /// A broken provider: the machine step never notices the machine is there.
    forgetful: bool,
}

fn step(id: &str, deps: &[&str]) -> Step {
    Step {
        id: id.into(),
        description: id.to_string(),
        depends_on: deps.iter().map(|d| StepId::from(*d)).collect(),
        action: json!({ "op": id }),
    }
}

impl Memory {
    fn resources(&self, name: &str) -> Option<BTreeSet<String>> {
        self.formations.lock().unwrap().get(name).cloned()
    }

    fn summary(&self, name: &str, resources: &BTreeSet<String>) -> FormationSummary {
        FormationSummary {
            name: name.to_string(),
            provider: ProviderKind::Kvm,
            cloudlet: Some("mem".into()),
            scenario: Some("default".into()),
            state: if !resources.contains("machine") {
                FormationState::Creating
            } else if self.stopped.lock().unwrap().contains(name) {
                FormationState::Stopped
            } else {
                FormationState::Running
            },
            status_reason: None,
        }
    }

    fn run(&self, step: &Step, cx: &StepContext<'_>) -> Result<StepOutcome, ProviderError> {
        let mut formations = self.formations.lock().unwrap();
        let name = &cx.spec.name;
        let mut outputs = BTreeMap::new();
        let already_done = match step.id.0.as_str() {
            "outputs" => {
                // Needs the machine step's outputs, as a resume hands them on from the journal.
                let address = cx.outputs[&StepId::from("machine")]["address"].clone();
                outputs.insert(
                    "url".into(),
                    json!(format!("http://{}/", address.as_str().unwrap())),
                );
                self.applied
                    .lock()
                    .unwrap()
                    .insert(name.clone(), cx.spec.parameters.clone());
                false
            }
            "delete-machine" => {
                let resources = formations.entry(name.clone()).or_default();
                let gone = !resources.remove("machine");
                if resources.is_empty() {
                    formations.remove(name);
                }
                gone
            }
            "cleanup" => {
                self.applied.lock().unwrap().remove(name);
                formations.remove(name).is_none()
            }
            "broken" => {
                return Err(ProviderError::Failed {
                    message: "broken on purpose".into(),
                    hint: None,
                });
            }
            resource => {
                if resource == "machine" {
                    outputs.insert("address".into(), json!("127.0.0.1"));
                }
                let fresh = formations
                    .entry(name.clone())
                    .or_default()
                    .insert(resource.to_string());
                let noticed = !(self.forgetful && resource == "machine");
                !fresh && noticed
            }
        };
        Ok(StepOutcome {
            already_done,
            outputs,
        })
    }
}

impl Provider for Memory {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Kvm
    }

    fn validate<'a>(&'a self, _: &'a FormationSpec) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn plan_create<'a>(
        &'a self,
        _: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async {
            Ok(Plan {
                steps: vec![
                    step("network", &[]),
                    step("disk", &[]),
                    step("machine", &["network", "disk"]),
                    step("outputs", &["machine"]),
                ],
            })
        })
    }

    fn plan_update<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        self.plan_create(spec)
    }

    fn plan_destroy<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async {
            Ok(Plan {
                steps: vec![
                    step("delete-machine", &[]),
                    step("cleanup", &["delete-machine"]),
                ],
            })
        })
    }

    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepOutcome, ProviderError>> {
        Box::pin(async move { self.run(step, &cx) })
    }

    fn undo_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut formations = self.formations.lock().unwrap();
            if let Some(resources) = formations.get_mut(&cx.spec.name) {
                resources.remove(&step.id.0);
                if resources.is_empty() {
                    formations.remove(&cx.spec.name);
                }
            }
            Ok(())
        })
    }

    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<FormationSummary>, ProviderError>> {
        Box::pin(async move {
            let formations = self.formations.lock().unwrap();
            Ok(formations.iter().map(|(n, r)| self.summary(n, r)).collect())
        })
    }

    fn describe<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<FormationDetails, ProviderError>> {
        Box::pin(async move {
            let resources = self
                .resources(name)
                .ok_or_else(|| ProviderError::NotFound(name.to_string()))?;
            Ok(FormationDetails {
                summary: self.summary(name, &resources),
                resources: resources
                    .iter()
                    .map(|r| ResourceStatus {
                        resource: r.clone(),
                        kind: r.clone(),
                        status: "ok".into(),
                        reason: None,
                        id: None,
                    })
                    .collect(),
                outputs: self
                    .applied
                    .lock()
                    .unwrap()
                    .get(name)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
                recent_events: vec![],
            })
        })
    }

    fn preview<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Vec<PlannedChange>, ProviderError>> {
        Box::pin(async move {
            let change = |action: &str| PlannedChange {
                action: action.into(),
                resource: spec.name.clone(),
                kind: "machine".into(),
                replacement: None,
                details: None,
            };
            Ok(match self.applied.lock().unwrap().get(&spec.name) {
                None => vec![change("add")],
                Some(applied) if applied != &spec.parameters => vec![change("modify")],
                Some(_) => vec![],
            })
        })
    }

    fn power<'a>(
        &'a self,
        name: &'a str,
        _: Option<&'a str>,
        action: PowerAction,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.resources(name)
                .ok_or_else(|| ProviderError::NotFound(name.to_string()))?;
            let mut stopped = self.stopped.lock().unwrap();
            match action {
                PowerAction::Stop => stopped.insert(name.to_string()),
                PowerAction::Start | PowerAction::Reset => stopped.remove(name),
            };
            Ok(())
        })
    }

    fn endpoints<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Endpoints, ProviderError>> {
        Box::pin(async move {
            self.resources(name)
                .ok_or_else(|| ProviderError::NotFound(name.to_string()))?;
            Ok(Endpoints {
                ssh: vec![SshEndpoint {
                    machine: "machine".into(),
                    host: "127.0.0.1".into(),
                    port: 22,
                    user: "root".into(),
                    identity_file: None,
                    options: vec![],
                }],
                ..Endpoints::default()
            })
        })
    }
}

impl Backend for Memory {
    fn exists<'a>(&'a self, formation: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.resources(formation).is_some() })
    }
}

fn spec(name: &str) -> FormationSpec {
    FormationSpec {
        name: name.into(),
        cloudlet: "mem".into(),
        scenario: "default".into(),
        provider: ProviderKind::Kvm,
        pattern: vec![],
        parameters: Default::default(),
        secret_keys: BTreeSet::new(),
        provisioner: None,
        payload_dir: None,
        v1: false,
        work_dir: std::env::temp_dir(),
    }
}

const EXPECT: Expect<'static> = Expect {
    crash_after: 3,
    rerun_already_done: Steps::Only(&["network", "disk", "machine"]),
    destroy_rerun_already_done: Steps::Only(&["delete-machine"]),
    power: true,
    preview_always_modifies: &[],
    preview_gap: None,
};

fn changed(name: &str) -> FormationSpec {
    let mut spec = spec(name);
    spec.parameters.insert("size".into(), json!(2));
    spec
}

#[tokio::test]
async fn the_suite_passes_on_a_well_behaved_provider() {
    let memory = Memory::default();
    Conformance::new(&memory, &memory, spec("good"), EXPECT)
        .run_all(changed("good"), &memory, spec("doomed"))
        .await;
    let outcomes = destroy_missing(&memory, &memory, &spec("never")).await;
    assert!(outcomes.values().all(|o| o.already_done));
}

#[tokio::test]
#[should_panic(expected = "the interrupted step machine did its work again on resume")]
async fn the_suite_catches_a_step_that_is_not_idempotent() {
    let memory = Memory {
        forgetful: true,
        ..Memory::default()
    };
    Conformance::new(&memory, &memory, spec("bad"), EXPECT)
        .run_all(changed("bad"), &memory, spec("doomed"))
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "the conformance suite skipped [Rerun, Preview, Update, Power, Destroy, Rollback]"
)]
async fn skipping_phases_fails() {
    let memory = Memory::default();
    let mut suite = Conformance::new(&memory, &memory, spec("short"), EXPECT);
    suite.create().await;
    suite.list().await;
    suite.describe().await;
    suite.endpoints().await;
}

#[tokio::test]
async fn the_engine_stops_after_journaled_steps_and_resumes_with_their_outputs() {
    let memory = Memory::default();
    let spec = spec("crash");
    let plan = memory.plan_create(&spec).await.unwrap();
    let events = Arc::new(Recorder::default());
    let run = EngineRun::new("crash", events.clone());
    // network and disk are ready together; the crash comes after machine.
    let (outcome, _) = run
        .run(
            &memory,
            &spec,
            Operation::Create,
            RunOptions {
                resume: false,
                rollback: true,
            },
            Harness {
                plan: Some(plan.clone()),
                stop_after_steps: Some(3),
            },
        )
        .await;
    assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
    let journaled = run.outcomes_after(0);
    assert_eq!(
        journaled.keys().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["disk", "machine", "network"]
    );
    assert!(memory.resources("crash").unwrap().contains("machine"));
    assert_eq!(run.tear_last_line().step, Some("machine".into()));

    // The engine plans again on resume, re-runs the torn step and hands on its outputs.
    let (outcome, resumed_at) = run
        .run(
            &memory,
            &spec,
            Operation::Create,
            RunOptions {
                resume: true,
                rollback: true,
            },
            Harness::default(),
        )
        .await;
    assert!(matches!(outcome, Outcome::Succeeded), "{outcome:?}");
    let outcomes = run.outcomes_after(resumed_at);
    assert_eq!(
        outcomes.keys().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["machine", "outputs"]
    );
    assert!(outcomes[&"machine".into()].already_done);
    assert_eq!(
        outcomes[&"outputs".into()].outputs["url"],
        "http://127.0.0.1/"
    );
    assert!(
        events
            .messages()
            .iter()
            .any(|m| m.contains("re-running interrupted machine")),
        "{:?}",
        events.messages()
    );

    // Rollback undoes what was done, dependents first.
    let done = run.outcomes_after(0).keys().cloned().collect();
    undo_steps(&memory, &plan, &spec, events, &done)
        .await
        .unwrap();
    assert!(memory.resources("crash").is_none());
}

#[tokio::test]
async fn a_failing_step_is_named_after_the_steps_beside_it_finish() {
    let memory = Memory::default();
    let spec = spec("fail");
    let plan = Plan {
        steps: vec![
            step("broken", &[]),
            step("network", &[]),
            step("machine", &["network"]),
        ],
    };
    let (id, err) = run_plan(&memory, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert_eq!(id.0, "broken");
    assert!(matches!(err, ProviderError::Failed { .. }), "{err:?}");
    assert_eq!(
        memory.resources("fail"),
        Some(BTreeSet::from(["network".to_string()])),
        "network ran alongside, machine never started"
    );
}
