//! Kubernetes wiring: the watch, the finalizer, status writes, events and
//! the retry policy. AWS work is delegated to [`crate::reconcile`]; runtime
//! health runs beside the controllers ([`crate::health::poller`]) over
//! their watch caches.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, channel::mpsc};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector, watcher,
    },
};
use serde_json::json;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{
    Error, Result,
    artifacts::Catalog,
    aws::{Aws, ErrorClass, Regions, quota::Fractions},
    config::OperatorConfig,
    crd::{
        AccountStatus, DataPipeline, DataPipelineStatus, DeletionPolicy, FunctionStatus,
        InventoryEntry,
    },
    events::{self, EventType, Recorder},
    fence::Fence,
    guardrails::{self, Guardrails},
    health::poller::Poller,
    metrics::Metrics,
    naming::{ADOPT_FROM_ANNOTATION, PipelineId},
    plan::{self, Plan, PlanContext},
    policy::{self, Effective},
    reconcile::{
        self, Progress,
        status::{self, Verdict},
    },
    server::Readiness,
    shards::Shards,
};

mod identity;
mod sharding;

use identity::{account_of, cleanup_aws, pipeline_aws};

/// Finalizer that keeps a pipeline until its AWS resources are gone.
pub const FINALIZER: &str = "sluice.dev/cleanup";
/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "sluice-operator";

/// A generation of a pipeline as this process saw it.
#[derive(Clone, Copy, Debug)]
struct Generation {
    number: i64,
    seen: Instant,
    ready_recorded: bool,
}

