//! The example cloudlets compiled into the binary (from `cloudlets/` in the source tree).

use std::path::Path;

use crate::error::{IoContext, Result};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// Names of the bundled cloudlets (their top-level directories).
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = generated::FILES
        .iter()
        .filter_map(|(p, _, _)| p.split('/').next())
        .collect();
    names.dedup();
    names
}

pub fn exists(name: &str) -> bool {
    names().contains(&name)
}

/// Writes bundled cloudlet `name` into `dest` (which must exist).
pub fn extract(name: &str, dest: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("{name}/");
    for (path, bytes, exec) in generated::FILES {
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        std::fs::write(&target, bytes).at(&target)?;
        if *exec {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .at(&target)?;
        }
    }
    Ok(())
}
