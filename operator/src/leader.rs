//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` does it, so that of several replicas only one
//! reconciles, polls health and writes to AWS and to pipelines' status. The
//! others (standbys) serve `/metrics`, `/livez` and `/readyz` and watch the
//! Lease.
//!
//! The decision is pure ([`decide`], [`desired`], [`released`]), over the
//! record read from the Lease ([`LeaseRecord`]), when this replica saw it
//! change ([`Observed`]) and `now`; [`Elector`] does the I/O through a
//! [`LeaseStore`] (the API server's, [`KubeLease`]):
//!
//! - no Lease: create it (a 409 means another replica created it first);
//! - no holder, or a holder whose Lease expired: take it over;
//! - held by this replica: renew it;
//! - held by another, not expired: wait, looking again every retry period.
//!
//! Every write replaces the Lease with the `resourceVersion` read
//! (optimistic concurrency): a 409 means another replica wrote first, and
//! this one goes back to observing.
//!
//! # Expiry is judged on the local clock
//!
//! A standby never compares the Lease's `renewTime` with its own clock
//! (nodes' wall clocks differ). It notes the local monotonic instant at
//! which it saw the record *change*, and the Lease expires
//! `leaseDurationSeconds` after that instant. Since the holder's renewal was
//! sent before any standby could see it, a standby's expiry is always later
//! than `the holder's request + lease duration`.
//!
//! # The write fence and the timing rule
//!
//! The leader writes only while its [`Fence`] is open: until `renew
//! deadline` after the local instant taken just *before* it sent its last
//! successful renewal (or acquisition). At that deadline, unless a renewal
//! succeeded since, it closes the fence (every AWS write then fails at once
//! in [`crate::aws::Aws::call`], unsent, with
//! [`crate::aws::ErrorClass::NotLeader`]), stops its controller and the
//! health poller, and becomes a candidate again. A standby takes the Lease
//! over `lease duration` after it saw that last renewal, so there are at
//! least `lease duration − renew deadline` between the old leader's last
//! write and the new leader's first. That margin covers the rates of the
//! two replicas' clocks differing over a lease duration and an AWS call
//! already in flight when the fence closed. Hence the rule
//! ([`crate::config::LeaderElection::from_lookup`] refuses anything else):
//!
//! - `renew deadline < lease duration`, by at least 2 s and at least a tenth
//!   of the lease duration (the margin);
//! - `retry period ≤ renew deadline / 2`, so that a failed renewal is tried
//!   again before the deadline.
//!
//! The defaults are client-go's: 15 s, 10 s and 2 s.
//!
//! An API server that was unreachable for longer than the renew deadline
//! stops the leader; when it is back and the Lease still names this replica
//! with the same `resourceVersion`, the replica renews it at once (the
//! optimistic write proves nobody took it) and starts its controller again,
//! rather than waiting for a lease duration.
//!
//! On SIGTERM or SIGINT a leader stops its controller (in-flight reconciles
//! finish, up to [`GRACEFUL_STOP`]; a second signal stops them at once)
//! while it goes on renewing, then releases the Lease (no holder, a lease
//! duration of 1 s, as client-go's `ReleaseOnCancel`), so a standby takes
//! over within about one retry period. A standby just exits.

use std::{future::Future, time::Duration};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, Resource, api::PostParams, runtime::events::EventType};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::{config::LeaderElection, events::Recorder, metrics::Metrics};

/// The reason of the Event published when a replica becomes the leader.
pub const LEADER_ELECTED: &str = "LeaderElected";

/// How long a leader asked to stop waits for its in-flight reconciles to
/// finish before it drops them and releases the Lease (Kubernetes gives a
/// pod 30 s by default between SIGTERM and SIGKILL).
pub const GRACEFUL_STOP: Duration = Duration::from_secs(10);

pub use crate::fence::Fence;

/// What leader election reads from and writes to a Lease's spec (client-go's
/// `LeaderElectionRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `holderIdentity`; empty when nobody holds the Lease.
    pub holder: String,
    /// `leaseDurationSeconds`.
    pub lease_duration_seconds: Option<i32>,
    /// `acquireTime` (informative only: expiry is judged on the local clock).
    pub acquire_time: Option<Timestamp>,
    /// `renewTime` (informative only).
    pub renew_time: Option<Timestamp>,
    /// `leaseTransitions`.
    pub transitions: i32,
}

impl LeaseRecord {
    /// The record a Lease holds.
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseRecord {
            holder: spec.holder_identity.unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// Writes the record into a Lease's spec, keeping the spec's other
    /// fields.
    pub fn apply_to(&self, lease: &mut Lease) {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.holder.clone());
        spec.lease_duration_seconds = self.lease_duration_seconds;
        spec.acquire_time = self.acquire_time.map(MicroTime);
        spec.renew_time = self.renew_time.map(MicroTime);
        spec.lease_transitions = Some(self.transitions);
    }

    /// The holder, if any.
    pub fn holder(&self) -> Option<&str> {
        Some(self.holder.as_str()).filter(|h| !h.is_empty())
    }
}

/// A Lease's record as this replica last saw it, and when (on its own
/// monotonic clock) it last saw the record change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The record.
    pub record: LeaseRecord,
    /// The local instant the record was first seen as it is.
    pub changed_at: Instant,
}

