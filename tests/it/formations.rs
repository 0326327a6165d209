//! Formations end to end: the nanny, the journal and the CloudFormation provider against a real
//! `moto_server` on 127.0.0.1, checked independently with the AWS CLI. The scenarios here form
//! the shared provider suite (create, list, describe, endpoints, destroy, idempotent re-run,
//! resume after a crash) that the KVM and Vagrant providers run too.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{Env, Moto, wait_until};

pub(crate) struct Aws {
    pub(crate) env: Env,
    pub(crate) moto: Moto,
}

pub(crate) fn aws_env() -> Aws {
    let moto = Moto::start();
    let mut env = Env::new();
    env.vars = moto.vars();
    for c in ["hello", "webapp"] {
        env.run(&["cloudlet:install", c]).ok();
    }
    Aws { env, moto }
}

/// The `formation:list -o json` row of `name`, with the whole listing for messages.
fn list_row(env: &Env, name: &str) -> (serde_json::Value, serde_json::Value) {
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not listed: {list}"));
    (row, list)
}

#[test]
fn suite_create_list_describe_endpoints_destroy() {
    let Aws { env, moto } = aws_env();
    let created = env
        .run(&[
            "-o",
            "json",
            "formation:create",
            "hello/aws",
            "--name",
            "agmedia",
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded");
    assert_eq!(
        moto.stack_status("agmedia").as_deref(),
        Some("CREATE_COMPLETE")
    );
    let stack = moto
        .aws(&[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            "agmedia",
        ])
        .unwrap();
    let tags = &stack["Stacks"][0]["Tags"];
    for (k, v) in [
        ("nepho:formation", "agmedia"),
        ("nepho:cloudlet", "hello"),
        ("nepho:scenario", "aws"),
    ] {
        assert!(
            tags.as_array()
                .unwrap()
                .iter()
                .any(|t| t["Key"] == k && t["Value"] == v),
            "tag {k} missing: {tags}"
        );
    }

    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "agmedia")
        .expect("listed")
        .clone();
    assert_eq!(
        (
            row["provider"].as_str(),
            row["source"].as_str(),
            row["state"].as_str()
        ),
        (Some("aws"), Some("provider"), Some("running"))
    );

    let d = env
        .run(&["-o", "json", "formation:describe", "agmedia"])
        .ok()
        .json();
    assert_eq!(d["details"]["outputs"]["SSHUser"], "admin");
    assert!(
        d["details"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "AWS::EC2::Instance"),
        "{d}"
    );

    let ssh = env
        .run(&[
            "-o", "json", "ssh", "agmedia", "--print", "--", "uptime", "-p",
        ])
        .ok()
        .json();
    let cmd: Vec<&str> = ssh["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cmd[0], "ssh");
    assert!(cmd.iter().any(|a| a.starts_with("admin@")), "{cmd:?}");
    assert_eq!(&cmd[cmd.len() - 3..], ["--", "uptime", "-p"]);
    let url = env.run(&["open", "agmedia", "--print"]).ok();
    assert!(url.stdout.starts_with("http://"), "{}", url.stdout);

    // The event stream: versioned NDJSON, ordered, ending in success.
    let events = env.run(&["-o", "json", "formation:events", "agmedia"]).ok();
    let events: Vec<serde_json::Value> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["v"] == 1 && e["formation"] == "agmedia")
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[1]["seq"].as_u64() == Some(w[0]["seq"].as_u64().unwrap() + 1))
    );
    assert!(
        events.iter().any(|e| e["kind"] == "resource"),
        "stack events become resource events"
    );
    assert_eq!(events.last().unwrap()["status"], "succeeded");

    // Re-running a finished create is idempotent: every step finds its work done.
    env.run(&["formation:create", "--resume", "--name", "agmedia"])
        .ok();
    let steps: Vec<serde_json::Value> = env
        .journal("agmedia")
        .into_iter()
        .rev()
        .take_while(|e| e["status"] != "started" || e["kind"] != "formation")
        .collect();
    assert!(
        steps
            .iter()
            .filter(|e| e["kind"] == "step" && e["status"] == "succeeded")
            .count()
            == 0,
        "re-run should only skip: {steps:?}"
    );

    let destroyed = env
        .run(&["-o", "json", "destroy", "agmedia", "--yes"])
        .ok()
        .json();
    assert_eq!(destroyed["status"], "succeeded");
    assert_eq!(moto.stack_status("agmedia"), None, "stack left behind");
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "agmedia")
    );
    // Destroying again is harmless.
    env.run(&["destroy", "agmedia", "--yes"]).ok();
}

