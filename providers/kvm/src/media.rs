//! Attach/detach an ISO image to a machine's spare CD-ROM drive (`hdd`): every domain nepho
//! defines has an empty one, so a running machine gets its medium changed live (IDE drives
//! cannot be hot-plugged). The domain XML is the record of what is attached.

use std::path::{Path, PathBuf};

use nepho_provider_api::{IsoMedium, MediaChange, ProviderError};

use crate::KvmProvider;
use crate::cluster::HostConfig;
use crate::libvirt::{self, FoundDomain};
use crate::names::formation_dir;
use crate::storage::Runner;

/// The spare CD-ROM's target device (the seed sits on `hdc`).
pub const ISO_TARGET: &str = "hdd";

/// The ISO in the spare drive, from a domain's XML.
pub fn attached_iso(xml: &str) -> Option<PathBuf> {
    for disk in xml.split("<disk ").skip(1) {
        let disk = disk.split("</disk>").next().unwrap_or("");
        if disk.contains(&format!("dev='{ISO_TARGET}'")) {
            let start = disk.find("<source file='")? + "<source file='".len();
            let end = start + disk[start..].find('\'')?;
            return Some(PathBuf::from(libvirt::unescape(&disk[start..end])));
        }
    }
    None
}

/// A file ISO given on the command line, as an absolute path.
fn local_iso(iso: &Path) -> Result<PathBuf, ProviderError> {
    let hint = || {
        Some(
            "give the path of an ISO image on this machine, or a name `nepho iso:list` shows"
                .into(),
        )
    };
    let path = std::fs::canonicalize(iso).map_err(|e| ProviderError::Invalid {
        message: format!("cannot read ISO {}: {e}", iso.display()),
        hint: hint(),
    })?;
    if !path.is_file() {
        return Err(ProviderError::Invalid {
            message: format!("{} is not a file", path.display()),
            hint: hint(),
        });
    }
    Ok(path)
}

impl KvmProvider {
    /// Puts `iso` in the spare drive of `machine` (default: the primary machine). A file on
    /// this machine is used in place on a local host; a remote host gets a copy in the
    /// formation's directory there, which `formation:destroy` removes. A library ISO is the
    /// host's own checked copy, used in place and never removed with the formation.
    pub async fn attach_iso(
        &self,
        formation: &str,
        machine: Option<&str>,
        iso: &IsoMedium,
    ) -> Result<MediaChange, ProviderError> {
        let file = match iso {
            IsoMedium::File(path) => Some(local_iso(path)?),
            IsoMedium::Library { .. } => None,
        };
        let d = self.one_machine(formation, machine).await?;
        let host = &self.machine_host(&d)?;
        let runner = Runner::for_host(host);
        let on_host = match (iso, file) {
            (_, Some(iso)) if host.is_local() => iso,
            (_, Some(iso)) => {
                let dir = formation_dir(self.cluster(), host, formation).join("iso");
                runner.mkdir(&dir).await?;
                let dest = dir.join(iso.file_name().unwrap_or_default());
                runner.upload_private(&iso, &dest).await?;
                dest
            }
            (IsoMedium::Library { name, copies }, None) => {
                let copy = copies.get(&host.name).cloned();
                match copy {
                    Some(copy) if runner.exists(&copy).await => copy,
                    _ => {
                        return Err(ProviderError::Failed {
                            message: format!(
                                "library ISO {name} has no copy on host {} (where {} runs)",
                                host.name, d.record.machine
                            ),
                            hint: Some(
                                "run `nepho cluster:sync` to copy the library to every host".into(),
                            ),
                        });
                    }
                }
            }
            (IsoMedium::File(_), None) => unreachable!("a file ISO was checked above"),
        };
        let path = on_host.to_string_lossy().into_owned();
        let running = d.state == "running";
        let mut args = vec![
            "change-media",
            d.name.as_str(),
            ISO_TARGET,
            path.as_str(),
            "--update",
        ];
        args.extend(if running {
            &["--live", "--config"][..]
        } else {
            &["--config"][..]
        });
        let out = libvirt::virsh_output(&d.uri, &args).await?;
        if !out.success {
            // Domains defined before the spare drive existed: add one while shut off.
            if running {
                return Err(ProviderError::Failed {
                    message: format!(
                        "cannot change the medium of {}: {}",
                        d.record.machine,
                        out.stderr.trim()
                    ),
                    hint: Some(format!(
                        "stop the machine (nepho formation:stop {formation} {}) and attach again",
                        d.record.machine
                    )),
                });
            }
            libvirt::virsh(
                &d.uri,
                &[
                    "attach-disk",
                    &d.name,
                    &path,
                    ISO_TARGET,
                    "--type",
                    "cdrom",
                    "--mode",
                    "readonly",
                    "--config",
                ],
            )
            .await?;
        }
        Ok(MediaChange {
            machine: d.record.machine.clone(),
            host: d.host.clone(),
            iso: Some(on_host),
        })
    }

    /// Ejects the spare drive's medium (a no-op when empty).
    pub async fn detach_iso(
        &self,
        formation: &str,
        machine: Option<&str>,
    ) -> Result<MediaChange, ProviderError> {
        let d = self.one_machine(formation, machine).await?;
        let xml = libvirt::virsh(&d.uri, &["dumpxml", "--inactive", &d.name]).await?;
        let live = libvirt::virsh(&d.uri, &["dumpxml", &d.name]).await?;
        let attached = attached_iso(&xml).or_else(|| attached_iso(&live));
        if let Some(old) = &attached {
            let running = d.state == "running";
            let mut args = vec!["change-media", d.name.as_str(), ISO_TARGET, "--eject"];
            args.extend(if running {
                &["--live", "--config"][..]
            } else {
                &["--config"][..]
            });
            libvirt::virsh(&d.uri, &args).await?;
            if let Some(host) = self.cluster().host(&d.host)
                && !host.is_local()
                && old.starts_with(formation_dir(self.cluster(), host, formation))
            {
                Runner::for_host(host)
                    .remove(std::slice::from_ref(old))
                    .await?;
            }
        }
        Ok(MediaChange {
            machine: d.record.machine.clone(),
            host: d.host.clone(),
            iso: None,
        })
    }

    /// The cluster-file entry of the host a machine is on.
    pub(crate) fn machine_host(&self, d: &FoundDomain) -> Result<HostConfig, ProviderError> {
        self.cluster().host(&d.host).cloned().ok_or_else(|| {
            ProviderError::NotFound(format!("host {} is not in the cluster file", d.host))
        })
    }

    /// `machine`, or the formation's primary machine.
    pub(crate) async fn one_machine(
        &self,
        formation: &str,
        machine: Option<&str>,
    ) -> Result<FoundDomain, ProviderError> {
        let mut found = self.find_machines(formation, machine).await?;
        Ok(found.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spare_drive_medium_is_read_from_the_xml() {
        let xml = "<domain><devices>\
            <disk type='file' device='cdrom'><source file='/x/seed.iso'/><target dev='hdc' bus='ide'/></disk>\
            <disk type='file' device='cdrom'><source file='/isos/a&amp;b.iso' index='2'/><target dev='hdd' bus='ide'/></disk>\
            </devices></domain>";
        assert_eq!(attached_iso(xml), Some(PathBuf::from("/isos/a&b.iso")));
        let empty = "<disk type='file' device='cdrom'><target dev='hdd' bus='ide'/></disk>";
        assert_eq!(attached_iso(empty), None);
    }
}