impl Observed {
    /// `record`, read at `now`: changed at `now` unless `previous` saw the
    /// same record, whose instant of change it keeps.
    pub fn seen(previous: Option<&Observed>, record: LeaseRecord, now: Instant) -> Observed {
        let changed_at = match previous {
            Some(p) if p.record == record => p.changed_at,
            _ => now,
        };
        Observed { record, changed_at }
    }

    /// When the Lease expires in this replica's view: the record's lease
    /// duration after it changed (`fallback` when the record has none).
    pub fn expires_at(&self, fallback: Duration) -> Instant {
        let duration = self
            .record
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(fallback, Duration::from_secs);
        self.changed_at + duration
    }
}

/// What to do about the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it, held by this replica.
    Create,
    /// Nobody holds it, or its holder let it expire: take it over.
    Acquire {
        /// Who held it (`None`: nobody).
        previous: Option<String>,
    },
    /// This replica holds it: renew it.
    Renew,
    /// Another replica holds it: look again later.
    Wait {
        /// The holder.
        holder: String,
        /// When it expires unless it changes before.
        expires_at: Instant,
    },
}

/// Decides what to do about the Lease `observed` (`None`: it does not
/// exist) at `now`, as replica `me`. `fallback` is the lease duration of a
/// record that has none.
pub fn decide(observed: Option<&Observed>, me: &str, now: Instant, fallback: Duration) -> Decision {
    let Some(observed) = observed else {
        return Decision::Create;
    };
    match observed.record.holder() {
        None => Decision::Acquire { previous: None },
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) => {
            let expires_at = observed.expires_at(fallback);
            if now >= expires_at {
                Decision::Acquire {
                    previous: Some(holder.to_owned()),
                }
            } else {
                Decision::Wait {
                    holder: holder.to_owned(),
                    expires_at,
                }
            }
        }
    }
}

/// The record to write for `decision` (`None` for [`Decision::Wait`]):
/// held by `me` for `lease_duration`, renewed at `wall` (the wall clock,
/// informative). A takeover from another holder (or from nobody) counts one
/// more transition and sets the acquire time; a renewal keeps both.
pub fn desired(
    decision: &Decision,
    observed: Option<&LeaseRecord>,
    me: &str,
    lease_duration: Duration,
    wall: Timestamp,
) -> Option<LeaseRecord> {
    let seconds = i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX);
    let mine = |acquire_time, transitions| LeaseRecord {
        holder: me.to_owned(),
        lease_duration_seconds: Some(seconds),
        acquire_time,
        renew_time: Some(wall),
        transitions,
    };
    let transitions = observed.map_or(0, |r| r.transitions);
    match decision {
        Decision::Wait { .. } => None,
        Decision::Create => Some(mine(Some(wall), 0)),
        Decision::Acquire { .. } => Some(mine(Some(wall), transitions.saturating_add(1))),
        Decision::Renew => Some(mine(
            observed.and_then(|r| r.acquire_time).or(Some(wall)),
            transitions,
        )),
    }
}

/// The record a leader writes when it steps down (client-go's
/// `ReleaseOnCancel`): nobody holds it, for one second, so that a standby
/// takes it over at its next look.
pub fn released(observed: &LeaseRecord, wall: Timestamp) -> LeaseRecord {
    LeaseRecord {
        holder: String::new(),
        lease_duration_seconds: Some(1),
        acquire_time: Some(wall),
        renew_time: Some(wall),
        transitions: observed.transitions,
    }
}

/// Why a read or write of the Lease failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// 409: another replica created or changed the Lease first.
    #[error("conflict: the Lease was created or changed by another replica first")]
    Conflict,
    /// Anything else: the API server unreachable, RBAC, ...
    #[error("{0}")]
    Failed(String),
}

impl From<kube::Error> for StoreError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) if status.code == 409 => StoreError::Conflict,
            e => StoreError::Failed(e.to_string()),
        }
    }
}

/// Where the Lease is kept: the API server ([`KubeLease`]), or a fake in
/// tests.
#[allow(async_fn_in_trait)] // used with static dispatch inside this crate only
pub trait LeaseStore {
    /// Reads the Lease; `None` when it does not exist.
    async fn get(&self) -> Result<Option<Lease>, StoreError>;
    /// Creates the Lease.
    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError>;
    /// Replaces the Lease if its `resourceVersion` is still the one given.
    async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError>;
    /// Publishes the event of this replica becoming the leader, about the
    /// Lease.
    async fn elected(&self, lease: &Lease, action: &str, note: &str);
}

/// The Lease on the API server.
#[derive(Clone)]
pub struct KubeLease {
    api: Api<Lease>,
    name: String,
    namespace: String,
    recorder: Recorder,
    metrics: Metrics,
}

impl std::fmt::Debug for KubeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLease")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KubeLease {
    /// The Lease `config` names; events about it through `recorder`.
    pub fn new(
        client: Client,
        config: &LeaderElection,
        recorder: Recorder,
        metrics: Metrics,
    ) -> Self {
        KubeLease {
            api: Api::namespaced(client, &config.lease_namespace),
            name: config.lease_name.clone(),
            namespace: config.lease_namespace.clone(),
            recorder,
            metrics,
        }
    }

    fn params() -> PostParams {
        PostParams {
            field_manager: Some(crate::controller::FIELD_MANAGER.into()),
            ..Default::default()
        }
    }
}

