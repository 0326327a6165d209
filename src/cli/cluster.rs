//! `cluster:failover HOST`: restart a dead KVM host's machines elsewhere and print what moved.

use super::Context;
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(e.to_string()))?;
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
}

/// `cluster:watch`: `cluster:failover` for every host that stays down longer than the grace
/// period. Prints a report per failover (table, or one JSON document each).
pub fn watch(cx: &Context, a: &WatchArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(e.to_string()))?;
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
                        cx.out
                            .notice(&format!("host {} is down: failover done", report.host));
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(e.to_string()))
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
    cx.out.data(&report, || {
        let spread = |m: &std::collections::BTreeMap<String, f64>| {
            m.iter()
                .map(|(h, f)| format!("{h} {:.0}%", f * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!("memory used before: {}\n", spread(&report.before));
        if report.moves.is_empty() {
            text.push_str("balanced: no move would narrow the gap between the hosts\n");
        } else {
            text.push_str(&format!(
                "memory used after{}: {}\n",
                if a.dry_run { " (planned)" } else { "" },
                spread(&report.after)
            ));
            text.push_str(&render_moves(&report.moves));
        }
        text
    });
    let failed = report.moves.iter().filter(|m| m.status == "failed").count();
    if failed > 0 {
        return Err(Error::Other(format!(
            "{failed} of {} move(s) failed and were put back (see REASON)",
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
