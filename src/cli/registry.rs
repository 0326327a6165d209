//! `nepho registry:*` — update the configured indexes; build and serve a registry.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

use super::Context;
use crate::error::Result;
use crate::output;
use crate::registry::Refresh;
use crate::registry::build::{self, BuildOptions};
use crate::registry::serve;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Fetch the registry index now (conditional request; the cache is used when unchanged)
    Update,
    /// Build a registry (index.json pinned to commits, and a static web site) from cloudlets
    Build {
        /// Git URLs or local cloudlet repositories; every release tag (v1.2.0) is a version,
        /// an untagged repository publishes its HEAD
        sources: Vec<String>,
        /// Also publish the entries of this JSON file (`{"cloudlets": [...]}`: index entries,
        /// each with an optional Markdown "readme")
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Directory to write (created; a previous build there is replaced)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Sign index.json with this private SSH key (writes index.json.sig)
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Serve a built registry over HTTP (ETag, gzip) until interrupted
    Serve {
        /// Directory a `registry:build` wrote
        dir: PathBuf,
        /// Address to listen on (port 0 picks a free one)
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Allow listening on an address other than loopback
        #[arg(long)]
        allow_remote: bool,
    },
}

pub fn run(cx: &Context, cmd: RegistryCommand) -> Result<()> {
    match cmd {
        RegistryCommand::Update => {
            let warn = |m: &str| cx.out.warn(m);
            let (_, reports) = cx.registry().load(Refresh::Force, &warn)?;
            cx.out.data(&reports, || {
                let mut t = output::table(&["REGISTRY", "STATUS", "CLOUDLETS", "SIGNED"]);
                for r in &reports {
                    t.add_row(vec![
                        r.source.clone(),
                        r.status.clone(),
                        r.entries.to_string(),
                        if r.verified { "verified" } else { "-" }.into(),
                    ]);
                }
                output::render_table(&t)
            });
            Ok(())
        }
        RegistryCommand::Build {
            sources,
            manifest,
            out,
            sign,
        } => {
            let progress = |m: &str| cx.out.notice(m);
            let git = cx.git();
            let report = build::build(&BuildOptions {
                sources: &sources,
                manifest: manifest.as_deref(),
                out: &out,
                sign_key: sign.as_deref(),
                git: &git,
                progress: &progress,
            })?;
            for s in &report.skipped {
                cx.out.warn(&format!(
                    "{} {} is not published: {}",
                    s.source, s.version, s.reason
                ));
            }
            cx.out.data(&report, || {
                format!(
                    "Built {} cloudlet{} ({} version{}, {} pages{}) in {} in {:.2}s",
                    report.cloudlets,
                    if report.cloudlets == 1 { "" } else { "s" },
                    report.versions,
                    if report.versions == 1 { "" } else { "s" },
                    report.pages,
                    if report.signed { ", signed" } else { "" },
                    report.out,
                    report.seconds
                )
            });
            Ok(())
        }
        RegistryCommand::Serve {
            dir,
            listen,
            allow_remote,
        } => {
            let server = serve::bind(&dir, listen, allow_remote)?;
            let serving = server.serving();
            cx.out.data(&serving, || {
                format!(
                    "{}\nServing {} (index: {}); Ctrl-C stops",
                    serving.url, serving.root, serving.index_url
                )
            });
            server.run()
        }
    }
}
