//! The KVM cluster: failover and its watcher (in the foreground, or supervised in the
//! background through a lock file), migrate, rebalance, evacuate, usage and status.

use std::time::Duration;

use nepho_provider_api::{
    ClusterStatus, ClusterUsage, FailoverReport, MigrateResult, MoveMode, RebalanceReport,
};

use nepho_provider_api::{EventData, EventStatus, OperationData};

use super::{Context, runtime};
use crate::config::Paths;
use crate::engine::Journal;
use crate::error::{Error, Result};
use crate::formation::{FormationDir, FormationLock, FormationName};
use crate::output::{WatcherStarted, WatcherStatus};
use crate::providers;

/// `cluster:failover HOST`: restarts the dead host's machines elsewhere (waits until ready).
pub fn failover(cx: &Context, host: &str) -> Result<FailoverReport> {
    cx.out.notice(&format!(
        "failover: moving the machines of host {host} (waits until they are ready)"
    ));
    let report = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let ops = providers::cluster_ops(&*kvm)?;
        let data = OperationData::Failover {
            host: host.to_string(),
        };
        crate::engine::record_operation(&*cluster_journal(cx)?, data, async {
            ops.failover(host).await.map_err(providers::provider_error)
        })
        .await
    })?;
    for m in &report.machines {
        if m.status == "moved" {
            formation_event(
                cx,
                &m.formation,
                EventStatus::Succeeded,
                OperationData::Failover {
                    host: host.to_string(),
                },
                &format!(
                    "{} restarted on {}: its host {host} is down",
                    m.machine,
                    m.to.as_deref().unwrap_or("another host")
                ),
            );
        }
    }
    Ok(report)
}

/// The error a failover exits with (after its report is printed) when a machine was not moved.
pub fn all_moved(report: &FailoverReport) -> Result<()> {
    let stuck = report
        .machines
        .iter()
        .filter(|r| r.status != "moved")
        .count();
    if stuck > 0 {
        return Err(Error::Other(format!(
            "{stuck} of {} machine(s) of host {} were not moved (see REASON)",
            report.machines.len(),
            report.host
        )));
    }
    Ok(())
}

/// How `cluster:watch` watches.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Seconds between two checks of every host.
    pub interval: u64,
    /// Seconds a host must stay unreachable before its machines are moved.
    pub grace: u64,
    /// Stop after this many seconds.
    pub timeout: Option<u64>,
    /// The background watcher: the lock its parent took and passed on.
    pub lock_fd: Option<i32>,
}

/// The background watcher's lock (an `flock`: a killed watcher frees it), which also says who
/// holds it, and its log.
pub struct WatchFiles {
    lock: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl WatchFiles {
    pub fn new(cx: &Context) -> Result<WatchFiles> {
        let dir = cx.paths.state_dir.join("cluster");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Other(format!("{}: {e}", dir.display())))?;
        Ok(WatchFiles {
            lock: dir.join("watch.lock"),
            log: dir.join("watch.log"),
        })
    }

    fn open_lock(&self) -> Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.lock)
            .map_err(|e| Error::Other(format!("{}: {e}", self.lock.display())))
    }

    /// `Some(holder line)` while a watcher holds the lock.
    fn running(&self) -> Result<Option<String>> {
        let file = self.open_lock()?;
        if try_lock(&file) {
            return Ok(None); // released when `file` drops
        }
        Ok(Some(
            std::fs::read_to_string(&self.lock)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ))
    }
}

fn try_lock(file: &std::fs::File) -> bool {
    file.try_lock().is_ok()
}

/// `pid N` from the holder line.
fn holder_pid(holder: &str) -> Option<i32> {
    holder
        .split_whitespace()
        .skip_while(|w| *w != "pid")
        .nth(1)
        .and_then(|p| p.parse().ok())
}

/// `cluster:watch --status`: whether a background watcher runs, and since when.
pub fn watcher_status(cx: &Context) -> Result<WatcherStatus> {
    let files = WatchFiles::new(cx)?;
    let holder = files.running()?;
    Ok(WatcherStatus {
        running: holder.is_some(),
        pid: holder.as_deref().and_then(holder_pid),
        holder,
        log: files.log.display().to_string(),
    })
}

