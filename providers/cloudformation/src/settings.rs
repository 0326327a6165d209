//! AWS settings (from `nepho register aws` and flags) and `connect`: the standard AWS chain
//! (environment, `AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, shared config and credential
//! files, SSO, credential processes) with explicit settings layered on top.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_cloudformation::config::{Credentials, ProvideCredentials, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use nepho_provider_api::ProviderError;
use serde::{Deserialize, Serialize};

use crate::CloudFormationProvider;

/// How to reach AWS. Every field is optional; unset ones come from the standard AWS chain.
/// `Debug` hides the secret key and session token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// S3 bucket for templates over the inline limit and 1.x payloads; when `None`, nepho uses
    /// (and creates) `nepho-templates-<account>-<region>`.
    pub template_bucket: Option<String>,
    pub on_failure: OnFailure,
    /// Lifetime of the presigned `PayloadURL` handed to 1.x templates (at most 7 days).
    #[serde(with = "duration_secs")]
    pub payload_url_lifetime: Duration,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| nepho_provider_api::REDACTED);
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("template_bucket", &self.template_bucket)
            .field("on_failure", &self.on_failure)
            .field("payload_url_lifetime", &self.payload_url_lifetime)
            .finish()
    }
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region: None,
            profile: None,
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            template_bucket: None,
            on_failure: OnFailure::default(),
            payload_url_lifetime: Duration::from_secs(3600),
        }
    }
}

/// What CloudFormation does when creating a stack fails.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Roll back: delete what was created, keep the stack in ROLLBACK_COMPLETE for inspection.
    #[default]
    Rollback,
    /// Delete the stack entirely.
    Delete,
    /// Keep the resources as they are, for debugging.
    DoNothing,
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// The longest a SigV4 presigned URL may live.
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

const ACCOUNT_HINT: &str = "run `nepho register aws`, or set AWS_PROFILE (a profile from ~/.aws/config) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and AWS_REGION; no AWS account yet? https://aws.amazon.com/free/";

/// Builds the provider: resolves region and credentials up front so a missing one is reported
/// before any work starts.
pub async fn connect(settings: &AwsSettings) -> Result<CloudFormationProvider, ProviderError> {
    if settings.payload_url_lifetime > MAX_PRESIGN || settings.payload_url_lifetime.is_zero() {
        return Err(ProviderError::Invalid {
            message: format!(
                "payload URL lifetime {} s is out of range",
                settings.payload_url_lifetime.as_secs()
            ),
            hint: Some("use between 1 second and 7 days".to_string()),
        });
    }
    // rustls with ring: no aws-lc C build, one HTTP stack (hyper 1).
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client);
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(id), Some(secret)) => {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                settings.session_token.clone(),
                None,
                "nepho-settings",
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ProviderError::Unavailable {
                message: "AWS settings have only half of an access key (id without secret, or secret without id)".to_string(),
                hint: Some(ACCOUNT_HINT.to_string()),
            });
        }
        (None, None) => {}
    }
    let config = loader.load().await;

    let Some(region) = config.region().map(|r| r.to_string()) else {
        return Err(ProviderError::Unavailable {
            message: "no AWS region is configured".to_string(),
            hint: Some(ACCOUNT_HINT.to_string()),
        });
    };
    let Some(credentials) = config.credentials_provider() else {
        return Err(no_credentials("no credential source is configured"));
    };
    match tokio::time::timeout(Duration::from_secs(20), credentials.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(no_credentials(&format!(
                "no usable AWS credentials: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(&e)
            )));
        }
        Err(_) => {
            return Err(no_credentials(
                "looking up AWS credentials timed out after 20 s",
            ));
        }
    }

    let s3_config = aws_sdk_s3::config::Builder::from(&config)
        // A custom endpoint (moto, MinIO, a VPC endpoint) rarely serves virtual-host buckets.
        .force_path_style(config.endpoint_url().is_some())
        .build();
    Ok(CloudFormationProvider {
        cfn: aws_sdk_cloudformation::Client::new(&config),
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        sts: aws_sdk_sts::Client::new(&config),
        region,
        template_bucket: settings.template_bucket.clone(),
        on_failure: settings.on_failure,
        payload_url_lifetime: settings.payload_url_lifetime,
        bucket: tokio::sync::OnceCell::new(),
    })
}

fn no_credentials(message: &str) -> ProviderError {
    ProviderError::Unavailable {
        message: message.to_string(),
        hint: Some(ACCOUNT_HINT.to_string()),
    }
}
