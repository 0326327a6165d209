//! `placement: least-used` end to end on two libvirt hosts: this machine's libvirtd (`h1`)
//! and host2's (`h2`, `scripts/setup/host2.sh`). Both are the same physical machine, so their
//! measured usage is nearly equal: the test checks that `cluster:status` reads sane numbers
//! from both, and that the allocated part decides between them (h2 is first in the file and
//! has the most free memory, so first-fit and least-loaded would both pick it; least-used
//! sees half of h2's vCPUs taken by the machine and picks h1). Which host wins when the
//! measured usage differs is checked by the unit tests in `providers/kvm/src/place.rs`.

use std::path::PathBuf;

use crate::kvm_hosts::{HOST2, domains, host2, host2_lock, sh};
use crate::support::Env;

/// This machine's physical memory in MiB, as the kernel counts it.
fn mem_total_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// Removes the formation and its files, also when the test failed.
struct Cleanup<'a> {
    env: &'a Env,
    name: String,
    h2: String,
    storage: PathBuf,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.env.run(&["destroy", &self.name]);
        for uri in ["qemu:///system", self.h2.as_str()] {
            for d in domains(uri, &self.name) {
                sh(&format!(
                    "virsh -c '{uri}' destroy {d}; virsh -c '{uri}' undefine {d}"
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

fn host<'v>(status: &'v serde_json::Value, name: &str) -> &'v serde_json::Value {
    status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name}: {status}"))
}

#[test]
fn kvm_least_used_placement_over_two_measured_hosts() {
    let libvirt =
        sh("command -v virsh && command -v libvirtd && virsh -c qemu:///system version").0;
    if !libvirt {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install and start libvirtd (scripts/test does)"
        );
        eprintln!("SKIPPED: libvirt is not installed or libvirtd is not running");
        return;
    }
    let _lock = HOST2.lock().unwrap_or_else(|e| e.into_inner());
    let _host2 = host2_lock();
    let (ok, _) = host2("start");
    assert!(ok, "scripts/setup/host2.sh start failed");
    let (_, h2) = host2("uri");

    let mut env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let storage: PathBuf = tempfile::Builder::new()
        .prefix("nepho-it-placement.")
        .tempdir_in("/var/tmp")
        .unwrap()
        .keep();
    std::fs::set_permissions(
        &storage,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let s = storage.display();
    // h1 is where other tests run machines at the same time: it is made big, so that their
    // load hardly counts against it.
    let cluster = format!(
        "hosts:\n  - name: h2\n    uri: '{h2}'\n    cpus: 2\n    memory_mb: 4096\n    dir: {s}/h2\n  - name: h1\n    uri: qemu:///system\n    cpus: 64\n    memory_mb: 65536\n    dir: {s}/h1\nnetworks:\n  - name: default\nstorage:\n  dir: {s}/vols\nimages:\n  tiny: /var/cache/nepho-test/images/tiny-guest.qcow2\ndomain_type: qemu\nplacement: least-used\nready_timeout_s: 180\nshutdown_timeout_s: 20\n"
    );
    let cluster_file = env.path("kvm-cluster.yaml");
    std::fs::write(&cluster_file, cluster).unwrap();
    env.vars
        .push(("NEPHO_CLUSTER".into(), cluster_file.display().to_string()));
    let env = &env;
    let name = format!("lu{}", std::process::id());
    let _cleanup = Cleanup {
        env,
        name: name.clone(),
        h2: h2.clone(),
        storage: storage.clone(),
    };

    // Both hosts measured, with numbers that make sense for this machine.
    let status = env.run(&["-o", "json", "cluster:status"]).ok().json();
    for h in ["h1", "h2"] {
        let row = host(&status, h);
        assert_eq!(row["reachable"], true, "{status}");
        let measured = &row["measured"];
        let total = measured["memory_total_mb"].as_u64().unwrap_or(0);
        let used = measured["memory_used_mb"].as_u64().unwrap_or(0);
        let busy = measured["cpu_busy_percent"].as_f64().unwrap_or(-1.0);
        assert_eq!(total, mem_total_mb(), "{h}: {status}");
        assert!(0 < used && used < total, "{h}: {status}");
        assert!((0.0..=100.0).contains(&busy), "{h}: {status}");
    }
    let table = env.run(&["cluster:status"]).ok().stdout;
    assert!(
        table.contains("MEMORY IN USE") && table.contains("CPU BUSY"),
        "{table}"
    );
    assert!(
        table.contains(&format!("/{} MiB", mem_total_mb())) && table.contains('%'),
        "{table}"
    );

    // A machine no host can take: the explanation names every host, with its measurements.
    let refused = env.run(&[
        "create",
        "hello",
        "--name",
        &format!("{name}x"),
        "--set",
        "memory_mb=100000",
    ]);
    let _ = env.run(&["destroy", &format!("{name}x")]);
    assert_ne!(refused.code, 0);
    let text = format!("{}{}", refused.stdout, refused.stderr);
    assert!(text.contains("no host can take machine hello"), "{text}");
    assert!(
        text.contains("host h2: 2 of 2 vCPUs free, 4096 of 4096 MiB free (measured: "),
        "{text}"
    );
    assert!(text.contains("host h1: "), "{text}");

    // h2 comes first and has all its memory free; least-used still picks h1, where the
    // machine's vCPU is 1/64 of the host instead of 1/2.
    let created = env
        .run(&["-o", "json", "create", "hello", "--name", &name])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    assert_eq!(domains("qemu:///system", &name).len(), 1, "on h1");
    assert!(domains(&h2, &name).is_empty(), "not on h2");
    let status = env.run(&["-o", "json", "cluster:status"]).ok().json();
    let on_h1 = host(&status, "h1")["machines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["formation"] == name.as_str());
    assert!(on_h1, "{status}");

    env.run(&["destroy", &name]).ok();
    assert!(domains("qemu:///system", &name).is_empty());
    assert!(domains(&h2, &name).is_empty());
}
