//! Watching a stack: adaptive polling (fast at first, slower while nothing changes, much slower
//! under throttling, never giving up while the stack is in progress), stack events and resource
//! states streamed as `Resource` events, and the failing resources' reasons when it fails.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudformation::types::{Stack, StackEvent};
use nepho_provider_api::{EventKind, EventSink, EventStatus, FormationState, Progress};
use tokio::time::Instant;

use crate::CloudFormationProvider;
use crate::errors::{ApiError, ApiErrorKind, api};

const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(3);
const MAX_THROTTLED_DELAY: Duration = Duration::from_secs(30);
/// Consecutive network/5xx failures tolerated before giving up (throttling never counts).
const MAX_TRANSIENT_FAILURES: u32 = 30;

/// The sleep between polls: 250 ms at first, ×1.5 while nothing changes (up to 3 s), back to
/// fast when something moves, and ×2 up to 30 s while AWS throttles.
pub struct Backoff {
    delay: Duration,
    transient_failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            delay: FIRST_DELAY,
            transient_failures: 0,
        }
    }
}

impl Backoff {
    pub async fn wait(&mut self, changed: bool) {
        self.transient_failures = 0;
        if changed {
            self.delay = FIRST_DELAY;
        }
        tokio::time::sleep(self.delay).await;
        if !changed {
            self.delay = (self.delay.mul_f32(1.5)).min(MAX_DELAY);
        }
    }

    /// After a failed poll: wait and return Ok to try again, or the error to give up.
    pub async fn after_error(
        &mut self,
        error: ApiError,
        events: &dyn EventSink,
    ) -> Result<(), ApiError> {
        match error.kind {
            ApiErrorKind::Throttled => {
                self.delay = (self.delay * 2).clamp(Duration::from_secs(2), MAX_THROTTLED_DELAY);
                events.emit(
                    EventKind::Log,
                    EventStatus::Waiting,
                    &format!(
                        "AWS is throttling {} calls; next poll in {} s",
                        error.op,
                        self.delay.as_secs()
                    ),
                    None,
                );
            }
            ApiErrorKind::Transient => {
                self.transient_failures += 1;
                if self.transient_failures > MAX_TRANSIENT_FAILURES {
                    return Err(error);
                }
                self.delay = (self.delay * 2).min(MAX_THROTTLED_DELAY);
                events.emit(
                    EventKind::Log,
                    EventStatus::Waiting,
                    &format!(
                        "{} failed ({}); retrying in {} s",
                        error.op,
                        error.message,
                        self.delay.as_secs()
                    ),
                    None,
                );
            }
            ApiErrorKind::Rejected => return Err(error),
        }
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
}

/// True while CloudFormation is still working on the stack.
pub fn in_progress(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS"
}

pub fn formation_state(status: &str) -> FormationState {
    match status {
        "CREATE_IN_PROGRESS" | "REVIEW_IN_PROGRESS" => FormationState::Creating,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE" => {
            FormationState::Running
        }
        "DELETE_IN_PROGRESS" => FormationState::Destroying,
        "DELETE_COMPLETE" => FormationState::Destroyed,
        s if s.starts_with("UPDATE_") || s.starts_with("IMPORT_IN_PROGRESS") => {
            if s.ends_with("_FAILED") {
                FormationState::Failed
            } else {
                FormationState::Updating
            }
        }
        s if s.ends_with("_FAILED") || s.starts_with("ROLLBACK_") || s.contains("ROLLBACK") => {
            FormationState::Failed
        }
        _ => FormationState::Unknown,
    }
}

fn event_status(status: &str) -> EventStatus {
    if status.ends_with("_FAILED") || (status.contains("ROLLBACK") && status.ends_with("_COMPLETE"))
    {
        EventStatus::Failed
    } else if status.ends_with("_COMPLETE") {
        EventStatus::Succeeded
    } else if status.ends_with("_IN_PROGRESS") {
        EventStatus::InProgress
    } else if status.ends_with("_SKIPPED") {
        EventStatus::Skipped
    } else {
        EventStatus::Info
    }
}

