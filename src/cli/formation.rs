//! `nepho formation:*` and the shortcuts `create`, `destroy`, `ssh`, `open`: arguments, one
//! `ops::formation` or `ops::machine` call each, and the printed result.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use nepho_provider_api::PowerAction;

use super::scenario::ValueArgs;
use super::{Context, Terminal};
use crate::error::Result;
use crate::ops::formation::{self as ops, Build, BuildOutcome, CreateOptions};
use crate::ops::machine::{self, StorageKind};
use crate::output::human::{self, Human};
use crate::output::{Format, OperationStatus, SshLine, Url};

#[derive(Debug, Subcommand)]
pub enum FormationCommand {
    /// Create a formation from CLOUDLET[/SCENARIO] (no scenario means `default`)
    #[command(visible_alias = "up")]
    Create(CreateArgs),
    /// List formations (from the providers, plus local records of builds in flight)
    #[command(visible_aliases = ["ls", "status"])]
    List,
    /// Show a formation: status, resources, outputs and recent events
    Describe { name: String },
    /// Re-attach to a formation's build (or replay the last one)
    Watch { name: String },
    /// Print a formation's event journal (`-o json`: the versioned NDJSON stream)
    Events {
        name: String,
        /// Keep following until the running build ends
        #[arg(long)]
        follow: bool,
        /// Only events with this sequence number or later
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        since: u64,
    },
    /// Re-render a formation from its cloudlet and apply the changes
    Update(UpdateArgs),
    /// Destroy a formation and everything nepho built for it
    #[command(visible_alias = "rm")]
    Destroy(DestroyArgs),
    /// Stop a running build (it can be resumed with `create --resume`)
    Cancel { name: String },
    /// Open an ssh session to a formation (or run CMD there)
    Ssh(SshArgs),
    /// Shut machines down cleanly (ACPI, then forced after a timeout) — KVM, Vagrant
    #[command(visible_alias = "halt")]
    Stop(MachineArgs),
    /// Start stopped machines — KVM, Vagrant
    Start(MachineArgs),
    /// Reset (hard reboot) machines — KVM, Vagrant
    Reset(MachineArgs),
    /// Put an ISO image in a machine's spare CD-ROM drive (live when running) — KVM
    AttachIso(AttachIsoArgs),
    /// Eject the ISO from a machine's spare CD-ROM drive — KVM
    DetachIso(DetachIsoArgs),
    /// Add an empty data drive (qcow2 volume or iSCSI LUN) to a machine, live when running — KVM
    AddDrive(AddDriveArgs),
    /// Detach a data drive (`diskN` as describe lists it) and delete its volume or LUN — KVM
    RemoveDrive(RemoveDriveArgs),
    /// Grow a drive of a shut-off machine (qcow2 volume or iSCSI LUN) — KVM
    ResizeDrive(ResizeDriveArgs),
    /// Print a running machine's VNC address (remote hosts: an ssh forward, until Ctrl-C) — KVM
    Vnc(VncArgs),
    /// Plug a machine into one more network (live when running; pool networks: fixed address + clean-traffic) — KVM
    AttachNic(AttachNicArgs),
    /// Unplug a machine's NIC (`netN` or its network) and release its address — KVM
    DetachNic(DetachNicArgs),
    /// Print (and open in a browser, when there is one) the formation's URL
    Open(OpenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AddDriveArgs {
    pub name: String,
    /// Size in GiB
    #[arg(long, value_name = "GIB")]
    pub size_gb: u64,
    /// Where the drive lives: a qcow2 volume on the machine's host, or a LUN on the cluster's iSCSI target
    #[arg(long, value_parser = ["qcow2", "iscsi"], default_value = "qcow2")]
    pub storage: String,
    /// Machine (default: the primary one)
    #[arg(long, short = 'm')]
    pub machine: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RemoveDriveArgs {
    pub name: String,
    /// The drive, as `formation:describe` lists it (disk1, disk2, ...)
    pub drive: String,
    /// Machine (default: the primary one)
    #[arg(long, short = 'm')]
    pub machine: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ResizeDriveArgs {
    pub name: String,
    /// The machine, as `formation:describe` lists it
    pub machine: String,
    /// The drive, as `formation:describe` lists it (disk0 is the boot disk)
    pub drive: String,
    /// New size in GiB (only growing is supported)
    #[arg(long, value_name = "GIB")]
    pub size_gb: u64,
}

#[derive(Debug, Clone, Args)]
pub struct VncArgs {
    pub name: String,
    /// Machine (default: the primary one)
    pub machine: Option<String>,
    /// Local port of the ssh forward for a remote host (default: any free port)
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub local_port: u16,
}

#[derive(Debug, Clone, Args)]
pub struct AttachNicArgs {
    pub name: String,
    /// The machine, as `formation:describe` lists it
    pub machine: String,
    /// A network of the cluster file
    pub network: String,
}

#[derive(Debug, Clone, Args)]
pub struct DetachNicArgs {
    pub name: String,
    /// The machine, as `formation:describe` lists it
    pub machine: String,
    /// The NIC: `netN` (net1, net2, ...), or the network of the machine's only NIC on it
    pub nic: String,
}

#[derive(Debug, Clone, Args)]
pub struct AttachIsoArgs {
    pub name: String,
    /// The ISO: a name `nepho iso:list` shows (each host's copy), or a file on this machine
    /// (copied to a remote host); write `./NAME` for a file named like a registered ISO
    pub iso: PathBuf,
    /// Machine (default: the primary one)
    #[arg(long, short = 'm')]
    pub machine: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DetachIsoArgs {
    pub name: String,
    /// Machine (default: the primary one)
    #[arg(long, short = 'm')]
    pub machine: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BuildFlags {
    /// Run the build in this process instead of a detached nanny
    #[arg(long, conflicts_with = "detach")]
    pub foreground: bool,
    /// Start the build and return at once (watch it with `formation:watch`)
    #[arg(long)]
    pub detach: bool,
    /// Wait until the build has finished (the default; the opposite of --detach)
    #[arg(long, conflicts_with = "detach")]
    pub wait: bool,
    /// Give up after this long (`90s`, `10m`, `1h30m`): the build is cancelled, rolls back,
    /// and nepho exits 5
    #[arg(long, value_name = "DURATION", value_parser = crate::util::parse_duration, conflicts_with = "detach")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// CLOUDLET[/SCENARIO]
    pub scenario: Option<String>,
    /// Formation name
    #[arg(long, short = 'n')]
    pub name: String,
    #[command(flatten)]
    pub values: ValueArgs,
    /// Show what would be created (the provider's change set) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Continue an interrupted create from its journal
    #[arg(long)]
    pub resume: bool,
    /// Keep what a failed create built instead of rolling it back
    #[arg(long)]
    pub no_rollback: bool,
    /// When a formation of this name failed (or was cancelled), clean up what it left and
    /// create it anew (on a terminal nepho offers this itself)
    #[arg(long, conflicts_with = "resume")]
    pub replace: bool,
    #[command(flatten)]
    pub build: BuildFlags,
}

#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    pub name: String,
    /// Show what the update would change (the provider's change set, or the machines added,
    /// removed or changed) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub values: ValueArgs,
    #[command(flatten)]
    pub build: BuildFlags,
}

#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    /// The formation to destroy
    pub name: String,
    /// Destroy without asking (needed when there is no terminal to ask on)
    #[arg(long, short = 'y', visible_alias = "auto-approve")]
    pub yes: bool,
    #[command(flatten)]
    pub build: BuildFlags,
}

#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    pub name: String,
    /// Machine to connect to (default: the primary one)
    pub machine: Option<String>,
    /// Print the ssh command line instead of running it
    #[arg(long)]
    pub print: bool,
    /// Command (and arguments) to run remotely, after `--`
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MachineArgs {
    pub name: String,
    /// One machine (default: all of the formation's machines)
    pub machine: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct OpenArgs {
    pub name: String,
    /// Only print the URL
    #[arg(long)]
    pub print: bool,
}

impl BuildFlags {
    fn build(&self) -> Build {
        Build {
            foreground: self.foreground,
            detach: self.detach,
            timeout: self.timeout,
        }
    }
}

pub fn run(cx: &Context, cmd: FormationCommand) -> Result<()> {
    use FormationCommand as C;
    let p = &Terminal;
    match cmd {
        C::Create(a) => return create(cx, a),
        C::List => {
            let list = ops::list(cx)?;
            cx.out.show(&list.items[..]);
            return list.unreachable.map_or(Ok(()), Err);
        }
        C::Describe { name } => cx.out.show(&ops::describe(cx, &name)?),
        C::Watch { name } => show_build(cx, ops::watch(cx, &name)?),
        C::Events {
            name,
            follow,
            since,
        } => return ops::events(cx, &name, follow, since, &mut |e| cx.out.event(e)),
        C::Update(a) => {
            let (values, build) = (a.values.sources(), a.build.build());
            show_build(cx, ops::update(cx, p, &a.name, &values, a.dry_run, &build)?)
        }
        C::Destroy(a) => show_build(cx, ops::destroy(cx, p, &a.name, a.yes, &a.build.build())?),
        C::Cancel { name } => cx.out.show(&ops::cancel(cx, &name)?),
        C::Ssh(a) => return ssh(cx, a),
        C::Open(a) => {
            let url = ops::url(cx, &a.name)?;
            cx.out.show(&Url { url: url.clone() });
            if !a.print {
                ops::open_in_browser(&url);
            }
        }
        machine => return machines(cx, machine),
    }
    Ok(())
}

/// The commands on a formation's machines (`ops::machine`).
fn machines(cx: &Context, cmd: FormationCommand) -> Result<()> {
    use FormationCommand as C;
    match cmd {
        C::Stop(a) => machine::power(cx, &a.name, a.machine.as_deref(), PowerAction::Stop)?,
        C::Start(a) => machine::power(cx, &a.name, a.machine.as_deref(), PowerAction::Start)?,
        C::Reset(a) => machine::power(cx, &a.name, a.machine.as_deref(), PowerAction::Reset)?,
        C::AttachIso(a) => media(cx, &a.name, a.machine.as_deref(), Some(&a.iso))?,
        C::DetachIso(a) => media(cx, &a.name, a.machine.as_deref(), None)?,
        C::AddDrive(a) => {
            let storage = match a.storage.as_str() {
                "iscsi" => StorageKind::Iscsi,
                _ => StorageKind::Qcow2,
            };
            let d = machine::add_drive(cx, &a.name, a.machine.as_deref(), a.size_gb, storage)?;
            cx.out.data(&d, || human::drive_change(&a.name, &d, true));
        }
        C::RemoveDrive(a) => {
            let d = machine::remove_drive(cx, &a.name, a.machine.as_deref(), &a.drive)?;
            cx.out.data(&d, || human::drive_change(&a.name, &d, false));
        }
        C::ResizeDrive(a) => {
            let d = machine::resize_drive(cx, &a.name, &a.machine, &a.drive, a.size_gb)?;
            cx.out.data(&d, || human::drive_resize(&a.name, &d));
        }
        C::Vnc(a) => {
            let show = |d: &crate::ops::machine::VncDisplay| cx.out.show(d);
            machine::vnc(cx, &a.name, a.machine.as_deref(), a.local_port, &show)?
        }
        C::AttachNic(a) => {
            let d = machine::attach_nic(cx, &a.name, &a.machine, &a.network)?;
            cx.out.data(&d, || human::nic_change(&a.name, &d, true));
        }
        C::DetachNic(a) => {
            let d = machine::detach_nic(cx, &a.name, &a.machine, &a.nic)?;
            cx.out.data(&d, || human::nic_change(&a.name, &d, false));
        }
        _ => unreachable!("formation::run handles the other commands"),
    }
    Ok(())
}

fn create(cx: &Context, a: CreateArgs) -> Result<()> {
    let options = CreateOptions {
        scenario: a.scenario,
        name: a.name,
        values: a.values.sources(),
        dry_run: a.dry_run,
        resume: a.resume,
        no_rollback: a.no_rollback,
        replace: a.replace,
        build: a.build.build(),
    };
    show_build(cx, ops::create(cx, &Terminal, &options)?);
    Ok(())
}

/// Prints what a create, update, destroy or watch came to.
fn show_build(cx: &Context, outcome: BuildOutcome) {
    match outcome {
        BuildOutcome::Preview(changes) => cx.out.show(&changes[..]),
        BuildOutcome::Started(r) => cx.out.data(&r, || {
            format!(
                "{} of {} started in the background; watch it with `nepho formation:watch {}`",
                r.operation, r.formation, r.formation
            )
        }),
        BuildOutcome::Nothing => {}
        // On a terminal the progress display already said it succeeded.
        BuildOutcome::Finished { result: r, drawn }
            if drawn
                && r.status == OperationStatus::Succeeded
                && cx.out.format == Format::Table
                && crate::output::stdout_is_tty() => {}
        BuildOutcome::Finished { result: r, .. } => cx.out.data(&r, || match r.status {
            OperationStatus::Detached => format!(
                "detached: the {} of {} goes on; re-attach with `nepho formation:watch {}`",
                r.operation, r.formation, r.formation
            ),
            _ => format!("{} of {} succeeded", r.operation, r.formation),
        }),
    }
}

fn ssh(cx: &Context, a: SshArgs) -> Result<()> {
    let args = ops::ssh_args(cx, &a.name, a.machine.as_deref(), &a.command)?;
    if !a.print {
        return Err(ops::exec_ssh(&args));
    }
    let line = SshLine {
        command: std::iter::once("ssh".to_string()).chain(args).collect(),
    };
    cx.out.data(&line, || line.human());
    Ok(())
}

fn media(cx: &Context, name: &str, m: Option<&str>, iso: Option<&std::path::Path>) -> Result<()> {
    let change = machine::change_media(cx, name, m, iso)?;
    cx.out.data(&change, || human::media_change(name, &change));
    Ok(())
}
