//! The append-only event journal of a formation (`journal.ndjson`): every event the engine and
//! provider publish, one versioned JSON object per line. It is also the engine's memory: finished
//! steps and their outputs are read back from it to resume after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nepho_provider_api::{
    EVENT_STREAM_VERSION, Event, EventKind, EventSink, EventStatus, Progress, REDACTED, StepId,
};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{Error, IoContext, Result};

/// Reads every event of a journal (a torn last line from a crash is ignored).
pub fn read(path: &Path) -> Result<Vec<Event>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

/// The operation (create, update, destroy) an event run belongs to.
pub fn op_of(event: &Event) -> Option<&str> {
    event.data.as_ref()?.get("op")?.as_str()
}

/// Index of the event that started the latest run of any operation.
pub fn last_run_start(events: &[Event]) -> Option<usize> {
    events
        .iter()
        .rposition(|e| e.kind == EventKind::Formation && e.status == EventStatus::Started)
}

/// True when the run starting at `start` reached a terminal formation event.
pub fn run_finished(events: &[Event], start: usize) -> Option<EventStatus> {
    events[start + 1..]
        .iter()
        .rev()
        .find(|e| {
            e.kind == EventKind::Formation
                && matches!(
                    e.status,
                    EventStatus::Succeeded | EventStatus::Failed | EventStatus::Cancelled
                )
        })
        .map(|e| e.status)
}

/// Steps finished in the run starting at `start`, with their outputs.
pub fn finished_steps(events: &[Event], start: usize) -> BTreeMap<StepId, BTreeMap<String, Value>> {
    let mut done = BTreeMap::new();
    for e in &events[start..] {
        let Some(step) = &e.step else { continue };
        if e.kind != EventKind::Step {
            continue;
        }
        match e.status {
            EventStatus::Succeeded | EventStatus::Skipped => {
                let outputs: BTreeMap<String, Value> = e
                    .data
                    .as_ref()
                    .and_then(|d| d.get("outputs"))
                    .and_then(|o| serde_json::from_value(o.clone()).ok())
                    .unwrap_or_default();
                done.insert(step.clone(), outputs);
            }
            // An undone step is no longer done (rollback).
            EventStatus::Cancelled => {
                done.remove(step);
            }
            _ => {}
        }
    }
    done
}

/// Appends events to the journal and broadcasts them to live subscribers.
pub struct Journal {
    formation: String,
    inner: Mutex<Inner>,
    live: broadcast::Sender<Event>,
    /// Secret values never written, whatever a provider puts in a message.
    secrets: Vec<String>,
    pub path: PathBuf,
}

struct Inner {
    file: File,
    seq: u64,
}

impl Journal {
    pub fn open(path: &Path, formation: &str, secrets: Vec<String>) -> Result<Arc<Journal>> {
        let seq = read(path)?.last().map_or(0, |e| e.seq);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .at(path)?;
        let (live, _) = broadcast::channel(4096);
        let secrets = secrets.into_iter().filter(|s| s.len() >= 3).collect();
        Ok(Arc::new(Journal {
            formation: formation.to_string(),
            inner: Mutex::new(Inner { file, seq }),
            live,
            secrets,
            path: path.to_path_buf(),
        }))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    pub fn last_seq(&self) -> u64 {
        self.inner.lock().map(|i| i.seq).unwrap_or(0)
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Writes one event (fsync'd: the journal is what a resume trusts) and publishes it.
    pub fn record(
        &self,
        step: Option<&StepId>,
        kind: EventKind,
        status: EventStatus,
        message: &str,
        progress: Option<Progress>,
        data: Option<Value>,
    ) -> Event {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        let data =
            data.map(|d| serde_json::from_str(&self.scrub(&d.to_string())).unwrap_or(Value::Null));
        let event = Event {
            v: EVENT_STREAM_VERSION,
            seq: inner.seq,
            ts: timestamp(),
            formation: self.formation.clone(),
            step: step.cloned(),
            kind,
            status,
            message: self.scrub(message),
            progress,
            data,
        };
        if let Ok(mut line) = serde_json::to_string(&event) {
            line.push('\n');
            let _ = inner.file.write_all(line.as_bytes());
            let _ = inner.file.sync_data();
        }
        drop(inner);
        let _ = self.live.send(event.clone());
        event
    }
}

/// RFC 3339 with milliseconds.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let base = crate::util::rfc3339(now.as_secs());
    format!("{}.{:03}Z", base.trim_end_matches('Z'), now.subsec_millis())
}

/// What a provider sees while a step runs: its events land in the journal under that step.
pub struct StepSink {
    pub journal: Arc<Journal>,
    pub step: StepId,
}

impl EventSink for StepSink {
    fn emit(
        &self,
        kind: EventKind,
        status: EventStatus,
        message: &str,
        progress: Option<Progress>,
    ) {
        self.journal
            .record(Some(&self.step), kind, status, message, progress, None);
    }
}

/// Steps that were started but never finished in a run (what a resume re-runs).
pub fn interrupted_steps(events: &[Event], start: usize) -> BTreeSet<StepId> {
    let done = finished_steps(events, start);
    events[start..]
        .iter()
        .filter(|e| e.kind == EventKind::Step && e.status == EventStatus::Started)
        .filter_map(|e| e.step.clone())
        .filter(|s| !done.contains_key(s))
        .collect()
}
