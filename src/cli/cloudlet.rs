//! `nepho cloudlet:*` — search, describe, install, list, update, uninstall, create, validate.

use std::path::PathBuf;

use clap::Subcommand;

use super::Context;
use crate::error::Result;
use crate::ops::cloudlet as ops;
use crate::output::human::{self, Human};

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
    use CloudletCommand as C;
    let root = cx.paths.cloudlets_dir();
    match cmd {
        C::Search { terms } => cx.out.show(&ops::search(cx, &terms)?[..]),
        C::Describe { name } => cx.out.show(&ops::describe(cx, &name)?),
        C::Install {
            source,
            reference,
            force,
            name,
        } => {
            let i = ops::install(cx, &source, reference.as_deref(), force, name.as_deref())?;
            cx.out
                .data(&i, || human::cloudlet_tree(&root, std::slice::from_ref(&i)));
        }
        C::List => {
            let items = ops::list(cx)?;
            cx.out.data(&items, || human::cloudlet_tree(&root, &items));
        }
        C::Update { name, all } => {
            let updated = ops::update(cx, if all { None } else { name.as_deref() })?;
            cx.out.show(&updated.outcomes);
            return updated.first_error.map_or(Ok(()), Err);
        }
        C::Uninstall { name, force } => cx.out.show(&ops::uninstall(cx, &name, force)?),
        C::Create { name, path, no_git } => cx.out.show(&ops::create(cx, &name, path, no_git)?),
        C::Validate { path } => {
            let report = ops::validate(cx, path.as_deref())?;
            cx.out.data(&[&report], || report.human());
            return ops::validation_failed(&report);
        }
    }
    Ok(())
}
