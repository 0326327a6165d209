//! The append-only event journal of a formation (`journal.ndjson`): every event the engine and
//! provider publish, one versioned JSON object per line. It is also the engine's memory: finished
//! steps and their outputs are read back from it to resume after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nepho_provider_api::{
    EVENT_STREAM_VERSION, Event, EventData, EventKind, EventLevel, EventSink, EventStatus,
    Progress, REDACTED, StepId,
};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{Error, IoContext, Result, timestamp};

/// Does this event end a run (the formation succeeded, failed or was cancelled)?
pub fn is_final(e: &Event) -> bool {
    e.kind == EventKind::Formation
        && matches!(
            e.status,
            EventStatus::Succeeded | EventStatus::Failed | EventStatus::Cancelled
        )
}

/// Reads every event of a journal. Damaged lines are skipped; see [`read_all`].
pub fn read(path: &Path) -> Result<Vec<Event>> {
    read_all(path).map(|r| r.events)
}

/// A journal as read back, and how many of its lines could not be (a write torn by a crash, a
/// line that is not UTF-8 or not an event).
#[derive(Debug, Default)]
pub struct JournalContents {
    pub events: Vec<Event>,
    pub skipped: usize,
}

/// Reads every event of a journal. One bad line never hides the events after it: a line torn by
/// a crash (the next run's first event then follows it on the same line) gives back that next
/// event, and a line that cannot be read at all is counted in `skipped`. An unterminated last
/// line is a write in progress or a crash's torn tail: ignored, not counted.
pub fn read_all(path: &Path) -> Result<JournalContents> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(JournalContents::default());
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut contents = JournalContents::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // After the last newline: empty, or an unfinished write.
    let tail = lines.pop().unwrap_or_default();
    for line in lines {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line) {
            (Some(event), damaged) => {
                contents.events.push(event);
                contents.skipped += usize::from(damaged);
            }
            (None, _) => contents.skipped += 1,
        }
    }
    if let (Some(event), false) = parse_line(tail) {
        contents.events.push(event);
    }
    Ok(contents)
}

/// One journal line: its event, and whether part of the line had to be dropped to get it.
fn parse_line(line: &[u8]) -> (Option<Event>, bool) {
    if let Ok(event) = serde_json::from_slice(line) {
        return (Some(event), false);
    }
    // A torn event with the next one appended to it: the last event start on the line.
    let start = br#"{"v":"#;
    let salvaged = (1..line.len().saturating_sub(start.len() - 1))
        .rev()
        .filter(|&i| line[i..].starts_with(start))
        .find_map(|i| serde_json::from_slice(&line[i..]).ok());
    (salvaged, true)
}

/// The operation (create, update, destroy) an event run belongs to.
pub fn op_of(event: &Event) -> Option<&str> {
    event.data.as_ref()?.op()
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
                let outputs: BTreeMap<String, Value> = match &e.data {
                    Some(EventData::Outputs(o)) => o.outputs.clone(),
                    _ => BTreeMap::new(),
                };
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

/// Where the cluster's journal lives: `<state>/cluster/journal.ndjson`, beside the cluster
/// watcher's files (a formation's journal is `<state>/formations/<name>/journal.ndjson`).
pub fn cluster_journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join("cluster").join("journal.ndjson")
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
    /// The file's length after this writer's last event: another length means another
    /// process wrote since (two `cluster:migrate`s share the cluster journal).
    len: u64,
}

impl Journal {
    pub fn open(path: &Path, formation: &str, secrets: Vec<String>) -> Result<Arc<Journal>> {
        let seq = read(path)?.last().map_or(0, |e| e.seq);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .at(path)?;
        // A line torn by a crash is ended here, so the next event starts a line of its own.
        if ends_torn(path) {
            file.write_all(b"\n").at(path)?;
        }
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (live, _) = broadcast::channel(4096);
        let secrets = secrets.into_iter().filter(|s| s.len() >= 3).collect();
        Ok(Arc::new(Journal {
            formation: formation.to_string(),
            inner: Mutex::new(Inner { file, seq, len }),
            live,
            secrets,
            path: path.to_path_buf(),
        }))
    }

    /// The cluster's own journal ([`cluster_journal_path`]): operations on hosts and on
    /// machines across formations (failover, migrate, rebalance, evacuate). Its events have
    /// an empty `formation`; the formation a machine belongs to is in their data.
    pub fn open_cluster(state_dir: &Path) -> Result<Arc<Journal>> {
        let path = cluster_journal_path(state_dir);
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .at(dir)?;
        }
        Journal::open(&path, "", Vec::new())
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
    /// Writers in other processes are taken turns with through a lock on the file, and the
    /// sequence number follows theirs: numbers stay unique and increasing along the file.
    pub fn record(
        &self,
        step: Option<&StepId>,
        kind: EventKind,
        status: EventStatus,
        message: &str,
        progress: Option<Progress>,
        data: Option<EventData>,
    ) -> Event {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Held until the event is written; released when this process dies.
        let locked = inner.file.lock().is_ok();
        let len = inner.file.metadata().map(|m| m.len()).unwrap_or(inner.len);
        if len != inner.len {
            if let Some(theirs) = last_seq_at_end(&self.path) {
                inner.seq = inner.seq.max(theirs);
            }
            if ends_torn(&self.path) {
                let _ = inner.file.write_all(b"\n");
            }
        }
        inner.seq += 1;
        let data = data.and_then(|d| {
            let text = serde_json::to_string(&d).ok()?;
            serde_json::from_str(&self.scrub(&text)).ok()
        });
        let message = self.scrub(message);
        let event = Event {
            v: EVENT_STREAM_VERSION,
            seq: inner.seq,
            ts: timestamp(),
            formation: self.formation.clone(),
            step: step.cloned(),
            kind,
            status,
            level: EventLevel::of(status, &message),
            message,
            progress,
            data,
        };
        if let Ok(mut line) = serde_json::to_string(&event) {
            line.push('\n');
            let _ = inner.file.write_all(line.as_bytes());
            let _ = inner.file.sync_data();
        }
        inner.len = inner.file.metadata().map(|m| m.len()).unwrap_or(0);
        if locked {
            let _ = inner.file.unlock();
        }
        drop(inner);
        let _ = self.live.send(event.clone());
        event
    }
}

