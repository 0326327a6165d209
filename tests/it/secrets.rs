//! Secrets across a formation's life (issue 10): an update keeps, rotates or refuses to guess a
//! secret; errors that quote input never show one; a destroyed formation leaves no local state.
//! Checked against moto with the AWS CLI. The bundled `webapp` cloudlet is used as published,
//! except that its template's `NoEcho` is dropped so `describe-stacks` shows what the stack holds.

use crate::formations::{Aws, aws_env};
use crate::support::{Env, Moto, Run};

/// The value the stack's `DBPassword` parameter holds, as the AWS CLI reports it.
fn db_password_of(moto: &Moto, stack: &str) -> Option<String> {
    let stacks = moto.aws(&["cloudformation", "describe-stacks", "--stack-name", stack])?;
    stacks["Stacks"][0]["Parameters"]
        .as_array()?
        .iter()
        .find(|p| p["ParameterKey"] == "DBPassword")
        .and_then(|p| p["ParameterValue"].as_str())
        .map(str::to_string)
}

fn webapp_template(env: &Env) -> std::path::PathBuf {
    env.cloudlets_dir().join("webapp/patterns/aws/webapp.cf")
}

/// Lets `describe-stacks` show the password (moto prints `****` for a NoEcho parameter).
fn reveal_db_password(env: &Env) {
    let path = webapp_template(env);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"NoEcho\": true, "),
        "template changed upstream"
    );
    std::fs::write(&path, text.replace("\"NoEcho\": true, ", "")).unwrap();
}

fn aws_with_visible_password() -> Aws {
    let aws = aws_env();
    reveal_db_password(&aws.env);
    aws
}

