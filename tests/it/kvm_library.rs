//! The image and ISO library end to end, on real hosts: a second libvirtd (`h2`,
//! `scripts/setup/host2.sh`, reached through its socket: a local copy) and this machine's
//! libvirtd over ssh on 127.0.0.1:2222 (`remote`: scp, and `sha256sum` over ssh). What is
//! checked is what exists afterwards: the copies on each host with `sha256sum`, the overlay's
//! backing file with `qemu-img info`, the ISO in the domain's XML.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kvm::{Scratch, make_iso};
use crate::kvm_hosts::{HOST2, domains, host2, host2_lock, sh};
use crate::support::{Env, Run, loopback_sshd_uri};

const TINY: &str = "/var/cache/nepho-test/images/tiny-guest.qcow2";

fn sha256(path: &Path) -> Option<String> {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    })
}

/// libvirtd answers and the tiny guest is built; else the test is skipped (outside CI).
fn have_libvirt() -> bool {
    let ok = sh("virsh -c qemu:///system version").0 && Path::new(TINY).is_file();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start libvirtd and build the tiny guest (scripts/test does)"
        );
        eprintln!("SKIPPED: libvirtd is not running or {TINY} is missing");
    }
    ok
}

/// A directory for the hosts' storage, readable by QEMU, removed at the end.
fn storage(tag: &str) -> Scratch {
    Scratch::new(&format!("lib-{tag}"))
}

fn host_yaml(name: &str, uri: &str, dir: &Path) -> String {
    format!(
        "  - name: {name}\n    uri: \"{uri}\"\n    cpus: 4\n    memory_mb: 2048\n    dir: {}\n",
        dir.display()
    )
}

fn write_cluster(env: &Env, hosts: &[String], storage: &Path) {
    let text = format!(
        "hosts:\n{}networks:\n  - name: default\nstorage:\n  dir: {}/vols\nimages:\n  tiny: {TINY}\ndomain_type: qemu\nplacement: first-fit\nready_timeout_s: 180\nshutdown_timeout_s: 20\n",
        hosts.concat(),
        storage.display()
    );
    std::fs::create_dir_all(env.home()).unwrap();
    std::fs::write(env.home().join("cluster.yaml"), text).unwrap();
}

