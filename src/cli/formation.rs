//! `nepho formation:*` and the shortcuts `create`, `destroy`, `ssh`, `open`: build, watch,
//! inspect, reach and tear down formations. Builds run in a nanny (see `crate::nanny`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use nepho_provider_api::{EventStatus, FormationSpec, PowerAction, ProviderKind};
use serde::Serialize;

use super::Context;
use super::scenario::{ValueArgs, complete_required, resolve};
use crate::engine::{Operation, RunOptions};
use crate::error::{Error, Result};
use crate::formation::{
    self, FormationDir, FormationLock, FormationName, FormationRecord, RecordState,
};
use crate::inventory::{self, DestroyTarget};
use crate::nanny::{self, client, progress};
use crate::output::{self, FormationDescription, OperationResult};
use crate::providers;
use crate::scenario::render::{self, RenderContext};
use crate::secret::StoredSecrets;

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
    /// The ISO image (a file on this machine; copied to a remote host)
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
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "detach")]
    pub timeout: Option<Duration>,
}

/// Follows a build that was told to stop until its last event (further Ctrl-Cs are ignored:
/// the rollback must finish).
async fn follow_to_end(
    socket: &std::path::Path,
    journal: &std::path::Path,
    from: u64,
    busy: &dyn Fn() -> bool,
    show: &mut dyn FnMut(&nepho_provider_api::Event),
) -> Result<client::Followed> {
    loop {
        match client::follow(socket, journal, from, Duration::from_secs(20), busy, show).await {
            Ok(client::Followed::Detached) => continue,
            other => return other,
        }
    }
}

/// `90`, `90s`, `10m`, `1h30m`, `2h`: a duration for `--timeout`.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("\"{text}\" is not a duration: use 90s, 10m or 1h30m");
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() {
        total += number.parse::<u64>().map_err(|_| bad())?;
    }
    if total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
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

pub fn run(cx: &Context, cmd: FormationCommand) -> Result<()> {
    match cmd {
        FormationCommand::Create(a) => create(cx, a),
        FormationCommand::List => list(cx),
        FormationCommand::Describe { name } => describe(cx, &name),
        FormationCommand::Watch { name } => watch(cx, &name),
        FormationCommand::Events {
            name,
            follow,
            since,
        } => events(cx, &name, follow, since),
        FormationCommand::Update(a) => update(cx, a),
        FormationCommand::Destroy(a) => destroy(cx, a),
        FormationCommand::Cancel { name } => cancel(cx, &name),
        FormationCommand::Ssh(a) => ssh(cx, a),
        FormationCommand::Open(a) => open(cx, a),
        FormationCommand::Stop(a) => lifecycle(cx, a, PowerAction::Stop),
        FormationCommand::Start(a) => lifecycle(cx, a, PowerAction::Start),
        FormationCommand::Reset(a) => lifecycle(cx, a, PowerAction::Reset),
        FormationCommand::AttachIso(a) => {
            change_media(cx, &a.name, a.machine.as_deref(), Some(&a.iso))
        }
        FormationCommand::DetachIso(a) => change_media(cx, &a.name, a.machine.as_deref(), None),
        FormationCommand::AddDrive(a) => change_drives(
            cx,
            &a.name,
            a.machine.as_deref(),
            Ok((a.size_gb, a.storage.as_str())),
        ),
        FormationCommand::RemoveDrive(a) => {
            change_drives(cx, &a.name, a.machine.as_deref(), Err(a.drive.as_str()))
        }
        FormationCommand::ResizeDrive(a) => resize_drive(cx, a),
        FormationCommand::Vnc(a) => vnc(cx, a),
        FormationCommand::AttachNic(a) => change_nics(cx, &a.name, &a.machine, Ok(&a.network)),
        FormationCommand::DetachNic(a) => change_nics(cx, &a.name, &a.machine, Err(&a.nic)),
    }
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(e.to_string()))
}

fn existing(cx: &Context, name: &str) -> Result<(FormationDir, FormationRecord)> {
    let name = FormationName::parse(name)?;
    let fdir = FormationDir::new(&cx.paths, &name);
    match fdir.read_record()? {
        Some(r) => {
            if r.context != cx.paths.context {
                let made = r
                    .context
                    .as_deref()
                    .unwrap_or(crate::config::DEFAULT_CONTEXT);
                cx.out.warn(&format!(
                    "{name} was made in context {made}, and this command uses {}: add `--context {made}`",
                    cx.paths
                        .context
                        .as_deref()
                        .unwrap_or(crate::config::DEFAULT_CONTEXT)
                ));
            }
            Ok((fdir, r))
        }
        None => Err(Error::not_found(format!("no formation named {name}"))
            .with_hint("list them with `nepho formation:list`")),
    }
}

/// What an update keeps from the formation's last build: its secret values, and the names of
/// those whose value is lost (they must be given again).
#[derive(Debug, Default)]
struct KeptSecrets {
    stored: StoredSecrets,
    lost: Vec<String>,
}

impl KeptSecrets {
    fn of(cx: &Context, fdir: &FormationDir) -> KeptSecrets {
        // Without a readable spec.json there is no record of which secrets had values; the
        // merge still asks for every required one.
        let Ok(public) = fdir.read_public_spec() else {
            return KeptSecrets::default();
        };
        let stored = fdir.read_secrets().unwrap_or_else(|e| {
            cx.out
                .warn(&format!("cannot use the stored secret values: {e}"));
            StoredSecrets::default()
        });
        let lost = FormationDir::lost_secrets(&public, &stored);
        KeptSecrets { stored, lost }
    }
}

