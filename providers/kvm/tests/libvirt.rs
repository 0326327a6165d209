//! The KVM provider against the real libvirtd + QEMU (TCG) + tgtd with the tiny guest.
//! Run with `--test-threads=1` (tests also serialize on a lock: at most two guests at once).

// Each test owns its runtime; the std lock only serializes whole tests across threads.
#![allow(clippy::await_holding_lock)]

mod support;

use std::sync::Arc;
use std::time::Instant;

use nepho_provider_api::{
    EventStatus, FormationState, MachineOpError, PowerAction, Provider, ProviderError,
};
use nepho_provider_testkit::{Conformance, Expect, Steps, destroy_missing, undo_steps};
use support::{Cluster, Formation, Recorder, destroy, run_plan, serial, ssh};

const HELLO: &str = "machines:\n  - name: hello\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    disks: [{size_gb: 1, storage: qcow2}]\n    networks: [default]\n    primary: true\n    env: {GREETING: hi there}\n    secret_env: [db_password]\noutputs:\n  ssh_user: root\n  url: http://${hello.address}/\n";

/// HELLO and a second machine, which the update adds.
const HELLO_WORLD: &str = "machines:\n  - name: hello\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    disks: [{size_gb: 1, storage: qcow2}]\n    networks: [default]\n    primary: true\n    env: {GREETING: hi there}\n    secret_env: [db_password]\n  - name: world\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    disks: [{size_gb: 1, storage: qcow2}]\n    networks: [default]\n    env: {GREETING: hi there}\noutputs:\n  ssh_user: root\n  url: http://${hello.address}/\n";

const PROVISION: &str = "#!/bin/sh\necho \"provisioned $GREETING\" > /root/marker\necho \"$DB_PASSWORD\" > /root/secret\n";

