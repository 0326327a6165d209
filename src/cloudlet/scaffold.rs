//! `cloudlet:create`: a new native cloudlet, offline, that validates and deploys as is.
//! It starts from the bundled `hello` cloudlet with the new name written into `cloudlet.yaml`.

use std::path::Path;

use super::{Cloudlet, CloudletName, bundled};
use crate::error::{Error, IoContext, Result};
use crate::git::Git;

pub fn create(name: &CloudletName, dir: &Path, git: Option<&Git>) -> Result<Cloudlet> {
    if dir.exists() && std::fs::read_dir(dir).at(dir)?.next().is_some() {
        return Err(
            Error::conflict(format!("{} already exists and is not empty", dir.display()))
                .with_hint("choose another directory with --path"),
        );
    }
    std::fs::create_dir_all(dir).at(dir)?;
    bundled::extract("hello", dir)?;
    let manifest = dir.join("cloudlet.yaml");
    let text = std::fs::read_to_string(&manifest).at(&manifest)?;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("name:") {
            out.push_str(&format!("name: {name}\n"));
        } else if line.starts_with("version:") {
            out.push_str("version: 0.1.0\n");
        } else if line.starts_with("summary:") {
            out.push_str(&format!(
                "summary: {} (scaffolded by nepho cloudlet:create)\n",
                name.short()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&manifest, out).at(&manifest)?;
    if let Some(git) = git {
        git.run(Some(dir), ["init", "--quiet", "--initial-branch=main"])?;
    }
    Cloudlet::load(dir)
}
