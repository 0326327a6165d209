//! `nepho scenario:*` — list, describe (merged parameters with provenance), render.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Context, Terminal};
use crate::error::Result;
use crate::ops::scenario as ops;
use crate::scenario::ValueSources;

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
        ScenarioCommand::List { cloudlet } => cx.out.show(&ops::list(cx, &cloudlet)?[..]),
        ScenarioCommand::Describe { scenario, values } => {
            cx.out
                .show(&ops::describe(cx, &scenario, &values.sources())?);
        }
        ScenarioCommand::Render {
            scenario,
            values,
            name,
            reveal_secrets,
        } => {
            let sources = values.sources();
            let r = ops::render(cx, &Terminal, &scenario, sources, &name, reveal_secrets)?;
            cx.out.show(&r);
        }
    }
    Ok(())
}
