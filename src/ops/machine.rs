//! What a formation's machines can do besides being built: power, ISO media, data drives,
//! NICs and the VNC console. Power works on KVM and Vagrant; the rest is KVM's, reached through
//! the KVM provider.

use std::path::Path;

pub use nepho_provider_api::VncDisplay;
use nepho_provider_api::{
    DeviceAction, DriveChange, DriveResize, MachineOpError, MachineOps, MediaChange, NicChange,
    OperationData,
};
use nepho_provider_api::{PowerAction, ProviderKind};

use super::formation::existing;
use super::{Context, runtime};
use crate::error::{Error, Result};
use crate::formation::{FormationDir, FormationLock};
use crate::providers;

/// Runs one change to a formation's machines journaled in the formation's journal (started,
/// then succeeded or failed with the error), so `formation:events` shows it like a build.
async fn journaled<T>(
    fdir: &FormationDir,
    data: OperationData,
    change: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let journal = crate::engine::Journal::open(
        &fdir.journal_file(),
        fdir.name.as_str(),
        fdir.secret_values(),
    )?;
    crate::engine::record_operation(&journal, data, change).await
}

/// The machine an operation names, for its event (`None`: the primary one).
fn named(machine: Option<&str>) -> String {
    machine.unwrap_or("the primary machine").to_string()
}

/// Where a new data drive lives.
pub use nepho_provider_api::StorageKind;

/// `formation:stop|start|reset`: one machine, or all of the formation's.
pub fn power(cx: &Context, name: &str, machine: Option<&str>, action: PowerAction) -> Result<()> {
    let (fdir, record) = existing(cx, name)?;
    if record.provider == ProviderKind::Aws {
        return Err(Error::usage(format!(
            "formation:{action} works on kvm and vagrant formations; {} runs on {}",
            fdir.name, record.provider
        )));
    }
    let _lock = FormationLock::acquire(&fdir, action.as_str())?;
    runtime()?.block_on(async {
        let provider = providers::connect(record.provider, &cx.paths, true).await?;
        let ops = providers::machine_ops(&*provider)?;
        let data = OperationData::Power {
            formation: fdir.name.to_string(),
            machine: machine.map(str::to_string),
            action,
        };
        journaled(&fdir, data, async {
            ops.power(fdir.name.as_str(), machine, action)
                .await
                .map_err(machine_op_error)
        })
        .await
    })?;
    cx.out.notice(&format!(
        "{action}: {}{} done",
        fdir.name,
        machine.map(|m| format!("/{m}")).unwrap_or_default()
    ));
    Ok(())
}

/// `formation:add-drive`: an empty data drive, live when the machine runs.
pub fn add_drive(
    cx: &Context,
    name: &str,
    machine: Option<&str>,
    size_gb: u64,
    storage: StorageKind,
) -> Result<DriveChange> {
    let data = |formation| OperationData::Drive {
        formation,
        machine: named(machine),
        drive: "new".into(),
        action: DeviceAction::Attach,
        size_gb: Some(size_gb),
    };
    kvm_change(cx, name, "add-drive", data, async |ops, formation| {
        ops.add_drive(formation, machine, size_gb, storage).await
    })
}

/// `formation:remove-drive`: detaches `drive` and deletes its volume or LUN.
pub fn remove_drive(
    cx: &Context,
    name: &str,
    machine: Option<&str>,
    drive: &str,
) -> Result<DriveChange> {
    let data = |formation| OperationData::Drive {
        formation,
        machine: named(machine),
        drive: drive.to_string(),
        action: DeviceAction::Detach,
        size_gb: None,
    };
    kvm_change(cx, name, "remove-drive", data, async |ops, formation| {
        ops.remove_drive(formation, machine, drive).await
    })
}

/// `formation:resize-drive`: offline growth of one drive.
pub fn resize_drive(
    cx: &Context,
    name: &str,
    machine: &str,
    drive: &str,
    size_gb: u64,
) -> Result<DriveResize> {
    let data = |formation| OperationData::Drive {
        formation,
        machine: machine.to_string(),
        drive: drive.to_string(),
        action: DeviceAction::Resize,
        size_gb: Some(size_gb),
    };
    kvm_change(cx, name, "resize-drive", data, async |ops, formation| {
        ops.resize_drive(formation, Some(machine), drive, size_gb)
            .await
    })
}

/// An operation that needs the machine in another power state says which command gets it there.
fn machine_op_error(e: MachineOpError) -> Error {
    match e {
        MachineOpError::WrongState {
            formation,
            machine,
            state,
            needed,
        } => {
            let (verb, fix) = if needed == "running" {
                ("start", "formation:start")
            } else {
                ("stop", "formation:stop")
            };
            Error::conflict(format!(
                "{formation}/{machine} is {state}; this needs it {needed}"
            ))
            .with_hint(format!(
                "{verb} it first: nepho {fix} {formation} {machine}"
            ))
        }
        MachineOpError::Provider(e) => providers::provider_error(e),
    }
}

