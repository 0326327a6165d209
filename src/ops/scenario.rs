//! Scenarios: resolving `CLOUDLET[/SCENARIO]`, merging parameter values (prompting for missing
//! required ones), and rendering the pattern: the one path `scenario:render` and
//! `formation:create|update` share.

use nepho_provider_api::RenderedFile;
use serde_json::Value;

use super::{Context, Prompter};
use crate::cloudlet::{Cloudlet, Scenario};
use crate::error::{Error, Result};
use crate::install::{self, Installed};
use crate::output::human::show_value;
use crate::output::{
    ParameterDeclaration, ParameterValue, RenderedScenario, ScenarioDescription, ScenarioSummary,
};
use crate::params::{LayerKind, MergedParameters, MissingParam, ParamType};
use crate::scenario::render::{self, RenderContext};
use crate::scenario::{self as scen, ValueSources};

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

/// `scenario:list`.
pub fn list(cx: &Context, name: &str) -> Result<Vec<ScenarioSummary>> {
    let installed = install::find(&cx.paths, name)?;
    Ok(super::cloudlet::scenario_summaries(&installed.cloudlet))
}

/// `scenario:describe`: the scenario and every merged value with the layer it came from.
pub fn describe(
    cx: &Context,
    reference: &str,
    sources: &ValueSources,
) -> Result<ScenarioDescription> {
    let (installed, scenario) = resolve(cx, reference)?;
    let merged = scen::merge_parameters(&cx.paths, &installed.cloudlet, &scenario, sources)?;
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
                ty: d.ty,
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
                    layer: node.origin.layer,
                    source: node.origin.describe_for(secret),
                    secret,
                    key,
                }
            })
            .collect(),
        missing: merged.missing.iter().map(|m| m.name.clone()).collect(),
        warnings,
        root: installed.cloudlet.root.clone(),
    };
    Ok(description)
}

/// Fills missing required values: prompts on a terminal, otherwise fails naming the flags.
/// `lost` names secrets whose stored value is gone: they count as missing unless this command
/// gives them (`-f`, `--set` or a prompt).
pub fn complete_required(
    cx: &Context,
    prompt: &dyn Prompter,
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
        let value = ask(prompt, m)?;
        sources.prompted.push((m.name.clone(), value));
    }
    scen::merge_parameters(&cx.paths, cloudlet, scenario, &sources)
}

/// Asks for one missing value: a password for a secret, a choice for `allowed`, else text typed
/// as the parameter's type.
fn ask(prompt: &dyn Prompter, missing: &MissingParam) -> Result<Value> {
    let label = match &missing.description {
        Some(d) => format!("{} ({d})", missing.name),
        None => missing.name.clone(),
    };
    if missing.secret {
        return Ok(Value::String(prompt.password(&label)?));
    }
    if let Some(allowed) = &missing.allowed {
        let items: Vec<String> = allowed.iter().map(show_value).collect();
        let pick = prompt.select(&label, &items)?;
        return Ok(allowed[pick].clone());
    }
    let text = prompt.input(&label, None)?;
    Ok(match missing.ty {
        Some(ParamType::String) => Value::String(text),
        _ => crate::yaml::resolve_plain(&text, crate::yaml::Dialect::Yaml12),
    })
}

/// A scenario rendered for a formation: what `scenario:render` prints and
/// `formation:create|update` turn into a spec.
pub struct Rendered {
    pub installed: Installed,
    pub scenario: Scenario,
    pub merged: MergedParameters,
    pub file: RenderedFile,
    /// Secret values were replaced by `********`.
    pub redacted: bool,
}

/// Resolve → merge values (asking for missing required ones; `lost` secrets count as missing)
/// → render the pattern for formation `formation`. Secrets are redacted unless `reveal`.
pub fn render_with(
    cx: &Context,
    prompt: &dyn Prompter,
    reference: &str,
    formation: &str,
    sources: ValueSources,
    lost: &[String],
    reveal: bool,
) -> Result<Rendered> {
    let (installed, scenario) = resolve(cx, reference)?;
    let merged = complete_required(cx, prompt, &installed.cloudlet, &scenario, sources, lost)?;
    for w in scenario.warnings.iter().chain(merged.warnings.iter()) {
        cx.out.warn(w);
    }
    let redacted = !reveal && !merged.secrets.is_empty();
    if redacted {
        cx.out.notice(
            "note: secret parameters are shown as ******** (use --reveal-secrets to render them)",
        );
    }
    let parameters = if redacted {
        merged.redacted_values()
    } else {
        merged.values()
    };
    let rcx = RenderContext {
        formation: formation.to_string(),
        parameters,
        secret_keys: merged.secrets.iter().cloned().collect(),
    };
    let file = render::render_pattern(&installed.cloudlet, &scenario, &rcx)?;
    Ok(Rendered {
        installed,
        scenario,
        merged,
        file,
        redacted,
    })
}

/// `scenario:render`: the rendered pattern, secrets redacted unless `reveal_secrets`.
pub fn render(
    cx: &Context,
    prompt: &dyn Prompter,
    reference: &str,
    sources: ValueSources,
    name: &str,
    reveal_secrets: bool,
) -> Result<RenderedScenario> {
    let r = render_with(cx, prompt, reference, name, sources, &[], reveal_secrets)?;
    if r.installed.cloudlet.format == crate::cloudlet::CloudletFormat::V1 {
        // 1.x parsed what it rendered (format_template) and failed there; so does nepho.
        render::check_rendered(r.scenario.provider, &r.file, &r.scenario.pattern.path)?;
    }
    Ok(RenderedScenario {
        cloudlet: r.installed.cloudlet.manifest.name.clone(),
        scenario: r.scenario.name.clone(),
        provider: r.scenario.provider.to_string(),
        secrets_redacted: r.redacted,
        files: vec![r.file],
    })
}
