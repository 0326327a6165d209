//! Installing, updating and uninstalling cloudlets from a real `git daemon` on 127.0.0.1.

use crate::support::{Env, GitDaemon, git, minimal_cloudlet, write_files};

fn with_submodule(env: &Env, daemon: &GitDaemon) -> std::path::PathBuf {
    daemon.publish(
        "common.git",
        &env.path("work/common"),
        &[(
            "aws/Outputs/Host.json".into(),
            "{\"SSHUser\": {\"Value\": \"admin\"}}\n".into(),
        )],
    );
    let work = daemon.publish(
        "web.git",
        &env.path("work/web"),
        &minimal_cloudlet("acme/web"),
    );
    git(
        &work,
        &[
            "submodule",
            "add",
            "-q",
            &daemon.url("common.git"),
            "vendor/common",
        ],
    );
    git(&work, &["commit", "-qm", "add common submodule"]);
    git(&work, &["push", "-q", "origin", "main"]);
    work
}

#[test]
fn install_clones_with_submodules_and_records_the_commit() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let work = with_submodule(&env, &daemon);
    let head = git(&work, &["rev-parse", "HEAD"]).trim().to_string();

    let run = env
        .run(&["-o", "json", "cloudlet:install", &daemon.url("web.git")])
        .ok();
    let installed = run.json();
    assert_eq!(installed["name"], "acme/web");
    assert_eq!(installed["commit"], head.as_str());
    assert_eq!(installed["source"], daemon.url("web.git").as_str());
    let dir = env.cloudlets_dir().join("acme-web");
    assert!(
        dir.join("vendor/common/aws/Outputs/Host.json").is_file(),
        "submodule content missing"
    );
    assert_eq!(
        env.cloudlet_dir_entries(),
        ["acme-web"],
        "no temporary directories may remain"
    );

    // Space form and colon form are the same command.
    let listed = env.run(&["-o", "json", "cloudlet", "list"]).ok().json();
    assert_eq!(listed[0]["name"], "acme/web");
    assert_eq!(listed[0]["scenarios"], serde_json::json!(["default"]));
    let table = env.run(&["cloudlet:list"]).ok();
    assert!(
        table.stdout.contains("└── acme-web (v1.0.0)"),
        "{}",
        table.stdout
    );

    // Installing again without --force is a conflict and changes nothing.
    env.run(&["cloudlet:install", &daemon.url("web.git")])
        .code(6);
}

