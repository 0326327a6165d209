//! `cluster:failover HOST`: restart a dead KVM host's machines elsewhere and print what moved.

use super::Context;
use crate::error::{Error, Result};
use crate::output;
use crate::providers;

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
    cx.out.data(&report, || {
        if results.is_empty() {
            return format!(
                "host {host} had no nepho machines (none recorded on the shared storage)\n"
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
        for r in &results {
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
    });
    let stuck = results.iter().filter(|r| r.status != "moved").count();
    if stuck > 0 {
        return Err(Error::Other(format!(
            "{stuck} of {} machine(s) of host {host} were not moved (see REASON)",
            results.len()
        )));
    }
    Ok(())
}