/// "LogicalId AWS::Type STATUS: reason" — how every resource line reads.
pub fn resource_line(logical: &str, kind: &str, status: &str, reason: Option<&str>) -> String {
    match reason.filter(|r| !r.is_empty()) {
        Some(reason) => format!("{logical} {kind} {status}: {reason}"),
        None => format!("{logical} {kind} {status}"),
    }
}

pub fn event_line(event: &StackEvent) -> String {
    resource_line(
        event.logical_resource_id().unwrap_or("?"),
        event.resource_type().unwrap_or("?"),
        event.resource_status().map(|s| s.as_str()).unwrap_or("?"),
        event.resource_status_reason(),
    )
}

/// One failing resource, for the error a user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFailure {
    pub logical_id: String,
    pub kind: String,
    pub status: String,
    pub reason: String,
}

impl ResourceFailure {
    fn is_consequence(&self) -> bool {
        // Resources stopped because another one failed: not the cause.
        let r = self.reason.to_ascii_lowercase();
        r.contains("resource creation cancelled") || r.contains("resource update cancelled")
    }
}

/// What the watch saw when the stack settled.
pub struct Settled {
    pub stack: Stack,
    pub status: String,
    pub failures: Vec<ResourceFailure>,
}

/// Follows one stack (by id, so a deleted stack can still be read) until it settles.
pub struct StackWatch<'a> {
    provider: &'a CloudFormationProvider,
    stack_id: String,
    stack_name: String,
    events: Arc<dyn EventSink>,
    seen_events: HashSet<String>,
    /// Last status reported per logical id, from events or from the resource list.
    reported: BTreeMap<String, String>,
    failures: Vec<ResourceFailure>,
    /// Resources the template declares: the progress total.
    expected_resources: u64,
    show_progress: bool,
}

