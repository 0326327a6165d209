//! Bad input: each case is a clear error with the documented exit code, and nothing is left
//! behind (no half-installed cloudlet, no temporary directory).

use crate::support::{Env, GitDaemon, git, minimal_cloudlet, write_files};

fn publish_with(
    env: &Env,
    daemon: &GitDaemon,
    repo: &str,
    extra: &[(&str, &str)],
) -> std::path::PathBuf {
    let mut files = minimal_cloudlet("acme/bad");
    for (p, c) in extra {
        files.retain(|(q, _)| q != p);
        files.push((p.to_string(), c.to_string()));
    }
    daemon.publish(repo, &env.path(&format!("work/{repo}")), &files)
}

#[track_caller]
fn assert_nothing_installed(env: &Env) {
    let left = env.cloudlet_dir_entries();
    assert!(
        left.is_empty(),
        "left behind in the cloudlets directory: {left:?}"
    );
}

#[test]
fn malformed_yaml_points_at_file_line_and_column() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    publish_with(
        &env,
        &daemon,
        "bad.git",
        &[(
            "scenarios/default.yaml",
            "summary: x\nprovider: kvm\nparameters:\n  size: {type: number, default: [1, 2\n",
        )],
    );
    let run = env
        .run(&["cloudlet:install", &daemon.url("bad.git")])
        .code(4);
    assert!(
        run.stderr.contains("scenarios/default.yaml:5:1")
            || run.stderr.contains("scenarios/default.yaml:4:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was installed"),
        "{}",
        run.stderr
    );
    assert_nothing_installed(&env);

    publish_with(
        &env,
        &daemon,
        "dup.git",
        &[("cloudlet.yaml", "name: acme/bad\nversion: 1\nname: again\n")],
    );
    let run = env
        .run(&["cloudlet:install", &daemon.url("dup.git")])
        .code(4);
    assert!(
        run.stderr
            .contains("cloudlet.yaml:3:1: duplicate key \"name\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("3 | name: again"),
        "the offending line is shown: {}",
        run.stderr
    );
    assert_nothing_installed(&env);
}

#[test]
fn wrong_types_are_rejected_with_their_origin() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let run = env
        .run(&["scenario:describe", "hello", "--set", "cpus=many"])
        .code(4);
    assert!(
        run.stderr
            .contains("--set cpus=many: parameter \"cpus\": expected a number, got a string"),
        "{}",
        run.stderr
    );
    write_files(env.dir.path(), &[("v.yaml", "memory_mb: [1]\n")]);
    let run = env
        .run(&["scenario:render", "hello", "-f", "v.yaml"])
        .code(4);
    assert!(
        run.stderr
            .contains("v.yaml:1:12: parameter \"memory_mb\": expected a number, got a list"),
        "{}",
        run.stderr
    );
    // The same error as JSON carries where it is.
    let run = env
        .run(&["-o", "json", "scenario:render", "hello", "-f", "v.yaml"])
        .code(4);
    let report: serde_json::Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(report["error"]["span"]["line"], 1, "{report}");
    assert_eq!(report["error"]["span"]["column"], 12, "{report}");
    assert!(
        report["error"]["span"]["file"]
            .as_str()
            .unwrap()
            .ends_with("v.yaml"),
        "{report}"
    );
    let run = env
        .run(&[
            "scenario:render",
            "hello/vagrant",
            "--set",
            "vagrant_provider=docker",
        ])
        .code(4);
    assert!(
        run.stderr
            .contains("must be one of \"libvirt\", \"virtualbox\""),
        "{}",
        run.stderr
    );
    let run = env
        .run(&["scenario:render", "hello", "-f", "missing.yaml"])
        .code(3);
    assert!(
        run.stderr.contains("missing.yaml does not exist"),
        "{}",
        run.stderr
    );
    env.run(&["scenario:render", "hello", "--set", "novalue"])
        .code(2);
}

#[test]
fn unknown_keys_are_warnings_with_positions() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    publish_with(
        &env,
        &daemon,
        "odd.git",
        &[(
            "cloudlet.yaml",
            "name: acme/bad\nversion: 1.0.0\nmaintainer: someone\n",
        )],
    );
    let run = env.run(&["cloudlet:install", &daemon.url("odd.git")]).ok();
    assert!(
        run.stderr
            .contains("cloudlet.yaml:3:1: unknown key \"maintainer\""),
        "{}",
        run.stderr
    );
    write_files(env.dir.path(), &[("v.yaml", "size: 2\nsizee: 3\n")]);
    let run = env
        .run(&["scenario:describe", "acme/bad", "-f", "v.yaml"])
        .ok();
    assert!(
        run.stderr
            .contains("v.yaml:2:1: unknown parameter \"sizee\""),
        "{}",
        run.stderr
    );
}