#[test]
fn multi_tier_with_secrets_never_leaks_the_password() {
    let Aws { env, moto } = aws_env();
    let secret = "Sup3r-Secret-Value";
    env.run(&[
        "formation:create",
        "webapp/aws",
        "--name",
        "shop",
        "--set",
        &format!("db_password={secret}"),
        "--set",
        "web_count=2",
    ])
    .ok();
    assert_eq!(
        moto.stack_status("shop").as_deref(),
        Some("CREATE_COMPLETE")
    );
    let dir = env.home().join("state/formations/shop");
    for file in ["journal.ndjson", "nanny.log", "spec.json", "formation.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(!text.contains(secret), "{file} contains the secret");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("secrets.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    for args in [
        vec!["formation:describe", "shop"],
        vec!["-o", "json", "formation:events", "shop"],
        vec!["formation:list"],
    ] {
        let run = env.run(&args).ok();
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{args:?} leaked it"
        );
    }
    env.run(&["formation:destroy", "shop", "--yes"]).ok();
    assert_eq!(moto.stack_status("shop"), None);
    assert!(
        !dir.join("secrets.json").exists(),
        "secrets outlive the formation"
    );
}

#[test]
fn dry_run_shows_the_change_set_and_changes_nothing() {
    let Aws { env, moto } = aws_env();
    let changes = env
        .run(&[
            "-o",
            "json",
            "formation:create",
            "hello/aws",
            "--name",
            "preview",
            "--dry-run",
        ])
        .ok()
        .json();
    let changes = changes.as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["action"] == "add" && c["kind"] == "AWS::EC2::Instance"),
        "{changes:?}"
    );
    assert_eq!(moto.stack_status("preview"), None);
    assert!(
        !env.home()
            .join("state/formations/preview/formation.json")
            .exists()
    );
}

#[test]
fn detach_then_watch_from_another_process() {
    let Aws { mut env, moto } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "400".into()));
    let started = env
        .run(&[
            "-o",
            "json",
            "formation:create",
            "hello/aws",
            "--name",
            "bg",
            "--detach",
        ])
        .ok()
        .json();
    assert_eq!(started["status"], "detached");
    // A second create of the same name fails at once while the first runs.
    let second = env
        .run(&["formation:create", "hello/aws", "--name", "bg"])
        .code(6);
    assert!(second.stderr.contains("bg"), "{}", second.stderr);
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "bg" && r["busy"] == true),
        "{list}"
    );
    let watched = env.run(&["formation:watch", "bg"]).ok();
    assert!(
        watched.stdout.contains("create of bg succeeded"),
        "{}",
        watched.stdout
    );
    assert!(
        watched.stderr.contains("execute") || watched.stderr.contains("change"),
        "progress lines on stderr: {}",
        watched.stderr
    );
    // Watching a finished build replays it.
    env.run(&["formation:watch", "bg"]).ok();
    assert_eq!(moto.stack_status("bg").as_deref(), Some("CREATE_COMPLETE"));
    env.run(&["destroy", "bg", "--yes"]).ok();
}

#[test]
fn killing_the_cli_does_not_stop_the_build() {
    let Aws { mut env, moto } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "500".into()));
    let mut cli = env
        .nepho()
        .args(["formation:create", "hello/aws", "--name", "survivor"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the nanny to start", Duration::from_secs(20), || {
        env.nanny_pid("survivor").is_some()
    });
    unsafe { libc::kill(cli.id() as i32, libc::SIGKILL) };
    let _ = cli.wait();
    env.run(&["formation:watch", "survivor"]).ok();
    assert_eq!(
        moto.stack_status("survivor").as_deref(),
        Some("CREATE_COMPLETE")
    );
    env.run(&["destroy", "survivor", "--yes"]).ok();
}

