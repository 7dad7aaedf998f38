//! Kubernetes wiring: the watch, the finalizer, status writes, events and
//! the retry policy. AWS work is delegated to [`crate::reconcile`].

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        finalizer::{Event as FinalizerEvent, finalizer},
        watcher,
    },
};
use serde_json::json;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{
    Error, Result,
    artifacts::Catalog,
    aws::Aws,
    config::OperatorConfig,
    crd::{DataPipeline, DataPipelineStatus, DeletionPolicy, FunctionStatus, InventoryEntry},
    metrics::Metrics,
    naming::PipelineId,
    plan::{self, Plan, PlanContext},
    reconcile::{
        self, Progress,
        status::{self, Verdict},
    },
    server::Readiness,
};

/// Finalizer that keeps a pipeline until its AWS resources are gone.
pub const FINALIZER: &str = "sluice.dev/cleanup";
/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "sluice-operator";

/// State shared by every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Operator configuration.
    pub config: OperatorConfig,
    /// Built-in handler artifacts.
    pub catalog: Catalog,
    /// AWS SDK configuration (credentials, endpoint override).
    pub sdk: aws_config::SdkConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    regions: Mutex<HashMap<String, Aws>>,
    failures: Mutex<HashMap<String, u32>>,
    /// The inventory each pipeline's last reconcile recorded, by UID. The
    /// next reconcile may start from a watch cache that does not hold that
    /// status write yet; starting from a stale inventory would forget a
    /// resource created a moment ago (and, with its tags not yet visible,
    /// take it for someone else's).
    inventories: Mutex<HashMap<String, Vec<InventoryEntry>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for the controller.
    pub fn new(
        client: Client,
        config: OperatorConfig,
        catalog: Catalog,
        sdk: aws_config::SdkConfig,
        metrics: Metrics,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            catalog,
            sdk,
            metrics,
            regions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            inventories: Mutex::new(HashMap::new()),
        }
    }

    /// AWS clients for a region, connected on first use.
    pub async fn aws(&self, region: &str) -> Result<Aws> {
        let mut regions = self.regions.lock().await;
        if let Some(aws) = regions.get(region) {
            return Ok(aws.clone());
        }
        let aws = Aws::connect(
            &self.sdk,
            region,
            self.config.rate_limits,
            self.metrics.clone(),
        )
        .await?;
        regions.insert(region.to_owned(), aws.clone());
        Ok(aws)
    }

    fn resync(&self) -> Duration {
        let jitter = self
            .config
            .resync
            .mul_f64(self.config.resync_jitter * rand::random::<f64>());
        self.config.resync + jitter
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
    /// watch cache is fresh and the status is authoritative).
    async fn recorded_inventory(&self, dp: &DataPipeline, status: &DataPipelineStatus) -> Progress {
        let uid = dp.uid().unwrap_or_default();
        match self.inventories.lock().await.get(&uid) {
            Some(inventory) => Progress::from_inventory(inventory),
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

/// Runs the controller until SIGTERM/SIGINT: one watch of every namespace,
/// or, with `SLUICE_WATCH_NAMESPACES`, one controller per listed namespace
/// (each with its own watch, so the operator needs no cluster-wide read).
pub async fn run(ctx: Arc<Context>, readiness: Readiness) -> Result<()> {
    let apis: Vec<Api<DataPipeline>> = if ctx.config.watch_namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .watch_namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    // Fail fast (and stay unready) when the CRD is missing or RBAC forbids the watch.
    for api in &apis {
        api.list(&ListParams::default().limit(1)).await?;
    }
    readiness.set_ready();
    info!(namespaces = ?ctx.config.watch_namespaces, "watching DataPipelines");
    let controllers = apis.into_iter().map(|api| {
        Controller::new(api, watcher::Config::default().any_semantic())
            .shutdown_on_signal()
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

fn key(dp: &DataPipeline) -> String {
    format!("{}/{}", dp.namespace().unwrap_or_default(), dp.name_any())
}

async fn reconcile(dp: Arc<DataPipeline>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let ns = dp.namespace().unwrap_or_default();
    let api: Api<DataPipeline> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, dp, |event| async {
        match event {
            FinalizerEvent::Apply(dp) => apply(&dp, &ctx).await,
            FinalizerEvent::Cleanup(dp) => cleanup(&dp, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciled(outcome, started.elapsed().as_secs_f64());
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
        _ => {
            warn!(pipeline = %key(&dp), error = %error, "will retry");
            Action::requeue(Duration::from_secs(15))
        }
    }
}

fn pipeline_id(dp: &DataPipeline, ctx: &Context, aws: &Aws) -> PipelineId {
    PipelineId {
        prefix: ctx.config.name_prefix.clone(),
        account: aws.account.clone(),
        region: aws.region.clone(),
        namespace: dp.namespace().unwrap_or_default(),
        name: dp.name_any(),
        uid: dp.uid().unwrap_or_default(),
    }
}

fn region(dp: &DataPipeline, ctx: &Context) -> String {
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
            permissions_boundary: ctx.config.permissions_boundary.as_deref(),
        },
    )
}

async fn apply(dp: &DataPipeline, ctx: &Context) -> Result<Action> {
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
        status.conditions =
            status::conditions(&previous.conditions, &Verdict::Suspended, generation);
        write_status(ctx, dp, &previous, status).await?;
        return Ok(Action::await_change());
    }

    // Failures before a plan exists keep the recorded inventory as it is.
    let recorded = ctx.recorded_inventory(dp, &previous).await;
    let unplanned = |e: Error| finish(ctx, dp, &previous, recorded.clone(), None, Err(e));
    if let Err(problems) = reconcile::validate(&dp.spec, &ctx.config, &ctx.catalog) {
        return unplanned(Error::InvalidSpec(problems)).await;
    }
    let aws = match ctx.aws(&region(dp, ctx)).await {
        Ok(aws) => aws,
        Err(e) => return unplanned(e).await,
    };
    let pid = pipeline_id(dp, ctx, &aws);
    let plan = plan_for(dp, ctx, &pid);
    if let Err(problems) = reconcile::validate::validate_plan(&plan) {
        return unplanned(Error::InvalidSpec(problems)).await;
    }
    let mut progress = recorded.clone();
    let result = reconcile::apply(&aws, &pid, &plan, &mut progress).await;
    if result.is_ok() {
        ctx.reset_backoff(&key).await;
    }
    finish(ctx, dp, &previous, progress, Some(&plan), result).await
}

/// Publishes events, writes status and picks when to come back.
async fn finish(
    ctx: &Context,
    dp: &DataPipeline,
    previous: &DataPipelineStatus,
    progress: Progress,
    plan: Option<&Plan>,
    result: Result<()>,
) -> Result<Action> {
    let generation = dp.metadata.generation;
    publish_changes(ctx, dp, &progress.changes).await;
    let inventory = progress.inventory();
    ctx.remember_inventory(dp, &inventory).await;
    let (verdict, action) = match &result {
        Ok(()) => {
            let message = format!("{} AWS resources converged", inventory.len());
            (Verdict::Ready { message }, Action::requeue(ctx.resync()))
        }
        Err(e) if e.is_stalled() => {
            ctx.metrics.failed(e.metric_label());
            publish(ctx, dp, EventType::Warning, e.reason(), &e.to_string()).await;
            (
                Verdict::Stalled {
                    reason: e.reason().into(),
                    message: e.to_string(),
                },
                Action::requeue(ctx.resync()),
            )
        }
        Err(Error::Waiting { what, after }) => (
            Verdict::Progressing {
                reason: "WaitingForAWS".into(),
                message: format!("waiting: {what}"),
            },
            Action::requeue(*after),
        ),
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
            )
        }
    };
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.conditions = status::conditions(&previous.conditions, &verdict, generation);
    status.inventory = inventory;
    status.warnings = reconcile::validate::warnings(&dp.spec);
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
                handler: f.handler.clone(),
                code_sha256: f.artifact.code_sha256(),
            })
            .collect();
    }
    write_status(ctx, dp, previous, status).await?;
    Ok(action)
}

