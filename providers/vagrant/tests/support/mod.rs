//! Test support for the Vagrant provider against real vagrant + vagrant-libvirt + libvirtd:
//! a private formations directory and VAGRANT_HOME, and a guard that removes the formation's
//! domains and the uploaded box volume on drop (also when the test fails). The step driver and
//! the recording event sink come from `nepho-provider-testkit`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nepho_provider_api::{
    BoxFuture, FormationSpec, Plan, ProviderError, ProviderKind, RenderedFile, StepId,
};
pub use nepho_provider_testkit::Recorder;
use nepho_provider_vagrant::{VagrantProvider, VagrantSettings};

pub const BOX_FILE: &str = "/var/cache/nepho-test/images/nepho-tiny-libvirt.box";
pub const URI: &str = "qemu:///system";

/// One guest at a time on a 2-core machine without KVM.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Why these tests cannot run here; in CI (`CI` set) they must.
pub fn missing_prerequisite() -> Option<String> {
    let ok = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let reason = if !ok("vagrant", &["--version"]) {
        Some("vagrant is not installed (scripts/setup/packages.sh)".to_string())
    } else if !ok("virsh", &["-c", URI, "version"]) {
        Some("libvirtd is not running (scripts/setup/daemons.sh)".to_string())
    } else if !Path::new(BOX_FILE).is_file() {
        Some(format!(
            "{BOX_FILE} is missing (scripts/images/make-vagrant-box.sh)"
        ))
    } else {
        None
    };
    if let Some(r) = &reason {
        assert!(std::env::var_os("CI").is_none(), "CI must provide: {r}");
        eprintln!("SKIPPED: {r}");
    }
    reason
}

pub fn virsh(args: &[&str]) -> String {
    let out = Command::new("virsh")
        .args(["-c", URI])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn domains(prefix: &str) -> Vec<String> {
    virsh(&["list", "--all", "--name"])
        .lines()
        .map(str::trim)
        .filter(|d| d.starts_with(prefix))
        .map(String::from)
        .collect()
}

pub fn volumes(prefix: &str) -> Vec<String> {
    virsh(&["vol-list", "default"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| v.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// A private world: formations directory, VAGRANT_HOME, box name; cleans libvirt on drop.
pub struct World {
    pub dir: tempfile::TempDir,
    pub box_name: String,
    pub formations: Vec<String>,
}

impl World {
    pub fn new(tag: &str) -> World {
        World {
            dir: tempfile::Builder::new()
                .prefix("nepho-vagrant-test.")
                .tempdir_in("/var/tmp")
                .unwrap(),
            box_name: format!("vg-crate-{}-{tag}", std::process::id()),
            formations: Vec::new(),
        }
    }

    pub fn formations_dir(&self) -> PathBuf {
        self.dir.path().join("formations")
    }

    pub fn provider(&self) -> VagrantProvider {
        let mut settings = VagrantSettings::new(self.formations_dir());
        settings.vagrant_home = Some(self.dir.path().join("vagrant.d"));
        settings.libvirt_driver = Some("qemu".into());
        settings.up_timeout = std::time::Duration::from_secs(400);
        nepho_provider_vagrant::connect(settings).unwrap()
    }

    /// A one-machine spec whose shell provisioner writes a marker file.
    pub fn spec(&mut self, name: &str) -> FormationSpec {
        self.formations.push(name.to_string());
        let provisioners = self.dir.path().join("provisioners");
        std::fs::create_dir_all(&provisioners).unwrap();
        std::fs::write(
            provisioners.join("bootstrap.sh"),
            "#!/bin/sh\necho \"provisioned $NEPHO_MARK\" > /tmp/marker\necho bootstrap: done\n",
        )
        .unwrap();
        let vagrantfile = format!(
            r#"Vagrant.configure("2") do |config|
  config.vm.box = "{box_name}"
  config.vm.hostname = "{name}"
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.insert_key = false
  config.vm.boot_timeout = 300
  config.vm.provider :libvirt do |l|
    l.driver = ENV.fetch("NEPHO_LIBVIRT_DRIVER", "kvm")
    l.memory = 256
    l.graphics_type = "none"
    l.video_type = "none"
    l.management_network_keep = true
  end
  config.vm.provision "shell", path: "provisioners/bootstrap.sh",
    env: {{ "NEPHO_MARK" => ENV["NEPHO_mark"] }}
end
"#,
            box_name = self.box_name
        );
        let mut parameters = serde_json::Map::new();
        parameters.insert("box".into(), self.box_name.clone().into());
        parameters.insert("box_url".into(), BOX_FILE.into());
        parameters.insert("mark".into(), "first".into());
        FormationSpec {
            name: name.to_string(),
            cloudlet: "vgtest".into(),
            scenario: "vagrant".into(),
            provider: ProviderKind::Vagrant,
            pattern: vec![RenderedFile {
                name: "Vagrantfile".into(),
                contents: vagrantfile,
            }],
            parameters,
            secret_keys: BTreeSet::new(),
            provisioner: Some(provisioners.join("bootstrap.sh")),
            payload_dir: Some(provisioners),
            v1: false,
            work_dir: self.formations_dir().join(name).join("work"),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for name in &self.formations {
            for d in domains(&format!("{name}_")) {
                virsh(&["destroy", &d]);
                virsh(&["undefine", &d, "--remove-all-storage"]);
            }
            for v in volumes(&format!("{name}_")) {
                virsh(&["vol-delete", "--pool", "default", &v]);
            }
        }
        for v in volumes(&self.box_name) {
            virsh(&["vol-delete", "--pool", "default", &v]);
        }
    }
}

/// A domain in `virsh list` is what exists of a formation.
impl nepho_provider_testkit::Backend for World {
    fn exists<'a>(&'a self, formation: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move { !domains(&format!("{formation}_")).is_empty() })
    }
}

/// Runs a plan's steps in dependency order, like the engine (the testkit's driver); returns
/// which steps reported `already_done`.
pub async fn run_plan(
    provider: &VagrantProvider,
    spec: &FormationSpec,
    plan: &Plan,
    events: &Arc<Recorder>,
) -> Result<BTreeMap<StepId, bool>, ProviderError> {
    let outcomes = nepho_provider_testkit::run_plan(provider, plan, spec, events.clone())
        .await
        .map_err(|(_, e)| e)?;
    Ok(outcomes
        .into_iter()
        .map(|(id, o)| (id, o.already_done))
        .collect())
}

/// Serves one file over HTTP on 127.0.0.1 (any path), for box downloads; stops on drop.
pub struct FileServer {
    pub port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FileServer {
    pub fn start(file: &Path) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = std::fs::read(file).unwrap();
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                // Read the request head; only the method matters.
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = None;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    head.get_or_insert(line.starts_with("HEAD "));
                    line.clear();
                }
                let head = head.unwrap_or(false);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if !head {
                    let _ = stream.write_all(&body);
                }
            }
        });
        FileServer { port, stop }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
