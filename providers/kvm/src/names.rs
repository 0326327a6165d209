//! What nepho calls the things it makes on a host, and where it keeps them: derived from the
//! formation and machine names alone, so every step (and a re-run after a crash) finds them.

use std::path::PathBuf;

use crate::cluster::{ClusterFile, HostConfig};

pub fn domain_name(formation: &str, machine: &str) -> String {
    format!("nepho-{formation}-{machine}")
}

pub fn formation_dir(cluster: &ClusterFile, host: &HostConfig, formation: &str) -> PathBuf {
    cluster.host_dir(host).join(formation)
}

/// Where `host` keeps its copy of a library entry (`nepho image:add`, `iso:add`):
/// `<dir>/_library/images/NAME.qcow2`, `<dir>/_library/isos/NAME.iso`. `_` cannot start a
/// formation name, so the library never meets a formation's directory.
pub fn library_path(
    cluster: &ClusterFile,
    host: &HostConfig,
    kind: nepho_provider_api::LibraryKind,
    name: &str,
) -> PathBuf {
    cluster
        .host_dir(host)
        .join("_library")
        .join(kind.dir())
        .join(format!("{name}.{}", kind.extension()))
}

/// IQNs allow lower-case letters, digits, `.`, `-` and `:` (the separator).
pub fn iqn_formation(formation: &str) -> String {
    formation
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .collect()
}

pub fn iqn(cluster: &ClusterFile, formation: &str, machine: &str) -> Option<String> {
    let i = cluster.storage.iscsi.as_ref()?;
    Some(format!(
        "{}:{}:{machine}",
        i.iqn_prefix,
        iqn_formation(formation)
    ))
}