#[test]
fn killing_the_nanny_then_resume_and_destroy_leaves_nothing() {
    let Aws { mut env, moto } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "700".into()));
    env.run(&[
        "formation:create",
        "hello/aws",
        "--name",
        "crashy",
        "--detach",
    ])
    .ok();
    wait_until("a step to finish", Duration::from_secs(30), || {
        env.journal("crashy").iter().any(|e| {
            e["kind"] == "step" && (e["status"] == "succeeded" || e["status"] == "skipped")
        })
    });
    let pid = env.nanny_pid("crashy").expect("nanny pid in the lock file");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(
        "the nanny to die",
        Duration::from_secs(10),
        || unsafe { libc::kill(pid, 0) } != 0,
    );
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "crashy")
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["busy"], false, "a dead nanny's lock is free: {row}");
    // A plain create refuses and says how to go on.
    let refused = env
        .run(&["formation:create", "hello/aws", "--name", "crashy"])
        .code(6);
    assert!(refused.stderr.contains("--resume"), "{}", refused.stderr);
    let resumed = env
        .run(&["formation:create", "--resume", "--name", "crashy"])
        .ok();
    assert!(resumed.stdout.contains("succeeded"), "{}", resumed.stdout);
    let events = env.journal("crashy");
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("resumed")),
        "journal shows the resume"
    );
    assert_eq!(
        moto.stack_status("crashy").as_deref(),
        Some("CREATE_COMPLETE")
    );
    env.run(&["destroy", "crashy", "--yes"]).ok();
    assert_eq!(moto.stack_status("crashy"), None);
}

#[test]
fn missing_provider_settings_and_unknown_formations_are_clear_errors() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    env.run(&["formation:describe", "nothing"]).code(3);
    env.run(&["formation:create", "hello/aws", "--name", "bad/name"])
        .code(4);
    let run = env.run(&["--no-input", "register", "aws"]).code(4);
    assert!(run.stderr.contains("--region"), "{}", run.stderr);
    let mut cmd = env.nepho();
    cmd.args([
        "-o",
        "json",
        "register",
        "aws",
        "--region",
        "eu-west-1",
        "--access-key-id",
        "AKIDEXAMPLE",
    ])
    .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wJalrXUtnFEMI-secret"));
    let file = env.home().join("providers/aws.yaml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_template_error_names_the_resource_and_reason_and_leaves_nothing() {
    let Aws { env, moto } = aws_env();
    // A cloudlet whose aws pattern points at a resource that does not exist.
    let work = env.path("broken");
    env.run(&[
        "cloudlet:create",
        "acme/broken",
        "--path",
        work.to_str().unwrap(),
    ])
    .ok();
    let pattern = work.join("patterns/aws/hello.cf");
    let text = std::fs::read_to_string(&pattern).unwrap();
    let text = text.replace(
        "SecurityGroupIds: [!GetAtt HelloSecurityGroup.GroupId]",
        "SecurityGroupIds: [!GetAtt MissingGroup.GroupId]",
    );
    std::fs::write(&pattern, text).unwrap();
    crate::support::git(&work, &["add", "-A"]);
    crate::support::git(&work, &["commit", "-qm", "broken"]);
    env.run(&["cloudlet:install", work.to_str().unwrap()]).ok();
    let failed = env
        .run(&["formation:create", "acme/broken/aws", "--name", "broken"])
        .code(5);
    assert!(
        failed.stderr.contains("MissingGroup"),
        "the reason names the missing resource: {}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("HelloInstance"),
        "the failing resource is named: {}",
        failed.stderr
    );
    assert_eq!(
        moto.stack_status("broken"),
        None,
        "a failed create is rolled back"
    );
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "broken")
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["state"], "failed", "{list}");
    env.run(&["destroy", "broken", "--yes"]).ok();
}

