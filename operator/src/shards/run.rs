//! The replica's side of sharding: its member Lease, the live members as
//! their Leases say, and one elector per shard that contends only while
//! this replica should hold the shard ([`super::owner`]).

use std::{
    collections::BTreeSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{FutureExt, channel::mpsc};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

use crate::{
    config::LeaderElection,
    controller::Context,
    leader::{Elector, KubeLease},
    metrics::Metrics,
};

/// The label every member Lease of one installation carries (its value:
/// the installation's Lease name).
pub const MEMBERS_LABEL: &str = "sluice.dev/members-of";

/// How long a shard's fence stays closed before its Lease is handed back,
/// so that AWS calls sent just before it closed have landed before the
/// next holder's first.
const HAND_BACK_GRACE: Duration = Duration::from_secs(2);

/// The name of shard `index`'s Lease.
pub fn shard_lease(base: &str, index: usize) -> String {
    format!("{base}-shard-{index}")
}

/// The name of `identity`'s member Lease.
pub fn member_lease(base: &str, identity: &str) -> String {
    format!("{base}-member-{identity}")
}

/// The live replicas, as the member Leases said when last read, and when
/// one last joined.
#[derive(Clone, Debug)]
struct Members(Arc<RwLock<(BTreeSet<String>, Instant)>>);

impl Default for Members {
    fn default() -> Self {
        Members(Arc::new(RwLock::new((BTreeSet::new(), Instant::now()))))
    }
}

impl Members {
    fn get(&self) -> BTreeSet<String> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    /// Replaces the live members; a member that was not there before
    /// (this replica's own first look included) restarts the settling.
    fn set(&self, members: BTreeSet<String>) {
        let mut current = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if members.iter().any(|m| !current.0.contains(m)) {
            current.1 = Instant::now();
        }
        current.0 = members;
    }

    /// Whether `me` should hold `shard`.
    fn should_hold(&self, shard: usize, me: &str) -> bool {
        let members = self.get();
        super::owner(shard, members.iter().map(String::as_str)) == Some(me)
    }

    /// Whether `me` may take `shard` now: it should hold it, and no
    /// replica joined in the last `settle`. Replicas that start together
    /// (a Deployment's, a rollout's) see each other within a retry period
    /// or two; without the wait the first to start took every shard and
    /// handed most of them back as the others appeared, and each
    /// hand-over had the shard's pipelines reconciled afresh. A replica
    /// that leaves does not restart the wait: its shards are taken as
    /// soon as their Leases allow.
    fn may_take(&self, shard: usize, me: &str, settle: Duration) -> bool {
        let joined = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1;
        joined.elapsed() >= settle && self.should_hold(shard, me)
    }
}

/// How long membership must have gone without a replica joining before a
/// replica takes the shards it should hold: this many retry periods.
const SETTLE_RETRIES: u32 = 2;

/// Runs this replica's member Lease and its shards' electors until
/// `shutdown` turns true; then hands every shard back (fences closed
/// first) and deletes the member Lease.
pub async fn run(
    ctx: Arc<Context>,
    client: Client,
    election: LeaderElection,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
) {
    let me = election.identity.clone();
    let members = Members::default();
    members.set([me.clone()].into());
    let leases: Api<Lease> = Api::namespaced(client.clone(), &election.lease_namespace);
    let heartbeat = {
        let (leases, election, members, mut shutdown) = (
            leases.clone(),
            election.clone(),
            members.clone(),
            shutdown.clone(),
        );
        async move {
            loop {
                if let Err(e) = renew_member(&leases, &election).await {
                    warn!(error = %e, "cannot renew this replica's member Lease");
                }
                match live_members(&leases, &election).await {
                    Ok(mut live) => {
                        live.insert(election.identity.clone());
                        if live != members.get() {
                            info!(members = ?live, "replicas sharing the shards");
                        }
                        members.set(live);
                    }
                    Err(e) => warn!(error = %e, "cannot list the member Leases"),
                }
                tokio::select! {
                    () = tokio::time::sleep(election.retry_period) => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
            let name = member_lease(&election.lease_name, &election.identity);
            let _ = leases.delete(&name, &DeleteParams::default()).await;
        }
    };
    let count = ctx.shards.count();
    let shards = (0..count).map(|shard| {
        let (ctx, client, election, members, shutdown) = (
            ctx.clone(),
            client.clone(),
            election.clone(),
            members.clone(),
            shutdown.clone(),
        );
        hold_when_owner(ctx, client, election, members, shutdown, shard)
    });
    let held = {
        let (ctx, metrics, mut shutdown) = (ctx.clone(), metrics.clone(), shutdown.clone());
        async move {
            let mut counted: Option<(BTreeSet<usize>, tokio::time::Instant)> = None;
            loop {
                let held = ctx.shards.held();
                metrics.set_leader(!held.is_empty());
                metrics.shards_held(held.len());
                // This replica's parts of the accounts' quotas follow the
                // shards it holds, and the pipelines in them.
                let due = ctx.regions.fractions().take_missed()
                    || counted.as_ref().is_none_or(|(before, at)| {
                        *before != held || at.elapsed() >= super::quota::RECOUNT
                    });
                if due {
                    super::quota::recount(&ctx).await;
                    counted = Some((held, tokio::time::Instant::now()));
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
            metrics.shards_held(0);
        }
    };
    futures::future::join3(heartbeat, futures::future::join_all(shards), held).await;
    info!(identity = %me, "handed back every shard");
}

/// Shard `shard`'s loop: while this replica should hold it, contends for
/// its Lease and, holding it, opens its fence and has its pipelines
/// reconciled; hands it back when another replica should hold it or on
/// shutdown.
async fn hold_when_owner(
    ctx: Arc<Context>,
    client: Client,
    election: LeaderElection,
    members: Members,
    shutdown: watch::Receiver<bool>,
    shard: usize,
) {
    let me = election.identity.clone();
    let config = LeaderElection {
        lease_name: shard_lease(&election.lease_name, shard),
        ..election.clone()
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        let fence = ctx.shards.fence(shard).clone();
        // Stop (handing the shard back if held) on shutdown, or once
        // another replica should hold it.
        let (tx, rx) = mpsc::unbounded::<()>();
        let watcher = {
            let (members, me, mut shutdown, retry, fence) = (
                members.clone(),
                me.clone(),
                shutdown.clone(),
                election.retry_period,
                fence.clone(),
            );
            async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(retry) => {}
                        _ = shutdown.wait_for(|s| *s) => {}
                    }
                    let handing_back = fence.is_open() && !members.should_hold(shard, &me);
                    if *shutdown.borrow() || handing_back {
                        let _ = tx.unbounded_send(());
                        return;
                    }
                }
            }
        };
        // Observes the shard's Lease all along, so it takes a dead
        // holder's shard a lease duration after the last renewal it saw,
        // but contends only while this replica should hold it. The shard's
        // own figures (leader gauge, transitions) are not the replica's:
        // its electors report to a registry of their own.
        let store = KubeLease::new(
            client.clone(),
            &config,
            ctx.recorder.clone(),
            Metrics::new(),
        );
        let settle = election.retry_period * SETTLE_RETRIES;
        let elector = Elector::new(store, config.clone(), fence.clone(), Metrics::new())
            .taking_only_when({
                let (members, me) = (members.clone(), me.clone());
                move || members.may_take(shard, &me, settle)
            });
        let lead = |stop: crate::controller::Stop| {
            let (ctx, fence) = (ctx.clone(), fence.clone());
            async move {
                info!(shard, "holding the shard: reconciling its pipelines");
                // However the term ends (handed back, or the Lease lost
                // and this future dropped), its pipelines' reads leave
                // this replica's budget.
                let _released = Released(ctx.clone(), shard);
                ctx.shard_acquired(shard).await;
                stop.await;
                // Closed before the Lease is handed back, with a grace for
                // calls already sent.
                fence.close();
                tokio::time::sleep(HAND_BACK_GRACE).await;
                info!(shard, "handing the shard back");
                Ok(())
            }
            .boxed()
        };
        let (result, ()) = futures::join!(elector.run(rx, lead), watcher);
        if let Err(e) = result {
            warn!(shard, error = %e, "the shard's elector stopped");
        }
        fence.close();
    }
}

/// Tells the context a shard's term ended, when dropped.
struct Released(Arc<Context>, usize);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.shard_released(self.1);
    }
}