/// State shared by every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Operator configuration.
    pub config: OperatorConfig,
    /// Built-in handler artifacts.
    pub catalog: Catalog,
    /// AWS clients by region (shared with the health poller).
    pub regions: Arc<Regions>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// The shards of pipelines this replica may hold, each behind its
    /// write fence ([`crate::shards`]); one shard without sharding.
    pub shards: Arc<Shards>,
    /// Reconciles running at once, across every watched namespace
    /// (`SLUICE_MAX_CONCURRENT_RECONCILES`); waiting namespaces take turns
    /// ([`crate::fair::Slots`]).
    slots: Arc<crate::fair::Slots>,
    failures: Mutex<HashMap<String, u32>>,
    /// When this process first saw each pipeline's current generation
    /// (by UID), and whether its time to Ready was recorded yet.
    generations: Mutex<HashMap<String, Generation>>,
    /// A digest of the plan each pipeline last converged to (by UID): an
    /// update under an unchanged plan sets back a change made outside
    /// Sluice (drift).
    converged_plans: Mutex<HashMap<String, String>>,
    /// A digest of the plan AWS refused (by UID): the same plan is not sent
    /// again until the spec (or the operator's plan of it) changes.
    rejected_plans: Mutex<HashMap<String, String>>,
    /// The inventory each pipeline's last reconcile recorded, by UID. The
    /// next reconcile may start from a watch cache that does not hold that
    /// status write yet; starting from a stale inventory would forget a
    /// resource created a moment ago (and, with its tags not yet visible,
    /// take it for someone else's).
    inventories: Mutex<HashMap<String, Vec<InventoryEntry>>>,
    /// Each account's effective resync period, from the reads of the
    /// passes that converged ([`crate::pacing`]).
    pacer: crate::pacing::Pacer,
    /// The platform's guardrails as the watch caches show them; set once
    /// by [`run`] before the first reconcile.
    guardrails: std::sync::OnceLock<Guardrails>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for the controller. Writes to AWS and to pipelines'
    /// status are made only while `fence` is open
    /// ([`Fence::always_open`] without leader election).
    pub fn new(
        client: Client,
        config: OperatorConfig,
        catalog: Catalog,
        sdk: aws_config::SdkConfig,
        metrics: Metrics,
        fence: Fence,
    ) -> Self {
        let shards = Arc::new(Shards::single(fence.clone()));
        Self::with_shards(client, config, catalog, sdk, metrics, fence, shards)
    }

    /// A context for one of several replicas sharing the fleet in `count`
    /// shards, none held yet ([`crate::shards::run`] opens their fences).
    pub fn sharded(
        client: Client,
        config: OperatorConfig,
        catalog: Catalog,
        sdk: aws_config::SdkConfig,
        metrics: Metrics,
        count: usize,
    ) -> Self {
        let shards = Arc::new(Shards::closed(count));
        // Every pipeline's writes go through its shard's fence.
        let fence = Fence::always_open();
        Self::with_shards(client, config, catalog, sdk, metrics, fence, shards)
    }

    fn with_shards(
        client: Client,
        config: OperatorConfig,
        catalog: Catalog,
        sdk: aws_config::SdkConfig,
        metrics: Metrics,
        fence: Fence,
        shards: Arc<Shards>,
    ) -> Self {
        // With several shards, each account's quotas are shared by the
        // replicas in proportion to their parts of its pipelines
        // ([`crate::shards::quota`]); alone or as the leader, all of them.
        let fractions = Arc::new(if shards.count() > 1 {
            Fractions::counted()
        } else {
            Fractions::whole()
        });
        let recorder = Recorder::new(
            client.clone(),
            FIELD_MANAGER,
            std::env::var("POD_NAME").ok(),
        );
        let regions = Arc::new(Regions::new(
            sdk,
            config.quotas.clone(),
            metrics.clone(),
            fence,
            config.accounts.session,
            fractions,
        ));
        Self::remembering_nothing(client, config, catalog, regions, shards, metrics, recorder)
    }

    /// A context for a new term as leader: the same clients, rate limits,
    /// fence, metrics and recorder, and none of this one's memory of
    /// pipelines (inventories, converged plans, generations, backoffs,
    /// guardrails), which another leader may have made stale since; as
    /// after a restart, the pipelines' status is authoritative.
    pub fn fresh(&self) -> Self {
        Self::remembering_nothing(
            self.client.clone(),
            self.config.clone(),
            self.catalog.clone(),
            self.regions.clone(),
            self.shards.clone(),
            self.metrics.clone(),
            self.recorder.clone(),
        )
    }

    /// A context of these clients with no memory of any pipeline yet.
    fn remembering_nothing(
        client: Client,
        config: OperatorConfig,
        catalog: Catalog,
        regions: Arc<Regions>,
        shards: Arc<Shards>,
        metrics: Metrics,
        recorder: Recorder,
    ) -> Self {
        let pacer = crate::pacing::Pacer::new(
            config.resync,
            config.resync_read_share,
            config.quotas.clone(),
            regions.fractions().clone(),
            metrics.clone(),
        );
        Context {
            slots: crate::fair::Slots::new(usize::from(config.max_concurrent_reconciles)),
            client,
            config,
            catalog,
            regions,
            shards,
            metrics,
            recorder,
            failures: Mutex::new(HashMap::new()),
            generations: Mutex::new(HashMap::new()),
            converged_plans: Mutex::new(HashMap::new()),
            rejected_plans: Mutex::new(HashMap::new()),
            inventories: Mutex::new(HashMap::new()),
            pacer,
            guardrails: std::sync::OnceLock::new(),
        }
    }

    /// Every pipeline the controller sees (none before it started).
    pub fn pipelines(&self) -> Vec<Arc<DataPipeline>> {
        self.guardrails()
            .map(|g| g.all().collect())
            .unwrap_or_default()
    }

    /// The guardrails, once [`run`] has set them.
    fn guardrails(&self) -> Option<&Guardrails> {
        self.guardrails.get()
    }

    /// What the SluicePolicies selecting `namespace` combine to (the
    /// built-in default before the caches are set).
    pub fn effective_policy(&self, namespace: &str) -> Effective {
        self.guardrails()
            .map_or_else(Effective::default, |g| g.effective(namespace))
    }

    /// AWS clients for a region, connected on first use.
    pub async fn aws(&self, region: &str) -> Result<Aws> {
        self.regions.get(region).await
    }

    /// The health poller, sharing this context's clients and metrics.
    pub fn health_poller(&self) -> Poller {
        Poller {
            client: self.client.clone(),
            config: self.config.clone(),
            catalog: self.catalog.clone(),
            regions: self.regions.clone(),
            metrics: self.metrics.clone(),
            recorder: self.recorder.clone(),
            shards: self.shards.clone(),
        }
    }

    /// Notes the first time this process sees a pipeline's generation.
    async fn saw_generation(&self, dp: &DataPipeline) {
        let number = dp.metadata.generation.unwrap_or(0);
        let fresh = Generation {
            number,
            seen: Instant::now(),
            ready_recorded: false,
        };
        let mut seen = self.generations.lock().await;
        let entry = seen.entry(dp.uid().unwrap_or_default()).or_insert(fresh);
        if entry.number != number {
            *entry = fresh;
        }
    }

    /// Seconds from a generation's start to its first Ready in this
    /// process: from its creation for the first generation, else from when
    /// this process first saw it. `None` once recorded, so a pipeline that
    /// flaps between Ready and a retry counts once per generation.
    async fn first_ready(&self, dp: &DataPipeline) -> Option<f64> {
        let number = dp.metadata.generation.unwrap_or(0);
        let mut seen = self.generations.lock().await;
        let entry = seen
            .get_mut(&dp.uid().unwrap_or_default())
            .filter(|g| g.number == number && !g.ready_recorded)?;
        entry.ready_recorded = true;
        if number == 1
            && let Some(created) = &dp.metadata.creation_timestamp
        {
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
            return Some(age.as_secs_f64().max(0.0));
        }
        Some(entry.seen.elapsed().as_secs_f64())
    }

    /// When to read a converged (or stalled) pipeline back from AWS.
    fn resync(&self, dp: &DataPipeline) -> Duration {
        let uid = dp.uid().unwrap_or_default();
        next_resync(
            &uid,
            self.pacer.period_of(&uid),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    /// Whether this process has not reconciled the pipeline yet.
    async fn first_sight(&self, dp: &DataPipeline) -> bool {
        !self
            .generations
            .lock()
            .await
            .contains_key(&dp.uid().unwrap_or_default())
    }

    async fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().await;
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = (*n + 1).min(8);
        Duration::from_secs(2u64.pow(*n).min(300))
    }

    async fn reset_backoff(&self, key: &str) {
        self.failures.lock().await.remove(key);
    }

    /// Where a reconcile starts: the inventory this process last recorded
    /// for the pipeline, else the one in its status (after a restart the
    /// watch cache is fresh and the status is authoritative). Once the
    /// watch cache shows the recorded inventory, the copy is dropped, so a
    /// converged fleet keeps one inventory per pipeline, the cache's.
    async fn recorded_inventory(&self, dp: &DataPipeline, status: &DataPipelineStatus) -> Progress {
        let uid = dp.uid().unwrap_or_default();
        let mut inventories = self.inventories.lock().await;
        match inventories.get(&uid) {
            Some(inventory) if *inventory != status.inventory => {
                Progress::from_inventory(inventory)
            }
            Some(_) => {
                inventories.remove(&uid);
                Progress::from_inventory(&status.inventory)
            }
            None => Progress::from_inventory(&status.inventory),
        }
    }

    async fn remember_inventory(&self, dp: &DataPipeline, inventory: &[InventoryEntry]) {
        self.inventories
            .lock()
            .await
            .insert(dp.uid().unwrap_or_default(), inventory.to_vec());
    }

    async fn forget_inventory(&self, dp: &DataPipeline) {
        self.inventories
            .lock()
            .await
            .remove(&dp.uid().unwrap_or_default());
    }
}