impl<'a> StackWatch<'a> {
    pub fn new(
        provider: &'a CloudFormationProvider,
        stack: &Stack,
        events: Arc<dyn EventSink>,
        expected_resources: usize,
        show_progress: bool,
    ) -> StackWatch<'a> {
        StackWatch {
            provider,
            stack_id: stack.stack_id().unwrap_or_default().to_string(),
            stack_name: stack.stack_name().unwrap_or_default().to_string(),
            events,
            seen_events: HashSet::new(),
            reported: BTreeMap::new(),
            failures: Vec::new(),
            expected_resources: expected_resources as u64,
            show_progress,
        }
    }

    /// Polls until the stack leaves every `*_IN_PROGRESS` state. `review_grace`: how long a
    /// stack may still show REVIEW_IN_PROGRESS after its change set was executed.
    pub async fn until_settled(&mut self, review_grace: Duration) -> Result<Settled, ApiError> {
        let started = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            let stack = match self.describe().await {
                Ok(stack) => stack,
                Err(e) => {
                    backoff.after_error(e, self.events.as_ref()).await?;
                    continue;
                }
            };
            let status = stack
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            let changed = match self.report_progress().await {
                Ok(changed) => changed,
                Err(e) if e.kind == ApiErrorKind::Rejected => false,
                Err(e) => {
                    backoff.after_error(e, self.events.as_ref()).await?;
                    continue;
                }
            };
            let waiting_for_review =
                status == "REVIEW_IN_PROGRESS" && started.elapsed() < review_grace;
            if !in_progress(&status) && !waiting_for_review {
                // One last look so the final resource states are reported before returning.
                if changed {
                    let _ = self.report_progress().await;
                }
                let failures = self
                    .failures
                    .iter()
                    .filter(|f| !f.is_consequence())
                    .cloned()
                    .collect();
                return Ok(Settled {
                    stack,
                    status,
                    failures,
                });
            }
            backoff.wait(changed).await;
        }
    }

    async fn describe(&self) -> Result<Stack, ApiError> {
        let out = self
            .provider
            .cfn
            .describe_stacks()
            .stack_name(&self.stack_id)
            .send()
            .await
            .map_err(api("DescribeStacks"))?;
        out.stacks().first().cloned().ok_or_else(|| ApiError {
            op: "DescribeStacks",
            code: Some("ValidationError".to_string()),
            message: format!("Stack with id {} does not exist", self.stack_id),
            kind: ApiErrorKind::Rejected,
        })
    }

    /// Emits what is new since the last poll; true if anything was.
    async fn report_progress(&mut self) -> Result<bool, ApiError> {
        let mut changed = false;
        for event in self.new_events().await? {
            changed = true;
            let logical = event.logical_resource_id().unwrap_or("?").to_string();
            let status = event
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            self.note_failure(
                &logical,
                event.resource_type().unwrap_or("?"),
                &status,
                event.resource_status_reason(),
            );
            self.reported.insert(logical, status.clone());
            let progress = self.progress();
            self.events.emit(
                EventKind::Resource,
                event_status(&status),
                &event_line(&event),
                progress,
            );
        }
        // moto (and a slow event feed) may not show per-resource events: the resource list is
        // the other source of truth.
        let resources = self.provider.stack_resources(&self.stack_id).await?;
        for resource in resources {
            let logical = resource.logical_resource_id().unwrap_or("?").to_string();
            let status = resource
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if self.reported.get(&logical) == Some(&status) {
                continue;
            }
            changed = true;
            let kind = resource.resource_type().unwrap_or("?").to_string();
            self.note_failure(&logical, &kind, &status, resource.resource_status_reason());
            self.reported.insert(logical.clone(), status.clone());
            let progress = self.progress();
            self.events.emit(
                EventKind::Resource,
                event_status(&status),
                &resource_line(&logical, &kind, &status, resource.resource_status_reason()),
                progress,
            );
        }
        Ok(changed)
    }

    fn note_failure(&mut self, logical: &str, kind: &str, status: &str, reason: Option<&str>) {
        if !status.ends_with("_FAILED") || logical == self.stack_name {
            return;
        }
        let failure = ResourceFailure {
            logical_id: logical.to_string(),
            kind: kind.to_string(),
            status: status.to_string(),
            reason: reason.unwrap_or("no reason given").to_string(),
        };
        if !self.failures.contains(&failure) {
            self.failures.push(failure);
        }
    }

    fn progress(&self) -> Option<Progress> {
        if !self.show_progress {
            return None;
        }
        let resources: Vec<&String> = self
            .reported
            .iter()
            .filter(|(logical, _)| **logical != self.stack_name)
            .map(|(_, status)| status)
            .collect();
        let done = resources
            .iter()
            .filter(|s| s.ends_with("_COMPLETE") && !s.contains("ROLLBACK"))
            .count() as u64;
        let total = self.expected_resources.max(resources.len() as u64);
        Some(Progress { done, total })
    }

    /// Stack events not reported yet, oldest first. Without history, only the current
    /// operation's: back to the newest "User Initiated" stack event.
    async fn new_events(&mut self) -> Result<Vec<StackEvent>, ApiError> {
        let first_poll = self.seen_events.is_empty();
        let mut fresh = Vec::new();
        let mut next_token: Option<String> = None;
        'pages: for _ in 0..5 {
            let page = self
                .provider
                .cfn
                .describe_stack_events()
                .stack_name(&self.stack_id)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(api("DescribeStackEvents"))?;
            for event in page.stack_events() {
                let id = event.event_id().unwrap_or_default().to_string();
                if self.seen_events.contains(&id) {
                    break 'pages;
                }
                let operation_start = event.logical_resource_id() == Some(&self.stack_name)
                    && event.resource_status_reason() == Some("User Initiated");
                fresh.push(event.clone());
                if first_poll && operation_start {
                    break 'pages;
                }
            }
            match page.next_token() {
                Some(token) => next_token = Some(token.to_string()),
                None => break,
            }
        }
        for event in &fresh {
            self.seen_events
                .insert(event.event_id().unwrap_or_default().to_string());
        }
        fresh.reverse();
        Ok(fresh)
    }
}

