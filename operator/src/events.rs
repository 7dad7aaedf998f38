//! Kubernetes events: one for every change a person cares about, with a
//! CamelCase reason — an AWS resource `Created`, `Updated` (naming the
//! fields), `Adopted`, `Deleted`, `Released`, `DriftCorrected` (naming the
//! field set back), `Ready`, a stall under its own reason (for example
//! `OwnershipConflict`: adoption refused, `InvalidSpec`), `Unhealthy` and
//! `Recovered`. Notes name fields, never values: an environment variable
//! may hold a secret.
//!
//! Deduplication: stalls and health changes are published on transitions
//! only, and the [`Recorder`] folds repeats of one type, reason and action
//! (the resource) about one pipeline within [`SERIES_WINDOW`] into one
//! event series, as client-go does.
//!
//! The recorder is Sluice's own rather than kube-runtime's, whose cache
//! keeps a full copy of every event published in the last six minutes (the
//! event and its key each hold the object reference): about 1.7 KiB per
//! event, 23 KiB per pipeline while a fleet converges. This one keeps a
//! digest of the key and what a series patch needs, about 100 bytes.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
pub use kube::runtime::events::EventType;
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
};
use tracing::warn;

use crate::{crd::DataPipeline, reconcile::Change};

/// Repeats of one event within this window of the last one are folded
/// into its series (client-go and kube-runtime use the same six minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What publishing an event means for the API: a new Event, or a patch of
/// the series an earlier one started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publish {
    /// Create a new Event.
    Create,
    /// Patch the named Event's series to this count.
    Patch {
        /// The Event's name.
        name: Arc<str>,
        /// The series' count, this occurrence included (at least 2).
        count: i32,
    },
}

#[derive(Debug)]
struct Series {
    name: Arc<str>,
    count: i32,
    last: Timestamp,
}

/// The series of the events published within the window, by a digest of
/// their key (type, reason, action and the pipeline's namespace, name and
/// UID). Pure: time is an argument.
#[derive(Debug, Default)]
pub struct SeriesTable {
    series: HashMap<u64, Series>,
    pruned: Option<Timestamp>,
}

impl SeriesTable {
    /// The digest of an event's key.
    pub fn key(type_: EventType, reason: &str, action: &str, regarding: &ObjectReference) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        matches!(type_, EventType::Warning).hash(&mut h);
        reason.hash(&mut h);
        action.hash(&mut h);
        regarding.namespace.hash(&mut h);
        regarding.name.hash(&mut h);
        regarding.uid.hash(&mut h);
        h.finish()
    }

    /// Whether an event with this key, at `now`, starts an Event or
    /// continues a series. Series idle for longer than the window are
    /// forgotten, at most once a minute.
    pub fn next(&mut self, key: u64, now: Timestamp) -> Publish {
        let window = SignedDuration::try_from(SERIES_WINDOW).unwrap_or(SignedDuration::MAX);
        if self
            .pruned
            .is_none_or(|at| now.duration_since(at) >= SignedDuration::from_secs(60))
        {
            self.series
                .retain(|_, s| now.duration_since(s.last) < window);
            self.pruned = Some(now);
        }
        match self.series.get(&key) {
            Some(s) if now.duration_since(s.last) < window => Publish::Patch {
                name: s.name.clone(),
                count: s.count + 1,
            },
            _ => Publish::Create,
        }
    }

    /// Records that the event was published as `name` at `now`, `count`
    /// times in its series.
    pub fn published(&mut self, key: u64, name: Arc<str>, count: i32, now: Timestamp) {
        self.series.insert(
            key,
            Series {
                name,
                count,
                last: now,
            },
        );
    }

    /// Series remembered.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is remembered.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Publishes `events.k8s.io/v1` Events about pipelines.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    series: Arc<Mutex<SeriesTable>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder reporting as `controller` (instance: the pod's name, or
    /// the controller's when unset).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Recorder {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            series: Arc::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, SeriesTable> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes one event, or counts it into its series.
    pub async fn publish(
        &self,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = SeriesTable::key(type_, reason, action, regarding);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let next = self.table().next(key, now);
        if let Publish::Patch { name, count } = next {
            let patch = serde_json::json!({
                "series": { "count": count, "lastObservedTime": MicroTime(now) }
            });
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.table().published(key, name, count, now);
                    return Ok(());
                }
                // The Event expired on the API server: start a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = K8sEvent {
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: Some(note.to_owned()),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..Default::default()
        };
        let created = events.create(&PostParams::default(), &event).await?;
        let name = created
            .metadata
            .name
            .or(event.metadata.name)
            .unwrap_or_default();
        self.table().published(key, name.into(), 1, now);
        Ok(())
    }
}

/// Reasons of the events Sluice publishes (besides stall reasons, which
/// are [`crate::Error::reason`]).
pub mod reasons {
    /// An AWS resource was created.
    pub const CREATED: &str = "Created";
    /// An AWS resource was updated to a new spec; the note names the fields.
    pub const UPDATED: &str = "Updated";
    /// An AWS resource changed out of band was set back; the note names the
    /// fields.
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// Every AWS resource of a new generation converged.
    pub const READY: &str = "Ready";
    /// The pipeline's `Healthy` condition turned False.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// The pipeline's `Healthy` condition turned True again.
    pub const RECOVERED: &str = "Recovered";
    /// Runtime health could not be read.
    pub const HEALTH_UNAVAILABLE: &str = "HealthUnavailable";
}