/// The pipelines' APIs the controller watches: every namespace's, or each
/// of `SLUICE_WATCH_NAMESPACES`.
fn pipeline_apis(ctx: &Context) -> Vec<Api<DataPipeline>> {
    if ctx.config.watch_namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .watch_namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    }
}

/// Whether the controller could run: lists DataPipelines where it watches
/// them, SluicePolicies and namespaces, one item each. An error means a CRD
/// is missing or RBAC forbids a watch. [`run`] checks it first; a standby
/// checks it once to be Ready without running the controller.
pub async fn preflight(ctx: &Context) -> Result<()> {
    for api in pipeline_apis(ctx) {
        api.list(&ListParams::default().limit(1)).await?;
    }
    Api::<crate::crd::SluicePolicy>::all(ctx.client.clone())
        .list(&ListParams::default().limit(1))
        .await?;
    Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
        .list(&ListParams::default().limit(1))
        .await?;
    Ok(())
}

/// Aborts a spawned task when dropped: the controller's helpers stop with
/// it, also when its future is dropped (its leader lost the Lease).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the controller until SIGTERM/SIGINT: one watch of every namespace,
/// or, with `SLUICE_WATCH_NAMESPACES`, one controller per listed namespace
/// (each with its own watch, so the operator needs no cluster-wide read).
/// Without leader election; [`run_until`] with it.
pub async fn run(ctx: Arc<Context>, readiness: Readiness) -> Result<()> {
    run_controllers(ctx, readiness, None).await
}

/// Runs the controller, as the leader, until `stop` resolves: then no
/// reconcile starts and those in flight finish. Dropping the future stops
/// everything at once (reconciles and the health poller included). Signals
/// are the caller's ([`crate::leader::Elector`]).
pub async fn run_until(ctx: Arc<Context>, readiness: Readiness, stop: Stop) -> Result<()> {
    run_controllers(ctx, readiness, Some(stop)).await
}

async fn run_controllers(
    ctx: Arc<Context>,
    readiness: Readiness,
    stop: Option<Stop>,
) -> Result<()> {
    let apis = pipeline_apis(&ctx);
    // Fail fast (and stay unready) when the CRD is missing or RBAC forbids the watch.
    for api in &apis {
        api.list(&ListParams::default().limit(1)).await?;
    }
    // The platform's SluicePolicies and the namespaces' labels that select
    // them, cached before the first reconcile, so none is checked against a
    // policy not yet read; their changes reconcile the pipelines they
    // concern again.
    let (policies, namespaces, changes) = guardrails::watch(&ctx.client).await?;
    let _guardrails = {
        let ctx = ctx.clone();
        AbortOnDrop(tokio::spawn(changes.for_each(move |()| {
            if let Some(g) = ctx.guardrails() {
                g.retrigger(&[]);
            }
            futures::future::ready(())
        })))
    };
    let _ = policies.wait_until_ready().await;
    let _ = namespaces.wait_until_ready().await;
    readiness.set_ready();
    info!(namespaces = ?ctx.config.watch_namespaces, "watching DataPipelines");
    let mut triggers = Vec::new();
    let controllers: Vec<_> = apis
        .into_iter()
        .zip(
            ctx.config
                .watch_namespaces
                .iter()
                .map(|n| Some(n.clone()))
                .chain(std::iter::repeat(None)),
        )
        .map(|(api, namespace)| {
            let (sender, receiver) = mpsc::unbounded();
            triggers.push((namespace, sender));
            // The cache sees every change; reconciles are triggered only by
            // those to the spec and metadata (and by the requeues reconciles
            // ask for), not by status writes — the operator's own and the
            // health poller's — which would each cost a full set of AWS reads.
            let (reader, writer) = reflector::store();
            let changes = watcher(api, watcher::Config::default().any_semantic())
                .backoff(crate::watch::backoff())
                .modify(slim)
                .reflect(writer)
                .applied_objects()
                .predicate_filter(spec_or_metadata, Default::default());
            // Every reconcile starts at once and waits for a slot in turn
            // with the other namespaces' (`reconcile`): a runner limit
            // would queue them first come, first served, and one
            // namespace's 500 would go before another's one.
            Controller::for_stream(changes, reader).reconcile_on(receiver)
        })
        .collect();
    let _ = ctx.guardrails.set(Guardrails::new(
        controllers.iter().map(Controller::store).collect(),
        policies,
        namespaces,
        triggers,
    ));
    // Health reads the pipelines the controllers' watches hold.
    let stores = controllers.iter().map(Controller::store).collect();
    let _health = AbortOnDrop(tokio::spawn(ctx.health_poller().run(stores)));
    let controllers = controllers.into_iter().map(|controller| {
        match &stop {
            None => controller.shutdown_on_signal(),
            Some(stop) => controller.graceful_shutdown_on(stop.clone()),
        }
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile failed");
            }
        })
    });
    futures::future::join_all(controllers).await;
    Ok(())
}

