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
