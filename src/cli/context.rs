//! `nepho context:*` — named sets of provider settings (see `ops::context`).

use clap::Subcommand;

use super::Context;
use crate::error::Result;
use crate::ops::context as ops;

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List contexts: which is in use, and which providers each has settings for
    List,
    /// Use this context from now on (`default` for the settings outside any context)
    Use {
        /// The context's name (create one with `nepho register PROVIDER --context NAME`)
        name: String,
    },
}

pub fn run(cx: &Context, cmd: ContextCommand) -> Result<()> {
    match cmd {
        ContextCommand::List => cx.out.show(&ops::list(cx)?[..]),
        ContextCommand::Use { name } => cx.out.show(&ops::use_context(cx, &name)?),
    }
    Ok(())
}