/// Creates or renews this replica's member Lease.
async fn renew_member(leases: &Api<Lease>, election: &LeaderElection) -> Result<(), kube::Error> {
    let name = member_lease(&election.lease_name, &election.identity);
    let now = MicroTime(Timestamp::now());
    let spec = LeaseSpec {
        holder_identity: Some(election.identity.clone()),
        lease_duration_seconds: i32::try_from(election.lease_duration.as_secs()).ok(),
        renew_time: Some(now.clone()),
        ..LeaseSpec::default()
    };
    let params = PostParams {
        field_manager: Some(crate::controller::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match leases.get_opt(&name).await? {
        Some(mut lease) => {
            lease.spec = Some(spec);
            leases.replace(&name, &params, &lease).await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(election.lease_namespace.clone()),
                    labels: Some([(MEMBERS_LABEL.to_owned(), election.lease_name.clone())].into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    acquire_time: Some(now),
                    ..spec
                }),
            };
            leases.create(&params, &lease).await?;
        }
    }
    Ok(())
}

/// The replicas whose member Lease was renewed within its duration (by
/// this replica's clock: balance only, safety is the shard Leases').
async fn live_members(
    leases: &Api<Lease>,
    election: &LeaderElection,
) -> Result<BTreeSet<String>, kube::Error> {
    let selector = format!("{MEMBERS_LABEL}={}", election.lease_name);
    let list = leases
        .list(&ListParams::default().labels(&selector))
        .await?;
    let now = Timestamp::now();
    Ok(list
        .items
        .iter()
        .filter_map(|l| {
            let spec = l.spec.as_ref()?;
            let renewed = spec.renew_time.as_ref()?.0;
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let expires = renewed
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(duration))
                .ok()?;
            (expires > now)
                .then(|| spec.holder_identity.clone())
                .flatten()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_the_installations_own() {
        assert_eq!(shard_lease("sluice-operator", 3), "sluice-operator-shard-3");
        assert_eq!(
            member_lease("sluice-operator", "sluice-operator-7d9f-abcde"),
            "sluice-operator-member-sluice-operator-7d9f-abcde"
        );
    }

    #[test]
    fn a_replica_should_hold_what_rendezvous_hashing_gives_it() {
        let members = Members::default();
        members.set(["a".to_owned(), "b".to_owned(), "c".to_owned()].into());
        for shard in 0..12 {
            let holders: Vec<_> = ["a", "b", "c"]
                .iter()
                .filter(|m| members.should_hold(shard, m))
                .collect();
            assert_eq!(holders.len(), 1, "shard {shard}: {holders:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_takes_its_shards_once_no_replica_joined_for_the_settling_time() {
        let settle = Duration::from_secs(4);
        let members = Members::default();
        members.set(["a".to_owned()].into());
        assert!(members.should_hold(0, "a"));
        assert!(!members.may_take(0, "a", settle), "just started");
        tokio::time::advance(Duration::from_secs(3)).await;
        // b joins before a settled: a waits again, for the shards it
        // should still hold.
        members.set(["a".to_owned(), "b".to_owned()].into());
        let a_keeps = (0..12)
            .find(|s| members.should_hold(*s, "a"))
            .expect("some");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!members.may_take(a_keeps, "a", settle));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(members.may_take(a_keeps, "a", settle));
        // Never a shard it should not hold.
        let b_gets = (0..12)
            .find(|s| members.should_hold(*s, "b"))
            .expect("some");
        assert!(!members.may_take(b_gets, "a", settle));
        // b leaves: a takes b's shards at once (as the Leases allow).
        members.set(["a".to_owned()].into());
        assert!(members.may_take(b_gets, "a", settle));
    }
}
