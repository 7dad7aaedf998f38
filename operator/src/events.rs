//! Kubernetes events: one for every change a person cares about, with a
//! CamelCase reason — an AWS resource `Created`, `Updated` (naming the
//! fields), `Adopted`, `Deleted`, `Released`, `DriftCorrected` (naming the
//! field set back), `Ready`, a stall under its own reason (for example
//! `OwnershipConflict`: adoption refused, `InvalidSpec`), `Unhealthy` and
//! `Recovered`. Notes name fields, never values: an environment variable
//! may hold a secret.
//!
//! Deduplication: stalls and health changes are published on transitions
//! only, and the recorder folds repeats of one reason and action (the
//! resource) into one event series.

use kube::{
    Resource,
    runtime::events::{Event, EventType, Recorder},
};
use tracing::warn;

use crate::{crd::DataPipeline, reconcile::Change};

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
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: action.chars().take(128).collect(),
        secondary: None,
    };
    metrics.kube_write("event");
    if let Err(e) = recorder.publish(&event, &dp.object_ref(&())).await {
        warn!(
            pipeline = %dp.metadata.name.as_deref().unwrap_or_default(),
            error = %e,
            "cannot publish event"
        );
    }
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
