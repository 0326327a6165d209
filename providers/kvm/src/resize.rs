//! Growing a machine's drive while the machine is shut off: `qemu-img resize` of its qcow2
//! volume on the machine's host, or of a LUN's raw backing file followed by re-creating the
//! LUN (tgtd reads a LUN's size only when the LUN is created). Shrinking is refused: it would
//! cut off whatever the guest keeps at the end of the disk.

use nepho_provider_api::{DriveResize, ProviderError};

use crate::drives::{drive_id, drive_index};
use crate::libvirt::{self, DiskRecord};
use crate::storage::{self, Runner, Tgt};
use crate::{KvmProvider, MachineOpError};

const RESIZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl KvmProvider {
    /// Grows drive `diskN` of a shut-off `machine` (default: the primary one) to `size_gb` GiB.
    pub async fn resize_drive(
        &self,
        formation: &str,
        machine: Option<&str>,
        drive: &str,
        size_gb: u64,
    ) -> Result<DriveResize, MachineOpError> {
        let d = self.one_machine(formation, machine).await?;
        let index = drive_index(&d, drive)?;
        let state = libvirt::domain_state(&d.uri, &d.name)
            .await
            .unwrap_or_else(|| d.state.clone());
        if state != "shut off" {
            return Err(MachineOpError::WrongState {
                formation: formation.to_string(),
                machine: d.record.machine.clone(),
                state,
                needed: "shut off",
            });
        }
        let disk = d.record.disks[index].clone();
        let (kind, id) = drive_id(&disk);
        let bytes = size_gb
            .checked_mul(1 << 30)
            .ok_or_else(|| ProviderError::Invalid {
                message: format!("{size_gb} GiB is too large"),
                hint: None,
            })?;
        let (runner, file) = match &disk {
            DiskRecord::File { path } => (Runner::for_host(&self.machine_host(&d)?), path),
            DiskRecord::Lun { file, .. } => (Tgt::new(self.iscsi()?).runner, file),
        };
        let previous_bytes = storage::virtual_size(&runner, file).await?;
        if bytes < previous_bytes {
            return Err(ProviderError::Invalid {
                message: format!(
                    "{}/{drive} is {} and cannot shrink to {size_gb} GiB: only growing is supported",
                    d.record.machine,
                    human_size(previous_bytes)
                ),
                hint: Some(format!(
                    "give a size of at least {} GiB",
                    previous_bytes.div_ceil(1 << 30)
                )),
            }
            .into());
        }
        let changed = bytes > previous_bytes;
        if changed {
            let format = match disk {
                DiskRecord::File { .. } => "qcow2",
                DiskRecord::Lun { .. } => "raw",
            };
            runner
                .check(
                    "qemu-img",
                    &[
                        "resize",
                        "-q",
                        "-f",
                        format,
                        &file.to_string_lossy(),
                        &bytes.to_string(),
                    ],
                    RESIZE_TIMEOUT,
                )
                .await?;
        }
        if let DiskRecord::Lun { iqn, lun, file, .. } = &disk {
            // Also when unchanged: a LUN re-created by an interrupted earlier resize is restored.
            let tgt = Tgt::new(self.iscsi()?);
            let _guard = self.tgt_lock.lock().await;
            if changed {
                tgt.delete_lun(iqn, *lun).await?;
            }
            let tid = tgt.ensure_target(iqn).await?;
            tgt.ensure_lun(tid, *lun, file).await?;
        }
        Ok(DriveResize {
            machine: d.record.machine.clone(),
            host: d.host.clone(),
            drive: drive.to_string(),
            storage: kind,
            id,
            previous_bytes,
            bytes,
            size_gb,
            changed,
        })
    }

    fn iscsi(&self) -> Result<&crate::cluster::IscsiConfig, ProviderError> {
        self.cluster()
            .storage
            .iscsi
            .as_ref()
            .ok_or_else(|| ProviderError::Invalid {
                message: "the cluster file declares no iSCSI storage".into(),
                hint: Some("add storage.iscsi to the cluster file".into()),
            })
    }
}

/// `1.5 GiB`, `512 MiB`.
fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        format!("{} GiB", (gib * 10.0).round() / 10.0)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_user_writes_them() {
        assert_eq!(human_size(2 << 30), "2 GiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(512 << 20), "512 MiB");
    }
}
