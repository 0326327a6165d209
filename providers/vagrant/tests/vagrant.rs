//! The provider suite against the real vagrant + vagrant-libvirt + libvirtd (QEMU TCG): create,
//! idempotent re-run, list, describe, endpoints (ssh with the system ssh), stop/start, update,
//! destroy; and a cancelled `vagrant up` followed by destroy.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nepho_provider_api::{FormationState, PowerAction, Provider, StepContext};
use nepho_provider_testkit::{Conformance, Expect, Steps, destroy_missing};
use support::{Recorder, World, domains, missing_prerequisite, run_plan, serial, volumes};

fn ssh(endpoint: &nepho_provider_api::SshEndpoint, command: &str) -> String {
    let mut c = Command::new("ssh");
    c.args(["-p", &endpoint.port.to_string()]);
    if let Some(k) = &endpoint.identity_file {
        c.arg("-i").arg(k);
    }
    for o in &endpoint.options {
        c.args(["-o", o]);
    }
    c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]);
    c.arg(format!("{}@{}", endpoint.user, endpoint.host))
        .arg(command);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_suite_on_real_vagrant() {
    let _serial = serial().await;
    if missing_prerequisite().is_some() {
        return;
    }
    let mut world = World::new("suite");
    let name = format!("vgsuite{}", std::process::id());
    let spec = world.spec(&name);
    // The formation whose create the suite fails at its last step and rolls back.
    let doomed = world.spec(&format!("vgdoomed{}", std::process::id()));
    let provider = world.provider();

    provider.validate(&spec).await.unwrap();
    let preview = provider.preview(&spec).await.unwrap();
    assert!(
        preview.iter().any(|c| c.kind == "box" && c.action == "add"),
        "{preview:?}"
    );

    let plan = provider.plan_create(&spec).await.unwrap();
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.0.as_str()).collect();
    assert_eq!(ids, ["project", "box", "up"]);
    let mut suite = Conformance::new(
        &provider,
        &world,
        spec.clone(),
        Expect {
            // The crash comes right after the box was added: the resume adds no box again.
            crash_after: 2,
            rerun_already_done: Steps::Only(&["box"]),
            destroy_rerun_already_done: Steps::Only(&["destroy"]),
            power: true,
            // Every update re-renders the project and provisions again.
            preview_always_modifies: &["vagrant-project"],
            preview_gap: None,
        },
    );
    let events = suite.events.clone();
    let started = Instant::now();
    // The suite checks that no step found a fresh formation done.
    suite.create().await;
    eprintln!("create: {:.1} s", started.elapsed().as_secs_f64());
    let log = events.messages();
    for expected in [
        "machine default: up start",
        "waiting for machine to boot",
        "bootstrap: done",
    ] {
        assert!(
            log.iter().any(|m| m.contains(expected)),
            "{expected:?} not in {log:#?}"
        );
    }
    assert_eq!(domains(&format!("{name}_")), [format!("{name}_default")]);

    // Re-running the whole plan (resume after a crash) changes nothing and adds no box.
    let started = Instant::now();
    let again = suite.rerun().await;
    eprintln!(
        "idempotent re-run: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(again[&"box".into()].already_done, "box step: {again:?}");
    assert_eq!(domains(&format!("{name}_")).len(), 1);

    let row = suite.list().await;
    assert_eq!(row.state, FormationState::Running);
    assert_eq!(row.cloudlet.as_deref(), Some("vgtest"));
    let details = suite.describe().await;
    assert_eq!(details.resources[0].resource, "default");
    assert_eq!(details.resources[0].status, "running");

    let endpoints = suite.endpoints().await;
    assert_eq!(endpoints.ssh.len(), 1);
    let out = ssh(&endpoints.ssh[0], "hostname; cat /tmp/marker");
    assert!(
        out.contains(&name) && out.contains("provisioned first"),
        "{out}"
    );

    // Update: re-render with a new value and `vagrant provision`.
    let mut updated = spec.clone();
    updated.parameters.insert("mark".into(), "second".into());
    let plan = provider.plan_update(&updated).await.unwrap();
    assert_eq!(plan.steps.last().unwrap().id.0, "provision");
    let changes = suite.preview(&updated).await;
    assert!(
        changes
            .iter()
            .any(|c| c.kind == "vagrant-project" && c.action == "modify"),
        "{changes:?}"
    );
    suite
        .update(updated, |_| {
            let out = ssh(&endpoints.ssh[0], "cat /tmp/marker");
            out.contains("provisioned second")
                .then_some(())
                .ok_or(format!("the marker says {out:?}"))
        })
        .await;

    // Halt, then up again (without provisioning: /tmp starts empty); ssh answers afterwards.
    suite.power().await;
    let endpoints = provider.endpoints(&name).await.unwrap();
    ssh(&endpoints.ssh[0], "true");

    // Destroy still works when the Vagrantfile no longer loads (vagrant itself cannot help):
    // the machines' ids recorded in the project are enough. (The end-to-end tests cover the
    // plain `vagrant destroy -f` path.)
    let vagrantfile = spec.work_dir.join(&name).join("Vagrantfile");
    std::fs::write(&vagrantfile, "raise 'this Vagrantfile is broken'\n").unwrap();
    // The suite destroys twice: the second finds nothing to do.
    let gone = suite.destroy().await;
    assert!(
        events
            .messages()
            .iter()
            .any(|m| m.contains("removing the domains through libvirt")),
        "{:#?}",
        events.messages()
    );
    assert!(!gone[&"destroy".into()].already_done);
    assert!(domains(&format!("{name}_")).is_empty());
    assert!(volumes(&format!("{name}_")).is_empty());
    assert!(!spec.work_dir.join(&name).exists());
    assert!(matches!(
        provider.endpoints(&name).await,
        Err(nepho_provider_api::ProviderError::NotFound(_))
    ));

    // A create whose last step (vagrant up) fails is rolled back: no project is left.
    let doomed_dir = doomed.work_dir.join(&doomed.name);
    suite.rollback(&world, doomed).await;
    assert!(!doomed_dir.exists(), "{} is left", doomed_dir.display());
}

