//! Global command-line behaviour: colon and space forms, output formats, help, exit codes.

use crate::support::Env;

#[test]
fn colon_and_space_forms_are_equivalent() {
    let env = Env::new();
    env.run(&["cloudlet", "install", "hello"]).ok();
    let a = env.run(&["-o", "json", "cloudlet:list"]).ok().stdout;
    let b = env
        .run(&["cloudlet", "list", "--output", "json"])
        .ok()
        .stdout;
    assert_eq!(a, b);
}

#[test]
fn yaml_output_and_config_defaults() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let yaml = env
        .run(&["-o", "yaml", "scenario:list", "hello"])
        .ok()
        .stdout;
    assert!(yaml.contains("name: default"), "{yaml}");
    env.write_config("output: json\nbogus_key: 1\n");
    let run = env.run(&["scenario:list", "hello"]).ok();
    assert!(run.json().is_array());
    assert!(
        run.stderr.contains("unknown config key \"bogus_key\""),
        "{}",
        run.stderr
    );
    // Flags beat the config file.
    assert!(
        env.run(&["-o", "table", "scenario:list", "hello"])
            .ok()
            .stdout
            .contains("SCENARIO")
    );
    // ... and the environment beats the config file too.
    let mut cmd = env.nepho();
    cmd.env("NEPHO_OUTPUT", "yaml")
        .args(["scenario:list", "hello"]);
    let out = cmd.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("- name: default"));
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let env = Env::new();
    env.run(&["cloudlet:frobnicate"]).code(2);
    env.run(&["cloudlet:install"]).code(2);
    let help = env.run(&["--help"]).ok();
    assert!(help.stdout.contains("Exit codes:"), "{}", help.stdout);
    assert!(help.stdout.contains("130  interrupted"));
    env.run(&["completions", "bash"]).ok();
}

#[test]
fn quiet_silences_notices_but_not_results() {
    let env = Env::new();
    let noisy = env.run(&["cloudlet:install", "hello"]).ok();
    assert!(noisy.stderr.contains("Notice:"));
    let env = Env::new();
    let quiet = env.run(&["--quiet", "cloudlet:install", "hello"]).ok();
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert!(quiet.stdout.contains("hello (v1.0.0)"));
}

#[test]
fn help_takes_the_colon_form() {
    let env = Env::new();
    let colon = env.run(&["help", "formation:create"]).ok().stdout;
    let space = env.run(&["help", "formation", "create"]).ok().stdout;
    assert_eq!(colon, space);
    assert!(colon.contains("--name"), "{colon}");
}

/// `nepho … | head -1`: the reader goes away; nepho stops quietly (no panic, exit 0).
#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    let env = Env::new();
    for args in [
        vec!["completions", "bash"],
        vec!["-o", "json", "cloudlet:search", "hello"],
    ] {
        let mut child = env
            .nepho()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close our end before nepho writes: its first write hits a broken pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let env = Env::new();
    let run = env
        .run(&["--config", "/nonexistent/nepho.yaml", "cloudlet:list"])
        .code(3);
    assert!(
        run.stderr.contains("/nonexistent/nepho.yaml"),
        "{}",
        run.stderr
    );
}

/// A terminal that reports 0 columns (CI, `docker -t`, `script` without a size) gets tables
/// 80 columns wide, not one character per column. Read back through a real pseudo-terminal.
#[test]
fn tables_on_a_terminal_without_a_size_use_80_columns() {
    let env = Env::new();
    env.run(&["cloudlet:install", "webapp"]).ok();
    let cmd = format!(
        "stty cols 0 rows 0; HOME={} NEPHO_HOME={} NO_COLOR=1 {} scenario:list webapp",
        env.dir.path().display(),
        env.home().display(),
        env!("CARGO_BIN_EXE_nepho")
    );
    let out = std::process::Command::new("script")
        .args(["-qfc", &cmd, "/dev/null"])
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let header = screen
        .lines()
        .find(|l| l.contains("PROVIDER"))
        .unwrap_or_else(|| panic!("no table header on the screen:\n{screen}"));
    assert!(header.contains("SCENARIO"), "{screen}");
    assert!(screen.lines().all(|l| l.len() <= 80), "{screen}");
}