/// A user's env for `moto` in `region` (stack names are per region, so two homes can each have
/// a formation `bg`).
fn moto_vars(moto: &Moto, region: &str) -> Vec<(String, String)> {
    moto.vars()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "AWS_REGION" | "AWS_DEFAULT_REGION" => (k, region.to_string()),
            _ => (k, v),
        })
        .collect()
}

/// One user, two HOMEs (a second checkout, `sudo -u`, a cron job), no NEPHO_HOME and no
/// XDG_RUNTIME_DIR, so both fall back to the same temp dir: each home's nanny keeps its own
/// socket, and `formation:watch` in each home follows that home's build, not the other's.
#[test]
fn two_homes_of_one_user_each_watch_their_own_build() {
    let moto = Moto::start();
    let shared_tmp = tempfile::tempdir().unwrap();
    let builds = [
        (
            "us-west-2",
            "hello",
            "hello/aws",
            "HelloInstance",
            "greeting=hi",
        ),
        (
            "us-east-1",
            "webapp",
            "webapp/aws",
            "LoadBalancer",
            "db_password=Secret123456",
        ),
    ];
    let homes: Vec<Env> = builds
        .iter()
        .map(|(region, cloudlet, ..)| {
            let mut env = Env::without_nepho_home();
            env.vars = moto_vars(&moto, region);
            env.vars.push((
                "TMPDIR".into(),
                shared_tmp.path().to_string_lossy().into_owned(),
            ));
            env.run(&["cloudlet:install", cloudlet]).ok();
            env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "400".into()));
            env
        })
        .collect();
    for (env, (_, _, scenario, _, value)) in homes.iter().zip(&builds) {
        let started = env
            .run(&[
                "-o",
                "json",
                "formation:create",
                scenario,
                "--name",
                "bg",
                "--set",
                value,
                "--detach",
            ])
            .ok()
            .json();
        assert_eq!(started["status"], "detached");
    }
    for (env, (_, _, _, own, _)) in homes.iter().zip(&builds) {
        let watched = env.run(&["formation:watch", "bg"]).ok();
        assert!(
            watched.stdout.contains("create of bg succeeded"),
            "{}",
            watched.stdout
        );
        assert!(watched.stderr.contains(own), "{}", watched.stderr);
        for (_, _, _, other, _) in builds.iter().filter(|b| b.3 != *own) {
            assert!(
                !watched.stderr.contains(other),
                "a watch showed the other home's build:\n{}",
                watched.stderr
            );
        }
    }
    for (env, (region, ..)) in homes.iter().zip(&builds) {
        env.run(&["destroy", "bg", "--yes"]).ok();
        let listed = moto
            .aws(&[
                "cloudformation",
                "list-stacks",
                "--region",
                region,
                "--stack-status-filter",
                "CREATE_COMPLETE",
            ])
            .unwrap();
        assert_eq!(listed["StackSummaries"], serde_json::json!([]), "{region}");
    }
}

