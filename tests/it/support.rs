//! Shared test helpers: a private NEPHO_HOME per test, the built binary, a real `git daemon` on
//! 127.0.0.1, and a small real HTTP server for registry tests. Everything stops on drop, also
//! when a test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Env {
    pub dir: tempfile::TempDir,
    /// Extra environment for every nepho run (provider endpoints, credentials).
    pub vars: Vec<(String, String)>,
    home: PathBuf,
    /// Whether runs get NEPHO_HOME (else nepho finds its XDG directories from HOME).
    nepho_home: bool,
}

impl Env {
    pub fn new() -> Env {
        Env::with_home("nepho-home")
    }

    /// An env whose NEPHO_HOME is `rel` under its directory (say, a very long path).
    pub fn with_home(rel: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        Env {
            home: dir.path().join(rel),
            dir,
            vars: Vec::new(),
            nepho_home: true,
        }
    }

    /// An env without NEPHO_HOME: nepho keeps its files under HOME as XDG says (and there is
    /// no XDG_RUNTIME_DIR). `home()` is then not where nepho keeps them.
    pub fn without_nepho_home() -> Env {
        Env {
            nepho_home: false,
            ..Env::new()
        }
    }

    pub fn home(&self) -> PathBuf {
        self.home.clone()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cloudlets_dir(&self) -> PathBuf {
        self.home().join("cloudlets")
    }

    /// The nepho binary with this test's own HOME and NEPHO_HOME, no colour, no inherited config.
    pub fn nepho(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nepho"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env("LC_ALL", "C")
            // One KVM probe (a ~20 s boot where KVM hangs) for the whole run, not one per home.
            .env(
                "NEPHO_KVM_PROBE_CACHE",
                "/var/cache/nepho-test/kvm-probe.json",
            )
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if self.nepho_home {
            cmd.env("NEPHO_HOME", self.home());
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.nepho().args(args).output().expect("run nepho"))
    }

    /// The formation's event journal, as written so far.
    pub fn journal(&self, name: &str) -> Vec<serde_json::Value> {
        let path = self
            .home()
            .join("state/formations")
            .join(name)
            .join("journal.ndjson");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The pid of the nanny building `name`, from its lock file.
    pub fn nanny_pid(&self, name: &str) -> Option<i32> {
        let text =
            std::fs::read_to_string(self.home().join("state/formations").join(name).join("lock"))
                .ok()?;
        text.split("nanny pid ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// kill -9 of the nanny building `name`; returns once it is gone.
    pub fn kill_nanny(&self, name: &str) {
        let pid = self.nanny_pid(name).expect("nanny pid in the lock file");
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_until("the nanny to die", Duration::from_secs(10), || unsafe {
            libc::kill(pid, 0) != 0
        });
    }

    pub fn write_config(&self, yaml: &str) {
        std::fs::create_dir_all(self.home()).unwrap();
        std::fs::write(self.home().join("config.yaml"), yaml).unwrap();
    }

    /// Names in the cloudlets directory, hidden ones included (a leftover temp dir shows here).
    pub fn cloudlet_dir_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.cloudlets_dir())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs git in `dir` and panics with its output on failure.
/// Polls `ok` until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@localhost",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies a directory tree (files and directories; symlinks as symlinks).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes files (`path => contents`) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, contents) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
}

/// A minimal valid native cloudlet.
pub fn minimal_cloudlet(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "cloudlet.yaml".into(),
            format!("name: {name}\nversion: 1.0.0\nsummary: test cloudlet {name}\n"),
        ),
        (
            "scenarios/default.yaml".into(),
            "summary: default\nprovider: kvm\nparameters:\n  size: {type: number, default: 1}\n"
                .into(),
        ),
        (
            "patterns/kvm/main.yaml".into(),
            "machines:\n  - name: m\n    cpus: {{ parameters.size }}\n".into(),
        ),
    ]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listening on 127.0.0.1:{port} after 20 s");
}

/// `git daemon` serving bare repositories from a directory, on 127.0.0.1 only.
pub struct GitDaemon {
    pub base: PathBuf,
    pub port: u16,
    child: Child,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        std::fs::create_dir_all(base).unwrap();
        let port = free_port();
        let mut child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                "--informative-errors",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon (is git installed?)");
        wait_for_port(port, &mut child);
        GitDaemon {
            base: base.to_path_buf(),
            port,
            child,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }

