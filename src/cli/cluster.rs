//! `cluster:*` (KVM): failover and the watcher, migrate, rebalance, evacuate, usage, status.

use nepho_provider_api::MoveMode;

use super::Context;
use crate::error::{Error, Result};
use crate::ops::cluster::{self as ops, WatchOptions};
use crate::output::human;

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

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The formation
    pub formation: String,
    /// The machine to move (its name in the formation, as describe lists it)
    pub machine: String,
    /// The destination host (default: the allocator picks one of the other hosts)
    #[arg(long)]
    pub to: Option<String>,
    /// Move it while it runs (libvirt live migration): it keeps its memory, address and
    /// connections. Refused (exit 4) unless it runs, every disk is on iSCSI, it has no local
    /// swap and its networks span both hosts
    #[arg(long)]
    pub live: bool,
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

#[derive(Debug, clap::Args)]
pub struct EvacuateArgs {
    /// The host to empty (its name in the cluster file); it must answer
    pub host: String,
    /// Print the moves without making them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Only this formation's machines
    #[arg(long)]
    pub formation: Option<String>,
}

pub fn failover(cx: &Context, host: &str) -> Result<()> {
    let report = ops::failover(cx, host)?;
    cx.out.show(&report);
    ops::all_moved(&report)
}

/// `cluster:watch`: in the foreground, or `--detach`/`--status`/`--stop` for the background one.
pub fn watch(cx: &Context, a: &WatchArgs) -> Result<()> {
    let options = WatchOptions {
        interval: a.interval,
        grace: a.grace,
        timeout: a.timeout,
        lock_fd: a.lock_fd,
    };
    if a.status {
        let status = ops::watcher_status(cx)?;
        cx.out.data(&status, || match &status.holder {
            Some(h) => format!("{h}\nlog: {}\n", status.log),
            None => "no background watcher runs\n".to_string(),
        });
        return ops::watcher_running(&status);
    }
    if a.stop {
        return ops::stop_watcher(cx);
    }
    if a.detach {
        let started = ops::detach_watcher(cx, &options)?;
        cx.out.show(&started);
        return Ok(());
    }
    ops::watch(cx, &options, &|report| cx.out.show(report))
}

pub fn migrate(cx: &Context, a: &MigrateArgs) -> Result<()> {
    let mode = if a.live {
        MoveMode::Live
    } else {
        MoveMode::Offline
    };
    let result = ops::migrate(cx, &a.formation, &a.machine, a.to.as_deref(), mode)?;
    cx.out
        .data(&result, || human::moves(std::slice::from_ref(&result)));
    Ok(())
}

pub fn rebalance(cx: &Context, a: &RebalanceArgs) -> Result<()> {
    let report = ops::rebalance(cx, a.dry_run, a.max_moves)?;
    let nothing = "balanced: no move would narrow the gap between the hosts";
    cx.out
        .data(&report, || human::rebalance(&report, a.dry_run, nothing));
    ops::moves_done(&report)
}

pub fn evacuate(cx: &Context, a: &EvacuateArgs) -> Result<()> {
    let report = ops::evacuate(cx, &a.host, a.dry_run)?;
    let nothing = "the host has no nepho machines";
    cx.out
        .data(&report, || human::rebalance(&report, a.dry_run, nothing));
    ops::moves_done(&report)
}

pub fn usage(cx: &Context, a: &UsageArgs) -> Result<()> {
    cx.out.show(&ops::usage(cx, a.formation.as_deref())?);
    Ok(())
}

pub fn status(cx: &Context) -> Result<()> {
    let status = ops::status(cx)?;
    let value = serde_json::to_value(&status).map_err(|e| Error::Other(e.to_string()))?;
    cx.out.data(&value, || human::cluster_status(&value));
    Ok(())
}