/// A NEPHO_HOME deep enough that `<home>/run/formations/<name>.sock` does not fit in a Unix
/// socket address (108 bytes) still builds, attached and detached, without a 20 s wait; and when
/// no short path exists at all (TMPDIR as deep), create fails at once saying why.
#[test]
fn a_deep_home_still_builds_and_an_impossible_socket_path_fails_at_once() {
    let moto = Moto::start();
    let deep = format!("homes/{}/nepho", "deep".repeat(25));
    let mut env = Env::with_home(&deep);
    assert!(
        env.home()
            .join("run/formations/lengthy.sock")
            .as_os_str()
            .len()
            > 108
    );
    env.vars = moto.vars();
    // The fallback directory goes to the temp dir: this test's own, removed with it.
    let tmp = env.path("t");
    std::fs::create_dir_all(&tmp).unwrap();
    env.vars
        .push(("TMPDIR".into(), tmp.to_string_lossy().into_owned()));
    env.run(&["cloudlet:install", "hello"]).ok();
    let started = std::time::Instant::now();
    let created = env
        .run(&[
            "-o",
            "json",
            "formation:create",
            "hello/aws",
            "--name",
            "lengthy",
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "300".into()));
    env.run(&[
        "formation:create",
        "hello/aws",
        "--name",
        "later",
        "--detach",
    ])
    .ok();
    let watched = env.run(&["formation:watch", "later"]).ok();
    assert!(
        watched.stdout.contains("create of later succeeded"),
        "{}",
        watched.stdout
    );
    assert_eq!(
        moto.stack_status("later").as_deref(),
        Some("CREATE_COMPLETE")
    );
    for name in ["lengthy", "later"] {
        env.run(&["destroy", name, "--yes"]).ok();
    }

    let deep_tmp = env.path(&format!("tmp/{}", "t".repeat(120)));
    env.vars.retain(|(k, _)| k != "TMPDIR");
    env.vars
        .push(("TMPDIR".into(), deep_tmp.to_string_lossy().into_owned()));
    let started = std::time::Instant::now();
    let refused = env
        .run(&["formation:create", "hello/aws", "--name", "nowhere"])
        .code(4);
    assert!(
        refused.stderr.contains("107-byte limit"),
        "{}",
        refused.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(moto.stack_status("nowhere"), None);
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "nowhere"),
        "{list}"
    );
}

/// `formation:events -o yaml` is a YAML stream (one `---` document per event), as `-o json` is
/// NDJSON: the same events either way.
#[test]
fn events_as_a_yaml_stream_and_as_ndjson() {
    let Aws { env, moto: _moto } = aws_env();
    env.run(&["formation:create", "hello/aws", "--name", "evy"])
        .ok();
    let ndjson = env
        .run(&["-o", "json", "formation:events", "evy"])
        .ok()
        .stdout;
    let from_json: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let yaml = env
        .run(&["-o", "yaml", "formation:events", "evy"])
        .ok()
        .stdout;
    assert!(yaml.starts_with("---\n"), "{yaml}");
    let stream = crate::support::yaml_stream_to_json(&yaml);
    assert_eq!(stream.as_array().unwrap(), &from_json);
    env.run(&["destroy", "evy", "--yes"]).ok();
}