/// Usage errors come as JSON (or YAML) when the script asked for it, with exit 2.
#[test]
fn usage_errors_follow_the_requested_output_format() {
    let env = Env::new();
    let run = env.run(&["-o", "json", "formation:create"]).code(2);
    let error: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(error["error"]["kind"], "usage");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--name"),
        "{error}"
    );
    let run = env.run(&["--output=yaml", "cloudlet:bogus"]).code(2);
    assert!(
        run.stderr.starts_with("error:\n  kind: usage"),
        "{}",
        run.stderr
    );
    // Help is still help.
    env.run(&["-o", "json", "formation:create", "--help"]).ok();
}

/// The words users of Vagrant, kubectl and docker type by habit.
#[test]
fn habitual_aliases_work() {
    let env = Env::new();
    let list = env.run(&["-o", "json", "formation:list"]).ok().stdout;
    for alias in [
        vec!["ls"],
        vec!["status"],
        vec!["formation:ls"],
        vec!["formation", "status"],
    ] {
        let mut args = vec!["-o", "json"];
        args.extend(alias.iter());
        assert_eq!(env.run(&args).ok().stdout, list, "{alias:?}");
    }
    for (alias, command) in [("up", "create"), ("rm", "destroy"), ("halt", "stop")] {
        let a = env.run(&["help", alias]).ok().stdout;
        let b = env.run(&["help", command]).ok().stdout;
        assert_eq!(a, b, "{alias} = {command}");
    }
}

/// Every command has examples in its help, every positional argument a description, and the
/// global options their own heading.
#[test]
fn every_command_has_examples_and_described_arguments() {
    fn walk(cmd: &clap::Command, path: String, missing: &mut Vec<String>) {
        if cmd.get_name() == "help" {
            return;
        }
        for a in cmd.get_positionals() {
            if a.get_help().is_none() {
                missing.push(format!("{path} <{}>: no description", a.get_id()));
            }
        }
        if !cmd.has_subcommands() && cmd.get_after_help().is_none() {
            missing.push(format!("{path}: no examples"));
        }
        for s in cmd.get_subcommands() {
            walk(s, format!("{path} {}", s.get_name()), missing);
        }
    }
    let mut cmd = nepho::cli::command();
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, "nepho".into(), &mut missing);
    assert!(missing.is_empty(), "{missing:#?}");
    let env = Env::new();
    let help = env.run(&["help", "cloudlet:install"]).ok().stdout;
    assert!(help.contains("Global options:"), "{help}");
    assert!(
        help.contains("Examples:\n  nepho cloudlet:install"),
        "{help}"
    );
}

/// Completion in a real bash: the script from `nepho completions bash` calls back into nepho,
/// which completes installed cloudlets, `cloudlet/scenario` references and formation names,
/// and never offers the internal `__nanny`.
#[test]
fn bash_completes_names_from_this_machine() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    std::fs::create_dir_all(env.home().join("state/formations/agmedia")).unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_nepho"))
        .parent()
        .unwrap()
        .to_path_buf();
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source <(nepho completions bash)\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_clap_complete_nepho nepho '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            quoted.join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", env.dir.path())
            .env("NEPHO_HOME", env.home())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let top = complete(&["nepho", ""]);
    assert!(top.contains(&"formation".to_string()), "{top:?}");
    assert!(!top.iter().any(|c| c.contains("nanny")), "{top:?}");
    let refs = complete(&["nepho", "scenario:render", "he"]);
    assert!(refs.contains(&"hello/aws".to_string()), "{refs:?}");
    let cloudlets = complete(&["nepho", "cloudlet", "describe", ""]);
    assert!(cloudlets.contains(&"hello".to_string()), "{cloudlets:?}");
    let formations = complete(&["nepho", "formation:destroy", "ag"]);
    assert_eq!(formations, ["agmedia"], "{formations:?}");
}