/// Renders the scenario into a spec ready for a provider (secrets included).
fn build_spec(
    cx: &Context,
    reference: &str,
    name: &FormationName,
    values: &ValueArgs,
    kept: KeptSecrets,
) -> Result<FormationSpec> {
    let (installed, scenario) = resolve(cx, reference)?;
    let mut sources = values.sources();
    // An update keeps the secret values given before, as their own layer under -f and --set.
    sources.stored = kept.stored;
    let merged = complete_required(cx, &installed.cloudlet, &scenario, sources, &kept.lost)?;
    for w in scenario.warnings.iter().chain(merged.warnings.iter()) {
        cx.out.warn(w);
    }
    let fdir = FormationDir::new(&cx.paths, name);
    let rcx = RenderContext {
        formation: name.to_string(),
        parameters: merged.values(),
        secret_keys: merged.secrets.iter().cloned().collect(),
    };
    let file = render::render_pattern(&installed.cloudlet, &scenario, &rcx)?;
    render::check_rendered(scenario.provider, &file, &scenario.pattern.path)?;
    Ok(FormationSpec {
        name: name.to_string(),
        cloudlet: installed.cloudlet.manifest.name.clone(),
        scenario: scenario.name.clone(),
        provider: scenario.provider,
        pattern: vec![file],
        parameters: merged.values(),
        secret_keys: merged.secrets.clone(),
        provisioner: scenario.provisioner.clone(),
        payload_dir: scenario.payload_dir.clone(),
        v1: installed.cloudlet.format == crate::cloudlet::CloudletFormat::V1,
        work_dir: fdir.work_dir(),
    })
}

