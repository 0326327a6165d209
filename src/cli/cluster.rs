//! `cluster:*` (KVM): failover and the watcher (foreground or in the background), migrate,
//! rebalance, evacuate, usage, and `cluster:status`.

use super::Context;
use super::formation::runtime;
use crate::error::{Error, Result};
use crate::output;
use crate::providers;

fn render(report: &nepho_provider_kvm::FailoverReport) -> String {
    if report.machines.is_empty() {
        return format!(
            "host {} had no nepho machines (none recorded on the shared storage)\n",
            report.host
        );
    }
    let mut t = output::table(&[
        "FORMATION",
        "MACHINE",
        "FROM",
        "TO",
        "STATUS",
        "ADDRESS",
        "SECONDS",
        "REASON",
    ]);
    for r in &report.machines {
        t.add_row(vec![
            r.formation.clone(),
            r.machine.clone(),
            r.from.clone(),
            r.to.clone().unwrap_or_default(),
            r.status.clone(),
            r.address.clone().unwrap_or_default(),
            format!("{:.1}", r.seconds),
            r.reason.clone().unwrap_or_default(),
        ]);
    }
    output::render_table(&t)
}

pub fn failover(cx: &Context, host: &str) -> Result<()> {
    let runtime = runtime()?;
    cx.out.notice(&format!(
        "failover: moving the machines of host {host} (waits until they are ready)"
    ));
    let results = runtime.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        kvm.failover(host).await.map_err(providers::provider_error)
    })?;
    let report = nepho_provider_kvm::FailoverReport {
        host: host.to_string(),
        machines: results.clone(),
    };
    cx.out.data(&report, || render(&report));
    let stuck = results.iter().filter(|r| r.status != "moved").count();
    if stuck > 0 {
        return Err(Error::Other(format!(
            "{stuck} of {} machine(s) of host {host} were not moved (see REASON)",
            results.len()
        )));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Seconds between two checks of every host
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    /// Seconds a host must stay unreachable before its machines are moved
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
    /// Stop after this many seconds (default: run until interrupted)
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Run in the background, in a session of its own (it survives the terminal); one per nepho
    /// home. Reports go to `<state>/cluster/watch.log` (JSON)
    #[arg(long, conflicts_with_all = ["status", "stop"])]
    pub detach: bool,
    /// Whether a background watcher runs, and since when (exit 3 when none)
    #[arg(long, conflicts_with = "stop")]
    pub status: bool,
    /// Stop the background watcher
    #[arg(long)]
    pub stop: bool,
    /// The background watcher itself: adopts the lock passed by `--detach`
    #[arg(long, hide = true)]
    pub lock_fd: Option<i32>,
}