/// Destroying a formation that was never created succeeds with nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_missing_formation_succeeds() {
    let _serial = serial().await;
    if missing_prerequisite().is_some() {
        return;
    }
    let mut world = World::new("missing");
    let spec = world.spec(&format!("vgmissing{}", std::process::id()));
    let provider = world.provider();
    let outcomes = destroy_missing(&provider, &world, &spec).await;
    assert!(outcomes.values().all(|o| o.already_done), "{outcomes:?}");
}

/// The engine cancels a step by dropping its future: the running `vagrant up` is stopped,
/// and destroy then removes the half-built machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_up_then_destroy_leaves_nothing() {
    let _serial = serial().await;
    if missing_prerequisite().is_some() {
        return;
    }
    let mut world = World::new("cancel");
    let name = format!("vgcancel{}", std::process::id());
    let spec = world.spec(&name);
    let provider = world.provider();
    let events = Arc::new(Recorder::default());
    let plan = provider.plan_create(&spec).await.unwrap();
    let (up, before): (Vec<_>, Vec<_>) = plan.steps.iter().cloned().partition(|s| s.id.0 == "up");
    for step in &before {
        let cx = StepContext {
            spec: &spec,
            outputs: Default::default(),
            events: events.clone(),
        };
        provider.run_step(step, cx).await.unwrap();
    }
    let cx = StepContext {
        spec: &spec,
        outputs: Default::default(),
        events: events.clone(),
    };
    let up_step = &up[0];
    let domain_defined = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while domains(&format!("{name}_")).is_empty() {
            assert!(Instant::now() < deadline, "no domain after 120 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        r = provider.run_step(up_step, cx) => panic!("vagrant up finished before the cancel: {:?}", r.map(|_| ())),
        _ = domain_defined => {}
    }
    // The step's future is dropped here, as on `formation:cancel`.
    let plan = provider.plan_destroy(&name).await.unwrap();
    let started = Instant::now();
    run_plan(&provider, &spec, &plan, &events).await.unwrap();
    eprintln!(
        "destroy after cancel: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        domains(&format!("{name}_")).is_empty(),
        "{:?}",
        domains(&format!("{name}_"))
    );
    assert!(volumes(&format!("{name}_")).is_empty());
}

/// A box the scenario names but VAGRANT_HOME lacks is added from a URL first, with progress;
/// a second run finds it installed. (No machine is booted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_box_is_added_from_a_url() {
    let _serial = serial().await;
    if missing_prerequisite().is_some() {
        return;
    }
    let server = support::FileServer::start(std::path::Path::new(support::BOX_FILE));
    let mut world = World::new("url");
    let name = format!("vgurl{}", std::process::id());
    let mut spec = world.spec(&name);
    let url = format!("http://127.0.0.1:{}/boxes/tiny.box", server.port);
    spec.parameters.insert("box_url".into(), url.clone().into());
    let provider = world.provider();
    let events = Arc::new(Recorder::default());
    let plan = provider.plan_create(&spec).await.unwrap();
    let step = plan.steps.iter().find(|s| s.id.0 == "box").unwrap();
    assert!(step.description.contains(&url), "{}", step.description);
    let cx = StepContext {
        spec: &spec,
        outputs: Default::default(),
        events: events.clone(),
    };
    let outcome = provider.run_step(step, cx).await.unwrap();
    assert!(!outcome.already_done);
    let boxes = world
        .dir
        .path()
        .join("vagrant.d/boxes")
        .join(&world.box_name);
    assert!(
        boxes.is_dir(),
        "box not installed under {}",
        boxes.display()
    );
    let log = events.messages();
    assert!(
        log.iter().any(|m| m.contains("Downloading")),
        "no download event in {log:#?}"
    );
    let cx = StepContext {
        spec: &spec,
        outputs: Default::default(),
        events: events.clone(),
    };
    assert!(provider.run_step(step, cx).await.unwrap().already_done);
}

