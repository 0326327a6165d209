//! `nepho register aws|kvm|vagrant`: store a provider's settings (0600) so formations can use it.

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use nepho_provider_api::{ProviderKind, REDACTED};
use serde::Serialize;

use super::Context;
use crate::error::{Error, Result};
use crate::providers;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegisterProvider {
    Aws,
    Kvm,
    Vagrant,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[arg(value_enum)]
    pub provider: RegisterProvider,
    /// AWS region (e.g. us-east-1)
    #[arg(long)]
    pub region: Option<String>,
    /// Use this AWS profile from ~/.aws/config instead of keys
    #[arg(long, conflicts_with = "access_key_id")]
    pub profile: Option<String>,
    /// AWS access key id (the secret key is read from AWS_SECRET_ACCESS_KEY or prompted)
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// AWS API endpoint (for AWS-compatible services and local mocks)
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// S3 bucket for large templates and Nepho 1.x payloads
    #[arg(long)]
    pub template_bucket: Option<String>,
    /// Vagrant: VAGRANT_HOME for nepho's vagrant calls (boxes, plugins); default: the environment's
    #[arg(long)]
    pub vagrant_home: Option<String>,
    /// Vagrant: provider passed as --provider when the scenario names none (default libvirt)
    #[arg(long)]
    pub default_provider: Option<String>,
    /// Vagrant: NEPHO_LIBVIRT_DRIVER for Vagrantfiles: kvm, qemu, or auto (probe for KVM)
    #[arg(long, value_parser = ["auto", "kvm", "qemu"])]
    pub libvirt_driver: Option<String>,
}

#[derive(Debug, Serialize)]
struct Registered {
    provider: String,
    file: String,
    settings: BTreeMap<String, String>,
}

const AWS_SIGNUP: &str = "no AWS credentials: create an account at https://aws.amazon.com/free/, then an access key under IAM → Users → Security credentials (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html)";

pub fn run(cx: &Context, a: RegisterArgs) -> Result<()> {
    match a.provider {
        RegisterProvider::Aws => aws(cx, a),
        RegisterProvider::Kvm => {
            let file = providers::cluster_file(&cx.paths);
            if file.exists() {
                cx.out.notice(&format!(
                    "keeping the existing cluster file {}",
                    file.display()
                ));
            } else {
                crate::config::write_atomic(
                    &file,
                    nepho_provider_kvm::local_cluster_yaml().as_bytes(),
                )?;
            }
            let result = Registered {
                provider: "kvm".into(),
                file: file.display().to_string(),
                settings: BTreeMap::new(),
            };
            cx.out.data(&result, || {
                format!(
                    "kvm cluster file: {} (edit it to add hosts, networks, storage and images)",
                    result.file
                )
            });
            Ok(())
        }
        RegisterProvider::Vagrant => vagrant(cx, a),
    }
}

fn vagrant(cx: &Context, a: RegisterArgs) -> Result<()> {
    let mut settings = providers::read_settings(&cx.paths, ProviderKind::Vagrant)?;
    let mut set = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            settings.insert(k.into(), v);
        }
    };
    set("vagrant_home", a.vagrant_home);
    set("default_provider", a.default_provider);
    set("libvirt_driver", a.libvirt_driver);
    settings
        .entry("default_provider".into())
        .or_insert_with(|| "libvirt".into());
    let file = providers::write_settings(&cx.paths, ProviderKind::Vagrant, &settings)?;
    if let Err(e) = providers::vagrant(&cx.paths) {
        cx.out.warn(&e.to_string());
    }
    let result = Registered {
        provider: "vagrant".into(),
        file: file.display().to_string(),
        settings,
    };
    cx.out.data(&result, || {
        format!(
            "vagrant settings: {} ({})",
            result.file,
            result
                .settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    Ok(())
}

fn ask(cx: &Context, prompt: &str, default: Option<&str>) -> Result<String> {
    let mut input =
        dialoguer::Input::<String>::with_theme(&dialoguer::theme::SimpleTheme).with_prompt(prompt);
    if let Some(d) = default {
        input = input.default(d.to_string());
    }
    let _ = cx;
    input
        .interact_text()
        .map_err(|e| Error::Other(format!("prompt failed: {e}")))
}

fn aws(cx: &Context, a: RegisterArgs) -> Result<()> {
    let mut settings = providers::read_settings(&cx.paths, ProviderKind::Aws)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let region = match a
        .region
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
    {
        Some(r) => r,
        None if cx.interactive => ask(
            cx,
            "AWS region",
            settings
                .get("region")
                .map(String::as_str)
                .or(Some("us-east-1")),
        )?,
        None => {
            return Err(Error::invalid("no AWS region given")
                .with_hint("pass --region REGION (or set AWS_REGION)"));
        }
    };
    settings.insert("region".into(), region);
    if let Some(p) = a.profile.or_else(|| env("AWS_PROFILE")) {
        settings.insert("profile".into(), p);
        settings.remove("access_key_id");
        settings.remove("secret_access_key");
    } else {
        let key_id = match a.access_key_id.or_else(|| env("AWS_ACCESS_KEY_ID")) {
            Some(k) => k,
            None if cx.interactive => {
                eprintln!("{AWS_SIGNUP}");
                ask(cx, "AWS access key id", None)?
            }
            None => return Err(Error::invalid(AWS_SIGNUP).with_hint("pass --profile NAME, or --access-key-id ID with AWS_SECRET_ACCESS_KEY in the environment")),
        };
        let secret = match env("AWS_SECRET_ACCESS_KEY") {
            Some(s) => s,
            None if cx.interactive => {
                dialoguer::Password::with_theme(&dialoguer::theme::SimpleTheme)
                    .with_prompt("AWS secret access key")
                    .interact()
                    .map_err(|e| Error::Other(format!("prompt failed: {e}")))?
            }
            None => {
                return Err(Error::invalid("no AWS secret access key").with_hint(
                    "set AWS_SECRET_ACCESS_KEY (it is never taken on the command line)",
                ));
            }
        };
        settings.insert("access_key_id".into(), key_id);
        settings.insert("secret_access_key".into(), secret);
        settings.remove("profile");
    }
    if let Some(e) = a.endpoint_url {
        settings.insert("endpoint_url".into(), e);
    }
    if let Some(b) = a.template_bucket {
        settings.insert("template_bucket".into(), b);
    }
    let file = providers::write_settings(&cx.paths, ProviderKind::Aws, &settings)?;
    let shown: BTreeMap<String, String> = settings
        .into_iter()
        .map(|(k, v)| {
            if k.contains("secret") {
                (k, REDACTED.to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let result = Registered {
        provider: "aws".into(),
        file: file.display().to_string(),
        settings: shown,
    };
    cx.out.data(&result, || {
        format!("aws settings saved to {} (mode 0600)", result.file)
    });
    Ok(())
}