fn library_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for kind in ["images", "isos"] {
        if let Ok(entries) = std::fs::read_dir(dir.join("_library").join(kind)) {
            for e in entries.flatten() {
                found.push(format!("{kind}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    found
}

/// Destroys the formation and removes its domains on both hosts, also when the test fails.
struct Cleanup<'a> {
    env: &'a Env,
    name: String,
    h2: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.env.run(&["destroy", &self.name, "--yes"]);
        for uri in ["qemu:///system", self.h2.as_str()] {
            for d in domains(uri, &format!("nepho-{}-", self.name)) {
                sh(&format!(
                    "virsh -c '{uri}' destroy {d}; virsh -c '{uri}' undefine {d}"
                ));
            }
        }
    }
}

/// Add an image and an ISO to a local and an ssh host; build a formation on the image,
/// attach the ISO by name; removal is refused while they are used, also after the machine
/// moved to the other host (where it uses that host's copies); a host added later and a
/// truncated copy are both put right by `cluster:sync`; removal then deletes every copy.
#[test]
fn kvm_library_images_and_isos_on_two_hosts() {
    let _lock = HOST2.lock().unwrap_or_else(|e| e.into_inner());
    let _host2 = host2_lock();
    if !have_libvirt() {
        return;
    }
    assert!(host2("start").0, "scripts/setup/host2.sh start failed");
    let (_, h2) = host2("uri");
    let remote = loopback_sshd_uri();

    let env = Env::new();
    env.run(&["cloudlet:install", "hello"]).ok();
    let store = storage("e2e");
    let s = &store.0;
    let dir = |host: &str| s.join(host);
    write_cluster(
        &env,
        &[
            host_yaml("h2", &h2, &dir("h2")),
            host_yaml("remote", &remote, &dir("remote")),
        ],
        s,
    );
    let name = format!("lib{}", std::process::id());
    let _cleanup = Cleanup {
        env: &env,
        name: name.clone(),
        h2: h2.clone(),
    };

    // An image, copied to both hosts, each copy checked here with sha256sum.
    let image = s.join("upload.qcow2");
    std::fs::copy(TINY, &image).unwrap();
    let image_sum = sha256(&image).unwrap();
    let added = env
        .run(&[
            "-o",
            "json",
            "image:add",
            "tinylib",
            image.to_str().unwrap(),
            "--os",
            "busybox",
        ])
        .ok()
        .json();
    assert_eq!(added["sha256"], image_sum.as_str(), "{added}");
    assert_eq!(added["kind"], "image");
    assert_eq!(added["os"], "busybox");
    let image_on = |host: &str| dir(host).join("_library/images/tinylib.qcow2");
    for host in ["h2", "remote"] {
        assert_eq!(
            added["hosts"][host].as_str(),
            Some(image_on(host).to_str().unwrap()),
            "{added}"
        );
        assert_eq!(sha256(&image_on(host)).as_deref(), Some(image_sum.as_str()));
        assert_eq!(library_files(&dir(host)), ["images/tinylib.qcow2"]);
    }
    let listed = env.run(&["-o", "json", "image:list"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "tinylib");
    let table = env.run(&["image:list"]).ok().stdout;
    assert!(
        table.contains("tinylib") && table.contains("h2,remote"),
        "{table}"
    );

    // An ISO, the same way.
    let iso = make_iso(s, "from the library");
    let iso_sum = sha256(&iso).unwrap();
    let added = env
        .run(&["-o", "json", "iso:add", "tools", iso.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(added["sha256"], iso_sum.as_str(), "{added}");
    let iso_on = |host: &str| dir(host).join("_library/isos/tools.iso");
    for host in ["h2", "remote"] {
        assert_eq!(sha256(&iso_on(host)).as_deref(), Some(iso_sum.as_str()));
    }
    assert_eq!(
        env.run(&["-o", "json", "iso:list"]).ok().json()[0]["name"],
        "tools"
    );

    // A formation on the library image: its boot disk is an overlay of h2's copy.
    let created = env
        .run(&[
            "-o",
            "json",
            "create",
            "hello",
            "--name",
            &name,
            "--set",
            "image=tinylib",
        ])
        .ok()
        .json();
    assert_eq!(created["status"], "succeeded", "{created}");
    assert_eq!(domains(&h2, &format!("nepho-{name}-")).len(), 1, "on h2");
    let overlay = dir("h2").join(&name).join("hello-disk0.qcow2");
    let info = sh(&format!(
        "qemu-img info -U --output=json '{}'",
        overlay.display()
    ))
    .1;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["backing-filename"].as_str(),
        Some(image_on("h2").to_str().unwrap()),
        "{info}"
    );
    let motd = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(motd.stdout.contains("Hello from nepho"), "{}", motd.stdout);

    // The ISO by its name: h2's own copy goes into the drive.
    let attached = env
        .run(&["-o", "json", "formation:attach-iso", &name, "tools"])
        .ok()
        .json();
    assert_eq!(
        attached["iso"].as_str(),
        Some(iso_on("h2").to_str().unwrap()),
        "{attached}"
    );
    let xml = sh(&format!("virsh -c '{h2}' dumpxml nepho-{name}-hello")).1;
    assert!(
        xml.contains(&format!("{}", iso_on("h2").display())),
        "the domain has the ISO: {xml}"
    );
    // An unknown name is neither a registered ISO nor a file.
    let unknown = env
        .run(&["formation:attach-iso", &name, "nosuchiso"])
        .code(3);
    assert!(unknown.stderr.contains("iso:list"), "{}", unknown.stderr);

    // Removal is refused while they are used, naming the formation and machine.
    let refused = env.run(&["image:remove", "tinylib"]).code(6);
    assert!(
        refused
            .stderr
            .contains(&format!("formation {name} machine hello (host h2)")),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("formation:destroy"),
        "{}",
        refused.stderr
    );
    let refused = env.run(&["iso:remove", "tools"]).code(6);
    assert!(
        refused
            .stderr
            .contains(&format!("formation {name} machine hello"))
            && refused.stderr.contains("detach-iso"),
        "{}",
        refused.stderr
    );
    // So is replacing the image under the machine, and another file under its name at all.
    let other = s.join("other.qcow2");
    sh(&format!(
        "qemu-img create -q -f qcow2 '{}' 64M",
        other.display()
    ));
    let other = other.to_str().unwrap();
    let refused = env.run(&["image:add", "tinylib", other]).code(6);
    assert!(refused.stderr.contains("--replace"), "{}", refused.stderr);
    let refused = env
        .run(&["image:add", "tinylib", other, "--replace"])
        .code(6);
    assert!(refused.stderr.contains("in use"), "{}", refused.stderr);
    for host in ["h2", "remote"] {
        assert_eq!(sha256(&image_on(host)).as_deref(), Some(image_sum.as_str()));
    }

    // Moved to the ssh host, the machine boots from that host's own copy of the image, and
    // its drive holds that host's copy of the ISO.
    let moved = env
        .run(&[
            "-o",
            "json",
            "cluster:migrate",
            &name,
            "hello",
            "--to",
            "remote",
        ])
        .ok()
        .json();
    assert_eq!(moved["status"], "moved", "{moved}");
    let overlay = dir("remote").join(&name).join("hello-disk0.qcow2");
    let info = sh(&format!(
        "qemu-img info -U --output=json '{}'",
        overlay.display()
    ))
    .1;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["backing-filename"].as_str(),
        Some(image_on("remote").to_str().unwrap()),
        "{info}"
    );
    let xml = sh(&format!(
        "virsh -c qemu:///system dumpxml nepho-{name}-hello"
    ))
    .1;
    assert!(
        xml.contains(&format!("{}", iso_on("remote").display())),
        "the domain has remote's ISO copy: {xml}"
    );
    let motd = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(motd.stdout.contains("Hello from nepho"), "{}", motd.stdout);
    let refused = env.run(&["image:remove", "tinylib"]).code(6);
    assert!(
        refused
            .stderr
            .contains(&format!("formation {name} machine hello (host remote)")),
        "{}",
        refused.stderr
    );

    env.run(&["destroy", &name, "--yes"]).ok();

    // A host joins the cluster; h2's image copy is damaged meanwhile. cluster:sync fixes both.
    write_cluster(
        &env,
        &[
            host_yaml("h2", &h2, &dir("h2")),
            host_yaml("remote", &remote, &dir("remote")),
            host_yaml("h1", "qemu:///system", &dir("h1")),
        ],
        s,
    );
    sh(&format!("truncate -s 1000 '{}'", image_on("h2").display()));
    let synced = env.run(&["-o", "json", "cluster:sync"]).ok().json();
    let status = |host: &str, item: &str| -> String {
        let h = synced
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .unwrap_or_else(|| panic!("no {host} in {synced}"));
        let i = h["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == item)
            .unwrap();
        i["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status("h1", "tinylib"), "copied", "{synced}");
    assert_eq!(status("h1", "tools"), "copied", "{synced}");
    assert_eq!(status("h2", "tinylib"), "copied", "{synced}");
    assert_eq!(status("h2", "tools"), "present", "{synced}");
    assert_eq!(status("remote", "tinylib"), "present", "{synced}");
    for host in ["h1", "h2", "remote"] {
        assert_eq!(sha256(&image_on(host)).as_deref(), Some(image_sum.as_str()));
        assert_eq!(sha256(&iso_on(host)).as_deref(), Some(iso_sum.as_str()));
    }
    let listed = env.run(&["-o", "json", "image:list"]).ok().json();
    assert_eq!(
        listed[0]["hosts"]["h1"].as_str(),
        Some(image_on("h1").to_str().unwrap())
    );
    // Nothing to do the second time.
    let again = env.run(&["cluster:sync"]).ok().stdout;
    assert!(again.contains("h1: 0 copied, 0 failed"), "{again}");

    // Removal now deletes every copy.
    env.run(&["image:remove", "tinylib"]).ok();
    env.run(&["-o", "json", "iso:remove", "tools"]).ok();
    for host in ["h1", "h2", "remote"] {
        assert!(library_files(&dir(host)).is_empty(), "{host}");
    }
    assert_eq!(
        env.run(&["-o", "json", "image:list"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(
        env.run(&["-o", "json", "iso:list"]).ok().json(),
        serde_json::json!([])
    );

    // Every change is in the cluster journal.
    let events = env.run(&["-o", "json", "cluster:events"]).ok().stdout;
    let done: Vec<String> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "library" && e["status"] == "succeeded")
        .map(|e| e["data"]["action"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        done,
        ["add", "add", "sync", "sync", "remove", "remove"],
        "{events}"
    );
    assert!(iso.is_file() && image.is_file(), "the user's files stay");
}

/// A failed add leaves no record and no copy anywhere (a host whose directory cannot be
/// made, a file of the wrong kind, a bad name); names the cluster file declares, and another
/// file under a taken name, are refused; `--replace` puts the new file on every host.
#[test]
fn kvm_library_failed_adds_leave_nothing() {
    if !have_libvirt() {
        return;
    }
    let env = Env::new();
    let store = storage("fail");
    let s = &store.0;
    let dir = |host: &str| s.join(host);
    // `hbad`'s directory would be under a regular file: mkdir fails there, after h1 got its copy.
    std::fs::write(s.join("notadir"), "a file").unwrap();
    let hosts_ok = vec![host_yaml("h1", "qemu:///system", &dir("h1"))];
    let mut hosts_bad = hosts_ok.clone();
    hosts_bad.push(host_yaml("hbad", "qemu:///system", &s.join("notadir/hbad")));
    write_cluster(&env, &hosts_bad, s);
    let image = s.join("img.qcow2");
    std::fs::copy(TINY, &image).unwrap();
    let image = image.to_str().unwrap();

    let failed = env.run(&["image:add", "good", image]).code(5);
    assert!(failed.stderr.contains("host hbad"), "{}", failed.stderr);
    assert_eq!(
        library_files(&dir("h1")),
        Vec::<String>::new(),
        "no copy, no .part left"
    );
    assert_eq!(
        env.run(&["-o", "json", "image:list"]).ok().json(),
        serde_json::json!([])
    );

    // Wrong kinds of files and bad names: nothing is copied.
    let raw = s.join("disk.raw");
    std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
    let raw = raw.to_str().unwrap();
    let refused = env.run(&["image:add", "rawdisk", raw]).code(4);
    assert!(refused.stderr.contains("not qcow2"), "{}", refused.stderr);
    let refused = env.run(&["iso:add", "notiso", raw]).code(4);
    assert!(refused.stderr.contains("not an ISO"), "{}", refused.stderr);
    let refused = env.run(&["image:add", "../up", image]).code(4);
    assert!(
        refused.stderr.contains("invalid image name"),
        "{}",
        refused.stderr
    );
    let refused = env
        .run(&["image:add", "missing", "/nonexistent/x.qcow2"])
        .code(4);
    assert!(refused.stderr.contains("cannot read"), "{}", refused.stderr);
    assert_eq!(library_files(&dir("h1")), Vec::<String>::new());

    // The cluster file's own `images:` names are taken.
    write_cluster(&env, &hosts_ok, s);
    let refused = env.run(&["image:add", "tiny", image]).code(6);
    assert!(refused.stderr.contains("images:"), "{}", refused.stderr);

    // Adding works now; the same file again is a no-op; another one needs --replace.
    env.run(&["image:add", "good", image]).ok();
    env.run(&["image:add", "good", image]).ok();
    let other = s.join("other.qcow2");
    sh(&format!(
        "qemu-img create -q -f qcow2 '{}' 64M",
        other.display()
    ));
    let other_sum = sha256(&other).unwrap();
    let other = other.to_str().unwrap();
    let refused = env.run(&["image:add", "good", other]).code(6);
    assert!(
        refused.stderr.contains("hint: pass --replace"),
        "{}",
        refused.stderr
    );
    let replaced = env
        .run(&["-o", "json", "image:add", "good", other, "--replace"])
        .ok()
        .json();
    assert_eq!(replaced["sha256"], other_sum.as_str());
    let copy: PathBuf = dir("h1").join("_library/images/good.qcow2");
    assert_eq!(sha256(&copy).as_deref(), Some(other_sum.as_str()));
    assert_eq!(library_files(&dir("h1")), ["images/good.qcow2"]);

    // A --replace that fails on one host leaves the old copies as they were.
    write_cluster(&env, &hosts_bad, s);
    env.run(&["image:add", "good", image, "--replace"]).code(5);
    assert_eq!(sha256(&copy).as_deref(), Some(other_sum.as_str()));
    assert_eq!(library_files(&dir("h1")), ["images/good.qcow2"]);
    let listed = env.run(&["-o", "json", "image:list"]).ok().json();
    assert_eq!(listed[0]["sha256"], other_sum.as_str());

    write_cluster(&env, &hosts_ok, s);
    env.run(&["image:remove", "good"]).ok();
    let gone = env.run(&["image:remove", "good"]).code(3);
    assert!(gone.stderr.contains("image:list"), "{}", gone.stderr);
    assert!(library_files(&dir("h1")).is_empty());
}

/// A home whose cluster file names `hosts` (name, URI), each keeping its files in
/// `<storage>/<name>`, and that storage.
fn cluster_of(tag: &str, hosts: &[(&str, &str)]) -> (Env, Scratch) {
    let env = Env::new();
    let store = storage(tag);
    let yaml: Vec<String> = hosts
        .iter()
        .map(|(name, uri)| host_yaml(name, uri, &store.0.join(name)))
        .collect();
    write_cluster(&env, &yaml, &store.0);
    (env, store)
}

/// The user's file to add: a copy of the tiny guest's image in `dir`.
fn tiny_upload(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(TINY, &path).unwrap();
    path
}

/// The run was refused (exit 6) because another nepho holds the entry.
fn refused_as_busy(run: Run) {
    let run = run.code(6);
    assert!(
        run.stderr
            .contains("being changed or used by another nepho"),
        "{}",
        run.stderr
    );
}

/// The hidden copies (`.NAME.EXT.WRITER.part`) in a host's library, of either kind.
fn parts(dir: &Path) -> Vec<String> {
    library_files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".part"))
        .collect()
}

/// A valid qcow2 of `size` (`256M`), allocated but not written: copying and checking it takes
/// seconds, long enough for a test to catch the add in the middle.
fn big_image(dir: &Path, name: &str, size: &str) -> PathBuf {
    let path = dir.join(name);
    assert!(
        sh(&format!(
            "qemu-img create -q -f qcow2 -o preallocation=falloc '{}' {size}",
            path.display()
        ))
        .0
    );
    path
}

/// A nepho run in the background, killed with SIGKILL when dropped (also when the test fails).
struct Running(std::process::Child);

impl Running {
    /// Waits for it to end: whether it succeeded, and its stderr.
    fn finish(&mut self) -> (bool, String) {
        let mut stderr = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
        }
        (self.0.wait().unwrap().success(), stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `image:add NAME FILE` and returns it once its copy is under way on `host_dir`.
fn add_caught_copying(env: &Env, name: &str, file: &Path, host_dir: &Path) -> Running {
    let before = parts(host_dir);
    let mut add = env
        .nepho()
        .args(["image:add", name, file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while parts(host_dir) == before {
        if let Some(status) = add.try_wait().unwrap() {
            panic!("image:add {name} ended ({status}) before it was seen copying");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "no copy of {name} started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Running(add)
}

/// `image:add` killed with SIGKILL in the middle of its copy leaves a `.part` on each host
/// (a local one and one over ssh); the next `image:add` (of another name) and `cluster:sync`
/// delete what the dead nepho left.
#[test]
fn kvm_library_a_killed_add_is_swept_by_the_next_add_and_sync() {
    if !have_libvirt() {
        return;
    }
    let remote = loopback_sshd_uri();
    let (env, store) = cluster_of("kill", &[("h1", "qemu:///system"), ("remote", &remote)]);
    let s = &store.0;
    let dir = |host: &str| s.join(host);
    let big = big_image(s, "big.qcow2", "256M");
    let small = tiny_upload(s, "small.qcow2");
    let small = small.to_str().unwrap();

    // Caught copying to the second host: the first one's checked copy waits for it.
    let kill_mid_copy = || {
        drop(add_caught_copying(&env, "big", &big, &dir("remote"))); // SIGKILL
        for host in ["h1", "remote"] {
            assert_eq!(
                parts(&dir(host)).len(),
                1,
                "the killed add left {host} its copy"
            );
        }
    };

    kill_mid_copy();
    env.run(&["image:add", "other", small]).ok();
    for host in ["h1", "remote"] {
        assert_eq!(library_files(&dir(host)), ["images/other.qcow2"], "{host}");
    }

    kill_mid_copy();
    env.run(&["cluster:sync"]).ok();
    for host in ["h1", "remote"] {
        assert_eq!(library_files(&dir(host)), ["images/other.qcow2"], "{host}");
    }
    let listed = env.run(&["-o", "json", "image:list"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "other");
}

/// Adds at the same time: another name is added while the first copies (and does not delete
/// the first one's copy in progress); the same name is refused, naming the other nepho, and
/// the entry is the first one's, with copies whose checksums match its record.
#[test]
fn kvm_library_concurrent_adds() {
    if !have_libvirt() {
        return;
    }
    let local = "qemu:///system";
    let (env, store) = cluster_of("concurrent", &[("h1", local), ("h2", local)]);
    let s = &store.0;
    let dir = |host: &str| s.join(host);
    let big = big_image(s, "big.qcow2", "1G");
    let big_sum = sha256(&big).unwrap();
    let small = tiny_upload(s, "small.qcow2");
    let small_sum = sha256(&small).unwrap();
    let small = small.to_str().unwrap();

    let mut first = add_caught_copying(&env, "alpha", &big, &dir("h1"));
    refused_as_busy(env.run(&["image:add", "alpha", small, "--replace"]));
    env.run(&["image:add", "beta", small]).ok();
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first add ended before the others: they did not run at the same time"
    );
    let (succeeded, stderr) = first.finish();
    assert!(succeeded, "{stderr}");

    let listed = env.run(&["-o", "json", "image:list"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["name"], "alpha", "{listed}");
    assert_eq!(listed[1]["name"], "beta", "{listed}");
    assert_eq!(listed[0]["sha256"], big_sum.as_str(), "{listed}");
    assert_eq!(listed[1]["sha256"], small_sum.as_str(), "{listed}");
    for entry in listed.as_array().unwrap() {
        for host in ["h1", "h2"] {
            let copy = entry["hosts"][host].as_str().unwrap();
            assert_eq!(
                sha256(Path::new(copy)).as_deref(),
                entry["sha256"].as_str(),
                "{host}: {copy}"
            );
        }
    }
    for host in ["h1", "h2"] {
        assert_eq!(
            library_files(&dir(host)),
            ["images/alpha.qcow2", "images/beta.qcow2"],
            "{host}: no copy left half-written"
        );
    }
}

/// `image:remove` while a formation is being built on the image (its overlay made, its domain
/// not yet defined) is refused: the build holds the entry until it is done.
#[test]
fn kvm_library_remove_during_a_create_is_refused() {
    if !have_libvirt() {
        return;
    }
    let (env, store) = cluster_of("create", &[("h1", "qemu:///system")]);
    env.run(&["cloudlet:install", "hello"]).ok();
    let h1 = store.0.join("h1");
    let image = tiny_upload(&store.0, "upload.qcow2");
    env.run(&["image:add", "tinylib", image.to_str().unwrap()])
        .ok();
    let copy = h1.join("_library/images/tinylib.qcow2");
    let name = format!("lr{}", std::process::id());
    let _cleanup = Cleanup {
        env: &env,
        name: name.clone(),
        h2: "qemu:///system".into(),
    };

    let create = env
        .nepho()
        .args(["-o", "json", "create", "hello", "--name", &name])
        .args(["--set", "image=tinylib"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let overlay = h1.join(&name).join("hello-disk0.qcow2");
    let mut nanny = None;
    crate::support::wait_until("the nanny", std::time::Duration::from_secs(120), || {
        nanny = env.nanny_pid(&name);
        nanny.is_some()
    });
    let nanny = nanny.unwrap();
    // Held still between its disks and its domain, the build is where removal used to slip in
    // (the domain follows the overlay within a fraction of a second: watched closely).
    let started = std::time::Instant::now();
    while !overlay.exists() {
        assert!(started.elapsed().as_secs() < 120, "no overlay made");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    unsafe { libc::kill(nanny, libc::SIGSTOP) };
    let defined = domains("qemu:///system", &format!("nepho-{name}-"));
    let refused = env.run(&["image:remove", "tinylib"]);
    // A sync only puts right copies in place: it runs beside the build.
    let synced = env.run(&["cluster:sync"]);
    unsafe { libc::kill(nanny, libc::SIGCONT) };
    assert!(defined.is_empty(), "caught after the domain was defined");
    refused_as_busy(refused);
    synced.ok();
    let created = create.wait_with_output().unwrap();
    let created: serde_json::Value = serde_json::from_slice(&created.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&created.stderr)));
    assert_eq!(created["status"], "succeeded", "{created}");
    assert!(copy.is_file(), "the machine's base image stays");
    let motd = env.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(motd.stdout.contains("Hello from nepho"), "{}", motd.stdout);
    // Once built, the machine is what keeps it.
    let refused = env.run(&["image:remove", "tinylib"]).code(6);
    assert!(refused.stderr.contains("in use by"), "{}", refused.stderr);
    env.run(&["destroy", &name, "--yes"]).ok();
    env.run(&["image:remove", "tinylib"]).ok();
    assert!(!copy.exists());
}