impl LeaseStore for KubeLease {
    async fn get(&self) -> Result<Option<Lease>, StoreError> {
        Ok(self.api.get_opt(&self.name).await?)
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        Ok(self.api.create(&Self::params(), lease).await?)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
        Ok(self.api.replace(&self.name, &Self::params(), lease).await?)
    }

    async fn elected(&self, lease: &Lease, action: &str, note: &str) {
        self.metrics.kube_write("event");
        // The API refuses an action over 128 bytes and a note over 1 kB.
        let action = crate::events::truncated(action, 128);
        let note = crate::events::truncated(note, 1024);
        if let Err(e) = self
            .recorder
            .publish(
                EventType::Normal,
                LEADER_ELECTED,
                action,
                note,
                &lease.object_ref(&()),
            )
            .await
        {
            warn!(lease = %self.name, namespace = %self.namespace, error = %e, "cannot publish the LeaderElected event");
        }
    }
}

pub use crate::controller::Stop;

/// SIGTERM and SIGINT, as a stream: a leader stops gracefully on the
/// first, at once on the second.
pub fn shutdown_signals() -> std::io::Result<impl Stream<Item = ()> + Unpin + Send> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let stream = |s: Signal| {
        futures::stream::unfold(s, |mut s| async move { s.recv().await.map(|()| ((), s)) }).boxed()
    };
    let terminate = stream(signal(SignalKind::terminate())?);
    let interrupt = stream(signal(SignalKind::interrupt())?);
    Ok(futures::stream::select(terminate, interrupt).fuse())
}

/// What one look at the Lease came to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease, written just now; `previous` held it
    /// before.
    Leading { previous: Option<String> },
    /// Another replica holds it (or won the race to write it).
    Standby { holder: Option<String> },
}

/// How a term as leader ended.
enum TermEnd {
    /// The Lease was not renewed in time, or another replica holds it.
    Lost,
    /// Asked to stop, the controller stopped (or was dropped); or it
    /// ended by itself, with its error.
    Stopped(crate::Result<()>),
}

/// The candidate / leader loop over one Lease.
pub struct Elector<S> {
    store: S,
    config: LeaderElection,
    fence: Fence,
    metrics: Metrics,
    /// The Lease as last read or written.
    lease: Option<Lease>,
    observed: Option<Observed>,
    /// The holder last logged, so that a standby logs changes only.
    logged_holder: Option<Option<String>>,
    /// The last failure logged as a warning, so that repeats are debug.
    logged_failure: Option<String>,
    /// Whether this replica may take the Lease now (a shard it should
    /// hold, [`crate::shards`]); it observes the Lease either way, so it
    /// can judge its expiry the moment it may.
    may_take: Option<std::sync::Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl<S> std::fmt::Debug for Elector<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("config", &self.config)
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

impl<S: LeaseStore> Elector<S> {
    /// An elector for the Lease of `config` in `store`; it opens and closes
    /// `fence`, which should start closed.
    pub fn new(store: S, config: LeaderElection, fence: Fence, metrics: Metrics) -> Self {
        Elector {
            store,
            config,
            fence,
            metrics,
            lease: None,
            observed: None,
            logged_holder: None,
            logged_failure: None,
            may_take: None,
        }
    }

    /// An elector that creates, takes over or renews the Lease as a
    /// candidate only while `may_take` says so (a leader renews it
    /// regardless, until its caller stops it).
    pub fn taking_only_when(mut self, may_take: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.may_take = Some(std::sync::Arc::new(may_take));
        self
    }

    /// Runs until `shutdown` yields: as a standby, looks at the Lease every
    /// retry period; as the leader, runs `lead` (the controller, which
    /// should stop gracefully when its [`Stop`] resolves) and renews every
    /// retry period. Returns the controller's error if it ended by itself.
    pub async fn run<L, F>(
        mut self,
        mut shutdown: impl Stream<Item = ()> + Unpin,
        mut lead: L,
    ) -> crate::Result<()>
    where
        L: FnMut(Stop) -> F,
        F: Future<Output = crate::Result<()>>,
    {
        self.metrics.set_leader(false);
        loop {
            let previous = tokio::select! {
                Some(()) = shutdown.next() => {
                    info!("stopping (standby)");
                    // The Lease names this replica (restarted under the same
                    // name) though it never led since: hand it on at once.
                    if self.observed.as_ref().and_then(|o| o.record.holder())
                        == Some(self.config.identity.as_str())
                    {
                        self.release().await;
                    }
                    return Ok(());
                }
                previous = self.campaign() => previous,
            };
            self.elected(previous).await;
            match self.lead(&mut shutdown, &mut lead).await {
                TermEnd::Lost => {
                    // The controller is dropped: its figures go now.
                    self.metrics.standby();
                    continue;
                }
                TermEnd::Stopped(result) => {
                    self.release().await;
                    return result;
                }
            }
        }
    }

    /// How long one look at (or write of) the Lease may take: half the
    /// renew deadline, so at least two fit in it.
    fn attempt_timeout(&self) -> Duration {
        self.config.renew_deadline / 2
    }