/// `formation:vnc`: where to point a VNC viewer; for a remote host, an ssh forward that runs
/// until Ctrl-C (or SIGTERM/SIGHUP).
///
/// `show` gets the address as soon as it is known (before the forward waits).
pub fn vnc(
    cx: &Context,
    name: &str,
    machine: Option<&str>,
    local_port: u16,
    show: &dyn Fn(&VncDisplay),
) -> Result<()> {
    let (fdir, record) = existing(cx, name)?;
    if record.provider != ProviderKind::Kvm {
        return Err(Error::usage(format!(
            "formation:vnc works on KVM formations; {} runs on {}",
            fdir.name, record.provider
        )));
    }
    runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let console = providers::machine_ops(&*kvm)?
            .vnc(fdir.name.as_str(), machine, local_port)
            .await
            .map_err(machine_op_error)?;
        // Handlers first: the address is printed for someone who may interrupt right away.
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = console.forward.is_some().then(|| {
            (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            )
        });
        show(&console.display);
        let Some(mut forward) = console.forward else {
            return Ok(());
        };
        let Some((Ok(mut int), Ok(mut term), Ok(mut hup))) = handlers else {
            return Err(Error::Other("cannot install signal handlers".into()));
        };
        cx.out
            .notice("keep this running while the viewer is connected; Ctrl-C ends the forward");
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
            ended = forward.wait() => return Err(providers::provider_error(ended)),
        }
        forward.stop().await;
        Ok(())
    })
}

/// `formation:attach-nic`: plugs `machine` into one more network of the cluster file.
pub fn attach_nic(cx: &Context, name: &str, machine: &str, network: &str) -> Result<NicChange> {
    let data = |formation| OperationData::Nic {
        formation,
        machine: machine.to_string(),
        nic: "new".into(),
        action: DeviceAction::Attach,
        network: Some(network.to_string()),
    };
    kvm_change(cx, name, "attach-nic", data, async |ops, formation| {
        ops.attach_nic(formation, Some(machine), network).await
    })
}

/// `formation:detach-nic`: unplugs `nic` (`netN`, or the network of the machine's only NIC on
/// it) and releases its address.
pub fn detach_nic(cx: &Context, name: &str, machine: &str, nic: &str) -> Result<NicChange> {
    let data = |formation| OperationData::Nic {
        formation,
        machine: machine.to_string(),
        nic: nic.to_string(),
        action: DeviceAction::Detach,
        network: None,
    };
    kvm_change(cx, name, "detach-nic", data, async |ops, formation| {
        ops.detach_nic(formation, Some(machine), nic).await
    })
}

/// One change to a KVM formation's machines: the formation locked, the provider's machine
/// operations, the change journaled as `data(formation)` (see [`journaled`]).
fn kvm_change<T>(
    cx: &Context,
    name: &str,
    verb: &str,
    data: impl FnOnce(String) -> OperationData,
    change: impl AsyncFnOnce(&dyn MachineOps, &str) -> std::result::Result<T, MachineOpError>,
) -> Result<T> {
    let (fdir, _lock) = kvm_formation(cx, name, verb)?;
    runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let ops = providers::machine_ops(&*kvm)?;
        let formation = fdir.name.as_str();
        journaled(&fdir, data(formation.to_string()), async {
            change(ops, formation).await.map_err(machine_op_error)
        })
        .await
    })
}

/// A KVM formation, locked for a cluster operation.
fn kvm_formation(cx: &Context, name: &str, verb: &str) -> Result<(FormationDir, FormationLock)> {
    let (fdir, record) = existing(cx, name)?;
    if record.provider != ProviderKind::Kvm {
        return Err(Error::usage(format!(
            "formation:{verb} works on KVM formations; {} runs on {}",
            fdir.name, record.provider
        )));
    }
    let lock = FormationLock::acquire(&fdir, verb)?;
    Ok((fdir, lock))
}

/// `formation:attach-iso` (`Some(iso)`: a file, or a registered ISO's name) /
/// `formation:detach-iso` (`None`): the spare CD-ROM drive of `machine` (default: the primary
/// one), live when it runs.
pub fn change_media(
    cx: &Context,
    name: &str,
    machine: Option<&str>,
    iso: Option<&Path>,
) -> Result<MediaChange> {
    let verb = if iso.is_some() {
        "attach-iso"
    } else {
        "detach-iso"
    };
    let (medium, _held) = match iso {
        Some(iso) => {
            let (medium, held) = super::library::resolve_iso(cx, iso)?;
            (Some(medium), held)
        }
        None => (None, None),
    };
    let data = |formation| OperationData::Media {
        formation,
        machine: named(machine),
        iso: medium.as_ref().map(|m| m.to_string()),
    };
    kvm_change(cx, name, verb, data, async |ops, formation| match &medium {
        Some(iso) => ops.attach_iso(formation, machine, iso).await,
        None => ops.detach_iso(formation, machine).await,
    })
}
