//! Plans and their steps. Every step reads what exists from CloudFormation and S3 first, so it
//! is safe to run again after a crash at any point; secret values are read from the spec when
//! the step runs and never enter a step's action, outputs or events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetType, OnStackFailure, Parameter, Stack, Tag,
};
use nepho_provider_api::{
    EventKind, EventSink, EventStatus, FormationSpec, Plan, ProviderError, Step, StepContext,
    StepId, StepOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::{ApiError, api};
use crate::stack::{StackWatch, failure_message, in_progress};
use crate::template::{
    self, INLINE_TEMPLATE_LIMIT, PAYLOAD_URL_PARAMETER, ParameterMapping, S3_TEMPLATE_LIMIT,
    TemplateInfo,
};
use crate::{CloudFormationProvider, OnFailure, TAG_CLOUDLET, TAG_FORMATION, TAG_SCENARIO, s3};

pub const STEP_TEMPLATE: &str = "template";
pub const STEP_PAYLOAD: &str = "payload";
pub const STEP_CHANGE_SET: &str = "change-set";
pub const STEP_EXECUTE: &str = "execute";
pub const STEP_DELETE_STACK: &str = "delete-stack";
pub const STEP_DELETE_OBJECTS: &str = "delete-objects";

const CREATE_CHANGE_SET: &str = "nepho-create";
const UPDATE_CHANGE_SET: &str = "nepho-update";

/// How long a stack may still read REVIEW_IN_PROGRESS after ExecuteChangeSet returned.
const REVIEW_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
}

impl ChangeKind {
    fn change_set_type(self) -> ChangeSetType {
        match self {
            ChangeKind::Create => ChangeSetType::Create,
            ChangeKind::Update => ChangeSetType::Update,
        }
    }

    fn change_set_name(self) -> &'static str {
        match self {
            ChangeKind::Create => CREATE_CHANGE_SET,
            ChangeKind::Update => UPDATE_CHANGE_SET,
        }
    }
}

/// A step's journaled action: names and keys only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Action {
    UploadTemplate {
        stack: String,
        key: String,
    },
    UploadPayload {
        stack: String,
        key: String,
    },
    CreateChangeSet {
        stack: String,
        change_set: String,
        kind: ChangeKind,
        template_key: Option<String>,
        payload_key: Option<String>,
    },
    ExecuteChangeSet {
        stack: String,
        change_set: String,
        kind: ChangeKind,
    },
    DeleteStack {
        stack: String,
    },
    DeleteObjects {
        stack: String,
        prefix: String,
    },
}

/// The template of a spec, parsed and checked, with the parameter mapping (names only).
pub struct Prepared<'a> {
    pub file: &'a str,
    pub body: &'a str,
    pub info: TemplateInfo,
    pub mapping: ParameterMapping,
    pub with_payload: bool,
}