    /// Looks at the Lease every retry period (jittered by up to a fifth,
    /// as client-go does) until this replica leads; returns the previous
    /// holder.
    async fn campaign(&mut self) -> Option<String> {
        loop {
            match timeout(self.attempt_timeout(), self.try_acquire_or_renew(false)).await {
                Ok(Ok(Attempt::Leading { previous })) => return previous,
                Ok(Ok(Attempt::Standby { holder })) => {
                    self.logged_failure = None;
                    if self.logged_holder.as_ref() != Some(&holder) {
                        info!(
                            leader = holder.as_deref().unwrap_or("none"),
                            identity = %self.config.identity,
                            "standing by: another replica leads"
                        );
                        self.logged_holder = Some(holder);
                    }
                }
                Ok(Err(e)) => self.failed(&e.to_string(), "cannot read or acquire the Lease"),
                Err(_) => self.failed("timed out", "cannot read or acquire the Lease"),
            }
            let jitter = 1.0 + 0.2 * rand::random::<f64>();
            sleep(self.config.retry_period.mul_f64(jitter)).await;
        }
    }

    /// Logs a failure to read or write the Lease: as a warning when it
    /// differs from the last one, else at debug level (a standby looks every
    /// retry period).
    fn failed(&mut self, error: &str, what: &'static str) {
        if self.logged_failure.as_deref() == Some(error) {
            debug!(error, lease = %self.config.lease_name, "{what}");
        } else {
            warn!(error, lease = %self.config.lease_name, namespace = %self.config.lease_namespace, "{what}");
            self.logged_failure = Some(error.to_owned());
        }
    }