/// `vagrant status --machine-readable` run by hand in a project: machine → state.
fn vagrant_status(world: &World, project: &std::path::Path) -> Vec<(String, String)> {
    let out = Command::new("vagrant")
        .args(["status", "--machine-readable"])
        .current_dir(project)
        .env("VAGRANT_HOME", world.dir.path().join("vagrant.d"))
        .env("NEPHO_LIBVIRT_DRIVER", "qemu")
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_BOX_UPDATE_CHECK_DISABLE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vagrant status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(nepho_provider_vagrant::parse_line)
        .filter(|r| r.kind == "state" && !r.target.is_empty())
        .map(|r| (r.target.clone(), r.data(0).to_string()))
        .collect()
}

/// list/describe read libvirt-backed machines' states from libvirt (the domain UUIDs
/// vagrant-libvirt records in the project), not from `vagrant status`: the answer must be
/// the one `vagrant status` gives, after create, stop, start, and once the domain was
/// removed behind nepho's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_from_libvirt_match_vagrant_status() {
    let _serial = serial().await;
    if missing_prerequisite().is_some() {
        return;
    }
    let mut world = World::new("state");
    let name = format!("vqstate{}", std::process::id());
    let spec = world.spec(&name);
    let provider = world.provider();
    let events = Arc::new(Recorder::default());
    let project = spec.work_dir.join(&name);

    // Before `vagrant up` (no id recorded yet): not created, from the files alone.
    let plan = provider.plan_create(&spec).await.unwrap();
    for step in plan.steps.iter().filter(|s| s.id.0 != "up") {
        let cx = StepContext {
            spec: &spec,
            outputs: Default::default(),
            events: events.clone(),
        };
        provider.run_step(step, cx).await.unwrap();
    }
    assert_eq!(
        provider.libvirt_machine_states(&name).await.unwrap(),
        [("default".to_string(), "not_created".to_string())]
    );
    let row = provider.list().await.unwrap();
    let row = row.iter().find(|s| s.name == name).expect("listed");
    assert_eq!(row.state, FormationState::Unknown, "{row:?}");

    run_plan(&provider, &spec, &plan, &events).await.unwrap();
    let check = |expected: &'static str, formation_state: FormationState| {
        let provider = &provider;
        let world = &world;
        let project = &project;
        let name = &name;
        async move {
            let started = Instant::now();
            let fast = provider.libvirt_machine_states(name).await;
            let fast_took = started.elapsed();
            let started = Instant::now();
            let slow = vagrant_status(world, project);
            let slow_took = started.elapsed();
            eprintln!(
                "{expected}: libvirt {:.3} s, vagrant status {:.3} s",
                fast_took.as_secs_f64(),
                slow_took.as_secs_f64()
            );
            assert_eq!(fast.as_ref().unwrap(), &slow, "libvirt vs vagrant status");
            assert_eq!(
                slow,
                [("default".to_string(), expected.to_string())],
                "vagrant status"
            );
            let details = provider.describe(name).await.unwrap();
            assert_eq!(details.resources.len(), 1, "{details:?}");
            assert_eq!(details.resources[0].resource, "default");
            assert_eq!(details.resources[0].status, expected);
            assert_eq!(details.summary.state, formation_state, "{details:?}");
            let list = provider.list().await.unwrap();
            let row = list.iter().find(|s| &s.name == name).expect("listed");
            assert_eq!(row.state, formation_state, "{row:?}");
        }
    };
    check("running", FormationState::Running).await;
    provider
        .power(&name, None, PowerAction::Stop)
        .await
        .unwrap();
    check("shutoff", FormationState::Stopped).await;
    provider
        .power(&name, None, PowerAction::Start)
        .await
        .unwrap();
    check("running", FormationState::Running).await;

    // The domain removed behind nepho's back: not created (the id is still recorded).
    let domain = format!("{name}_default");
    support::virsh(&["destroy", &domain]);
    support::virsh(&["undefine", &domain, "--remove-all-storage"]);
    assert!(domains(&format!("{name}_")).is_empty());
    assert!(
        project
            .join(".vagrant/machines/default/libvirt/id")
            .is_file()
    );
    check("not_created", FormationState::Unknown).await;
    let details = provider.describe(&name).await.unwrap();
    assert_eq!(
        details.summary.status_reason.as_deref(),
        Some("no machine is created")
    );

    let plan = provider.plan_destroy(&name).await.unwrap();
    run_plan(&provider, &spec, &plan, &events).await.unwrap();
    assert!(domains(&format!("{name}_")).is_empty());
    assert!(volumes(&format!("{name}_")).is_empty());
    assert!(!project.exists());
}