fn create(cx: &Context, a: CreateArgs) -> Result<()> {
    let name = FormationName::parse(&a.name)?;
    let fdir = FormationDir::new(&cx.paths, &name);
    let record = fdir.read_record()?;
    if a.resume {
        let record = record
            .ok_or_else(|| Error::not_found(format!("no formation named {name} to resume")))?;
        let lock = FormationLock::acquire(&fdir, "resume create")?;
        return launch(
            cx,
            &fdir,
            record.provider,
            Operation::Create,
            true,
            !a.no_rollback,
            &a.build,
            lock,
        );
    }
    let ended_badly = |r: &FormationRecord| {
        matches!(r.state, RecordState::Failed | RecordState::Cancelled)
            || (r.state == RecordState::Creating && !formation::is_busy(&fdir))
    };
    let record = match record {
        Some(r) if ended_badly(&r) && (a.replace || offer_replace(cx, &r)?) => {
            cx.out.notice(&format!(
                "removing what the {} create of {name} left, then creating it anew",
                format!("{:?}", r.state).to_lowercase()
            ));
            destroy(
                cx,
                DestroyArgs {
                    name: name.to_string(),
                    yes: true,
                    build: BuildFlags {
                        foreground: true,
                        detach: false,
                        wait: true,
                        timeout: None,
                    },
                },
            )?;
            fdir.read_record()?
        }
        other => other,
    };
    if let Some(r) = &record
        && r.state != RecordState::Destroyed
    {
        let hint = match r.state {
            RecordState::Failed | RecordState::Cancelled => format!(
                "create it anew with `nepho formation:create ... --name {name} --replace`, or destroy it"
            ),
            RecordState::Creating if !formation::is_busy(&fdir) => format!(
                "its create was interrupted: `nepho formation:create --resume --name {name}`, or destroy it"
            ),
            _ => format!("update it with `nepho formation:update {name}`, or destroy it first"),
        };
        return Err(Error::conflict(
            format!(
                "formation {name} already exists ({:?}, from {}/{})",
                r.state, r.cloudlet, r.scenario
            )
            .to_lowercase(),
        )
        .with_hint(hint));
    }
    let reference = a.scenario.clone().ok_or_else(|| {
        Error::usage("which cloudlet? `nepho formation:create CLOUDLET[/SCENARIO] --name NAME`")
            .with_hint("list installed cloudlets with `nepho cloudlet:list`")
    })?;
    let spec = build_spec(cx, &reference, &name, &a.values, KeptSecrets::default())?;
    if a.dry_run {
        return dry_run(cx, &spec);
    }
    // A nanny that could not listen is refused now, before a record exists.
    formation::prepare_socket(&cx.paths, &name)?;
    // The provider is the source of truth: refuse a name that already exists there (made on
    // another machine, or a local record lost), and fail fast on missing credentials.
    // Bad input is refused here, with exit 4, before a record or a nanny exists.
    let exists = runtime()?.block_on(async {
        let provider = providers::connect(spec.provider, &cx.paths, true).await?;
        provider
            .validate(&spec)
            .await
            .map_err(providers::provider_error)?;
        match provider.describe(name.as_str()).await {
            Ok(d) => Ok(Some(d)),
            Err(nepho_provider_api::ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(providers::provider_error(e)),
        }
    })?;
    if let Some(d) = exists {
        return Err(Error::conflict(
            format!(
                "a formation named {name} already exists on {} ({:?})",
                spec.provider, d.summary.state
            )
            .to_lowercase(),
        )
        .with_hint("choose another --name, or destroy that one first"));
    }
    let lock = FormationLock::acquire(&fdir, "create")?;
    fdir.create_dirs()?;
    if record.is_some() && fdir.journal_file().exists() {
        // A new formation under an old name starts a new journal; the old one is kept.
        let old = fdir.dir.join(format!(
            "journal-{}.ndjson",
            crate::util::now_rfc3339().replace(':', "")
        ));
        std::fs::rename(fdir.journal_file(), old).map_err(|e| Error::io(fdir.journal_file(), e))?;
    }
    fdir.write_spec(&spec)?;
    fdir.write_record(&FormationRecord {
        name: name.to_string(),
        cloudlet: spec.cloudlet.clone(),
        scenario: spec.scenario.clone(),
        provider: spec.provider,
        created_at: crate::util::now_rfc3339(),
        state: RecordState::Creating,
        updated_at: None,
        context: cx.paths.context.clone(),
    })?;
    launch(
        cx,
        &fdir,
        spec.provider,
        Operation::Create,
        false,
        !a.no_rollback,
        &a.build,
        lock,
    )
}

fn dry_run(cx: &Context, spec: &FormationSpec) -> Result<()> {
    let rt = runtime()?;
    let changes = rt.block_on(async {
        let provider = providers::connect(spec.provider, &cx.paths, true).await?;
        provider
            .preview(spec)
            .await
            .map_err(providers::provider_error)
    })?;
    cx.out.data(&changes, || {
        let mut t = output::table(&["ACTION", "RESOURCE", "TYPE", "REPLACEMENT"]);
        for c in &changes {
            t.add_row(vec![
                c.action.clone(),
                c.resource.clone(),
                c.kind.clone(),
                c.replacement.clone().unwrap_or_default(),
            ]);
        }
        if changes.is_empty() {
            "no changes (dry run: nothing was changed)".to_string()
        } else {
            format!(
                "{}\n(dry run: nothing was changed)",
                output::render_table(&t)
            )
        }
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn launch(
    cx: &Context,
    fdir: &FormationDir,
    provider: ProviderKind,
    op: Operation,
    resume: bool,
    rollback: bool,
    build: &BuildFlags,
    lock: FormationLock,
) -> Result<()> {
    let from = crate::engine::journal::read(&fdir.journal_file())?
        .last()
        .map_or(1, |e| e.seq + 1);
    // Before any nanny starts: a socket that cannot exist is an error now, not a stopped nanny.
    let socket = formation::prepare_socket(&cx.paths, &fdir.name)?;
    let worker = if build.foreground {
        let paths = cx.paths.clone();
        let name = fdir.name.clone();
        Some(std::thread::spawn(move || {
            nanny::run_with_socket(&paths, &name, op, RunOptions { resume, rollback }, lock)
        }))
    } else {
        let pid = nanny::spawn(&cx.paths, fdir, op, resume, rollback, &lock)?;
        drop(lock); // the nanny holds it now
        cx.out.debug(&format!(
            "nanny pid {pid}, log {}",
            fdir.log_file().display()
        ));
        if build.detach {
            let result = OperationResult {
                formation: fdir.name.to_string(),
                operation: op.as_str().into(),
                status: "detached".into(),
                provider: provider.to_string(),
                journal: fdir.journal_file().display().to_string(),
            };
            cx.out.data(&result, || {
                format!(
                    "{} of {} started in the background; watch it with `nepho formation:watch {}`",
                    op.as_str(),
                    fdir.name,
                    fdir.name
                )
            });
            return Ok(());
        }
        None
    };
    let title = format!("{} {}", op.as_str(), fdir.name);
    let typical = fdir
        .read_record()
        .ok()
        .flatten()
        .map(|r| {
            nanny::history::History::load(&cx.paths, &r.cloudlet, &r.scenario, r.provider.as_str())
                .typical()
        })
        .unwrap_or_default();
    let mut bars = progress::Progress::with_history(cx.out.quiet, &title, typical);
    let journal = fdir.journal_file();
    let busy = || formation::is_busy(fdir);
    let mut show = |e: &nepho_provider_api::Event| bars.show(e);
    let (followed, timed_out) = runtime()?.block_on(async {
        let limit = build.timeout.unwrap_or(Duration::MAX);
        // `None`: out of time.
        let first = {
            let follow = client::follow(
                &socket,
                &journal,
                from,
                Duration::from_secs(20),
                &busy,
                &mut show,
            );
            tokio::pin!(follow);
            tokio::select! {
                followed = &mut follow => Some(followed),
                _ = tokio::time::sleep(limit) => None,
            }
        };
        let Some(first) = first else {
            // Out of time: cancel (the build rolls back) and follow it to its end.
            let _ = client::cancel(&socket).await;
            return (follow_to_end(&socket, &journal, from, &busy, &mut show).await, true);
        };
        if !matches!(first, Ok(client::Followed::Detached)) {
            return (first, false);
        }
        // Ctrl-C. In the foreground the build lives in this process: cancel it. Attached to a
        // nanny: detach, unless a second Ctrl-C comes soon, which cancels.
        if !build.foreground {
            eprintln!(
                "detaching: the build goes on (watch it with `nepho formation:watch {}`); Ctrl-C again within 3 s cancels it",
                fdir.name
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3)) => return (first, false),
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        eprintln!("cancelling: the build rolls back what it made");
        let _ = client::cancel(&socket).await;
        (follow_to_end(&socket, &journal, from, &busy, &mut show).await, false)
    });
    let drawn = bars.drawn();
    bars.finish();
    if let Some(worker) = worker {
        match worker.join() {
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Other("the build thread panicked".into())),
            Ok(Ok(_)) => {}
        }
    }
    if timed_out {
        let limit = build.timeout.unwrap_or_default();
        return Err(Error::Provider {
            message: format!(
                "the {} of {} did not finish within {}s: it was cancelled{}",
                op.as_str(),
                fdir.name,
                limit.as_secs(),
                if rollback { " and rolled back" } else { "" }
            ),
            hint: Some(format!(
                "give it longer with --timeout, or look at `nepho formation:events {}`",
                fdir.name
            )),
        });
    }
    report(cx, fdir, provider, op, followed?, drawn)
}

fn report(
    cx: &Context,
    fdir: &FormationDir,
    provider: ProviderKind,
    op: Operation,
    followed: client::Followed,
    // The progress display already ended with the result on this terminal.
    drawn: bool,
) -> Result<()> {
    let status = match followed {
        client::Followed::Finished(EventStatus::Succeeded) => "succeeded",
        client::Followed::Finished(EventStatus::Cancelled) => "cancelled",
        client::Followed::Finished(_) => "failed",
        client::Followed::Detached => "detached",
        client::Followed::Lost => "lost",
    };
    let name = &fdir.name;
    match status {
        "succeeded" | "detached" => {
            let result = OperationResult {
                formation: name.to_string(),
                operation: op.as_str().into(),
                status: status.into(),
                provider: provider.to_string(),
                journal: fdir.journal_file().display().to_string(),
            };
            let said = drawn
                && status == "succeeded"
                && cx.out.format == output::Format::Table
                && output::stdout_is_tty();
            if !said {
                cx.out.data(&result, || match status {
                    "detached" => format!("detached: the {} of {name} goes on; re-attach with `nepho formation:watch {name}`", op.as_str()),
                    _ => format!("{} of {name} succeeded", op.as_str()),
                });
            }
            Ok(())
        }
        "cancelled" => Err(Error::Interrupted),
        "lost" => Err(Error::Provider {
            message: format!(
                "the nanny building {name} stopped before finishing{} (see {})",
                nanny::log_error(&fdir.log_file())
                    .map(|line| format!(" ({line})"))
                    .unwrap_or_default(),
                fdir.log_file().display()
            ),
            hint: Some(match op {
                Operation::Create => format!(
                    "continue with `nepho formation:create --resume --name {name}`, or `nepho formation:destroy {name}`"
                ),
                _ => format!("run `nepho formation:{} {name}` again", op.as_str()),
            }),
        }),
        _ => {
            let last = crate::engine::journal::read(&fdir.journal_file())?
                .into_iter()
                .rev()
                .find(nanny::is_final)
                .map(|e| e.message);
            Err(Error::Provider {
                message: last.unwrap_or_else(|| format!("{} of {name} failed", op.as_str())),
                hint: Some(format!("see `nepho formation:events {name}`")),
            })
        }
    }
}

fn watch(cx: &Context, name: &str) -> Result<()> {
    let (fdir, record) = existing(cx, name)?;
    let from = client::last_run_from(&fdir.journal_file());
    let socket = formation::socket_path(&cx.paths, &fdir.name);
    let op = crate::engine::journal::read(&fdir.journal_file())?
        .iter()
        .rev()
        .find_map(|e| crate::engine::journal::op_of(e).and_then(Operation::parse))
        .unwrap_or(Operation::Create);
    let mut bars = progress::Progress::new(cx.out.quiet, &format!("{} {}", op.as_str(), fdir.name));
    let wait = if formation::is_busy(&fdir) {
        Duration::from_secs(5)
    } else {
        Duration::ZERO
    };
    let followed = runtime()?.block_on(client::follow(
        &socket,
        &fdir.journal_file(),
        from,
        wait,
        &|| formation::is_busy(&fdir),
        &mut |e| bars.show(e),
    ))?;
    let drawn = bars.drawn();
    bars.finish();
    report(cx, &fdir, record.provider, op, followed, drawn)
}

/// The formation's journal, with a warning when damaged lines had to be skipped.
fn read_journal(cx: &Context, fdir: &FormationDir) -> Result<Vec<nepho_provider_api::Event>> {
    let journal = crate::engine::journal::read_all(&fdir.journal_file())?;
    if journal.skipped > 0 {
        cx.out.warn(&format!(
            "skipped {} unreadable line{} of {} (torn by a crash, or not UTF-8)",
            journal.skipped,
            if journal.skipped == 1 { "" } else { "s" },
            fdir.journal_file().display()
        ));
    }
    Ok(journal.events)
}

fn events(cx: &Context, name: &str, follow: bool, since: u64) -> Result<()> {
    // The journal is readable without the record (lost or corrupt): it is a file of its own.
    let fdir = FormationDir::new(&cx.paths, &FormationName::parse(name)?);
    if !fdir.journal_file().exists() {
        existing(cx, name)?;
    }
    // JSON: NDJSON; YAML: a stream of `---` documents; table: one line each.
    let format = cx.out.format;
    let print = |e: &nepho_provider_api::Event| {
        let text = match format {
            output::Format::Json => serde_json::to_string(e).unwrap_or_default() + "\n",
            output::Format::Yaml => {
                let value = serde_json::to_value(e).unwrap_or_default();
                let doc = serde_saphyr::to_string(&value).unwrap_or_default();
                format!(
                    "---\n{}{}",
                    doc,
                    if doc.ends_with('\n') { "" } else { "\n" }
                )
            }
            output::Format::Table => progress::line(e) + "\n",
        };
        output::write_stdout(text.as_bytes());
    };
    let mut last = 0;
    for e in read_journal(cx, &fdir)? {
        if e.seq >= since {
            print(&e);
            last = e.seq;
        }
    }
    if follow && formation::is_busy(&fdir) {
        let socket = formation::socket_path(&cx.paths, &fdir.name);
        let mut show = |e: &nepho_provider_api::Event| print(e);
        runtime()?.block_on(client::follow(
            &socket,
            &fdir.journal_file(),
            last.max(since.saturating_sub(1)) + 1,
            Duration::from_secs(5),
            &|| formation::is_busy(&fdir),
            &mut show,
        ))?;
    }
    Ok(())
}

fn update(cx: &Context, a: UpdateArgs) -> Result<()> {
    let (fdir, record) = existing(cx, &a.name)?;
    if record.state == RecordState::Destroyed {
        return Err(Error::not_found(format!(
            "formation {} was destroyed",
            fdir.name
        )));
    }
    let reference = format!("{}/{}", record.cloudlet, record.scenario);
    let kept = KeptSecrets::of(cx, &fdir);
    let spec = build_spec(cx, &reference, &fdir.name, &a.values, kept)?;
    // Refused before the formation's spec is replaced: a bad update changes nothing.
    runtime()?.block_on(async {
        let provider = providers::connect(spec.provider, &cx.paths, true).await?;
        provider
            .validate(&spec)
            .await
            .map_err(providers::provider_error)
    })?;
    if a.dry_run {
        return dry_run(cx, &spec);
    }
    let lock = FormationLock::acquire(&fdir, "update")?;
    fdir.write_spec(&spec)?;
    launch(
        cx,
        &fdir,
        record.provider,
        Operation::Update,
        false,
        false,
        &a.build,
        lock,
    )
}

fn destroy(cx: &Context, a: DestroyArgs) -> Result<()> {
    // A successful destroy removes the formation's local state, so destroying it again finds
    // it nowhere: the formation is already gone, which is what was asked.
    let name = FormationName::parse(&a.name)?;
    let (located, lock) = match runtime()?.block_on(inventory::prepare_destroy(&cx.paths, &name))? {
        DestroyTarget::Formation(located, lock) => (located, lock),
        DestroyTarget::Gone { removed_unreadable } => {
            cx.out.notice(&if removed_unreadable {
                format!(
                    "{name} exists on no registered provider: removed its unreadable local record"
                )
            } else {
                format!("no formation named {name}: nothing to destroy (already destroyed?)")
            });
            return Ok(());
        }
    };
    if let Some(why) = &located.recovered {
        cx.out.warn(why);
    }
    if located
        .record
        .as_ref()
        .is_some_and(|r| r.state == RecordState::Destroyed)
    {
        cx.out.notice(&format!("{name} is already destroyed"));
    }
    if !a.yes {
        confirm_destroy(cx, &located)?;
    }
    launch(
        cx,
        &located.fdir,
        located.provider,
        Operation::Destroy,
        false,
        false,
        &a.build,
        lock,
    )
}

/// On a terminal, offers to clean up a formation whose create failed and create it anew.
fn offer_replace(cx: &Context, r: &FormationRecord) -> Result<bool> {
    if !cx.interactive {
        return Ok(false);
    }
    ask_yes_no(&format!(
        "{} exists from a {} create ({}/{}): clean it up and create it anew?",
        r.name,
        format!("{:?}", r.state).to_lowercase(),
        r.cloudlet,
        r.scenario
    ))
}

/// A yes/no question on the terminal, no by default; Ctrl-C is an interrupt (exit 130).
fn ask_yes_no(question: &str) -> Result<bool> {
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| match e {
            dialoguer::Error::IO(io) if io.kind() == std::io::ErrorKind::Interrupted => {
                Error::Interrupted
            }
            other => Error::Other(format!("cannot read the answer: {other}")),
        })
}

/// Shows what a destroy removes and asks; without a terminal to ask on, refuses (exit 2) and
/// names `--yes`, as `terraform destroy` does.
fn confirm_destroy(cx: &Context, located: &inventory::Located) -> Result<()> {
    let name = &located.fdir.name;
    if !cx.interactive {
        return Err(Error::usage(format!(
            "formation:destroy {name} removes everything it built on {}, and there is no terminal to confirm on",
            located.provider
        ))
        .with_hint(format!("confirm with `nepho formation:destroy {name} --yes`")));
    }
    let details = runtime()?.block_on(inventory::describe(&cx.paths, located.provider, name));
    let mut plan = format!(
        "formation:destroy {name} will remove, on {}:\n",
        located.provider
    );
    match &details {
        Ok(d) if !d.resources.is_empty() => {
            for r in &d.resources {
                plan.push_str(&format!(
                    "  - {} {}{}\n",
                    r.kind,
                    r.resource,
                    r.id.as_ref()
                        .map(|id| format!(" ({id})"))
                        .unwrap_or_default()
                ));
            }
        }
        Ok(_) => plan.push_str("  (the provider reports no resources)\n"),
        Err(e) => plan.push_str(&format!("  (the provider could not list them: {e})\n")),
    }
    plan.push_str("  - the local record, journal and rendered pattern\n");
    eprint!("{}", output::terminal_safe(&plan));
    let yes = ask_yes_no(&format!("Destroy {name}?"))?;
    if yes {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{name} was not destroyed (not confirmed)"
        )))
    }
}

