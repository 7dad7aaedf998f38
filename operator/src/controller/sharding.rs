//! The controller's side of shards ([`crate::shards`]): whether this
//! replica may write for a namespace, and what it forgets or counts again
//! when it takes, hands back or re-weighs a shard.

use std::sync::Arc;

use kube::ResourceExt;

use super::{Context, key};
use crate::crd::DataPipeline;

impl Context {
    /// Whether this replica may write (to AWS and to the status of the
    /// pipelines of `namespace`) now: it holds their shard (leads, with
    /// one shard), or leader election is off.
    pub fn may_write_for(&self, namespace: &str) -> bool {
        self.shards.holds(namespace)
    }

    /// This replica now holds `shard`: what it remembered of the shard's
    /// pipelines may be stale (another replica held it meanwhile), so it
    /// is forgotten, as after a restart, and each of them is reconciled.
    pub async fn shard_acquired(&self, shard: usize) {
        let Some(g) = self.guardrails() else {
            // The controller has not started: its first pass reconciles
            // every pipeline.
            return;
        };
        let pipelines: Vec<Arc<DataPipeline>> = g
            .all()
            .filter(|p| self.shards.of(&p.namespace().unwrap_or_default()) == shard)
            .collect();
        let uids: Vec<String> = pipelines.iter().filter_map(|p| p.uid()).collect();
        {
            let mut generations = self.generations.lock().await;
            let mut converged = self.converged_plans.lock().await;
            let mut rejected = self.rejected_plans.lock().await;
            let mut inventories = self.inventories.lock().await;
            for uid in &uids {
                generations.remove(uid);
                converged.remove(uid);
                rejected.remove(uid);
                inventories.remove(uid);
            }
        }
        {
            let mut failures = self.failures.lock().await;
            for p in &pipelines {
                failures.remove(&key(p));
            }
        }
        let refs: Vec<_> = pipelines
            .iter()
            .map(|p| kube::runtime::reflector::ObjectRef::from_obj(p.as_ref()))
            .collect();
        g.retrigger(&refs);
    }

    /// This replica handed `shard` back (or lost it): the reads its
    /// pipelines made here no longer count against this replica's read
    /// budget ([`crate::pacing`]); their new holder counts them.
    pub fn shard_released(&self, shard: usize) {
        let Some(g) = self.guardrails() else {
            return;
        };
        for p in g
            .all()
            .filter(|p| self.shards.of(&p.namespace().unwrap_or_default()) == shard)
        {
            self.pacer.forget(&p.uid().unwrap_or_default());
        }
    }

    /// This replica's parts of the accounts' quotas changed: every
    /// account's resync period is computed again.
    pub fn repace(&self) {
        self.pacer.refresh_all();
    }
}
