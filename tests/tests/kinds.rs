//! Every kind of the fan-out and stream patterns against the emulator:
//! `Retain` leaves each taggable resource with only the release marker, the
//! pipeline recreated under the same name adopts every one of them, and
//! `Delete` then removes them all. Waits on AWS (a stream becoming ACTIVE)
//! are retried the way the controller retries them.

use std::collections::BTreeMap;

use sluice_integration_tests::{Harness, sample};
use sluice_operator::{
    Error,
    aws::{
        Aws, AwsResource, bucket::Bucket, event_bus::EventBus, function::Function,
        log_group::LogGroup, queue::Queue, role::Role, rule::Rule, schedule::Schedule,
        state_machine::StateMachine, stream::Stream, table::Table,
    },
    crd::{DataPipelineSpec, LoggingLevel},
    naming::{PipelineId, TAG_PIPELINE, TAG_PIPELINE_UID, TAG_RELEASED_BY},
    plan::{Kind, Plan},
    reconcile::{self, Progress},
};

/// The fan-out sample with the other samples' nodes added, and the
/// workflow logging: every kind.
fn every_kind() -> DataPipelineSpec {
    let mut spec = sample("fan-out.yaml");
    let stream = sample("stream.yaml");
    spec.streams = stream.streams;
    spec.tables.extend(stream.tables);
    spec.queues.extend(stream.queues);
    spec.functions.extend(stream.functions);
    let orchestrated = sample("orchestrated.yaml");
    spec.buckets.extend(
        orchestrated
            .buckets
            .into_iter()
            .filter(|b| b.name != "input"),
    );
    spec.functions.extend(orchestrated.functions);
    spec.workflows = orchestrated.workflows;
    spec.workflows[0].logging = LoggingLevel::All;
    let batch = sample("periodic-batch.yaml");
    spec.buckets.extend(batch.buckets);
    spec.queues.extend(batch.queues);
    spec.functions.extend(batch.functions);
    spec.schedules = batch.schedules;
    spec
}

