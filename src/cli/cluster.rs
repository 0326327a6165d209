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
