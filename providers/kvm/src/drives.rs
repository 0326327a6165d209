//! Adding and removing a machine's data drives after it was built: an empty qcow2 volume in the
//! formation's directory on its host, or a new LUN on its iSCSI target, hot-plugged as a virtio
//! disk when the machine runs. The drive joins the machine's record in the domain metadata, so
//! `formation:describe` shows it and `formation:destroy` removes it.

use nepho_provider_api::{DriveChange, ProviderError};

use crate::KvmProvider;
use crate::libvirt::{self, DiskRecord, FoundDomain};
use crate::names::{formation_dir, iqn};
use crate::pattern::StorageKind;
use crate::storage::{self, Runner, Tgt};

/// The index of drive `diskN` (as `formation:describe` lists it) in the machine's record.
pub(crate) fn drive_index(d: &FoundDomain, drive: &str) -> Result<usize, ProviderError> {
    drive
        .strip_prefix("disk")
        .and_then(|n| n.parse().ok())
        .filter(|i| *i < d.record.disks.len())
        .ok_or_else(|| {
            ProviderError::NotFound(format!(
                "{} has no drive {drive} (drives: {})",
                d.record.machine,
                (0..d.record.disks.len())
                    .map(|i| format!("disk{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

pub(crate) fn drive_id(disk: &DiskRecord) -> (String, String) {
    match disk {
        DiskRecord::File { path } => ("qcow2".into(), path.display().to_string()),
        DiskRecord::Lun { iqn, lun, .. } => ("iscsi".into(), format!("{iqn}/{lun}")),
    }
}

/// The guest device that `disk` is attached as, from the domain XML.
pub(crate) fn device_of(xml: &str, disk: &DiskRecord) -> Option<String> {
    let needle = match disk {
        DiskRecord::File { path } => {
            format!("<source file='{}'", libvirt::esc(&path.to_string_lossy()))
        }
        DiskRecord::Lun { iqn, lun, .. } => {
            format!(
                "<source protocol='iscsi' name='{}/{lun}'",
                libvirt::esc(iqn)
            )
        }
    };
    let disk_xml = xml
        .split("<disk ")
        .skip(1)
        .map(|d| d.split("</disk>").next().unwrap_or(""))
        .find(|d| d.contains(&needle))?;
    let start = disk_xml.find("<target dev='")? + "<target dev='".len();
    let end = start + disk_xml[start..].find('\'')?;
    Some(disk_xml[start..end].to_string())
}

/// The first virtio device name the domain does not use yet.
fn free_device(xml: &str) -> Option<String> {
    (1..26)
        .map(libvirt::disk_dev)
        .find(|dev| !xml.contains(&format!("<target dev='{dev}'")))
}

impl KvmProvider {
    /// Adds an empty `size_gb` drive to `machine` (default: the primary machine).
    pub async fn add_drive(
        &self,
        formation: &str,
        machine: Option<&str>,
        size_gb: u64,
        storage: StorageKind,
    ) -> Result<DriveChange, ProviderError> {
        if size_gb == 0 {
            return Err(ProviderError::Invalid {
                message: "a drive needs a size of at least 1 GiB".into(),
                hint: Some("pass --size-gb N".into()),
            });
        }
        let d = self.one_machine(formation, machine).await?;
        let host = self.machine_host(&d)?;
        let live_xml = libvirt::virsh(&d.uri, &["dumpxml", &d.name]).await?;
        let device = free_device(&live_xml).ok_or_else(|| ProviderError::Invalid {
            message: format!("{} has no free virtio disk slot", d.record.machine),
            hint: None,
        })?;
        let m = &d.record.machine;
        // Volume names never reuse a removed drive's name: a stale file is never picked up.
        let next = (0..)
            .find(|i| {
                let suffix = format!("{m}-disk{i}.");
                !d.record
                    .disks
                    .iter()
                    .any(|r| drive_id(r).1.contains(&suffix))
                    && !live_xml.contains(&suffix)
            })
            .expect("an unused index");
        let disk = match storage {
            StorageKind::Qcow2 => DiskRecord::File {
                path: formation_dir(self.cluster(), &host, formation)
                    .join(format!("{m}-disk{next}.qcow2")),
            },
            StorageKind::Iscsi => {
                let iscsi = self.cluster().storage.iscsi.as_ref().ok_or_else(|| {
                    ProviderError::Invalid {
                        message: "the cluster file declares no iSCSI storage".into(),
                        hint: Some(
                            "add storage.iscsi to the cluster file, or use --storage qcow2".into(),
                        ),
                    }
                })?;
                let lun = d
                    .record
                    .disks
                    .iter()
                    .filter_map(|r| match r {
                        DiskRecord::Lun { lun, .. } => Some(*lun),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0)
                    .max(next as u32)
                    + 1;
                DiskRecord::Lun {
                    iqn: iqn(self.cluster(), formation, m).unwrap_or_default(),
                    lun,
                    portal: iscsi.portal.clone(),
                    file: iscsi
                        .dir
                        .join(formation)
                        .join(format!("{m}-disk{next}.raw")),
                }
            }
        };
        self.create_volume(&host, &disk, size_gb).await?;
        let running = d.state == "running";
        if let Err(e) = self.plug(&d, &disk, &device, running).await {
            let _ = self.delete_volume(&host, &disk).await;
            return Err(e);
        }
        let mut record = d.record.clone();
        record.disks.push(disk.clone());
        libvirt::set_record(&d.uri, &d.name, &record, running).await?;
        crate::records::refresh_record(self.cluster(), &d.name, &record).await?;
        let (kind, id) = drive_id(&disk);
        Ok(DriveChange {
            machine: m.clone(),
            host: d.host.clone(),
            drive: format!("disk{}", record.disks.len() - 1),
            device,
            storage: kind,
            id,
            size_gb: Some(size_gb),
        })
    }

    /// Detaches drive `diskN` (as `formation:describe` lists it) from `machine` and deletes
    /// its volume or LUN. The boot disk stays.
    pub async fn remove_drive(
        &self,
        formation: &str,
        machine: Option<&str>,
        drive: &str,
    ) -> Result<DriveChange, ProviderError> {
        let d = self.one_machine(formation, machine).await?;
        let index = drive_index(&d, drive)?;
        if index == 0 {
            return Err(ProviderError::Invalid {
                message: format!("disk0 is the boot disk of {}", d.record.machine),
                hint: Some("destroy the formation to remove it".into()),
            });
        }
        let host = self.machine_host(&d)?;
        let disk = d.record.disks[index].clone();
        let running = d.state == "running";
        let live_xml = libvirt::virsh(&d.uri, &["dumpxml", &d.name]).await?;
        let config_xml = libvirt::virsh(&d.uri, &["dumpxml", "--inactive", &d.name]).await?;
        let device = device_of(&live_xml, &disk).or_else(|| device_of(&config_xml, &disk));
        if let Some(dev) = &device {
            if running && live_xml.contains(&format!("<target dev='{dev}'")) {
                libvirt::virsh(&d.uri, &["detach-disk", &d.name, dev, "--live"]).await?;
                self.wait_unplugged(&d, dev).await?;
            }
            if config_xml.contains(&format!("<target dev='{dev}'")) {
                libvirt::virsh(&d.uri, &["detach-disk", &d.name, dev, "--config"]).await?;
            }
        }
        let mut record = d.record.clone();
        record.disks.remove(index);
        libvirt::set_record(&d.uri, &d.name, &record, running).await?;
        crate::records::refresh_record(self.cluster(), &d.name, &record).await?;
        self.delete_volume(&host, &disk).await?;
        let (kind, id) = drive_id(&disk);
        Ok(DriveChange {
            machine: d.record.machine.clone(),
            host: d.host.clone(),
            drive: drive.to_string(),
            device: device.unwrap_or_default(),
            storage: kind,
            id,
            size_gb: None,
        })
    }

    async fn create_volume(
        &self,
        host: &crate::cluster::HostConfig,
        disk: &DiskRecord,
        size_gb: u64,
    ) -> Result<(), ProviderError> {
        match disk {
            DiskRecord::File { path } => {
                let runner = Runner::for_host(host);
                if let Some(dir) = path.parent() {
                    runner.mkdir(dir).await?;
                }
                storage::create_qcow2(&runner, path, None, size_gb).await?;
            }
            DiskRecord::Lun { iqn, lun, file, .. } => {
                let iscsi = self
                    .cluster()
                    .storage
                    .iscsi
                    .as_ref()
                    .expect("checked by the caller");
                let tgt = Tgt::new(iscsi);
                if let Some(dir) = file.parent() {
                    tgt.runner.mkdir(dir).await?;
                }
                storage::create_raw(&tgt.runner, file, None, size_gb).await?;
                let made = async {
                    let _guard = self.tgt_lock.lock().await;
                    let tid = tgt.ensure_target(iqn).await?;
                    tgt.ensure_lun(tid, *lun, file).await
                };
                if let Err(e) = made.await {
                    let _ = tgt.runner.remove(std::slice::from_ref(file)).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn delete_volume(
        &self,
        host: &crate::cluster::HostConfig,
        disk: &DiskRecord,
    ) -> Result<(), ProviderError> {
        match disk {
            DiskRecord::File { path } => {
                Runner::for_host(host)
                    .remove(std::slice::from_ref(path))
                    .await
            }
            DiskRecord::Lun { iqn, lun, file, .. } => {
                let Some(iscsi) = self.cluster().storage.iscsi.as_ref() else {
                    return Ok(());
                };
                let tgt = Tgt::new(iscsi);
                tgt.delete_lun(iqn, *lun).await?;
                tgt.runner.remove(std::slice::from_ref(file)).await
            }
        }
    }

    async fn plug(
        &self,
        d: &FoundDomain,
        disk: &DiskRecord,
        device: &str,
        running: bool,
    ) -> Result<(), ProviderError> {
        libvirt::attach_device(d, &libvirt::disk_xml(disk, device), device, running).await
    }

    async fn wait_unplugged(&self, d: &FoundDomain, dev: &str) -> Result<(), ProviderError> {
        libvirt::wait_unplugged(
            d,
            &format!("<target dev='{dev}'"),
            dev,
            "remove the drive again",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_found_by_source_and_the_first_free_one_is_picked() {
        let xml = "<disk type='file' device='disk'><source file='/k/f/web-disk0.qcow2' index='1'/><target dev='vda' bus='virtio'/></disk>\
                   <disk type='network' device='disk'><source protocol='iscsi' name='iqn.x:f:web/2' index='2'><host name='127.0.0.1'/></source><target dev='vdc' bus='virtio'/></disk>";
        let lun = DiskRecord::Lun {
            iqn: "iqn.x:f:web".into(),
            lun: 2,
            portal: "127.0.0.1:3260".into(),
            file: "/i/web-disk1.raw".into(),
        };
        assert_eq!(device_of(xml, &lun).as_deref(), Some("vdc"));
        let file = DiskRecord::File {
            path: "/k/f/web-disk0.qcow2".into(),
        };
        assert_eq!(device_of(xml, &file).as_deref(), Some("vda"));
        assert_eq!(free_device(xml).as_deref(), Some("vdb"));
    }
}