    /// Creates bare repo `name` from the given files (one commit) and returns its work tree.
    pub fn publish(&self, name: &str, work: &Path, files: &[(String, String)]) -> PathBuf {
        std::fs::create_dir_all(work).unwrap();
        git(work, &["init", "-q"]);
        for (rel, contents) in files {
            write_files(work, &[(rel.as_str(), contents.as_str())]);
        }
        git(work, &["add", "-A"]);
        git(work, &["commit", "-qm", "initial"]);
        let bare = self.base.join(name);
        git(
            work,
            &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
        );
        git(work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        git(work, &["fetch", "-q", "origin"]);
        git(
            work,
            &["branch", "-q", "--set-upstream-to=origin/main", "main"],
        );
        work.to_path_buf()
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving one index with ETag, Cache-Control and optional
/// gzip, recording each request's headers.
pub struct HttpServer {
    pub port: u16,
    pub body: Arc<Mutex<Vec<u8>>>,
    pub max_age: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<String>>>,
    /// The body is already gzip data: send it as is with `Content-Encoding: gzip` (a gzip bomb).
    pub pre_gzipped: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(body: &[u8]) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let body = Arc::new(Mutex::new(body.to_vec()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let max_age = Arc::new(AtomicUsize::new(3600));
        let pre_gzipped = Arc::new(AtomicBool::new(false));
        let (b, r, s, m, g) = (
            body.clone(),
            requests.clone(),
            stop.clone(),
            max_age.clone(),
            pre_gzipped.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => serve(
                        stream,
                        &b,
                        &r,
                        m.load(Ordering::SeqCst),
                        g.load(Ordering::SeqCst),
                    ),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HttpServer {
            port,
            body,
            max_age,
            requests,
            pre_gzipped,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    mut stream: TcpStream,
    body: &Mutex<Vec<u8>>,
    requests: &Mutex<Vec<String>>,
    max_age: usize,
    pre_gzipped: bool,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    requests.lock().unwrap().push(head.clone());
    let body = body.lock().unwrap().clone();
    let etag = format!(
        "\"{:x}\"",
        body.iter()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)))
    );
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}: "))
                .map(str::trim)
                .map(str::to_string)
        })
    };
    let response = if header("if-none-match").as_deref() == Some(etag.as_str()) {
        format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nCache-Control: max-age={max_age}\r\nConnection: close\r\n\r\n").into_bytes()
    } else {
        let gzip = header("accept-encoding").is_some_and(|v| v.contains("gzip"));
        let (payload, encoding) = if pre_gzipped {
            (body, "Content-Encoding: gzip\r\n")
        } else if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&body).unwrap();
            (enc.finish().unwrap(), "Content-Encoding: gzip\r\n")
        } else {
            (body, "")
        };
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{encoding}Content-Length: {}\r\nETag: {etag}\r\nCache-Control: max-age={max_age}\r\nConnection: close\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        r.extend_from_slice(&payload);
        r
    };
    let _ = stream.write_all(&response);
}

