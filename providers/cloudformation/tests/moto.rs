//! The CloudFormation provider against a real moto_server: the trait driven as the engine
//! drives it (plan, then each step in dependency order), checked against what exists after.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use nepho_provider_api::{EventKind, FormationState, Provider, ProviderError, StepId};
use nepho_provider_testkit::{Conformance, Expect, Steps, destroy_missing, undo_steps};
use serde_json::json;
use support::{Moto, Recorder, fixture, run_plan, spec};

fn hello_spec(name: &str) -> nepho_provider_api::FormationSpec {
    spec(
        name,
        "hello.cf",
        fixture("hello.cf"),
        json!({"instance_type": "t3.micro", "image_id": "ami-0123456789abcdef0", "key_name": "", "ssh_cidr": "0.0.0.0/0", "greeting": "hi"}),
    )
}

const SECRET: &str = "Sup3r-Secret-Pw-8472";

fn webapp_spec(name: &str, password: Option<&str>) -> nepho_provider_api::FormationSpec {
    let mut params = json!({"app_name": "webapp", "web_count": 2, "db_name": "app", "db_user": "app",
        "packages": ["curl", "git"], "instance_type": "t3.small"});
    if let Some(pw) = password {
        params["db_password"] = json!(pw);
    }
    let mut s = spec(name, "webapp.cf", fixture("webapp.cf"), params);
    s.secret_keys = BTreeSet::from(["db_password".to_string()]);
    s
}

fn step_ids(plan: &nepho_provider_api::Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.id.0.clone()).collect()
}

