//! `nepho registry:*` — update the configured indexes; build and serve a registry.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

use super::Context;
use crate::error::Result;
use crate::ops::registry as ops;

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
        RegistryCommand::Update => cx.out.show(&ops::update(cx)?[..]),
        RegistryCommand::Build {
            sources,
            manifest,
            out,
            sign,
        } => {
            let report = ops::build(cx, &sources, manifest.as_deref(), &out, sign.as_deref())?;
            cx.out.show(&report);
        }
        RegistryCommand::Serve {
            dir,
            listen,
            allow_remote,
        } => return ops::serve(&dir, listen, allow_remote, &|s| cx.out.show(s)),
    }
    Ok(())
}
