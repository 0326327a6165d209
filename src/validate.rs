//! `cloudlet:validate`: every scenario loads, its parameters are well declared, and every
//! pattern renders (with defaults, and placeholders for required values) into something its
//! provider can read. Also the safety checks an install runs on a freshly cloned tree.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cloudlet::{Cloudlet, CloudletFormat, Scenario};
use crate::error::{Error, Result};
use crate::params::{self, ParamType};
use crate::scenario::render::{self, RenderContext};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScenarioCheck {
    pub scenario: String,
    pub provider: Option<String>,
    pub pattern: Option<String>,
    pub ok: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ValidationReport {
    pub cloudlet: String,
    pub path: String,
    pub format: CloudletFormat,
    pub ok: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub scenarios: Vec<ScenarioCheck>,
}

impl ValidationReport {
    pub fn errors(&self) -> impl Iterator<Item = &String> {
        self.errors
            .iter()
            .chain(self.scenarios.iter().flat_map(|s| s.errors.iter()))
    }
}

pub fn validate(cloudlet: &Cloudlet) -> ValidationReport {
    let mut report = ValidationReport {
        cloudlet: cloudlet.manifest.name.clone(),
        path: cloudlet.root.display().to_string(),
        format: cloudlet.format,
        ok: true,
        errors: Vec::new(),
        warnings: cloudlet.warnings.clone(),
        scenarios: Vec::new(),
    };
    if let Err(e) = check_tree(&cloudlet.root) {
        report.errors.push(e.to_string());
    }
    match cloudlet.scenario_names() {
        Ok(names) => {
            if !names.iter().any(|n| n == "default") && cloudlet.format == CloudletFormat::Native {
                report.errors.push(format!(
                    "{}: a cloudlet needs a `default` scenario (scenarios/default.yaml)",
                    cloudlet.root.display()
                ));
            }
            if names.is_empty() {
                report.errors.push("the cloudlet has no scenarios".into());
            }
            for name in names {
                report.scenarios.push(check_scenario(cloudlet, &name));
            }
        }
        Err(e) => report.errors.push(e.to_string()),
    }
    let ok = report.errors().next().is_none();
    report.ok = ok;
    report
}

/// A stand-in value for a required parameter without a default, so the pattern still renders.
fn placeholder(name: &str, ty: Option<ParamType>, allowed: Option<&Vec<Value>>) -> Value {
    if let Some(first) = allowed.and_then(|a| a.first()) {
        return first.clone();
    }
    match ty {
        Some(ParamType::Number) => Value::from(0),
        Some(ParamType::Boolean) => Value::Bool(false),
        Some(ParamType::List) => Value::Array(vec![]),
        Some(ParamType::Map) => Value::Object(Default::default()),
        Some(ParamType::String) | None => Value::String(format!("REQUIRED-{name}")),
    }
}

fn check_scenario(cloudlet: &Cloudlet, name: &str) -> ScenarioCheck {
    let mut check = ScenarioCheck {
        scenario: name.to_string(),
        provider: None,
        pattern: None,
        ok: false,
        errors: vec![],
        warnings: vec![],
    };
    let scenario = match cloudlet.scenario(name) {
        Ok(s) => s,
        Err(e) => {
            check.errors.push(e.to_string());
            return check;
        }
    };
    check.provider = Some(scenario.provider.to_string());
    check.pattern = Some(scenario.pattern.path.display().to_string());
    check.warnings.extend(scenario.warnings.iter().cloned());
    // Only the cloudlet's own layers: validation must not depend on this user's values.
    let layers = match crate::scenario::layers(cloudlet, &scenario, None, &Default::default()) {
        Ok(l) => l,
        Err(e) => {
            check.errors.push(e.to_string());
            return check;
        }
    };
    let merged = match params::merge(
        &scenario.decls,
        &layers,
        crate::scenario::merge_mode(cloudlet.format),
    ) {
        Ok(m) => m,
        Err(e) => {
            check.errors.push(e.to_string());
            return check;
        }
    };
    let mut values = merged.values();
    for missing in &merged.missing {
        values.insert(
            missing.name.clone(),
            placeholder(&missing.name, missing.ty, missing.allowed.as_ref()),
        );
    }
    let cx = RenderContext {
        formation: "validate".into(),
        parameters: values,
        secret_keys: merged.secrets.iter().cloned().collect(),
    };
    if cloudlet.format == CloudletFormat::Native {
        check.warnings.extend(unescaped_splices(&scenario));
    }
    match render::render_pattern(cloudlet, &scenario, &cx) {
        Ok(file) => {
            if let Err(e) = render::check_rendered(scenario.provider, &file, &scenario.pattern.path)
            {
                check.errors.push(e.to_string());
            }
        }
        Err(e) => check.errors.push(e.to_string()),
    }
    check.ok = check.errors.is_empty();
    check
}

/// Warnings for parameters spliced with escaping turned off, in the files of the scenario's
/// pattern directory.
fn unescaped_splices(scenario: &Scenario) -> Vec<String> {
    let Some(dir) = scenario.pattern.search_path.first() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut warnings = Vec::new();
    for file in files {
        let Ok(source) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (line, splice) in crate::scenario::escape::unescaped_parameter_splices(&source) {
            warnings.push(format!(
                "{}:{line}: {splice} splices a parameter unescaped: a value can change the pattern (drop `| raw` unless the scenario's `pattern:`/`allowed:` make it safe)",
                file.display()
            ));
        }
    }
    warnings
}

/// Walks a cloudlet tree (outside `.git`) and rejects symlinks that resolve outside it and
/// special files (fifos, devices, sockets).
pub fn check_tree(root: &Path) -> Result<()> {
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
                let resolved = lexical_resolve(&dir, &target);
                let inside = resolved.as_ref().is_some_and(|r| r.starts_with(&root));
                let real_inside = match path.canonicalize() {
                    Ok(real) => real.starts_with(&root),
                    Err(_) => inside, // dangling link: judge it by where it points
                };
                if !inside || !real_inside {
                    return Err(Error::invalid(format!(
                        "{}: symlink to {} leaves the cloudlet",
                        path.strip_prefix(&root).unwrap_or(&path).display(),
                        target.display()
                    ))
                    .with_hint(
                        "cloudlets may only contain symlinks to files inside the cloudlet",
                    ));
                }
            } else if ft.is_dir() {
                stack.push(path);
            } else if !ft.is_file() {
                return Err(Error::invalid(format!(
                    "{}: not a regular file (fifo, socket or device)",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

fn lexical_resolve(base: &Path, target: &Path) -> Option<PathBuf> {
    let joined = if target.is_absolute() {
        target.to_path_buf()
    } else {
        base.join(target)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
        }
    }
    Some(out)
}

/// A 1.x blueprint that does not load or render, and why.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BrokenBlueprint {
    pub name: String,
    pub reason: String,
}

/// Validates a cloudlet about to be installed. Any problem refuses a native cloudlet. A Nepho 1.x
/// cloudlet is refused only for problems of the whole cloudlet; a blueprint that does not load
/// or render is returned as broken (1.x installed such cloudlets and failed when one was used).
pub(crate) fn checked(cloudlet: &Cloudlet, consequence: &str) -> Result<Vec<BrokenBlueprint>> {
    let report = validate(cloudlet);
    let v1 = cloudlet.format == CloudletFormat::V1;
    let fatal: Vec<&String> = if v1 {
        report.errors.iter().collect()
    } else {
        report.errors().collect()
    };
    if let Some(first) = fatal.first() {
        let count = fatal.len();
        return Err(Error::invalid(format!(
            "{} failed validation ({count} error{}); {consequence}:\n  {}",
            cloudlet.manifest.name,
            if count == 1 { "" } else { "s" },
            fatal
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        ))
        .with_hint(if first.contains("required") {
            "fix the cloudlet and install again"
        } else {
            "fix the cloudlet, then install again"
        }));
    }
    Ok(report
        .scenarios
        .iter()
        .filter(|s| v1 && !s.ok)
        .map(|s| BrokenBlueprint {
            name: s.scenario.clone(),
            reason: s.errors.join("; "),
        })
        .collect())
}
