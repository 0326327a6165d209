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
    library_kind_dir(cluster, host, kind).join(format!("{name}.{}", kind.extension()))
}

/// The directory `host` keeps the library's entries of `kind` in.
pub fn library_kind_dir(
    cluster: &ClusterFile,
    host: &HostConfig,
    kind: nepho_provider_api::LibraryKind,
) -> PathBuf {
    library_dir(cluster, host).join(kind.dir())
}

fn library_dir(cluster: &ClusterFile, host: &HostConfig) -> PathBuf {
    cluster.host_dir(host).join("_library")
}

/// The same library file on `to`, when `path` is one of `from`'s library copies (a moved
/// machine's base image or ISO).
pub fn library_counterpart(
    cluster: &ClusterFile,
    from: &HostConfig,
    to: &HostConfig,
    path: &std::path::Path,
) -> Option<PathBuf> {
    let rest = path.strip_prefix(library_dir(cluster, from)).ok()?;
    Some(library_dir(cluster, to).join(rest))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_copies_have_a_counterpart_on_every_host() {
        let cluster = ClusterFile::parse(
            "hosts:\n  - {name: a, uri: 'qemu:///system', cpus: 1, memory_mb: 1, dir: /a}\n  - {name: b, uri: 'qemu+ssh://b/system', cpus: 1, memory_mb: 1}\nstorage: {dir: /v}\n",
            "t",
        )
        .unwrap();
        let (a, b) = (&cluster.hosts[0], &cluster.hosts[1]);
        let copy = library_path(&cluster, a, nepho_provider_api::LibraryKind::Iso, "tools");
        assert_eq!(copy, PathBuf::from("/a/_library/isos/tools.iso"));
        assert_eq!(
            library_counterpart(&cluster, a, b, &copy),
            Some(PathBuf::from("/v/_library/isos/tools.iso"))
        );
        assert_eq!(
            library_counterpart(&cluster, a, b, std::path::Path::new("/a/lab/x.iso")),
            None
        );
    }
}
