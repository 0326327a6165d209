//! Every input the fuzzers were seeded with or ever crashed on (fuzz/seeds, fuzz/regressions),
//! replayed through the same target code (nepho::fuzzing): none may panic.

use crate::support::repo_root;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = repo_root().join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            out.push((
                e.path().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            ));
        }
    }
    out
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no seeds for {target}");
    for (name, data) in all {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)));
        assert!(result.is_ok(), "{target}: {name} panics");
    }
}

#[test]
fn fuzz_inputs_replay_without_a_panic() {
    replay("yaml", nepho::fuzzing::yaml);
    replay("params", nepho::fuzzing::params);
    replay("registry", nepho::fuzzing::registry);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    replay("journal", |d| nepho::fuzzing::journal(d, &journal));
    let fixture = nepho::fuzzing::RenderFixture::new(&dir.path().join("render"));
    // Both forms: every kind of pattern, and the fuzz target's (first byte picks the kind).
    replay("render", |d| {
        nepho::fuzzing::render(d, &fixture);
        nepho::fuzzing::render_one(d, &fixture);
    });
}
