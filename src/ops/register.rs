//! `register`: store a provider's settings (0600) so formations can use it.

use std::collections::BTreeMap;

use nepho_provider_api::{ProviderKind, REDACTED};

use super::{Context, Prompter};
use crate::error::{Error, Result};
use crate::output::Registered;
use crate::providers;

/// The settings given on the command line (or in the environment); for AWS, what is missing is
/// asked for on a terminal.
#[derive(Debug, Clone, Default)]
pub struct RegisterOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub access_key_id: Option<String>,
    pub endpoint_url: Option<String>,
    pub template_bucket: Option<String>,
    pub vagrant_home: Option<String>,
    pub default_provider: Option<String>,
    pub libvirt_driver: Option<String>,
}

const AWS_SIGNUP: &str = "no AWS credentials: create an account at https://aws.amazon.com/free/, then an access key under IAM → Users → Security credentials (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html)";

/// `register PROVIDER`: writes its settings (KVM: a local cluster file, unless one exists).
pub fn register(
    cx: &Context,
    prompt: &dyn Prompter,
    provider: ProviderKind,
    a: RegisterOptions,
) -> Result<Registered> {
    match provider {
        ProviderKind::Aws => aws(cx, prompt, a),
        ProviderKind::Kvm => kvm(cx),
        ProviderKind::Vagrant => vagrant(cx, a),
    }
}

fn kvm(cx: &Context) -> Result<Registered> {
    let file = providers::cluster_file(&cx.paths);
    if file.exists() {
        cx.out.notice(&format!(
            "keeping the existing cluster file {}",
            file.display()
        ));
    } else {
        crate::config::write_atomic(&file, crate::providers::local_cluster_yaml().as_bytes())?;
    }
    Ok(Registered {
        provider: "kvm".into(),
        file: file.display().to_string(),
        settings: BTreeMap::new(),
    })
}

fn vagrant(cx: &Context, a: RegisterOptions) -> Result<Registered> {
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
    Ok(Registered {
        provider: "vagrant".into(),
        file: file.display().to_string(),
        settings,
    })
}

fn aws(cx: &Context, prompt: &dyn Prompter, a: RegisterOptions) -> Result<Registered> {
    let mut settings = providers::read_settings(&cx.paths, ProviderKind::Aws)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let region = match a
        .region
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
    {
        Some(r) => r,
        None if cx.interactive => prompt.input(
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
                prompt.input("AWS access key id", None)?
            }
            None => return Err(Error::invalid(AWS_SIGNUP).with_hint("pass --profile NAME, or --access-key-id ID with AWS_SECRET_ACCESS_KEY in the environment")),
        };
        let secret = match env("AWS_SECRET_ACCESS_KEY") {
            Some(s) => s,
            None if cx.interactive => prompt.password("AWS secret access key")?,
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
    Ok(Registered {
        provider: "aws".into(),
        file: file.display().to_string(),
        settings: shown,
    })
}
