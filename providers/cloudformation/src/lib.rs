//! nepho's AWS CloudFormation provider: a formation is a stack named after it, created and
//! updated through change sets, tagged `nepho:formation`/`nepho:cloudlet`/`nepho:scenario`.
//! The stack (and its tags, outputs and events) is the source of truth; nothing is cached.
//!
//! Plans (step ids are stable; actions hold names only, never parameter values):
//! - create: `template`? → `payload`? → `change-set` → `execute`
//! - update: `template`? → `payload`? → `change-set` → `execute`
//! - destroy: `delete-stack` → `delete-objects`

mod errors;
mod inspect;
mod s3;
mod settings;
mod stack;
mod steps;
mod template;

use std::time::Duration;

use nepho_provider_api::{
    BoxFuture, Endpoints, FormationDetails, FormationSpec, FormationSummary, Plan, PlannedChange,
    Provider, ProviderError, ProviderKind, Step, StepContext, StepOutcome,
};

pub use settings::{AwsSettings, OnFailure, connect};
pub use template::{INLINE_TEMPLATE_LIMIT, S3_TEMPLATE_LIMIT};

/// Tag keys nepho puts on every stack it creates.
pub const TAG_FORMATION: &str = "nepho:formation";
pub const TAG_CLOUDLET: &str = "nepho:cloudlet";
pub const TAG_SCENARIO: &str = "nepho:scenario";

/// A connected CloudFormation provider (see [`connect`]).
pub struct CloudFormationProvider {
    cfn: aws_sdk_cloudformation::Client,
    s3: aws_sdk_s3::Client,
    sts: aws_sdk_sts::Client,
    region: String,
    template_bucket: Option<String>,
    on_failure: OnFailure,
    payload_url_lifetime: Duration,
    /// The derived bucket name, looked up once per session.
    bucket: tokio::sync::OnceCell<String>,
}

impl CloudFormationProvider {
    /// The region this provider talks to.
    pub fn region(&self) -> &str {
        &self.region
    }
}

impl Provider for CloudFormationProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aws
    }

    fn validate<'a>(&'a self, spec: &'a FormationSpec) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { steps::Prepared::new(spec).map(|_| ()) })
    }

    fn plan_create<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move { steps::plan_deploy(spec, steps::ChangeKind::Create) })
    }

    fn plan_update<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move { steps::plan_deploy(spec, steps::ChangeKind::Update) })
    }

    fn plan_destroy<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Plan, ProviderError>> {
        Box::pin(async move { steps::plan_destroy(formation) })
    }

    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepOutcome, ProviderError>> {
        Box::pin(self.run(step, cx))
    }

    fn undo_step<'a>(
        &'a self,
        step: &'a Step,
        cx: StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.undo(step, cx))
    }

    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<FormationSummary>, ProviderError>> {
        Box::pin(self.list_formations())
    }

    fn describe<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<FormationDetails, ProviderError>> {
        Box::pin(self.describe_formation(formation))
    }

    fn preview<'a>(
        &'a self,
        spec: &'a FormationSpec,
    ) -> BoxFuture<'a, Result<Vec<PlannedChange>, ProviderError>> {
        Box::pin(self.preview_changes(spec))
    }

    fn endpoints<'a>(
        &'a self,
        formation: &'a str,
    ) -> BoxFuture<'a, Result<Endpoints, ProviderError>> {
        Box::pin(self.formation_endpoints(formation))
    }
}
