//! Read-only views of formations, straight from CloudFormation: list, describe, endpoints, and
//! the preview (a change set that is described and then deleted).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_cloudformation::types::{ChangeSetType, Stack};
use nepho_provider_api::{
    Endpoints, EventKind, EventSink, EventStatus, FormationDetails, FormationSpec,
    FormationSummary, PlannedChange, Progress, ProviderError, ProviderKind, ResourceStatus,
    SshEndpoint,
};

use crate::errors::api;
use crate::stack::{event_line, formation_state};
use crate::steps::Prepared;
use crate::{CloudFormationProvider, TAG_CLOUDLET, TAG_FORMATION, TAG_SCENARIO, s3};

/// Output names for the URL `formation:open` shows, in order of preference.
const URL_OUTPUTS: &[&str] = &["URL", "WebsiteURL", "Url"];
const SSH_HOST_OUTPUT: &str = "SSHEndpoint";
const SSH_USER_OUTPUT: &str = "SSHUser";
const SSH_PORT_OUTPUT: &str = "SSHPort";
/// The login of Amazon Linux, when the template does not say.
const DEFAULT_SSH_USER: &str = "ec2-user";

fn tag<'s>(stack: &'s Stack, key: &str) -> Option<&'s str> {
    stack
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn summary(stack: &Stack) -> FormationSummary {
    let status = stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let reason = stack
        .stack_status_reason()
        .filter(|r| !r.is_empty())
        .map(|r| format!("{status}: {r}"))
        .unwrap_or(status.clone());
    FormationSummary {
        name: tag(stack, TAG_FORMATION)
            .or(stack.stack_name())
            .unwrap_or_default()
            .to_string(),
        provider: ProviderKind::Aws,
        cloudlet: tag(stack, TAG_CLOUDLET).map(str::to_string),
        scenario: tag(stack, TAG_SCENARIO).map(str::to_string),
        state: formation_state(&status),
        status_reason: Some(reason),
    }
}

fn outputs(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect()
}

/// Turns stack outputs into endpoints (1.x convention: `SSHEndpoint`, `SSHUser`).
pub fn endpoints_from_outputs(machine: &str, outputs: BTreeMap<String, String>) -> Endpoints {
    let non_empty = |key: &str| outputs.get(key).filter(|v| !v.trim().is_empty()).cloned();
    let mut ssh = Vec::new();
    if let Some(endpoint) = non_empty(SSH_HOST_OUTPUT) {
        let endpoint = endpoint.trim().to_string();
        let user_in_host = endpoint.split_once('@');
        let (user_from_host, host_port) = match user_in_host {
            Some((user, rest)) => (Some(user.to_string()), rest.to_string()),
            None => (None, endpoint.clone()),
        };
        let (host, port_from_host) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host.to_string(), port.parse().ok()),
            _ => (host_port.clone(), None),
        };
        let port = port_from_host
            .or_else(|| non_empty(SSH_PORT_OUTPUT).and_then(|p| p.trim().parse().ok()))
            .unwrap_or(22);
        let user = non_empty(SSH_USER_OUTPUT)
            .or(user_from_host)
            .unwrap_or_else(|| DEFAULT_SSH_USER.to_string());
        ssh.push(SshEndpoint {
            machine: machine.to_string(),
            host,
            port,
            user,
            identity_file: None,
            options: Vec::new(),
        });
    }
    let url = URL_OUTPUTS.iter().find_map(|k| non_empty(k));
    Endpoints { ssh, url, outputs }
}