impl<'a> Prepared<'a> {
    pub fn new(spec: &'a FormationSpec) -> Result<Prepared<'a>, ProviderError> {
        template::validate_stack_name(&spec.name)?;
        let file = pick_template(spec)?;
        let size = file.contents.len();
        if size > S3_TEMPLATE_LIMIT {
            return Err(ProviderError::Invalid {
                message: format!(
                    "the rendered template {} is {size} bytes; CloudFormation accepts at most {S3_TEMPLATE_LIMIT}",
                    file.name
                ),
                hint: Some("split the pattern into nested stacks or shrink it".to_string()),
            });
        }
        let info = TemplateInfo::parse(&file.name, &file.contents)?;
        let with_payload = spec.v1 && spec.payload_dir.is_some();
        let mapping = template::map_parameters(
            &info,
            &spec.parameters,
            with_payload && info.declares(PAYLOAD_URL_PARAMETER),
        )?;
        Ok(Prepared {
            file: &file.name,
            body: &file.contents,
            info,
            mapping,
            with_payload,
        })
    }

    pub fn needs_s3(&self) -> bool {
        self.body.len() > INLINE_TEMPLATE_LIMIT
    }

    /// The CloudFormation parameters, values included: build only when the call is made.
    pub fn parameters(&self, spec: &FormationSpec, payload_url: Option<&str>) -> Vec<Parameter> {
        let mut out: Vec<Parameter> = self
            .mapping
            .passed
            .iter()
            .map(|(template_name, nepho_name)| {
                Parameter::builder()
                    .parameter_key(template_name)
                    .parameter_value(template::stringify(&spec.parameters[nepho_name]))
                    .build()
            })
            .collect();
        if let Some(url) = payload_url {
            for name in &self.mapping.supplied_by_nepho {
                out.push(
                    Parameter::builder()
                        .parameter_key(name)
                        .parameter_value(url)
                        .build(),
                );
            }
        }
        out
    }

    /// Tells the user which nepho parameters CloudFormation does not receive (names only).
    pub fn report_skipped(&self, events: &dyn EventSink) {
        if self.mapping.skipped.is_empty() {
            return;
        }
        events.emit(
            EventKind::Log,
            EventStatus::Info,
            &format!(
                "warning: the template {} declares no parameter for {}; not passed to CloudFormation (used only while rendering)",
                self.file,
                self.mapping.skipped.join(", ")
            ),
            None,
        );
    }
}

/// The CloudFormation template among the rendered files: the only one, or the first that
/// looks like a template.
fn pick_template(spec: &FormationSpec) -> Result<&nepho_provider_api::RenderedFile, ProviderError> {
    let looks_like_template = |name: &str| {
        [".cf", ".json", ".yaml", ".yml", ".template", ".cfn"]
            .iter()
            .any(|ext| name.ends_with(ext))
    };
    spec.pattern
        .iter()
        .find(|f| looks_like_template(&f.name))
        .or(spec.pattern.first())
        .ok_or_else(|| ProviderError::Invalid {
            message: format!(
                "formation {} has no rendered CloudFormation template",
                spec.name
            ),
            hint: Some("the scenario's pattern must name a file under patterns/aws/".to_string()),
        })
}

fn step(id: &str, description: String, depends_on: &[&str], action: Action) -> Step {
    Step {
        id: StepId::from(id),
        description,
        depends_on: depends_on.iter().map(|d| StepId::from(*d)).collect(),
        action: serde_json::to_value(action).expect("actions serialize"),
    }
}

pub fn plan_deploy(spec: &FormationSpec, kind: ChangeKind) -> Result<Plan, ProviderError> {
    let prepared = Prepared::new(spec)?;
    let stack = spec.name.clone();
    let mut steps = Vec::new();
    let mut before_change_set: Vec<&str> = Vec::new();
    let template_key = prepared.needs_s3().then(|| s3::template_key(&stack));
    if let Some(key) = &template_key {
        steps.push(step(
            STEP_TEMPLATE,
            format!(
                "upload the template to S3 ({} KB, over the {} KB inline limit)",
                prepared.body.len() / 1024,
                INLINE_TEMPLATE_LIMIT / 1024
            ),
            &[],
            Action::UploadTemplate {
                stack: stack.clone(),
                key: key.clone(),
            },
        ));
        before_change_set.push(STEP_TEMPLATE);
    }
    let payload_key = prepared.with_payload.then(|| s3::payload_key(&stack));
    if let Some(key) = &payload_key {
        steps.push(step(
            STEP_PAYLOAD,
            "zip the payload and upload it to S3".to_string(),
            &[],
            Action::UploadPayload {
                stack: stack.clone(),
                key: key.clone(),
            },
        ));
        before_change_set.push(STEP_PAYLOAD);
    }
    let change_set = kind.change_set_name().to_string();
    let verb = match kind {
        ChangeKind::Create => "create",
        ChangeKind::Update => "update",
    };
    steps.push(step(
        STEP_CHANGE_SET,
        format!("create change set {change_set} to {verb} stack {stack}"),
        &before_change_set,
        Action::CreateChangeSet {
            stack: stack.clone(),
            change_set: change_set.clone(),
            kind,
            template_key,
            payload_key,
        },
    ));
    steps.push(step(
        STEP_EXECUTE,
        format!(
            "{verb} stack {stack} ({} resources)",
            prepared.info.resources.len()
        ),
        &[STEP_CHANGE_SET],
        Action::ExecuteChangeSet {
            stack,
            change_set,
            kind,
        },
    ));
    Ok(Plan { steps })
}

pub fn plan_destroy(formation: &str) -> Result<Plan, ProviderError> {
    template::validate_stack_name(formation)?;
    Ok(Plan {
        steps: vec![
            step(
                STEP_DELETE_STACK,
                format!("delete stack {formation}"),
                &[],
                Action::DeleteStack {
                    stack: formation.to_string(),
                },
            ),
            step(
                STEP_DELETE_OBJECTS,
                format!("delete nepho's S3 objects of {formation}"),
                &[STEP_DELETE_STACK],
                Action::DeleteObjects {
                    stack: formation.to_string(),
                    prefix: s3::prefix(formation),
                },
            ),
        ],
    })
}

fn parse_action(step: &Step) -> Result<Action, ProviderError> {
    serde_json::from_value(step.action.clone()).map_err(|e| ProviderError::Invalid {
        message: format!(
            "step {} has an action this provider does not know: {e}",
            step.id
        ),
        hint: Some(
            "the journal may come from another nepho version; destroy and create again".to_string(),
        ),
    })
}

fn done(already_done: bool, outputs: BTreeMap<String, Value>) -> StepOutcome {
    StepOutcome {
        already_done,
        outputs,
    }
}

fn stack_status(stack: &Stack) -> String {
    stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

fn stack_outputs(stack: &Stack) -> BTreeMap<String, Value> {
    let outputs: serde_json::Map<String, Value> = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), json!(o.output_value()?))))
        .collect();
    BTreeMap::from([
        ("stack_id".to_string(), json!(stack.stack_id())),
        ("status".to_string(), json!(stack_status(stack))),
        ("outputs".to_string(), Value::Object(outputs)),
    ])
}