/// Applies until nothing is left to wait for (at most 10 passes).
async fn converge(aws: &Aws, id: &PipelineId, plan: &Plan, progress: &mut Progress) {
    for _ in 0..10 {
        match reconcile::apply(aws, id, plan, progress).await {
            Ok(()) => return,
            Err(Error::Waiting { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("converge: {e}"),
        }
    }
    panic!("still waiting after 10 passes: {:?}", progress.inventory());
}

/// The tags of one resource, for the kinds that carry their own.
async fn tags(aws: &Aws, kind: Kind, id: &str) -> Option<BTreeMap<String, String>> {
    async fn of<R: AwsResource>(aws: &Aws, id: &str) -> Option<BTreeMap<String, String>> {
        let observed = R::observe(aws, id).await.expect("observe")?;
        R::tags(&observed).cloned()
    }
    match kind {
        Kind::Bucket => of::<Bucket>(aws, id).await,
        Kind::Queue => of::<Queue>(aws, id).await,
        Kind::Stream => of::<Stream>(aws, id).await,
        Kind::Table => of::<Table>(aws, id).await,
        Kind::EventBus => of::<EventBus>(aws, id).await,
        Kind::Role => of::<Role>(aws, id).await,
        Kind::Function => of::<Function>(aws, id).await,
        Kind::Rule => of::<Rule>(aws, id).await,
        Kind::LogGroup => of::<LogGroup>(aws, id).await,
        Kind::StateMachine => of::<StateMachine>(aws, id).await,
        Kind::Schedule => of::<Schedule>(aws, id).await,
        // Owned through their function or bucket.
        Kind::InvokeConfig | Kind::Permissions | Kind::EventSourceMapping | Kind::Notification => {
            None
        }
    }
}

#[tokio::test]
async fn every_kind_is_released_adopted_by_its_pipeline_and_deleted() {
    release_adopt_delete(Harness::new().await).await;
}

/// The longest legal namespace and pipeline names (63 and 253 characters):
/// `namespace/name` does not fit AWS's 256-character tag value, so it is
/// cut and hashed; every tag fits, and ownership, release and adoption
/// work on the cut value.
#[tokio::test]
async fn the_longest_legal_names_converge_with_every_tag_within_limits() {
    let mut h = Harness::new().await;
    h.id.namespace = format!("{}-{}", h.id.namespace, "n".repeat(60));
    h.id.name = format!("{}-{}", h.id.name, "p".repeat(253 - h.id.name.len() - 1));
    assert_eq!((h.id.namespace.len(), h.id.name.len()), (63, 253));
    release_adopt_delete(h).await;
}

async fn release_adopt_delete(h: Harness) {
    let spec = every_kind();
    let plan = h.plan(&spec);
    let mut progress = Progress::default();
    converge(&h.aws, &h.id, &plan, &mut progress).await;
    let inventory = progress.inventory();
    let kinds: std::collections::BTreeSet<&str> =
        inventory.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.len(), Kind::APPLY_ORDER.len(), "{kinds:?}");
    let taggable = [
        Kind::Bucket,
        Kind::Queue,
        Kind::Stream,
        Kind::Table,
        Kind::EventBus,
        Kind::Role,
        Kind::Function,
        Kind::Rule,
        Kind::LogGroup,
        Kind::StateMachine,
        Kind::Schedule,
    ];

    // Every tag within AWS's limits: keys 128 characters, values 256.
    for entry in &inventory {
        let kind = Kind::parse(&entry.kind).expect("kind");
        if !taggable.contains(&kind) {
            continue;
        }
        let found = tags(&h.aws, kind, &entry.id).await.expect("tagged");
        for (k, v) in &found {
            assert!(
                k.chars().count() <= 128 && v.chars().count() <= 256,
                "{} {}: tag {k} = {v} ({} characters)",
                entry.kind,
                entry.id,
                v.len()
            );
        }
        assert_eq!(found.get(TAG_PIPELINE), Some(&h.id.pipeline_tag()));
    }

    // Steady state: another pass writes nothing.
    let (_, writes) = h.calls();
    let mut again = Progress::from_inventory(&inventory);
    reconcile::apply(&h.aws, &h.id, &plan, &mut again)
        .await
        .expect("steady");
    assert_eq!(
        h.calls().1,
        writes,
        "steady state wrote: {:?}",
        again.changes
    );

    // Retain: only the marker is left on every taggable resource.
    reconcile::cleanup(&h.aws, &h.id, Some(&plan), true, &mut again)
        .await
        .expect("release");
    assert!(again.inventory().is_empty());
    // The pipeline (not its UID), its namespace's UID and the installation.
    let marker = h.id.release_marker();
    assert_eq!(marker[TAG_RELEASED_BY], h.id.pipeline_tag());
    for entry in &inventory {
        let kind = Kind::parse(&entry.kind).expect("kind");
        if !taggable.contains(&kind) {
            continue;
        }
        let found = tags(&h.aws, kind, &entry.id)
            .await
            .unwrap_or_else(|| panic!("{} {} kept", entry.kind, entry.id));
        let sluice: BTreeMap<String, String> = found
            .into_iter()
            .filter(|(k, _)| k.starts_with("sluice.dev/"))
            .collect();
        assert_eq!(sluice, marker, "{} {}", entry.kind, entry.id);
    }

    // The same namespace and name, recreated (a new UID), adopts them all.
    let h = Harness {
        id: PipelineId {
            uid: format!("{}-recreated", h.id.uid),
            ..h.id.clone()
        },
        ..h
    };
    let plan = h.plan(&spec);
    let mut adopted = Progress::default();
    converge(&h.aws, &h.id, &plan, &mut adopted).await;
    let adoptions = adopted
        .changes
        .iter()
        .filter(|c| c.what == "Adopted")
        .count();
    assert_eq!(
        adoptions,
        inventory
            .iter()
            .filter(|e| taggable.contains(&Kind::parse(&e.kind).expect("kind")))
            .count(),
        "{:?}",
        adopted.changes
    );
    for entry in &inventory {
        let kind = Kind::parse(&entry.kind).expect("kind");
        if let Some(found) = tags(&h.aws, kind, &entry.id).await {
            assert_eq!(
                found.get(TAG_PIPELINE_UID),
                Some(&h.id.uid),
                "{} {}",
                entry.kind,
                entry.id
            );
            assert!(!found.contains_key(TAG_RELEASED_BY));
        }
    }

    // Delete removes every one of them.
    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut adopted)
        .await
        .expect("delete");
    for entry in &inventory {
        let kind = Kind::parse(&entry.kind).expect("kind");
        if taggable.contains(&kind) {
            assert!(
                tags(&h.aws, kind, &entry.id).await.is_none(),
                "{} {} deleted",
                entry.kind,
                entry.id
            );
        }
    }
}
