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