/// `formation:destroy` shows what goes and asks on a terminal (read back through a real
/// pseudo-terminal); without a terminal it refuses and names `--yes`; `--yes` skips the question.
#[test]
fn destroy_asks_on_a_terminal_and_refuses_without_one() {
    let Aws { env, moto } = aws_env();
    env.run(&["formation:create", "hello/aws", "--name", "asked"])
        .ok();
    // The nanny's log is private, as the rest of the state is.
    let log = env.home().join("state/formations/asked/nanny.log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600,
        "{}",
        log.display()
    );
    let refused = env.run(&["destroy", "asked"]).code(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(moto.stack_status("asked").is_some());

    let on_terminal = |answer: &str| {
        let mut cmd = std::process::Command::new("script");
        cmd.args([
            "-qfc",
            &format!("{} destroy asked", env!("CARGO_BIN_EXE_nepho")),
            "/dev/null",
        ])
        .env("HOME", env.dir.path())
        .env("NEPHO_HOME", env.home())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
        for (k, v) in &env.vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        use std::io::Write;
        stdin.write_all(answer.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    let screen = on_terminal("n\n");
    assert!(screen.contains("will remove"), "{screen}");
    assert!(screen.contains("AWS::EC2::Instance"), "{screen}");
    assert!(screen.contains("Destroy asked?"), "{screen}");
    assert!(
        moto.stack_status("asked")
            .is_some_and(|s| !s.contains("DELETE")),
        "declined: the stack stays"
    );
    let screen = on_terminal("y\n");
    assert!(screen.contains("Destroy asked?"), "{screen}");
    crate::support::wait_until(
        "the stack is deleted",
        std::time::Duration::from_secs(30),
        || {
            moto.stack_status("asked")
                .is_none_or(|s| s == "DELETE_COMPLETE")
        },
    );
}

/// With its provider unreachable, `formation:list` says which provider and why in one line,
/// marks its formations `unknown` (not `missing`), and exits 5 when no provider answered.
#[test]
fn an_unreachable_provider_is_named_and_its_formations_are_unknown() {
    let Aws {
        mut env,
        moto: _moto,
    } = aws_env();
    env.run(&["formation:create", "hello/aws", "--name", "away"])
        .ok();
    for (k, v) in env.vars.iter_mut() {
        if k == "AWS_ENDPOINT_URL" {
            *v = "http://127.0.0.1:1".into();
        }
    }
    let run = env.run(&["-o", "json", "formation:list"]).code(5);
    let rows = run.json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "away")
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(row["state"], "unknown", "{rows}");
    let error: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot reach aws"), "{message}");
    assert!(
        !message.contains('\n') && !message.contains("DispatchFailure("),
        "{message}"
    );
}

/// `formation:update --dry-run` shows the change set of the update and changes nothing: not the
/// stack, not the formation's saved spec.
#[test]
fn update_dry_run_previews_and_changes_nothing() {
    let Aws { env, moto } = aws_env();
    env.run(&["formation:create", "hello/aws", "--name", "planned"])
        .ok();
    let spec = env.home().join("state/formations/planned/spec.json");
    let before = std::fs::read(&spec).unwrap();
    let stack_before = moto.aws(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        "planned",
    ]);
    let changes = env
        .run(&[
            "-o",
            "json",
            "formation:update",
            "planned",
            "--set",
            "instance_type=t3.small",
            "--dry-run",
        ])
        .ok()
        .json();
    assert!(changes.is_array(), "{changes}");
    assert_eq!(std::fs::read(&spec).unwrap(), before, "spec.json untouched");
    let stack_after = moto.aws(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        "planned",
    ]);
    assert_eq!(
        stack_before.unwrap()["Stacks"][0]["Parameters"],
        stack_after.unwrap()["Stacks"][0]["Parameters"],
        "the stack's parameters are unchanged"
    );
    let table = env
        .run(&["formation:update", "planned", "--dry-run"])
        .ok()
        .stdout;
    assert!(table.contains("dry run: nothing was changed"), "{table}");
}

/// `formation:cancel` stops a running build (JSON under `-o json`), which rolls back.
#[test]
fn cancel_stops_a_running_build_and_says_so_in_json() {
    let Aws { mut env, moto } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "1500".into()));
    env.run(&[
        "formation:create",
        "hello/aws",
        "--name",
        "halted",
        "--detach",
    ])
    .ok();
    let cancelled = env
        .run(&["-o", "json", "formation:cancel", "halted"])
        .ok()
        .json();
    assert_eq!(cancelled["name"], "halted", "{cancelled}");
    assert!(
        cancelled["resume"].as_str().unwrap().contains("--resume"),
        "{cancelled}"
    );
    let watched = env.run(&["formation:watch", "halted"]);
    assert_ne!(watched.code, 0, "a cancelled build does not succeed");
    let events = env.journal("halted");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "cancelled", "{last}");
    let (row, list) = list_row(&env, "halted");
    assert_eq!(row["state"], "cancelled", "{list}");
    assert_eq!(row["busy"], false, "{list}");
    assert!(
        row["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("cancel")),
        "the reason is given: {list}"
    );
    let _ = moto;
}