/// The error message for a stack that ended in a failure state.
pub fn failure_message(stack_name: &str, settled: &Settled) -> String {
    let mut message = format!("stack {stack_name} ended in {}", settled.status);
    if let Some(reason) = settled
        .stack
        .stack_status_reason()
        .filter(|r| !r.is_empty())
    {
        message.push_str(&format!(" ({reason})"));
    }
    if settled.failures.is_empty() {
        message.push_str("; CloudFormation reported no failing resource");
    } else {
        message.push_str("; failing resources:");
        for f in &settled.failures {
            message.push_str(&format!(
                "\n  {} ({}) {}: {}",
                f.logical_id, f.kind, f.status, f.reason
            ));
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_stack_status() {
        assert_eq!(formation_state("CREATE_COMPLETE"), FormationState::Running);
        assert_eq!(
            formation_state("REVIEW_IN_PROGRESS"),
            FormationState::Creating
        );
        assert_eq!(formation_state("ROLLBACK_COMPLETE"), FormationState::Failed);
        assert_eq!(
            formation_state("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
            FormationState::Updating
        );
        assert_eq!(
            formation_state("UPDATE_ROLLBACK_FAILED"),
            FormationState::Failed
        );
        assert_eq!(
            formation_state("DELETE_IN_PROGRESS"),
            FormationState::Destroying
        );
        assert_eq!(formation_state("DELETE_FAILED"), FormationState::Failed);
    }

    #[test]
    fn in_progress_excludes_review() {
        assert!(in_progress("CREATE_IN_PROGRESS"));
        assert!(in_progress("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(!in_progress("REVIEW_IN_PROGRESS"));
        assert!(!in_progress("ROLLBACK_COMPLETE"));
    }

    #[test]
    fn resource_lines() {
        assert_eq!(
            resource_line("Web", "AWS::EC2::Instance", "CREATE_FAILED", Some("no AMI")),
            "Web AWS::EC2::Instance CREATE_FAILED: no AMI"
        );
        assert_eq!(
            resource_line("Web", "AWS::EC2::Instance", "CREATE_COMPLETE", None),
            "Web AWS::EC2::Instance CREATE_COMPLETE"
        );
        assert_eq!(event_status("ROLLBACK_COMPLETE"), EventStatus::Failed);
        assert_eq!(event_status("CREATE_COMPLETE"), EventStatus::Succeeded);
    }

    #[test]
    fn failure_message_lists_causes_not_cancellations() {
        let stack = Stack::builder()
            .stack_name("web")
            .stack_status(aws_sdk_cloudformation::types::StackStatus::RollbackComplete)
            .creation_time(aws_sdk_cloudformation::primitives::DateTime::from_secs(0))
            .build();
        let cause = ResourceFailure {
            logical_id: "Db".into(),
            kind: "AWS::RDS::DBInstance".into(),
            status: "CREATE_FAILED".into(),
            reason: "DB instance class not available".into(),
        };
        let cancelled = ResourceFailure {
            logical_id: "Web1".into(),
            kind: "AWS::EC2::Instance".into(),
            status: "CREATE_FAILED".into(),
            reason: "Resource creation cancelled".into(),
        };
        assert!(cancelled.is_consequence() && !cause.is_consequence());
        let settled = Settled {
            stack,
            status: "ROLLBACK_COMPLETE".into(),
            failures: vec![cause],
        };
        let message = failure_message("web", &settled);
        assert!(
            message.contains(
                "Db (AWS::RDS::DBInstance) CREATE_FAILED: DB instance class not available"
            ),
            "{message}"
        );
    }
}
