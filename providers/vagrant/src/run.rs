//! Running `vagrant` as a child process: always in the formation's project directory, with
//! nepho's environment, in a process group of its own (so a cancelled step, or a destroy after
//! the nanny was killed, can stop Vagrant and everything it started), with a timeout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nepho_provider_api::ProviderError;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::machine_readable::{self, Meaning, Record};

/// Where the running Vagrant's process group id is kept, so a later destroy can stop an
/// orphaned `vagrant up` (the nanny was killed) before it tears the machines down.
pub const PID_FILE: &str = ".nepho-vagrant.pid";

pub const INSTALL_HINT: &str = "apt-get install vagrant vagrant-libvirt";

/// How to run vagrant: the binary and the environment every call gets.
#[derive(Debug, Clone)]
pub struct Vagrant {
    pub program: PathBuf,
    pub env: BTreeMap<String, String>,
}

/// What a finished vagrant run printed.
#[derive(Debug, Default)]
pub struct Finished {
    pub success: bool,
    pub records: Vec<Record>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Vagrant's own error text: the `error-exit` message, else stderr, else the last lines.
    pub fn error_text(&self) -> String {
        for r in self.records.iter().rev() {
            if let Meaning::ErrorExit { message, .. } = machine_readable::meaning(r)
                && !message.is_empty()
            {
                return message;
            }
        }
        let stderr = self.stderr.trim();
        if !stderr.is_empty() {
            return stderr.to_string();
        }
        let lines: Vec<&str> = self.stdout.trim().lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

/// Kills the whole process group when a run is abandoned (the step's future is dropped on
/// cancellation), so no `vagrant up` keeps building behind nepho's back.
struct GroupGuard {
    pgid: i32,
    pid_file: Option<PathBuf>,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed && self.pgid > 0 {
            // SAFETY: plain syscall on a process group we created.
            unsafe {
                libc::kill(-self.pgid, libc::SIGTERM);
            }
        }
        // An abandoned run keeps its pid file, so destroy waits for the group to be gone.
        if !self.armed
            && let Some(p) = &self.pid_file
        {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Vagrant {
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(args)
            .current_dir(dir)
            .envs(&self.env)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env("VAGRANT_BOX_UPDATE_CHECK_DISABLE", "1")
            .env("VAGRANT_NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        c
    }

    /// Runs `vagrant args...` in `dir`, handing every machine-readable record to `on_record`
    /// as it arrives. `Err` only when vagrant could not run or timed out; a failing vagrant
    /// is `Ok` with `success: false`.
    pub async fn run(
        &self,
        dir: &Path,
        args: &[&str],
        timeout: Duration,
        track_pid: bool,
        mut on_record: impl FnMut(&Record),
    ) -> Result<Finished, ProviderError> {
        tracing::info!(
            "{} {} (in {})",
            self.program.display(),
            args.join(" "),
            dir.display()
        );
        let mut child = self.command(dir, args).spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                not_installed()
            } else {
                ProviderError::Failed {
                    message: format!("cannot run vagrant: {e}"),
                    hint: None,
                }
            }
        })?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let pid_file = track_pid.then(|| dir.join(PID_FILE));
        if let Some(p) = &pid_file {
            let _ = std::fs::write(p, format!("{pgid}\n"));
        }
        let mut guard = GroupGuard {
            pgid,
            pid_file,
            armed: true,
        };
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let stderr_task = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let work = async {
            let mut lines = BufReader::new(stdout).lines();
            let mut finished = Finished::default();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(r) = machine_readable::parse_line(&line) {
                    on_record(&r);
                    finished.records.push(r);
                }
                finished.stdout.push_str(&line);
                finished.stdout.push('\n');
            }
            let status = child.wait().await;
            finished.success = matches!(status, Ok(s) if s.success());
            finished
        };
        let mut finished = match tokio::time::timeout(timeout, work).await {
            Ok(f) => f,
            Err(_) => {
                return Err(ProviderError::Failed {
                    message: format!(
                        "`vagrant {}` did not finish within {} s",
                        args.join(" "),
                        timeout.as_secs()
                    ),
                    hint: None,
                });
            }
        };
        guard.armed = false;
        finished.stderr = stderr_task.await.unwrap_or_default();
        Ok(finished)
    }

    /// Runs vagrant and fails with Vagrant's own error text when it fails.
    pub async fn check(
        &self,
        dir: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Finished, ProviderError> {
        let f = self.run(dir, args, timeout, false, |_| {}).await?;
        if f.success {
            Ok(f)
        } else {
            Err(failure(&format!("vagrant {}", args.join(" ")), &f))
        }
    }
}

/// The error for a failed vagrant command, carrying Vagrant's text verbatim.
pub fn failure(what: &str, f: &Finished) -> ProviderError {
    let text = f.error_text();
    let hint = if text.contains("provider 'libvirt' could not be found")
        || text.contains("provider `libvirt` could not be found")
        || text.contains("vagrant-libvirt")
    {
        Some(format!(
            "the vagrant-libvirt plugin is missing: {INSTALL_HINT}"
        ))
    } else {
        None
    };
    ProviderError::Failed {
        message: format!("`{what}` failed:\n{text}"),
        hint,
    }
}

pub fn not_installed() -> ProviderError {
    ProviderError::Unavailable {
        message: "vagrant is not installed: the vagrant provider drives the `vagrant` command"
            .into(),
        hint: Some(INSTALL_HINT.into()),
    }
}

/// Stops a vagrant left running by a nanny that died (its process group id is in the pid
/// file), so the project is free for `destroy`. SIGTERM first, SIGKILL after `grace`.
pub async fn stop_orphan(dir: &Path, grace: Duration) {
    let pid_file = dir.join(PID_FILE);
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return;
    };
    let Ok(pgid) = text.trim().parse::<i32>() else {
        let _ = std::fs::remove_file(&pid_file);
        return;
    };
    if pgid > 1 && group_runs_in(pgid, dir) {
        // SAFETY: signals to a process group whose leader runs in the formation's project.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let started = std::time::Instant::now();
        while group_alive(pgid) && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if group_alive(pgid) {
            // SAFETY: as above; std can signal a child it spawned, not a process group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let _ = std::fs::remove_file(&pid_file);
}

/// The process group of a vagrant nepho started in `dir` that is still running, if any.
pub fn running_group(dir: &Path) -> Option<i32> {
    let pgid = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()?;
    (pgid > 1 && group_alive(pgid) && group_runs_in(pgid, dir)).then_some(pgid)
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Guards against a recycled pid: the group leader must still be a process whose working
/// directory is the project.
fn group_runs_in(pgid: i32, dir: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pgid}/cwd"));
    match (cwd, dir.canonicalize()) {
        (Ok(cwd), Ok(dir)) => cwd == dir,
        _ => false,
    }
}

/// Whether `program` is on PATH (or is an existing path).
pub fn on_path(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}
