//! Cloudlets: search and describe (installed, or from the registry), install, list, update,
//! uninstall, scaffold and validate.

use std::path::{Path, PathBuf};

use super::Context;
use crate::cloudlet::{Cloudlet, CloudletName, bundled, scaffold};
use crate::error::{Error, Result};
use crate::install::{self, InstallOptions, Installed, RegistryPin, Source, UpdateOutcome};
use crate::output::{
    CloudletDescription, Created, InstalledCloudlet, ScenarioSummary, Uninstalled,
};
use crate::registry::{self, Refresh, SearchHit};
use crate::validate;
use crate::validate::ValidationReport;

/// `cloudlet:search`: registry entries matching `terms`, best first.
pub fn search(cx: &Context, terms: &[String]) -> Result<Vec<SearchHit>> {
    let warn = |m: &str| cx.out.warn(m);
    let hits = cx.registry().search(Refresh::IfStale, &warn, terms)?;
    if hits.is_empty() {
        cx.out
            .notice(&format!("no cloudlet matches \"{}\"", terms.join(" ")));
    }
    Ok(hits)
}

pub(crate) fn scenario_summaries(cloudlet: &Cloudlet) -> Vec<ScenarioSummary> {
    cloudlet
        .scenario_names()
        .unwrap_or_default()
        .into_iter()
        .map(|name| match cloudlet.scenario(&name) {
            Ok(s) => ScenarioSummary {
                name,
                summary: s.summary,
                provider: Some(s.provider.to_string()),
                file: s.file.display().to_string(),
                error: None,
            },
            Err(e) => ScenarioSummary {
                file: String::new(),
                name,
                summary: None,
                provider: None,
                error: Some(e.to_string()),
            },
        })
        .collect()
}