async fn cleanup(dp: &DataPipeline, ctx: &Context) -> Result<Action> {
    let previous = dp.status.clone().unwrap_or_default();
    let region = region(dp, ctx);
    if !ctx.config.allowed_regions.contains(&region) {
        // Never allowed, so nothing was created there.
        return Ok(Action::await_change());
    }
    let aws = ctx.aws(&region).await?;
    let pid = pipeline_id(dp, ctx, &aws);
    let plan = reconcile::validate(&dp.spec, &ctx.config, &ctx.catalog)
        .ok()
        .map(|()| plan_for(dp, ctx, &pid));
    let retain = dp.spec.deletion_policy == DeletionPolicy::Retain;
    let mut progress = ctx.recorded_inventory(dp, &previous).await;
    let result = reconcile::cleanup(&aws, &pid, plan.as_ref(), retain, &mut progress).await;
    publish_changes(ctx, dp, &progress.changes).await;
    if let Err(e) = result {
        publish(ctx, dp, EventType::Warning, "CleanupFailed", &e.to_string()).await;
        let mut status = previous.clone();
        status.inventory = progress.inventory();
        ctx.remember_inventory(dp, &status.inventory).await;
        status.conditions = status::conditions(
            &previous.conditions,
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
    Ok(Action::await_change())
}

/// Logs and publishes one event per AWS change. The event's action names
/// the resource, because the recorder folds events with the same reason and
/// action into one series and would otherwise hide all but the first.
async fn publish_changes(ctx: &Context, dp: &DataPipeline, changes: &[reconcile::Change]) {
    for change in changes {
        info!(pipeline = %key(dp), kind = change.kind.as_str(), id = %change.id, what = %change.what, "changed AWS resource");
        let reason = change.what.split(' ').next().unwrap_or("Changed");
        let action = format!("{} {}", change.kind.as_str(), change.id);
        let note = format!("{} {}: {}", change.kind.as_str(), change.id, change.what);
        publish_event(ctx, dp, EventType::Normal, reason, &action, &note).await;
    }
}

async fn publish(ctx: &Context, dp: &DataPipeline, type_: EventType, reason: &str, note: &str) {
    publish_event(ctx, dp, type_, reason, "Reconcile", note).await;
}

async fn publish_event(
    ctx: &Context,
    dp: &DataPipeline,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: action.chars().take(128).collect(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &dp.object_ref(&())).await {
        warn!(pipeline = %key(dp), error = %e, "cannot publish event");
    }
}

async fn write_status(
    ctx: &Context,
    dp: &DataPipeline,
    previous: &DataPipelineStatus,
    status: DataPipelineStatus,
) -> Result<()> {
    let unchanged = dp.status.is_some()
        && previous.observed_generation == status.observed_generation
        && status::same_conditions(&previous.conditions, &status.conditions)
        && previous.inventory == status.inventory
        && previous.functions == status.functions
        && previous.warnings == status.warnings;
    if unchanged {
        return Ok(());
    }
    let api: Api<DataPipeline> =
        Api::namespaced(ctx.client.clone(), &dp.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "DataPipeline",
        "status": status,
    });
    api.patch_status(
        &dp.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
