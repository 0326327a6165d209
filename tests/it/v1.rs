//! Nepho 1.x cloudlets load unchanged and render byte-for-byte as Python's Jinja2 renders them.

use std::process::Command;

use crate::support::{Env, GitDaemon, copy_tree, git, repo_root};

/// The Python that has jinja2 + PyYAML: NEPHO_TEST_PYTHON (set by the test setup), else python3.
fn reference_python() -> Option<String> {
    let candidates = [
        std::env::var("NEPHO_TEST_PYTHON").ok(),
        Some("/var/cache/nepho-test/venv/bin/python3".into()),
        Some("python3".into()),
    ];
    candidates.into_iter().flatten().find(|py| {
        Command::new(py)
            .args(["-c", "import jinja2, yaml"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

fn install_fixture(env: &Env, daemon: &GitDaemon) {
    let work = env.path("work/legacy");
    copy_tree(&repo_root().join("tests/fixtures/v1-legacy-web"), &work);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "1.x cloudlet"]);
    git(
        &work,
        &[
            "clone",
            "-q",
            "--bare",
            ".",
            daemon.base.join("legacy-web.git").to_str().unwrap(),
        ],
    );
    env.run(&["cloudlet:install", &daemon.url("legacy-web.git")])
        .ok();
}

#[test]
fn v1_blueprints_render_exactly_as_jinja2() {
    let Some(python) = reference_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide jinja2 + PyYAML (run .ci/setup)"
        );
        eprintln!("SKIPPED: no Python with jinja2 and PyYAML; run .ci/setup");
        return;
    };
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    install_fixture(&env, &daemon);
    // A 1.x cloudlet is named by its URL (legacy-web), not by its `name: huit/legacy-web`.
    let root = env.cloudlets_dir().join("legacy-web");
    for blueprint in ["single-host", "dev"] {
        let ours = env
            .run(&[
                "-o",
                "json",
                "scenario:render",
                &format!("legacy-web/{blueprint}"),
                "--reveal-secrets",
            ])
            .ok()
            .json();
        let ours = ours["files"][0]["contents"].as_str().unwrap().to_string();
        let reference = Command::new(&python)
            .arg(repo_root().join("tests/tools/nepho1_render.py"))
            .arg(&root)
            .arg(blueprint)
            .output()
            .unwrap();
        assert!(
            reference.status.success(),
            "{}",
            String::from_utf8_lossy(&reference.stderr)
        );
        let reference = String::from_utf8(reference.stdout).unwrap();
        assert_eq!(ours, reference, "{blueprint}: nepho and Jinja2 differ");
    }
}

#[test]
fn v1_cloudlets_list_describe_and_validate() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    install_fixture(&env, &daemon);
    let list = env.run(&["-o", "json", "cloudlet:list"]).ok().json();
    assert_eq!(list[0]["format"], "v1");
    assert_eq!(
        list[0]["scenarios"],
        serde_json::json!(["dev", "single-host"])
    );
    let d = env
        .run(&[
            "-o",
            "json",
            "scenario:describe",
            "huit/legacy-web/single-host",
        ])
        .ok()
        .json();
    let get = |k: &str| {
        d["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == k)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        get("EnableBackups")["value"],
        true,
        "YAML 1.1: yes is a boolean"
    );
    assert_eq!(get("Retries")["value"], 8, "YAML 1.1: 010 is octal");
    assert_eq!(get("Debug")["layer"], "scenario");
    assert_eq!(
        get("DBPassword")["value"],
        "********",
        "secret-looking 1.x names are masked"
    );
    let dev = env
        .run(&["-o", "json", "scenario:describe", "legacy-web/dev"])
        .ok()
        .json();
    let backend = dev["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "VagrantBackend")
        .unwrap()
        .clone();
    assert_eq!(backend["layer"], "provider-defaults");
    let report = env
        .run(&["-o", "json", "cloudlet:validate", "huit/legacy-web"])
        .ok()
        .json();
    assert_eq!(report[0]["ok"], true, "{report}");
}