fn cancel(cx: &Context, name: &str) -> Result<()> {
    let (fdir, _) = existing(cx, name)?;
    let socket = formation::socket_path(&cx.paths, &fdir.name);
    // Right after `create --detach` the nanny may not be listening yet: while the build holds
    // its lock, give it a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match runtime()?.block_on(client::cancel(&socket)) {
            Err(Error::NotFound { .. })
                if formation::is_busy(&fdir) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => break other?,
        }
    }
    let result = output::CancelRequested {
        name: fdir.name.to_string(),
        resume: format!("nepho formation:create --resume --name {}", fdir.name),
    };
    cx.out.data(&result, || {
        format!(
            "cancel requested for {}; resume later with `{}`",
            result.name, result.resume
        )
    });
    Ok(())
}

fn list(cx: &Context) -> Result<()> {
    let listing = runtime()?.block_on(inventory::list(&cx.paths))?;
    let nobody_answered = listing.answered == 0 && !listing.unreachable.is_empty();
    for w in &listing.warnings {
        // With no provider answering, the error below says it once.
        if !(nobody_answered && w.starts_with("cannot reach ")) {
            cx.out.warn(w);
        }
    }
    let unreachable = listing.unreachable;
    let items = listing.items;
    cx.out.data(&items, || {
        let mut t = output::table(&["NAME", "PROVIDER", "CLOUDLET", "STATE", "REASON"]);
        for i in &items {
            let cl = match (&i.cloudlet, &i.scenario) {
                (Some(c), Some(s)) => format!("{c}/{s}"),
                _ => String::new(),
            };
            let state = if i.busy {
                format!("{} (building)", i.state)
            } else {
                i.state.clone()
            };
            t.add_row(vec![
                i.name.clone(),
                i.provider.clone(),
                cl,
                state,
                i.status_reason.clone().unwrap_or_default(),
            ]);
        }
        output::render_table(&t)
    });
    if nobody_answered {
        let why: Vec<String> = unreachable
            .iter()
            .map(|(kind, why)| format!("cannot reach {kind}: {why}"))
            .collect();
        return Err(Error::Provider {
            message: why.join("; "),
            hint: Some(
                "check the provider's endpoint, credentials and network (`nepho register`)".into(),
            ),
        });
    }
    Ok(())
}

