//! `nepho scenario:*` — list, describe (merged parameters with provenance), render.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::Context;
use crate::cloudlet::install::{self, Installed};
use crate::cloudlet::{Cloudlet, Scenario};
use crate::error::{Error, Result};
use crate::output::{
    self, ParameterDeclaration, ParameterValue, RenderedScenario, ScenarioDescription,
};
use crate::scenario::params::{LayerKind, MergedParameters, MissingParam, ParamType};
use crate::scenario::render::{self, RenderContext};
use crate::scenario::{self as scen, ValueSources};

#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// List a cloudlet's scenarios
    List { cloudlet: String },
    /// Show a scenario and every merged parameter value with the layer and file it came from
    Describe {
        /// CLOUDLET[/SCENARIO] (no scenario means `default`)
        scenario: String,
        #[command(flatten)]
        values: ValueArgs,
    },
    /// Print the scenario's rendered pattern
    Render {
        /// CLOUDLET[/SCENARIO] (no scenario means `default`)
        scenario: String,
        #[command(flatten)]
        values: ValueArgs,
        /// Formation name the pattern sees as `formation.name`
        #[arg(long, default_value = "preview")]
        name: String,
        /// Render secret parameters with their real values instead of ********
        #[arg(long)]
        reveal_secrets: bool,
    },
}