/// After a create that ended badly the name is not blocked for good: `--replace` cleans up what
/// it left and creates it anew (a terminal is offered the same).
#[test]
fn a_failed_create_is_replaced_with_replace() {
    let Aws { mut env, moto } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "1500".into()));
    env.run(&[
        "formation:create",
        "hello/aws",
        "--name",
        "again",
        "--detach",
    ])
    .ok();
    env.run(&["formation:cancel", "again"]).ok();
    env.run(&["formation:watch", "again"]);
    env.vars.retain(|(k, _)| k != "NEPHO_STEP_DELAY_MS");
    let blocked = env
        .run(&["formation:create", "hello/aws", "--name", "again"])
        .code(6);
    assert!(blocked.stderr.contains("--replace"), "{}", blocked.stderr);
    env.run(&[
        "formation:create",
        "hello/aws",
        "--name",
        "again",
        "--replace",
    ])
    .ok();
    assert_eq!(
        moto.stack_status("again").as_deref(),
        Some("CREATE_COMPLETE")
    );
    let (row, list) = list_row(&env, "again");
    assert_eq!(row["state"], "running", "{list}");
    env.run(&["destroy", "again", "--yes"]).ok();
}

/// The progress display on a terminal (read back through `script`, as a user's terminal would
/// show it): the header counts finished steps, per-resource counts show, a warning gets a whole
/// line, and the last line says the result once.
#[test]
fn progress_on_a_terminal_counts_steps_and_ends_once() {
    let Aws { env, moto: _moto } = aws_env();
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qfc",
        &format!(
            "stty cols 100; {} formation:create hello/aws --name shown",
            env!("CARGO_BIN_EXE_nepho")
        ),
        "/dev/null",
    ])
    .env("HOME", env.dir.path())
    .env("NEPHO_HOME", env.home())
    .env("NEPHO_STEP_DELAY_MS", "700")
    .stdin(std::process::Stdio::null());
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(screen.contains("1 of 2 steps done"), "{screen}");
    assert!(screen.contains("2 of 2 steps done"), "{screen}");
    assert!(screen.contains("[2/2]"), "per-step counts: {screen}");
    assert!(
        screen.contains("declares no parameter for greeting; not passed to CloudFormation"),
        "the warning, whole: {screen}"
    );
    assert!(screen.contains("shown: create succeeded ("), "{screen}");
    assert!(
        !screen.contains("create of shown succeeded"),
        "said once: {screen}"
    );
    env.run(&["destroy", "shown", "--yes"]).ok();
}

/// `--timeout` gives up on a build that takes too long: it is cancelled, rolls back, and nepho
/// exits 5 saying so; `--wait` is accepted as the explicit default.
#[test]
fn a_build_past_its_timeout_is_cancelled_and_rolled_back() {
    let Aws { mut env, moto } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "1500".into()));
    let run = env
        .run(&[
            "formation:create",
            "hello/aws",
            "--name",
            "slow",
            "--wait",
            "--timeout",
            "1s",
        ])
        .code(5);
    assert!(
        run.stderr.contains("did not finish within 1s"),
        "{}",
        run.stderr
    );
    assert!(
        moto.stack_status("slow")
            .is_none_or(|s| s == "DELETE_COMPLETE"),
        "rolled back: {:?}",
        moto.stack_status("slow")
    );
    env.run(&[
        "formation:create",
        "hello/aws",
        "--name",
        "x",
        "--timeout",
        "soon",
    ])
    .code(2);
}

/// Ctrl-C (SIGINT): in the foreground it cancels (rolls back, exit 130); attached to a nanny it
/// detaches (exit 0) and the build goes on; a second Ctrl-C soon after cancels.
#[test]
fn ctrl_c_cancels_in_the_foreground_and_detaches_when_attached() {
    let Aws { mut env, moto } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "2000".into()));
    let interrupt = |args: &[&str], signals: &[u64]| -> i32 {
        let mut child = env
            .nepho()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for delay in signals {
            std::thread::sleep(std::time::Duration::from_millis(*delay));
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        }
        child.wait().unwrap().code().unwrap_or(-1)
    };
    let code = interrupt(
        &[
            "formation:create",
            "hello/aws",
            "--name",
            "fg",
            "--foreground",
        ],
        &[1500],
    );
    assert_eq!(code, 130, "foreground Ctrl-C cancels");
    assert!(
        moto.stack_status("fg")
            .is_none_or(|s| s == "DELETE_COMPLETE"),
        "rolled back: {:?}",
        moto.stack_status("fg")
    );

    let code = interrupt(&["formation:create", "hello/aws", "--name", "bg"], &[1500]);
    assert_eq!(code, 0, "attached Ctrl-C detaches");
    let watched = env.run(&["formation:watch", "bg"]);
    assert_eq!(watched.code, 0, "the build went on: {}", watched.stderr);
    assert_eq!(moto.stack_status("bg").as_deref(), Some("CREATE_COMPLETE"));

    let code = interrupt(
        &["formation:create", "hello/aws", "--name", "twice"],
        &[1500, 500],
    );
    assert_eq!(code, 130, "a second Ctrl-C cancels");
    let events = env.journal("twice");
    assert_eq!(events.last().unwrap()["status"], "cancelled");
}

