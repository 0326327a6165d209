//! Formations: build (create, update, destroy through a nanny, or in this process), watch,
//! list, describe, cancel, and reach them (ssh, URL). Builds run in a nanny (see
//! `crate::nanny`); the CLI prints what these return.

use std::path::PathBuf;
use std::time::Duration;

use nepho_provider_api::{Event, EventStatus, FormationSpec, PlannedChange, ProviderKind};

use super::{Context, Prompter, runtime};
use crate::engine::{Operation, RunOptions};
use crate::error::{Error, Result};
use crate::formation::{
    self, FormationDir, FormationLock, FormationName, FormationRecord, RecordState,
};
use crate::inventory::{self, DestroyTarget};
use crate::nanny::{self, client, progress};
use crate::output::{
    self, CancelRequested, FormationDescription, FormationListItem, OperationResult,
    OperationStatus,
};
use crate::providers;
use crate::scenario::ValueSources;
use crate::scenario::render;
use crate::secret::StoredSecrets;

/// How a build runs: in a nanny followed from here (the default), in this process, or started
/// and left to run.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// Run the build in this process instead of a detached nanny.
    pub foreground: bool,
    /// Start the build and return at once.
    pub detach: bool,
    /// Cancel (and roll back) a build that runs longer.
    pub timeout: Option<Duration>,
}

/// What a create, update or destroy came to (failures are errors).
#[derive(Debug)]
pub enum BuildOutcome {
    /// `--dry-run`: what would change.
    Preview(Vec<PlannedChange>),
    /// `--detach`: the nanny runs it.
    Started(OperationResult),
    /// Followed to its end (succeeded) or detached from with Ctrl-C. `drawn`: the progress
    /// display on stderr ended with the result.
    Finished {
        result: OperationResult,
        drawn: bool,
    },
    /// Nothing to do (a destroy of a formation that is already gone).
    Nothing,
}

/// `formation:create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// CLOUDLET[/SCENARIO].
    pub scenario: Option<String>,
    pub name: String,
    pub values: ValueSources,
    pub dry_run: bool,
    pub resume: bool,
    pub no_rollback: bool,
    pub replace: bool,
    pub build: Build,
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