/// The venv made by `scripts/setup/python.sh` (jinja2, PyYAML, moto, awscli).
pub fn test_venv() -> PathBuf {
    if let Some(v) = std::env::var_os("NEPHO_TEST_VENV") {
        return PathBuf::from(v);
    }
    let out = Command::new(repo_root().join("scripts/setup/python.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/setup/python.sh");
    assert!(out.status.success(), "scripts/setup/python.sh failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A YAML document read by PyYAML (a parser nobody here wrote), as JSON.
pub fn yaml_to_json(text: &str) -> serde_json::Value {
    pyyaml(text, "yaml.safe_load(sys.stdin.read())")
}

/// A YAML stream (`---` documents) read by PyYAML, as a JSON array of its documents.
pub fn yaml_stream_to_json(text: &str) -> serde_json::Value {
    pyyaml(text, "list(yaml.safe_load_all(sys.stdin.read()))")
}

fn pyyaml(text: &str, expr: &str) -> serde_json::Value {
    let mut child = Command::new(test_venv().join("bin/python3"))
        .args([
            "-c",
            &format!("import json, sys, yaml; print(json.dumps({expr}))"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "PyYAML cannot read:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `moto_server` on 127.0.0.1 (CloudFormation, S3, EC2 mock), stopped on drop.
pub struct Moto {
    pub port: u16,
    pub venv: PathBuf,
    child: Child,
}

impl Moto {
    pub fn start() -> Moto {
        let venv = test_venv();
        let port = free_port();
        // moto_server plus a fix for change-set outputs (see tests/tools/moto_server.py).
        let mut child = Command::new(venv.join("bin/python3"))
            .arg(repo_root().join("tests/tools/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        wait_for_port(port, &mut child);
        Moto { port, venv, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a user would have: static keys, a region, the endpoint.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Runs the AWS CLI (the independent check of what exists) and returns stdout as JSON.
    pub fn aws(&self, args: &[&str]) -> Option<serde_json::Value> {
        let out = Command::new(self.venv.join("bin/aws"))
            .args(args)
            .args(["--output", "json"])
            .envs(self.vars())
            .output()
            .expect("aws cli");
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Stacks that exist (not deleted) with this name.
    pub fn stack_status(&self, name: &str) -> Option<String> {
        let listed = self.aws(&["cloudformation", "list-stacks"])?;
        listed["StackSummaries"]
            .as_array()?
            .iter()
            .filter(|s| s["StackName"] == name && s["StackStatus"] != "DELETE_COMPLETE")
            .map(|s| s["StackStatus"].as_str().unwrap_or_default().to_string())
            .next()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This machine's libvirtd over `qemu+ssh` through the loopback sshd on 127.0.0.1:2222
/// (started when it is not running): a remote host whose files are this machine's.
pub fn loopback_sshd_uri() -> String {
    let started = Command::new(repo_root().join("scripts/setup/sshd.sh"))
        .args(["start", "2222"])
        .status()
        .unwrap();
    assert!(started.success(), "scripts/setup/sshd.sh start");
    let key = "/var/lib/nepho-test/sshd/client_key";
    format!("qemu+ssh://root@127.0.0.1:2222/system?keyfile={key}&no_verify=1")
}

/// Turns the env's one-host cluster file (the `local` host `register kvm` wrote) into a remote
/// host: this machine's libvirtd over `qemu+ssh` through the loopback sshd on 127.0.0.1:2222
/// (started when it is not running). Returns the host's URI.
pub fn use_loopback_sshd_host(env: &Env) -> String {
    let uri = loopback_sshd_uri();
    edit_cluster(
        env,
        "  - name: local\n    uri: qemu:///system\n",
        &format!("  - name: remote\n    uri: \"{uri}\"\n"),
    );
    uri
}

/// Replaces `from` (which must be there) with `to` in the env's cluster file (the one
/// `register kvm` wrote).
pub fn edit_cluster(env: &Env, from: &str, to: &str) {
    let cluster = env.home().join("cluster.yaml");
    let text = std::fs::read_to_string(&cluster).unwrap();
    assert!(
        text.contains(from),
        "{from:?} not in the cluster file:\n{text}"
    );
    std::fs::write(&cluster, text.replacen(from, to, 1)).unwrap();
}
