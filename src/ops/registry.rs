//! `registry:*`: refresh the configured indexes; build and serve a registry.

use std::net::SocketAddr;
use std::path::Path;

use super::Context;
use crate::error::Result;
use crate::registry::build::{self, BuildOptions, BuildReport};
use crate::registry::serve;
use crate::registry::{Refresh, RefreshReport};

/// `registry:update`: fetches every configured index now.
pub fn update(cx: &Context) -> Result<Vec<RefreshReport>> {
    let warn = |m: &str| cx.out.warn(m);
    let (_, reports) = cx.registry().load(Refresh::Force, &warn)?;
    Ok(reports)
}

/// `registry:build`: index.json pinned to commits and the web site, from `sources`.
pub fn build(
    cx: &Context,
    sources: &[String],
    manifest: Option<&Path>,
    out: &Path,
    sign: Option<&Path>,
) -> Result<BuildReport> {
    let progress = |m: &str| cx.out.notice(m);
    let git = cx.git();
    let report = build::build(&BuildOptions {
        sources,
        manifest,
        out,
        sign_key: sign,
        git: &git,
        progress: &progress,
    })?;
    for s in &report.skipped {
        cx.out.warn(&format!(
            "{} {} is not published: {}",
            s.source, s.version, s.reason
        ));
    }
    Ok(report)
}

/// `registry:serve`: binds, hands the address to `show`, and serves until interrupted.
pub fn serve(
    dir: &Path,
    listen: SocketAddr,
    allow_remote: bool,
    show: &dyn Fn(&serve::Serving),
) -> Result<()> {
    let server = serve::bind(dir, listen, allow_remote)?;
    show(&server.serving());
    server.run()
}