fn change_action(action: &str) -> String {
    match action {
        "Add" => "add",
        "Modify" | "Dynamic" => "modify",
        "Remove" => "remove",
        "Import" => "import",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

/// Events of a preview go nowhere: it must not print progress of its own.
struct Silent;

impl EventSink for Silent {
    fn emit(&self, _: EventKind, _: EventStatus, _: &str, _: Option<Progress>) {}
}

impl CloudFormationProvider {
    async fn existing_stack(&self, formation: &str) -> Result<Stack, ProviderError> {
        self.find_stack(formation).await?.ok_or_else(|| {
            ProviderError::NotFound(format!(
                "formation {formation} has no CloudFormation stack in {}",
                self.region
            ))
        })
    }

    pub(crate) async fn list_formations(&self) -> Result<Vec<FormationSummary>, ProviderError> {
        let mut formations = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cfn
                .describe_stacks()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(api("DescribeStacks"))?;
            formations.extend(
                page.stacks()
                    .iter()
                    .filter(|s| tag(s, TAG_FORMATION).is_some())
                    .filter(|s| s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE"))
                    .map(summary),
            );
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        formations.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(formations)
    }

    pub(crate) async fn describe_formation(
        &self,
        formation: &str,
    ) -> Result<FormationDetails, ProviderError> {
        let stack = self.existing_stack(formation).await?;
        let stack_id = stack.stack_id().unwrap_or(formation).to_string();
        let resources = self
            .stack_resources(&stack_id)
            .await
            .map_err(ProviderError::from)?
            .into_iter()
            .map(|r| ResourceStatus {
                resource: r.logical_resource_id().unwrap_or_default().to_string(),
                kind: r.resource_type().unwrap_or_default().to_string(),
                status: r
                    .resource_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: r.resource_status_reason().map(str::to_string),
                id: r.physical_resource_id().map(str::to_string),
            })
            .collect();
        let page = self
            .cfn
            .describe_stack_events()
            .stack_name(&stack_id)
            .send()
            .await
            .map_err(api("DescribeStackEvents"))?;
        let mut recent_events: Vec<String> = page
            .stack_events()
            .iter()
            .take(10)
            .map(|e| {
                let when = e
                    .timestamp()
                    .and_then(|t| {
                        t.fmt(aws_sdk_cloudformation::primitives::DateTimeFormat::DateTime)
                            .ok()
                    })
                    .unwrap_or_default();
                format!("{when} {}", event_line(e))
            })
            .collect();
        recent_events.reverse();
        Ok(FormationDetails {
            summary: summary(&stack),
            resources,
            outputs: outputs(&stack),
            recent_events,
        })
    }

    pub(crate) async fn formation_endpoints(
        &self,
        formation: &str,
    ) -> Result<Endpoints, ProviderError> {
        let stack = self.existing_stack(formation).await?;
        Ok(endpoints_from_outputs(formation, outputs(&stack)))
    }

    /// Creates a change set, describes it, then removes it and any stack it brought into being.
    pub(crate) async fn preview_changes(
        &self,
        spec: &FormationSpec,
    ) -> Result<Vec<PlannedChange>, ProviderError> {
        let prepared = Prepared::new(spec)?;
        let existing = self.find_stack(&spec.name).await?;
        let change_set_type = match &existing {
            Some(s) if s.stack_status().map(|s| s.as_str()) != Some("REVIEW_IN_PROGRESS") => {
                ChangeSetType::Update
            }
            _ => ChangeSetType::Create,
        };
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let change_set = format!("nepho-preview-{millis}");
        let template_key = prepared
            .needs_s3()
            .then(|| format!("{}preview-template-{millis}", s3::prefix(&spec.name)));
        if let Some(key) = &template_key {
            self.upload(key, prepared.body.as_bytes().to_vec()).await?;
        }
        // The payload is not uploaded for a preview: a placeholder URL stands in.
        let payload_url = (!prepared.mapping.supplied_by_nepho.is_empty())
            .then_some("https://example.invalid/nepho-preview-payload.zip");
        let result = self
            .describe_preview(
                spec,
                &prepared,
                &change_set,
                change_set_type,
                template_key.as_deref(),
                payload_url,
            )
            .await;

        // Clean up whatever happened above; report the first error.
        let mut cleanup = self.delete_change_set(&spec.name, &change_set).await;
        if existing.is_none() {
            let removed = self
                .delete_stack(&spec.name, Arc::new(Silent), false)
                .await
                .map(|_| ());
            cleanup = cleanup.and(removed);
        }
        if let Some(key) = &template_key {
            cleanup = cleanup.and(self.delete_object(key).await);
        }
        let changes = result?;
        cleanup?;
        Ok(changes)
    }

    async fn describe_preview(
        &self,
        spec: &FormationSpec,
        prepared: &Prepared<'_>,
        change_set: &str,
        change_set_type: ChangeSetType,
        template_key: Option<&str>,
        payload_url: Option<&str>,
    ) -> Result<Vec<PlannedChange>, ProviderError> {
        let first = self
            .create_change_set(
                spec,
                prepared,
                &spec.name,
                change_set,
                change_set_type,
                template_key,
                payload_url,
                &Silent,
            )
            .await?;
        let status = first.status().map(|s| s.as_str()).unwrap_or_default();
        if status == "FAILED" {
            let reason = first.status_reason().unwrap_or_default();
            if reason.contains("didn't contain changes") || reason.contains("No updates") {
                return Ok(Vec::new());
            }
            return Err(ProviderError::Invalid {
                message: format!(
                    "CloudFormation rejected the change set for stack {}: {reason}",
                    spec.name
                ),
                hint: Some("check the rendered template with `nepho scenario:render`".to_string()),
            });
        }
        let mut changes = Vec::new();
        let mut page = first;
        loop {
            for change in page.changes() {
                let Some(rc) = change.resource_change() else {
                    continue;
                };
                let scope: Vec<&str> = rc.scope().iter().map(|s| s.as_str()).collect();
                let changed_properties: Vec<&str> = rc
                    .details()
                    .iter()
                    .filter_map(|d| d.target())
                    .filter_map(|t| t.name())
                    .collect();
                let details = if !changed_properties.is_empty() {
                    Some(format!("changes {}", changed_properties.join(", ")))
                } else if !scope.is_empty() {
                    Some(format!("changes {}", scope.join(", ")))
                } else {
                    None
                };
                changes.push(PlannedChange {
                    action: change_action(rc.action().map(|a| a.as_str()).unwrap_or("?")),
                    resource: rc.logical_resource_id().unwrap_or_default().to_string(),
                    kind: rc.resource_type().unwrap_or_default().to_string(),
                    replacement: rc.replacement().map(|r| r.as_str().to_ascii_lowercase()),
                    details,
                });
            }
            let Some(token) = page.next_token().filter(|t| !t.is_empty()) else {
                break;
            };
            page = self
                .cfn
                .describe_change_set()
                .stack_name(&spec.name)
                .change_set_name(change_set)
                .next_token(token)
                .send()
                .await
                .map_err(api("DescribeChangeSet"))?;
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ssh_and_url_from_1x_outputs() {
        let e = endpoints_from_outputs(
            "web",
            outputs(&[
                ("SSHEndpoint", "54.1.2.3"),
                ("SSHUser", "admin"),
                ("URL", "http://54.1.2.3/"),
                ("Other", "x"),
            ]),
        );
        assert_eq!(e.ssh.len(), 1);
        assert_eq!(e.ssh[0].host, "54.1.2.3");
        assert_eq!(e.ssh[0].user, "admin");
        assert_eq!(e.ssh[0].port, 22);
        assert_eq!(e.url.as_deref(), Some("http://54.1.2.3/"));
        assert_eq!(e.outputs.len(), 4);
    }

    #[test]
    fn ssh_endpoint_may_carry_user_and_port() {
        let e = endpoints_from_outputs(
            "web",
            outputs(&[
                ("SSHEndpoint", "deploy@host.example:2222"),
                ("WebsiteURL", "https://x"),
            ]),
        );
        assert_eq!(
            (
                e.ssh[0].user.as_str(),
                e.ssh[0].host.as_str(),
                e.ssh[0].port
            ),
            ("deploy", "host.example", 2222)
        );
        assert_eq!(e.url.as_deref(), Some("https://x"));
        let none = endpoints_from_outputs("web", outputs(&[("SSHEndpoint", "")]));
        assert!(none.ssh.is_empty() && none.url.is_none());
    }

    #[test]
    fn change_actions() {
        assert_eq!(change_action("Add"), "add");
        assert_eq!(change_action("Modify"), "modify");
        assert_eq!(change_action("Remove"), "remove");
    }
}