/// Step times are kept per cloudlet/scenario/provider (also for a detached build), and the next
/// run on a terminal shows an ETA from them.
#[test]
fn past_runs_give_an_eta() {
    let Aws {
        mut env,
        moto: _moto,
    } = aws_env();
    env.vars.push(("NEPHO_STEP_DELAY_MS".into(), "700".into()));
    env.run(&[
        "formation:create",
        "hello/aws",
        "--name",
        "first",
        "--detach",
    ])
    .ok();
    env.run(&["formation:watch", "first"]).ok();
    let history = env.home().join("state/history/hello__aws__aws.json");
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    assert!(
        kept["steps"]["execute"][0].as_f64().unwrap() > 0.5,
        "{kept}"
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qfc",
        &format!(
            "stty cols 120; {} formation:create hello/aws --name second",
            env!("CARGO_BIN_EXE_nepho")
        ),
        "/dev/null",
    ])
    .env("HOME", env.dir.path())
    .env("NEPHO_HOME", env.home())
    .stdin(std::process::Stdio::null());
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    let screen = String::from_utf8_lossy(&cmd.output().unwrap().stdout).to_string();
    assert!(screen.contains("s left"), "an ETA: {screen}");
    for name in ["first", "second"] {
        env.run(&["destroy", name, "--yes"]).ok();
    }
}

/// Contexts: two AWS regions as two named contexts, chosen with `context:use`, `--context` or
/// NEPHO_CONTEXT; each lists and builds in its own region.
#[test]
fn contexts_keep_accounts_and_regions_apart() {
    let Aws { mut env, moto } = aws_env();
    env.vars
        .retain(|(k, _)| k != "AWS_REGION" && k != "AWS_DEFAULT_REGION");
    for (context, region) in [("east", "us-east-1"), ("west", "eu-west-1")] {
        env.run(&[
            "register",
            "aws",
            "--context",
            context,
            "--region",
            region,
            "--no-input",
        ])
        .ok();
    }
    let contexts = env.run(&["-o", "json", "context:list"]).ok().json();
    let names: Vec<&str> = contexts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "east", "west"], "{contexts}");
    env.run(&["context:use", "east"]).ok();
    env.run(&["formation:create", "hello/aws", "--name", "in-east"])
        .ok();
    env.run(&[
        "--context",
        "west",
        "formation:create",
        "hello/aws",
        "--name",
        "in-west",
    ])
    .ok();
    let stacks = |region: &str| -> Vec<String> {
        moto.aws(&["cloudformation", "describe-stacks", "--region", region])
            .map(|v| {
                v["Stacks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["StackName"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(stacks("us-east-1"), ["in-east"]);
    assert_eq!(stacks("eu-west-1"), ["in-west"]);
    let names_in = |env: &crate::support::Env| -> Vec<String> {
        env.run(&["-o", "json", "formation:list"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names_in(&env), ["in-east"]);
    env.vars.push(("NEPHO_CONTEXT".into(), "west".into()));
    assert_eq!(names_in(&env), ["in-west"]);
    env.run(&["destroy", "in-west", "--yes"]).ok();
    env.vars.retain(|(k, _)| k != "NEPHO_CONTEXT");
    env.run(&["destroy", "in-east", "--yes"]).ok();
    assert!(stacks("eu-west-1").is_empty() && stacks("us-east-1").is_empty());
}