/// Tells a leader's controller to stop gracefully: it resolves when the
/// leader is asked to stop ([`crate::leader::Elector`]; the leader drops
/// the controller anyway after its grace).
pub type Stop = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// How a reconcile ended, for `sluice_reconciles_total{outcome}`.
mod outcome {
    /// Every resource converged.
    pub const READY: &str = "ready";
    /// Waiting for AWS to catch up.
    pub const WAITING: &str = "waiting";
    /// Needs a change to the spec or to AWS by a person.
    pub const STALLED: &str = "stalled";
    /// Failed; retried with backoff.
    pub const ERROR: &str = "error";
    /// `spec.suspend` is set.
    pub const SUSPENDED: &str = "suspended";
    /// Cleanup finished; the finalizer is removed.
    pub const DELETED: &str = "deleted";
    /// Only the finalizer was added or removed.
    pub const FINALIZER: &str = "finalizer";
    /// First seen after a restart, converged: no AWS call, resynced at its
    /// phase.
    pub const RESUMED: &str = "resumed";
}

/// Drops what neither reconciling nor health reads from a cached pipeline:
/// `managedFields` and kubectl's copy of the whole manifest in the
/// `last-applied-configuration` annotation, each about as large as the
/// spec. The cache holds every pipeline, so they are most of its size.
fn slim(dp: &mut DataPipeline) {
    dp.metadata.managed_fields = None;
    if let Some(annotations) = dp.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// When a converged pipeline is next read back from AWS, from `now` (time
/// since the Unix epoch): at its own phase of the resync period, a hash of
/// its UID, so a fleet's resyncs are spread evenly over the period whatever
/// order the pipelines converged in, and stay spread across restarts. The
/// wait is at least half a period, so a pipeline that converged just before
/// its phase is not read again at once.
pub fn next_resync(uid: &str, period: Duration, now: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let period_ms = period.as_millis().max(1) as u64;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    let phase = h.finish() % period_ms;
    let now_ms = (now.as_millis() % u128::from(period_ms)) as u64;
    let mut wait = (phase + period_ms - now_ms) % period_ms;
    if wait < period_ms / 2 {
        wait += period_ms;
    }
    Duration::from_millis(wait)
}

/// A hash of what a reconcile acts on: the generation (the spec), labels,
/// annotations (a person can poke a pipeline with one), finalizers and
/// deletion. Status is left out.
fn spec_or_metadata(dp: &DataPipeline) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dp.metadata.generation.hash(&mut h);
    dp.labels().hash(&mut h);
    dp.annotations().hash(&mut h);
    dp.finalizers().hash(&mut h);
    dp.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut h);
    Some(h.finish())
}

fn key(dp: &DataPipeline) -> String {
    format!("{}/{}", dp.namespace().unwrap_or_default(), dp.name_any())
}

async fn reconcile(dp: Arc<DataPipeline>, ctx: Arc<Context>) -> Result<Action> {
    // A slot is held only while this pipeline works; waits for AWS to catch
    // up are requeues, which give it back. Namespaces take turns at the
    // slots, so every reconcile is started at once and waits here: as this
    // small future, the reconcile's own (about 12 KiB) being made only once
    // it holds a slot.
    let ns = dp.namespace().unwrap_or_default();
    // Another replica's shard: nothing to do here (its holder reconciles
    // it; this replica is told when the shard becomes its own).
    if ctx.shards.count() > 1 && !ctx.shards.holds(&ns) {
        return Ok(Action::await_change());
    }
    let slot = ctx.slots.acquire(&ns).await;
    let result = Box::pin(reconcile_in_slot(dp, ctx, ns)).await;
    drop(slot);
    result
}