/// A cloudlet's origin is `source` in `cloudlet:list` and in `cloudlet:describe` alike.
#[test]
fn list_and_describe_name_the_source_alike() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let list = env.run(&["-o", "json", "cloudlet:list"]).ok().json();
    let described = env
        .run(&["-o", "json", "cloudlet:describe", "hello"])
        .ok()
        .json();
    assert_eq!(list[0]["source"], described["source"], "{described}");
    assert!(described["source"].is_string(), "{described}");
}

/// `-v` says what nepho does, `-vv` adds how long it took, `-vvv` what the tools answered; all
/// on stderr (JSON on stdout stays JSON) and with credentials in URLs hidden.
#[test]
fn verbosity_levels_show_what_nepho_does() {
    let env = Env::new();
    let run = env
        .run(&["-v", "-o", "json", "cloudlet:install", "hello"])
        .ok();
    serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap();
    assert!(run.stderr.contains("INFO git init"), "{}", run.stderr);
    assert!(
        run.stderr.contains("cloudlets "),
        "resolved paths: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("DEBUG"), "{}", run.stderr);
    let run = env.run(&["-vv", "cloudlet:update", "hello"]).ok();
    assert!(
        run.stderr.contains("DEBUG git rev-parse HEAD: "),
        "{}",
        run.stderr
    );
    let run = env.run(&["-vvv", "cloudlet:update", "hello"]).ok();
    assert!(run.stderr.contains("git answered"), "{}", run.stderr);
    let run = env.run(&[
        "-vvv",
        "cloudlet:install",
        "http://someone:tok3n-s3cret@127.0.0.1:1/x.git",
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("***@127.0.0.1:1"), "{}", run.stderr);
    assert!(!run.stderr.contains("tok3n-s3cret"), "{}", run.stderr);
}

/// A bad value in the config file is pointed at with file:line:column, as every YAML error is.
#[test]
fn a_bad_config_value_has_its_position() {
    let env = Env::new();
    env.write_config("registries: []\noutput: xml\n");
    let run = env.run(&["cloudlet:list"]).code(4);
    assert!(run.stderr.contains("config.yaml:2:9"), "{}", run.stderr);
}

/// Where a value came from is shown relative to the cloudlet in the table (JSON keeps paths).
#[test]
fn provenance_is_relative_to_the_cloudlet() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let table = env.run(&["scenario:describe", "hello/aws"]).ok().stdout;
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("instance_type"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(" scenarios/aws.yaml:"), "{row}");
    assert!(!row.contains(&env.home().display().to_string()), "{row}");
    let json = env
        .run(&["-o", "json", "scenario:describe", "hello/aws"])
        .ok()
        .json();
    assert!(json.to_string().contains(&env.home().display().to_string()));
}

/// Without NEPHO_HOME, state lives in `$XDG_STATE_HOME/nepho` (not `nepho/state`), and a home
/// whose formations are in the old place keeps using it.
#[test]
fn the_state_directory_is_xdg_state_nepho() {
    let env = Env::new();
    let state = env.path("xdg-state");
    let run = |extra: &[(&str, &std::path::Path)]| {
        let mut cmd = env.nepho();
        cmd.env_remove("NEPHO_HOME")
            .env("XDG_STATE_HOME", &state)
            .args(["-v", "cloudlet:list"]);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let log = run(&[]);
    assert!(
        log.contains(&format!("state {}", state.join("nepho").display()))
            && !log.contains("nepho/state"),
        "{log}"
    );
    std::fs::create_dir_all(state.join("nepho/state/formations")).unwrap();
    let log = run(&[]);
    assert!(log.contains("nepho/state"), "the old place is kept: {log}");
}
