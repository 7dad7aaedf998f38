//! One reconcile: validate (pure) → plan (pure) → observe, diff and apply
//! each resource in dependency order → garbage-collect what the plan no
//! longer holds (reverse order). Cleanup on deletion walks the same kinds
//! backwards. This module knows nothing of Kubernetes; the controller feeds
//! it a plan and the previous inventory and writes back what it reports.

pub mod status;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    Error, Result,
    aws::{
        Aws, AwsResource, Outcome, Preview, Removal, bucket::Bucket, converge, event_bus::EventBus,
        event_source_mapping::EventSourceMapping, function::Function, invoke_config::InvokeConfig,
        log_group::LogGroup, notification::Notification, permissions::Permissions, queue::Queue,
        remove, role::Role, rule::Rule, schedule::Schedule, state_machine::StateMachine,
        stream::Stream, table::Table,
    },
    crd::InventoryEntry,
    naming::PipelineId,
    plan::{Kind, Plan},
};

pub use validate::validate;

/// Something the operator did to AWS, for events and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Resource kind.
    pub kind: Kind,
    /// AWS id.
    pub id: String,
    /// What happened, e.g. `Created`, `Updated memoryMiB`, `Deleted`.
    pub what: String,
}

/// The record of a reconcile in progress: the inventory as it stands and
/// what changed. Kept even when a step fails, so status never forgets a
/// resource that exists.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    inventory: BTreeMap<(Kind, String), InventoryEntry>,
    /// Changes made, in order.
    pub changes: Vec<Change>,
}

impl Progress {
    /// Starts from the inventory recorded in status.
    pub fn from_inventory(entries: &[InventoryEntry]) -> Self {
        let inventory = entries
            .iter()
            .filter_map(|e| Some(((Kind::parse(&e.kind)?, e.id.clone()), e.clone())))
            .collect();
        Progress {
            inventory,
            changes: Vec::new(),
        }
    }

    /// The inventory, sorted by kind (apply order) then id.
    pub fn inventory(&self) -> Vec<InventoryEntry> {
        self.inventory.values().cloned().collect()
    }

    /// Whether nothing is recorded as made.
    pub fn is_empty(&self) -> bool {
        self.inventory.is_empty()
    }

    fn record(&mut self, kind: Kind, logical: &str, id: &str, arn: Option<String>, state: &str) {
        self.inventory.insert(
            (kind, id.to_owned()),
            InventoryEntry {
                kind: kind.as_str().to_owned(),
                name: logical.to_owned(),
                id: id.to_owned(),
                arn,
                state: state.to_owned(),
            },
        );
    }

    /// The ARN the inventory holds for a resource.
    fn recorded_arn(&self, kind: Kind, id: &str) -> Option<String> {
        self.inventory
            .get(&(kind, id.to_owned()))
            .and_then(|e| e.arn.clone())
    }

    /// Whether the inventory lists this resource.
    fn records(&self, kind: Kind, id: &str) -> bool {
        self.inventory.contains_key(&(kind, id.to_owned()))
    }

    fn forget(&mut self, kind: Kind, id: &str) {
        self.inventory.remove(&(kind, id.to_owned()));
    }

    fn changed(&mut self, kind: Kind, id: &str, what: impl Into<String>) {
        self.changes.push(Change {
            kind,
            id: id.to_owned(),
            what: what.into(),
        });
    }
}