    /// Reads the Lease and, if this replica may hold it, writes it.
    /// `leading`: only a renewal will do; any other holder means this
    /// replica lost it.
    async fn try_acquire_or_renew(&mut self, leading: bool) -> Result<Attempt, StoreError> {
        let lease = self.store.get().await?;
        self.observe(lease, Instant::now());
        let me = self.config.identity.clone();
        let decision = decide(
            self.observed.as_ref(),
            &me,
            Instant::now(),
            self.config.lease_duration,
        );
        let holder = self
            .observed
            .as_ref()
            .and_then(|o| o.record.holder())
            .map(str::to_owned);
        if leading && decision != Decision::Renew {
            return Ok(Attempt::Standby { holder });
        }
        if !leading && self.may_take.as_ref().is_some_and(|may| !may()) {
            return Ok(Attempt::Standby { holder });
        }
        let Some(record) = desired(
            &decision,
            self.observed.as_ref().map(|o| &o.record),
            &me,
            self.config.lease_duration,
            Timestamp::now(),
        ) else {
            return Ok(Attempt::Standby { holder });
        };
        let mut lease = match (&decision, &self.lease) {
            (Decision::Create, _) | (_, None) => Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.lease_namespace.clone()),
                    ..Default::default()
                },
                spec: None,
            },
            (_, Some(lease)) => lease.clone(),
        };
        record.apply_to(&mut lease);
        // Taken before the request leaves: whoever sees this write saw it
        // after this instant.
        let sent = Instant::now();
        let written = match decision {
            Decision::Create => self.store.create(&lease).await,
            _ => self.store.replace(&lease).await,
        };
        match written {
            Ok(lease) => {
                self.fence.open_until(sent + self.config.renew_deadline);
                self.observe(Some(lease), Instant::now());
                Ok(Attempt::Leading { previous: holder })
            }
            Err(StoreError::Conflict) => {
                debug!(lease = %self.config.lease_name, "another replica wrote the Lease first");
                Ok(Attempt::Standby { holder })
            }
            Err(e) => Err(e),
        }
    }

    fn observe(&mut self, lease: Option<Lease>, now: Instant) {
        self.observed = lease
            .as_ref()
            .map(|l| Observed::seen(self.observed.as_ref(), LeaseRecord::of(l), now));
        self.lease = lease;
    }

    /// Marks this replica the leader: metric, log and event.
    async fn elected(&mut self, previous: Option<String>) {
        self.metrics.set_leader(true);
        self.metrics.leader_transition("acquired");
        self.logged_holder = None;
        self.logged_failure = None;
        let me = &self.config.identity;
        let previous = previous.unwrap_or_else(|| "none".into());
        info!(identity = %me, previous = %previous, lease = %self.config.lease_name, namespace = %self.config.lease_namespace, "became the leader");
        if let Some(lease) = &self.lease {
            let note = format!("{me} is the leader (previous holder: {previous})");
            let action = format!("Acquire from {previous}");
            let _ = timeout(
                self.config.retry_period,
                self.store.elected(lease, &action, &note),
            )
            .await;
        }
    }

    /// One term as leader: runs the controller and renews every retry
    /// period, until the renew deadline passes without a renewal, another
    /// replica holds the Lease, or `shutdown` yields and the controller
    /// stopped.
    async fn lead<L, F>(
        &mut self,
        shutdown: &mut (impl Stream<Item = ()> + Unpin),
        lead: &mut L,
    ) -> TermEnd
    where
        L: FnMut(Stop) -> F,
        F: Future<Output = crate::Result<()>>,
    {
        let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
        let mut stop_tx = Some(stop_tx);
        let controller = lead(stop_rx.map(|_| ()).boxed().shared());
        tokio::pin!(controller);
        let mut stopping: Option<Instant> = None;
        let mut next_renewal = Instant::now() + self.config.retry_period;
        loop {
            // Read once per turn: the renewal branch moves it.
            let deadline = self.fence.deadline().unwrap_or_else(Instant::now);
            tokio::select! {
                biased;
                () = sleep_until(deadline) => {
                    self.lost("the Lease was not renewed within the renew deadline", None);
                    return TermEnd::Lost;
                }
                result = &mut controller => {
                    if let Err(e) = &result {
                        warn!(error = %e, "the controller stopped");
                    }
                    return TermEnd::Stopped(result);
                }
                Some(()) = shutdown.next() => {
                    if stopping.is_some() {
                        warn!("asked again to stop: dropping the reconciles in flight");
                        return TermEnd::Stopped(Ok(()));
                    }
                    info!("stopping: letting reconciles in flight finish, then releasing the Lease");
                    if let Some(tx) = stop_tx.take() {
                        let _ = tx.send(());
                    }
                    stopping = Some(Instant::now() + GRACEFUL_STOP);
                }
                () = sleep_until(stopping.unwrap_or_else(Instant::now)), if stopping.is_some() => {
                    warn!(grace = ?GRACEFUL_STOP, "reconciles still in flight: dropping them");
                    return TermEnd::Stopped(Ok(()));
                }
                attempt = async {
                    sleep_until(next_renewal).await;
                    timeout(self.attempt_timeout(), self.try_acquire_or_renew(true)).await
                } => {
                    next_renewal = Instant::now() + self.config.retry_period;
                    match attempt {
                        Ok(Ok(Attempt::Leading { .. })) => self.logged_failure = None,
                        Ok(Ok(Attempt::Standby { holder })) => {
                            self.lost("another replica holds the Lease", holder.as_deref());
                            return TermEnd::Lost;
                        }
                        Ok(Err(e)) => self.failed(&e.to_string(), "cannot renew the Lease"),
                        Err(_) => self.failed("timed out", "cannot renew the Lease"),
                    }
                }
            }
        }
    }

    /// Stops leading: the fence closes before the caller drops the
    /// controller.
    fn lost(&mut self, why: &str, holder: Option<&str>) {
        self.fence.close();
        self.metrics.set_leader(false);
        self.metrics.leader_transition("lost");
        warn!(
            identity = %self.config.identity,
            holder = holder.unwrap_or("unknown"),
            "stopped leading: {why}; the controller and the health poller stopped"
        );
    }

    /// Steps down on shutdown: closes the fence, then, if the Lease still
    /// names this replica, writes it released so that a standby takes over
    /// at its next look.
    async fn release(&mut self) {
        self.fence.close();
        self.metrics.set_leader(false);
        self.metrics.standby();
        let me = self.config.identity.clone();
        let result = timeout(self.attempt_timeout(), async {
            let Some(mut lease) = self.store.get().await? else {
                return Ok(false);
            };
            let record = LeaseRecord::of(&lease);
            if record.holder() != Some(me.as_str()) {
                return Ok(false);
            }
            released(&record, Timestamp::now()).apply_to(&mut lease);
            self.store.replace(&lease).await?;
            Ok::<_, StoreError>(true)
        })
        .await;
        match result {
            Ok(Ok(true)) => {
                self.metrics.leader_transition("released");
                info!(lease = %self.config.lease_name, "released the Lease");
            }
            Ok(Ok(false)) => info!("the Lease names another replica: nothing to release"),
            Ok(Err(e)) => {
                warn!(error = %e, "cannot release the Lease; a standby takes over when it expires")
            }
            Err(_) => warn!("releasing the Lease timed out; a standby takes over when it expires"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    };

    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn held_by(holder: &str, seconds: i32) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(Timestamp::UNIX_EPOCH),
            renew_time: Some(Timestamp::UNIX_EPOCH),
            transitions: 3,
        }
    }

    #[test]
    fn no_lease_is_created_no_holder_is_taken_over_mine_is_renewed() {
        let now = Instant::now();
        assert_eq!(decide(None, "a", now, LEASE), Decision::Create);
        let nobody = Observed::seen(None, held_by("", 15), now);
        assert_eq!(
            decide(Some(&nobody), "a", now, LEASE),
            Decision::Acquire { previous: None }
        );
        let mine = Observed::seen(None, held_by("a", 15), now);
        // Even long after: an optimistic write with the resourceVersion
        // read proves nobody took it meanwhile.
        assert_eq!(
            decide(Some(&mine), "a", now + Duration::from_secs(600), LEASE),
            Decision::Renew
        );
    }

    #[test]
    fn anothers_lease_expires_a_lease_duration_after_it_was_seen_to_change() {
        let t0 = Instant::now();
        let seen = Observed::seen(None, held_by("b", 15), t0);
        assert_eq!(
            decide(Some(&seen), "a", t0 + Duration::from_secs(14), LEASE),
            Decision::Wait {
                holder: "b".into(),
                expires_at: t0 + Duration::from_secs(15)
            }
        );
        // The same record seen again keeps its instant of change...
        let again = Observed::seen(Some(&seen), held_by("b", 15), t0 + Duration::from_secs(10));
        assert_eq!(again.changed_at, t0);
        assert_eq!(
            decide(Some(&again), "a", t0 + Duration::from_secs(15), LEASE),
            Decision::Acquire {
                previous: Some("b".into())
            }
        );
        // ...a renewal (any change) restarts it.
        let mut renewed = held_by("b", 15);
        renewed.renew_time = Some(Timestamp::UNIX_EPOCH + Duration::from_secs(12));
        let renewed = Observed::seen(Some(&again), renewed, t0 + Duration::from_secs(12));
        assert!(matches!(
            decide(Some(&renewed), "a", t0 + Duration::from_secs(26), LEASE),
            Decision::Wait { .. }
        ));
    }

    #[test]
    fn remote_timestamps_do_not_matter_only_the_local_observation() {
        let t0 = Instant::now();
        // A renewTime a day in the past (a skewed clock) or in the future
        // changes nothing: the Lease was seen to change at t0.
        for renew in [
            Timestamp::now() - Duration::from_secs(86_400),
            Timestamp::now() + Duration::from_secs(86_400),
        ] {
            let mut record = held_by("b", 15);
            record.renew_time = Some(renew);
            let seen = Observed::seen(None, record, t0);
            assert!(matches!(
                decide(Some(&seen), "a", t0 + Duration::from_secs(1), LEASE),
                Decision::Wait { .. }
            ));
        }
    }

    #[test]
    fn a_released_lease_is_taken_at_once_and_one_without_duration_lasts_ours() {
        let t0 = Instant::now();
        let released = Observed::seen(None, released(&held_by("b", 15), Timestamp::now()), t0);
        assert_eq!(
            decide(Some(&released), "a", t0, LEASE),
            Decision::Acquire { previous: None }
        );
        let mut record = held_by("b", 15);
        record.lease_duration_seconds = None;
        let seen = Observed::seen(None, record, t0);
        assert_eq!(seen.expires_at(LEASE), t0 + LEASE);
    }

    #[test]
    fn the_record_written_counts_transitions_and_keeps_the_acquire_time_on_renewal() {
        let wall = Timestamp::UNIX_EPOCH + Duration::from_secs(1000);
        let theirs = held_by("b", 30);
        let takeover = desired(
            &Decision::Acquire {
                previous: Some("b".into()),
            },
            Some(&theirs),
            "a",
            LEASE,
            wall,
        )
        .expect("write");
        assert_eq!(
            takeover,
            LeaseRecord {
                holder: "a".into(),
                lease_duration_seconds: Some(15),
                acquire_time: Some(wall),
                renew_time: Some(wall),
                transitions: 4,
            }
        );
        let later = wall + Duration::from_secs(2);
        let renewal = desired(&Decision::Renew, Some(&takeover), "a", LEASE, later).expect("write");
        assert_eq!(renewal.acquire_time, Some(wall));
        assert_eq!(renewal.renew_time, Some(later));
        assert_eq!(renewal.transitions, 4);
        let created = desired(&Decision::Create, None, "a", LEASE, wall).expect("write");
        assert_eq!(created.transitions, 0);
        let wait = Decision::Wait {
            holder: "b".into(),
            expires_at: Instant::now(),
        };
        assert_eq!(desired(&wait, Some(&theirs), "a", LEASE, wall), None);
        let gone = released(&takeover, later);
        assert_eq!(gone.holder(), None);
        assert_eq!(gone.lease_duration_seconds, Some(1));
        assert_eq!(gone.transitions, 4);
    }

    #[test]
    fn the_record_round_trips_through_a_lease_keeping_other_fields() {
        let mut lease = Lease {
            spec: Some(LeaseSpec {
                strategy: Some("OldestEmulationVersion".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let record = held_by("a", 15);
        record.apply_to(&mut lease);
        assert_eq!(LeaseRecord::of(&lease), record);
        assert_eq!(
            lease.spec.and_then(|s| s.strategy).as_deref(),
            Some("OldestEmulationVersion")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_is_open_until_the_deadline_and_closes_on_demand() {
        let fence = Fence::closed();
        assert!(!fence.is_open());
        assert_eq!(fence.deadline(), None);
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs(10);
        fence.open_until(deadline);
        let reader = fence.clone();
        assert!(reader.is_open());
        assert_eq!(reader.deadline(), Some(deadline));
        assert!(reader.is_open_at(deadline - Duration::from_millis(1)));
        assert!(!reader.is_open_at(deadline));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!reader.is_open(), "closed by time alone");
        fence.open_until(Instant::now() + Duration::from_secs(10));
        assert!(reader.is_open());
        fence.close();
        assert!(!reader.is_open(), "closed on demand");
        assert_eq!(reader.deadline(), None);
        // A deadline before the fence existed is a closed fence.
        let late = Fence::closed();
        late.open_until(sent);
        assert!(!late.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn with_leader_election_off_the_fence_never_closes() {
        let fence = Fence::always_open();
        assert!(fence.is_open());
        tokio::time::advance(Duration::from_secs(10 * 365 * 86_400)).await;
        assert!(fence.is_open());
        assert_eq!(fence.deadline(), None);
    }

    /// An in-memory API server for one Lease: a `resourceVersion` bumped on
    /// every write and 409s on stale writes. Each replica has its own view
    /// ([`FakeStore::view`]), which can be cut off from it, and the server
    /// can be down for everyone.
    #[derive(Clone, Default)]
    struct FakeStore {
        state: Arc<Mutex<FakeState>>,
        cut_off: Arc<std::sync::atomic::AtomicBool>,
    }

    #[derive(Default)]
    struct FakeState {
        lease: Option<Lease>,
        version: u64,
        down: bool,
        events: Vec<String>,
    }

    impl FakeStore {
        fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The same server, through a connection of its own.
        fn view(&self) -> FakeStore {
            FakeStore {
                state: self.state.clone(),
                cut_off: Arc::default(),
            }
        }

        fn record(&self) -> Option<LeaseRecord> {
            self.state().lease.as_ref().map(LeaseRecord::of)
        }

        fn set_down(&self, down: bool) {
            self.state().down = down;
        }

        fn reachable(&self) -> Result<std::sync::MutexGuard<'_, FakeState>, StoreError> {
            let state = self.state();
            if state.down || self.cut_off.load(Ordering::SeqCst) {
                return Err(StoreError::Failed("connection refused".into()));
            }
            Ok(state)
        }

        fn store(state: &mut FakeState, lease: &Lease) -> Lease {
            state.version += 1;
            let mut lease = lease.clone();
            lease.metadata.resource_version = Some(state.version.to_string());
            state.lease = Some(lease.clone());
            lease
        }
    }

    impl LeaseStore for FakeStore {
        async fn get(&self) -> Result<Option<Lease>, StoreError> {
            Ok(self.reachable()?.lease.clone())
        }

        async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
            let mut state = self.reachable()?;
            if state.lease.is_some() {
                return Err(StoreError::Conflict);
            }
            Ok(Self::store(&mut state, lease))
        }

        async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
            let mut state = self.reachable()?;
            let current = state
                .lease
                .as_ref()
                .and_then(|l| l.metadata.resource_version.clone());
            if current != lease.metadata.resource_version {
                return Err(StoreError::Conflict);
            }
            Ok(Self::store(&mut state, lease))
        }

        async fn elected(&self, _lease: &Lease, _action: &str, note: &str) {
            self.state().events.push(note.to_owned());
        }
    }

    fn config(identity: &str) -> LeaderElection {
        LeaderElection {
            lease_name: "sluice-operator".into(),
            lease_namespace: "sluice-system".into(),
            identity: identity.into(),
            lease_duration: LEASE,
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// A replica in a task: its view of the server, its fence, how many
    /// controller terms started and whether one is running, and its
    /// shutdown signal.
    struct Replica {
        store: FakeStore,
        fence: Fence,
        metrics: Metrics,
        started: Arc<AtomicU64>,
        running: Arc<AtomicU64>,
        signal: futures::channel::mpsc::UnboundedSender<()>,
        task: tokio::task::JoinHandle<crate::Result<()>>,
    }

    /// Decrements a counter when dropped: the controller stopped, by
    /// finishing or by being dropped.
    struct Running(Arc<AtomicU64>);

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn replica(server: &FakeStore, identity: &str) -> Replica {
        replica_stopping_in(server, identity, Duration::from_secs(1))
    }

    /// A replica whose controller takes `stopping` to stop once told to.
    fn replica_stopping_in(server: &FakeStore, identity: &str, stopping: Duration) -> Replica {
        let store = server.view();
        let fence = Fence::closed();
        let metrics = Metrics::new();
        let started = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicU64::new(0));
        let (signal, shutdown) = futures::channel::mpsc::unbounded();
        let elector = Elector::new(
            store.clone(),
            config(identity),
            fence.clone(),
            metrics.clone(),
        );
        let (s, r) = (started.clone(), running.clone());
        let task = tokio::spawn(elector.run(shutdown, move |stop: Stop| {
            s.fetch_add(1, Ordering::SeqCst);
            r.fetch_add(1, Ordering::SeqCst);
            let guard = Running(r.clone());
            async move {
                // A controller: runs until told to stop, then lets its
                // reconciles finish.
                stop.await;
                sleep(stopping).await;
                drop(guard);
                Ok(())
            }
        }));
        Replica {
            store,
            fence,
            metrics,
            started,
            running,
            signal,
            task,
        }
    }

    /// Lets `millis` of (paused) time pass, 100 ms at a time.
    async fn pass(millis: u64) {
        for _ in 0..millis / 100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_replica_leads_the_other_stands_by_and_takes_over_on_release() {
        let server = FakeStore::default();
        let a = replica(&server, "a");
        pass(1000).await;
        let b = replica(&server, "b");
        pass(5000).await;
        assert_eq!(server.record().expect("created").holder, "a");
        assert!(a.fence.is_open() && !b.fence.is_open());
        assert_eq!(a.running.load(Ordering::SeqCst), 1);
        assert_eq!(b.started.load(Ordering::SeqCst), 0);
        assert!(a.metrics.render().contains("sluice_leader 1"));
        assert!(b.metrics.render().contains("sluice_leader 0"));
        assert_eq!(
            server.state().events,
            ["a is the leader (previous holder: none)"]
        );

        // SIGTERM: a lets its controller stop, then releases the Lease; b
        // takes it at its next look.
        a.signal.unbounded_send(()).expect("signal");
        pass(500).await;
        assert!(!a.task.is_finished(), "the controller is still stopping");
        assert_eq!(server.record().expect("lease").holder, "a");
        pass(1000).await;
        assert!(a.task.is_finished(), "exited");
        assert!(!a.fence.is_open());
        assert_eq!(a.running.load(Ordering::SeqCst), 0);
        assert!(
            a.metrics
                .render()
                .contains(r#"sluice_leader_transitions_total{transition="released"} 1"#)
        );
        // Released (and perhaps taken by b already).
        assert_ne!(server.record().expect("lease").holder(), Some("a"));
        pass(2500).await;
        let lease = server.record().expect("lease");
        assert_eq!(lease.holder, "b");
        assert_eq!(lease.transitions, 1);
        assert!(b.fence.is_open());
        assert_eq!(b.running.load(Ordering::SeqCst), 1);

        // A standby asked to stop just exits.
        let c = replica(&server, "c");
        pass(3000).await;
        c.signal.unbounded_send(()).expect("signal");
        pass(100).await;
        assert!(c.task.is_finished());
        assert_eq!(c.started.load(Ordering::SeqCst), 0);
        assert_eq!(server.record().expect("lease").holder, "b");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_cut_off_stops_writing_a_margin_before_a_standby_starts() {
        let server = FakeStore::default();
        let a = replica(&server, "a");
        pass(1000).await;
        let b = replica(&server, "b");
        pass(5000).await;
        assert!(a.fence.is_open());

        // a can no longer reach the API server; b can.
        let cut = Instant::now();
        a.store.cut_off.store(true, Ordering::SeqCst);
        let (mut a_closed, mut b_opened) = (None, None);
        for _ in 0..250 {
            pass(100).await;
            if a_closed.is_none() && !a.fence.is_open() {
                a_closed = Some(Instant::now());
                assert!(!b.fence.is_open());
            }
            if b_opened.is_none() && b.fence.is_open() {
                b_opened = Some(Instant::now());
            }
        }
        let (a_closed, b_opened) = (a_closed.expect("a stopped"), b_opened.expect("b leads"));
        assert!(
            a_closed - cut <= Duration::from_secs(10),
            "{:?}",
            a_closed - cut
        );
        assert!(
            b_opened - a_closed >= Duration::from_secs(5) - Duration::from_millis(100),
            "the margin: {:?}",
            b_opened - a_closed
        );
        assert_eq!(a.running.load(Ordering::SeqCst), 0);
        assert_eq!(b.running.load(Ordering::SeqCst), 1);
        assert_eq!(server.record().expect("lease").holder, "b");
        assert!(
            server
                .state()
                .events
                .contains(&"b is the leader (previous holder: a)".to_owned())
        );
        assert!(
            a.metrics
                .render()
                .contains(r#"sluice_leader_transitions_total{transition="lost"} 1"#)
        );

        // a reaches the server again: b holds the Lease, so a stands by.
        a.store.cut_off.store(false, Ordering::SeqCst);
        pass(5000).await;
        assert!(!a.fence.is_open());
        assert_eq!(a.started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_api_server_restart_costs_no_lease_duration() {
        let server = FakeStore::default();
        let a = replica(&server, "a");
        pass(1000).await;
        let b = replica(&server, "b");
        pass(5000).await;
        assert!(a.fence.is_open());

        // Down for 12 s: a's renewals fail; by the renew deadline it has
        // closed its fence and stopped its controller.
        server.set_down(true);
        pass(10_000).await;
        assert!(!a.fence.is_open());
        pass(200).await;
        assert_eq!(a.running.load(Ordering::SeqCst), 0, "controller stopped");
        assert!(a.metrics.render().contains("sluice_leader 0"));
        pass(1800).await;

        // Back: the Lease still names a with the resourceVersion a wrote, so
        // a renews it at its next look and starts its controller again.
        server.set_down(false);
        pass(2500).await;
        assert_eq!(server.record().expect("lease").holder, "a");
        assert!(a.fence.is_open());
        assert_eq!(a.started.load(Ordering::SeqCst), 2);
        assert_eq!(a.running.load(Ordering::SeqCst), 1);
        assert!(!b.fence.is_open());
        assert_eq!(b.started.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reconciles_that_do_not_finish_are_dropped_after_the_grace_or_a_second_signal() {
        let server = FakeStore::default();
        let a = replica_stopping_in(&server, "a", Duration::from_secs(3600));
        pass(3000).await;
        assert!(a.fence.is_open());
        a.signal.unbounded_send(()).expect("signal");
        pass(GRACEFUL_STOP.as_millis() as u64 - 1000).await;
        assert!(!a.task.is_finished(), "waiting for the reconciles");
        assert!(a.fence.is_open(), "renewing meanwhile");
        assert_eq!(server.record().expect("lease").holder, "a");
        pass(1500).await;
        assert!(a.task.is_finished(), "dropped after the grace");
        assert_eq!(a.running.load(Ordering::SeqCst), 0);
        assert_eq!(server.record().expect("lease").holder(), None, "released");

        let b = replica_stopping_in(&server, "b", Duration::from_secs(3600));
        pass(3000).await;
        assert!(b.fence.is_open());
        b.signal.unbounded_send(()).expect("signal");
        pass(500).await;
        b.signal.unbounded_send(()).expect("signal");
        pass(200).await;
        assert!(b.task.is_finished(), "dropped at the second signal");
        assert_eq!(b.running.load(Ordering::SeqCst), 0);
        assert!(!b.fence.is_open());
        assert_eq!(server.record().expect("lease").holder(), None, "released");
    }
}
