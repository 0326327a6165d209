//! `placement: least-used` end to end on two libvirt hosts: this machine's libvirtd (`h1`)
//! and host2's (`h2`, `scripts/setup/host2.sh`). Both are the same physical machine, so their
//! measured usage is nearly equal: the test checks that `cluster:status` reads sane numbers
//! from both, and that the allocated part decides between them (h2 is first in the file and
//! has the most free memory, so first-fit and least-loaded would both pick it; least-used
//! sees half of h2's vCPUs taken by the machine and picks h1). Which host wins when the
//! measured usage differs is checked by the unit tests in `providers/kvm/src/place.rs`.

use crate::kvm_hosts::{Cleanup, HOST2, Setup, domains, host2_lock, two_hosts};

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
    let _lock = HOST2.lock().unwrap_or_else(|e| e.into_inner());
    let _host2 = host2_lock();
    let Some(Setup { env, h2, storage }) = two_hosts() else {
        return;
    };
    // The shared two-host cluster file, with more memory on h2 and least-used placement.
    // h1 is where other tests run machines at the same time: it is big, so that their load
    // hardly counts against it.
    let cluster = env.path("kvm/cluster.yaml");
    let mut text = std::fs::read_to_string(&cluster).unwrap();
    for (from, to) in [
        (
            "    memory_mb: 1024\n    dir:",
            "    memory_mb: 4096\n    dir:",
        ),
        ("placement: first-fit\n", "placement: least-used\n"),
    ] {
        assert!(text.contains(from), "{text}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&cluster, text).unwrap();
    let env = &env;
    let name = format!("lu{}", std::process::id());
    let _cleanup = Cleanup {
        env,
        name: name.clone(),
        h2: h2.clone(),
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
    let _ = env.run(&["destroy", &format!("{name}x"), "--yes"]);
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

    env.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains("qemu:///system", &name).is_empty());
    assert!(domains(&h2, &name).is_empty());
    let _ = std::fs::remove_dir_all(&storage);
}
