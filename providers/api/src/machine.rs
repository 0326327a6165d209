//! Machine operations a provider may offer beside building formations (object_store's
//! `MultipartStore` beside `ObjectStore`): power, removable media, drives, NICs and the
//! graphical console of one machine. Reached through [`crate::Provider::machines`].

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BoxFuture, PowerAction, ProviderError, ProviderKind};

/// Where a machine's drive lives: a qcow2 volume on its host, or a LUN on the cluster's
/// iSCSI target. The serialized names are the pattern's `storage:` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Qcow2,
    Iscsi,
}

impl StorageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Qcow2 => "qcow2",
            StorageKind::Iscsi => "iscsi",
        }
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ISO `formation:attach-iso` inserts.
#[derive(Debug, Clone, PartialEq)]
pub enum IsoMedium {
    /// A file on this machine (copied to a remote host's formation directory).
    File(PathBuf),
    /// A library entry: each host's checked copy, used in place.
    Library {
        name: String,
        copies: crate::library::HostCopies,
    },
}

impl fmt::Display for IsoMedium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsoMedium::File(path) => write!(f, "{}", path.display()),
            IsoMedium::Library { name, .. } => write!(f, "library ISO {name}"),
        }
    }
}

/// What is in a machine's spare drive.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MediaChange {
    pub machine: String,
    pub host: String,
    /// The ISO's path on the machine's host; `None` after a detach.
    pub iso: Option<PathBuf>,
}

/// A drive added to or removed from a machine.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DriveChange {
    pub machine: String,
    pub host: String,
    /// `diskN`, as `formation:describe` lists it (`disk0` is the boot disk).
    pub drive: String,
    /// The guest device (`vdb`).
    pub device: String,
    /// qcow2 | iscsi
    pub storage: String,
    /// The volume's path, or `IQN/LUN`.
    pub id: String,
    pub size_gb: Option<u64>,
}

/// A drive that was grown.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DriveResize {
    pub machine: String,
    pub host: String,
    /// `diskN`, as `formation:describe` lists it.
    pub drive: String,
    /// qcow2 | iscsi
    pub storage: String,
    /// The volume's path, or `IQN/LUN`.
    pub id: String,
    /// The size before, in bytes.
    pub previous_bytes: u64,
    /// The size now, in bytes (`size_gb` GiB).
    pub bytes: u64,
    pub size_gb: u64,
    /// False when the drive already had the requested size.
    pub changed: bool,
}

/// A NIC plugged into or unplugged from a machine.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct NicChange {
    pub machine: String,
    pub host: String,
    /// `netN`: the NIC's place among the machine's NICs (`net0` is the one it was built with).
    pub nic: String,
    /// The network's name in the cluster file.
    pub network: String,
    pub mac: String,
    /// The fixed address from the network's pool, if it has one.
    pub ip: Option<String>,
    /// The libvirt nwfilter on the NIC (`clean-traffic` with a fixed address).
    pub filter: Option<String>,
    /// Whether the running machine got (or lost) the NIC at once, not only at its next start.
    pub live: bool,
}

/// Where to point a VNC viewer.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VncDisplay {
    pub machine: String,
    pub host: String,
    /// `127.0.0.1:PORT` on this machine: the display itself, or the local end of the forward.
    pub address: String,
    pub port: u16,
    /// The display's port on the machine's host.
    pub host_port: u16,
    /// The ssh destination forwarding to the host's display (remote hosts only).
    pub ssh: Option<String>,
}

/// What keeps a display reachable from this machine (an ssh port forward) for as long as it
/// lives; dropping it ends the forward.
pub trait ConsoleForward: Send {
    /// Waits until the forward ends by itself (connection lost); returns why.
    fn wait(&mut self) -> BoxFuture<'_, ProviderError>;
    /// Ends the forward.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A display, with the forward that reaches it when the machine's host is remote.
pub struct VncConsole {
    pub display: VncDisplay,
    pub forward: Option<Box<dyn ConsoleForward>>,
}

impl fmt::Debug for VncConsole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VncConsole")
            .field("display", &self.display)
            .field("forward", &self.forward.is_some())
            .finish()
    }
}

/// The power state an operation needs a machine in.
pub const RUNNING: &str = "running";
pub const SHUT_OFF: &str = "shut off";

/// An operation on one machine that needs it in another power state, or failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineOpError {
    /// The machine is `state` and the operation needs it `needed` ([`RUNNING`], [`SHUT_OFF`]).
    #[error("{formation}/{machine} is {state}; this needs it {needed}")]
    WrongState {
        formation: String,
        machine: String,
        state: String,
        needed: &'static str,
    },
    #[error(transparent)]
    Provider(ProviderError),
}

impl From<ProviderError> for MachineOpError {
    fn from(e: ProviderError) -> MachineOpError {
        MachineOpError::Provider(e)
    }
}

impl MachineOpError {
    /// A provider without this operation (`attach-iso` on Vagrant): rejected as invalid, with
    /// where it works.
    pub fn unsupported(provider: ProviderKind, operation: &str) -> MachineOpError {
        MachineOpError::Provider(ProviderError::Invalid {
            message: format!("formation:{operation} is not supported by the {provider} provider"),
            hint: Some(format!("formation:{operation} works on kvm formations")),
        })
    }

