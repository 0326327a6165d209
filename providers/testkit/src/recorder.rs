//! An [`EventSink`] that keeps every event, for assertions on what a user would see.

use std::sync::Mutex;

use nepho_provider_api::{EventKind, EventSink, EventStatus, Progress};

/// One emitted event: kind, status, message, progress.
pub type Recorded = (EventKind, EventStatus, String, Option<Progress>);

/// Every event a provider emitted, in order. Each is also printed to stderr, which the test
/// harness shows only for a failing test: the provider's own account of what went wrong.
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
        eprintln!("  event {kind:?} {status:?}: {message}");
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push((
            kind,
            status,
            message.to_string(),
            progress,
        ));
    }
}

impl Recorder {
    pub fn messages(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|e| e.2.clone())
            .collect()
    }
}
