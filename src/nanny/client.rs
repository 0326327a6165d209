//! The CLI's side of the nanny socket: attach and follow a run, ask for status, cancel. When no
//! nanny is running, the journal on disk answers instead (a finished run replays the same).

use std::path::Path;
use std::time::Duration;

use nepho_provider_api::{Event, EventKind, EventStatus};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{Request, Status};
use crate::engine::journal;
use crate::engine::journal::is_final;
use crate::error::{Error, Result};

/// How following a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    Finished(EventStatus),
    /// Ctrl-C: the client let go, the build goes on.
    Detached,
    /// The nanny went away without a final event (killed).
    Lost,
}

/// Connects to the nanny's socket, waiting up to `wait` for one that is still starting, but not
/// for one that is gone: when `nanny_alive` says no, or the journal has the end of the run that
/// starts at `from`, there is nothing to wait for.
async fn connect(
    socket: &Path,
    wait: Duration,
    journal_path: &Path,
    from: u64,
    nanny_alive: &dyn Fn() -> bool,
) -> Option<UnixStream> {
    let deadline = tokio::time::Instant::now() + wait;
    for attempt in 0u32.. {
        if let Ok(s) = UnixStream::connect(socket).await {
            return Some(s);
        }
        if tokio::time::Instant::now() >= deadline || !nanny_alive() {
            return None;
        }
        // Reading the journal costs more than a connect: every 200 ms is enough.
        if attempt % 8 == 7 && run_ended(journal_path, from) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Does the journal hold the final event of the run starting at `from`?
fn run_ended(journal_path: &Path, from: u64) -> bool {
    journal::read(journal_path)
        .map(|events| events.iter().any(|e| e.seq >= from && is_final(e)))
        .unwrap_or(false)
}

/// Follows events with `seq >= from`, calling `show` for each, until the run's final event.
/// `wait` is how long to wait for a nanny that is still starting; `nanny_alive` tells whether
/// it still runs (its lock is held).
pub async fn follow(
    socket: &Path,
    journal_path: &Path,
    from: u64,
    wait: Duration,
    nanny_alive: &dyn Fn() -> bool,
    show: &mut dyn FnMut(&Event),
) -> Result<Followed> {
    let mut last = from.saturating_sub(1);
    if let Some(stream) = connect(socket, wait, journal_path, from, nanny_alive).await {
        let (read, mut write) = stream.into_split();
        let request = serde_json::to_string(&Request::Subscribe { from }).unwrap_or_default();
        if write
            .write_all(format!("{request}\n").as_bytes())
            .await
            .is_ok()
        {
            let mut lines = BufReader::new(read).lines();
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        match line {
                            Ok(Some(line)) => {
                                let Ok(event) = serde_json::from_str::<Event>(&line) else { continue };
                                last = last.max(event.seq);
                                show(&event);
                                if is_final(&event) {
                                    return Ok(Followed::Finished(event.status));
                                }
                            }
                            _ => break, // nanny gone; the journal tells the rest
                        }
                    }
                    _ = tokio::signal::ctrl_c() => return Ok(Followed::Detached),
                }
            }
        }
    }
    // No nanny (finished, or killed): replay what the journal has.
    let mut finished = None;
    for event in journal::read(journal_path)? {
        if event.seq <= last {
            continue;
        }
        show(&event);
        if is_final(&event) {
            finished = Some(event.status);
            break;
        }
    }
    Ok(match finished {
        Some(status) => Followed::Finished(status),
        None => Followed::Lost,
    })
}

async fn request(socket: &Path, req: &Request) -> Result<String> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|_| Error::not_found("no nanny is running for this formation"))?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{}\n", serde_json::to_string(req).unwrap_or_default()).as_bytes())
        .await
        .map_err(|e| Error::Other(e.to_string()))?;
    let mut lines = BufReader::new(read).lines();
    lines
        .next_line()
        .await
        .map_err(|e| Error::Other(e.to_string()))?
        .ok_or_else(|| Error::Other("the nanny hung up".into()))
}

pub async fn status(socket: &Path) -> Result<Status> {
    let line = request(socket, &Request::Status).await?;
    serde_json::from_str(&line).map_err(|e| Error::Other(e.to_string()))
}

pub async fn cancel(socket: &Path) -> Result<()> {
    request(socket, &Request::Cancel).await.map(|_| ())
}

/// The sequence number where the latest run in the journal starts (1 when there is none).
pub fn last_run_from(journal_path: &Path) -> u64 {
    let events = journal::read(journal_path).unwrap_or_default();
    journal::last_run_start(&events).map_or(1, |i| events[i].seq)
}

/// True for events that end a step, for "N of M done".
pub fn is_step_end(e: &Event) -> bool {
    e.kind == EventKind::Step && matches!(e.status, EventStatus::Succeeded | EventStatus::Skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Journal;

    fn follow_now(socket: &Path, journal: &Path, alive: bool) -> (Followed, Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let followed = runtime
            .block_on(follow(
                socket,
                journal,
                1,
                Duration::from_secs(20),
                &|| alive,
                &mut |_| {},
            ))
            .unwrap();
        (followed, started.elapsed())
    }

    #[test]
    fn no_waiting_for_a_nanny_that_is_gone_or_done() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let journal_path = dir.path().join("journal.ndjson");
        let journal = Journal::open(&journal_path, "f", Vec::new()).unwrap();
        journal.record(
            None,
            EventKind::Formation,
            EventStatus::Started,
            "create f",
            None,
            None,
        );
        // Gone (its lock is free) before finishing: lost, at once.
        let (followed, took) = follow_now(&socket, &journal_path, false);
        assert_eq!(followed, Followed::Lost);
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Still holding its lock but the journal has the end: finished, without the 20 s.
        journal.record(
            None,
            EventKind::Formation,
            EventStatus::Succeeded,
            "done",
            None,
            None,
        );
        let (followed, took) = follow_now(&socket, &journal_path, true);
        assert_eq!(followed, Followed::Finished(EventStatus::Succeeded));
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