async fn reconcile_in_slot(dp: Arc<DataPipeline>, ctx: Arc<Context>, ns: String) -> Result<Action> {
    // Not even the finalizer is written by a replica that stopped leading.
    if !ctx.may_write_for(&ns) {
        return Err(Error::NotLeader("no reconcile"));
    }
    let started = Instant::now();
    let api: Api<DataPipeline> = Api::namespaced(ctx.client.clone(), &ns);
    // Set by apply or cleanup; stays "finalizer" when the helper only added
    // or removed the finalizer.
    let ended = std::sync::Mutex::new(outcome::FINALIZER);
    let result = finalizer(&api, FINALIZER, dp, |event| async {
        let (result, how) = match event {
            FinalizerEvent::Apply(dp) => apply(&dp, &ctx).await,
            FinalizerEvent::Cleanup(dp) => cleanup(&dp, &ctx).await,
        };
        if let Ok(mut ended) = ended.lock() {
            *ended = how;
        }
        result
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let how = match (&result, ended.lock().map(|e| *e)) {
        (Err(_), _) => outcome::ERROR,
        (Ok(_), Ok(how)) => how,
        (Ok(_), Err(_)) => outcome::FINALIZER,
    };
    if how == outcome::FINALIZER || how == outcome::DELETED {
        // The finalizer helper added or removed the finalizer: one patch.
        ctx.metrics.kube_write("finalizer");
    }
    ctx.metrics.reconciled(how, started.elapsed().as_secs_f64());
    result
}

fn error_policy(dp: Arc<DataPipeline>, error: &Error, _ctx: Arc<Context>) -> Action {
    let inner = match error {
        Error::Finalizer(e) => match e.as_ref() {
            kube::runtime::finalizer::Error::CleanupFailed(inner)
            | kube::runtime::finalizer::Error::ApplyFailed(inner) => Some(inner),
            _ => None,
        },
        other => Some(other),
    };
    match inner {
        Some(Error::Waiting { after, .. }) => Action::requeue(*after),
        // The controller is being stopped; nothing to warn about.
        _ if error.is_not_leader() => Action::requeue(Duration::from_secs(5)),
        _ => {
            warn!(pipeline = %key(&dp), error = %error, "will retry");
            Action::requeue(Duration::from_secs(15))
        }
    }
}

/// The pipeline's identity in AWS: its names, and what it may adopt: a
/// resource released in its own namespace (by the namespace's UID), or in
/// the earlier namespace its `sluice.dev/adopt-from-namespace-uid`
/// annotation names where `effective` allows that.
fn pipeline_id(dp: &DataPipeline, ctx: &Context, aws: &Aws, effective: &Effective) -> PipelineId {
    let mut id = PipelineId::of(
        dp,
        &ctx.config,
        &aws.account,
        &aws.region,
        plan::recorded_buckets(dp),
    );
    id.namespace_uid = ctx
        .guardrails()
        .map(|g| g.namespace_uid(&id.namespace))
        .unwrap_or_default();
    if effective.values.allow.adoption_from_earlier_namespace {
        id.adopt_from = dp.annotations().get(ADOPT_FROM_ANNOTATION).cloned();
    }
    id
}

/// The region of a pipeline: its own, else the operator's default.
pub(crate) fn region(dp: &DataPipeline, ctx: &Context) -> String {
    dp.spec
        .region
        .clone()
        .unwrap_or_else(|| ctx.config.default_region.clone())
}

fn plan_for(dp: &DataPipeline, ctx: &Context, pid: &PipelineId) -> Plan {
    plan::plan(
        &dp.spec,
        PlanContext {
            id: pid,
            catalog: &ctx.catalog,
            permissions_boundary: Some(&ctx.config.boundary_in(&pid.account)),
        },
    )
}

async fn apply(dp: &DataPipeline, ctx: &Context) -> (Result<Action>, &'static str) {
    // After a restart every pipeline comes in at once. One that was Ready
    // for this generation, with the code this operator deploys, waits for
    // its resync phase instead: the fleet's reads stay spread over the
    // period rather than all landing now.
    if ctx.first_sight(dp).await && converged_before(dp, &ctx.catalog) {
        ctx.saw_generation(dp).await;
        return (Ok(Action::requeue(ctx.resync(dp))), outcome::RESUMED);
    }
    ctx.saw_generation(dp).await;
    match converge(dp, ctx).await {
        Ok((action, how)) => (Ok(action), how),
        Err(e) => (Err(e), outcome::ERROR),
    }
}

async fn converge(dp: &DataPipeline, ctx: &Context) -> Result<(Action, &'static str)> {
    let generation = dp.metadata.generation;
    let previous = dp.status.clone().unwrap_or_default();
    let key = key(dp);

    // kstatus treats an object without status as ready: say Unknown at once.
    if dp.status.is_none() {
        let started = Verdict::Progressing {
            reason: "Reconciling".into(),
            message: "first reconcile in progress".into(),
        };
        let mut status = previous.clone();
        status.conditions = status::conditions(&[], &started, generation);
        status.conditions[0].status = "Unknown".into();
        write_status(ctx, dp, &previous, status).await?;
    }

    if dp.spec.suspend {
        let mut status = previous.clone();
        status.observed_generation = generation;
        status.conditions = status::conditions(
            &status::reconciler_conditions(&previous.conditions),
            &Verdict::Suspended,
            generation,
        );
        write_status(ctx, dp, &previous, status).await?;
        return Ok((Action::await_change(), outcome::SUSPENDED));
    }

    // Failures before a plan exists keep the recorded inventory as it is.
    let recorded = ctx.recorded_inventory(dp, &previous).await;
    let unplanned = |e: Error| {
        finish(
            ctx,
            dp,
            &previous,
            (recorded.clone(), previous.account.clone()),
            None,
            Err(e),
        )
    };
    if let Err(problems) = reconcile::validate(&dp.spec, &ctx.config, &ctx.catalog) {
        return unplanned(Error::InvalidSpec(problems)).await;
    }
    let namespace = dp.namespace().unwrap_or_default();
    let effective = ctx.effective_policy(&namespace);
    // The platform's guardrails (the account it maps the namespace to
    // among them): a pipeline refused by them changes nothing in AWS (and
    // loses nothing) until it fits again, and is looked at again as soon
    // as its namespace's policies change.
    if let Some(g) = ctx.guardrails() {
        g.checked_against(dp, &effective);
    }
    let aws = match pipeline_aws(dp, ctx, &effective, &previous, !recorded.is_empty()).await {
        Ok(aws) => aws,
        Err(e) => return unplanned(e).await,
    };
    // Its reads, for pacing the account's drift detection.
    let tally = crate::pacing::Tally::default();
    let aws = aws.with_tally(tally.clone());
    let pid = pipeline_id(dp, ctx, &aws, &effective);
    let neighbours = ctx
        .guardrails()
        .map(|g| g.neighbours(&namespace))
        .unwrap_or_default();
    let plan = plan_for(dp, ctx, &pid);
    if let Err(problems) = reconcile::validate::validate_plan(&plan) {
        return unplanned(Error::InvalidSpec(problems)).await;
    }
    let problems = policy::check(
        &dp.spec,
        &plan,
        &aws.region,
        &dp.uid().unwrap_or_default(),
        &neighbours,
        &effective,
    );
    if !problems.is_empty() {
        return unplanned(Error::PolicyViolation(problems.join("; "))).await;
    }
    // A team's zip pinned by version: the digest it holds, read once.
    let plan = match crate::aws::code::resolve(&aws, plan).await {
        Ok(plan) => plan,
        Err(e) => return unplanned(e).await,
    };
    // AWS refused a value of this very plan: the same request would be
    // refused again. It stays Stalled until the spec changes. Status holds
    // the refused plan's digest, so a restarted operator or a new leader
    // does not send it again either; this replica's memory covers a status
    // write its watch has not seen yet.
    let uid = dp.uid().unwrap_or_default();
    let digest = plan_digest(&plan);
    let refused_before = previous.conditions.iter().any(|c| {
        c.type_ == status::STALLED
            && c.status == "True"
            && c.reason == crate::error::AWS_REJECTED
            && c.observed_generation == generation
    });
    let remembered = || async {
        previous.rejected_plan.as_ref() == Some(&digest)
            || ctx.rejected_plans.lock().await.get(&uid) == Some(&digest)
    };
    if refused_before && remembered().await {
        return Ok((Action::requeue(ctx.resync(dp)), outcome::STALLED));
    }
    // A resync of a pipeline converged to this very plan: with role
    // listing on, its roles are read only where the account's listing
    // shows a change ([`crate::aws::listing`]), the listing at most a
    // quarter of the period old.
    let resync = ctx.config.role_listing
        && was_ready(&previous, generation)
        && ctx.converged_plans.lock().await.get(&uid) == Some(&digest);
    let aws = aws.with_listing_age(resync.then(|| ctx.pacer.period_of(&uid) / 4));
    let mut progress = recorded.clone();
    let result = reconcile::apply(&aws, &pid, &plan, &mut progress).await;
    {
        let mut rejected = ctx.rejected_plans.lock().await;
        if result.as_ref().is_err_and(Error::is_rejected) {
            rejected.insert(uid.clone(), digest);
        } else {
            rejected.remove(&uid);
        }
    }
    if result.is_ok() {
        ctx.reset_backoff(&key).await;
        ctx.pacer
            .record(&uid, &aws.account, &aws.region, tally.reads());
    }
    let account = Some(account_of(&aws));
    finish(ctx, dp, &previous, (progress, account), Some(&plan), result).await
}

/// Whether the pipeline's status says it converged to its current
/// generation with the handler code of `catalog`.
fn converged_before(dp: &DataPipeline, catalog: &Catalog) -> bool {
    let Some(status) = &dp.status else {
        return false;
    };
    was_ready(status, dp.metadata.generation)
        && status.observed_generation == dp.metadata.generation
        && status.functions.iter().all(|f| match &f.handler {
            // Built-in code changes with the operator's artifact.
            Some(handler) => catalog
                .get(handler)
                .is_some_and(|a| a.code_sha256() == f.code_sha256),
            // A team's code changes only with the spec.
            None => true,
        })
}

/// Whether Ready is True for `generation` in `status`.
fn was_ready(status: &DataPipelineStatus, generation: Option<i64>) -> bool {
    status.conditions.iter().any(|c| {
        c.type_ == status::READY && c.status == "True" && c.observed_generation == generation
    })
}

/// A digest of a plan, to tell a changed plan from drift in AWS.
fn plan_digest(plan: &Plan) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("{plan:?}").as_bytes()))
}