/// The conformance suite on one machine (created through a crash after its first disk and a
/// resume), with ssh, seeds and cluster status checked between its phases.
#[tokio::test(flavor = "multi_thread")]
async fn create_ssh_list_describe_rerun_destroy() {
    let _lock = serial();
    let t0 = Instant::now();
    let cluster = Cluster::new("auto", 4096);
    let provider = cluster.provider().await;
    let f = Formation::new(&cluster, "hello");
    let spec = f.spec(HELLO, Some(PROVISION));

    let preview = provider.preview(&spec).await.unwrap();
    assert!(
        preview
            .iter()
            .any(|c| c.action == "add" && c.resource == "hello" && c.kind == "machine")
    );

    let plan = provider.plan_create(&spec).await.unwrap();
    let ids: Vec<_> = plan.steps.iter().map(|s| s.id.0.clone()).collect();
    assert_eq!(
        ids,
        [
            "keypair",
            "place",
            "disk-hello",
            "seed-hello",
            "domain-hello",
            "ready-hello",
            "outputs"
        ]
    );
    let actions = serde_json::to_string(&plan).unwrap();
    assert!(
        !actions.contains("s3cret-value"),
        "secrets must not be in step actions"
    );

    let mut suite = Conformance::new(
        &provider,
        &f,
        spec.clone(),
        Expect {
            // keypair and place, then the crash right after disk-hello finished.
            crash_after: 3,
            rerun_already_done: Steps::Only(&["keypair", "disk-hello", "domain-hello", "place"]),
            destroy_rerun_already_done: Steps::Only(&["destroy-hello"]),
            power: true,
            preview_always_modifies: &[],
            preview_gap: None,
        },
    );
    let outcomes = suite.create().await;
    eprintln!("create took {:.1} s", t0.elapsed().as_secs_f64());
    let msgs = suite.events.messages();
    assert!(
        msgs.iter()
            .any(|m| m.contains("using QEMU software emulation")),
        "TCG fallback warning: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("waiting for")),
        "{msgs:?}"
    );
    let address = outcomes[&"ready-hello".into()].outputs["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        outcomes[&"outputs".into()].outputs["url"],
        format!("http://{address}/")
    );

    // The seed is private (it may carry secrets).
    for seed in f.files().iter().filter(|p| p.ends_with(".iso")) {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(seed).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{seed} is readable by others");
    }

    let endpoints = suite.endpoints().await;
    assert_eq!(endpoints.ssh.len(), 1);
    assert_eq!(endpoints.ssh[0].host, address);
    assert_eq!(
        endpoints.url.as_deref(),
        Some(format!("http://{address}/").as_str())
    );
    let (ok, out) = ssh(&endpoints.ssh[0], "hostname; cat /root/marker /root/secret");
    assert!(ok, "ssh failed");
    assert_eq!(out, "hello\nprovisioned hi there\ns3cret-value\n");

    let mine = suite.list().await;
    assert_eq!(mine.state, FormationState::Running);
    assert_eq!(mine.cloudlet.as_deref(), Some("test"));
    let details = suite.describe().await;
    let machine = details
        .resources
        .iter()
        .find(|r| r.kind == "machine")
        .unwrap();
    assert_eq!(machine.status, "running");
    assert!(machine.reason.as_ref().unwrap().contains(&address));
    assert_eq!(details.outputs["url"], format!("http://{address}/"));
    let status = provider.cluster_status().await.unwrap();
    assert!(
        status.hosts[0]
            .machines
            .iter()
            .any(|m| m.formation == spec.name && m.machine == "hello")
    );
    assert!(status.hosts[0].used.memory_mb >= 256);

    // Crash recovery: every step of a finished create runs again without harm.
    let t1 = Instant::now();
    let again = suite.rerun().await;
    for id in ["keypair", "disk-hello", "domain-hello", "place"] {
        assert!(
            again[&id.into()].already_done,
            "{id} should find its work done"
        );
    }
    assert_eq!(
        again[&"ready-hello".into()].outputs["address"].as_str(),
        Some(address.as_str())
    );
    assert_eq!(f.domains().len(), 1);
    eprintln!("re-run took {:.1} s", t1.elapsed().as_secs_f64());

    // Preview and update: a second machine is added beside the first.
    let changed = f.spec(HELLO_WORLD, Some(PROVISION));
    let changes = suite.preview(&changed).await;
    assert!(
        changes
            .iter()
            .any(|c| c.action == "add" && c.resource == "world" && c.kind == "machine"),
        "{changes:?}"
    );
    let t2 = Instant::now();
    suite
        .update(changed, |details| {
            let machines = details.resources.iter().filter(|r| r.kind == "machine");
            (machines.filter(|r| r.status == "running").count() == 2)
                .then_some(())
                .ok_or_else(|| "two running machines".to_string())
        })
        .await;
    assert_eq!(f.domains().len(), 2);
    eprintln!("update took {:.1} s", t2.elapsed().as_secs_f64());
    // Both machines stop, then start again.
    suite.power().await;

    suite.destroy().await;
    assert!(f.domains().is_empty(), "domains left: {:?}", f.domains());
    assert!(f.files().is_empty(), "files left: {:?}", f.files());
    assert!(
        provider
            .list()
            .await
            .unwrap()
            .iter()
            .all(|s| s.name != spec.name)
    );
    assert!(matches!(
        provider.describe(&spec.name).await,
        Err(ProviderError::NotFound(_))
    ));

    // A create whose last step fails is rolled back: no domain, disk or seed is left.
    let doomed = Formation::new(&cluster, "doomed");
    suite
        .rollback(&doomed, doomed.spec(HELLO, Some(PROVISION)))
        .await;
    assert!(doomed.domains().is_empty(), "{:?}", doomed.domains());
    assert!(doomed.files().is_empty(), "{:?}", doomed.files());
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_machines_in_parallel_then_stop_start_reset() {
    let _lock = serial();
    let t0 = Instant::now();
    let cluster = Cluster::new("qemu", 4096);
    let provider = cluster.provider().await;
    let f = Formation::new(&cluster, "pair");
    let pattern = "machines:\n  - name: web\n    count: 2\n    memory_mb: 256\n    image: tiny\n    disks: [{size_gb: 1}, {size_gb: 1, storage: qcow2}]\n    primary: true\noutputs:\n  url: http://${web-1.address}/\n";
    let spec = f.spec(pattern, None);
    let plan = provider.plan_create(&spec).await.unwrap();
    run_plan(&provider, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .map_err(|(id, e)| format!("{id}: {e}"))
        .unwrap();
    eprintln!("two machines up in {:.1} s", t0.elapsed().as_secs_f64());
    let endpoints = provider.endpoints(&spec.name).await.unwrap();
    assert_eq!(
        endpoints
            .ssh
            .iter()
            .map(|e| e.machine.as_str())
            .collect::<Vec<_>>(),
        ["web-1", "web-2"]
    );
    let (ok, out) = ssh(&endpoints.ssh[1], "hostname; grep -c vdb /proc/partitions");
    assert!(ok);
    assert_eq!(out, "web-2\n1\n");

    let t = Instant::now();
    provider.stop(&spec.name, Some("web-2")).await.unwrap();
    eprintln!("stop took {:.1} s", t.elapsed().as_secs_f64());
    let list = provider.list().await.unwrap();
    let mine = list.iter().find(|s| s.name == spec.name).unwrap();
    assert_eq!(
        mine.status_reason.as_deref(),
        Some("1 of 2 machines running")
    );
    assert!(matches!(
        provider.stop(&spec.name, Some("nope")).await,
        Err(ProviderError::NotFound(_))
    ));
    provider.start(&spec.name, Some("web-2")).await.unwrap();
    provider.reset(&spec.name, Some("web-1")).await.unwrap();
    // Both come back: the ready steps wait for them again.
    let again = run_plan(&provider, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .map_err(|(id, e)| format!("{id}: {e}"))
        .unwrap();
    assert!(again[&"domain-web-2".into()].already_done);
    let endpoints = provider.endpoints(&spec.name).await.unwrap();
    let (ok, out) = ssh(&endpoints.ssh[1], "hostname");
    assert!(ok && out == "web-2\n");

    destroy(&provider, &spec).await;
    assert!(f.domains().is_empty(), "domains left: {:?}", f.domains());
    assert!(f.files().is_empty(), "files left: {:?}", f.files());
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}

/// The capability traits as the CLI reaches them, through `&dyn Provider`: power through
/// `machines()`, the machine on its host through `cluster().status()`, and the power state an
/// operation needs named when the machine is in another one.
#[tokio::test(flavor = "multi_thread")]
async fn machine_and_cluster_operations_through_the_provider_trait() {
    let _lock = serial();
    let t0 = Instant::now();
    let cluster = Cluster::new("qemu", 4096);
    let kvm = cluster.provider().await;
    let f = Formation::new(&cluster, "ops");
    let pattern = "machines:\n  - name: box\n    memory_mb: 256\n    image: tiny\n    disks: [{size_gb: 1}]\n    primary: true\n";
    let spec = f.spec(pattern, None);
    let plan = kvm.plan_create(&spec).await.unwrap();
    run_plan(&kvm, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .map_err(|(id, e)| format!("{id}: {e}"))
        .unwrap();
    eprintln!("machine up in {:.1} s", t0.elapsed().as_secs_f64());

    let provider: &dyn Provider = &kvm;
    let machines = provider.machines().expect("kvm offers machine operations");
    let cluster_ops = provider.cluster().expect("kvm manages a cluster");
    let state_of_box = |status: &nepho_provider_api::ClusterStatus| {
        status
            .hosts
            .iter()
            .flat_map(|h| &h.machines)
            .find(|m| m.formation == spec.name && m.machine == "box")
            .map(|m| m.state.clone())
    };
    assert_eq!(cluster_ops.hosts().len(), 1);
    let status = cluster_ops.status().await.unwrap();
    assert_eq!(state_of_box(&status).as_deref(), Some("running"));
    assert!(status.hosts[0].reachable);

    // Growing a drive needs the machine shut off; the error says so.
    match machines.resize_drive(&spec.name, None, "disk0", 2).await {
        Err(MachineOpError::WrongState { state, needed, .. }) => {
            assert_eq!((state.as_str(), needed), ("running", "shut off"));
        }
        other => panic!("{other:?}"),
    }

    machines
        .power(&spec.name, None, PowerAction::Stop)
        .await
        .unwrap();
    assert_eq!(f.domains().len(), 1);
    let status = cluster_ops.status().await.unwrap();
    assert_eq!(state_of_box(&status).as_deref(), Some("shut off"));
    assert_eq!(
        provider
            .list()
            .await
            .unwrap()
            .iter()
            .find(|s| s.name == spec.name)
            .unwrap()
            .state,
        FormationState::Stopped
    );
    match machines.vnc(&spec.name, None, 0).await {
        Err(MachineOpError::WrongState { needed, .. }) => assert_eq!(needed, "running"),
        other => panic!("{:?}", other.map(|c| c.display)),
    }
    assert!(matches!(
        machines
            .power(&spec.name, Some("nope"), PowerAction::Start)
            .await,
        Err(MachineOpError::Provider(ProviderError::NotFound(_)))
    ));

    machines
        .power(&spec.name, None, PowerAction::Start)
        .await
        .unwrap();
    let status = cluster_ops.status().await.unwrap();
    assert_eq!(state_of_box(&status).as_deref(), Some("running"));

    destroy(&kvm, &spec).await;
    assert!(f.domains().is_empty(), "domains left: {:?}", f.domains());
    assert!(f.files().is_empty(), "files left: {:?}", f.files());
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread")]
async fn iscsi_boot_disk() {
    let _lock = serial();
    let t0 = Instant::now();
    let cluster = Cluster::new("qemu", 4096);
    let provider = cluster.provider().await;
    let f = Formation::new(&cluster, "iscsi");
    let pattern = "machines:\n  - name: db\n    image: tiny\n    disks: [{size_gb: 1, storage: iscsi}, {size_gb: 1, storage: iscsi}]\n";
    let spec = f.spec(pattern, Some("#!/bin/sh\ncat /proc/cmdline\n"));
    let plan = provider.plan_create(&spec).await.unwrap();
    let outcomes = run_plan(&provider, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .map_err(|(id, e)| format!("{id}: {e}"))
        .unwrap();
    eprintln!("iSCSI machine up in {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        outcomes[&"disk-db".into()].outputs["disks"]
            .to_string()
            .contains("\"lun\"")
    );
    assert_eq!(f.targets().len(), 1, "one target per machine");
    let endpoints = provider.endpoints(&spec.name).await.unwrap();
    let (ok, out) = ssh(
        &endpoints.ssh[0],
        "cat /proc/cmdline; grep -c vdb /proc/partitions",
    );
    assert!(ok);
    assert!(
        out.contains("BOOT_IMAGE=/boot/vmlinuz"),
        "booted from the LUN: {out}"
    );
    assert!(out.ends_with("1\n"));
    let describe = provider.describe(&spec.name).await.unwrap();
    assert_eq!(
        describe
            .resources
            .iter()
            .filter(|r| r.kind == "iscsi-lun")
            .count(),
        2
    );

    destroy(&provider, &spec).await;
    assert!(f.domains().is_empty());
    assert!(f.targets().is_empty(), "targets left: {:?}", f.targets());
    assert!(f.files().is_empty(), "files left: {:?}", f.files());
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_provisioner_fails_ready_with_its_log_and_undo_removes_everything() {
    let _lock = serial();
    let cluster = Cluster::new("qemu", 4096);
    let provider = cluster.provider().await;
    let f = Formation::new(&cluster, "fail");
    let spec = f.spec(
        HELLO,
        Some("#!/bin/sh\necho boom-from-provisioner\nexit 3\n"),
    );
    let plan = provider.plan_create(&spec).await.unwrap();
    let (id, err) = run_plan(&provider, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert_eq!(id.0, "ready-hello");
    let text = err.to_string();
    assert!(
        text.contains("exit 3") && text.contains("boom-from-provisioner"),
        "{text}"
    );
    // Roll back like the engine: undo the done steps, dependents first.
    let done = plan
        .steps
        .iter()
        .filter(|s| s.id.0 != "ready-hello" && s.id.0 != "outputs")
        .map(|s| s.id.clone())
        .collect();
    undo_steps(
        &provider,
        &plan,
        &spec,
        Arc::new(Recorder::default()),
        &done,
    )
    .await
    .map_err(|(id, e)| format!("undo {id}: {e}"))
    .unwrap();
    assert!(f.domains().is_empty(), "domains left: {:?}", f.domains());
    assert!(f.files().is_empty(), "files left: {:?}", f.files());
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_missing_formation_succeeds() {
    let _lock = serial();
    let cluster = Cluster::new("qemu", 4096);
    let provider = cluster.provider().await;
    let f = Formation::new(&cluster, "missing");
    let spec = f.spec(HELLO, None);
    let plan = provider.plan_destroy(&spec.name).await.unwrap();
    assert_eq!(plan.steps.len(), 1);
    destroy_missing(&provider, &f, &spec).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_too_big_for_every_host_is_explained() {
    let _lock = serial();
    let cluster = Cluster::new("qemu", 1024);
    let provider = cluster.provider().await;
    let f = Formation::new(&cluster, "big");
    let spec = f.spec(
        "machines:\n  - name: huge\n    cpus: 2\n    memory_mb: 8192\n    image: tiny\n    labels: {rack: b}\n",
        None,
    );
    let plan = provider.plan_create(&spec).await.unwrap();
    let events = Arc::new(Recorder::default());
    let (id, err) = run_plan(&provider, &plan, &spec, events).await.unwrap_err();
    assert_eq!(id.0, "place");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Invalid { .. }));
    assert!(
        text.contains("no host can take machine huge (2 vCPU, 8192 MiB, labels rack=b)"),
        "{text}"
    );
    assert!(
        text.contains("host local:")
            && text.contains("of 1024 MiB free")
            && text.contains("lacks labels rack=b"),
        "{text}"
    );
    assert!(f.domains().is_empty());
    let _ = EventStatus::Info;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_cluster_files_and_patterns_are_explained() {
    let cluster = Cluster::new("qemu", 1024);
    std::fs::write(
        &cluster.file,
        "hosts: [{name: a, uri: 'qemu:///system', cpus: 1, memory_mb: 1}]\nstorrage: {}\n",
    )
    .unwrap();
    let err = nepho_provider_kvm::connect(&nepho_provider_kvm::KvmSettings {
        cluster_file: cluster.file.clone(),
        probe_cache: None,
        library_images: Default::default(),
        image_holds: None,
    })
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("storrage"), "{err}");
    let cluster = Cluster::new("qemu", 1024);
    let provider = cluster.provider().await;
    let f = Formation::new(&cluster, "bad");
    let err = provider
        .validate(&f.spec("machines: [{name: a, image: nope}]", None))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("image `nope`"), "{err}");
    let err = provider
        .validate(&f.spec("machines: [{name: a, image: tiny, env: {X: '${b.address}'}}, {name: b, image: tiny, env: {Y: '${a.address}'}}]", None))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("loop"), "{err}");
}
