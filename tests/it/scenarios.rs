//! Parameter merging with provenance, prompting rules, secrets, rendering.

use crate::support::{Env, write_files};

fn installed(env: &Env, name: &str) {
    env.run(&["cloudlet:install", name]).ok();
}

fn value<'a>(describe: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    describe["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("no value {key}: {describe}"))
}

#[test]
fn describe_shows_each_value_with_its_layer_and_file() {
    let env = Env::new();
    installed(&env, "webapp");
    write_files(&env.home(), &[("values/webapp.yaml", "web_count: 3\n")]);
    write_files(
        env.dir.path(),
        &[
            ("one.yaml", "db_disk:\n  size_gb: 10\npackages: [git]\n"),
            ("two.yaml", "db_disk:\n  storage: iscsi\nweb_count: 4\n"),
        ],
    );
    let d = env
        .run(&[
            "-o",
            "json",
            "scenario:describe",
            "webapp",
            "-f",
            "one.yaml",
            "-f",
            "two.yaml",
            "--set",
            "db_name=shop",
            "--set",
            "db_password=hunter2-very-secret",
        ])
        .ok()
        .json();
    assert_eq!(d["name"], "default");
    let v = value(&d, "db_disk.size_gb");
    assert_eq!(
        (v["value"].clone(), v["layer"].as_str().unwrap()),
        (serde_json::json!(10), "values-file")
    );
    assert!(
        v["source"].as_str().unwrap().ends_with("one.yaml:2:12"),
        "{v}"
    );
    let v = value(&d, "db_disk.storage");
    assert_eq!(v["value"], "iscsi");
    assert!(
        v["source"].as_str().unwrap().ends_with("two.yaml:2:12"),
        "{v}"
    );
    assert_eq!(
        value(&d, "web_count")["value"],
        4,
        "later -f wins over the user layer"
    );
    assert_eq!(value(&d, "db_name")["source"], "--set db_name=shop");
    assert_eq!(
        value(&d, "packages")["value"],
        serde_json::json!(["curl", "git"]),
        "append list policy"
    );
    assert_eq!(value(&d, "app_name")["layer"], "cloudlet");
    assert!(
        value(&d, "app_name")["source"]
            .as_str()
            .unwrap()
            .ends_with("cloudlet.yaml:16:14")
    );
    assert_eq!(value(&d, "image")["layer"], "scenario");
    let pw = value(&d, "db_password");
    assert_eq!(pw["value"], "********");
    assert_eq!(pw["secret"], true);
    assert!(d["missing"].as_array().unwrap().is_empty());

    // Without -f, the user layer shows with its file.
    let d = env
        .run(&["-o", "json", "scenario:describe", "webapp/default"])
        .ok()
        .json();
    let v = value(&d, "web_count");
    assert_eq!(v["layer"], "user");
    assert!(
        v["source"]
            .as_str()
            .unwrap()
            .contains("values/webapp.yaml:1:12"),
        "{v}"
    );
    assert_eq!(d["missing"], serde_json::json!(["db_password"]));
}

#[test]
fn secrets_never_reach_output() {
    let env = Env::new();
    installed(&env, "webapp");
    let secret = "hunter2-very-secret";
    for args in [
        vec!["scenario:describe", "webapp", "--set"],
        vec!["-o", "json", "scenario:describe", "webapp", "--set"],
        vec!["-o", "yaml", "scenario:describe", "webapp", "--set"],
        vec!["scenario:render", "webapp/aws", "--set"],
        vec!["-o", "json", "scenario:render", "webapp/vagrant", "--set"],
    ] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.push(format!("db_password={secret}"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = env.run(&refs).ok();
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "secret leaked by {args:?}:\n{}",
            run.stdout
        );
    }
    // A bad secret value is reported without echoing it.
    let run = env
        .run(&["scenario:describe", "webapp", "--set", "db_password=short"])
        .code(4);
    assert!(
        run.stderr.contains("db_password") && !run.stderr.contains("short\""),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_required_values_are_not_prompted_without_a_terminal() {
    let env = Env::new();
    installed(&env, "webapp");
    let run = env.run(&["scenario:render", "webapp"]).code(4);
    assert!(
        run.stderr
            .contains("missing required parameter: db_password"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--set db_password=VALUE"),
        "{}",
        run.stderr
    );
    let run = env
        .run(&["--no-input", "scenario:render", "webapp/aws"])
        .code(4);
    assert!(
        run.stderr.contains("--set db_password=VALUE"),
        "{}",
        run.stderr
    );
    let ok = env
        .run(&[
            "-o",
            "json",
            "scenario:render",
            "webapp/aws",
            "--set",
            "db_password=longenough",
            "--set",
            "web_count=3",
        ])
        .ok()
        .json();
    let template: serde_json::Value =
        serde_json::from_str(ok["files"][0]["contents"].as_str().unwrap())
            .expect("rendered JSON template");
    assert!(template["Resources"]["Web3"].is_object());
    assert!(template["Resources"].get("Web4").is_none());
}

#[test]
fn render_prints_the_pattern_and_reveals_secrets_only_when_asked() {
    let env = Env::new();
    installed(&env, "hello");
    let run = env
        .run(&[
            "scenario:render",
            "hello",
            "--set",
            "cpus=2",
            "--set",
            "greeting=Hi there",
        ])
        .ok();
    assert!(run.stdout.contains("cpus: 2"), "{}", run.stdout);
    assert!(
        run.stdout.starts_with("# KVM machine spec"),
        "{}",
        run.stdout
    );
    let aws = env
        .run(&["scenario", "render", "hello/aws", "--name", "agmedia"])
        .ok();
    assert!(aws.stdout.contains("(agmedia)"), "{}", aws.stdout);
    installed(&env, "webapp");
    let revealed = env
        .run(&[
            "-o",
            "json",
            "scenario:render",
            "webapp/vagrant",
            "--set",
            "db_password=longenough",
            "--reveal-secrets",
        ])
        .ok()
        .json();
    assert_eq!(revealed["secrets_redacted"], false);
}

#[test]
fn the_same_scenario_name_in_owner_and_short_form() {
    let env = Env::new();
    installed(&env, "hello");
    let a = env
        .run(&["-o", "json", "scenario:describe", "hello/vagrant"])
        .ok()
        .json();
    assert_eq!(a["provider"], "vagrant");
    let list = env
        .run(&["-o", "json", "scenario:list", "hello"])
        .ok()
        .json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "aws", "vagrant"]);
    env.run(&["scenario:describe", "hello/nope"]).code(3);
}
