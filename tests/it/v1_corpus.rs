//! A corpus of Nepho 1.x cloudlets (tests/fixtures/v1-corpus), published as a 1.x user's would
//! be: each its own git repository on a real `git daemon`, several pulling the shared AWS template
//! library in as a git submodule. Every blueprint is rendered by nepho and by Python Jinja2 with
//! nepho 1.2.3's context and loader (tests/tools/nepho1_render.py) and the two compared; broken
//! blueprints install with a warning and fail, alone, when used.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Env, GitDaemon, Moto, copy_tree, git, repo_root};

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/fixtures/v1-corpus")
}

/// `corpus.yaml`: per cloudlet, its submodules and blueprints (provider, `broken` reason, `set`).
fn corpus() -> serde_json::Map<String, Value> {
    let out = Command::new(reference_python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(corpus_dir().join("corpus.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    value
        .get("cloudlets")
        .cloned()
        .unwrap_or(value)
        .as_object()
        .cloned()
        .expect("corpus.yaml: a mapping of cloudlets")
}

/// The Python that has jinja2 + PyYAML (set up by scripts/setup/python.sh).
fn reference_python() -> String {
    let candidates = [
        std::env::var("NEPHO_TEST_PYTHON").ok(),
        Some("/var/cache/nepho-test/venv/bin/python3".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import jinja2, yaml"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a Python with jinja2 and PyYAML: run scripts/setup/python.sh")
}

/// Publishes the shared libraries and every cloudlet of the corpus on `daemon`; returns the
/// cloudlet names in corpus order.
fn publish_corpus(env: &Env, daemon: &GitDaemon) -> Vec<String> {
    let libs = corpus_dir().join("_lib");
    for lib in std::fs::read_dir(&libs).unwrap().flatten() {
        let name = lib.file_name().to_string_lossy().into_owned();
        let work = env.path(&format!("work/_lib/{name}"));
        copy_tree(&lib.path(), &work);
        commit_and_publish(daemon, &work, &format!("{name}.git"));
    }
    let mut names = Vec::new();
    for (name, spec) in corpus() {
        let work = env.path(&format!("work/{name}"));
        copy_tree(&corpus_dir().join(&name), &work);
        git(&work, &["init", "-q"]);
        for sub in spec["submodules"].as_array().into_iter().flatten() {
            let path = sub["path"].as_str().unwrap();
            let lib = sub["lib"].as_str().unwrap();
            git(
                &work,
                &[
                    "submodule",
                    "add",
                    "-q",
                    &daemon.url(&format!("{lib}.git")),
                    path,
                ],
            );
        }
        commit_and_publish(daemon, &work, &format!("{name}.git"));
        names.push(name);
    }
    names
}

fn commit_and_publish(daemon: &GitDaemon, work: &Path, bare: &str) {
    if !work.join(".git").exists() {
        git(work, &["init", "-q"]);
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-qm", "published"]);
    git(
        work,
        &[
            "clone",
            "-q",
            "--bare",
            ".",
            daemon.base.join(bare).to_str().unwrap(),
        ],
    );
}

fn blueprints(spec: &Value) -> Vec<(String, Value)> {
    spec["blueprints"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn sets(bp: &Value) -> Vec<String> {
    bp["set"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Installed {
    env: Env,
    _daemon: GitDaemon,
    names: Vec<String>,
}

fn install_corpus() -> Installed {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let names = publish_corpus(&env, &daemon);
    for name in &names {
        let run = env
            .run(&["cloudlet:install", &daemon.url(&format!("{name}.git"))])
            .ok();
        let spec = &corpus()[name];
        for (bp, info) in blueprints(spec) {
            if info.get("broken").is_some() {
                assert!(
                    run.stderr.contains(&format!("blueprint {bp} is broken")),
                    "{name}: installing warns about the broken blueprint {bp}:\n{}",
                    run.stderr
                );
            }
        }
    }
    Installed {
        env,
        _daemon: daemon,
        names,
    }
}

#[test]
fn every_corpus_blueprint_renders_as_nepho_1_2_3_rendered_it() {
    let python = reference_python();
    let Installed { env, names, .. } = install_corpus();
    let spec_all = corpus();
    let mut compared = 0;
    let mut failures = Vec::new();
    for name in &names {
        let root = env.cloudlets_dir().join(name);
        assert!(root.is_dir(), "{name} installed under its URL's last part");
        for (bp, info) in blueprints(&spec_all[name]) {
            let mut args = vec![
                "-o".to_string(),
                "json".into(),
                "scenario:render".into(),
                format!("{name}/{bp}"),
                "--reveal-secrets".into(),
            ];
            let mut py = Command::new(&python);
            py.arg(repo_root().join("tests/tools/nepho1_render.py"))
                .arg(&root)
                .arg(&bp);
            for s in sets(&info) {
                args.extend(["--set".into(), s.clone()]);
                py.args(["--set", &s]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let ours = env.run(&args);
            let reference = py.output().unwrap();
            let provider = info["provider"].as_str().unwrap_or("aws");
            if let Some(reason) = info.get("broken").and_then(Value::as_str) {
                assert_eq!(
                    ours.code, 4,
                    "{name}/{bp} is broken ({reason}): exit 4\n{}",
                    ours.stderr
                );
                let first = ours.stderr.lines().next().unwrap_or_default().to_string();
                assert!(
                    first.contains(&format!("{}:", root.display()))
                        || ours.stderr.contains(".json:")
                        || ours.stderr.contains("cf.json")
                        || ours.stderr.contains("Vagrantfile"),
                    "{name}/{bp}: the error names the file:\n{}",
                    ours.stderr
                );
                let reference_failed = !reference.status.success()
                    || (provider == "aws"
                        && serde_json::from_slice::<Value>(&reference.stdout).is_err());
                assert!(
                    reference_failed,
                    "{name}/{bp}: Jinja2 renders it fine, so it is not broken"
                );
                continue;
            }
            assert!(
                reference.status.success(),
                "{name}/{bp}: reference failed: {}",
                String::from_utf8_lossy(&reference.stderr)
            );
            if ours.code != 0 {
                failures.push(format!("{name}/{bp}: nepho failed: {}", ours.stderr));
                continue;
            }
            let ours = ours.json()["files"][0]["contents"]
                .as_str()
                .unwrap()
                .to_string();
            let theirs = String::from_utf8(reference.stdout).unwrap();
            let same = if provider == "aws" {
                let a: Result<Value, _> = serde_json::from_str(&ours);
                let b: Result<Value, _> = serde_json::from_str(&theirs);
                match (a, b) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => ours == theirs,
                }
            } else {
                ours == theirs
            };
            if !same {
                failures.push(format!(
                    "{name}/{bp}: nepho and Jinja2 differ\n--- nepho\n{ours}\n--- jinja2\n{theirs}"
                ));
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(compared >= 15, "compared only {compared} blueprints");
}

#[test]
fn broken_blueprints_are_listed_validated_and_fail_alone() {
    let Installed { env, names, .. } = install_corpus();
    let list = env.run(&["-o", "json", "cloudlet:list"]).ok().json();
    let spec_all = corpus();
    for name in &names {
        let row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} listed: {list}"));
        assert_eq!(row["format"], "v1");
        let mut listed: Vec<String> = row["broken_blueprints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let reason = b["reason"].as_str().unwrap();
                assert!(!reason.is_empty());
                assert!(
                    !reason.contains(".tmp-install"),
                    "the reason names the installed files: {reason}"
                );
                b["name"].as_str().unwrap().to_string()
            })
            .collect();
        listed.sort();
        let mut expected: Vec<String> = blueprints(&spec_all[name])
            .into_iter()
            .filter(|(_, i)| i.get("broken").is_some())
            .map(|(bp, _)| bp)
            .collect();
        expected.sort();
        assert_eq!(listed, expected, "{name}: broken_blueprints");
        let validate = env.run(&["-o", "json", "cloudlet:validate", name]);
        if expected.is_empty() {
            assert_eq!(validate.code, 0, "{name}: {}", validate.stderr);
        } else {
            assert_ne!(
                validate.code, 0,
                "{name}: validate reports the broken blueprints"
            );
            let report = validate.json();
            let failed: Vec<&str> = report[0]["scenarios"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["ok"] == false)
                .map(|s| s["scenario"].as_str().unwrap())
                .collect();
            assert_eq!(failed.len(), expected.len(), "{report}");
        }
    }
}

#[test]
fn the_1x_aws_blueprints_preview_as_change_sets_against_moto() {
    let Installed { mut env, names, .. } = install_corpus();
    let moto = Moto::start();
    env.vars = moto.vars();
    let spec_all = corpus();
    let mut previewed = 0;
    for name in &names {
        for (bp, info) in blueprints(&spec_all[name]) {
            if info["provider"] != "aws" || info.get("broken").is_some() {
                continue;
            }
            let formation = format!("c{previewed}");
            let mut args = vec![
                "-o".to_string(),
                "json".into(),
                "formation:create".into(),
                format!("{name}/{bp}"),
                "--name".into(),
                formation.clone(),
                "--dry-run".into(),
            ];
            for s in sets(&info) {
                args.extend(["--set".into(), s]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let changes = env.run(&args).ok().json();
            let changes = changes.as_array().unwrap();
            assert!(
                changes.iter().any(|c| c["action"] == "add"),
                "{name}/{bp}: the change set adds resources: {changes:?}"
            );
            assert_eq!(
                moto.stack_status(&formation),
                None,
                "{name}/{bp}: a dry run leaves no stack"
            );
            previewed += 1;
        }
    }
    assert!(previewed >= 5, "previewed only {previewed} aws blueprints");
}

#[test]
fn a_1x_cloudlet_is_named_by_its_url_and_name_overrides() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let names = publish_corpus(&env, &daemon);
    let first = &names[0];
    let url = daemon.url(&format!("{first}.git"));
    env.run(&["cloudlet:install", &url]).ok();
    // The same URL tail again is taken; --name installs a second copy beside it.
    env.run(&["cloudlet:install", &url]).code(6);
    env.run(&["cloudlet:install", &url, "--name", "second-copy"])
        .ok();
    let list = env.run(&["-o", "json", "cloudlet:list"]).ok().json();
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&first.as_str()), "{listed:?}");
    assert!(listed.contains(&"second-copy"), "{listed:?}");
    // cloudlet.name in the template context is the install name.
    let (bp, _) = blueprints(&corpus()[first])
        .into_iter()
        .find(|(_, i)| i.get("broken").is_none())
        .unwrap();
    let rendered = env
        .run(&[
            "-o",
            "json",
            "scenario:render",
            &format!("second-copy/{bp}"),
        ])
        .ok()
        .json();
    assert!(rendered["files"][0]["contents"].is_string());
}