pub(crate) fn existing(cx: &Context, name: &str) -> Result<(FormationDir, FormationRecord)> {
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
pub struct KeptSecrets {
    stored: StoredSecrets,
    lost: Vec<String>,
}

impl KeptSecrets {
    pub fn of(cx: &Context, fdir: &FormationDir) -> KeptSecrets {
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
pub fn build_spec(
    cx: &Context,
    prompt: &dyn Prompter,
    reference: &str,
    name: &FormationName,
    mut sources: ValueSources,
    kept: KeptSecrets,
) -> Result<FormationSpec> {
    // An update keeps the secret values given before, as their own layer under -f and --set.
    sources.stored = kept.stored;
    let super::scenario::Rendered {
        installed,
        scenario,
        merged,
        file,
        ..
    } = super::scenario::render_with(
        cx,
        prompt,
        reference,
        name.as_str(),
        sources,
        &kept.lost,
        true,
    )?;
    render::check_rendered(scenario.provider, &file, &scenario.pattern.path)?;
    let fdir = FormationDir::new(&cx.paths, name);
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

pub fn create(cx: &Context, prompt: &dyn Prompter, a: &CreateOptions) -> Result<BuildOutcome> {
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
        Some(r) if ended_badly(&r) && (a.replace || offer_replace(cx, prompt, &r)?) => {
            cx.out.notice(&format!(
                "removing what the {} create of {name} left, then creating it anew",
                format!("{:?}", r.state).to_lowercase()
            ));
            let foreground = Build {
                foreground: true,
                ..Build::default()
            };
            destroy(cx, prompt, name.as_str(), true, &foreground)?;
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
    let spec = build_spec(
        cx,
        prompt,
        &reference,
        &name,
        a.values.clone(),
        KeptSecrets::default(),
    )?;
    if a.dry_run {
        return preview(cx, &spec);
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

/// `--dry-run`: the provider's change set; nothing changes.
fn preview(cx: &Context, spec: &FormationSpec) -> Result<BuildOutcome> {
    let rt = runtime()?;
    let changes = rt.block_on(async {
        let provider = providers::connect(spec.provider, &cx.paths, true).await?;
        provider
            .preview(spec)
            .await
            .map_err(providers::provider_error)
    })?;
    Ok(BuildOutcome::Preview(changes))
}

#[allow(clippy::too_many_arguments)]
fn launch(
    cx: &Context,
    fdir: &FormationDir,
    provider: ProviderKind,
    op: Operation,
    resume: bool,
    rollback: bool,
    build: &Build,
    lock: FormationLock,
) -> Result<BuildOutcome> {
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
            return Ok(BuildOutcome::Started(OperationResult::new(
                fdir,
                op,
                OperationStatus::Detached,
                provider,
            )));
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
    report(fdir, provider, op, followed?, drawn)
}

/// What a followed build came to: the result to show, or the error that says why not.
fn report(
    fdir: &FormationDir,
    provider: ProviderKind,
    op: Operation,
    followed: client::Followed,
    // The progress display already ended with the result on this terminal.
    drawn: bool,
) -> Result<BuildOutcome> {
    let name = &fdir.name;
    let status = match followed {
        client::Followed::Finished(EventStatus::Succeeded) => OperationStatus::Succeeded,
        client::Followed::Detached => OperationStatus::Detached,
        client::Followed::Finished(EventStatus::Cancelled) => return Err(Error::Interrupted),
        client::Followed::Lost => {
            return Err(Error::Provider {
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
            });
        }
        client::Followed::Finished(_) => {
            let last = crate::engine::journal::read(&fdir.journal_file())?
                .into_iter()
                .rev()
                .find(crate::engine::journal::is_final)
                .map(|e| e.message);
            return Err(Error::Provider {
                message: last.unwrap_or_else(|| format!("{} of {name} failed", op.as_str())),
                hint: Some(format!("see `nepho formation:events {name}`")),
            });
        }
    };
    Ok(BuildOutcome::Finished {
        result: OperationResult::new(fdir, op, status, provider),
        drawn,
    })
}

/// `formation:watch`: re-attaches to the running build, or replays the last one.
pub fn watch(cx: &Context, name: &str) -> Result<BuildOutcome> {
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
    report(&fdir, record.provider, op, followed, drawn)
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

/// `formation:events`: the journal from `since`, each event to `show`; with `follow`, the
/// running build's events as they come.
pub fn events(
    cx: &Context,
    name: &str,
    follow: bool,
    since: u64,
    show: &mut dyn FnMut(&Event),
) -> Result<()> {
    // The journal is readable without the record (lost or corrupt): it is a file of its own.
    let fdir = FormationDir::new(&cx.paths, &FormationName::parse(name)?);
    if !fdir.journal_file().exists() {
        existing(cx, name)?;
    }
    let mut last = 0;
    for e in read_journal(cx, &fdir)? {
        if e.seq >= since {
            show(&e);
            last = e.seq;
        }
    }
    if follow && formation::is_busy(&fdir) {
        let socket = formation::socket_path(&cx.paths, &fdir.name);
        runtime()?.block_on(client::follow(
            &socket,
            &fdir.journal_file(),
            last.max(since.saturating_sub(1)) + 1,
            Duration::from_secs(5),
            &|| formation::is_busy(&fdir),
            show,
        ))?;
    }
    Ok(())
}

/// `formation:update`: re-renders the formation from its cloudlet with the values given now
/// (secrets given before are kept) and applies the changes.
pub fn update(
    cx: &Context,
    prompt: &dyn Prompter,
    name: &str,
    values: &ValueSources,
    dry_run: bool,
    build: &Build,
) -> Result<BuildOutcome> {
    let (fdir, record) = existing(cx, name)?;
    if record.state == RecordState::Destroyed {
        return Err(Error::not_found(format!(
            "formation {} was destroyed",
            fdir.name
        )));
    }
    let reference = format!("{}/{}", record.cloudlet, record.scenario);
    let kept = KeptSecrets::of(cx, &fdir);
    let spec = build_spec(cx, prompt, &reference, &fdir.name, values.clone(), kept)?;
    // Refused before the formation's spec is replaced: a bad update changes nothing.
    runtime()?.block_on(async {
        let provider = providers::connect(spec.provider, &cx.paths, true).await?;
        provider
            .validate(&spec)
            .await
            .map_err(providers::provider_error)
    })?;
    if dry_run {
        return preview(cx, &spec);
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
        build,
        lock,
    )
}

/// `formation:destroy`: asks first unless `yes` (refuses without a terminal to ask on).
pub fn destroy(
    cx: &Context,
    prompt: &dyn Prompter,
    name: &str,
    yes: bool,
    build: &Build,
) -> Result<BuildOutcome> {
    // A successful destroy removes the formation's local state, so destroying it again finds
    // it nowhere: the formation is already gone, which is what was asked.
    let name = FormationName::parse(name)?;
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
            return Ok(BuildOutcome::Nothing);
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
    if !yes {
        confirm_destroy(cx, prompt, &located)?;
    }
    launch(
        cx,
        &located.fdir,
        located.provider,
        Operation::Destroy,
        false,
        false,
        build,
        lock,
    )
}

/// On a terminal, offers to clean up a formation whose create failed and create it anew.
fn offer_replace(cx: &Context, prompt: &dyn Prompter, r: &FormationRecord) -> Result<bool> {
    if !cx.interactive {
        return Ok(false);
    }
    prompt.confirm(&format!(
        "{} exists from a {} create ({}/{}): clean it up and create it anew?",
        r.name,
        format!("{:?}", r.state).to_lowercase(),
        r.cloudlet,
        r.scenario
    ))
}

/// Shows what a destroy removes and asks; without a terminal to ask on, refuses (exit 2) and
/// names `--yes`, as `terraform destroy` does.
fn confirm_destroy(
    cx: &Context,
    prompt: &dyn Prompter,
    located: &inventory::Located,
) -> Result<()> {
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
    let yes = prompt.confirm(&format!("Destroy {name}?"))?;
    if yes {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{name} was not destroyed (not confirmed)"
        )))
    }
}

/// `formation:cancel`: asks the running build to stop (it rolls back).
pub fn cancel(cx: &Context, name: &str) -> Result<CancelRequested> {
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
    Ok(CancelRequested {
        name: fdir.name.to_string(),
        resume: format!("nepho formation:create --resume --name {}", fdir.name),
    })
}

/// `formation:list`: what the providers report, merged with local records of builds in
/// flight; `unreachable` is the error to exit with after printing when no provider answered.
pub struct FormationList {
    pub items: Vec<FormationListItem>,
    pub unreachable: Option<Error>,
}

/// `formation:list`.
pub fn list(cx: &Context) -> Result<FormationList> {
    let listing = runtime()?.block_on(inventory::list(&cx.paths))?;
    let nobody_answered = listing.answered == 0 && !listing.unreachable.is_empty();
    for w in &listing.warnings {
        // With no provider answering, the error below says it once.
        if !(nobody_answered && w.starts_with("cannot reach ")) {
            cx.out.warn(w);
        }
    }
    let unreachable = nobody_answered.then(|| {
        let why: Vec<String> = listing
            .unreachable
            .iter()
            .map(|(kind, why)| format!("cannot reach {kind}: {why}"))
            .collect();
        Error::Provider {
            message: why.join("; "),
            hint: Some(
                "check the provider's endpoint, credentials and network (`nepho register`)".into(),
            ),
        }
    });
    Ok(FormationList {
        items: listing.items,
        unreachable,
    })
}

/// `formation:describe`: the provider's view (status, resources, outputs) and the journal's
/// recent events.
pub fn describe(cx: &Context, name: &str) -> Result<FormationDescription> {
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
    Ok(d)
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

/// `formation:ssh`: the arguments of the ssh command that reaches `machine` (default: the
/// primary one) and runs `command` there (none: a login shell).
pub fn ssh_args(
    cx: &Context,
    name: &str,
    machine: Option<&str>,
    command: &[String],
) -> Result<Vec<String>> {
    let (fdir, endpoints) = endpoints(cx, name)?;
    let target = match machine {
        Some(m) => endpoints
            .ssh
            .iter()
            .find(|e| e.machine == m)
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
    if !command.is_empty() {
        args.push("--".into());
        args.extend(command.iter().cloned());
    }
    Ok(args)
}

/// Replaces this process with `ssh ARGS`; returns only when ssh cannot run.
pub fn exec_ssh(args: &[String]) -> Error {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new("ssh").args(args).exec();
    Error::unavailable(format!("cannot run ssh: {err}")).with_hint("install an OpenSSH client")
}

/// `formation:open`: the formation's URL.
pub fn url(cx: &Context, name: &str) -> Result<String> {
    let (fdir, endpoints) = endpoints(cx, name)?;
    endpoints.url.ok_or_else(|| {
        Error::not_found(format!("{} has no URL output", fdir.name))
            .with_hint("the pattern must output URL")
    })
}

/// Opens `url` in `$BROWSER`, or with xdg-open on a desktop; nothing when there is neither.
pub fn open_in_browser(url: &str) {
    let browser = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            (std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some())
                .then(|| PathBuf::from("xdg-open"))
        });
    if let Some(browser) = browser {
        let _ = std::process::Command::new(browser)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// The nanny (`nepho __nanny FORMATION OP --lock-fd N`): runs `op` of `formation` with the lock
/// its parent passed on, in the context the build started in.
pub fn nanny(formation: &str, op: &str, lock_fd: i32, resume: bool, rollback: bool) -> Result<()> {
    let context = std::env::var("NEPHO_CONTEXT").ok();
    let paths = crate::config::Paths::discover(None)?.with_context(context.as_deref())?;
    match nanny::nanny_main(&paths, formation, op, lock_fd, resume, rollback)? {
        crate::engine::Outcome::Succeeded => Ok(()),
        crate::engine::Outcome::Cancelled => Err(Error::Interrupted),
        crate::engine::Outcome::Failed(e) => Err(providers::provider_error(e)),
    }
}
