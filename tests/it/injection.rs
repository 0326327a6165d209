//! Hostile values cannot change a pattern: a value spliced into a Vagrantfile, a JSON or YAML
//! template is escaped for that language and for where it stands (`| raw` opts out, and
//! `cloudlet:validate` warns about it); declared `pattern:`s refuse the rest before rendering.

use std::process::Command;

use serde_json::Value;

use crate::support::{Env, GitDaemon};

/// Evaluates a rendered Vagrantfile with real Ruby, every `configure` block run against an
/// object that accepts any setting, in `dir`. Returns whether Ruby accepted it.
fn ruby_evaluates(dir: &std::path::Path, vagrantfile: &str) -> bool {
    std::fs::write(dir.join("Vagrantfile"), vagrantfile).unwrap();
    let stub = r#"
class Anything
  def method_missing(*_args, &block) = (block ? block.call(Anything.new, Anything.new) : Anything.new)
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(_version) = yield(Anything.new)
end
load "Vagrantfile"
"#;
    Command::new("ruby")
        .args(["-e", stub])
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_vagrantfile_value_cannot_run_ruby() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let hostile = r##"box=x"; File.write("pwned", "x"); "#{File.write("pwned2", "y")}"##;
    let rendered = env
        .run(&["scenario:render", "hello/vagrant", "--set", hostile])
        .ok();
    let dir = env.path("ruby");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        ruby_evaluates(&dir, &rendered.stdout),
        "the escaped Vagrantfile is valid Ruby:\n{}",
        rendered.stdout
    );
    assert!(!dir.join("pwned").exists(), "{}", rendered.stdout);
    assert!(!dir.join("pwned2").exists(), "{}", rendered.stdout);
    // Booleans spliced bare are Ruby's `true`/`false` (minijinja alone would print `True`).
    env.run(&["cloudlet:install", "webapp"]).ok();
    let webapp = env
        .run(&[
            "scenario:render",
            "webapp/vagrant",
            "--set",
            "db_password=long-enough",
        ])
        .ok();
    assert!(
        webapp.stdout.contains("primary: true do"),
        "{}",
        webapp.stdout
    );
    assert!(ruby_evaluates(&dir, &webapp.stdout), "{}", webapp.stdout);
}

fn publish(env: &Env, daemon: &GitDaemon, repo: &str, files: &[(&str, &str)]) {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    daemon.publish(repo, &env.path(&format!("work/{repo}")), &files);
}

const PARAMS: &str = "summary: s\nprovider: aws\nparameters:\n  label: {type: string, default: ok}\n  tags: {type: list, default: [a]}\n";