async fn converge_all<R: AwsResource>(
    aws: &Aws,
    pipeline: &PipelineId,
    desired: &[R::Desired],
    progress: &mut Progress,
) -> Result<()> {
    for d in desired {
        let id = R::id(d);
        let recorded = progress.records(R::KIND, id);
        match converge::<R>(aws, pipeline, d, recorded).await {
            Ok(converged) => {
                let arn = converged
                    .arn
                    .or_else(|| R::arn(aws, d))
                    .or_else(|| progress.recorded_arn(R::KIND, id));
                progress.record(R::KIND, R::logical(d), id, arn, "Ready");
                match converged.outcome {
                    Outcome::Unchanged => {}
                    Outcome::Created => progress.changed(R::KIND, id, "Created"),
                    Outcome::Adopted => progress.changed(R::KIND, id, "Adopted"),
                    Outcome::Updated(fields) => {
                        progress.changed(R::KIND, id, format!("Updated {}", fields.join(", ")))
                    }
                }
            }
            // Not ours: never recorded, so nothing later treats it as ours.
            Err(e @ Error::Conflict(_)) => {
                progress.forget(R::KIND, id);
                return Err(e);
            }
            Err(e) => {
                let state = match &e {
                    Error::Waiting { what, .. } => format!("Waiting: {what}"),
                    other => format!("Error: {}", other.reason()),
                };
                // Record what may exist now, so a failure never orphans it.
                let arn = R::arn(aws, d).or_else(|| progress.recorded_arn(R::KIND, id));
                progress.record(R::KIND, R::logical(d), id, arn, &state);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Converges every planned resource, in dependency order, then removes the
/// resources of earlier plans that this one no longer holds.
pub async fn apply(
    aws: &Aws,
    pipeline: &PipelineId,
    plan: &Plan,
    progress: &mut Progress,
) -> Result<()> {
    // Kind::APPLY_ORDER: what grants name, before the roles that hold them.
    converge_all::<Bucket>(aws, pipeline, &plan.buckets, progress).await?;
    converge_all::<Queue>(aws, pipeline, &plan.queues, progress).await?;
    converge_all::<Stream>(aws, pipeline, &plan.streams, progress).await?;
    converge_all::<Table>(aws, pipeline, &plan.tables, progress).await?;
    converge_all::<EventBus>(aws, pipeline, &plan.event_buses, progress).await?;
    converge_all::<LogGroup>(aws, pipeline, &plan.log_groups, progress).await?;
    converge_all::<Role>(aws, pipeline, &plan.roles, progress).await?;
    converge_all::<Function>(aws, pipeline, &plan.functions, progress).await?;
    converge_all::<InvokeConfig>(aws, pipeline, &plan.invoke_configs, progress).await?;
    converge_all::<Permissions>(aws, pipeline, &plan.permissions, progress).await?;
    converge_all::<StateMachine>(aws, pipeline, &plan.state_machines, progress).await?;
    converge_all::<Rule>(aws, pipeline, &plan.rules, progress).await?;
    converge_all::<Schedule>(aws, pipeline, &plan.schedules, progress).await?;
    converge_all::<EventSourceMapping>(aws, pipeline, &plan.event_source_mappings, progress)
        .await?;
    converge_all::<Notification>(aws, pipeline, &plan.notifications, progress).await?;

    let wanted = plan.ids();
    let stale: BTreeSet<(Kind, String)> = progress
        .inventory
        .keys()
        .filter(|k| !wanted.contains(*k))
        .cloned()
        .collect();
    remove_all(aws, pipeline, &stale, &BTreeSet::new(), false, progress).await
}

/// One resource of a [`preview`]: what converging would do to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Previewed {
    /// Its kind.
    pub kind: Kind,
    /// Its AWS id.
    pub id: String,
    /// Its logical name in the spec.
    pub logical: String,
    /// What would happen.
    pub preview: Preview,
}

async fn preview_all<R: AwsResource>(
    aws: &Aws,
    pipeline: &PipelineId,
    desired: &[R::Desired],
    recorded: &BTreeSet<(Kind, String)>,
    out: &mut Vec<Previewed>,
) -> Result<()> {
    for d in desired {
        let id = R::id(d);
        let known = recorded.contains(&(R::KIND, id.to_owned()));
        out.push(Previewed {
            kind: R::KIND,
            id: id.to_owned(),
            logical: R::logical(d).to_owned(),
            preview: crate::aws::preview::<R>(aws, pipeline, d, known).await?,
        });
    }
    Ok(())
}

/// What [`apply`] would do, read-only: each planned resource observed and
/// diffed in apply order by the code `apply` uses. `recorded` is the
/// pipeline's inventory where known (its resources whose tags were lost
/// are still its own). Resources the inventory holds and the plan does not
/// are not listed: the caller knows them as deletions.
pub async fn preview(
    aws: &Aws,
    pipeline: &PipelineId,
    plan: &Plan,
    recorded: &BTreeSet<(Kind, String)>,
) -> Result<Vec<Previewed>> {
    let mut out = Vec::new();
    let r = recorded;
    preview_all::<Bucket>(aws, pipeline, &plan.buckets, r, &mut out).await?;
    preview_all::<Queue>(aws, pipeline, &plan.queues, r, &mut out).await?;
    preview_all::<Stream>(aws, pipeline, &plan.streams, r, &mut out).await?;
    preview_all::<Table>(aws, pipeline, &plan.tables, r, &mut out).await?;
    preview_all::<EventBus>(aws, pipeline, &plan.event_buses, r, &mut out).await?;
    preview_all::<LogGroup>(aws, pipeline, &plan.log_groups, r, &mut out).await?;
    preview_all::<Role>(aws, pipeline, &plan.roles, r, &mut out).await?;
    preview_all::<Function>(aws, pipeline, &plan.functions, r, &mut out).await?;
    preview_all::<InvokeConfig>(aws, pipeline, &plan.invoke_configs, r, &mut out).await?;
    preview_all::<Permissions>(aws, pipeline, &plan.permissions, r, &mut out).await?;
    preview_all::<StateMachine>(aws, pipeline, &plan.state_machines, r, &mut out).await?;
    preview_all::<Rule>(aws, pipeline, &plan.rules, r, &mut out).await?;
    preview_all::<Schedule>(aws, pipeline, &plan.schedules, r, &mut out).await?;
    preview_all::<EventSourceMapping>(aws, pipeline, &plan.event_source_mappings, r, &mut out)
        .await?;
    preview_all::<Notification>(aws, pipeline, &plan.notifications, r, &mut out).await?;
    Ok(out)
}

/// Deletes (or with `retain` releases) every resource of the plan and the
/// inventory, in reverse dependency order.
pub async fn cleanup(
    aws: &Aws,
    pipeline: &PipelineId,
    plan: Option<&Plan>,
    retain: bool,
    progress: &mut Progress,
) -> Result<()> {
    let mut ids: BTreeSet<(Kind, String)> = progress.inventory.keys().cloned().collect();
    let mut empty_first = BTreeSet::new();
    if let Some(plan) = plan {
        ids.extend(plan.ids());
        empty_first.extend(
            plan.buckets
                .iter()
                .filter(|b| b.empty_on_delete)
                .map(|b| b.name.clone()),
        );
    }
    remove_all(aws, pipeline, &ids, &empty_first, retain, progress).await
}

async fn remove_all(
    aws: &Aws,
    pipeline: &PipelineId,
    ids: &BTreeSet<(Kind, String)>,
    empty_first: &BTreeSet<String>,
    retain: bool,
    progress: &mut Progress,
) -> Result<()> {
    for kind in Kind::APPLY_ORDER.into_iter().rev() {
        for (_, id) in ids.iter().filter(|(k, _)| *k == kind) {
            let recorded = progress.records(kind, id);
            if kind == Kind::Bucket && !retain && empty_first.contains(id) {
                let emptied =
                    crate::aws::bucket::empty_if_owned(aws, pipeline, id, recorded).await?;
                if emptied > 0 {
                    progress.changed(kind, id, format!("Emptied ({emptied} objects)"));
                }
            }
            let removal = match kind {
                Kind::Bucket => remove::<Bucket>(aws, pipeline, id, retain, recorded).await,
                Kind::Queue => remove::<Queue>(aws, pipeline, id, retain, recorded).await,
                Kind::Stream => remove::<Stream>(aws, pipeline, id, retain, recorded).await,
                Kind::Table => remove::<Table>(aws, pipeline, id, retain, recorded).await,
                Kind::EventBus => remove::<EventBus>(aws, pipeline, id, retain, recorded).await,
                Kind::LogGroup => remove::<LogGroup>(aws, pipeline, id, retain, recorded).await,
                Kind::Role => remove::<Role>(aws, pipeline, id, retain, recorded).await,
                Kind::Function => remove::<Function>(aws, pipeline, id, retain, recorded).await,
                Kind::InvokeConfig => {
                    remove::<InvokeConfig>(aws, pipeline, id, retain, recorded).await
                }
                Kind::Permissions => {
                    remove::<Permissions>(aws, pipeline, id, retain, recorded).await
                }
                Kind::StateMachine => {
                    remove::<StateMachine>(aws, pipeline, id, retain, recorded).await
                }
                Kind::Rule => remove::<Rule>(aws, pipeline, id, retain, recorded).await,
                Kind::Schedule => remove::<Schedule>(aws, pipeline, id, retain, recorded).await,
                Kind::EventSourceMapping => {
                    remove::<EventSourceMapping>(aws, pipeline, id, retain, recorded).await
                }
                Kind::Notification => {
                    remove::<Notification>(aws, pipeline, id, retain, recorded).await
                }
            }?;
            match removal {
                Removal::Absent => {}
                Removal::Deleted => progress.changed(kind, id, "Deleted"),
                Removal::Released => progress.changed(kind, id, "Released"),
                Removal::Skipped(why) => progress.changed(kind, id, format!("Skipped ({why})")),
            }
            progress.forget(kind, id);
        }
    }
    Ok(())
}
