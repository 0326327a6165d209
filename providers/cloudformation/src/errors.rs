//! Turns AWS SDK errors into what the waiting loops need to know (retry? back off more?) and
//! into `ProviderError`s a user can act on.

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use nepho_provider_api::ProviderError;

/// An AWS call that failed, reduced to what nepho acts on.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The operation, e.g. `CreateChangeSet`.
    pub op: &'static str,
    /// The service's error code (`ValidationError`, `Throttling`), when it sent one.
    pub code: Option<String>,
    pub message: String,
    pub kind: ApiErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// Rate limited: wait longer and try again, forever.
    Throttled,
    /// Network trouble or a 5xx: worth a few more tries.
    Transient,
    /// The request itself was refused.
    Rejected,
}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
];

const CREDENTIAL_CODES: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AccessDenied",
    "AccessDeniedException",
];

/// An error and its causes as one line (`dispatch failure: io error: … Connection refused`),
/// without the SDK's Debug dump of the same.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

impl ApiError {
    pub fn from_sdk<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> ApiError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let service_message = err.message().map(str::to_string);
        let kind = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ApiErrorKind::Transient,
            SdkError::ResponseError(r) if r.raw().status().as_u16() >= 500 => {
                ApiErrorKind::Transient
            }
            SdkError::ServiceError(s) if s.raw().status().as_u16() >= 500 => {
                if code
                    .as_deref()
                    .is_some_and(|c| THROTTLING_CODES.contains(&c))
                {
                    ApiErrorKind::Throttled
                } else {
                    ApiErrorKind::Transient
                }
            }
            _ if code
                .as_deref()
                .is_some_and(|c| THROTTLING_CODES.contains(&c)) =>
            {
                ApiErrorKind::Throttled
            }
            _ => ApiErrorKind::Rejected,
        };
        let message = match (&code, service_message) {
            (_, Some(m)) if !m.is_empty() => m,
            _ => error_chain(&err),
        };
        ApiError {
            op,
            code,
            message,
            kind,
        }
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// CloudFormation's way of saying a stack does not exist.
    pub fn is_missing_stack(&self) -> bool {
        self.is_code("ValidationError") && self.message.contains("does not exist")
    }

    pub fn is_missing_change_set(&self) -> bool {
        self.is_code("ChangeSetNotFound") || self.is_code("ChangeSetNotFoundException")
    }

    pub fn into_provider_error(self) -> ProviderError {
        let text = match &self.code {
            Some(code) => format!("AWS {} failed: {code}: {}", self.op, self.message),
            None => format!("AWS {} failed: {}", self.op, self.message),
        };
        if self.kind == ApiErrorKind::Transient && self.code.is_none() {
            return ProviderError::Unavailable {
                message: text,
                hint: Some(
                    "check the network and the endpoint (AWS_ENDPOINT_URL, `nepho register aws`)"
                        .to_string(),
                ),
            };
        }
        if self
            .code
            .as_deref()
            .is_some_and(|c| CREDENTIAL_CODES.contains(&c))
        {
            return ProviderError::Unavailable {
                message: text,
                hint: Some(
                    "check the AWS credentials and their permissions: `nepho register aws`, or AWS_PROFILE".to_string(),
                ),
            };
        }
        if self.is_code("ValidationError") {
            return ProviderError::Invalid {
                message: text,
                hint: Some("check the rendered template with `nepho scenario:render`".to_string()),
            };
        }
        ProviderError::Failed {
            message: text,
            hint: None,
        }
    }
}

impl From<ApiError> for ProviderError {
    fn from(e: ApiError) -> Self {
        e.into_provider_error()
    }
}

/// Shorthand: `.await.map_err(api("DescribeStacks"))`.
pub fn api<E>(op: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |e| ApiError::from_sdk(op, e)
}
