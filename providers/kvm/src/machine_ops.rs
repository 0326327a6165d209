//! [`MachineOps`] for the KVM provider: the trait is how the CLI reaches the machine
//! operations; each one is the inherent method of the same name (media.rs, drives.rs,
//! resize.rs, nic.rs, vnc.rs, and power in lib.rs).

use nepho_provider_api::{
    BoxFuture, DriveChange, DriveResize, IsoMedium, MachineOpError, MachineOps, MediaChange,
    NicChange, PowerAction, StorageKind, VncConsole,
};

use crate::KvmProvider;

impl MachineOps for KvmProvider {
    fn power<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        action: PowerAction,
    ) -> BoxFuture<'a, Result<(), MachineOpError>> {
        Box::pin(async move {
            match action {
                PowerAction::Stop => self.stop(formation, machine).await?,
                PowerAction::Start => self.start(formation, machine).await?,
                PowerAction::Reset => self.reset(formation, machine).await?,
            }
            Ok(())
        })
    }

    fn attach_iso<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        iso: &'a IsoMedium,
    ) -> BoxFuture<'a, Result<MediaChange, MachineOpError>> {
        Box::pin(async move { Ok(KvmProvider::attach_iso(self, formation, machine, iso).await?) })
    }

    fn detach_iso<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
    ) -> BoxFuture<'a, Result<MediaChange, MachineOpError>> {
        Box::pin(async move { Ok(KvmProvider::detach_iso(self, formation, machine).await?) })
    }

    fn add_drive<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        size_gb: u64,
        storage: StorageKind,
    ) -> BoxFuture<'a, Result<DriveChange, MachineOpError>> {
        Box::pin(async move {
            Ok(KvmProvider::add_drive(self, formation, machine, size_gb, storage).await?)
        })
    }

    fn remove_drive<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        drive: &'a str,
    ) -> BoxFuture<'a, Result<DriveChange, MachineOpError>> {
        Box::pin(
            async move { Ok(KvmProvider::remove_drive(self, formation, machine, drive).await?) },
        )
    }

    fn resize_drive<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        drive: &'a str,
        size_gb: u64,
    ) -> BoxFuture<'a, Result<DriveResize, MachineOpError>> {
        Box::pin(KvmProvider::resize_drive(
            self, formation, machine, drive, size_gb,
        ))
    }

    fn attach_nic<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        network: &'a str,
    ) -> BoxFuture<'a, Result<NicChange, MachineOpError>> {
        Box::pin(KvmProvider::attach_nic(self, formation, machine, network))
    }

    fn detach_nic<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        nic: &'a str,
    ) -> BoxFuture<'a, Result<NicChange, MachineOpError>> {
        Box::pin(KvmProvider::detach_nic(self, formation, machine, nic))
    }

    fn vnc<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        local_port: u16,
    ) -> BoxFuture<'a, Result<VncConsole, MachineOpError>> {
        Box::pin(KvmProvider::vnc(self, formation, machine, local_port))
    }
}