fn tag<'s>(stack: &'s Stack, key: &str) -> Option<&'s str> {
    stack
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Refuses to touch a stack of the same name that nepho did not create.
fn check_ownership(stack: &Stack, formation: &str) -> Result<(), ProviderError> {
    match tag(stack, TAG_FORMATION) {
        Some(owner) if owner == formation => Ok(()),
        None if stack.tags().is_empty() && stack_status(stack) == "REVIEW_IN_PROGRESS" => Ok(()),
        _ => Err(ProviderError::Invalid {
            message: format!(
                "a CloudFormation stack named {formation} already exists and was not created by nepho for this formation"
            ),
            hint: Some("choose another formation name (--name)".to_string()),
        }),
    }
}

fn is_no_change_reason(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

impl CloudFormationProvider {
    /// The stack by name or id; `None` when it does not exist (or is deleted).
    pub(crate) async fn find_stack(&self, name: &str) -> Result<Option<Stack>, ProviderError> {
        match self.cfn.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok(out
                .stacks()
                .first()
                .filter(|s| stack_status(s) != "DELETE_COMPLETE")
                .cloned()),
            Err(e) => {
                let e = ApiError::from_sdk("DescribeStacks", e);
                if e.is_missing_stack() {
                    Ok(None)
                } else {
                    Err(e.into())
                }
            }
        }
    }

    pub(crate) async fn stack_resources(
        &self,
        stack: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::StackResourceSummary>, ApiError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cfn
                .list_stack_resources()
                .stack_name(stack)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(api("ListStackResources"))?;
            out.extend(page.stack_resource_summaries().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    pub(crate) async fn run(
        &self,
        step: &Step,
        cx: StepContext<'_>,
    ) -> Result<StepOutcome, ProviderError> {
        match parse_action(step)? {
            Action::UploadTemplate { key, .. } => {
                let prepared = Prepared::new(cx.spec)?;
                let bucket = self.upload(&key, prepared.body.as_bytes().to_vec()).await?;
                Ok(done(
                    false,
                    BTreeMap::from([
                        ("bucket".to_string(), json!(bucket)),
                        ("key".to_string(), json!(key)),
                        (
                            "template_url".to_string(),
                            json!(self.template_url(&key).await?),
                        ),
                    ]),
                ))
            }
            Action::UploadPayload { key, .. } => {
                let dir = cx
                    .spec
                    .payload_dir
                    .clone()
                    .ok_or_else(|| ProviderError::Invalid {
                        message: "the payload step needs the cloudlet's payload directory"
                            .to_string(),
                        hint: None,
                    })?;
                let zipped = tokio::task::spawn_blocking(move || s3::zip_dir(&dir))
                    .await
                    .map_err(|e| ProviderError::Failed {
                        message: format!("packing the payload: {e}"),
                        hint: None,
                    })??;
                let size = zipped.len();
                let bucket = self.upload(&key, zipped).await?;
                Ok(done(
                    false,
                    BTreeMap::from([
                        ("bucket".to_string(), json!(bucket)),
                        ("key".to_string(), json!(key)),
                        ("bytes".to_string(), json!(size)),
                    ]),
                ))
            }
            Action::CreateChangeSet {
                stack,
                change_set,
                kind,
                template_key,
                payload_key,
            } => {
                self.run_change_set(
                    &cx,
                    &stack,
                    &change_set,
                    kind,
                    template_key.as_deref(),
                    payload_key.as_deref(),
                )
                .await
            }
            Action::ExecuteChangeSet {
                stack,
                change_set,
                kind,
            } => self.run_execute(&cx, &stack, &change_set, kind).await,
            Action::DeleteStack { stack } => {
                let existed = self.delete_stack(&stack, cx.events.clone(), true).await?;
                Ok(done(!existed, BTreeMap::new()))
            }
            Action::DeleteObjects { prefix, .. } => {
                let deleted = self.delete_prefix(&prefix).await?;
                Ok(done(
                    deleted == 0,
                    BTreeMap::from([("deleted_objects".to_string(), json!(deleted))]),
                ))
            }
        }
    }

    pub(crate) async fn undo(&self, step: &Step, cx: StepContext<'_>) -> Result<(), ProviderError> {
        match parse_action(step)? {
            Action::UploadTemplate { key, .. } | Action::UploadPayload { key, .. } => {
                self.delete_object(&key).await
            }
            Action::CreateChangeSet {
                stack,
                kind: ChangeKind::Create,
                ..
            }
            | Action::ExecuteChangeSet {
                stack,
                kind: ChangeKind::Create,
                ..
            } => {
                self.delete_stack(&stack, cx.events.clone(), true).await?;
                Ok(())
            }
            Action::CreateChangeSet {
                stack, change_set, ..
            } => self.delete_unexecuted_change_set(&stack, &change_set).await,
            Action::ExecuteChangeSet { stack, .. } => {
                // CloudFormation already rolled a failed update back; a finished one stays.
                cx.events.emit(
                    EventKind::Log,
                    EventStatus::Info,
                    &format!("an executed update of stack {stack} is not undone; the stack keeps its current template"),
                    None,
                );
                Ok(())
            }
            Action::DeleteStack { .. } | Action::DeleteObjects { .. } => Ok(()),
        }
    }

    async fn delete_unexecuted_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<(), ProviderError> {
        match self.describe_change_set(stack, change_set).await? {
            Some(cs)
                if cs.execution_status().map(|s| s.as_str()) != Some("EXECUTE_IN_PROGRESS")
                    && cs.execution_status().map(|s| s.as_str()) != Some("EXECUTE_COMPLETE") =>
            {
                self.delete_change_set(stack, change_set).await
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn describe_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<Option<DescribeChangeSetOutput>, ProviderError> {
        match self
            .cfn
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => {
                let e = ApiError::from_sdk("DescribeChangeSet", e);
                if e.is_missing_change_set() || e.is_missing_stack() {
                    Ok(None)
                } else {
                    Err(e.into())
                }
            }
        }
    }

    pub(crate) async fn delete_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<(), ProviderError> {
        match self
            .cfn
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = ApiError::from_sdk("DeleteChangeSet", e);
                if e.is_missing_change_set() || e.is_missing_stack() {
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// Polls a change set until CloudFormation has finished computing it.
    pub(crate) async fn wait_change_set(
        &self,
        stack: &str,
        change_set: &str,
        events: &dyn EventSink,
    ) -> Result<DescribeChangeSetOutput, ProviderError> {
        let mut backoff = crate::stack::Backoff::default();
        loop {
            let result = self
                .cfn
                .describe_change_set()
                .stack_name(stack)
                .change_set_name(change_set)
                .send()
                .await
                .map_err(api("DescribeChangeSet"));
            match result {
                Ok(out) => {
                    let status = out.status().map(|s| s.as_str()).unwrap_or_default();
                    if status != "CREATE_PENDING" && status != "CREATE_IN_PROGRESS" {
                        return Ok(out);
                    }
                    backoff.wait(false).await;
                }
                Err(e) => backoff.after_error(e, events).await?,
            }
        }
    }

    /// Creates the change set (or finds it from an earlier run), waits until it is computed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_change_set(
        &self,
        spec: &FormationSpec,
        prepared: &Prepared<'_>,
        stack: &str,
        change_set: &str,
        change_set_type: ChangeSetType,
        template_key: Option<&str>,
        payload_url: Option<&str>,
        events: &dyn EventSink,
    ) -> Result<DescribeChangeSetOutput, ProviderError> {
        let tags = [
            (TAG_FORMATION, spec.name.as_str()),
            (TAG_CLOUDLET, spec.cloudlet.as_str()),
            (TAG_SCENARIO, spec.scenario.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Vec<_>>();
        let mut request = self
            .cfn
            .create_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .change_set_type(change_set_type.clone())
            .set_parameters(Some(prepared.parameters(spec, payload_url)))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .capabilities(Capability::CapabilityAutoExpand)
            .set_tags(Some(tags))
            .description(format!("nepho {}/{}", spec.cloudlet, spec.scenario));
        request = match template_key {
            Some(key) => request.template_url(self.template_url(key).await?),
            None => request.template_body(prepared.body),
        };
        if change_set_type == ChangeSetType::Create {
            request = request.on_stack_failure(match self.on_failure {
                OnFailure::Rollback => OnStackFailure::Rollback,
                OnFailure::Delete => OnStackFailure::Delete,
                OnFailure::DoNothing => OnStackFailure::DoNothing,
            });
        }
        if let Err(e) = request.send().await {
            let e = ApiError::from_sdk("CreateChangeSet", e);
            if is_no_change_reason(&e.message) {
                // Some endpoints refuse an empty update outright instead of failing the change set.
                return Ok(DescribeChangeSetOutput::builder()
                    .stack_name(stack)
                    .change_set_name(change_set)
                    .status(aws_sdk_cloudformation::types::ChangeSetStatus::Failed)
                    .status_reason(e.message)
                    .build());
            }
            return Err(match e.into_provider_error() {
                ProviderError::Invalid { message, hint } => ProviderError::Invalid {
                    message: format!("CloudFormation rejected the template of {stack}: {message}"),
                    hint,
                },
                other => other,
            });
        }
        self.wait_change_set(stack, change_set, events).await
    }

    async fn run_change_set(
        &self,
        cx: &StepContext<'_>,
        stack_name: &str,
        change_set: &str,
        kind: ChangeKind,
        template_key: Option<&str>,
        payload_key: Option<&str>,
    ) -> Result<StepOutcome, ProviderError> {
        let spec = cx.spec;
        let events = cx.events.as_ref();
        let prepared = Prepared::new(spec)?;
        let existing = self.find_stack(stack_name).await?;
        if let Some(stack) = &existing {
            check_ownership(stack, &spec.name)?;
        }
        match (kind, &existing) {
            (ChangeKind::Update, None) => {
                return Err(ProviderError::NotFound(format!(
                    "formation {stack_name} has no CloudFormation stack to update"
                )));
            }
            (ChangeKind::Create, Some(stack)) => {
                let status = stack_status(stack);
                if status == "REVIEW_IN_PROGRESS" {
                    if let Some(cs) = self.describe_change_set(stack_name, change_set).await? {
                        let cs_status = cs.status().map(|s| s.as_str()).unwrap_or_default();
                        if cs_status == "FAILED" {
                            // A template or parameter error from an earlier attempt: try afresh.
                            // (Only when it exists: moto answers 500 to deleting a missing one.)
                            if self
                                .describe_change_set(stack_name, change_set)
                                .await?
                                .is_some()
                            {
                                self.delete_change_set(stack_name, change_set).await?;
                            }
                        } else {
                            let cs = self.wait_change_set(stack_name, change_set, events).await?;
                            return change_set_outcome(stack_name, &cs, true);
                        }
                    }
                } else if status.starts_with("DELETE_")
                    || matches!(
                        status.as_str(),
                        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED"
                    )
                {
                    events.emit(
                        EventKind::Log,
                        EventStatus::Info,
                        &format!("stack {stack_name} is left in {status} by an earlier failed attempt; deleting it before creating it again"),
                        None,
                    );
                    self.delete_stack(stack_name, cx.events.clone(), false)
                        .await?;
                } else {
                    // Already executed: the execute step follows it to the end.
                    return Ok(done(
                        true,
                        BTreeMap::from([("stack_id".to_string(), json!(stack.stack_id()))]),
                    ));
                }
            }
            (ChangeKind::Update, Some(stack)) => {
                let status = stack_status(stack);
                if in_progress(&status) {
                    if let Some(cs) = self.describe_change_set(stack_name, change_set).await?
                        && cs.execution_status().map(|s| s.as_str()) == Some("EXECUTE_IN_PROGRESS")
                    {
                        return change_set_outcome(stack_name, &cs, true);
                    }
                    return Err(ProviderError::Failed {
                        message: format!("stack {stack_name} is busy ({status}); cannot update it now"),
                        hint: Some("wait for the running operation (`nepho formation:describe`) and update again".to_string()),
                    });
                }
                // A change set of that name from an earlier update (executed or not) may
                // describe an older template: replace it.
                // (Only when it exists: moto answers 500 to deleting a missing one.)
                if self
                    .describe_change_set(stack_name, change_set)
                    .await?
                    .is_some()
                {
                    self.delete_change_set(stack_name, change_set).await?;
                }
            }
            (ChangeKind::Create, None) => {}
        }

        prepared.report_skipped(events);
        let payload_url = match payload_key {
            Some(key) if !prepared.mapping.supplied_by_nepho.is_empty() => {
                Some(self.presigned_url(key).await?)
            }
            _ => None,
        };
        if let Some(key) = template_key {
            // Resuming after a crash may reach here with the upload lost; put it back.
            if !self.object_exists(key).await? {
                self.upload(key, prepared.body.as_bytes().to_vec()).await?;
            }
        }
        let cs = self
            .create_change_set(
                spec,
                &prepared,
                stack_name,
                change_set,
                kind.change_set_type(),
                template_key,
                payload_url.as_deref(),
                events,
            )
            .await?;
        change_set_outcome(stack_name, &cs, false)
    }

    async fn run_execute(
        &self,
        cx: &StepContext<'_>,
        stack_name: &str,
        change_set: &str,
        kind: ChangeKind,
    ) -> Result<StepOutcome, ProviderError> {
        let events = cx.events.clone();
        let expected = Prepared::new(cx.spec)
            .map(|p| p.info.resources.len())
            .unwrap_or(0);
        let Some(stack) = self.find_stack(stack_name).await? else {
            return Err(ProviderError::Failed {
                message: format!(
                    "stack {stack_name} does not exist (it was deleted, or its creation failed and was cleaned up)"
                ),
                hint: Some("create the formation again".to_string()),
            });
        };
        let status = stack_status(&stack);
        let mut executed_now = false;
        if !in_progress(&status) {
            let cs = self.describe_change_set(stack_name, change_set).await?;
            let executable = cs
                .as_ref()
                .is_some_and(|cs| cs.execution_status().map(|s| s.as_str()) == Some("AVAILABLE"));
            let no_changes = cs.as_ref().is_some_and(|cs| {
                cs.status().map(|s| s.as_str()) == Some("FAILED")
                    && is_no_change_reason(cs.status_reason().unwrap_or_default())
            });
            if no_changes {
                events.emit(
                    EventKind::Log,
                    EventStatus::Info,
                    &format!("stack {stack_name} is already up to date"),
                    None,
                );
                return Ok(done(true, stack_outputs(&stack)));
            }
            if !executable {
                return self.settled_outcome(stack_name, kind, &stack, Vec::new(), true);
            }
            let mut request = self
                .cfn
                .execute_change_set()
                .stack_name(stack_name)
                .change_set_name(change_set);
            if self.on_failure == OnFailure::DoNothing {
                request = request.disable_rollback(true);
            }
            request.send().await.map_err(|e| {
                let e = ApiError::from_sdk("ExecuteChangeSet", e);
                let verb = if kind == ChangeKind::Create {
                    "created"
                } else {
                    "updated"
                };
                let culprits: Vec<String> = Prepared::new(cx.spec)
                    .map(|p| p.info.resources_mentioned_in(&e.message))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(logical, kind)| format!("{logical} ({kind})"))
                    .collect();
                let culprits = if culprits.is_empty() {
                    String::new()
                } else {
                    format!(" (in resource {})", culprits.join(", "))
                };
                match e.into_provider_error() {
                    ProviderError::Invalid { message, hint }
                    | ProviderError::Failed { message, hint } => ProviderError::Failed {
                        message: format!(
                            "stack {stack_name} could not be {verb}{culprits}: {message}"
                        ),
                        hint,
                    },
                    other => other,
                }
            })?;
            executed_now = true;
        }
        let mut watch = StackWatch::new(self, &stack, events.clone(), expected, true);
        let grace = if executed_now {
            REVIEW_GRACE
        } else {
            Duration::ZERO
        };
        let settled = watch
            .until_settled(grace)
            .await
            .map_err(ProviderError::from)?;
        self.settled_outcome_of(
            stack_name,
            kind,
            settled,
            !executed_now && !in_progress(&status),
        )
    }

    fn settled_outcome(
        &self,
        stack_name: &str,
        kind: ChangeKind,
        stack: &Stack,
        failures: Vec<crate::stack::ResourceFailure>,
        already_done: bool,
    ) -> Result<StepOutcome, ProviderError> {
        let settled = crate::stack::Settled {
            stack: stack.clone(),
            status: stack_status(stack),
            failures,
        };
        self.settled_outcome_of(stack_name, kind, settled, already_done)
    }

    fn settled_outcome_of(
        &self,
        stack_name: &str,
        kind: ChangeKind,
        settled: crate::stack::Settled,
        already_done: bool,
    ) -> Result<StepOutcome, ProviderError> {
        let ok = match kind {
            ChangeKind::Create => matches!(
                settled.status.as_str(),
                "CREATE_COMPLETE"
                    | "UPDATE_COMPLETE"
                    | "IMPORT_COMPLETE"
                    | "UPDATE_ROLLBACK_COMPLETE"
            ),
            ChangeKind::Update => matches!(
                settled.status.as_str(),
                "UPDATE_COMPLETE" | "CREATE_COMPLETE" | "IMPORT_COMPLETE"
            ),
        };
        if ok {
            return Ok(done(already_done, stack_outputs(&settled.stack)));
        }
        if settled.status == "REVIEW_IN_PROGRESS" {
            return Err(ProviderError::Failed {
                message: format!(
                    "stack {stack_name} has no change set ready to execute (it is still in REVIEW_IN_PROGRESS)"
                ),
                hint: Some("run the create again: the change-set step makes a new one".to_string()),
            });
        }
        let hint = match (kind, self.on_failure) {
            (ChangeKind::Update, _) => "CloudFormation rolled the update back; fix the template or parameters and update again".to_string(),
            (_, OnFailure::DoNothing) => format!("the failed resources were kept for inspection; `nepho formation:destroy {stack_name}` removes them"),
            (_, OnFailure::Delete) => "the stack was deleted; fix the template or parameters and create again".to_string(),
            (_, OnFailure::Rollback) => format!("the stack was rolled back; `nepho formation:destroy {stack_name}` removes it, then fix the template or parameters and create again"),
        };
        Err(ProviderError::Failed {
            message: failure_message(stack_name, &settled),
            hint: Some(hint),
        })
    }

    /// Deletes a stack and waits until it is gone; false if there was none. With
    /// `check_owner`, a stack nepho did not create is left alone.
    pub(crate) async fn delete_stack(
        &self,
        stack_name: &str,
        events: Arc<dyn EventSink>,
        check_owner: bool,
    ) -> Result<bool, ProviderError> {
        let Some(stack) = self.find_stack(stack_name).await? else {
            return Ok(false);
        };
        if check_owner {
            check_ownership(&stack, stack_name)?;
        }
        let stack_id = stack.stack_id().unwrap_or(stack_name).to_string();
        if stack_status(&stack) != "DELETE_IN_PROGRESS" {
            self.cfn
                .delete_stack()
                .stack_name(&stack_id)
                .send()
                .await
                .map_err(api("DeleteStack"))?;
        }
        let mut watch = StackWatch::new(self, &stack, events, 0, false);
        let settled = watch.until_settled(Duration::ZERO).await;
        let settled = match settled {
            Ok(settled) => settled,
            // Some endpoints forget a deleted stack at once, even by id.
            Err(e) if e.is_missing_stack() => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        if settled.status == "DELETE_COMPLETE" {
            return Ok(true);
        }
        Err(ProviderError::Failed {
            message: failure_message(stack_name, &settled),
            hint: Some(format!(
                "fix what blocks the deletion (e.g. a non-empty bucket) and run `nepho formation:destroy {stack_name}` again"
            )),
        })
    }
}

fn change_set_outcome(
    stack_name: &str,
    cs: &DescribeChangeSetOutput,
    already_done: bool,
) -> Result<StepOutcome, ProviderError> {
    let status = cs.status().map(|s| s.as_str()).unwrap_or_default();
    let reason = cs.status_reason().unwrap_or_default();
    let no_changes = status == "FAILED" && is_no_change_reason(reason);
    if status == "FAILED" && !no_changes {
        return Err(ProviderError::Invalid {
            message: format!(
                "CloudFormation rejected the change set for stack {stack_name}: {reason}"
            ),
            hint: Some("check the rendered template with `nepho scenario:render`".to_string()),
        });
    }
    Ok(done(
        already_done,
        BTreeMap::from([
            ("stack_id".to_string(), json!(cs.stack_id())),
            ("change_set_id".to_string(), json!(cs.change_set_id())),
            ("changes".to_string(), json!(cs.changes().len())),
            ("no_changes".to_string(), json!(no_changes)),
        ]),
    ))
}
