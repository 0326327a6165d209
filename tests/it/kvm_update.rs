//! `formation:update` on machines that already run: the provisioner runs again when it (or
//! the environment or payload it is given) changed, not when nothing did, and a provisioner
//! that fails on update fails the update with its exit code and output while the machine keeps
//! running.

use std::time::Duration;

use crate::kvm::{assert_nothing_left, formation, kvm_env, ssh_until};
use crate::support::{git, write_files};

#[test]
fn kvm_update_runs_the_provisioner_again_only_when_it_changed() {
    let Some(env) = kvm_env() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "cloudlet.yaml",
                "name: reprov\nversion: 1.0.0\nsummary: a provisioner that says which greeting it ran with\n",
            ),
            (
                "scenarios/default.yaml",
                "summary: one machine\nprovider: kvm\npattern: m.yaml\nprovisioner: say.sh\nparameters:\n  greeting:\n    type: string\n    default: v1\n",
            ),
            (
                "patterns/kvm/m.yaml",
                "machines:\n  - name: m\n    cpus: 1\n    memory_mb: 256\n    image: tiny\n    disks:\n      - size_gb: 1\n    networks: [default]\n    env:\n      GREETING: {{ parameters.greeting }}\noutputs:\n  ssh_user: root\n",
            ),
            (
                "provisioners/say.sh",
                "#!/bin/sh\necho \"ran $GREETING\" >>/root/runs\necho \"provisioning with $GREETING\"\nif [ \"$GREETING\" = fail ]; then echo 'update-marker: cannot apply' >&2; exit 5; fi\n",
            ),
        ],
    );
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "reprov"]);
    env.run(&["cloudlet:install", dir.path().to_str().unwrap()])
        .ok();
    let (name, _teardown) = formation(&env, "reprov");
    env.run(&["formation:create", "reprov", "--name", &name])
        .ok();
    let runs = |env| ssh_until(env, &name, "cat /root/runs", Duration::from_secs(60));
    assert_eq!(runs(&env).trim(), "ran v1");

    // A changed environment: the provisioner runs again, with the new value.
    let update = env
        .run(&["formation:update", &name, "--set", "greeting=v2"])
        .ok();
    assert!(
        update.stderr.contains("provisioned again") || update.stdout.contains("provisioned again"),
        "{}{}",
        update.stdout,
        update.stderr
    );
    assert_eq!(runs(&env).trim(), "ran v1\nran v2");

    // Nothing changed: it does not run.
    env.run(&["formation:update", &name, "--set", "greeting=v2"])
        .ok();
    assert_eq!(runs(&env).trim(), "ran v1\nran v2");

    // A provisioner that fails on update fails the update, with its exit code and output; the
    // machine keeps running and a fixed update runs it again.
    let failed = env.run(&["formation:update", &name, "--set", "greeting=fail"]);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("exit 5") && failed.stderr.contains("update-marker"),
        "{}",
        failed.stderr
    );
    assert_eq!(runs(&env).trim(), "ran v1\nran v2\nran fail");
    env.run(&["formation:update", &name, "--set", "greeting=v3"])
        .ok();
    assert_eq!(runs(&env).trim(), "ran v1\nran v2\nran fail\nran v3");
    let events = env
        .run(&["-o", "json", "formation:events", &name])
        .ok()
        .stdout;
    assert!(events.contains("provisioned again"), "{events}");

    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}
