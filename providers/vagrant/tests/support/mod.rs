//! Test support for the Vagrant provider against real vagrant + vagrant-libvirt + libvirtd:
//! a private formations directory and VAGRANT_HOME, a recording event sink, a plan driver,
//! and a guard that removes the formation's domains and the uploaded box volume on drop
//! (also when the test fails).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use nepho_provider_api::{
    EventKind, EventSink, EventStatus, FormationSpec, Plan, Progress, Provider, ProviderError,
    ProviderKind, RenderedFile, StepContext, StepId,
};
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

pub type Recorded = (EventKind, EventStatus, String, Option<Progress>);

#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Recorded>>,
}

impl EventSink for Recorder {
    fn emit(
        &self,
        kind: EventKind,
        status: EventStatus,
        message: &str,
        progress: Option<Progress>,
    ) {
        self.events
            .lock()
            .unwrap()
            .push((kind, status, message.to_string(), progress));
    }
}

impl Recorder {
    pub fn messages(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.2.clone())
            .collect()
    }
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

/// Runs a plan's steps in dependency order, like the engine (one at a time); returns which
/// steps reported `already_done`.
pub async fn run_plan(
    provider: &VagrantProvider,
    spec: &FormationSpec,
    plan: &Plan,
    events: &Arc<Recorder>,
) -> Result<BTreeMap<StepId, bool>, ProviderError> {
    plan.validate().unwrap();
    let mut done = BTreeSet::new();
    let mut already = BTreeMap::new();
    loop {
        let ready: Vec<_> = plan
            .ready_steps(&done, &BTreeSet::new())
            .into_iter()
            .cloned()
            .collect();
        if ready.is_empty() {
            break;
        }
        for step in ready {
            let cx = StepContext {
                spec,
                outputs: BTreeMap::new(),
                events: events.clone(),
            };
            let outcome = provider.run_step(&step, cx).await?;
            already.insert(step.id.clone(), outcome.already_done);
            done.insert(step.id.clone());
        }
    }
    Ok(already)
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
