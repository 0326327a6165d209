//! `nepho registry:update` — revalidate every configured registry index now.

use clap::Subcommand;

use super::Context;
use crate::error::Result;
use crate::output;
use crate::registry::Refresh;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Fetch the registry index now (conditional request; the cache is used when unchanged)
    Update,
}

pub fn run(cx: &Context, cmd: RegistryCommand) -> Result<()> {
    match cmd {
        RegistryCommand::Update => {
            let warn = |m: &str| cx.out.warn(m);
            let (_, reports) = cx.registry().load(Refresh::Force, &warn)?;
            cx.out.data(&reports, || {
                let mut t = output::table(&["REGISTRY", "STATUS", "CLOUDLETS"]);
                for r in &reports {
                    t.add_row(vec![
                        r.source.clone(),
                        r.status.clone(),
                        r.entries.to_string(),
                    ]);
                }
                output::render_table(&t)
            });
            Ok(())
        }
    }
}
