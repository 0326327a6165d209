//! The CLI's side of the nanny socket: attach and follow a run, ask for status, cancel. When no
//! nanny is running, the journal on disk answers instead (a finished run replays the same).

use std::path::Path;
use std::time::Duration;

use nepho_provider_api::{Event, EventKind, EventStatus};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{Request, Status, is_final};
use crate::engine::journal;
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

async fn connect(socket: &Path, wait: Duration) -> Option<UnixStream> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Ok(s) = UnixStream::connect(socket).await {
            return Some(s);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Follows events with `seq >= from`, calling `show` for each, until the run's final event.
/// `wait` is how long to wait for a nanny that is still starting.
pub async fn follow(
    socket: &Path,
    journal_path: &Path,
    from: u64,
    wait: Duration,
    show: &mut dyn FnMut(&Event),
) -> Result<Followed> {
    let mut last = from.saturating_sub(1);
    if let Some(stream) = connect(socket, wait).await {
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