/// The reason, action and note of the event for one AWS change. `drift`:
/// the spec did not change since the pipeline was last Ready, so an update
/// sets back a change made outside Sluice.
pub fn for_change(change: &Change, drift: bool) -> (String, String, String) {
    let kind = change.kind.as_str();
    let action = format!("{kind} {}", change.id);
    match change.what.strip_prefix("Updated ") {
        Some(fields) if drift => (
            reasons::DRIFT_CORRECTED.to_owned(),
            action,
            format!(
                "{kind} {}: {fields} changed outside Sluice; set back to the spec",
                change.id
            ),
        ),
        _ => {
            let reason = change
                .what
                .split(' ')
                .next()
                .filter(|r| !r.is_empty())
                .unwrap_or("Changed");
            (
                reason.to_owned(),
                action,
                format!("{kind} {}: {}", change.id, change.what),
            )
        }
    }
}

/// Publishes one event about a pipeline. The action names what it is
/// about (a resource, a condition reason), because the recorder folds
/// events of one reason and action into a series that keeps the first
/// note.
pub async fn publish(
    recorder: &Recorder,
    metrics: &crate::metrics::Metrics,
    dp: &DataPipeline,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    // The API refuses a note over 1 kB and an action over 128 bytes.
    let note = truncated(note, 1024);
    let action = truncated(action, 128);
    metrics.kube_write("event");
    if let Err(e) = recorder
        .publish(type_, reason, action, note, &dp.object_ref(&()))
        .await
    {
        warn!(
            pipeline = %dp.metadata.name.as_deref().unwrap_or_default(),
            error = %e,
            "cannot publish event"
        );
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Kind;

    fn change(what: &str) -> Change {
        Change {
            kind: Kind::Function,
            id: "sluice-ns-p-f-0123".into(),
            what: what.into(),
        }
    }

    fn reference(uid: &str) -> ObjectReference {
        ObjectReference {
            namespace: Some("team-a".into()),
            name: Some("orders".into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("a valid timestamp")
    }

    #[test]
    fn repeats_within_the_window_continue_one_series_and_later_ones_start_anew() {
        let mut table = SeriesTable::default();
        let key = SeriesTable::key(
            EventType::Warning,
            "InvalidSpec",
            "Reconcile",
            &reference("u1"),
        );
        assert_eq!(table.next(key, at(0)), Publish::Create);
        table.published(key, "orders.1".into(), 1, at(0));
        assert_eq!(
            table.next(key, at(300)),
            Publish::Patch {
                name: "orders.1".into(),
                count: 2
            }
        );
        table.published(key, "orders.1".into(), 2, at(300));
        // The window runs from the last occurrence, not the first.
        assert_eq!(
            table.next(key, at(300 + 359)),
            Publish::Patch {
                name: "orders.1".into(),
                count: 3
            }
        );
        assert_eq!(table.next(key, at(300 + 360)), Publish::Create);
    }

    #[test]
    fn type_reason_action_and_the_pipeline_each_tell_series_apart() {
        let base = SeriesTable::key(
            EventType::Normal,
            "Created",
            "SQS::Queue q",
            &reference("u1"),
        );
        for other in [
            SeriesTable::key(
                EventType::Warning,
                "Created",
                "SQS::Queue q",
                &reference("u1"),
            ),
            SeriesTable::key(
                EventType::Normal,
                "Deleted",
                "SQS::Queue q",
                &reference("u1"),
            ),
            SeriesTable::key(
                EventType::Normal,
                "Created",
                "SQS::Queue r",
                &reference("u1"),
            ),
            // The same name and namespace, recreated: a new UID.
            SeriesTable::key(
                EventType::Normal,
                "Created",
                "SQS::Queue q",
                &reference("u2"),
            ),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn idle_series_are_forgotten() {
        let mut table = SeriesTable::default();
        for i in 0..1000 {
            let key = SeriesTable::key(
                EventType::Normal,
                "Created",
                &format!("q{i}"),
                &reference("u"),
            );
            assert_eq!(table.next(key, at(0)), Publish::Create);
            table.published(key, format!("orders.{i}").into(), 1, at(0));
        }
        assert_eq!(table.len(), 1000);
        let key = SeriesTable::key(EventType::Normal, "Ready", "Reconcile", &reference("u"));
        table.next(key, at(361));
        assert!(table.is_empty());
    }

    #[test]
    fn notes_and_actions_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("abc", 128), "abc");
        let long = "é".repeat(600); // 1,200 bytes
        let cut = truncated(&long, 1024);
        assert_eq!(cut.len(), 1024);
        assert_eq!(truncated("aé", 2), "a");
    }

    #[test]
    fn an_update_names_its_fields_and_drift_says_it_was_set_back() {
        let (reason, action, note) = for_change(&change("Updated memoryMiB, environment"), false);
        assert_eq!(reason, "Updated");
        assert_eq!(action, "Lambda::Function sluice-ns-p-f-0123");
        assert_eq!(
            note,
            "Lambda::Function sluice-ns-p-f-0123: Updated memoryMiB, environment"
        );
        let (reason, _, note) = for_change(&change("Updated environment"), true);
        assert_eq!(reason, "DriftCorrected");
        assert_eq!(
            note,
            "Lambda::Function sluice-ns-p-f-0123: environment changed outside Sluice; set back to the spec"
        );
    }

    #[test]
    fn creation_and_deletion_keep_their_reason_even_on_a_resync() {
        for what in ["Created", "Deleted", "Adopted", "Released"] {
            assert_eq!(for_change(&change(what), true).0, what);
        }
        assert_eq!(
            for_change(&change("Skipped (belongs to x)"), false).0,
            "Skipped"
        );
    }
}
