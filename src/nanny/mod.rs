//! The nanny: a detached `nepho` (re-executed in its own session, never forked from a process
//! running tokio) that owns one formation's build or teardown, writes its journal, and serves a
//! Unix socket (0600, in a 0700 directory, peers checked by uid) speaking NDJSON:
//!
//! - `{"op":"subscribe","from":SEQ}` → every event with `seq >= SEQ` (journal replay, then live),
//!   ending after the run's final formation event;
//! - `{"op":"status"}` → `{"formation", "op", "pid", "last_seq", "finished"}`;
//! - `{"op":"cancel"}` → `{"ok": true}`, and the run stops at the next safe point.

pub mod client;
pub mod history;
pub mod progress;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use nepho_provider_api::{Event, EventKind, EventStatus};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::config::Paths;
use crate::engine::journal::is_final;
use crate::engine::{self, Journal, Operation, Outcome, RunOptions};
use crate::error::{Error, IoContext, Result};
use crate::formation::{FormationDir, FormationLock, FormationName, RecordState};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Subscribe { from: u64 },
    Status,
    Cancel,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub formation: String,
    pub op: String,
    pub pid: u32,
    pub last_seq: u64,
    pub finished: bool,
}

struct Shared {
    journal: Arc<Journal>,
    cancel: watch::Sender<bool>,
    finished: AtomicBool,
    clients: AtomicUsize,
    /// Has any client ever attached (a follower started with the build may still be connecting)?
    attached: AtomicBool,
    formation: String,
    op: Operation,
}

/// Runs `op` on formation `name` in this process, serving the socket while it runs. Used by the
/// detached nanny and by `--foreground` alike. Returns the outcome.
pub fn run_with_socket(
    paths: &Paths,
    name: &FormationName,
    op: Operation,
    options: RunOptions,
    lock: FormationLock,
) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(e.to_string()))?;
    runtime.block_on(run_async(paths, name, op, options, lock))
}