/// The conformance suite: the stack is created through a crash after its change set and a
/// resume, then read back, re-run and destroyed; CloudFormation specifics are checked between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_describe_endpoints_destroy() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let spec = hello_spec("hello-one");

    let plan = provider.plan_create(&spec).await.unwrap();
    assert_eq!(
        step_ids(&plan),
        ["change-set", "execute"],
        "a small template needs no S3 step"
    );
    let mut suite = Conformance::new(
        &provider,
        &moto,
        spec,
        Expect {
            crash_after: 1,
            rerun_already_done: Steps::All,
            destroy_rerun_already_done: Steps::Only(&["delete-stack"]),
            power: false,
            preview_always_modifies: &[],
            preview_gap: Some(
                "moto lists no changes in an update change set, and answers DeleteChangeSet of one without changes with no XML",
            ),
        },
    );
    let outcomes = suite.create().await;
    let events = suite.events.clone();
    let execute = &outcomes[&StepId::from("execute")];
    assert!(!execute.already_done);
    assert_eq!(execute.outputs["status"], "CREATE_COMPLETE");

    // Progress: per-resource events, with logical id, type and status.
    let messages = events.messages();
    assert!(
        messages
            .iter()
            .any(|m| m == "HelloInstance AWS::EC2::Instance CREATE_COMPLETE"),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("HelloSecurityGroup AWS::EC2::SecurityGroup CREATE_COMPLETE"))
    );
    let last_progress = events
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == EventKind::Resource)
        .filter_map(|e| e.3.clone())
        .next_back()
        .expect("resource events carry progress");
    assert_eq!((last_progress.done, last_progress.total), (3, 3));
    // Parameters the template does not declare are named (not their values) in a warning.
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("warning:") && m.contains("greeting") && m.contains("image_id")),
        "{messages:#?}"
    );

    // The stack is tagged.
    let stack = moto
        .cfn()
        .describe_stacks()
        .stack_name("hello-one")
        .send()
        .await
        .unwrap();
    let tags: Vec<(String, String)> = stack.stacks()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    for expected in [
        ("nepho:formation", "hello-one"),
        ("nepho:cloudlet", "test-cloudlet"),
        ("nepho:scenario", "aws"),
    ] {
        assert!(
            tags.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{tags:?}"
        );
    }

    let listed = suite.list().await;
    assert_eq!(provider.list().await.unwrap().len(), 1);
    assert_eq!(listed.name, "hello-one");
    assert_eq!(listed.cloudlet.as_deref(), Some("test-cloudlet"));
    assert_eq!(listed.state, FormationState::Running);

    let details = suite.describe().await;
    assert_eq!(details.summary.state, FormationState::Running);
    let resources: BTreeSet<&str> = details
        .resources
        .iter()
        .map(|r| r.resource.as_str())
        .collect();
    assert_eq!(
        resources,
        BTreeSet::from(["HelloSecurityGroup", "HelloInstance", "HelloAddress"])
    );
    assert!(
        details
            .resources
            .iter()
            .all(|r| r.status == "CREATE_COMPLETE" && r.id.is_some())
    );
    assert!(!details.recent_events.is_empty());

    // moto gap: a stack created through a change set has no Outputs in moto, so endpoints()
    // is exercised on an output-bearing stack below; here it must at least answer.
    suite.endpoints().await;

    // Every step of the finished create runs again without harm (also run twice in
    // every_step_of_a_finished_create_can_run_again).
    suite.rerun().await;
    assert_eq!(provider.list().await.unwrap().len(), 1, "no second stack");

    // Preview and update: a new instance type modifies the instance, through a change set.
    let mut changed = suite.spec().clone();
    changed
        .parameters
        .insert("instance_type".into(), json!("t3.small"));
    suite.preview(&changed).await;
    suite
        .update(changed, |details| {
            // (moto reports the stack's update, not the instance's.)
            (details.summary.status_reason.as_deref() == Some("UPDATE_COMPLETE"))
                .then_some(())
                .ok_or_else(|| "the stack was not updated".to_string())
        })
        .await;
    // A stack has no machines to power: the suite says so and goes on.
    suite.power().await;

    let destroy = provider.plan_destroy("hello-one").await.unwrap();
    assert_eq!(step_ids(&destroy), ["delete-stack", "delete-objects"]);
    let outcomes = suite.destroy().await;
    assert!(!outcomes[&StepId::from("delete-stack")].already_done);
    assert!(
        !moto.stack_exists("hello-one").await,
        "the stack is gone from DescribeStacks"
    );
    assert!(provider.list().await.unwrap().is_empty());
    assert!(matches!(
        provider.describe("hello-one").await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        provider.endpoints("hello-one").await,
        Err(ProviderError::NotFound(_))
    ));

    // A create whose last step fails is rolled back: no stack is left.
    suite.rollback(&moto, hello_spec("hello-doomed")).await;
    assert!(provider.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_come_from_stack_outputs() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    // CreateStack (not a change set) is the one path on which moto computes Outputs.
    moto.cfn()
        .create_stack()
        .stack_name("hello-out")
        .template_body(fixture("hello.cf"))
        .tags(
            aws_sdk_cloudformation::types::Tag::builder()
                .key("nepho:formation")
                .value("hello-out")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let endpoints = provider.endpoints("hello-out").await.unwrap();
    assert_eq!(endpoints.ssh.len(), 1, "{endpoints:?}");
    let ssh = &endpoints.ssh[0];
    assert_eq!(ssh.user, "admin");
    assert_eq!(ssh.port, 22);
    assert!(!ssh.host.is_empty());
    assert_eq!(
        endpoints.url.as_deref(),
        Some(format!("http://{}/", ssh.host).as_str())
    );
    assert_eq!(endpoints.outputs["SSHUser"], "admin");
    let details = provider.describe("hello-out").await.unwrap();
    assert_eq!(details.outputs["SSHUser"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_finished_create_can_run_again() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let spec = hello_spec("hello-again");
    let events = Arc::new(Recorder::default());
    let plan = provider.plan_create(&spec).await.unwrap();
    run_plan(&provider, &plan, &spec, events.clone())
        .await
        .unwrap();
    let stack_id = |o: &support::Outcomes| o[&StepId::from("execute")].outputs["stack_id"].clone();
    let first = run_plan(&provider, &plan, &spec, events.clone())
        .await
        .unwrap();
    let second = run_plan(&provider, &plan, &spec, events.clone())
        .await
        .unwrap();
    for outcomes in [&first, &second] {
        assert!(outcomes.values().all(|o| o.already_done), "{outcomes:?}");
    }
    assert_eq!(stack_id(&first), stack_id(&second));
    assert_eq!(provider.list().await.unwrap().len(), 1, "no second stack");

    // Destroy twice: the second finds nothing to do and still succeeds.
    let destroy = provider.plan_destroy("hello-again").await.unwrap();
    run_plan(&provider, &destroy, &spec, events.clone())
        .await
        .unwrap();
    let again = run_plan(&provider, &destroy, &spec, events.clone())
        .await
        .unwrap();
    assert!(again[&StepId::from("delete-stack")].already_done);
    assert!(!moto.stack_exists("hello-again").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_missing_formation_succeeds() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let spec = hello_spec("never-created");
    let outcomes = destroy_missing(&provider, &moto, &spec).await;
    assert!(outcomes.values().all(|o| o.already_done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_parameter_without_value_fails_before_anything_exists() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let spec = webapp_spec("webapp-nopw", None);
    let err = provider.plan_create(&spec).await.unwrap_err();
    let ProviderError::Invalid { message, hint } = &err else {
        panic!("expected Invalid, got {err:?}")
    };
    assert!(message.contains("DBPassword"), "{message}");
    assert!(
        hint.as_deref().unwrap().contains("--set db_password="),
        "{hint:?}"
    );
    assert!(provider.validate(&spec).await.is_err());
    assert!(!moto.stack_exists("webapp-nopw").await);
    assert!(provider.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_actions_outputs_or_events() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let spec = webapp_spec("webapp-secret", Some(SECRET));
    let events = Arc::new(Recorder::default());
    let plan = provider.plan_create(&spec).await.unwrap();
    let outcomes = run_plan(&provider, &plan, &spec, events.clone())
        .await
        .unwrap();
    assert_eq!(
        outcomes[&StepId::from("execute")].outputs["status"],
        "CREATE_COMPLETE"
    );

    let journaled = serde_json::to_string(&plan).unwrap();
    assert!(!journaled.contains(SECRET), "{journaled}");
    let outputs = format!("{outcomes:?}");
    assert!(!outputs.contains(SECRET));
    for message in events.messages() {
        assert!(!message.contains(SECRET), "{message}");
    }
    // ...yet CloudFormation received it (moto echoes NoEcho values as ****, so look at the
    // parameter list instead of the value).
    let stack = moto
        .cfn()
        .describe_stacks()
        .stack_name("webapp-secret")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = stack.stacks()[0]
        .parameters()
        .iter()
        .filter_map(|p| p.parameter_key())
        .collect();
    assert_eq!(keys, ["DBPassword"]);
    let details = provider.describe("webapp-secret").await.unwrap();
    assert!(!format!("{details:?}").contains(SECRET));
    let resources: BTreeSet<&str> = details
        .resources
        .iter()
        .map(|r| r.resource.as_str())
        .collect();
    assert!(
        resources.contains("Database")
            && resources.contains("Web2")
            && resources.contains("LoadBalancer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_error_names_the_resource_and_reason() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let template = r#"
Resources:
  AppGroup:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !GetAtt MissingBucket.Arn
"#;
    let spec = spec("broken", "broken.cf", template.to_string(), json!({}));
    let plan = provider.plan_create(&spec).await.unwrap();
    let (step, err) = run_plan(&provider, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert_eq!(step.0, "execute");
    let ProviderError::Failed { message, .. } = &err else {
        panic!("expected Failed, got {err:?}")
    };
    assert!(message.contains("broken"), "{message}");
    assert!(message.contains("MissingBucket"), "{message}");
    assert!(
        message.contains("AppGroup (AWS::EC2::SecurityGroup)"),
        "{message}"
    );
    assert!(
        message.contains("Fn::GetAtt references undefined resource"),
        "{message}"
    );

    // Undo (rollback) removes what the failed create left: every step, dependents first.
    let all = plan.steps.iter().map(|s| s.id.clone()).collect();
    undo_steps(&provider, &plan, &spec, Arc::new(Recorder::default()), &all)
        .await
        .unwrap();
    assert!(!moto.stack_exists("broken").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_template_goes_through_s3() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let padding = "x".repeat(60_000);
    let template = format!(
        "{}\nMetadata:\n  Padding: \"{padding}\"\n",
        fixture("hello.cf")
    );
    assert!(template.len() > nepho_provider_cloudformation::INLINE_TEMPLATE_LIMIT);
    let mut spec = hello_spec("hello-big");
    spec.pattern[0].contents = template;
    let plan = provider.plan_create(&spec).await.unwrap();
    assert_eq!(step_ids(&plan), ["template", "change-set", "execute"]);
    let outcomes = run_plan(&provider, &plan, &spec, Arc::new(Recorder::default()))
        .await
        .unwrap();
    assert_eq!(
        outcomes[&StepId::from("execute")].outputs["status"],
        "CREATE_COMPLETE"
    );
    let bucket = outcomes[&StepId::from("template")].outputs["bucket"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(bucket, "nepho-templates-123456789012-us-east-1");
    let listed = moto
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("nepho/hello-big/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1);

    let destroy = provider.plan_destroy("hello-big").await.unwrap();
    let outcomes = run_plan(&provider, &destroy, &spec, Arc::new(Recorder::default()))
        .await
        .unwrap();
    assert_eq!(
        outcomes[&StepId::from("delete-objects")].outputs["deleted_objects"],
        1
    );
    assert!(!moto.stack_exists("hello-big").await);
    let listed = moto
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("nepho/hello-big/")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty(), "nepho's objects are deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_lists_the_changes_and_leaves_nothing_behind() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let spec = hello_spec("hello-preview");
    let changes = provider.preview(&spec).await.unwrap();
    let adds: BTreeSet<(&str, &str)> = changes
        .iter()
        .filter(|c| c.action == "add")
        .map(|c| (c.resource.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        adds,
        BTreeSet::from([
            ("HelloSecurityGroup", "AWS::EC2::SecurityGroup"),
            ("HelloInstance", "AWS::EC2::Instance"),
            ("HelloAddress", "AWS::EC2::EIP"),
        ])
    );
    assert!(
        !moto.stack_exists("hello-preview").await,
        "no REVIEW_IN_PROGRESS stack is left"
    );
    let summaries = moto.cfn().list_stacks().send().await.unwrap();
    assert!(
        summaries
            .stack_summaries()
            .iter()
            .filter(|s| s.stack_name() == Some("hello-preview"))
            .all(|s| s.stack_status().map(|s| s.as_str()) == Some("DELETE_COMPLETE")),
        "{summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1x_payload_is_zipped_uploaded_and_passed_as_payload_url() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let payload = tempfile::tempdir().unwrap();
    std::fs::write(payload.path().join("setup.sh"), "#!/bin/sh\necho payload\n").unwrap();
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"PayloadURL": {"Type": "String"}, "KeyName": {"Type": "String", "Default": ""}},
        "Resources": {"Group": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": {"Ref": "PayloadURL"}}}}
    });
    let mut spec = spec(
        "legacy-app",
        "cf.json",
        template.to_string(),
        json!({"key_name": "mine"}),
    );
    spec.v1 = true;
    spec.payload_dir = Some(payload.path().to_path_buf());
    let events = Arc::new(Recorder::default());
    let plan = provider.plan_create(&spec).await.unwrap();
    assert_eq!(step_ids(&plan), ["payload", "change-set", "execute"]);
    run_plan(&provider, &plan, &spec, events.clone())
        .await
        .unwrap();

    let stack = moto
        .cfn()
        .describe_stacks()
        .stack_name("legacy-app")
        .send()
        .await
        .unwrap();
    let url = stack.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("PayloadURL"))
        .and_then(|p| p.parameter_value())
        .unwrap()
        .to_string();
    assert!(
        url.contains("nepho/legacy-app/payload.zip") && url.contains("X-Amz-Signature"),
        "{url}"
    );
    // The presigned URL grants access: it is never shown.
    for message in events.messages() {
        assert!(!message.contains("X-Amz-Signature"), "{message}");
    }
    let object = moto
        .s3()
        .get_object()
        .bucket("nepho-templates-123456789012-us-east-1")
        .key("nepho/legacy-app/payload.zip")
        .send()
        .await
        .unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..2], b"PK", "a zip archive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_goes_through_an_update_change_set() {
    let moto = Moto::start();
    let provider = moto.provider().await;
    let spec = hello_spec("hello-update");
    let events = Arc::new(Recorder::default());
    let plan = provider.plan_create(&spec).await.unwrap();
    run_plan(&provider, &plan, &spec, events.clone())
        .await
        .unwrap();

    let mut changed = spec.clone();
    changed
        .parameters
        .insert("instance_type".into(), json!("t3.small"));
    let update = provider.plan_update(&changed).await.unwrap();
    assert_eq!(step_ids(&update), ["change-set", "execute"]);
    assert!(update.steps[0].description.contains("update"));
    let outcomes = run_plan(&provider, &update, &changed, events.clone())
        .await
        .unwrap();
    assert_eq!(
        outcomes[&StepId::from("execute")].outputs["status"],
        "UPDATE_COMPLETE"
    );
    let stack = moto
        .cfn()
        .describe_stacks()
        .stack_name("hello-update")
        .send()
        .await
        .unwrap();
    let instance_type = stack.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("InstanceType"))
        .and_then(|p| p.parameter_value())
        .map(str::to_string);
    assert_eq!(instance_type.as_deref(), Some("t3.small"));
    // A second run of the same update is harmless.
    run_plan(&provider, &update, &changed, events.clone())
        .await
        .unwrap();

    // Updating a formation that has no stack is NotFound.
    let missing = hello_spec("hello-missing");
    let plan = provider.plan_update(&missing).await.unwrap();
    let (_, err) = run_plan(&provider, &plan, &missing, events)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::NotFound(_)), "{err:?}");
}