/// Publishes events, writes status and picks when to come back.
/// `progress` holds what was made and the account it is in.
async fn finish(
    ctx: &Context,
    dp: &DataPipeline,
    previous: &DataPipelineStatus,
    (progress, account): (Progress, Option<AccountStatus>),
    plan: Option<&Plan>,
    result: Result<()>,
) -> Result<(Action, &'static str)> {
    // A write refused because this replica stopped leading: no event, no
    // status; the leader reconciles the pipeline.
    let result = match result {
        Err(e) if e.is_not_leader() => return Err(e),
        result => result,
    };
    let generation = dp.metadata.generation;
    // An update while the spec and the plan are what was last converged
    // sets back a change made outside Sluice.
    let uid = dp.uid().unwrap_or_default();
    let digest = plan.map(plan_digest);
    let drift = was_ready(previous, generation) && {
        let last = ctx.converged_plans.lock().await.get(&uid).cloned();
        last.is_none() || last == digest
    };
    publish_changes(ctx, dp, &progress.changes, drift).await;
    let inventory = progress.inventory();
    ctx.remember_inventory(dp, &inventory).await;
    let previous_stall = previous
        .conditions
        .iter()
        .find(|c| c.type_ == status::STALLED && c.status == "True");
    let (verdict, action, how) = match &result {
        Ok(()) => {
            if let Some(digest) = &digest {
                ctx.converged_plans
                    .lock()
                    .await
                    .insert(uid.clone(), digest.clone());
            }
            let message = format!("{} AWS resources converged", inventory.len());
            (
                Verdict::Ready { message },
                Action::requeue(ctx.resync(dp)),
                outcome::READY,
            )
        }
        Err(e) if e.is_stalled() => {
            ctx.metrics.failed(e.metric_label());
            // A stall is published when it starts (or changes), not on
            // every resync that finds it again.
            let message = e.to_string();
            let repeated = previous_stall.is_some_and(|c| {
                c.reason == e.reason() && c.message == status::truncate(&message, 1024)
            });
            if !repeated {
                publish(ctx, dp, EventType::Warning, e.reason(), &message).await;
            }
            (
                Verdict::Stalled {
                    reason: e.reason().into(),
                    message,
                },
                Action::requeue(ctx.resync(dp)),
                outcome::STALLED,
            )
        }
        Err(Error::Waiting { what, after }) => (
            Verdict::Progressing {
                reason: "WaitingForAWS".into(),
                message: format!("waiting: {what}"),
            },
            Action::requeue(*after),
            outcome::WAITING,
        ),
        // Throttling is flow control: the call was retried inside its
        // limiter already; the pipeline gives its slot to the others and
        // comes back soon, with neither an error event nor a stall.
        Err(Error::Aws(e)) if e.class == ErrorClass::Throttled => {
            let after = Duration::from_secs(5).mul_f64(1.0 + rand::random::<f64>());
            (
                Verdict::Progressing {
                    reason: "AWSThrottled".into(),
                    message: format!(
                        "AWS is throttling {} {}; continuing in {}s",
                        e.service.as_str(),
                        e.operation,
                        after.as_secs()
                    ),
                },
                Action::requeue(after),
                outcome::WAITING,
            )
        }
        Err(e) => {
            ctx.metrics.failed(e.metric_label());
            publish(ctx, dp, EventType::Warning, e.reason(), &e.to_string()).await;
            let after = ctx.backoff(&key(dp)).await;
            (
                Verdict::Progressing {
                    reason: e.reason().into(),
                    message: format!("{e}; retrying in {}s", after.as_secs()),
                },
                Action::requeue(after),
                outcome::ERROR,
            )
        }
    };
    if result.is_ok() && !was_ready(previous, generation) {
        if let Some(seconds) = ctx.first_ready(dp).await {
            ctx.metrics.time_to_ready(seconds);
        }
        let note = format!(
            "generation {}: {} AWS resources converged",
            generation.unwrap_or_default(),
            inventory.len()
        );
        publish(ctx, dp, EventType::Normal, events::reasons::READY, &note).await;
    }
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.conditions = status::conditions(
        &status::reconciler_conditions(&previous.conditions),
        &verdict,
        generation,
    );
    status.inventory = inventory;
    status.account = account;
    status.warnings = reconcile::validate::warnings(&dp.spec);
    status.rejected_plan = match &result {
        Err(e) if e.is_rejected() => digest,
        _ => None,
    };
    if let Some(plan) = plan {
        status.functions = plan
            .functions
            .iter()
            .filter(|f| {
                result.is_ok()
                    || status
                        .inventory
                        .iter()
                        .any(|e| e.id == f.name && e.state == "Ready")
            })
            .map(|f| FunctionStatus {
                name: f.logical.clone(),
                handler: f.code.builtin().map(str::to_owned),
                source: f.code.builtin().is_none().then(|| f.code.source()),
                code_sha256: f.code.code_sha256().unwrap_or_default(),
            })
            .collect();
    }
    write_status(ctx, dp, previous, status).await?;
    Ok((action, how))
}