#[track_caller]
fn assert_hidden(run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the secret was printed\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

fn create_shop(env: &Env, extra: &[&str]) {
    let mut args = vec![
        "formation:create",
        "webapp/aws",
        "--name",
        "shop",
        "--set",
        "web_count=1",
    ];
    args.extend_from_slice(extra);
    env.run(&args).ok();
}

#[test]
fn update_with_a_lost_secret_fails_naming_it_and_changes_nothing() {
    let Aws { env, moto } = aws_with_visible_password();
    create_shop(&env, &["--set", "db_password=Orig1nal-Pw"]);
    assert_eq!(
        db_password_of(&moto, "shop").as_deref(),
        Some("Orig1nal-Pw")
    );
    let dir = env.home().join("state/formations/shop");
    let spec_before = std::fs::read(dir.join("spec.json")).unwrap();

    // Gone, then unreadable: either way the update stops before anything changes.
    std::fs::remove_file(dir.join("secrets.json")).unwrap();
    for attempt in ["missing", "corrupt"] {
        if attempt == "corrupt" {
            std::fs::write(dir.join("secrets.json"), "{\"db_password\": ").unwrap();
        }
        let refused = env
            .run(&["formation:update", "shop", "--set", "web_count=2"])
            .code(4);
        assert!(
            refused.stderr.contains("db_password") && refused.stderr.contains("--set db_password="),
            "{attempt}: the error names the secret and the flag: {}",
            refused.stderr
        );
        assert_eq!(
            db_password_of(&moto, "shop").as_deref(),
            Some("Orig1nal-Pw"),
            "{attempt}: the stack kept its password"
        );
        assert_eq!(
            moto.stack_status("shop").as_deref(),
            Some("CREATE_COMPLETE"),
            "{attempt}: no update ran"
        );
        assert_eq!(
            std::fs::read(dir.join("spec.json")).unwrap(),
            spec_before,
            "{attempt}: the spec was not replaced"
        );
    }

    // Given on the command line, the update goes through and the secret is stored again.
    let updated = env.run(&[
        "formation:update",
        "shop",
        "--set",
        "db_password=N3w-Passw0rd",
    ]);
    assert_hidden(&updated, "N3w-Passw0rd");
    updated.ok();
    assert_eq!(
        db_password_of(&moto, "shop").as_deref(),
        Some("N3w-Passw0rd")
    );
    env.run(&["formation:update", "shop", "--set", "web_count=2"])
        .ok();
    assert_eq!(
        db_password_of(&moto, "shop").as_deref(),
        Some("N3w-Passw0rd")
    );
    env.run(&["destroy", "shop", "--yes"]).ok();
}

#[test]
fn a_secret_rotated_with_a_values_file_reaches_the_stack() {
    let Aws { env, moto } = aws_with_visible_password();
    create_shop(&env, &["--set", "db_password=Orig1nal-Pw"]);
    let rotated = env.path("new.yaml");
    std::fs::write(&rotated, "db_password: R0tated-Passw0rd\n").unwrap();
    let rotated = rotated.to_str().unwrap();

    env.run(&["formation:update", "shop", "-f", rotated]).ok();
    assert_eq!(
        db_password_of(&moto, "shop").as_deref(),
        Some("R0tated-Passw0rd"),
        "-f outranks the stored secret"
    );
    // The rotated value is the one kept from now on.
    env.run(&["formation:update", "shop", "--set", "web_count=2"])
        .ok();
    assert_eq!(
        db_password_of(&moto, "shop").as_deref(),
        Some("R0tated-Passw0rd")
    );
    // And --set outranks -f, as everywhere else.
    env.run(&[
        "formation:update",
        "shop",
        "-f",
        rotated,
        "--set",
        "db_password=S3t-Wins-Pw",
    ])
    .ok();
    assert_eq!(
        db_password_of(&moto, "shop").as_deref(),
        Some("S3t-Wins-Pw")
    );
    env.run(&["destroy", "shop", "--yes"]).ok();
}

#[test]
fn stored_secrets_that_yaml_would_retype_survive_an_update() {
    let Aws { env, moto } = aws_with_visible_password();
    // Values YAML reads as a list, a map, a null or a number when re-parsed as text.
    for (i, password) in ["[Br4ck3t-pw", "{Curly: pw}x", "null    ", "12345678"]
        .iter()
        .enumerate()
    {
        let name = format!("shop{i}");
        let values = env.path(&format!("v{i}.yaml"));
        std::fs::write(
            &values,
            format!(
                "db_password: {}\n",
                serde_json::to_string(password).unwrap()
            ),
        )
        .unwrap();
        let created = env.run(&[
            "formation:create",
            "webapp/aws",
            "--name",
            &name,
            "--set",
            "web_count=1",
            "-f",
            values.to_str().unwrap(),
        ]);
        assert_hidden(&created, password);
        created.ok();
        assert_eq!(db_password_of(&moto, &name).as_deref(), Some(*password));
        let updated = env.run(&["formation:update", &name, "--set", "web_count=2"]);
        assert_hidden(&updated, password);
        updated.ok();
        assert_eq!(
            db_password_of(&moto, &name).as_deref(),
            Some(*password),
            "{password:?} kept as it was"
        );
        env.run(&["destroy", &name, "--yes"]).ok();
    }
}

#[test]
fn errors_quoting_input_never_show_a_secret() {
    let env = Env::new();
    env.run(&["cloudlet:install", "webapp"]).ok();
    let secret = "Secr3t-Value";

    let bad_set = env
        .run(&[
            "scenario:describe",
            "webapp/aws",
            "--set",
            &format!("db_password=[{secret}"),
        ])
        .code(2);
    assert_hidden(&bad_set, secret);
    assert!(bad_set.stderr.contains("db_password"), "{}", bad_set.stderr);

    // YAML errors in a values file: on the secret's line, in its value, in a flow mapping.
    for (case, text) in [
        (
            "plain",
            format!("web_count: 2\ndb_password: {secret}: oops\n"),
        ),
        (
            "tag",
            format!("web_count: 2\ndb_password: !!int {secret}\n"),
        ),
        ("next line", format!("db_password: {secret}\n  oops: 1\n")),
        ("flow", format!("{{db_password: {secret}, web_count: [1\n")),
    ] {
        let file = env.path("bad.yaml");
        std::fs::write(&file, &text).unwrap();
        for cmd in ["scenario:describe", "scenario:render"] {
            let run = env
                .run(&[cmd, "webapp/aws", "-f", file.to_str().unwrap()])
                .code(4);
            assert_hidden(&run, secret);
            assert!(
                run.stderr.contains("bad.yaml:"),
                "{case}: the error still says where: {}",
                run.stderr
            );
        }
    }

    // An error elsewhere keeps its snippet: only secrets are hidden.
    let file = env.path("other.yaml");
    std::fs::write(&file, "db_password: fine-password\nadmin_email: a: b\n").unwrap();
    let run = env
        .run(&[
            "scenario:describe",
            "webapp/aws",
            "-f",
            file.to_str().unwrap(),
        ])
        .code(4);
    assert!(
        run.stderr.contains("admin_email: a: b"),
        "the snippet of a non-secret line stays: {}",
        run.stderr
    );
}

#[test]
fn a_destroyed_formation_leaves_no_local_state() {
    let Aws { env, moto } = aws_env();
    // A template that embeds the secret in what it renders (here a tag), as templates may.
    let path = webapp_template(&env);
    let text = std::fs::read_to_string(&path).unwrap();
    let embedded = text.replacen(
        r#""Tags": [{"Key": "Name", "Value": "{{ parameters.app_name }}-web-{{ n }}"}]"#,
        r#""Tags": [{"Key": "Name", "Value": "{{ parameters.app_name }}-web-{{ n }}"}, {"Key": "Db", "Value": "{{ parameters.db_password }}"}]"#,
        1,
    );
    assert_ne!(embedded, text, "template changed upstream");
    std::fs::write(&path, embedded).unwrap();

    let secret = "Emb3dded-Secret";
    create_shop(&env, &["--set", &format!("db_password={secret}")]);
    let dir = env.home().join("state/formations/shop");
    let spec = std::fs::read_to_string(dir.join("spec.json")).unwrap();
    assert!(
        !spec.contains(secret),
        "spec.json holds the rendered secret"
    );
    // The stack was built from the real rendering, not the redacted copy.
    let instances = moto.aws(&["ec2", "describe-instances"]).unwrap();
    let tagged = instances["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap().iter())
        .flat_map(|i| i["Tags"].as_array().cloned().unwrap_or_default())
        .any(|t| t["Key"] == "Db" && t["Value"] == secret);
    assert!(
        tagged,
        "the instance carries the embedded value: {instances}"
    );
    let destroyed = env.run(&["destroy", "shop", "--yes"]);
    assert_hidden(&destroyed, secret);
    destroyed.ok();
    assert_eq!(moto.stack_status("shop"), None);
    assert!(
        !dir.exists(),
        "local state outlives the formation: {:?}",
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    let gone = env.run(&["-o", "json", "formation:list"]).ok();
    assert!(!gone.stdout.contains("shop"), "{}", gone.stdout);
    // Destroying again is harmless, and the name can be used again.
    env.run(&["destroy", "shop", "--yes"]).ok();
    create_shop(&env, &["--set", "db_password=Second-Life"]);
    env.run(&["destroy", "shop", "--yes"]).ok();
}
