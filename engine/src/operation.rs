//! Machine and cluster operations outside the engine's runs (power, media, drives, NICs,
//! failover, migrate, rebalance, evacuate) are journaled too: a `started` event, then
//! `succeeded` or `failed` with the error, so every change to a formation is in its journal
//! (and every change to the cluster in the cluster journal, see [`cluster_journal_path`]).
//!
//! [`cluster_journal_path`]: crate::journal::cluster_journal_path

use std::fmt::Display;
use std::future::Future;

use nepho_provider_api::{EventData, EventStatus, OperationData};

use crate::journal::Journal;

/// Runs `operation` (the future doing `data`'s change), journaling it before and after: the
/// events' kind is `data`'s ([`OperationData::kind`]), their data `data`. The failure message
/// is the error's `Display`; the journal scrubs the formation's secret values from it, and an
/// error must not carry other secrets. Returns the operation's own result.
pub async fn record_operation<T, E: Display>(
    journal: &Journal,
    data: OperationData,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let kind = data.kind();
    let what = data.to_string();
    journal.record(
        None,
        kind,
        EventStatus::Started,
        &what,
        None,
        Some(EventData::Operation(data.clone())),
    );
    let result = operation.await;
    let (status, message) = match &result {
        Ok(_) => (EventStatus::Succeeded, format!("{what}: done")),
        Err(e) => (EventStatus::Failed, format!("{what} failed: {e}")),
    };
    journal.record(
        None,
        kind,
        status,
        &message,
        None,
        Some(EventData::Operation(data)),
    );
    result
}

#[cfg(test)]
mod tests {
    use nepho_provider_api::{EventKind, EventLevel, PowerAction};

    use super::*;
    use crate::journal;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_successful_operation_is_journaled_started_then_succeeded() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.ndjson"), "agmedia", vec![]).unwrap();
        let data = OperationData::Power {
            formation: "agmedia".into(),
            machine: Some("web".into()),
            action: PowerAction::Stop,
        };
        let out: Result<u32, String> =
            block_on(record_operation(&journal, data.clone(), async { Ok(7) }));
        assert_eq!(out, Ok(7));
        let events = journal::read(&journal.path).unwrap();
        let shape: Vec<_> = events.iter().map(|e| (e.kind, e.status, e.level)).collect();
        assert_eq!(
            shape,
            [
                (EventKind::Power, EventStatus::Started, EventLevel::Info),
                (EventKind::Power, EventStatus::Succeeded, EventLevel::Info),
            ]
        );
        assert_eq!(events[0].message, "stop web of agmedia");
        assert!(
            events
                .iter()
                .all(|e| e.data == Some(EventData::Operation(data.clone())))
        );
        // Typed on disk: the operation names itself.
        let text = std::fs::read_to_string(&journal.path).unwrap();
        assert!(
            text.contains(r#""data":{"operation":"power","formation":"agmedia","machine":"web","action":"stop"}"#),
            "{text}"
        );
        // An operation is not a run: a resume never mistakes it for one.
        assert_eq!(journal::last_run_start(&events), None);
    }

    #[test]
    fn a_failed_operation_is_journaled_with_its_error_and_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster").join("journal.ndjson");
        assert_eq!(journal::cluster_journal_path(dir.path()), path);
        // The cluster directory does not exist yet: open_cluster makes it.
        assert!(Journal::open(&path, "", vec![]).is_err());
        let journal = Journal::open_cluster(dir.path()).unwrap();
        assert_eq!(journal.path, path);
        let data = OperationData::Migrate {
            formation: "agmedia".into(),
            machine: "db".into(),
            from: "h1".into(),
            to: "h2".into(),
            live: true,
        };
        let out: Result<(), String> = block_on(record_operation(&journal, data, async {
            Err("h2 refused the migration".to_string())
        }));
        assert!(out.is_err());
        let events = journal::read(&path).unwrap();
        let last = events.last().unwrap();
        assert_eq!(
            (last.kind, last.status, last.level),
            (EventKind::Migrate, EventStatus::Failed, EventLevel::Error)
        );
        assert_eq!(
            last.message,
            "migrate db of agmedia from h1 to h2 (live) failed: h2 refused the migration"
        );
        assert_eq!(last.formation, "");

        // A formation's secrets are scrubbed from an operation's error.
        let journal = Journal::open(
            &dir.path().join("f.ndjson"),
            "f",
            vec!["hunter2-secret".into()],
        )
        .unwrap();
        let data = OperationData::Media {
            formation: "f".into(),
            machine: "web".into(),
            iso: Some("installer.iso".into()),
        };
        let _: Result<(), String> = block_on(record_operation(&journal, data, async {
            Err("login with hunter2-secret failed".to_string())
        }));
        let text = std::fs::read_to_string(&journal.path).unwrap();
        assert!(
            !text.contains("hunter2-secret") && text.contains("********"),
            "{text}"
        );
    }
}