#[test]
fn path_traversal_in_names_is_refused() {
    let env = Env::new();
    for args in [
        vec!["cloudlet:install", "acme/../../etc"],
        vec!["cloudlet:install", "..%2f..%2fetc"],
        vec!["cloudlet:describe", "../x"],
        vec!["cloudlet:uninstall", "a/../../b"],
        vec!["cloudlet:create", "../evil"],
        vec!["scenario:list", "-rf"],
    ] {
        let run = env.run(&args);
        assert!(
            run.code == 4 || run.code == 2,
            "{args:?} gave {}: {}",
            run.code,
            run.stderr
        );
    }
    // A relative path is a local repository, and a missing one is "not found".
    env.run(&["cloudlet:install", "../../no-such-repo"]).code(3);
    env.run(&["cloudlet:install", "hello"]).ok();
    let run = env.run(&["scenario:describe", "hello/../../../etc/passwd"]);
    assert!(run.code == 3 || run.code == 4, "{}", run.stderr);
    assert!(!env.path("evil").exists() && !env.dir.path().parent().unwrap().join("evil").exists());
}

#[test]
fn symlinks_escaping_the_cloudlet_are_refused() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let work = publish_with(&env, &daemon, "link.git", &[]);
    std::os::unix::fs::symlink("/etc/passwd", work.join("patterns/kvm/secrets.yaml")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "sneaky link"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let run = env
        .run(&["cloudlet:install", &daemon.url("link.git")])
        .code(4);
    assert!(
        run.stderr
            .contains("symlink to /etc/passwd leaves the cloudlet"),
        "{}",
        run.stderr
    );
    assert_nothing_installed(&env);

    let work = publish_with(&env, &daemon, "rel.git", &[]);
    std::os::unix::fs::symlink(
        "../../../../../etc/hostname",
        work.join("patterns/kvm/h.yaml"),
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "relative escape"]);
    git(&work, &["push", "-q", "origin", "main"]);
    env.run(&["cloudlet:install", &daemon.url("rel.git")])
        .code(4);
    assert_nothing_installed(&env);
}

#[test]
fn hostile_submodule_urls_are_refused_before_git_uses_them() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let marker = env.path("pwned");
    for (repo, url) in [
        ("ext.git", format!("ext::sh -c touch% {}", marker.display())),
        ("fd.git", "fd::17".to_string()),
        ("dash.git", "-uhelp".to_string()),
    ] {
        let work = publish_with(
            &env,
            &daemon,
            repo,
            &[(
                ".gitmodules",
                &format!("[submodule \"evil\"]\n\tpath = evil\n\turl = {url}\n"),
            )],
        );
        // A gitlink for the submodule, without ever fetching it.
        let head = git(&work, &["rev-parse", "HEAD"]);
        git(
            &work,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{},evil", head.trim()),
            ],
        );
        git(&work, &["commit", "-qm", "add evil submodule"]);
        git(&work, &["push", "-q", "origin", "main"]);
        let run = env.run(&["cloudlet:install", &daemon.url(repo)]).code(4);
        assert!(
            run.stderr.contains("refusing git URL"),
            "{repo}: {}",
            run.stderr
        );
        assert_nothing_installed(&env);
    }
    assert!(!marker.exists(), "the ext:: command ran");
    // Hostile top-level URLs too.
    env.run(&["cloudlet:install", "ext::sh -c id"]).code(4);
    let run = env.run(&["cloudlet:install", "--", "-uhelp.git"]);
    assert!(run.code == 4 || run.code == 2, "{}", run.stderr);
}

#[test]
fn submodule_paths_may_not_leave_the_cloudlet() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let work = publish_with(
        &env,
        &daemon,
        "path.git",
        &[(
            ".gitmodules",
            &format!(
                "[submodule \"x\"]\n\tpath = ../outside\n\turl = {}\n",
                "git://127.0.0.1:1/x.git"
            ),
        )],
    );
    git(&work, &["push", "-q", "origin", "main"]);
    let run = env
        .run(&["cloudlet:install", &daemon.url("path.git")])
        .code(4);
    assert!(run.stderr.contains("leaves the cloudlet"), "{}", run.stderr);
    assert_nothing_installed(&env);
}

#[test]
fn unreachable_git_is_unavailable_and_leaves_nothing() {
    let env = Env::new();
    let run = env
        .run(&["cloudlet:install", "git://127.0.0.1:9/nothing.git"])
        .code(7);
    assert!(run.stderr.contains("git clone"), "{}", run.stderr);
    assert_nothing_installed(&env);
}

#[test]
fn broken_templates_report_file_and_line() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    publish_with(
        &env,
        &daemon,
        "tpl.git",
        &[(
            "patterns/kvm/main.yaml",
            "machines:\n  - name: m\n    cpus: {{ parameters.size + }}\n",
        )],
    );
    let run = env
        .run(&["cloudlet:install", &daemon.url("tpl.git")])
        .code(4);
    assert!(
        run.stderr
            .contains("patterns/kvm/main.yaml:3: template error"),
        "{}",
        run.stderr
    );
    assert_nothing_installed(&env);
}