    /// The command that puts the machine in the state the operation needs.
    pub fn fix(&self) -> Option<String> {
        match self {
            MachineOpError::WrongState {
                formation,
                machine,
                needed,
                ..
            } => {
                let (verb, command) = if *needed == RUNNING {
                    ("start", "formation:start")
                } else {
                    ("stop", "formation:stop")
                };
                Some(format!(
                    "{verb} it first: nepho {command} {formation} {machine}"
                ))
            }
            MachineOpError::Provider(_) => None,
        }
    }
}

/// For callers that only report [`ProviderError`]s (`Provider::power`): a wrong power state is
/// a failure whose hint says how to get the needed state.
impl From<MachineOpError> for ProviderError {
    fn from(e: MachineOpError) -> ProviderError {
        let hint = e.fix();
        match e {
            MachineOpError::Provider(e) => e,
            wrong @ MachineOpError::WrongState { .. } => ProviderError::Failed {
                message: wrong.to_string(),
                hint,
            },
        }
    }
}

/// Operations on the machines of a formation. `machine` is the machine's name in the formation
/// (as `formation:describe` lists it); `None` means the primary machine, except for
/// [`MachineOps::power`] where it means all of them.
pub trait MachineOps: Send + Sync {
    /// `formation:stop|start|reset`: one machine, or all the formation's machines.
    fn power<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        action: PowerAction,
    ) -> BoxFuture<'a, Result<(), MachineOpError>>;

    /// Puts `iso` (a file on this machine, or a library entry) in the machine's spare CD-ROM
    /// drive.
    fn attach_iso<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        iso: &'a IsoMedium,
    ) -> BoxFuture<'a, Result<MediaChange, MachineOpError>>;

    /// Ejects the spare drive's medium (a no-op when empty).
    fn detach_iso<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
    ) -> BoxFuture<'a, Result<MediaChange, MachineOpError>>;

    /// Adds an empty `size_gb` GiB data drive.
    fn add_drive<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        size_gb: u64,
        storage: StorageKind,
    ) -> BoxFuture<'a, Result<DriveChange, MachineOpError>>;

    /// Detaches drive `diskN` and deletes its volume; the boot disk stays.
    fn remove_drive<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        drive: &'a str,
    ) -> BoxFuture<'a, Result<DriveChange, MachineOpError>>;

    /// Grows drive `diskN` of a shut-off machine to `size_gb` GiB.
    fn resize_drive<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        drive: &'a str,
        size_gb: u64,
    ) -> BoxFuture<'a, Result<DriveResize, MachineOpError>>;

    /// Plugs the machine into `network`.
    fn attach_nic<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        network: &'a str,
    ) -> BoxFuture<'a, Result<NicChange, MachineOpError>>;

    /// Unplugs NIC `nic` (`netN`, or the only NIC on that network).
    fn detach_nic<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        nic: &'a str,
    ) -> BoxFuture<'a, Result<NicChange, MachineOpError>>;

    /// The graphical console of a running machine, forwarded to `local_port` on this machine
    /// when its host is remote (0: any free port).
    fn vnc<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        local_port: u16,
    ) -> BoxFuture<'a, Result<VncConsole, MachineOpError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrong(needed: &'static str) -> MachineOpError {
        MachineOpError::WrongState {
            formation: "lab".into(),
            machine: "web".into(),
            state: "paused".into(),
            needed,
        }
    }

    #[test]
    fn a_wrong_state_names_the_command_that_fixes_it() {
        let e = wrong(SHUT_OFF);
        assert_eq!(e.to_string(), "lab/web is paused; this needs it shut off");
        assert_eq!(
            e.fix().as_deref(),
            Some("stop it first: nepho formation:stop lab web")
        );
        assert_eq!(
            wrong(RUNNING).fix().as_deref(),
            Some("start it first: nepho formation:start lab web")
        );
        match ProviderError::from(wrong(RUNNING)) {
            ProviderError::Failed { message, hint } => {
                assert_eq!(message, "lab/web is paused; this needs it running");
                assert_eq!(
                    hint.as_deref(),
                    Some("start it first: nepho formation:start lab web")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn provider_errors_pass_through_unchanged() {
        let e = MachineOpError::from(ProviderError::NotFound("no machine web".into()));
        assert_eq!(e.to_string(), "no machine web");
        assert!(e.fix().is_none());
        assert!(matches!(
            ProviderError::from(e),
            ProviderError::NotFound(m) if m == "no machine web"
        ));
    }

    #[test]
    fn unsupported_operations_say_where_they_work() {
        match ProviderError::from(MachineOpError::unsupported(
            ProviderKind::Vagrant,
            "attach-iso",
        )) {
            ProviderError::Invalid { message, hint } => {
                assert_eq!(
                    message,
                    "formation:attach-iso is not supported by the vagrant provider"
                );
                assert_eq!(
                    hint.as_deref(),
                    Some("formation:attach-iso works on kvm formations")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storage_kinds_use_the_pattern_names() {
        assert_eq!(
            serde_json::to_string(&StorageKind::Iscsi).unwrap(),
            "\"iscsi\""
        );
        let parsed: StorageKind = serde_json::from_str("\"qcow2\"").unwrap();
        assert_eq!(parsed, StorageKind::Qcow2);
        assert_eq!(StorageKind::default(), StorageKind::Qcow2);
        assert_eq!(StorageKind::Iscsi.to_string(), "iscsi");
    }
}
