//! The Vagrant provider end to end: the `nepho` binary drives the real `vagrant` +
//! vagrant-libvirt against libvirtd, booting the repo's tiny guest as a Vagrant box
//! (scripts/images/make-vagrant-box.sh), and once the Debian 12 test image as one
//! (scripts/images/make-debian-vagrant-box.sh). Each test has its own VAGRANT_HOME and box
//! name, names its formations `vg…` (vagrant-libvirt names domains `<formation>_<machine>`),
//! and removes what it made, also when it fails. The tests run one at a time: the machine has 2 cores and
//! no KVM acceleration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::{Env, Run, git, repo_root, wait_until, write_files};

const URI: &str = "qemu:///system";
const BOX_FILE: &str = "/var/cache/nepho-test/images/nepho-tiny-libvirt.box";
const DEBIAN_BOX_FILE: &str = "/var/cache/nepho-test/images/nepho-debian-12-libvirt.box";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn virsh(args: &[&str]) -> String {
    let out = Command::new("virsh")
        .args(["-c", URI])
        .args(args)
        .output()
        .expect("virsh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Domains whose names start with `prefix`.
fn domains(prefix: &str) -> Vec<String> {
    virsh(&["list", "--all", "--name"])
        .lines()
        .map(str::trim)
        .filter(|d| d.starts_with(prefix))
        .map(String::from)
        .collect()
}

fn volumes(prefix: &str) -> Vec<String> {
    virsh(&["vol-list", "default"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| v.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// Why the Vagrant tests cannot run here with `box_file`, if they cannot. In CI they must run.
fn missing_prerequisite(box_file: &str) -> Option<String> {
    let vagrant = Command::new("vagrant").arg("--version").output();
    let reason = if !vagrant.is_ok_and(|o| o.status.success()) {
        Some("vagrant is not installed (scripts/setup/packages.sh)".to_string())
    } else if !Command::new("virsh")
        .args(["-c", URI, "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("libvirtd is not running (scripts/setup/daemons.sh)".to_string())
    } else if !Path::new(box_file).is_file() {
        let script = if box_file == DEBIAN_BOX_FILE {
            "make-debian-vagrant-box.sh"
        } else {
            "make-vagrant-box.sh"
        };
        Some(format!("{box_file} is missing (scripts/images/{script})"))
    } else {
        None
    };
    if let Some(r) = &reason {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide vagrant, libvirtd and the box (scripts/test does): {r}"
        );
        eprintln!("SKIPPED: {r}");
    }
    reason
}

/// One test's world: nepho home, VAGRANT_HOME, a unique box name; cleans up on drop.
struct Vg {
    env: Env,
    box_name: String,
    box_file: &'static str,
    formations: Vec<String>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Vg {
    /// With the tiny box.
    fn new(tag: &str) -> Option<Vg> {
        Vg::with_box(tag, "tiny", BOX_FILE)
    }

    fn with_box(tag: &str, kind: &str, box_file: &'static str) -> Option<Vg> {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        if missing_prerequisite(box_file).is_some() {
            return None;
        }
        let mut env = Env::new();
        let vagrant_home = env.path("vagrant.d");
        env.vars
            .push(("VAGRANT_HOME".into(), vagrant_home.display().to_string()));
        env.vars
            .push(("NEPHO_LIBVIRT_DRIVER".into(), "qemu".into()));
        Some(Vg {
            env,
            box_name: format!("vg-{kind}-{}-{tag}", std::process::id()),
            box_file,
            formations: Vec::new(),
            _serial: serial,
        })
    }

    fn name(&mut self, tag: &str) -> String {
        let name = format!("vg{tag}{}", std::process::id());
        self.formations.push(name.clone());
        name
    }

    fn box_args(&self) -> Vec<String> {
        vec![
            "--set".into(),
            format!("box={}", self.box_name),
            "--set".into(),
            format!("box_url={}", self.box_file),
        ]
    }

    fn run(&self, args: &[&str]) -> Run {
        self.env.run(args)
    }

    fn project(&self, name: &str) -> PathBuf {
        self.env
            .home()
            .join("state/formations")
            .join(name)
            .join("work")
            .join(name)
    }

    fn journal(&self, name: &str) -> Vec<serde_json::Value> {
        self.env.journal(name)
    }
}

impl Vg {
    /// Starts a detached create and kill -9s its nanny once vagrant-libvirt defined the domain.
    fn create_and_kill_nanny_mid_up(&self, name: &str) {
        let mut args = vec!["create", "hello/vagrant", "--name", name, "--detach"];
        let box_args = self.box_args();
        args.extend(box_args.iter().map(String::as_str));
        self.run(&args).ok();
        wait_until(
            "vagrant-libvirt to define the domain",
            Duration::from_secs(120),
            || !domains(&format!("{name}_")).is_empty(),
        );
        self.kill_nanny(name);
    }

    fn kill_nanny(&self, name: &str) {
        self.env.kill_nanny(name);
    }
}

impl Vg {
    /// The formation's state in `formation:list` and its first machine's status in
    /// `formation:describe`.
    fn states(&self, name: &str) -> (String, String) {
        let started = Instant::now();
        let list = self.run(&["-o", "json", "formation:list"]).ok().json();
        eprintln!("formation:list: {:.2} s", started.elapsed().as_secs_f64());
        let row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_default();
        let described = self
            .run(&["-o", "json", "formation:describe", name])
            .ok()
            .json();
        let status = &described["details"]["resources"][0]["status"];
        (
            row["state"].as_str().unwrap_or_default().to_string(),
            status.as_str().unwrap_or_default().to_string(),
        )
    }

    /// `vagrant status --machine-readable` in the formation's project, run by hand.
    fn vagrant_status(&self, name: &str) -> Vec<(String, String)> {
        let out = Command::new("vagrant")
            .args(["status", "--machine-readable"])
            .current_dir(self.project(name))
            .envs(self.env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .output()
            .expect("vagrant status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.len() >= 4 && f[2] == "state" && !f[1].is_empty())
                    .then(|| (f[1].to_string(), f[3].to_string()))
            })
            .collect()
    }
}

impl Drop for Vg {
    fn drop(&mut self) {
        for name in self.formations.clone() {
            if self.project(&name).exists() {
                let _ = self.env.run(&["destroy", &name, "--yes"]);
            }
            for d in domains(&format!("{name}_")) {
                virsh(&["destroy", &d]);
                virsh(&["undefine", &d, "--remove-all-storage"]);
            }
            for v in volumes(&format!("{name}_")) {
                virsh(&["vol-delete", "--pool", "default", &v]);
            }
        }
        self.remove_box_volume();
    }
}

impl Vg {
    /// The box image vagrant-libvirt uploaded into pool `default` (`vagrant destroy` keeps it
    /// for the next machine of that box).
    fn remove_box_volume(&self) {
        for v in volumes(&self.box_name) {
            virsh(&["vol-delete", "--pool", "default", &v]);
        }
    }
}

fn messages(journal: &[serde_json::Value]) -> Vec<String> {
    journal
        .iter()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect()
}

/// The main job: add the missing box from a local .box file, `vagrant up`, ssh in with the
/// system ssh, list/describe, stop/start, update, destroy; nothing left behind.
#[test]
fn vagrant_hello_create_ssh_update_destroy() {
    let Some(mut vg) = Vg::new("hello") else {
        return;
    };
    let name = vg.name("hello");
    vg.run(&["cloudlet:install", "hello"]).ok();
    // Settings through `register vagrant` (the environment's VAGRANT_HOME still wins).
    let registered = vg
        .run(&[
            "-o",
            "json",
            "register",
            "vagrant",
            "--libvirt-driver",
            "qemu",
        ])
        .ok()
        .json();
    assert_eq!(registered["settings"]["default_provider"], "libvirt");

    let started = Instant::now();
    let mut args = vec!["-o", "json", "create", "hello/vagrant", "--name", &name];
    let box_args = vg.box_args();
    args.extend(box_args.iter().map(String::as_str));
    let created = vg.run(&args).ok().json();
    eprintln!("vagrant create: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(created["status"], "succeeded", "{created}");
    let log = messages(&vg.journal(&name));
    for expected in [
        "add box",
        "Uploading base box image as volume into Libvirt storage",
        "waiting for machine to boot",
        "hello: provisioned",
    ] {
        assert!(
            log.iter().any(|m| m.contains(expected)),
            "no event with {expected:?} in {log:#?}"
        );
    }
    assert_eq!(domains(&format!("{name}_")), [format!("{name}_default")]);

    let started = Instant::now();
    let ssh = vg
        .run(&["ssh", &name, "--", "hostname; cat /etc/motd"])
        .ok();
    eprintln!("formation:ssh: {:.2} s", started.elapsed().as_secs_f64());
    assert!(ssh.stdout.contains(&name), "{}", ssh.stdout);
    assert!(ssh.stdout.contains("Hello from nepho"), "{}", ssh.stdout);

    // The Vagrantfile's `# nepho:output url=http://${default.address}/`, for `open`.
    let described = vg
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .json();
    // "vagrant@192.168.121.x:22", from `vagrant ssh-config`.
    let ssh_to = described["details"]["outputs"]["default.ssh"]
        .as_str()
        .unwrap();
    let address = ssh_to.split(['@', ':']).nth(1).unwrap();
    assert!(address.starts_with("192.168.121."), "{described}");
    assert_eq!(
        described["details"]["outputs"]["url"],
        format!("http://{address}/")
    );
    let url = vg.run(&["open", &name, "--print"]).ok().stdout;
    assert_eq!(url.trim(), format!("http://{address}/"));

    let list = vg.run(&["-o", "json", "formation:list"]).ok().json();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["state"], "running", "{list}");
    let described = vg
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .json();
    assert_eq!(
        described["details"]["resources"][0]["resource"], "default",
        "{described}"
    );
    // list/describe read the state from libvirt, not `vagrant status`: the same answer.
    assert_eq!(vg.states(&name), ("running".into(), "running".into()));
    assert_eq!(
        vg.vagrant_status(&name),
        [("default".into(), "running".into())]
    );

    vg.run(&["formation:stop", &name]).ok();
    assert_eq!(
        virsh(&["domstate", &format!("{name}_default")]).trim(),
        "shut off"
    );
    assert_eq!(vg.states(&name), ("stopped".into(), "shutoff".into()));
    assert_eq!(
        vg.vagrant_status(&name),
        [("default".into(), "shutoff".into())]
    );
    vg.run(&["formation:start", &name]).ok();
    assert_eq!(
        virsh(&["domstate", &format!("{name}_default")]).trim(),
        "running"
    );
    assert_eq!(vg.states(&name), ("running".into(), "running".into()));

    vg.run(&[
        "formation:update",
        &name,
        "--set",
        "greeting=Updated by nepho",
    ])
    .ok();
    let motd = vg.run(&["ssh", &name, "--", "cat", "/etc/motd"]).ok();
    assert!(motd.stdout.contains("Updated by nepho"), "{}", motd.stdout);

    vg.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(&format!("{name}_")).is_empty());
    assert!(volumes(&format!("{name}_")).is_empty());
    assert!(!vg.project(&name).exists(), "project directory left behind");
}

/// The hello scenario on a real distribution: the Debian 12 test image as a Vagrant box
/// (scripts/images/make-debian-vagrant-box.sh) — systemd, OpenSSH, real bash and sudo. The
/// shell provisioner runs through sudo; cloud-init, with no seed under vagrant-libvirt, falls
/// back to datasource None (DHCP on eth0, host keys of the machine's own) and finishes.
#[test]
fn vagrant_debian_box_create_ssh_destroy() {
    let Some(mut vg) = Vg::with_box("deb", "debian", DEBIAN_BOX_FILE) else {
        return;
    };
    let name = vg.name("deb");
    vg.run(&["cloudlet:install", "hello"]).ok();
    let started = Instant::now();
    let mut args = vec![
        "-o",
        "json",
        "create",
        "hello/vagrant",
        "--name",
        &name,
        // A whole distribution under TCG on a busy 2-core machine: minutes to ssh.
        "--set",
        "memory_mb=768",
        "--set",
        "boot_timeout=900",
    ];
    let box_args = vg.box_args();
    args.extend(box_args.iter().map(String::as_str));
    let created = vg.run(&args).ok().json();
    eprintln!(
        "vagrant create (Debian box): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(created["status"], "succeeded", "{created}");
    let log = messages(&vg.journal(&name));
    assert!(
        log.iter().any(|m| m.contains("hello: provisioned")),
        "{log:#?}"
    );
    assert_eq!(domains(&format!("{name}_")), [format!("{name}_default")]);

    let started = Instant::now();
    let facts = vg
        .run(&[
            "ssh",
            &name,
            "--",
            "cat /etc/motd; stat -c %U /etc/motd; hostname; . /etc/os-release; echo \"$ID $VERSION_ID\"; \
             timeout 600 cloud-init status --wait | tail -n 1; \
             grep -o DataSourceNone /run/cloud-init/status.json | head -n 1; \
             ls /etc/ssh/ssh_host_ed25519_key.pub; ip -4 -o addr show eth0; id -un; sudo -n id -un",
        ])
        .ok()
        .stdout;
    eprintln!("formation:ssh: {:.1} s", started.elapsed().as_secs_f64());
    let lines: Vec<&str> = facts.lines().collect();
    assert_eq!(
        lines.get(..5),
        Some(
            &[
                "Hello from nepho",
                "root",
                name.as_str(),
                "debian 12",
                "status: done"
            ][..]
        ),
        "greeting written by the provisioner through sudo, Vagrant's hostname, Debian 12, \
         cloud-init done: {facts}"
    );
    assert!(
        facts.contains("\nDataSourceNone\n"),
        "cloud-init fell back to datasource None: {facts}"
    );
    assert!(
        facts.contains("/etc/ssh/ssh_host_ed25519_key.pub"),
        "host keys made at first boot: {facts}"
    );
    assert!(
        facts.contains(" inet 192.168.121."),
        "DHCP on eth0: {facts}"
    );
    assert!(facts.ends_with("vagrant\nroot\n"), "{facts}");

    vg.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(&format!("{name}_")).is_empty());
    assert!(volumes(&format!("{name}_")).is_empty());
    assert!(!vg.project(&name).exists(), "project directory left behind");
    // What vagrant keeps for the next machine of the box, the test removes.
    assert!(!volumes(&vg.box_name).is_empty(), "box volume was uploaded");
    vg.remove_box_volume();
    assert!(volumes(&vg.box_name).is_empty());
}

/// A two-machine Vagrantfile (webapp: db + web-1), with the secret reaching the db
/// provisioner through NEPHO_db_password and never the journal.
#[test]
fn vagrant_two_machines() {
    let Some(mut vg) = Vg::new("multi") else {
        return;
    };
    let name = vg.name("multi");
    vg.run(&["cloudlet:install", "webapp"]).ok();
    let mut args = vec![
        "create",
        "webapp/vagrant",
        "--name",
        &name,
        "--set",
        "web_count=1",
        "--set",
        "db_password=vg-s3cret-pw",
    ];
    let box_args = vg.box_args();
    args.extend(box_args.iter().map(String::as_str));
    let started = Instant::now();
    vg.run(&args).ok();
    eprintln!(
        "vagrant create (2 machines): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut found = domains(&format!("{name}_"));
    found.sort();
    assert_eq!(found, [format!("{name}_db"), format!("{name}_web-1")]);
    // describe lists the machines as `vagrant status` does: same order, same states.
    let described = vg
        .run(&["-o", "json", "formation:describe", &name])
        .ok()
        .json();
    let machines: Vec<(String, String)> = described["details"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resource"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(machines, vg.vagrant_status(&name), "{described}");
    assert_eq!(
        machines,
        [
            ("db".to_string(), "running".to_string()),
            ("web-1".to_string(), "running".to_string())
        ]
    );
    // Without a machine, ssh goes to the primary one (web-1), as `vagrant ssh` does.
    let web = vg.run(&["ssh", &name, "--", "hostname"]).ok();
    assert!(web.stdout.contains("webapp-web-1"), "{}", web.stdout);
    let db = vg
        .run(&["ssh", &name, "db", "--", "cat", "/var/lib/webapp/db.conf"])
        .ok();
    assert!(db.stdout.contains("password set"), "{}", db.stdout);
    let journal = std::fs::read_to_string(
        vg.env
            .home()
            .join("state/formations")
            .join(&name)
            .join("journal.ndjson"),
    )
    .unwrap();
    assert!(!journal.contains("vg-s3cret-pw"), "secret in the journal");
    vg.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(&format!("{name}_")).is_empty());
}

/// kill -9 of the nanny while `vagrant up` runs, then destroy: no domain, no volume, no
/// vagrant left running.
#[test]
fn vagrant_killed_nanny_then_destroy_leaves_no_domain() {
    let Some(mut vg) = Vg::new("kill") else {
        return;
    };
    let name = vg.name("kill");
    vg.run(&["cloudlet:install", "hello"]).ok();
    vg.create_and_kill_nanny_mid_up(&name);
    let destroyed = vg.run(&["destroy", &name, "--yes"]);
    destroyed.ok();
    // Give an orphaned vagrant time to (wrongly) recreate something.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        domains(&format!("{name}_")).is_empty(),
        "domain left: {:?}",
        domains(&format!("{name}_"))
    );
    assert!(volumes(&format!("{name}_")).is_empty());
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let project = vg.project(&name);
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(project.to_str().unwrap()),
        "a process still runs in the project"
    );
}

/// kill -9 of the nanny while `vagrant up` runs, then `create --resume`: it waits for the
/// vagrant the dead nanny started, finishes, and the formation works.
#[test]
fn vagrant_killed_nanny_then_resume_finishes() {
    let Some(mut vg) = Vg::new("resume") else {
        return;
    };
    let name = vg.name("resume");
    vg.run(&["cloudlet:install", "hello"]).ok();
    vg.create_and_kill_nanny_mid_up(&name);
    let resumed = vg
        .run(&[
            "-o",
            "json",
            "formation:create",
            "--resume",
            "--name",
            &name,
        ])
        .ok()
        .json();
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    let ssh = vg.run(&["ssh", &name, "--", "hostname"]).ok();
    assert!(ssh.stdout.contains(&name), "{}", ssh.stdout);
    assert_eq!(domains(&format!("{name}_")), [format!("{name}_default")]);
    vg.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(&format!("{name}_")).is_empty());
}

/// A Nepho 1.x cloudlet: `blueprints/` + `resources/<name>/Vagrantfile` + `payload/`, with
/// `VagrantBackend`, `BoxName`/`BoxUrl` and the parameters exported as NEPHO_<Key>.
#[test]
fn vagrant_v1_blueprint_with_payload_and_nepho_variables() {
    let Some(mut vg) = Vg::new("legacy") else {
        return;
    };
    let name = vg.name("legacy");
    let work = vg.env.path("work/vglegacy");
    let blueprint = format!(
        "provider: vagrant\npattern: vgdev\nsummary: 1.x dev box\nparameters:\n  BoxName: {}\n  BoxUrl: {BOX_FILE}\n  Memory: 256\n",
        vg.box_name
    );
    write_files(
        &work,
        &[
            (
                "cloudlet.yaml",
                "name: vglegacy\nversion: 0.1.0\nformat: 1\nsummary: 1.x vagrant cloudlet\nparameters:\n  AppName: legacy\n  EnableBackups: yes\n",
            ),
            ("blueprints/vgdev.yaml", &blueprint),
            (
                "resources/vgdev/Vagrantfile",
                r#"# {{ cloudlet.name }} ({{ blueprint.name }}), backups {{ parameters.EnableBackups }}
Vagrant.configure("2") do |config|
  config.vm.box = "{{ parameters.BoxName }}"
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.insert_key = false
  config.vm.provider :{{ parameters.VagrantBackend }} do |p|
    p.driver = ENV.fetch("NEPHO_LIBVIRT_DRIVER", "kvm")
    p.memory = {{ parameters.Memory }}
    p.graphics_type = "none"
    p.video_type = "none"
    p.management_network_keep = true
  end
  # 1.x: the payload sits next to the Vagrantfile and reaches the guest as /vagrant/payload.
  config.vm.provision "file", source: "payload", destination: "/vagrant/payload"
  config.vm.provision "shell", path: "payload/setup.sh",
    env: ENV.to_h.select { |k, _| k.start_with?("NEPHO_") }
end
"#,
            ),
            ("payload/hello.txt", "payload from 1.x\n"),
            (
                "payload/setup.sh",
                "#!/bin/sh\nset -eu\nmkdir -p /var/lib/legacy\n{\n  echo \"app=$NEPHO_AppName\"\n  echo \"backups=$NEPHO_EnableBackups\"\n  echo \"memory=$NEPHO_Memory\"\n  echo \"payload=$(cat /vagrant/payload/hello.txt)\"\n} > /var/lib/legacy/env.txt\necho legacy: provisioned\n",
            ),
        ],
    );
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "1.x cloudlet"]);
    vg.run(&["cloudlet:install", work.to_str().unwrap()]).ok();
    let rendered = vg.run(&["scenario:render", "vglegacy/vgdev"]).ok();
    assert!(
        rendered.stdout.contains("config.vm.provider :libvirt do"),
        "VagrantBackend defaults to libvirt: {}",
        rendered.stdout
    );
    vg.run(&["create", "vglegacy/vgdev", "--name", &name]).ok();
    assert!(vg.project(&name).join("payload/setup.sh").is_file());
    let env = vg
        .run(&["ssh", &name, "--", "cat", "/var/lib/legacy/env.txt"])
        .ok();
    assert_eq!(
        env.stdout.trim(),
        "app=legacy\nbackups=True\nmemory=256\npayload=payload from 1.x",
    );
    vg.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(&format!("{name}_")).is_empty());
}