fn describe(cx: &Context, name: &str) -> Result<()> {
    let name = FormationName::parse(name)?;
    let rt = runtime()?;
    let located = rt.block_on(inventory::locate(&cx.paths, &name))?;
    if let Some(why) = &located.recovered {
        cx.out.warn(why);
    }
    let details = rt.block_on(inventory::describe(&cx.paths, located.provider, &name));
    let events = read_journal(cx, &located.fdir)?;
    let recent: Vec<String> = events
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(progress::line)
        .collect();
    let (details, provider_error) = match details {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let recorded = |local: Option<&String>, reported: Option<&String>| {
        local.or(reported).cloned().unwrap_or_default()
    };
    let record = located.record.as_ref();
    let summary = located.summary.as_ref();
    let d = FormationDescription {
        name: name.to_string(),
        provider: located.provider.to_string(),
        cloudlet: recorded(
            record.map(|r| &r.cloudlet),
            summary.and_then(|s| s.cloudlet.as_ref()),
        ),
        scenario: recorded(
            record.map(|r| &r.scenario),
            summary.and_then(|s| s.scenario.as_ref()),
        ),
        local_state: record.map(|r| r.state),
        busy: formation::is_busy(&located.fdir),
        details,
        provider_error,
        recent_journal: recent,
    };
    cx.out.data(&d, || {
        let mut s = format!(
            "Name:      {}\nProvider:  {}\nCloudlet:  {}/{}\n",
            d.name, d.provider, d.cloudlet, d.scenario
        );
        match &d.details {
            Some(det) => {
                s.push_str(&format!(
                    "Status:    {:?}{}\n",
                    det.summary.state,
                    det.summary
                        .status_reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
                if !det.outputs.is_empty() {
                    s.push_str("Outputs:\n");
                    for (k, v) in &det.outputs {
                        s.push_str(&format!("  {k:<16} {v}\n"));
                    }
                }
                if !det.resources.is_empty() {
                    let mut t = output::table(&["RESOURCE", "TYPE", "STATUS", "REASON"]);
                    for r in &det.resources {
                        t.add_row(vec![
                            r.resource.clone(),
                            r.kind.clone(),
                            r.status.clone(),
                            r.reason.clone().unwrap_or_default(),
                        ]);
                    }
                    s.push_str(&format!("Resources:\n{}\n", output::render_table(&t)));
                }
                if !det.recent_events.is_empty() {
                    s.push_str(&format!(
                        "Recent events:\n  {}\n",
                        det.recent_events.join("\n  ")
                    ));
                }
            }
            None => s.push_str(&format!(
                "Status:    {} (local record; provider: {})\n",
                d.local_state
                    .map(|state| format!("{state:?}"))
                    .unwrap_or_else(|| "unknown".into()),
                d.provider_error.clone().unwrap_or_default()
            )),
        }
        s
    });
    Ok(())
}

fn endpoints(cx: &Context, name: &str) -> Result<(FormationDir, nepho_provider_api::Endpoints)> {
    let name = FormationName::parse(name)?;
    let (located, e) = runtime()?.block_on(async {
        let located = inventory::locate(&cx.paths, &name).await?;
        if let Some(why) = &located.recovered {
            cx.out.warn(why);
        }
        let provider = providers::connect(located.provider, &cx.paths, true).await?;
        let e = provider
            .endpoints(name.as_str())
            .await
            .map_err(providers::provider_error)?;
        Ok::<_, Error>((located, e))
    })?;
    Ok((located.fdir, e))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn ssh(cx: &Context, a: SshArgs) -> Result<()> {
    let (fdir, endpoints) = endpoints(cx, &a.name)?;
    let target = match &a.machine {
        Some(m) => endpoints
            .ssh
            .iter()
            .find(|e| &e.machine == m)
            .ok_or_else(|| {
                let known: Vec<&str> = endpoints.ssh.iter().map(|e| e.machine.as_str()).collect();
                Error::not_found(format!(
                    "{} has no machine {m} with an ssh address (machines with one: {})",
                    fdir.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ))
                .with_hint(format!(
                    "a stopped or still booting machine has no address yet: `nepho formation:describe {}` shows each machine's state",
                    fdir.name
                ))
            })?,
        None => endpoints.ssh.first().ok_or_else(|| {
            Error::not_found(format!("{} has no ssh endpoint", fdir.name)).with_hint(
                "the pattern must output SSHEndpoint (and SSHUser), or declare a primary machine",
            )
        })?,
    };
    let mut args: Vec<String> = Vec::new();
    if target.port != 22 {
        args.extend(["-p".into(), target.port.to_string()]);
    }
    if let Some(key) = &target.identity_file {
        args.extend(["-i".into(), key.display().to_string()]);
    }
    for opt in &target.options {
        args.extend(["-o".into(), opt.clone()]);
    }
    args.push(format!("{}@{}", target.user, target.host));
    if !a.command.is_empty() {
        args.push("--".into());
        args.extend(a.command.iter().cloned());
    }
    if a.print {
        let line = std::iter::once("ssh".to_string())
            .chain(args.iter().map(|s| shell_quote(s)))
            .collect::<Vec<_>>()
            .join(" ");
        #[derive(Serialize)]
        struct SshLine {
            command: Vec<String>,
        }
        let command: Vec<String> = std::iter::once("ssh".to_string()).chain(args).collect();
        cx.out.data(&SshLine { command }, || line);
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new("ssh").args(&args).exec();
    Err(Error::unavailable(format!("cannot run ssh: {err}")).with_hint("install an OpenSSH client"))
}

fn open(cx: &Context, a: OpenArgs) -> Result<()> {
    let (fdir, endpoints) = endpoints(cx, &a.name)?;
    let url = endpoints.url.ok_or_else(|| {
        Error::not_found(format!("{} has no URL output", fdir.name))
            .with_hint("the pattern must output URL")
    })?;
    #[derive(Serialize)]
    struct Url<'a> {
        url: &'a str,
    }
    cx.out.data(&Url { url: &url }, || url.clone());
    if !a.print {
        let browser = std::env::var("BROWSER")
            .ok()
            .filter(|b| !b.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                (std::env::var_os("DISPLAY").is_some()
                    || std::env::var_os("WAYLAND_DISPLAY").is_some())
                .then(|| PathBuf::from("xdg-open"))
            });
        if let Some(browser) = browser {
            let _ = std::process::Command::new(browser)
                .arg(&url)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
    }
    Ok(())
}

fn lifecycle(cx: &Context, a: MachineArgs, action: PowerAction) -> Result<()> {
    let (fdir, record) = existing(cx, &a.name)?;
    if record.provider == ProviderKind::Aws {
        return Err(Error::usage(format!(
            "formation:{action} works on kvm and vagrant formations; {} runs on {}",
            fdir.name, record.provider
        )));
    }
    let _lock = FormationLock::acquire(&fdir, action.as_str())?;
    runtime()?.block_on(async {
        let provider = providers::connect(record.provider, &cx.paths, true).await?;
        provider
            .power(fdir.name.as_str(), a.machine.as_deref(), action)
            .await
            .map_err(providers::provider_error)
    })?;
    cx.out.notice(&format!(
        "{action}: {}{} done",
        fdir.name,
        a.machine
            .as_ref()
            .map(|m| format!("/{m}"))
            .unwrap_or_default()
    ));
    Ok(())
}

/// `formation:add-drive` (`Ok((size, storage))`) / `formation:remove-drive` (`Err(drive)`).
fn change_drives(
    cx: &Context,
    name: &str,
    machine: Option<&str>,
    change: std::result::Result<(u64, &str), &str>,
) -> Result<()> {
    let verb = if change.is_ok() {
        "add-drive"
    } else {
        "remove-drive"
    };
    let (fdir, _lock) = kvm_formation(cx, name, verb)?;
    let done = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let done = match change {
            Ok((size_gb, storage)) => {
                let storage = if storage == "iscsi" {
                    nepho_provider_kvm::StorageKind::Iscsi
                } else {
                    nepho_provider_kvm::StorageKind::Qcow2
                };
                kvm.add_drive(fdir.name.as_str(), machine, size_gb, storage)
                    .await
            }
            Err(drive) => kvm.remove_drive(fdir.name.as_str(), machine, drive).await,
        };
        done.map_err(providers::provider_error)
    })?;
    let value = serde_json::to_value(&done).map_err(|e| Error::Other(e.to_string()))?;
    cx.out.data(&value, || {
        let what = if change.is_ok() { "added" } else { "removed" };
        format!(
            "{}/{}: {} {what} ({} {}, guest device {})\n",
            fdir.name, done.machine, done.drive, done.storage, done.id, done.device
        )
    });
    Ok(())
}

/// `formation:resize-drive`: offline growth of one drive.
fn resize_drive(cx: &Context, a: ResizeDriveArgs) -> Result<()> {
    let (fdir, _lock) = kvm_formation(cx, &a.name, "resize-drive")?;
    let done = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        kvm.resize_drive(fdir.name.as_str(), Some(&a.machine), &a.drive, a.size_gb)
            .await
            .map_err(machine_op_error)
    })?;
    let value = serde_json::to_value(&done).map_err(|e| Error::Other(e.to_string()))?;
    cx.out.data(&value, || {
        if done.changed {
            format!(
                "{}/{}: {} grown from {:.1} to {} GiB ({} {})\n",
                fdir.name,
                done.machine,
                done.drive,
                done.previous_bytes as f64 / f64::from(1u32 << 30),
                done.size_gb,
                done.storage,
                done.id
            )
        } else {
            format!(
                "{}/{}: {} already has {} GiB\n",
                fdir.name, done.machine, done.drive, done.size_gb
            )
        }
    });
    Ok(())
}