async fn cleanup(dp: &DataPipeline, ctx: &Context) -> (Result<Action>, &'static str) {
    match remove(dp, ctx).await {
        Ok(action) => (Ok(action), outcome::DELETED),
        Err(e) => (Err(e), outcome::ERROR),
    }
}

async fn remove(dp: &DataPipeline, ctx: &Context) -> Result<Action> {
    let previous = dp.status.clone().unwrap_or_default();
    let region = region(dp, ctx);
    if !ctx.config.allowed_regions.contains(&region) {
        // Never allowed, so nothing was created there.
        return Ok(Action::await_change());
    }
    let namespace = dp.namespace().unwrap_or_default();
    let effective = ctx.effective_policy(&namespace);
    let mut progress = ctx.recorded_inventory(dp, &previous).await;
    let result = match cleanup_aws(dp, ctx, &effective, &previous, !progress.is_empty()).await {
        Ok(Some(aws)) => {
            let pid = pipeline_id(dp, ctx, &aws, &effective);
            let plan = reconcile::validate(&dp.spec, &ctx.config, &ctx.catalog)
                .ok()
                .map(|()| plan_for(dp, ctx, &pid));
            let retain = dp.spec.deletion_policy == DeletionPolicy::Retain;
            reconcile::cleanup(&aws, &pid, plan.as_ref(), retain, &mut progress).await
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    publish_changes(ctx, dp, &progress.changes, false).await;
    if let Err(e) = result {
        if e.is_not_leader() {
            return Err(e);
        }
        publish(ctx, dp, EventType::Warning, "CleanupFailed", &e.to_string()).await;
        let mut status = previous.clone();
        status.inventory = progress.inventory();
        ctx.remember_inventory(dp, &status.inventory).await;
        status.conditions = status::conditions(
            &status::reconciler_conditions(&previous.conditions),
            &Verdict::Progressing {
                reason: "Deleting".into(),
                message: format!("deleting AWS resources: {e}"),
            },
            dp.metadata.generation,
        );
        write_status(ctx, dp, &previous, status).await?;
        return Err(e);
    }
    ctx.forget_inventory(dp).await;
    ctx.pacer.forget(&dp.uid().unwrap_or_default());
    if let Some(g) = ctx.guardrails() {
        g.deleted(dp);
    }
    ctx.converged_plans
        .lock()
        .await
        .remove(&dp.uid().unwrap_or_default());
    ctx.rejected_plans
        .lock()
        .await
        .remove(&dp.uid().unwrap_or_default());
    ctx.generations
        .lock()
        .await
        .remove(&dp.uid().unwrap_or_default());
    Ok(Action::await_change())
}

/// Logs and publishes one event per AWS change ([`events::for_change`]);
/// with `drift`, updates are drift corrections and are counted as such.
async fn publish_changes(
    ctx: &Context,
    dp: &DataPipeline,
    changes: &[reconcile::Change],
    drift: bool,
) {
    for change in changes {
        info!(pipeline = %key(dp), kind = change.kind.as_str(), id = %change.id, what = %change.what, "changed AWS resource");
        let (reason, action, note) = events::for_change(change, drift);
        if reason == events::reasons::DRIFT_CORRECTED {
            ctx.metrics.drift_corrected(change.kind.as_str());
        }
        events::publish(
            &ctx.recorder,
            &ctx.metrics,
            dp,
            EventType::Normal,
            &reason,
            &action,
            &note,
        )
        .await;
    }
}

async fn publish(ctx: &Context, dp: &DataPipeline, type_: EventType, reason: &str, note: &str) {
    events::publish(
        &ctx.recorder,
        &ctx.metrics,
        dp,
        type_,
        reason,
        "Reconcile",
        note,
    )
    .await;
}

async fn write_status(
    ctx: &Context,
    dp: &DataPipeline,
    previous: &DataPipelineStatus,
    status: DataPipelineStatus,
) -> Result<()> {
    // `status.health` and `Healthy` belong to the health poller.
    let mut status = status;
    status.health = None;
    status
        .conditions
        .retain(|c| status::RECONCILER_CONDITIONS.contains(&c.type_.as_str()));
    let unchanged = dp.status.is_some()
        && previous.observed_generation == status.observed_generation
        && status::same_conditions(
            &status::reconciler_conditions(&previous.conditions),
            &status.conditions,
        )
        && previous.inventory == status.inventory
        && previous.account == status.account
        && previous.functions == status.functions
        && previous.warnings == status.warnings;
    if unchanged {
        return Ok(());
    }
    if !ctx.may_write_for(&dp.namespace().unwrap_or_default()) {
        return Err(Error::NotLeader("status not written"));
    }
    let api: Api<DataPipeline> =
        Api::namespaced(ctx.client.clone(), &dp.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "DataPipeline",
        "status": status,
    });
    ctx.metrics.kube_write("status");
    api.patch_status(
        &dp.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{DataPipeline, next_resync, outcome, spec_or_metadata};
    use crate::crd::DataPipelineStatus;

    #[test]
    fn status_changes_do_not_trigger_a_reconcile_spec_and_metadata_changes_do() {
        let mut dp = DataPipeline::new("p", serde_json::from_str("{}").expect("spec"));
        dp.metadata.generation = Some(1);
        let before = spec_or_metadata(&dp);
        dp.status = Some(DataPipelineStatus {
            observed_generation: Some(1),
            ..Default::default()
        });
        assert_eq!(spec_or_metadata(&dp), before, "status only");
        dp.metadata.annotations = Some([("sluice.dev/poke".to_owned(), "1".to_owned())].into());
        let poked = spec_or_metadata(&dp);
        assert_ne!(poked, before, "annotation");
        dp.metadata.generation = Some(2);
        assert_ne!(spec_or_metadata(&dp), poked, "spec");
        let mut deleting = dp.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_ne!(
            spec_or_metadata(&deleting),
            spec_or_metadata(&dp),
            "deletion"
        );
    }

    #[test]
    fn resyncs_are_spread_evenly_over_the_period_and_keep_their_phase() {
        let period = Duration::from_secs(300);
        let now = Duration::from_secs(1_800_000_000);
        // 1,000 pipelines converging at the same moment (a restart, or a
        // fleet applied at once) resync at their own phases: every tenth
        // of the period gets close to a tenth of them.
        let mut tenths = [0u32; 10];
        for i in 0..1000 {
            let uid = format!("uid-{i}");
            let wait = next_resync(&uid, period, now);
            assert!(wait >= period / 2 && wait < period * 3 / 2, "{wait:?}");
            let at = (now + wait).as_millis() % period.as_millis();
            tenths[(at * 10 / period.as_millis()) as usize] += 1;
            // The next one is a whole period later, whenever it ran.
            let again = next_resync(&uid, period, now + wait + Duration::from_millis(250));
            assert_eq!(
                (now + wait + Duration::from_millis(250) + again).as_millis() % period.as_millis(),
                at,
                "same phase"
            );
        }
        assert!(tenths.iter().all(|n| (70..=130).contains(n)), "{tenths:?}");
    }

    #[test]
    fn slim_drops_managed_fields_and_the_last_applied_copy_only() {
        let mut dp = DataPipeline::new("p", serde_json::from_str("{}").expect("spec"));
        dp.metadata.managed_fields = Some(vec![Default::default()]);
        dp.metadata.annotations = Some(
            [
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                    "{...}".to_owned(),
                ),
                ("team".to_owned(), "a".to_owned()),
            ]
            .into(),
        );
        super::slim(&mut dp);
        assert!(dp.metadata.managed_fields.is_none());
        assert_eq!(
            dp.metadata
                .annotations
                .expect("kept")
                .keys()
                .collect::<Vec<_>>(),
            ["team"]
        );
    }

    #[test]
    fn every_outcome_is_exported_from_zero() {
        for o in [
            outcome::READY,
            outcome::WAITING,
            outcome::STALLED,
            outcome::ERROR,
            outcome::SUSPENDED,
            outcome::DELETED,
            outcome::FINALIZER,
            outcome::RESUMED,
        ] {
            assert!(crate::metrics::OUTCOMES.contains(&o), "{o}");
        }
    }
}
