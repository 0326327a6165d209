//! Recovery: the provider is the truth. With the local state lost (another machine, a
//! reinstall) or corrupt, formations are still listed, described, reached and destroyed from
//! what the provider reports (stack tags, libvirt domain metadata), and a damaged journal still
//! shows the events after the damage.

use std::path::PathBuf;

use crate::formations::{Aws, aws_env};
use crate::kvm::{formation, kvm_env, sh};
use crate::support::Env;

fn state_dir(env: &Env, name: &str) -> PathBuf {
    env.home().join("state/formations").join(name)
}

fn listed(env: &Env, name: &str) -> Option<serde_json::Value> {
    let list = env.run(&["-o", "json", "formation:list"]).ok().json();
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
}

#[test]
fn cfn_lost_local_state_lists_describes_and_destroys_from_stack_tags() {
    let Aws { env, moto } = aws_env();
    env.run(&["formation:create", "hello/aws", "--name", "orphan"])
        .ok();
    std::fs::remove_dir_all(state_dir(&env, "orphan")).unwrap();

    let row = listed(&env, "orphan").expect("listed from its stack tags");
    assert_eq!(
        (
            row["provider"].as_str(),
            row["source"].as_str(),
            row["cloudlet"].as_str(),
            row["state"].as_str()
        ),
        (
            Some("aws"),
            Some("provider"),
            Some("hello"),
            Some("running")
        ),
        "{row}"
    );

    let described = env
        .run(&["-o", "json", "formation:describe", "orphan"])
        .ok();
    assert!(
        described
            .stderr
            .contains("no local record of orphan; using what aws reports"),
        "{}",
        described.stderr
    );
    let d = described.json();
    assert_eq!(d["provider"], "aws");
    assert_eq!(d["cloudlet"], "hello");
    assert_eq!(d["local_state"], serde_json::Value::Null);
    assert_eq!(d["details"]["outputs"]["SSHUser"], "admin", "{d}");

    let ssh = env
        .run(&["-o", "json", "ssh", "orphan", "--print", "--", "true"])
        .ok()
        .json();
    assert!(
        ssh["command"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("admin@")),
        "{ssh}"
    );

    let destroyed = env.run(&["-o", "json", "destroy", "orphan", "--yes"]).ok();
    assert!(
        destroyed.stderr.contains("using what aws reports"),
        "{}",
        destroyed.stderr
    );
    assert_eq!(destroyed.json()["status"], "succeeded");
    assert_eq!(moto.stack_status("orphan"), None, "stack left behind");
    assert!(
        moto.aws(&[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            "orphan"
        ])
        .is_none_or(|s| s["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"),
        "describe-stacks still finds the stack"
    );
    assert!(!state_dir(&env, "orphan").exists());
    assert_eq!(listed(&env, "orphan"), None);
    let again = env.run(&["destroy", "orphan", "--yes"]).ok();
    assert!(
        again.stderr.contains("nothing to destroy"),
        "{}",
        again.stderr
    );
}

#[test]
fn cfn_garbage_spec_or_record_still_destroys_and_leaves_nothing() {
    let Aws { env, moto } = aws_env();
    for (name, file) in [("junkspec", "spec.json"), ("junkrecord", "formation.json")] {
        env.run(&["formation:create", "hello/aws", "--name", name])
            .ok();
        std::fs::write(
            state_dir(&env, name).join(file),
            b"\x00\xff{\"name\": garbage\x9c",
        )
        .unwrap();
        let destroyed = env.run(&["-o", "json", "destroy", name, "--yes"]).ok();
        assert_eq!(destroyed.json()["status"], "succeeded", "{name}");
        if file == "formation.json" {
            assert!(
                destroyed
                    .stderr
                    .contains(&format!("the local record of {name} is unreadable")),
                "{}",
                destroyed.stderr
            );
        }
        assert_eq!(moto.stack_status(name), None, "{name}: stack left behind");
        assert!(!state_dir(&env, name).exists(), "{name}: local state left");
        assert_eq!(listed(&env, name), None);
    }
    // An unreadable record of a formation no provider has is cleared away, once.
    let dir = state_dir(&env, "ghost");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("formation.json"), b"\xffnot json").unwrap();
    let list = env.run(&["formation:list"]).ok();
    assert!(
        list.stderr
            .contains("the local record of ghost is unreadable"),
        "{}",
        list.stderr
    );
    let cleared = env.run(&["destroy", "ghost", "--yes"]).ok();
    assert!(
        cleared
            .stderr
            .contains("removed its unreadable local record"),
        "{}",
        cleared.stderr
    );
    assert!(!dir.exists());
}