/// A 1.x cloudlet of the corpus as its author wrote it (tests/fixtures/v1-corpus/vagrant-dev:
/// no `name:`, an include from resources/common/vagrant, the box by name): installed from git,
/// created, reached over ssh, destroyed.
#[test]
fn vagrant_corpus_1x_blueprint_creates_and_destroys() {
    let Some(mut vg) = Vg::new("corpus") else {
        return;
    };
    let name = vg.name("corpus");
    let work = vg.env.path("work/vagrant-dev");
    crate::support::copy_tree(
        &repo_root().join("tests/fixtures/v1-corpus/vagrant-dev"),
        &work,
    );
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "1.x cloudlet"]);
    vg.run(&["cloudlet:install", work.to_str().unwrap()]).ok();
    let added = Command::new("vagrant")
        .args(["box", "add", "--name", &vg.box_name, BOX_FILE])
        .env("VAGRANT_HOME", vg.env.path("vagrant.d"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let box_set = format!("BoxName={}", vg.box_name);
    vg.run(&[
        "create",
        "vagrant-dev/tiny",
        "--name",
        &name,
        "--set",
        &box_set,
    ])
    .ok();
    let host = vg.run(&["ssh", &name, "--", "hostname"]).ok();
    assert_eq!(
        host.stdout.trim(),
        "devbox",
        "hostname from the 1.x template"
    );
    assert_eq!(domains(&format!("{name}_")).len(), 1);
    vg.run(&["destroy", &name, "--yes"]).ok();
    assert!(domains(&format!("{name}_")).is_empty());
}

/// Vagrant's own error text reaches the user with the failing step; nothing is left.
#[test]
fn vagrant_errors_are_vagrants_own_words() {
    let Some(mut vg) = Vg::new("err") else {
        return;
    };
    let name = vg.name("err");
    vg.run(&["cloudlet:install", "hello"]).ok();
    let failed = vg.run(&[
        "create",
        "hello/vagrant",
        "--name",
        &name,
        "--set",
        "box=vg-no-such-box",
    ]);
    assert_ne!(failed.code, 0);
    let all = format!("{}{}", failed.stdout, failed.stderr);
    assert!(
        all.contains("vg-no-such-box") && all.contains("could not be found"),
        "{all}"
    );
    assert!(all.contains("vagrant up"), "names the failing step: {all}");
    assert!(domains(&format!("{name}_")).is_empty());

    // No vagrant on PATH: a clear error naming the package.
    let out = vg
        .env
        .nepho()
        .env("PATH", "/usr/local/bin/nepho-none")
        .args(["create", "hello/vagrant", "--name", "vgnovagrant"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("apt-get install vagrant vagrant-libvirt"),
        "{text}"
    );

    // vagrant installed but not its libvirt plugin: nepho runs in a mount namespace where
    // Debian's vagrant-libvirt is hidden (the plugin registry and its gem), as on a machine
    // with only `apt-get install vagrant`.
    let plugin_name = vg.name("noplugin");
    let out = without_vagrant_libvirt(&vg, &["create", "hello/vagrant", "--name", &plugin_name]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "unavailable: {text}");
    assert!(
        text.contains("vagrant-libvirt plugin is not installed")
            && text.contains("apt-get install vagrant vagrant-libvirt"),
        "{text}"
    );
    assert!(
        !vg.env
            .home()
            .join("state/formations")
            .join(&plugin_name)
            .exists(),
        "nothing recorded for a formation that could not start"
    );
    assert!(domains(&format!("{plugin_name}_")).is_empty());
}

/// Runs nepho with `args` where Debian's vagrant-libvirt plugin cannot be seen: a private
/// mount namespace with an empty /usr/share/vagrant-plugins and a gems directory without it.
fn without_vagrant_libvirt(vg: &Vg, args: &[&str]) -> std::process::Output {
    const HIDE: &str = r#"set -e
gems=$1; shift
mount -t tmpfs tmpfs /usr/share/vagrant-plugins
mkdir -p "$gems"
for g in /usr/share/rubygems-integration/all/gems/*; do
  case ${g##*/} in vagrant-libvirt*) ;; *) ln -s "$g" "$gems/" ;; esac
done
mount --bind "$gems" /usr/share/rubygems-integration/all/gems
exec "$@""#;
    let nepho = vg.env.nepho();
    let mut cmd = Command::new("unshare");
    cmd.env_clear();
    for (k, v) in nepho.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    if let Some(dir) = nepho.get_current_dir() {
        cmd.current_dir(dir);
    }
    let gems = vg.env.path("gems-without-vagrant-libvirt");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", HIDE, "sh"])
        .arg(gems)
        .arg(nepho.get_program())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run nepho under unshare")
}
