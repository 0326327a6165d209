//! The cluster manager: what nepho does with the hosts of a cluster file beyond building
//! formations on them — status and usage, moving machines between hosts (migrate, rebalance,
//! evacuate) and restarting a dead host's machines elsewhere (failover, watch). It sits on top
//! of the provider's modules and nothing below it uses it.

mod failover;
mod library;
mod live;
mod migrate;
mod usage;

use std::time::Duration;

use nepho_provider_api::{
    BoxFuture, ClusterOps, ClusterStatus, ClusterUsage, FailoverReport, Hold, MigrateResult,
    MoveMode, ProviderError, RebalanceReport, Watch,
};

use crate::KvmProvider;

impl ClusterOps for KvmProvider {
    fn hosts(&self) -> Vec<String> {
        self.cluster.hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn status(&self) -> BoxFuture<'_, Result<ClusterStatus, ProviderError>> {
        Box::pin(self.cluster_status())
    }

    fn usage<'a>(
        &'a self,
        formation: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ClusterUsage, ProviderError>> {
        Box::pin(KvmProvider::usage(self, formation))
    }

    fn failover<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<FailoverReport, ProviderError>> {
        Box::pin(async move {
            Ok(FailoverReport {
                host: host.to_string(),
                machines: self.failover_host(host).await?,
            })
        })
    }

    fn migrate<'a>(
        &'a self,
        formation: &'a str,
        machine: &'a str,
        to: Option<&'a str>,
        mode: MoveMode,
    ) -> BoxFuture<'a, Result<MigrateResult, ProviderError>> {
        Box::pin(KvmProvider::migrate(self, formation, machine, to, mode))
    }

    fn rebalance<'a>(
        &'a self,
        dry_run: bool,
        max_moves: usize,
        hold: &'a Hold,
    ) -> BoxFuture<'a, Result<RebalanceReport, ProviderError>> {
        Box::pin(KvmProvider::rebalance(self, dry_run, max_moves, hold))
    }

    fn evacuate<'a>(
        &'a self,
        host: &'a str,
        dry_run: bool,
        hold: &'a Hold,
    ) -> BoxFuture<'a, Result<RebalanceReport, ProviderError>> {
        Box::pin(KvmProvider::evacuate(self, host, dry_run, hold))
    }

    fn watch_round<'a>(
        &'a self,
        watch: &'a mut Watch,
        grace: Duration,
    ) -> BoxFuture<'a, Vec<Result<FailoverReport, ProviderError>>> {
        Box::pin(KvmProvider::watch_round(self, watch, grace))
    }
}