#[test]
fn update_fast_forwards_and_refuses_to_lose_local_changes() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let work = with_submodule(&env, &daemon);
    env.run(&["cloudlet:install", &daemon.url("web.git")]).ok();

    write_files(
        &work,
        &[(
            "cloudlet.yaml",
            "name: acme/web\nversion: 1.1.0\nsummary: newer\n",
        )],
    );
    git(&work, &["commit", "-qam", "v1.1.0"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let new_head = git(&work, &["rev-parse", "HEAD"]).trim().to_string();

    let out = env
        .run(&["-o", "json", "cloudlet:update", "acme/web"])
        .ok()
        .json();
    assert_eq!(out[0]["updated"], true);
    assert_eq!(out[0]["to"], new_head.as_str());
    let again = env
        .run(&["-o", "json", "cloudlet:update", "--all"])
        .ok()
        .json();
    assert_eq!(again[0]["updated"], false);

    // A local edit blocks the update and is shown, not discarded.
    let installed = env.cloudlets_dir().join("acme-web");
    write_files(
        &installed,
        &[("scenarios/default.yaml", "summary: mine\nprovider: kvm\n")],
    );
    write_files(
        &work,
        &[("cloudlet.yaml", "name: acme/web\nversion: 1.2.0\n")],
    );
    git(&work, &["commit", "-qam", "v1.2.0"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let refused = env.run(&["cloudlet:update", "web"]).code(6);
    assert!(
        refused.stderr.contains("scenarios/default.yaml"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(installed.join("scenarios/default.yaml")).unwrap(),
        "summary: mine\nprovider: kvm\n"
    );
}

#[test]
fn an_update_that_breaks_the_cloudlet_is_rolled_back() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let work = daemon.publish(
        "web.git",
        &env.path("work/web"),
        &minimal_cloudlet("acme/web"),
    );
    env.run(&["cloudlet:install", &daemon.url("web.git")]).ok();
    let good = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    write_files(
        &work,
        &[(
            "scenarios/default.yaml",
            "provider: kvm\nparameters: [oops\n",
        )],
    );
    git(&work, &["commit", "-qam", "broken"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let run = env.run(&["cloudlet:update", "acme/web"]).code(4);
    assert!(run.stderr.contains("rolled back"), "{}", run.stderr);
    let installed = env.cloudlets_dir().join("acme-web");
    assert_eq!(git(&installed, &["rev-parse", "HEAD"]).trim(), good);
}

#[test]
fn install_at_a_tag_pins_the_cloudlet() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let work = daemon.publish(
        "web.git",
        &env.path("work/web"),
        &minimal_cloudlet("acme/web"),
    );
    git(&work, &["tag", "v1"]);
    git(&work, &["push", "-q", "origin", "v1"]);
    let tagged = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    write_files(&work, &[("README.md", "later\n")]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "later"]);
    git(&work, &["push", "-q", "origin", "main"]);

    let installed = env
        .run(&[
            "-o",
            "json",
            "cloudlet:install",
            "--ref",
            "v1",
            &daemon.url("web.git"),
        ])
        .ok()
        .json();
    assert_eq!(installed["commit"], tagged.as_str());
    assert_eq!(installed["reference"], "v1");
    let update = env
        .run(&["-o", "json", "cloudlet:update", "acme/web"])
        .ok()
        .json();
    assert_eq!(update[0]["updated"], false);
    assert!(
        update[0]["note"].as_str().unwrap().contains("pinned"),
        "{update}"
    );
    env.run(&[
        "cloudlet:install",
        "--force",
        "--ref",
        "no-such-ref",
        &daemon.url("web.git"),
    ])
    .code(3);
    assert_eq!(env.cloudlet_dir_entries(), ["acme-web"]);
}

#[test]
fn uninstall_refuses_while_a_formation_uses_the_cloudlet() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let record = env.home().join("state/formations/hi/formation.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(
        &record,
        r#"{"name":"hi","cloudlet":"hello","scenario":"default","provider":"kvm","created_at":"2026-11-22T00:00:00Z"}"#,
    )
    .unwrap();
    let refused = env.run(&["cloudlet:uninstall", "hello"]).code(6);
    assert!(
        refused.stderr.contains("formation hi"),
        "{}",
        refused.stderr
    );
    assert!(env.cloudlets_dir().join("hello").is_dir());
    env.run(&["cloudlet:uninstall", "--force", "hello"]).ok();
    assert!(
        env.cloudlet_dir_entries().is_empty(),
        "{:?}",
        env.cloudlet_dir_entries()
    );
    env.run(&["cloudlet:uninstall", "hello"]).code(3);
}

#[test]
fn bundled_cloudlets_install_offline_and_validate() {
    let env = Env::new();
    for name in ["hello", "webapp"] {
        let out = env
            .run(&["-o", "json", "cloudlet:install", name])
            .ok()
            .json();
        assert_eq!(out["source"], format!("bundled:{name}").as_str());
        let report = env
            .run(&["-o", "json", "cloudlet:validate", name])
            .ok()
            .json();
        assert_eq!(report[0]["ok"], true, "{report}");
        assert_eq!(report[0]["scenarios"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn create_scaffolds_a_cloudlet_that_validates() {
    let env = Env::new();
    let out = env
        .run(&["-o", "json", "cloudlet:create", "acme/shop"])
        .ok()
        .json();
    assert_eq!(out["name"], "acme/shop");
    let dir = env.path("shop");
    assert!(dir.join(".git").is_dir());
    assert!(
        std::fs::read_to_string(dir.join("cloudlet.yaml"))
            .unwrap()
            .contains("name: acme/shop")
    );
    env.run(&["cloudlet:validate", dir.to_str().unwrap()]).ok();
    // Refuses to write into a non-empty directory.
    env.run(&["cloudlet:create", "acme/shop"]).code(6);
}
