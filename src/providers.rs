//! Builds the provider for a formation from the user's registered settings
//! (`<config>/providers/<provider>.yaml`, written 0600 by `nepho register`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use nepho_provider_api::{
    ClusterOps, LibraryOps, MachineOps, Provider, ProviderError, ProviderKind,
};

use crate::config::Paths;
use crate::error::{Error, Result};
use crate::yaml::{self, Dialect, Tags};

pub fn settings_file(paths: &Paths, kind: ProviderKind) -> PathBuf {
    paths
        .provider_dir()
        .join("providers")
        .join(format!("{}.yaml", kind.as_str()))
}

/// The KVM cluster file: `NEPHO_CLUSTER`, else `<config>/cluster.yaml`.
pub fn cluster_file(paths: &Paths) -> PathBuf {
    std::env::var_os("NEPHO_CLUSTER")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.provider_dir().join("cluster.yaml"))
}

/// The providers this user has set up, in `ProviderKind` order: AWS with stored settings or
/// credentials in the environment, KVM with a cluster file, Vagrant with stored settings or a
/// Vagrant project under the state dir. These are the ones asked what exists.
pub fn registered(paths: &Paths) -> Vec<ProviderKind> {
    let aws = settings_file(paths, ProviderKind::Aws).exists()
        || std::env::var_os("AWS_PROFILE").is_some_and(|v| !v.is_empty())
        || std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty());
    let kvm = cluster_file(paths).is_file();
    let vagrant = settings_file(paths, ProviderKind::Vagrant).exists()
        || std::fs::read_dir(paths.formations_dir())
            .map(|entries| {
                entries.flatten().any(|e| {
                    nepho_provider_vagrant::project_dir(
                        &paths.formations_dir(),
                        &e.file_name().to_string_lossy(),
                    )
                    .join("Vagrantfile")
                    .is_file()
                })
            })
            .unwrap_or(false);
    ProviderKind::ALL
        .into_iter()
        .filter(|k| match k {
            ProviderKind::Aws => aws,
            ProviderKind::Kvm => kvm,
            ProviderKind::Vagrant => vagrant,
        })
        .collect()
}

/// Flat string settings of a provider (`region: us-east-1`, `profile: dev`, ...).
pub fn read_settings(paths: &Paths, kind: ProviderKind) -> Result<BTreeMap<String, String>> {
    let path = settings_file(paths, kind);
    let src = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let Some(node) = yaml::parse(&src, &path, Dialect::Yaml12, Tags::CoreOnly)? else {
        return Ok(BTreeMap::new());
    };
    let map = node
        .as_map()
        .ok_or_else(|| Error::invalid(format!("{}: must be a mapping", path.display())))?;
    Ok(map
        .iter()
        .filter_map(|(k, e)| match e.value.to_value() {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k.clone(), s)),
            other => Some((k.clone(), other.to_string())),
        })
        .collect())
}