/// A template is input from a stranger's repository: endless or enormous output is cut off by a
/// step budget and an output cap, with a clear error, and nothing is installed.
#[test]
fn runaway_templates_hit_their_budget_and_leave_nothing() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let cases = [
        (
            "loops.git",
            "machines:\n  - name: m\n{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\n",
            "budget of",
        ),
        (
            "huge.git",
            "machines:\n  - name: m\n{% set s = 'x' * 100000 %}{% for a in range(100000) %}{{ s }}{% endfor %}\n",
            "larger than",
        ),
        // Sizes handed to formatting and filters build that much before any output is seen
        // (each aborted the process on allocation; found by the render fuzzer).
        (
            "width.git",
            "machines:\n  - name: m{{ '%0333333333333d' % 7 }}\n",
            "too large",
        ),
        (
            "exponent.git",
            "machines:\n  - name: m{{ ('%.65535E' % 1.5) | length }}{{ '%.2000000e' % 1.5 }}\n",
            "too large",
        ),
        (
            "slice.git",
            "machines:\n  - name: m{{ [1, 2] | slice(1000000000000) | length }}\n",
            "too large",
        ),
        (
            "batch.git",
            "machines:\n  - name: m{{ [1] | batch(1000000000000, 'x') | length }}\n",
            "too large",
        ),
        (
            "indent.git",
            "machines:\n  - name: m{{ 'a\\nb' | indent(1000000000000) }}\n",
            "too large",
        ),
        // Values built step by step past any size: each step is cheap to count, but the value
        // doubles (`s ~ s`, `l + l`), or one print walks a million references to a million items.
        (
            "doubling.git",
            "machines:\n  - name: m\n{% set n = namespace(s='x') %}{% for i in range(64) %}{% set n.s = n.s ~ n.s %}{% endfor %}\n",
            "too large",
        ),
        (
            "lists.git",
            "machines:\n  - name: m\n{% set n = namespace(l=[1]) %}{% for i in range(64) %}{% set n.l = n.l + n.l %}{% endfor %}\n",
            "too large",
        ),
        (
            "nested.git",
            "machines:\n  - name: m\n{% set a = [0] * 1000000 %}{% set b = [a] * 1000000 %}  - name: {{ b }}\n",
            "too much text",
        ),
        // One `%` is one step however many conversions its format has.
        (
            "conversions.git",
            "machines:\n  - name: m{{ (700000 * '%(a)s') % {'a': 1} }}\n",
            "conversions",
        ),
    ];
    for (repo, pattern, expected) in cases {
        publish_with(&env, &daemon, repo, &[("patterns/kvm/main.yaml", pattern)]);
        let run = env.run(&["cloudlet:install", &daemon.url(repo)]).code(4);
        assert!(run.stderr.contains(expected), "{repo}: {}", run.stderr);
        assert!(
            run.stderr.contains("patterns/kvm/main.yaml"),
            "{}",
            run.stderr
        );
        assert_nothing_installed(&env);
    }
}

/// Oversized cloudlet files are refused by size, naming the file and the limit, before anything
/// parses them, and nothing is installed (a 200 MB cloudlet.yaml used to install and slow down
/// every later `cloudlet:list`).
#[test]
fn oversized_cloudlet_files_are_refused_and_leave_nothing() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    let big_yaml = format!(
        "name: acme/bad\nversion: 1.0.0\nsummary: big\n{}",
        "# padding padding padding padding padding padding padding padding padding\n"
            .repeat(20_000)
    );
    let big_template = format!(
        "machines:\n  - name: m\n{}",
        "{# padding padding padding padding padding padding padding padding #}\n".repeat(80_000)
    );
    let cases = [
        ("yaml.git", "cloudlet.yaml", big_yaml.as_str(), "1 MiB"),
        (
            "template.git",
            "patterns/kvm/main.yaml",
            big_template.as_str(),
            "4 MiB",
        ),
    ];
    for (repo, file, contents, limit) in cases {
        publish_with(&env, &daemon, repo, &[(file, contents)]);
        let started = std::time::Instant::now();
        let run = env.run(&["cloudlet:install", &daemon.url(repo)]).code(4);
        assert!(
            run.stderr.contains(file) && run.stderr.contains("too large"),
            "{repo}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(limit), "{repo}: {}", run.stderr);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{repo} took {:?}",
            started.elapsed()
        );
        assert_nothing_installed(&env);
    }
    assert_eq!(
        env.run(&["-o", "json", "cloudlet:list"]).ok().json(),
        serde_json::json!([])
    );
}

/// Two installs at once in one home each keep their own temporary directory (a sweep of stale
/// ones must not take the other's live work).
#[test]
fn concurrent_installs_do_not_remove_each_others_work() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    for i in 0..4 {
        daemon.publish(
            &format!("c{i}.git"),
            &env.path(&format!("work/c{i}")),
            &minimal_cloudlet(&format!("acme/c{i}")),
        );
    }
    let children: Vec<_> = (0..4)
        .map(|i| {
            env.nepho()
                .args(["cloudlet:install", &daemon.url(&format!("c{i}.git"))])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut left = env.cloudlet_dir_entries();
    left.sort();
    assert_eq!(left, ["acme-c0", "acme-c1", "acme-c2", "acme-c3"]);
}