/// The background watcher's lock (an `flock`: a killed watcher frees it), which also says who
/// holds it, and its log.
struct WatchFiles {
    lock: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl WatchFiles {
    fn new(cx: &Context) -> Result<WatchFiles> {
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
    use std::os::fd::AsRawFd;
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// `pid N` from the holder line.
fn holder_pid(holder: &str) -> Option<i32> {
    holder
        .split_whitespace()
        .skip_while(|w| *w != "pid")
        .nth(1)
        .and_then(|p| p.parse().ok())
}

/// What `cluster:watch --status` prints (`-o json`).
#[derive(Debug, serde::Serialize)]
struct WatcherStatus {
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    log: String,
}

fn watcher_status(cx: &Context, files: &WatchFiles) -> Result<()> {
    let holder = files.running()?;
    let status = WatcherStatus {
        running: holder.is_some(),
        pid: holder.as_deref().and_then(holder_pid),
        holder: holder.clone(),
        log: files.log.display().to_string(),
    };
    cx.out.data(&status, || match &holder {
        Some(h) => format!("{h}\nlog: {}\n", files.log.display()),
        None => "no background watcher runs\n".to_string(),
    });
    if holder.is_none() {
        return Err(Error::not_found("no background cluster watcher runs")
            .with_hint("start one with `nepho cluster:watch --detach`"));
    }
    Ok(())
}

fn stop_watcher(cx: &Context, files: &WatchFiles) -> Result<()> {
    let Some(holder) = files.running()? else {
        cx.out.notice("no background watcher runs");
        return Ok(());
    };
    let pid = holder_pid(&holder)
        .ok_or_else(|| Error::Other(format!("cannot tell the watcher's pid from `{holder}`")))?;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files.running()?.is_some() {
        if std::time::Instant::now() > deadline {
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
fn detach_watcher(cx: &Context, a: &WatchArgs, files: &WatchFiles) -> Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut lock = files.open_lock()?;
    if !try_lock(&lock) {
        let holder = std::fs::read_to_string(&files.lock).unwrap_or_default();
        return Err(Error::conflict(format!(
            "a background cluster watcher already runs ({})",
            holder.trim()
        ))
        .with_hint("`nepho cluster:watch --stop` stops it"));
    }
    let fd = lock.as_raw_fd();
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(Error::Other("cannot pass the watcher lock on".into()));
    }
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
    #[derive(serde::Serialize)]
    struct Started {
        pid: u32,
        log: String,
    }
    let started = Started {
        pid: child.id(),
        log: files.log.display().to_string(),
    };
    cx.out.data(&started, || format!("{}\n", started.pid));
    Ok(())
}

/// The background watcher adopts the lock its parent took (re-locking the same open file
/// succeeds; anything else means the descriptor is not the lock).
fn adopt_lock(fd: i32) -> Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    if !try_lock(&file) {
        return Err(Error::Other(format!(
            "--lock-fd {fd} is not the watcher lock"
        )));
    }
    Ok(file)
}

/// `cluster:watch`: `cluster:failover` for every host that stays down longer than the grace
/// period. Prints a report per failover (table, or one JSON document each).
pub fn watch(cx: &Context, a: &WatchArgs) -> Result<()> {
    if a.status || a.stop || a.detach {
        let files = WatchFiles::new(cx)?;
        if a.status {
            return watcher_status(cx, &files);
        }
        if a.stop {
            return stop_watcher(cx, &files);
        }
        // Fail now, not in the background, when there is no cluster to watch.
        runtime()?.block_on(providers::kvm(&cx.paths))?;
        return detach_watcher(cx, a, &files);
    }
    let _lock = a.lock_fd.map(adopt_lock).transpose()?;
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
        let names: Vec<String> = kvm.cluster().hosts.iter().map(|h| h.name.clone()).collect();
        cx.out.notice(&format!(
            "watching hosts {} every {} s; failover after {} s unreachable",
            names.join(", "),
            a.interval,
            a.grace
        ));
        let started = std::time::Instant::now();
        let mut watch = nepho_provider_kvm::Watch::default();
        loop {
            for report in kvm
                .watch_round(&mut watch, std::time::Duration::from_secs(a.grace))
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
                        cx.out.data(&report, || render(&report));
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
            tokio::time::sleep(std::time::Duration::from_secs(a.interval.max(1))).await;
        }
    })
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The formation
    pub formation: String,
    /// The machine to move (its name in the formation, as describe lists it)
    pub machine: String,
    /// The destination host (default: the allocator picks one of the other hosts)
    #[arg(long)]
    pub to: Option<String>,
}

fn render_moves(moves: &[nepho_provider_kvm::MigrateResult]) -> String {
    let mut t = output::table(&[
        "FORMATION",
        "MACHINE",
        "FROM",
        "TO",
        "MEMORY",
        "STATUS",
        "ADDRESS",
        "COPIED",
        "SECONDS",
        "REASON",
    ]);
    for m in moves {
        t.add_row(vec![
            m.formation.clone(),
            m.machine.clone(),
            m.from.clone(),
            m.to.clone(),
            format!("{} MiB", m.memory_mb),
            m.status.clone(),
            m.address.clone().unwrap_or_default(),
            format!("{:.1} MiB", m.copied_bytes as f64 / 1048576.0),
            format!("{:.1}", m.seconds),
            m.reason.clone().unwrap_or_default(),
        ]);
    }
    output::render_table(&t)
}

/// `cluster:migrate FORMATION MACHINE [--to HOST]`.
pub fn migrate(cx: &Context, a: &MigrateArgs) -> Result<()> {
    cx.out.notice(&format!(
        "migrate: {} of {} goes offline while its disks move{}",
        a.machine,
        a.formation,
        a.to.as_deref()
            .map(|t| format!(" to host {t}"))
            .unwrap_or_default()
    ));
    let result = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        kvm.migrate(&a.formation, &a.machine, a.to.as_deref())
            .await
            .map_err(providers::provider_error)
    })?;
    cx.out
        .data(&result, || render_moves(std::slice::from_ref(&result)));
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RebalanceArgs {
    /// Print the moves without making them
    #[arg(long)]
    pub dry_run: bool,
    /// Make at most this many moves
    #[arg(long, default_value_t = 10)]
    pub max_moves: usize,
}

/// `cluster:rebalance [--dry-run]`.
pub fn rebalance(cx: &Context, a: &RebalanceArgs) -> Result<()> {
    let report = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        kvm.rebalance(a.dry_run, a.max_moves)
            .await
            .map_err(providers::provider_error)
    })?;
    report_moves(
        cx,
        &report,
        a.dry_run,
        "balanced: no move would narrow the gap between the hosts",
    )
}

#[derive(Debug, clap::Args)]
pub struct EvacuateArgs {
    /// The host to empty (its name in the cluster file); it must answer
    pub host: String,
    /// Print the moves without making them
    #[arg(long)]
    pub dry_run: bool,
}

/// `cluster:evacuate HOST [--dry-run]`.
pub fn evacuate(cx: &Context, a: &EvacuateArgs) -> Result<()> {
    let report = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        kvm.evacuate(&a.host, a.dry_run)
            .await
            .map_err(providers::provider_error)
    })?;
    report_moves(cx, &report, a.dry_run, "the host has no nepho machines")
}