#[test]
fn json_and_yaml_patterns_escape_spliced_values() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    publish(
        &env,
        &daemon,
        "esc.git",
        &[
            ("cloudlet.yaml", "name: acme/esc\nversion: 1.0.0\n"),
            ("scenarios/default.yaml", PARAMS),
            ("scenarios/yaml.yaml", &PARAMS.replace("aws", "kvm")),
            (
                "patterns/aws/esc.json",
                "{\"Resources\": {\"Group\": {\"Type\": \"AWS::EC2::SecurityGroup\", \"Properties\": {\"GroupDescription\": \"for {{ parameters.label }}\", \"Tags\": {{ parameters.tags }}}}}}\n",
            ),
            (
                "patterns/kvm/esc.yaml",
                "machines:\n  - name: m\n    image: {{ parameters.label }}\n    env: {LABEL: \"{{ parameters.label }}\", OTHER: '{{ parameters.label }}'}\n    # {{ parameters.label }}\n    networks: [{{ parameters.label }}]\n",
            ),
        ],
    );
    env.run(&["cloudlet:install", &daemon.url("esc.git")]).ok();
    let json_attack = r#"label=x", "Evil": {"Type": "AWS::IAM::User"}, "y": "#;
    let out = env
        .run(&["-o", "json", "scenario:render", "esc", "--set", json_attack])
        .ok()
        .json();
    let template: Value =
        serde_json::from_str(out["files"][0]["contents"].as_str().unwrap()).unwrap();
    let resources = template["Resources"].as_object().unwrap();
    assert_eq!(resources.len(), 1, "{template}");
    assert!(
        template["Resources"]["Group"]["Properties"]["GroupDescription"]
            .as_str()
            .unwrap()
            .contains("AWS::IAM::User"),
        "the value stays a string: {template}"
    );

    for attack in [
        "label=x\nevil: 1",
        "label=a, b]\n    evil: [1",
        "label=x\" , EVIL: \"1",
        "label=it's' , EVIL: '1",
        "label=ok\n  - name: second",
    ] {
        let out = env
            .run(&["-o", "json", "scenario:render", "esc/yaml", "--set", attack])
            .ok()
            .json();
        let text = out["files"][0]["contents"].as_str().unwrap();
        let machines = crate::support::yaml_to_json(text);
        let m = &machines["machines"];
        assert_eq!(m.as_array().unwrap().len(), 1, "{attack:?}:\n{text}");
        let value = attack.strip_prefix("label=").unwrap();
        assert_eq!(m[0]["image"], value, "{attack:?}:\n{text}");
        assert_eq!(m[0]["env"]["LABEL"], value, "{attack:?}:\n{text}");
        // A single-quoted YAML string cannot hold a line break: it is folded to a space.
        assert_eq!(
            m[0]["env"]["OTHER"],
            value.replace('\n', " "),
            "{attack:?}:\n{text}"
        );
        assert_eq!(
            m[0]["networks"],
            serde_json::json!([value]),
            "{attack:?}:\n{text}"
        );
        assert_eq!(
            m[0].as_object().unwrap().len(),
            4,
            "no key added: {attack:?}:\n{text}"
        );
    }
}

#[test]
fn raw_opts_out_and_validate_warns_about_it() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    publish(
        &env,
        &daemon,
        "raw.git",
        &[
            ("cloudlet.yaml", "name: acme/raw\nversion: 1.0.0\n"),
            (
                "scenarios/default.yaml",
                "summary: s\nprovider: kvm\nparameters:\n  extra: {type: string, default: 'cpus: 1'}\n",
            ),
            (
                "patterns/kvm/raw.yaml",
                "machines:\n  - name: m\n    {{ parameters.extra | raw }}\n",
            ),
        ],
    );
    env.run(&["cloudlet:install", &daemon.url("raw.git")]).ok();
    let out = env.run(&["scenario:render", "raw"]).ok();
    assert!(out.stdout.contains("    cpus: 1\n"), "{}", out.stdout);
    let report = env
        .run(&["-o", "json", "cloudlet:validate", "raw"])
        .ok()
        .json();
    let warnings = report[0]["scenarios"][0]["warnings"].to_string();
    assert!(
        warnings.contains("raw.yaml:3") && warnings.contains("unescaped"),
        "{report}"
    );
}

#[test]
fn bundled_patterns_refuse_hostile_values_before_rendering() {
    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    env.run(&["cloudlet:install", "webapp"]).ok();
    let run = env
        .run(&[
            "scenario:render",
            "hello/aws",
            "--set",
            "ssh_cidr=0.0.0.0/0\"}\n        - {IpProtocol: \"-1\", CidrIp: \"0.0.0.0/0",
        ])
        .code(4);
    assert!(run.stderr.contains("ssh_cidr"), "{}", run.stderr);
    let run = env
        .run(&[
            "scenario:render",
            "webapp/aws",
            "--set",
            "db_password=long-enough-secret",
            "--set",
            r#"image_id=ami-12345678"}, "Evil": {"Type": "AWS::IAM::User"#,
        ])
        .code(4);
    assert!(run.stderr.contains("image_id"), "{}", run.stderr);
    assert!(!run.stderr.contains("long-enough-secret"), "{}", run.stderr);
    // The values reach CloudFormation as stack parameters, not as template text.
    let out = env
        .run(&[
            "scenario:render",
            "webapp/aws",
            "--set",
            "db_password=long-enough-secret",
        ])
        .ok();
    assert!(
        out.stdout.contains(r#""ImageId": {"Ref": "ImageId"}"#),
        "{}",
        out.stdout
    );
}