/// The sequence number of the last whole event in the file (read from its last 64 KiB).
fn last_seq_at_end(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n').rev().find_map(|line| {
        serde_json::from_slice::<Value>(line)
            .ok()?
            .get("seq")?
            .as_u64()
    })
}

/// Does the file end in the middle of a line?
fn ends_torn(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1)).is_ok() && file.read_exact(&mut last).is_ok() && last[0] != b'\n'
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64) -> String {
        let j = serde_json::json!({"v": 1, "seq": seq, "ts": "t", "formation": "f", "step": null,
            "kind": "log", "status": "info", "message": format!("event {seq}"), "progress": null});
        format!("{j}\n")
    }

    #[test]
    fn two_writers_of_one_journal_number_their_events_in_turn() {
        // As two processes would (two `cluster:migrate`s on the cluster journal): each has
        // the file open on its own, and one of them left a torn line behind.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.ndjson");
        let a = Journal::open(&path, "", Vec::new()).unwrap();
        let b = Journal::open(&path, "", Vec::new()).unwrap();
        a.record(None, EventKind::Log, EventStatus::Info, "a", None, None);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"v\":1,\"seq\":")
            .unwrap();
        let writers: Vec<_> = [a, b]
            .into_iter()
            .map(|j| {
                std::thread::spawn(move || {
                    for i in 0..200 {
                        j.record(
                            None,
                            EventKind::Log,
                            EventStatus::Info,
                            &i.to_string(),
                            None,
                            None,
                        );
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let contents = read_all(&path).unwrap();
        assert_eq!(contents.skipped, 1, "the torn line");
        let seqs: Vec<u64> = contents.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=401).collect::<Vec<_>>());
    }

    #[test]
    fn journals_of_older_versions_read_with_typed_data_and_a_derived_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.ndjson");
        let lines = [
            r#"{"v":1,"seq":1,"ts":"t","formation":"f","step":null,"kind":"formation","status":"started","message":"create f","progress":null,"data":{"op":"create"}}"#,
            r#"{"v":1,"seq":2,"ts":"t","formation":"f","step":null,"kind":"formation","status":"in_progress","message":"plan","progress":{"done":0,"total":1},"data":{"op":"create","steps":[{"id":"vm","description":"do vm","depends_on":[]}]}}"#,
            r#"{"v":1,"seq":3,"ts":"t","formation":"f","step":"vm","kind":"step","status":"succeeded","message":"do vm","progress":{"done":1,"total":1},"data":{"outputs":{"id":"vm-1"}}}"#,
            r#"{"v":1,"seq":4,"ts":"t","formation":"f","step":null,"kind":"log","status":"info","message":"warning: odd","progress":null,"data":{"x":[1,2]}}"#,
            r#"{"v":1,"seq":5,"ts":"t","formation":"f","step":null,"kind":"formation","status":"failed","message":"create failed: no","progress":null,"data":{"op":"create"}}"#,
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let contents = read_all(&path).unwrap();
        assert_eq!(contents.skipped, 0);
        let events = contents.events;
        let levels: Vec<_> = events.iter().map(|e| e.level).collect();
        use EventLevel::*;
        assert_eq!(levels, [Info, Info, Info, Warn, Error]);
        assert_eq!(op_of(&events[0]), Some("create"));
        assert!(
            matches!(&events[1].data, Some(EventData::Run(r)) if r.steps.as_ref().unwrap()[0].id.0 == "vm")
        );
        assert_eq!(
            finished_steps(&events, 0)[&StepId::from("vm")]["id"],
            "vm-1"
        );
        assert!(matches!(events[3].data, Some(EventData::Other(_))));
        assert_eq!(run_finished(&events, 0), Some(EventStatus::Failed));
        // Written again, every payload has the shape it was read with; only `level` is new.
        for (event, line) in events.iter().zip(lines) {
            let mut written = serde_json::to_value(event).unwrap();
            written.as_object_mut().unwrap().remove("level");
            let read: Value = serde_json::from_str(line).unwrap();
            assert_eq!(written, read);
        }
    }

    #[test]
    fn damaged_lines_never_hide_later_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.ndjson");
        let torn = line(2);
        let mut bytes = line(1).into_bytes();
        bytes.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
        bytes.extend_from_slice(line(3).as_bytes());
        bytes.extend_from_slice(b"\xff\xfe not utf-8 \xc3\n");
        bytes.extend_from_slice(line(4).as_bytes());
        bytes.extend_from_slice(&line(5).as_bytes()[..10]);
        std::fs::write(&path, bytes).unwrap();
        let read = read_all(&path).unwrap();
        let seqs: Vec<u64> = read.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 3, 4]);
        assert_eq!(read.skipped, 2, "the torn line and the non-UTF-8 one");
        // The next run's events start on a line of their own.
        let journal = Journal::open(&path, "f", vec![]).unwrap();
        journal.record(None, EventKind::Log, EventStatus::Info, "after", None, None);
        let read = read_all(&path).unwrap();
        assert_eq!(read.events.last().unwrap().message, "after");
        assert_eq!(read.events.last().unwrap().seq, 5);
    }
}