/// The error `--status` exits with (after printing) when no watcher runs.
pub fn watcher_running(status: &WatcherStatus) -> Result<()> {
    if status.running {
        return Ok(());
    }
    Err(Error::not_found("no background cluster watcher runs")
        .with_hint("start one with `nepho cluster:watch --detach`"))
}

/// `cluster:watch --stop`: SIGTERM, then SIGKILL after 20 s.
pub fn stop_watcher(cx: &Context) -> Result<()> {
    let files = WatchFiles::new(cx)?;
    let Some(holder) = files.running()? else {
        cx.out.notice("no background watcher runs");
        return Ok(());
    };
    let pid = holder_pid(&holder)
        .ok_or_else(|| Error::Other(format!("cannot tell the watcher's pid from `{holder}`")))?;
    // SAFETY: kill(2) takes plain integers; the pid is the one the watcher wrote under its lock.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files.running()?.is_some() {
        if std::time::Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            std::thread::sleep(std::time::Duration::from_millis(500));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if files.running()?.is_some() {
        return Err(Error::Other(format!(
            "the watcher (pid {pid}) did not stop"
        )));
    }
    cx.out
        .notice(&format!("stopped the background watcher (pid {pid})"));
    Ok(())
}

/// Starts the background watcher: takes the lock here, hands it to the child (own session,
/// output appended to the log), and names the child in the lock file.
pub fn detach_watcher(cx: &Context, a: &WatchOptions) -> Result<WatcherStarted> {
    use std::io::Write;
    // Fail now, not in the background, when there is no cluster to watch.
    runtime()?.block_on(providers::kvm(&cx.paths))?;
    let files = WatchFiles::new(cx)?;
    let mut lock = files.open_lock()?;
    if !try_lock(&lock) {
        let holder = std::fs::read_to_string(&files.lock).unwrap_or_default();
        return Err(Error::conflict(format!(
            "a background cluster watcher already runs ({})",
            holder.trim()
        ))
        .with_hint("`nepho cluster:watch --stop` stops it"));
    }
    let fd = crate::formation::inheritable_fd(&lock)
        .map_err(|_| Error::Other("cannot pass the watcher lock on".into()))?;
    // Logs can quote provider output: private, as the rest of the state is.
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&files.log)
        .map_err(|e| Error::Other(format!("{}: {e}", files.log.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the nepho binary: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["-o", "json", "cluster", "watch", "--interval"])
        .arg(a.interval.to_string())
        .arg("--grace")
        .arg(a.grace.to_string())
        .arg("--lock-fd")
        .arg(fd.to_string());
    if let Some(t) = a.timeout {
        cmd.arg("--timeout").arg(t.to_string());
    }
    if cx.paths.config_file.exists() {
        cmd.env("NEPHO_CONFIG", &cx.paths.config_file);
    }
    crate::util::in_own_session(&mut cmd, log)
        .map_err(|e| Error::Other(format!("{}: {e}", files.log.display())))?;
    let child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start the watcher: {e}")))?;
    lock.set_len(0).ok();
    let _ = writeln!(
        lock,
        "cluster watcher pid {} since {} (interval {} s, grace {} s)",
        child.id(),
        crate::util::now_rfc3339(),
        a.interval,
        a.grace
    );
    cx.out.notice(&format!(
        "background watcher started (pid {}); log {}; `nepho cluster:watch --stop` stops it",
        child.id(),
        files.log.display()
    ));
    Ok(WatcherStarted {
        pid: child.id(),
        log: files.log.display().to_string(),
    })
}

/// `cluster:watch`: `cluster:failover` for every host that stays down longer than the grace
/// period. Each failover's report goes to `show` as it happens.
pub fn watch(cx: &Context, a: &WatchOptions, show: &dyn Fn(&FailoverReport)) -> Result<()> {
    let _lock = a
        .lock_fd
        .map(|fd| {
            crate::formation::adopt_locked_fd(fd)
                .ok_or_else(|| Error::Other(format!("--lock-fd {fd} is not the watcher lock")))
        })
        .transpose()?;
    if a.lock_fd.is_some() {
        eprintln!(
            "{} cluster watcher pid {} started",
            crate::util::now_rfc3339(),
            std::process::id()
        );
    }
    let runtime = runtime()?;
    runtime.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let cluster = providers::cluster_ops(&*kvm)?;
        let names = cluster.hosts();
        cx.out.notice(&format!(
            "watching hosts {} every {} s; failover after {} s unreachable",
            names.join(", "),
            a.interval,
            a.grace
        ));
        let started = std::time::Instant::now();
        let mut watch = nepho_provider_api::Watch::default();
        loop {
            for report in cluster
                .watch_round(&mut watch, Duration::from_secs(a.grace))
                .await
            {
                match report {
                    Ok(report) => {
                        // The background watcher's log gets a time on every line.
                        let when = if a.lock_fd.is_some() {
                            format!("{} ", crate::util::now_rfc3339())
                        } else {
                            String::new()
                        };
                        cx.out.notice(&format!(
                            "{when}host {} is down: failover done",
                            report.host
                        ));
                        show(&report);
                    }
                    Err(e) => cx.out.warn(&format!(
                        "failover failed: {}",
                        providers::provider_error(e)
                    )),
                }
            }
            if a.timeout.is_some_and(|t| started.elapsed().as_secs() >= t) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(a.interval.max(1))).await;
        }
    })
}