/// Prints a rebalance/evacuate report; an error when a move failed or found no room.
fn report_moves(
    cx: &Context,
    report: &nepho_provider_kvm::RebalanceReport,
    dry_run: bool,
    nothing: &str,
) -> Result<()> {
    cx.out.data(report, || {
        let spread = |m: &std::collections::BTreeMap<String, f64>| {
            m.iter()
                .map(|(h, f)| format!("{h} {:.0}%", f * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!("memory used before: {}\n", spread(&report.before));
        if report.moves.is_empty() {
            text.push_str(nothing);
            text.push('\n');
        } else {
            text.push_str(&format!(
                "memory used after{}: {}\n",
                if dry_run { " (planned)" } else { "" },
                spread(&report.after)
            ));
            text.push_str(&render_moves(&report.moves));
        }
        text
    });
    let stuck = report
        .moves
        .iter()
        .filter(|m| m.status == "failed" || m.status == "no-room")
        .count();
    if stuck > 0 {
        return Err(Error::Other(format!(
            "{stuck} of {} move(s) failed (put back) or found no room (see REASON)",
            report.moves.len()
        )));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Only this formation's machines
    #[arg(long)]
    pub formation: Option<String>,
}

fn bytes(b: Option<u64>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        Some(b) if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
    }
}

/// `cluster:usage [--formation F]`.
pub fn usage(cx: &Context, a: &UsageArgs) -> Result<()> {
    let report = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        kvm.usage(a.formation.as_deref())
            .await
            .map_err(providers::provider_error)
    })?;
    for host in &report.unreachable {
        cx.out.warn(&format!(
            "host {host} does not answer: its machines are missing"
        ));
    }
    cx.out.data(&report, || {
        let mut disks = output::table(&[
            "FORMATION",
            "MACHINE",
            "DISK",
            "HOST",
            "EXPORT",
            "SIZE",
            "ALLOCATED",
            "READ",
            "WRITTEN",
            "SESSIONS",
        ]);
        for d in &report.disks {
            disks.add_row(vec![
                d.formation.clone(),
                d.machine.clone(),
                d.disk.clone(),
                d.host.clone(),
                if d.kind == "iscsi" {
                    format!("iscsi {}", d.export)
                } else {
                    d.export.clone()
                },
                bytes(d.capacity_bytes),
                bytes(d.allocated_bytes),
                bytes(d.read_bytes),
                bytes(d.written_bytes),
                d.sessions.join(", "),
            ]);
        }
        let mut nets = output::table(&[
            "FORMATION",
            "MACHINE",
            "NIC",
            "NETWORK",
            "ADDRESS",
            "MAC",
            "RX",
            "TX",
        ]);
        for n in &report.addresses {
            nets.add_row(vec![
                n.formation.clone(),
                n.machine.clone(),
                n.nic.clone(),
                n.network.clone(),
                n.ip.clone().unwrap_or_else(|| "-".into()),
                n.mac.clone(),
                bytes(n.rx_bytes),
                bytes(n.tx_bytes),
            ]);
        }
        format!(
            "{}\n{}",
            output::render_table(&disks),
            output::render_table(&nets)
        )
    });
    Ok(())
}

/// `cluster:status`: hosts, capacity, usage and the machines on each, read from the hosts.
pub fn status(cx: &Context) -> Result<()> {
    let status = runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        kvm.cluster_status()
            .await
            .map_err(providers::provider_error)
    })?;
    let value = serde_json::to_value(&status).map_err(|e| Error::Other(e.to_string()))?;
    cx.out.data(&value, || {
        let mut t = output::table(&[
            "HOST",
            "URI",
            "UP",
            "VCPUS USED",
            "MEMORY USED",
            "MEMORY IN USE",
            "CPU BUSY",
            "MACHINES",
        ]);
        for h in value["hosts"].as_array().into_iter().flatten() {
            let machines: Vec<String> = h["machines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "{}/{} ({})",
                        m["formation"].as_str().unwrap_or(""),
                        m["machine"].as_str().unwrap_or(""),
                        m["state"].as_str().unwrap_or("")
                    )
                })
                .collect();
            t.add_row(vec![
                h["name"].as_str().unwrap_or("").to_string(),
                h["uri"].as_str().unwrap_or("").to_string(),
                if h["reachable"] == true {
                    "yes".into()
                } else {
                    "NO".into()
                },
                format!("{}/{}", h["used"]["cpus"], h["capacity"]["cpus"]),
                format!(
                    "{}/{} MiB",
                    h["used"]["memory_mb"], h["capacity"]["memory_mb"]
                ),
                // Measured on the host, every process counted (`-` when it cannot be read).
                match (
                    h["measured"]["memory_used_mb"].as_u64(),
                    h["measured"]["memory_total_mb"].as_u64(),
                ) {
                    (Some(used), Some(total)) => format!("{used}/{total} MiB"),
                    _ => "-".into(),
                },
                h["measured"]["cpu_busy_percent"]
                    .as_f64()
                    .map(|p| format!("{p:.0}%"))
                    .unwrap_or_else(|| "-".into()),
                machines.join(", "),
            ]);
        }
        output::render_table(&t)
    });
    Ok(())
}
