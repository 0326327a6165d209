//! Generated files (JSON Schemas, shell completions, man page) must match the clap and serde
//! definitions. Regenerate with `NEPHO_BLESS=1 cargo test --test it generated`.

use std::path::Path;

use crate::support::repo_root;

fn check(path: &Path, expected: &[u8], stale: &mut Vec<String>) {
    if std::env::var_os("NEPHO_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, expected).unwrap();
        return;
    }
    match std::fs::read(path) {
        Ok(actual) if actual == expected => {}
        _ => stale.push(
            path.strip_prefix(repo_root())
                .unwrap_or(path)
                .display()
                .to_string(),
        ),
    }
}

fn finish(stale: Vec<String>) {
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run `NEPHO_BLESS=1 cargo test --test it generated`"
    );
}

#[test]
fn json_schemas_are_current() {
    let mut stale = Vec::new();
    for (name, schema) in nepho::output::schemas() {
        let mut text = serde_json::to_string_pretty(&schema).unwrap();
        text.push('\n');
        check(
            &repo_root().join("schema").join(name),
            text.as_bytes(),
            &mut stale,
        );
        if name == "registry-index.json" {
            check(
                &repo_root().join("registry/schema.json"),
                text.as_bytes(),
                &mut stale,
            );
        }
    }
    finish(stale);
}

#[test]
fn completions_and_man_page_are_current() {
    use clap_complete::Shell;
    let mut stale = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "nepho.bash"),
        (Shell::Zsh, "_nepho"),
        (Shell::Fish, "nepho.fish"),
    ] {
        let buf = nepho::cli::completion_script(shell);
        check(
            &repo_root().join("completions").join(file),
            &buf,
            &mut stale,
        );
    }
    let dir = repo_root().join("completions/man");
    let pages = nepho::cli::man_pages();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"nepho-cloudlet-install.1"), "{names:?}");
    for (name, page) in &pages {
        check(&dir.join(name), page, &mut stale);
    }
    // No page left over from a command that is gone.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !names.contains(&name.as_str()) {
            if std::env::var_os("NEPHO_BLESS").is_some() {
                std::fs::remove_file(entry.path()).unwrap();
            } else {
                stale.push(format!("completions/man/{name} (no such command)"));
            }
        }
    }
    finish(stale);
}

#[test]
fn registry_index_matches_its_schema_shape() {
    let text = std::fs::read_to_string(repo_root().join("registry/index.json")).unwrap();
    let index = nepho::registry::parse_index(text.as_bytes(), "registry/index.json").unwrap();
    for entry in &index.cloudlets {
        let name = entry
            .url
            .strip_prefix("bundled:")
            .expect("shipped entries are bundled");
        assert!(
            repo_root()
                .join("cloudlets")
                .join(name)
                .join("cloudlet.yaml")
                .is_file(),
            "{name}"
        );
    }
}
