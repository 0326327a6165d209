//! Scenarios: finding one (`cloudlet/scenario`), merging its parameters from every layer, and
//! the render context handed to its pattern.

pub mod escape;
pub mod render;

use std::path::{Path, PathBuf};

use nepho_provider_api::ProviderKind;
use serde_json::Value;

use crate::cloudlet::{Cloudlet, CloudletFormat, Scenario};
use crate::config::Paths;
use crate::error::Result;
use crate::params::{self, Layer, LayerKind, MergedParameters};
use crate::secret::StoredSecrets;

/// Where the user's own values come from, in command-line order.
#[derive(Debug, Clone, Default)]
pub struct ValueSources {
    pub files: Vec<PathBuf>,
    pub sets: Vec<String>,
    /// Answers typed at prompts (already validated by the prompt).
    pub prompted: Vec<(String, Value)>,
    /// The secret values a formation was last built with (updates only).
    pub stored: StoredSecrets,
}

/// Provider defaults Nepho 1.x applied before anything else.
/// (1.2.3: `params` of nepho/providers/aws_provider.py and vagrant_provider.py, except that
/// `VagrantBackend` names the Vagrant provider nepho runs, libvirt, where 1.x said virtualbox.)
fn v1_provider_defaults(provider: ProviderKind) -> Vec<(&'static str, Value)> {
    match provider {
        ProviderKind::Vagrant => vec![
            ("VagrantBackend", Value::String("libvirt".into())),
            ("BoxName", Value::Null),
        ],
        ProviderKind::Aws => vec![
            ("AWSAccessKeyID", Value::Null),
            ("AWSSecretAccessKey", Value::Null),
            ("AWSRegion", Value::Null),
            ("KeyName", Value::Null),
        ],
        ProviderKind::Kvm => vec![],
    }
}

/// Builds the merge layers in order: (1.x provider defaults) → cloudlet → scenario → user →
/// stored secrets → each `-f` → each `--set` → prompts.
pub fn layers(
    cloudlet: &Cloudlet,
    scenario: &Scenario,
    user_values: Option<&Path>,
    sources: &ValueSources,
) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    let dialect = cloudlet.format.dialect();
    match cloudlet.format {
        CloudletFormat::Native => {
            // Declarations made in cloudlet.yaml and not refined by the scenario keep their file.
            let from_cloudlet = scenario
                .decls
                .values()
                .filter(|d| d.declared_at.layer == LayerKind::Cloudlet);
            layers.push(Layer::from_defaults(
                LayerKind::Cloudlet,
                &cloudlet.manifest_file,
                from_cloudlet,
            ));
            let from_scenario = scenario
                .decls
                .values()
                .filter(|d| d.declared_at.layer == LayerKind::Scenario);
            layers.push(Layer::from_defaults(
                LayerKind::Scenario,
                &scenario.file,
                from_scenario,
            ));
        }
        CloudletFormat::V1 => {
            for (name, value) in v1_provider_defaults(scenario.provider) {
                layers.push(Layer::single(LayerKind::ProviderDefaults, name, value));
            }
            if let Some(node) = &cloudlet.v1_parameters {
                layers.push(Layer::from_map_node(
                    LayerKind::Cloudlet,
                    Some(&cloudlet.manifest_file),
                    node,
                ));
            }
            if let Some(node) = &scenario.v1_parameters {
                layers.push(Layer::from_map_node(
                    LayerKind::Scenario,
                    Some(&scenario.file),
                    node,
                ));
            }
        }
    }
    let is_secret = |name: &str| is_secret(cloudlet.format, scenario, name);
    if let Some(path) = user_values.filter(|p| p.is_file()) {
        layers.push(Layer::from_file(
            path,
            LayerKind::User,
            dialect,
            &is_secret,
        )?);
    }
    if !sources.stored.is_empty() {
        layers.push(Layer::stored(&sources.stored));
    }
    for file in &sources.files {
        layers.push(Layer::from_file(
            file,
            LayerKind::ValuesFile,
            dialect,
            &is_secret,
        )?);
    }
    for set in &sources.sets {
        layers.push(match cloudlet.format {
            CloudletFormat::Native => Layer::from_set_hiding(set, &is_secret)?,
            CloudletFormat::V1 => Layer::from_set_v1(set)?,
        });
    }
    for (name, value) in &sources.prompted {
        layers.push(Layer::single(LayerKind::Prompt, name, value.clone()));
    }
    Ok(layers)
}

/// 1.x parameters are untyped; the usual secret-looking names are treated as secrets.
fn v1_looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "privatekey"]
        .iter()
        .any(|s| lower.contains(s))
}

/// Is `name` (a top-level parameter) a secret of this scenario?
pub fn is_secret(format: CloudletFormat, scenario: &Scenario, name: &str) -> bool {
    scenario.decls.get(name).is_some_and(|d| d.secret)
        || (format == CloudletFormat::V1 && v1_looks_secret(name))
}

pub fn merge_mode(format: CloudletFormat) -> params::MergeMode {
    match format {
        CloudletFormat::Native => params::MergeMode::Native,
        CloudletFormat::V1 => params::MergeMode::V1,
    }
}

/// Merges every layer for `scenario`. Missing required values are reported in `missing`, not
/// as an error, so the caller can prompt for them.
pub fn merge_parameters(
    paths: &Paths,
    cloudlet: &Cloudlet,
    scenario: &Scenario,
    sources: &ValueSources,
) -> Result<MergedParameters> {
    let dir_name = cloudlet
        .root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(&cloudlet.manifest.name)
        .to_string();
    let user_file = paths.user_values_file(&dir_name);
    let layers = layers(cloudlet, scenario, Some(&user_file), sources)?;
    let mut merged = params::merge(&scenario.decls, &layers, merge_mode(cloudlet.format))?;
    if cloudlet.format == CloudletFormat::V1 {
        // 1.x parameters are untyped; treat the usual secret-looking names as secrets.
        for key in merged.tree.keys() {
            if v1_looks_secret(key) {
                merged.secrets.insert(key.clone());
            }
        }
    }
    Ok(merged)
}