/// The user's value layers, shared by every command that merges parameters.
#[derive(Debug, Clone, Args)]
pub struct ValueArgs {
    /// Values file (YAML mapping); repeat to layer several, later files win
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl ValueArgs {
    pub fn sources(&self) -> ValueSources {
        ValueSources {
            files: self.files.clone(),
            sets: self.sets.clone(),
            ..ValueSources::default()
        }
    }
}

pub fn run(cx: &Context, cmd: ScenarioCommand) -> Result<()> {
    match cmd {
        ScenarioCommand::List { cloudlet } => list(cx, &cloudlet),
        ScenarioCommand::Describe { scenario, values } => describe(cx, &scenario, &values),
        ScenarioCommand::Render {
            scenario,
            values,
            name,
            reveal_secrets,
        } => render_cmd(cx, &scenario, &values, &name, reveal_secrets),
    }
}

/// Resolves `cloudlet/scenario`, where the cloudlet name may itself be `owner/name`.
pub fn resolve(cx: &Context, reference: &str) -> Result<(Installed, Scenario)> {
    if let Some((cloudlet, scenario)) = reference.rsplit_once('/')
        && !scenario.is_empty()
    {
        match install::find(&cx.paths, cloudlet) {
            Ok(i) => {
                if i.cloudlet.scenario_names()?.iter().any(|n| n == scenario)
                    || install::find(&cx.paths, reference).is_err()
                {
                    let s = i.cloudlet.scenario(scenario)?;
                    return Ok((i, s));
                }
            }
            Err(Error::NotFound { .. }) | Err(Error::Invalid { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let i = match install::find(&cx.paths, reference) {
        Ok(i) => i,
        // `hello/aws` with no `hello` installed: name the cloudlet, not the whole reference.
        Err(Error::NotFound { .. }) if reference.contains('/') && !reference.ends_with('/') => {
            let (cloudlet, _) = reference.rsplit_once('/').unwrap_or((reference, ""));
            let message = if reference.matches('/').count() == 1 {
                format!("neither cloudlet \"{reference}\" nor cloudlet \"{cloudlet}\" is installed")
            } else {
                format!("cloudlet \"{cloudlet}\" is not installed")
            };
            return Err(Error::not_found(message).with_hint(format!(
                "install it with `nepho cloudlet:install {cloudlet}`, or see `nepho cloudlet:list`"
            )));
        }
        Err(e) => return Err(e),
    };
    let s = i.cloudlet.scenario("default")?;
    Ok((i, s))
}

fn list(cx: &Context, name: &str) -> Result<()> {
    let installed = install::find(&cx.paths, name)?;
    let items = super::cloudlet::scenario_summaries(&installed.cloudlet);
    cx.out.data(&items, || {
        let mut t = output::table(&["SCENARIO", "PROVIDER", "SUMMARY"]);
        for s in &items {
            let summary = match &s.error {
                Some(e) => format!("(error: {})", e.lines().next().unwrap_or_default()),
                None => s.summary.clone().unwrap_or_default(),
            };
            t.add_row(vec![
                s.name.clone(),
                s.provider.clone().unwrap_or_default(),
                summary,
            ]);
        }
        output::render_table(&t)
    });
    Ok(())
}

fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe(cx: &Context, reference: &str, values: &ValueArgs) -> Result<()> {
    let (installed, scenario) = resolve(cx, reference)?;
    let merged =
        scen::merge_parameters(&cx.paths, &installed.cloudlet, &scenario, &values.sources())?;
    let mut warnings = scenario.warnings.clone();
    warnings.extend(merged.warnings.iter().cloned());
    for w in &warnings {
        cx.out.warn(w);
    }
    let description = ScenarioDescription {
        cloudlet: installed.cloudlet.manifest.name.clone(),
        name: scenario.name.clone(),
        summary: scenario.summary.clone(),
        description: scenario.description.clone(),
        provider: scenario.provider.to_string(),
        pattern: scenario.pattern.path.display().to_string(),
        provisioner: scenario
            .provisioner
            .as_ref()
            .map(|p| p.display().to_string()),
        file: scenario.file.display().to_string(),
        parameters: scenario
            .decls
            .values()
            .map(|d| ParameterDeclaration {
                name: d.name.clone(),
                ty: d.ty.map(|t| t.as_str().to_string()),
                description: d.description.clone(),
                required: d.required,
                secret: d.secret,
                allowed: d.allowed.clone(),
                pattern: d.pattern.clone(),
                list_policy: d.list_policy.to_string(),
                declared_at: d.declared_at.describe(),
            })
            .collect(),
        values: merged
            .leaves()
            .into_iter()
            .map(|(key, node)| {
                let secret = merged.is_secret(&key);
                ParameterValue {
                    value: if secret {
                        Value::String(nepho_provider_api::REDACTED.into())
                    } else {
                        node.to_value()
                    },
                    layer: node.origin.layer.as_str().to_string(),
                    source: node.origin.describe_for(secret),
                    secret,
                    key,
                }
            })
            .collect(),
        missing: merged.missing.iter().map(|m| m.name.clone()).collect(),
        warnings,
    };
    cx.out.data(&description, || {
        let d = &description;
        let rule = "-".repeat(48);
        let mut s = format!(
            "Name:        {}/{}\nProvider:    {}\n",
            d.cloudlet, d.name, d.provider
        );
        if let Some(summary) = &d.summary {
            s.push_str(&format!("Summary:     {summary}\n"));
        }
        if let Some(desc) = &d.description {
            s.push_str(&format!("Description: {}\n", desc.trim()));
        }
        s.push_str(&format!("Pattern:     {}\n", d.pattern));
        if let Some(p) = &d.provisioner {
            s.push_str(&format!("Provisioner: {p}\n"));
        }
        s.push_str(&format!(
            "{rule}\nParameters (merged; later layers win):\n{rule}\n"
        ));
        // Files of the cloudlet are shown relative to it (the JSON keeps full paths).
        let root = format!("{}/", installed.cloudlet.root.display());
        let mut t = output::table(&["KEY", "VALUE", "LAYER", "FROM"]);
        for v in &d.values {
            t.add_row(vec![
                v.key.clone(),
                show_value(&v.value),
                v.layer.clone(),
                v.source
                    .strip_prefix(&root)
                    .unwrap_or(&v.source)
                    .to_string(),
            ]);
        }
        for m in &d.missing {
            t.add_row(vec![
                m.clone(),
                "<required, not set>".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        s.push_str(&output::render_table(&t));
        s.push_str(&format!(
            "\n{rule}\nChange values with -f FILE or --set KEY=VALUE, or edit:\n{}\n",
            d.file
        ));
        s
    });
    Ok(())
}

/// Fills missing required values: prompts on a terminal, otherwise fails naming the flags.
/// `lost` names secrets whose stored value is gone: they count as missing unless this command
/// gives them (`-f`, `--set` or a prompt).
pub fn complete_required(
    cx: &Context,
    cloudlet: &Cloudlet,
    scenario: &Scenario,
    mut sources: ValueSources,
    lost: &[String],
) -> Result<MergedParameters> {
    let merged = scen::merge_parameters(&cx.paths, cloudlet, scenario, &sources)?;
    let mut missing = merged.missing.clone();
    let given_here = |name: &str| {
        merged.tree.get(name).is_some_and(|n| {
            matches!(
                n.origin.layer,
                LayerKind::ValuesFile | LayerKind::Set | LayerKind::Prompt
            )
        })
    };
    let mut unrecovered = Vec::new();
    for name in lost {
        if given_here(name) {
            continue;
        }
        unrecovered.push(name.as_str());
        if !missing.iter().any(|m| &m.name == name) {
            let decl = merged.decls.get(name);
            missing.push(MissingParam {
                name: name.clone(),
                description: decl.and_then(|d| d.description.clone()),
                secret: true,
                ty: decl.and_then(|d| d.ty),
                allowed: decl.and_then(|d| d.allowed.clone()),
            });
        }
    }
    if missing.is_empty() {
        return Ok(merged);
    }
    if !cx.interactive {
        let names: Vec<&str> = missing.iter().map(|m| m.name.as_str()).collect();
        let flags: Vec<String> = names.iter().map(|n| format!("--set {n}=VALUE")).collect();
        let why_lost = if unrecovered.is_empty() {
            String::new()
        } else {
            format!(
                " (the stored value of secret {} is lost: the formation's secrets.json is missing or unreadable)",
                unrecovered.join(", ")
            )
        };
        return Err(Error::invalid(format!(
            "missing required parameter{}: {}{why_lost}",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ))
        .with_hint(format!("supply {} (or put them in a -f values file); nepho does not prompt without a terminal or with --no-input", flags.join(" "))));
    }
    for m in &missing {
        let value = prompt(m)?;
        sources.prompted.push((m.name.clone(), value));
    }
    scen::merge_parameters(&cx.paths, cloudlet, scenario, &sources)
}

fn prompt(missing: &MissingParam) -> Result<Value> {
    let theme = dialoguer::theme::SimpleTheme;
    let label = match &missing.description {
        Some(d) => format!("{} ({d})", missing.name),
        None => missing.name.clone(),
    };
    let interrupted = |e: dialoguer::Error| match e {
        dialoguer::Error::IO(io) if io.kind() == std::io::ErrorKind::Interrupted => {
            Error::Interrupted
        }
        other => Error::Other(format!("prompt failed: {other}")),
    };
    if missing.secret {
        let text = dialoguer::Password::with_theme(&theme)
            .with_prompt(label)
            .interact()
            .map_err(interrupted)?;
        return Ok(Value::String(text));
    }
    if let Some(allowed) = &missing.allowed {
        let items: Vec<String> = allowed.iter().map(show_value).collect();
        let pick = dialoguer::Select::with_theme(&theme)
            .with_prompt(label)
            .items(&items)
            .default(0)
            .interact()
            .map_err(interrupted)?;
        return Ok(allowed[pick].clone());
    }
    let text: String = dialoguer::Input::with_theme(&theme)
        .with_prompt(label)
        .interact_text()
        .map_err(interrupted)?;
    Ok(match missing.ty {
        Some(ParamType::String) => Value::String(text),
        _ => crate::yaml::resolve_plain(&text, crate::yaml::Dialect::Yaml12),
    })
}

fn render_cmd(
    cx: &Context,
    reference: &str,
    values: &ValueArgs,
    name: &str,
    reveal_secrets: bool,
) -> Result<()> {
    let (installed, scenario) = resolve(cx, reference)?;
    let merged = complete_required(cx, &installed.cloudlet, &scenario, values.sources(), &[])?;
    for w in scenario.warnings.iter().chain(merged.warnings.iter()) {
        cx.out.warn(w);
    }
    let redact = !reveal_secrets && !merged.secrets.is_empty();
    if redact {
        cx.out.notice(
            "note: secret parameters are shown as ******** (use --reveal-secrets to render them)",
        );
    }
    let parameters = if redact {
        merged.redacted_values()
    } else {
        merged.values()
    };
    let cx_render = RenderContext {
        formation: name.to_string(),
        parameters,
        secret_keys: merged.secrets.iter().cloned().collect(),
    };
    let file = render::render_pattern(&installed.cloudlet, &scenario, &cx_render)?;
    if installed.cloudlet.format == crate::cloudlet::CloudletFormat::V1 {
        // 1.x parsed what it rendered (format_template) and failed there; so does nepho.
        render::check_rendered(scenario.provider, &file, &scenario.pattern.path)?;
    }
    let result = RenderedScenario {
        cloudlet: installed.cloudlet.manifest.name.clone(),
        scenario: scenario.name.clone(),
        provider: scenario.provider.to_string(),
        secrets_redacted: redact,
        files: vec![file],
    };
    cx.out.data(&result, || {
        result
            .files
            .iter()
            .map(|f| f.contents.clone())
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