/// `cluster:migrate FORMATION MACHINE [--to HOST] [--live]`: offline, or live (the machine
/// keeps running; refused unless it runs and every disk is shared).
pub fn migrate(
    cx: &Context,
    formation: &str,
    machine: &str,
    to: Option<&str>,
    mode: MoveMode,
) -> Result<MigrateResult> {
    let to_host = to.map(|t| format!(" to host {t}")).unwrap_or_default();
    cx.out.notice(&match mode {
        MoveMode::Live => {
            format!("migrate: {machine} of {formation} moves live{to_host}: it keeps running")
        }
        MoveMode::Offline => {
            format!("migrate: {machine} of {formation} goes offline while its disks move{to_host}")
        }
    });
    let _held = lock_if_known(&cx.paths, formation, "migrate")?;
    let moved = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let ops = providers::cluster_ops(&*kvm)?;
        let data = OperationData::Migrate {
            formation: formation.to_string(),
            machine: machine.to_string(),
            from: "its host".into(),
            to: to.unwrap_or("the host with most room").to_string(),
            live: mode == MoveMode::Live,
        };
        formation_event(
            cx,
            formation,
            EventStatus::Started,
            data.clone(),
            &data.to_string(),
        );
        let journal = cluster_journal(cx)?;
        let moved = crate::engine::record_operation(&journal, data.clone(), async {
            ops.migrate(formation, machine, to, mode)
                .await
                .map_err(providers::provider_error)
        })
        .await;
        match &moved {
            Ok(m) => note_moves(cx, std::slice::from_ref(m)),
            Err(e) => formation_event(
                cx,
                formation,
                EventStatus::Failed,
                data.clone(),
                &format!("{data} failed: {e}"),
            ),
        }
        moved
    })?;
    Ok(moved)
}

/// The formation's lock while the cluster moves one of its machines, when this home has the
/// formation (one found on the cluster alone has no local lock): a create, update, destroy
/// or machine change of it is not running, and none starts before the move is done. Busy:
/// exit 6, naming who holds it.
fn lock_if_known(paths: &Paths, formation: &str, verb: &str) -> Result<Option<FormationLock>> {
    let Ok(name) = FormationName::parse(formation) else {
        return Ok(None);
    };
    let fdir = FormationDir::new(paths, &name);
    if !fdir.record_file().exists() {
        return Ok(None);
    }
    FormationLock::acquire(&fdir, verb).map(Some)
}

/// What a rebalance or evacuation holds while it moves a machine: see [`lock_if_known`].
fn hold(cx: &Context, verb: &'static str) -> impl Fn(&str) -> HoldResult + Send + Sync + use<> {
    let paths = cx.paths.clone();
    move |formation: &str| match lock_if_known(&paths, formation, verb) {
        Ok(lock) => Ok(Box::new(lock) as Box<dyn std::any::Any + Send>),
        Err(e) => Err(e.to_string()),
    }
}

type HoldResult = std::result::Result<Box<dyn std::any::Any + Send>, String>;

/// The cluster's own journal (`<state>/cluster/journal.ndjson`): failovers, migrations,
/// rebalances and evacuations, as `cluster:events` shows them.
fn cluster_journal(cx: &Context) -> Result<std::sync::Arc<Journal>> {
    Ok(Journal::open_cluster(&cx.paths.state_dir)?)
}