/// `cloudlet:describe`: the installed cloudlet of that name, else the registry's entry.
pub fn describe(cx: &Context, name: &str) -> Result<CloudletDescription> {
    let installed = match install::find(&cx.paths, name) {
        Ok(i) => Some(i),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(match installed {
        Some(i) => {
            let m = &i.cloudlet.manifest;
            CloudletDescription {
                name: m.name.clone(),
                summary: m.summary.clone(),
                description: m.description.clone(),
                version: m.version.clone(),
                author: m.author.clone(),
                license: m.license.clone(),
                project_page: m.project_page.clone(),
                tags: m.tags.clone(),
                source: i
                    .record
                    .as_ref()
                    .map(|r| r.source.clone())
                    .or_else(|| m.source.clone()),
                repository: i
                    .record
                    .as_ref()
                    .map(|r| r.source.clone())
                    .or_else(|| m.source.clone()),
                installed: true,
                path: Some(i.dir.display().to_string()),
                scenarios: scenario_summaries(&i.cloudlet),
                registry: None,
                versions: Vec::new(),
            }
        }
        None => {
            let warn = |m: &str| cx.out.warn(m);
            let entries = cx.registry().entries(Refresh::IfStale, &warn)?;
            let (source, e) = registry::lookup(&entries, name)?;
            CloudletDescription {
                name: e.name.clone(),
                summary: e.summary.clone(),
                description: e.description.clone(),
                version: e.version.clone(),
                author: e.author.clone(),
                license: e.license.clone(),
                project_page: e.project_page.clone(),
                tags: e.tags.clone(),
                source: Some(e.url.clone()),
                repository: Some(e.url.clone()),
                installed: false,
                path: None,
                scenarios: e
                    .scenarios
                    .iter()
                    .map(|s| ScenarioSummary {
                        name: s.name.clone(),
                        summary: s.summary.clone(),
                        provider: Some(s.provider.clone()),
                        file: String::new(),
                        error: None,
                    })
                    .collect(),
                registry: Some(source.to_string()),
                versions: e.versions.clone(),
            }
        }
    })
}

pub(crate) fn installed_view(i: &Installed) -> InstalledCloudlet {
    InstalledCloudlet {
        name: i.cloudlet.manifest.name.clone(),
        path: i.dir.display().to_string(),
        version: i.cloudlet.manifest.version.clone(),
        format: Some(i.cloudlet.format),
        summary: i.cloudlet.manifest.summary.clone(),
        source: i.record.as_ref().map(|r| r.source.clone()),
        reference: i.record.as_ref().and_then(|r| r.reference.clone()),
        commit: i.record.as_ref().map(|r| r.commit.clone()),
        scenarios: i.cloudlet.scenario_names().unwrap_or_default(),
        broken_blueprints: i
            .record
            .as_ref()
            .map(|r| r.broken_blueprints.clone())
            .unwrap_or_default(),
        error: None,
    }
}

/// `cloudlet:install`: `arg` is `bundled:NAME`, a git URL or path, or a registry name.
pub fn install(
    cx: &Context,
    arg: &str,
    reference: Option<&str>,
    force: bool,
    name: Option<&str>,
) -> Result<InstalledCloudlet> {
    let source = if let Some(name) = arg.strip_prefix("bundled:") {
        if !bundled::exists(name) {
            return Err(Error::not_found(format!(
                "no bundled cloudlet \"{name}\" (bundled: {})",
                bundled::names().join(", ")
            )));
        }
        Source::Bundled(name.to_string())
    } else if install::looks_like_url(arg) {
        crate::git::check_url(arg)?;
        let local = arg.starts_with('/') || arg.starts_with("./") || arg.starts_with("../");
        if local && !Path::new(arg).exists() {
            return Err(Error::not_found(format!("no repository at {arg}"))
                .with_hint("give a git URL, a path to a git repository, or a registry name"));
        }
        Source::Git(arg.to_string())
    } else {
        CloudletName::parse(arg)?;
        let warn = |m: &str| cx.out.warn(m);
        let entries = match cx.registry().entries(Refresh::IfStale, &warn) {
            Ok(e) => e,
            Err(e) if bundled::exists(arg) => {
                cx.out.warn(&format!("{e}; installing the bundled {arg}"));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        match registry::lookup(&entries, arg) {
            Ok((registry_name, entry)) => match entry.url.strip_prefix("bundled:") {
                Some(name) => Source::Bundled(name.to_string()),
                None => {
                    let pin = RegistryPin::from_entry(registry_name, entry);
                    if pin.is_none() {
                        cx.out.warn(&format!(
                            "registry {registry_name} pins no commit for {}; installing what its repository holds now",
                            entry.name
                        ));
                    }
                    Source::Registry {
                        name: entry.name.clone(),
                        url: entry.url.clone(),
                        pin,
                    }
                }
            },
            Err(_) if bundled::exists(arg) => Source::Bundled(arg.to_string()),
            Err(e) => return Err(e),
        }
    };
    let notice = |m: &str| cx.out.notice(&format!("Notice: {m}"));
    let git = cx.git();
    let installed = install::install(
        &cx.paths,
        &source,
        &InstallOptions {
            reference,
            name,
            force,
            git: &git,
            notice: &notice,
        },
    )?;
    for w in &installed.cloudlet.warnings {
        cx.out.warn(w);
    }
    Ok(installed_view(&installed))
}

/// `cloudlet:list`: every installed cloudlet, broken ones with their error.
pub fn list(cx: &Context) -> Result<Vec<InstalledCloudlet>> {
    Ok(install::list(&cx.paths)?
        .into_iter()
        .map(|r| match r {
            Ok(i) => installed_view(&i),
            Err((dir, e)) => InstalledCloudlet {
                name: dir
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: dir.display().to_string(),
                version: None,
                format: None,
                summary: None,
                source: None,
                reference: None,
                commit: None,
                scenarios: vec![],
                broken_blueprints: vec![],
                error: Some(e.to_string()),
            },
        })
        .collect())
}

/// `cloudlet:update`: fast-forwards one cloudlet, or all (`name` None); with all, a failure is
/// warned about and the others go on: `first_error` is the one to exit with after printing.
pub struct Updated {
    pub outcomes: Vec<UpdateOutcome>,
    pub first_error: Option<Error>,
}

/// `cloudlet:update NAME` or `--all` (`name` None).
pub fn update(cx: &Context, name: Option<&str>) -> Result<Updated> {
    let all = name.is_none();
    let git = cx.git();
    let names: Vec<String> = if all {
        install::list(&cx.paths)?
            .into_iter()
            .flatten()
            .map(|i| i.cloudlet.manifest.name)
            .collect()
    } else {
        vec![name.unwrap_or_default().to_string()]
    };
    let mut outcomes = Vec::new();
    let mut first_error = None;
    for n in &names {
        match install::update(&cx.paths, &git, n) {
            Ok(o) => outcomes.push(o),
            Err(e) if all => {
                cx.out.warn(&format!("{n}: {e}"));
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Updated {
        outcomes,
        first_error,
    })
}

/// `cloudlet:uninstall`.
pub fn uninstall(cx: &Context, name: &str, force: bool) -> Result<Uninstalled> {
    let removed = install::uninstall(&cx.paths, name, force)?;
    Ok(Uninstalled {
        name: removed.cloudlet.manifest.name.clone(),
        path: removed.dir.display().to_string(),
    })
}

/// `cloudlet:create`: a new native cloudlet in `path` (default: `./NAME` without the owner).
pub fn create(cx: &Context, name: &str, path: Option<PathBuf>, no_git: bool) -> Result<Created> {
    let name = CloudletName::parse(name)?;
    let dir = path.unwrap_or_else(|| PathBuf::from(name.short()));
    let git = (!no_git).then(|| cx.git());
    let cloudlet = scaffold::create(&name, &dir, git.as_ref())?;
    Ok(Created {
        name: name.to_string(),
        path: cloudlet.root.display().to_string(),
        scenarios: cloudlet.scenario_names().unwrap_or_default(),
    })
}

/// `cloudlet:validate`: a directory, an installed cloudlet's name, or the current directory.
pub fn validate(cx: &Context, target: Option<&str>) -> Result<ValidationReport> {
    let dir = match target {
        None => std::env::current_dir().map_err(|e| Error::io(".", e))?,
        Some(t) if Path::new(t).is_dir() => PathBuf::from(t),
        Some(t) => install::find(&cx.paths, t)?.dir,
    };
    let cloudlet = Cloudlet::load(&dir)?;
    let report = validate::validate(&cloudlet);
    for w in report
        .warnings
        .iter()
        .chain(report.scenarios.iter().flat_map(|s| s.warnings.iter()))
    {
        cx.out.warn(w);
    }
    Ok(report)
}

/// The error a failed validation exits with (after the report is printed).
pub fn validation_failed(report: &ValidationReport) -> Result<()> {
    if report.ok {
        return Ok(());
    }
    let count = report.errors().count();
    Err(Error::invalid(format!(
        "{} has {count} validation error{}",
        report.cloudlet,
        if count == 1 { "" } else { "s" }
    )))
}