async fn run_async(
    paths: &Paths,
    name: &FormationName,
    op: Operation,
    options: RunOptions,
    mut lock: FormationLock,
) -> Result<Outcome> {
    let fdir = FormationDir::new(paths, name);
    lock.note(&format!(
        "{} by nanny pid {} since {}",
        op.as_str(),
        std::process::id(),
        crate::util::now_rfc3339()
    ));
    // A destroy needs no secret values, nor even the build inputs: the provider knows what it
    // built. The other operations refuse a lost secret or spec.
    let (spec, unreadable_spec) = match op {
        Operation::Destroy => match fdir.read_spec_for_destroy() {
            Ok(spec) => (spec, None),
            Err(e) => (fdir.bare_spec()?, Some(e)),
        },
        _ => (fdir.read_spec()?, None),
    };
    let journal = Journal::open(&fdir.journal_file(), name.as_str(), fdir.secret_values())?;
    if let Some(e) = unreadable_spec {
        journal.record(
            None,
            EventKind::Log,
            EventStatus::Info,
            &format!(
                "the saved build inputs are unusable ({e}); destroying what {} reports",
                spec.provider
            ),
            None,
            None,
        );
    }
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        journal: journal.clone(),
        cancel: cancel_tx,
        finished: AtomicBool::new(false),
        clients: AtomicUsize::new(0),
        attached: AtomicBool::new(false),
        formation: name.to_string(),
        op,
    });

    let socket = crate::formation::prepare_socket(paths, name)?;
    let _ = std::fs::remove_file(&socket); // we hold the lock: any socket file is stale
    let listener = UnixListener::bind(&socket).map_err(|e| Error::io(&socket, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).at(&socket)?;
    }
    let socket_guard = RemoveOnDrop(socket.clone());
    let accept = tokio::spawn(accept_loop(listener, shared.clone()));

    fdir.set_state(match op {
        Operation::Create => RecordState::Creating,
        Operation::Update => RecordState::Updating,
        Operation::Destroy => RecordState::Destroying,
    })?;
    let outcome = match crate::providers::connect(spec.provider, paths, options.rollback).await {
        Ok(provider) => {
            engine::run(
                provider.as_ref(),
                &spec,
                op,
                journal.clone(),
                cancel_rx,
                options,
            )
            .await
        }
        Err(e) => {
            let err = nepho_provider_api::ProviderError::Unavailable {
                message: e.to_string(),
                hint: e.hint().map(str::to_string),
            };
            journal.record(
                None,
                EventKind::Formation,
                EventStatus::Started,
                &format!("{} {}", op.as_str(), name),
                None,
                Some(nepho_provider_api::EventData::run(op.as_str())),
            );
            journal.record(
                None,
                EventKind::Formation,
                EventStatus::Failed,
                &format!("{} failed: {err}", op.as_str()),
                None,
                Some(nepho_provider_api::EventData::run(op.as_str())),
            );
            Outcome::Failed(err)
        }
    };
    let state = match (&outcome, op) {
        (Outcome::Succeeded, Operation::Destroy) => RecordState::Destroyed,
        (Outcome::Succeeded, _) => RecordState::Created,
        (Outcome::Cancelled, _) => RecordState::Cancelled,
        (_, _) => RecordState::Failed,
    };
    fdir.set_state(state)?;
    if matches!(outcome, Outcome::Succeeded)
        && op != Operation::Destroy
        && let Ok(Some(record)) = fdir.read_record()
        && let Ok(events) = crate::engine::journal::read(&fdir.journal_file())
        && let Some(start) = crate::engine::journal::last_run_start(&events)
    {
        // How long each step took, for the next run's ETA.
        history::History::record_run(
            paths,
            (&record.cloudlet, &record.scenario, record.provider.as_str()),
            &events,
            events[start].seq,
        );
    }
    let destroyed = state == RecordState::Destroyed;
    shared.finished.store(true, Ordering::SeqCst);
    // Let attached clients read the final event, then go (bounded: nobody keeps us alive). When
    // the journal is about to go with the formation, give the command that started us a moment
    // to attach, since it can no longer fall back to reading the journal.
    let now = tokio::time::Instant::now();
    let deadline = now + Duration::from_secs(15);
    let attach_deadline = now + Duration::from_secs(3);
    loop {
        let now = tokio::time::Instant::now();
        let busy = shared.clients.load(Ordering::SeqCst) > 0;
        let awaited = destroyed && !shared.attached.load(Ordering::SeqCst) && now < attach_deadline;
        if !(busy || awaited) || now >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    accept.abort();
    if destroyed {
        // Nothing built remains: neither should its spec, secrets or rendered pattern here.
        drop(socket_guard);
        fdir.remove_all()?;
    }
    Ok(outcome)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let me = crate::util::euid();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Only the user who owns the formation may watch or cancel it.
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {}
            _ => continue,
        }
        let shared = shared.clone();
        shared.clients.fetch_add(1, Ordering::SeqCst);
        shared.attached.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            let _ = serve_client(stream, &shared).await;
            shared.clients.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn serve_client(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                write
                    .write_all(
                        format!("{}\n", serde_json::json!({"error": e.to_string()})).as_bytes(),
                    )
                    .await?;
                continue;
            }
        };
        match request {
            Request::Status => {
                let status = Status {
                    formation: shared.formation.clone(),
                    op: shared.op.as_str().into(),
                    pid: std::process::id(),
                    last_seq: shared.journal.last_seq(),
                    finished: shared.finished.load(Ordering::SeqCst),
                };
                write
                    .write_all(
                        format!("{}\n", serde_json::to_string(&status).unwrap_or_default())
                            .as_bytes(),
                    )
                    .await?;
            }
            Request::Cancel => {
                let _ = shared.cancel.send(true);
                write.write_all(b"{\"ok\":true}\n").await?;
            }
            Request::Subscribe { from } => {
                // Subscribe before replaying so nothing falls between the file and the channel.
                let mut live = shared.journal.subscribe();
                let mut last = from.saturating_sub(1);
                for event in engine::journal::read(&shared.journal.path).unwrap_or_default() {
                    if event.seq <= last {
                        continue;
                    }
                    last = event.seq;
                    send(&mut write, &event).await?;
                    if is_final(&event) {
                        return Ok(());
                    }
                }
                loop {
                    match live.recv().await {
                        Ok(event) if event.seq > last => {
                            last = event.seq;
                            send(&mut write, &event).await?;
                            if is_final(&event) {
                                return Ok(());
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            // Too slow a reader: catch up from the journal file.
                            for event in
                                engine::journal::read(&shared.journal.path).unwrap_or_default()
                            {
                                if event.seq > last {
                                    last = event.seq;
                                    send(&mut write, &event).await?;
                                    if is_final(&event) {
                                        return Ok(());
                                    }
                                }
                            }
                        }
                        Err(_) => return Ok(()),
                    }
                }
            }
        }
    }
    Ok(())
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, event: &Event) -> std::io::Result<()> {
    let mut line = serde_json::to_string(event).unwrap_or_default();
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

/// Starts a detached nanny for `op` that inherits `lock`. Call before any tokio runtime exists.
pub fn spawn(
    paths: &Paths,
    fdir: &FormationDir,
    op: Operation,
    resume: bool,
    rollback: bool,
    lock: &FormationLock,
) -> Result<u32> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the nepho binary: {e}")))?;
    let fd = lock.inheritable_fd()?;
    // Logs can quote provider output: private, as the rest of the state is.
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(fdir.log_file())
        .at(fdir.log_file())?;
    let mut cmd = std::process::Command::new(exe);
    // The build keeps the context it started in, whatever `context:use` says meanwhile.
    cmd.env(
        "NEPHO_CONTEXT",
        paths
            .context
            .as_deref()
            .unwrap_or(crate::config::DEFAULT_CONTEXT),
    );
    cmd.arg("__nanny")
        .arg(fdir.name.as_str())
        .arg(op.as_str())
        .arg("--lock-fd")
        .arg(fd.to_string());
    if resume {
        cmd.arg("--resume");
    }
    if !rollback {
        cmd.arg("--no-rollback");
    }
    if let Some(cfg) = Some(&paths.config_file).filter(|p| p.exists()) {
        cmd.env("NEPHO_CONFIG", cfg);
    }
    crate::util::in_own_session(&mut cmd, log).at(fdir.log_file())?;
    let child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start the nanny: {e}")))?;
    Ok(child.id())
}

pub fn nanny_main(
    paths: &Paths,
    name: &str,
    op: &str,
    lock_fd: i32,
    resume: bool,
    rollback: bool,
) -> Result<Outcome> {
    let name = FormationName::parse(name)?;
    let op = Operation::parse(op).ok_or_else(|| Error::usage(format!("unknown operation {op}")))?;
    let fdir = FormationDir::new(paths, &name);
    let lock = FormationLock::adopt(lock_fd, &fdir)?;
    eprintln!(
        "{} nanny pid {} for {} {}",
        crate::util::now_rfc3339(),
        std::process::id(),
        op.as_str(),
        name
    );
    let outcome = run_with_socket(paths, &name, op, RunOptions { resume, rollback }, lock)?;
    eprintln!("{} nanny finished: {outcome:?}", crate::util::now_rfc3339());
    Ok(outcome)
}

/// The error a nanny that stopped early wrote last to its log (`error: ...`), bounded.
pub fn log_error(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    file.take(4096).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().find(|l| l.starts_with("error:"))?;
    Some(line.chars().take(300).collect())
}

pub fn socket_exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