/// An operation that needs the machine in another power state says which command gets it there.
fn machine_op_error(e: nepho_provider_kvm::MachineOpError) -> Error {
    match e {
        nepho_provider_kvm::MachineOpError::WrongState {
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
        nepho_provider_kvm::MachineOpError::Provider(e) => providers::provider_error(e),
    }
}

/// `formation:vnc`: where to point a VNC viewer; for a remote host, an ssh forward that runs
/// until Ctrl-C (or SIGTERM/SIGHUP).
fn vnc(cx: &Context, a: VncArgs) -> Result<()> {
    let (fdir, record) = existing(cx, &a.name)?;
    if record.provider != ProviderKind::Kvm {
        return Err(Error::usage(format!(
            "formation:vnc works on KVM formations; {} runs on {}",
            fdir.name, record.provider
        )));
    }
    runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let console = kvm
            .vnc(fdir.name.as_str(), a.machine.as_deref(), a.local_port)
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
        let display = &console.display;
        cx.out.data(display, || match &display.ssh {
            None => format!("{}\n", display.address),
            Some(dest) => format!(
                "{} (forwarded over ssh {dest} to port {} on host {})\n",
                display.address, display.host_port, display.host
            ),
        });
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

/// `formation:attach-nic` (`Ok(network)`) / `formation:detach-nic` (`Err(nic)`).
fn change_nics(
    cx: &Context,
    name: &str,
    machine: &str,
    change: std::result::Result<&str, &str>,
) -> Result<()> {
    let verb = if change.is_ok() {
        "attach-nic"
    } else {
        "detach-nic"
    };
    let (fdir, _lock) = kvm_formation(cx, name, verb)?;
    let done = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let done = match change {
            Ok(network) => {
                kvm.attach_nic(fdir.name.as_str(), Some(machine), network)
                    .await
            }
            Err(nic) => kvm.detach_nic(fdir.name.as_str(), Some(machine), nic).await,
        };
        done.map_err(machine_op_error)
    })?;
    let value = serde_json::to_value(&done).map_err(|e| Error::Other(e.to_string()))?;
    cx.out.data(&value, || {
        let what = if change.is_ok() {
            "attached to"
        } else {
            "detached from"
        };
        format!(
            "{}/{}: {} ({}) {what} network {}{}{}\n",
            fdir.name,
            done.machine,
            done.nic,
            done.mac,
            done.network,
            done.ip
                .as_ref()
                .map(|ip| format!(", address {ip}"))
                .unwrap_or_default(),
            if done.live {
                ""
            } else {
                " (from the next start)"
            }
        )
    });
    Ok(())
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

/// `formation:attach-iso` / `formation:detach-iso` (no ISO).
fn change_media(
    cx: &Context,
    name: &str,
    machine: Option<&str>,
    iso: Option<&std::path::Path>,
) -> Result<()> {
    let verb = if iso.is_some() {
        "attach-iso"
    } else {
        "detach-iso"
    };
    let (fdir, _lock) = kvm_formation(cx, name, verb)?;
    let change = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let done = match iso {
            Some(iso) => kvm.attach_iso(fdir.name.as_str(), machine, iso).await,
            None => kvm.detach_iso(fdir.name.as_str(), machine).await,
        };
        done.map_err(providers::provider_error)
    })?;
    let value = serde_json::to_value(&change).map_err(|e| Error::Other(e.to_string()))?;
    cx.out.data(&value, || match &change.iso {
        Some(iso) => format!(
            "{}/{}: {} attached (host {})\n",
            fdir.name,
            change.machine,
            iso.display(),
            change.host
        ),
        None => format!("{}/{}: no ISO attached\n", fdir.name, change.machine),
    });
    Ok(())
}
