//! The KVM provider on a real distribution image: Debian 12 built from Debian's packages by
//! scripts/images/build-debian-image.sh, whose real cloud-init (not the tiny guest's shortcut)
//! reads nepho's NoCloud seed — user, key, hostname, network — and runs the provisioner.

use std::path::PathBuf;
use std::time::Duration;

use crate::kvm::{assert_nothing_left, formation, kvm_env, ssh_until};
use crate::support::{Env, edit_cluster, git, write_files};

/// The cached Debian image, or `None` (skip) outside CI when it was not built.
fn debian_image() -> Option<PathBuf> {
    let image = std::env::var_os("NEPHO_TEST_DEBIAN_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/nepho-test/images/debian-12.qcow2"));
    if image.is_file() {
        return Some(image);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must build the Debian image (scripts/test runs scripts/images/build-debian-image.sh)"
    );
    eprintln!("SKIPPED: no {}", image.display());
    None
}

/// A KVM env whose cluster file also offers the Debian image as `debian-12`.
fn debian_env() -> Option<Env> {
    let image = debian_image()?;
    let env = kvm_env()?;
    edit_cluster(
        &env,
        "images:\n",
        &format!("images:\n  debian-12: {}\n", image.display()),
    );
    // A whole distribution boots under TCG on a busy 2-core machine: minutes, not seconds.
    edit_cluster(&env, "ready_timeout_s: 300", "ready_timeout_s: 900");
    Some(env)
}

const DEBIAN: [&str; 6] = [
    "--set",
    "image=debian-12",
    "--set",
    "memory_mb=768",
    "--set",
    "disk_gb=4",
];

/// Create waits for cloud-init to run the provisioner (not just for ssh); the seed's key,
/// hostname and network are cloud-init's doing; stop/start keeps the machine (cloud-init does
/// not provision twice); an update with a new greeting runs the provisioner again; destroy
/// leaves nothing.
#[test]
fn kvm_debian_cloud_init_runs_the_provisioner_then_stop_start_update_and_destroy() {
    let Some(env) = debian_env() else { return };
    let (name, _teardown) = formation(&env, "deb");
    let mut args = vec!["formation:create", "hello", "--name", &name];
    args.extend(DEBIAN);
    env.run(&args).ok();

    // The provisioner had already finished when create returned.
    let facts = ssh_until(
        &env,
        &name,
        "cat /etc/motd; hostname; cloud-init status; test -f /run/nepho/provision.rc && cat /run/nepho/provision.rc; ip -4 -o addr show eth0; grep -c . /var/log/nepho-provision.log",
        Duration::from_secs(60),
    );
    assert!(facts.contains("Hello from nepho"), "{facts}");
    assert!(
        facts.lines().nth(1) == Some("hello"),
        "hostname from the seed: {facts}"
    );
    assert!(
        facts.contains("status: done"),
        "cloud-init finished: {facts}"
    );
    assert!(facts.contains("inet "), "DHCP on eth0: {facts}");
    let system = ssh_until(
        &env,
        &name,
        "systemctl is-system-running || true; grep -o 'DataSourceNoCloud' /run/cloud-init/status.json | head -1",
        Duration::from_secs(30),
    );
    assert!(system.contains("DataSourceNoCloud"), "{system}");

    env.run(&["formation:stop", &name]).ok();
    env.run(&["formation:start", &name]).ok();
    let again = ssh_until(
        &env,
        &name,
        "cat /proc/uptime; grep -c 'hello: provisioned' /var/log/nepho-provision.log",
        Duration::from_secs(300),
    );
    let uptime: f64 = again
        .split_whitespace()
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or(f64::MAX);
    assert!(uptime < 600.0, "the machine rebooted: {again}");

    // `formation:update` with a new greeting runs the provisioner again over ssh (cloud-init
    // ran it at first boot only), with the new environment.
    let mut update = vec![
        "formation:update",
        &name,
        "--set",
        "greeting=Updated by nepho",
    ];
    update.extend(DEBIAN);
    env.run(&update).ok();
    let motd = ssh_until(
        &env,
        &name,
        "cat /etc/motd; grep -c 'hello: provisioned' /var/log/nepho-provision.log",
        Duration::from_secs(60),
    );
    assert!(motd.starts_with("Updated by nepho"), "{motd}");

    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);

    // Made again under the same name: the same MAC, but Debian's DHCP client id is new at each
    // first boot, so the network holds a second lease beside the old one (which lives on for an
    // hour). The create finds the machine at its new address, not the old lease's.
    env.run(&args).ok();
    let facts = ssh_until(
        &env,
        &name,
        "cat /run/nepho/provision.rc",
        Duration::from_secs(60),
    );
    assert_eq!(facts.trim(), "0", "{facts}");
    env.run(&["destroy", &name, "--yes"]).ok();
    assert_nothing_left(&name);
}

/// A provisioner that fails makes the create fail with its exit code and output in the error,
/// and the formation is rolled back.
#[test]
fn kvm_debian_failing_provisioner_fails_the_create_and_rolls_back() {
    let Some(env) = debian_env() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "cloudlet.yaml",
                "name: failing\nversion: 1.0.0\nsummary: a provisioner that fails\n",
            ),
            (
                "scenarios/default.yaml",
                "summary: one Debian machine\nprovider: kvm\npattern: m.yaml\nprovisioner: fail.sh\n",
            ),
            (
                "patterns/kvm/m.yaml",
                "machines:\n  - name: m\n    cpus: 1\n    memory_mb: 768\n    image: debian-12\n    disks:\n      - size_gb: 4\n    networks: [default]\noutputs:\n  ssh_user: root\n",
            ),
            (
                "provisioners/fail.sh",
                "#!/bin/sh\necho \"preparing $(hostname)\"\necho 'disk-check-marker: no space for the cache' >&2\nexit 3\n",
            ),
        ],
    );
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "failing"]);
    env.run(&["cloudlet:install", dir.path().to_str().unwrap()])
        .ok();
    let (name, _teardown) = formation(&env, "debf");
    let failed = env.run(&["formation:create", "failing", "--name", &name]);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("exit 3") && failed.stderr.contains("disk-check-marker"),
        "the provisioner's exit code and output are in the error: {}",
        failed.stderr
    );
    assert_nothing_left(&name);
}