#[test]
fn a_torn_line_and_a_non_utf8_line_do_not_hide_later_journal_events() {
    let Aws { env, moto: _moto } = aws_env();
    env.run(&["formation:create", "hello/aws", "--name", "torn"])
        .ok();
    let path = state_dir(&env, "torn").join("journal.ndjson");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    assert!(n >= 4, "{text}");
    // A crash tore the last-but-one event in half; the next write went on from there; and
    // a line of bytes that are not UTF-8 came before it.
    let mut bytes: Vec<u8> = Vec::new();
    for l in &lines[..n - 3] {
        bytes.extend_from_slice(l.as_bytes());
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(b"\xff\xfe\x00 \xc3(\n");
    bytes.extend_from_slice(lines[n - 3].as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(&lines[n - 2].as_bytes()[..lines[n - 2].len() / 2]);
    bytes.extend_from_slice(lines[n - 1].as_bytes());
    bytes.push(b'\n');
    std::fs::write(&path, bytes).unwrap();

    let out = env.run(&["-o", "json", "formation:events", "torn"]).ok();
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let last: serde_json::Value = serde_json::from_str(lines[n - 1]).unwrap();
    let third: serde_json::Value = serde_json::from_str(lines[n - 3]).unwrap();
    assert!(seqs.contains(&third["seq"].as_u64().unwrap()), "{seqs:?}");
    assert_eq!(events.last(), Some(&last), "{seqs:?}");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(seqs.len(), n - 1, "only the torn event is lost: {seqs:?}");
    assert!(
        out.stderr.contains("skipped 2 unreadable lines"),
        "{}",
        out.stderr
    );
    env.run(&["destroy", "torn", "--yes"]).ok();
}

/// KVM with the local state gone: listed from the domains' metadata, destroyed from it, and
/// nothing of the formation left in libvirt or on disk.
#[test]
fn kvm_lost_local_state_lists_and_destroys_from_domain_metadata() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "lost");
    env.run(&["create", "hello", "--name", &name]).ok();
    let domain = format!("nepho-{name}-hello");
    let disks = std::path::Path::new("/var/lib/nepho/kvm").join(&name);
    assert!(disks.is_dir(), "{} holds the disks", disks.display());
    std::fs::remove_dir_all(state_dir(&env, &name)).unwrap();

    let row = listed(&env, &name).expect("listed from libvirt metadata");
    assert_eq!(
        (
            row["provider"].as_str(),
            row["source"].as_str(),
            row["cloudlet"].as_str()
        ),
        (Some("kvm"), Some("provider"), Some("hello")),
        "{row}"
    );

    let destroyed = env.run(&["-o", "json", "destroy", &name, "--yes"]).ok();
    assert!(
        destroyed.stderr.contains("using what kvm reports"),
        "{}",
        destroyed.stderr
    );
    assert_eq!(destroyed.json()["status"], "succeeded");
    let domains = sh(
        "virsh",
        &["-c", "qemu:///system", "list", "--all", "--name"],
    );
    assert!(!domains.contains(&domain), "domain left behind: {domains}");
    for pool in sh(
        "virsh",
        &["-c", "qemu:///system", "pool-list", "--all", "--name"],
    )
    .split_whitespace()
    {
        let volumes = sh(
            "virsh",
            &["-c", "qemu:///system", "vol-list", "--pool", pool],
        );
        assert!(
            !volumes.contains(&name),
            "volume left in pool {pool}: {volumes}"
        );
    }
    crate::kvm::assert_nothing_left(&name);
    assert!(!state_dir(&env, &name).exists());
    assert_eq!(listed(&env, &name), None);
}