/// One event in a formation's journal (when this home has the formation), for a change the
/// cluster made to its machines.
fn formation_event(
    cx: &Context,
    formation: &str,
    status: EventStatus,
    data: OperationData,
    message: &str,
) {
    let Ok(name) = FormationName::parse(formation) else {
        return;
    };
    let fdir = FormationDir::new(&cx.paths, &name);
    if !fdir.journal_file().exists() {
        return;
    }
    if let Ok(journal) = Journal::open(&fdir.journal_file(), formation, fdir.secret_values()) {
        journal.record(
            None,
            data.kind(),
            status,
            message,
            None,
            Some(EventData::Operation(data)),
        );
    }
}

/// Each machine a migrate, rebalance or evacuate moved, in its formation's journal.
fn note_moves(cx: &Context, moves: &[MigrateResult]) {
    for m in moves.iter().filter(|m| m.status == "moved") {
        let data = OperationData::Migrate {
            formation: m.formation.clone(),
            machine: m.machine.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            live: m.mode == MoveMode::Live,
        };
        formation_event(
            cx,
            &m.formation,
            EventStatus::Succeeded,
            data.clone(),
            &format!("{data}: done"),
        );
    }
}

/// `cluster:events`: the cluster journal, oldest first.
pub fn events(
    cx: &Context,
    since: u64,
    show: &mut dyn FnMut(&nepho_provider_api::Event),
) -> Result<()> {
    let path = crate::engine::cluster_journal_path(&cx.paths.state_dir);
    if !path.exists() {
        return Ok(());
    }
    for e in crate::engine::journal::read(&path)? {
        if e.seq >= since {
            show(&e);
        }
    }
    Ok(())
}

/// `cluster:rebalance [--dry-run]`.
pub fn rebalance(cx: &Context, dry_run: bool, max_moves: usize) -> Result<RebalanceReport> {
    let report = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let ops = providers::cluster_ops(&*kvm)?;
        let hold = hold(cx, "rebalance");
        let rebalance = async {
            ops.rebalance(dry_run, max_moves, &hold)
                .await
                .map_err(providers::provider_error)
        };
        if dry_run {
            return rebalance.await;
        }
        crate::engine::record_operation(
            &*cluster_journal(cx)?,
            OperationData::Rebalance {},
            rebalance,
        )
        .await
    })?;
    if !dry_run {
        note_moves(cx, &report.moves);
    }
    Ok(report)
}

/// `cluster:evacuate HOST [--dry-run]`.
pub fn evacuate(cx: &Context, host: &str, dry_run: bool) -> Result<RebalanceReport> {
    let report = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        let ops = providers::cluster_ops(&*kvm)?;
        let hold = hold(cx, "evacuate");
        let evacuate = async {
            ops.evacuate(host, dry_run, &hold)
                .await
                .map_err(providers::provider_error)
        };
        if dry_run {
            return evacuate.await;
        }
        let data = OperationData::Evacuate {
            host: host.to_string(),
        };
        crate::engine::record_operation(&*cluster_journal(cx)?, data, evacuate).await
    })?;
    if !dry_run {
        note_moves(cx, &report.moves);
    }
    Ok(report)
}

/// The error a rebalance/evacuate exits with (after printing) when a move failed or found no room.
pub fn moves_done(report: &RebalanceReport) -> Result<()> {
    let stuck = report
        .moves
        .iter()
        .filter(|m| matches!(m.status.as_str(), "failed" | "no-room" | "busy"))
        .count();
    if stuck > 0 {
        return Err(Error::Other(format!(
            "{stuck} of {} move(s) failed (put back), found no room or found their formation busy (see REASON)",
            report.moves.len()
        )));
    }
    Ok(())
}

/// `cluster:usage [--formation F]`.
pub fn usage(cx: &Context, formation: Option<&str>) -> Result<ClusterUsage> {
    let report = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        providers::cluster_ops(&*kvm)?
            .usage(formation)
            .await
            .map_err(providers::provider_error)
    })?;
    for host in &report.unreachable {
        cx.out.warn(&format!(
            "host {host} does not answer: its machines are missing"
        ));
    }
    Ok(report)
}

/// `cluster:status`: hosts, capacity, usage and the machines on each, read from the hosts.
pub fn status(cx: &Context) -> Result<ClusterStatus> {
    runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        providers::cluster_ops(&*kvm)?
            .status()
            .await
            .map_err(providers::provider_error)
    })
}