/// Writes settings 0600 (they may hold credentials).
pub fn write_settings(
    paths: &Paths,
    kind: ProviderKind,
    settings: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let path = settings_file(paths, kind);
    let mut text =
        String::from("# written by `nepho register`; may contain credentials (mode 0600)\n");
    for (k, v) in settings {
        text.push_str(&format!(
            "{k}: {}\n",
            serde_json::to_string(v).unwrap_or_default()
        ));
    }
    crate::config::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

pub fn provider_error(e: ProviderError) -> Error {
    match e {
        ProviderError::Unavailable { message, hint } => Error::Unavailable { message, hint },
        ProviderError::Invalid { message, hint } => Error::Invalid {
            message,
            hint,
            span: None,
        },
        ProviderError::NotFound(message) => Error::NotFound {
            message,
            hint: None,
        },
        ProviderError::Failed { message, hint } => Error::Provider { message, hint },
        ProviderError::Cancelled => Error::Interrupted,
    }
}

/// Connects to the provider of `kind`. `rollback` says what a failed create should do with
/// what it built (roll back, or keep it for debugging).
pub async fn connect(
    kind: ProviderKind,
    paths: &Paths,
    rollback: bool,
) -> Result<Box<dyn Provider>> {
    tracing::info!("connecting to the {kind} provider");
    match kind {
        ProviderKind::Aws => connect_aws(paths, rollback).await,
        ProviderKind::Kvm => kvm(paths).await,
        ProviderKind::Vagrant => Ok(Box::new(vagrant(paths)?)),
    }
}

/// The Vagrant provider, with the settings `nepho register vagrant` stored.
pub fn vagrant(paths: &Paths) -> Result<nepho_provider_vagrant::VagrantProvider> {
    let mut stored = read_settings(paths, ProviderKind::Vagrant)?;
    let mut take = |k: &str| stored.remove(k).filter(|v| !v.is_empty());
    let mut settings = nepho_provider_vagrant::VagrantSettings::new(paths.formations_dir());
    if let Some(v) = take("vagrant") {
        settings.vagrant = PathBuf::from(v);
    }
    // VAGRANT_HOME in the environment wins over the stored one, as vagrant itself does.
    if std::env::var_os("VAGRANT_HOME").is_none_or(|v| v.is_empty()) {
        settings.vagrant_home = take("vagrant_home").map(PathBuf::from);
    }
    if let Some(v) = take("default_provider") {
        settings.default_provider = v;
    }
    settings.libvirt_driver = take("libvirt_driver");
    if let Some(v) = take("libvirt_uri") {
        settings.libvirt_uri = v;
    }
    if let Some(secs) = take("up_timeout").and_then(|v| v.parse::<u64>().ok()) {
        settings.up_timeout = std::time::Duration::from_secs(secs);
    }
    settings.probe_cache = Some(probe_cache(paths));
    nepho_provider_vagrant::connect(settings).map_err(provider_error)
}

async fn connect_aws(paths: &Paths, rollback: bool) -> Result<Box<dyn Provider>> {
    use nepho_provider_cloudformation::{AwsSettings, OnFailure};
    let mut stored = read_settings(paths, ProviderKind::Aws)?;
    let mut take = |k: &str| stored.remove(k).filter(|v| !v.is_empty());
    let mut settings = AwsSettings {
        region: take("region"),
        profile: take("profile"),
        endpoint_url: take("endpoint_url"),
        access_key_id: take("access_key_id"),
        secret_access_key: take("secret_access_key"),
        session_token: take("session_token"),
        template_bucket: take("template_bucket"),
        on_failure: if rollback {
            OnFailure::Rollback
        } else {
            OnFailure::DoNothing
        },
        ..AwsSettings::default()
    };
    if let Some(secs) = take("payload_url_lifetime").and_then(|v| v.parse::<u64>().ok()) {
        settings.payload_url_lifetime = std::time::Duration::from_secs(secs);
    }
    // The environment (AWS_PROFILE, AWS_ENDPOINT_URL, ...) wins over stored settings, as the AWS CLI does.
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        settings.endpoint_url = None;
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() || std::env::var_os("AWS_PROFILE").is_some()
    {
        settings.access_key_id = None;
        settings.secret_access_key = None;
        settings.session_token = None;
        settings.profile = None;
    }
    let provider = nepho_provider_cloudformation::connect(&settings)
        .await
        .map_err(provider_error)?;
    Ok(Box::new(provider))
}

/// Where the KVM and Vagrant providers keep the KVM probe's answers.
/// NEPHO_KVM_PROBE_CACHE shares them between homes (the tests' many NEPHO_HOMEs).
fn probe_cache(paths: &Paths) -> PathBuf {
    std::env::var_os("NEPHO_KVM_PROBE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.cache_dir.join("kvm-probe.json"))
}

/// The crates whose logs `-v` shows: nepho's own and each provider's.
pub const LOG_TARGETS: [&str; 4] = [
    "nepho",
    "nepho_provider_kvm",
    "nepho_provider_vagrant",
    "nepho_provider_cloudformation",
];

/// The cluster file `nepho register kvm` writes for this machine as a one-host cluster.
pub fn local_cluster_yaml() -> String {
    nepho_provider_kvm::local_cluster_yaml()
}

/// What a provider can do to its machines (power, media, drives, NICs, console).
pub fn machine_ops(provider: &dyn Provider) -> Result<&dyn MachineOps> {
    provider.machines().ok_or_else(|| {
        Error::usage(format!(
            "the {} provider has no machines to operate on",
            provider.kind()
        ))
    })
}

/// What a provider can do to its cluster of hosts (status, usage, failover, moves).
pub fn cluster_ops(provider: &dyn Provider) -> Result<&dyn ClusterOps> {
    provider.cluster().ok_or_else(|| {
        Error::usage(format!(
            "the {} provider has no cluster of hosts",
            provider.kind()
        ))
    })
}

/// What a provider can do with the image and ISO library on its hosts.
pub fn library_ops(provider: &dyn Provider) -> Result<&dyn LibraryOps> {
    provider.library().ok_or_else(|| {
        Error::usage(format!(
            "the {} provider has no image and ISO library",
            provider.kind()
        ))
    })
}

/// The KVM provider (its cluster file must exist), for its machine and cluster operations.
pub async fn kvm(paths: &Paths) -> Result<Box<dyn Provider>> {
    Ok(Box::new(kvm_provider(paths).await?))
}

async fn kvm_provider(paths: &Paths) -> Result<nepho_provider_kvm::KvmProvider> {
    let cluster_file = cluster_file(paths);
    if !cluster_file.is_file() {
        return Err(Error::unavailable(format!("no KVM cluster file at {}", cluster_file.display()))
            .with_hint("run `nepho register kvm` to describe this machine as a one-host cluster (or set NEPHO_CLUSTER)"));
    }
    let settings = nepho_provider_kvm::KvmSettings {
        cluster_file,
        probe_cache: Some(probe_cache(paths)),
        library_images: crate::library::Library::load(paths)?.images(),
        image_holds: Some(std::sync::Arc::new(crate::library::LibraryHolds::new(
            paths,
        ))),
    };
    nepho_provider_kvm::connect(&settings)
        .await
        .map_err(provider_error)
}
