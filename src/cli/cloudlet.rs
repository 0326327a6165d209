//! `nepho cloudlet:*` — search, describe, install, list, update, uninstall, create, validate.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::Context;
use crate::cloudlet::install::{self, InstallOptions, Installed, RegistryPin, Source};
use crate::cloudlet::{Cloudlet, CloudletName, bundled, scaffold, validate};
use crate::error::{Error, Result};
use crate::output::{
    self, CloudletDescription, Created, InstalledCloudlet, ScenarioSummary, Uninstalled,
};
use crate::registry::{self, Refresh};

#[derive(Debug, Subcommand)]
pub enum CloudletCommand {
    /// Search the registry (name matches rank above tags, tags above summaries)
    Search {
        #[arg(required = true)]
        terms: Vec<String>,
    },
    /// Show a cloudlet's details (installed, or from the registry)
    Describe { name: String },
    /// Install a cloudlet by registry name or git URL
    Install {
        /// Registry name (`huit/mediawiki`, `hello`) or git URL
        source: String,
        /// Branch, tag or commit to check out
        #[arg(long = "ref", value_name = "REF")]
        reference: Option<String>,
        /// Replace an installed cloudlet of the same name
        #[arg(long)]
        force: bool,
        /// Install a Nepho 1.x cloudlet under this name (default: the last part of its git
        /// URL without `.git`, as 1.x named it); for two cloudlets whose URLs end alike
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// List installed cloudlets
    List,
    /// Fetch and fast-forward installed cloudlets (refuses to discard local changes)
    Update {
        /// Cloudlet to update
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Update every installed cloudlet
        #[arg(long)]
        all: bool,
    },
    /// Remove an installed cloudlet
    Uninstall {
        name: String,
        /// Uninstall even if formations were made from it
        #[arg(long)]
        force: bool,
    },
    /// Scaffold a new native cloudlet that validates and deploys as is
    Create {
        /// Cloudlet name (`owner/name` or `name`)
        name: String,
        /// Directory to create (default: ./NAME without the owner)
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// Do not `git init` the new cloudlet
        #[arg(long)]
        no_git: bool,
    },
    /// Check every scenario and render every pattern
    Validate {
        /// Cloudlet directory, or the name of an installed cloudlet (default: current directory)
        path: Option<String>,
    },
}

pub fn run(cx: &Context, cmd: CloudletCommand) -> Result<()> {
    match cmd {
        CloudletCommand::Search { terms } => search(cx, &terms),
        CloudletCommand::Describe { name } => describe(cx, &name),
        CloudletCommand::Install {
            source,
            reference,
            force,
            name,
        } => install_cmd(cx, &source, reference.as_deref(), force, name.as_deref()),
        CloudletCommand::List => list(cx),
        CloudletCommand::Update { name, all } => update(cx, name.as_deref(), all),
        CloudletCommand::Uninstall { name, force } => uninstall(cx, &name, force),
        CloudletCommand::Create { name, path, no_git } => create(cx, &name, path, no_git),
        CloudletCommand::Validate { path } => validate_cmd(cx, path.as_deref()),
    }
}

fn search(cx: &Context, terms: &[String]) -> Result<()> {
    let warn = |m: &str| cx.out.warn(m);
    let hits = cx.registry().search(Refresh::IfStale, &warn, terms)?;
    cx.out.data(&hits, || {
        if hits.is_empty() {
            return String::new();
        }
        let several = hits.iter().any(|h| h.registry != hits[0].registry);
        let mut header = vec!["NAME", "VERSION", "SUMMARY"];
        if several {
            header.push("REGISTRY");
        }
        let mut t = output::table(&header);
        for h in &hits {
            let mut row = vec![
                h.name.clone(),
                h.version.clone().unwrap_or_default(),
                h.summary.clone().unwrap_or_default(),
            ];
            if several {
                row.push(h.registry.clone());
            }
            t.add_row(row);
        }
        output::render_table(&t)
    });
    if hits.is_empty() {
        cx.out
            .notice(&format!("no cloudlet matches \"{}\"", terms.join(" ")));
    }
    Ok(())
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

fn describe(cx: &Context, name: &str) -> Result<()> {
    let installed = match install::find(&cx.paths, name) {
        Ok(i) => Some(i),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let description = match installed {
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
    };
    cx.out.data(&description, || {
        let d = &description;
        let mut s = format!("Name:        {}\n", d.name);
        let mut line = |label: &str, v: &Option<String>| {
            if let Some(v) = v {
                s.push_str(&format!("{label:<13}{v}\n"));
            }
        };
        line("Summary:", &d.summary);
        line("Version:", &d.version);
        line("Author:", &d.author);
        line("License:", &d.license);
        line("Project URL:", &d.project_page);
        line("Source:", &d.source);
        line("Installed:", &d.path);
        line("Registry:", &d.registry);
        if !d.versions.is_empty() {
            let versions: Vec<String> = d
                .versions
                .iter()
                .map(|v| format!("{} ({})", v.version, &v.commit[..12.min(v.commit.len())]))
                .collect();
            s.push_str(&format!("{:<13}{}\n", "Versions:", versions.join(", ")));
        }
        if !d.tags.is_empty() {
            s.push_str(&format!("{:<13}{}\n", "Tags:", d.tags.join(", ")));
        }
        if let Some(desc) = &d.description {
            s.push_str(&format!("Description: {}\n", desc.trim()));
        }
        if !d.scenarios.is_empty() {
            s.push_str("Scenarios:\n");
            for sc in &d.scenarios {
                s.push_str(&format!(
                    "  {:<16} {}\n",
                    sc.name,
                    sc.summary.clone().unwrap_or_default()
                ));
            }
        }
        s
    });
    Ok(())
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

fn tree_view(root: &Path, items: &[InstalledCloudlet]) -> String {
    let mut s = format!("{}\n", root.display());
    for (n, item) in items.iter().enumerate() {
        let branch = if n + 1 == items.len() {
            "└──"
        } else {
            "├──"
        };
        let dir = Path::new(&item.path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match (&item.error, &item.version) {
            (Some(e), _) => s.push_str(&format!(
                "{branch} {dir} (broken: {})\n",
                e.lines().next().unwrap_or_default()
            )),
            (None, Some(v)) => s.push_str(&format!("{branch} {dir} (v{v})\n")),
            (None, None) => s.push_str(&format!("{branch} {dir}\n")),
        }
    }
    s
}

fn install_cmd(
    cx: &Context,
    arg: &str,
    reference: Option<&str>,
    force: bool,
    name: Option<&str>,
) -> Result<()> {
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
    let view = installed_view(&installed);
    cx.out.data(&view, || {
        tree_view(&cx.paths.cloudlets_dir(), std::slice::from_ref(&view))
    });
    Ok(())
}

fn list(cx: &Context) -> Result<()> {
    let items: Vec<InstalledCloudlet> = install::list(&cx.paths)?
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
        .collect();
    cx.out.data(&items, || {
        if items.is_empty() {
            return format!(
                "{}\n(no cloudlets installed; try `nepho cloudlet:install hello`)",
                cx.paths.cloudlets_dir().display()
            );
        }
        tree_view(&cx.paths.cloudlets_dir(), &items)
    });
    Ok(())
}

fn update(cx: &Context, name: Option<&str>, all: bool) -> Result<()> {
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
    cx.out.data(&outcomes, || {
        outcomes
            .iter()
            .map(|o| {
                if o.updated {
                    format!(
                        "{}: updated {} → {}",
                        o.name,
                        &o.from[..12.min(o.from.len())],
                        &o.to[..12.min(o.to.len())]
                    )
                } else {
                    format!("{}: {}", o.name, o.note.clone().unwrap_or_default())
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn uninstall(cx: &Context, name: &str, force: bool) -> Result<()> {
    let removed = install::uninstall(&cx.paths, name, force)?;
    let view = Uninstalled {
        name: removed.cloudlet.manifest.name.clone(),
        path: removed.dir.display().to_string(),
    };
    cx.out.data(&view, || {
        format!("Removed {} from {}", view.name, view.path)
    });
    Ok(())
}

fn create(cx: &Context, name: &str, path: Option<PathBuf>, no_git: bool) -> Result<()> {
    let name = CloudletName::parse(name)?;
    let dir = path.unwrap_or_else(|| PathBuf::from(name.short()));
    let git = (!no_git).then(|| cx.git());
    let cloudlet = scaffold::create(&name, &dir, git.as_ref())?;
    let view = Created {
        name: name.to_string(),
        path: cloudlet.root.display().to_string(),
        scenarios: cloudlet.scenario_names().unwrap_or_default(),
    };
    cx.out.data(&view, || {
        format!(
            "Created cloudlet {} in {}\nScenarios: {}\nNext: edit patterns/ and provisioners/, then `nepho cloudlet:validate {}`",
            view.name,
            view.path,
            view.scenarios.join(", "),
            view.path
        )
    });
    Ok(())
}

fn validate_cmd(cx: &Context, target: Option<&str>) -> Result<()> {
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
    cx.out.data(&vec![report.clone()], || {
        let mut s = format!("{} ({})\n", report.cloudlet, report.path);
        for e in &report.errors {
            s.push_str(&format!("  error: {e}\n"));
        }
        for sc in &report.scenarios {
            let status = if sc.ok { "ok" } else { "FAILED" };
            s.push_str(&format!(
                "  {:<16} {:<8} {}\n",
                sc.scenario,
                sc.provider.clone().unwrap_or_default(),
                status
            ));
            for e in &sc.errors {
                for (n, line) in e.lines().enumerate() {
                    s.push_str(&format!(
                        "    {}{line}\n",
                        if n == 0 { "error: " } else { "       " }
                    ));
                }
            }
        }
        s
    });
    if report.ok {
        Ok(())
    } else {
        let count = report.errors().count();
        Err(Error::invalid(format!(
            "{} has {count} validation error{}",
            report.cloudlet,
            if count == 1 { "" } else { "s" }
        )))
    }
}
