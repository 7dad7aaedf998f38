//! S3 buckets: the notification configurations the triggers of a bucket
//! become.
//!
//! | AWS rule (PutBucketNotificationConfiguration) | Where | Reference |
//! |---|---|---|
//! | Two configurations of one bucket must not overlap: when they share an event type (a `*` type covers its kind), their prefixes must not be prefixes of one another, or their suffixes not suffixes of one another | here | "Configuring event notifications using object key name filtering" |
//! | Each configuration names at least one event; a filter is at most one prefix and one suffix of at most 1,024 characters | CRD schema and `function.rs` | NotificationConfiguration |

use crate::crd::{DataPipelineSpec, S3Event};

/// One function's notification from one bucket, as S3 holds it.
struct Notification<'a> {
    at: String,
    function: &'a str,
    events: &'a [S3Event],
    prefix: &'a str,
    suffix: &'a str,
}

/// Whether S3 event types `a` and `b` match some event in common:
/// `s3:ObjectCreated:*` covers every `s3:ObjectCreated:` type.
fn events_meet(a: S3Event, b: S3Event) -> bool {
    let (a, b) = (a.as_aws(), b.as_aws());
    let kind = |e: &'static str| e.rsplit_once(':').map_or(e, |(k, _)| k);
    a == b || (kind(a) == kind(b) && (a.ends_with(":*") || b.ends_with(":*")))
}

/// Whether some key could pass both filters.
fn overlap(a: &Notification<'_>, b: &Notification<'_>) -> bool {
    let events = a
        .events
        .iter()
        .any(|x| b.events.iter().any(|y| events_meet(*x, *y)));
    let prefixes = a.prefix.starts_with(b.prefix) || b.prefix.starts_with(a.prefix);
    let suffixes = a.suffix.ends_with(b.suffix) || b.suffix.ends_with(a.suffix);
    events && prefixes && suffixes
}

pub(super) fn validate_bucket_notifications(spec: &DataPipelineSpec, problems: &mut Vec<String>) {
    for bucket in &spec.buckets {
        let notifications: Vec<Notification<'_>> = spec
            .functions
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                f.triggers.iter().enumerate().filter_map(move |(j, t)| {
                    let b = t.bucket.as_ref().filter(|b| b.name == bucket.name)?;
                    Some(Notification {
                        at: format!("spec.functions[{i}].triggers[{j}].bucket"),
                        function: &f.name,
                        events: &b.events,
                        prefix: b.prefix.as_deref().unwrap_or(""),
                        suffix: b.suffix.as_deref().unwrap_or(""),
                    })
                })
            })
            .collect();
        for (k, a) in notifications.iter().enumerate() {
            if let Some(b) = notifications[..k].iter().find(|b| overlap(a, b)) {
                problems.push(format!(
                    "{}: bucket {:?} would notify functions {} and {} of the same object (their \
                     events meet and neither prefix {:?}/{:?} nor suffix {:?}/{:?} tells them \
                     apart), and S3 refuses overlapping notifications; give them prefixes or \
                     suffixes that differ, or events that do not meet",
                    a.at,
                    bucket.name,
                    b.function,
                    a.function,
                    b.prefix,
                    a.prefix,
                    b.suffix,
                    a.suffix
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(triggers: &str) -> DataPipelineSpec {
        serde_yaml::from_str(&format!("buckets: [{{name: in}}]\nfunctions:\n{triggers}"))
            .expect("spec")
    }

    fn problems(triggers: &str) -> Vec<String> {
        let mut p = Vec::new();
        validate_bucket_notifications(&spec(triggers), &mut p);
        p
    }

    #[test]
    fn overlapping_notifications_of_a_bucket_are_refused_as_s3_refuses_them() {
        // Same events, no filters: overlap, naming both functions.
        let p = problems(
            "  - {name: a, handler: router, triggers: [{bucket: {name: in}}]}\n  \
             - {name: b, handler: router, triggers: [{bucket: {name: in}}]}\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("spec.functions[1].triggers[0].bucket:"),
            "{p:?}"
        );
        assert!(p[0].contains("functions a and b"), "{p:?}");
        // A wildcard meets a specific type of its kind.
        assert_eq!(
            problems(
                "  - {name: a, handler: router, triggers: [{bucket: {name: in, events: ['s3:ObjectCreated:*']}}]}\n  \
                 - {name: b, handler: router, triggers: [{bucket: {name: in, events: ['s3:ObjectCreated:Put']}}]}\n"
            )
            .len(),
            1
        );
        // A prefix that extends the other's still overlaps.
        assert_eq!(
            problems(
                "  - {name: a, handler: router, triggers: [{bucket: {name: in, prefix: in/}}]}\n  \
                 - {name: b, handler: router, triggers: [{bucket: {name: in, prefix: in/json/}}]}\n"
            )
            .len(),
            1
        );
    }

    #[test]
    fn notifications_told_apart_by_filter_or_event_are_accepted() {
        for triggers in [
            // Different prefixes.
            "  - {name: a, handler: router, triggers: [{bucket: {name: in, prefix: a/}}]}\n  \
             - {name: b, handler: router, triggers: [{bucket: {name: in, prefix: b/}}]}\n",
            // Different suffixes.
            "  - {name: a, handler: router, triggers: [{bucket: {name: in, suffix: .json}}]}\n  \
             - {name: b, handler: router, triggers: [{bucket: {name: in, suffix: .csv}}]}\n",
            // Events that do not meet.
            "  - {name: a, handler: router, triggers: [{bucket: {name: in, events: ['s3:ObjectCreated:*']}}]}\n  \
             - {name: b, handler: router, triggers: [{bucket: {name: in, events: ['s3:ObjectRemoved:*']}}]}\n",
            "  - {name: a, handler: router, triggers: [{bucket: {name: in, events: ['s3:ObjectCreated:Put']}}]}\n  \
             - {name: b, handler: router, triggers: [{bucket: {name: in, events: ['s3:ObjectCreated:Copy']}}]}\n",
        ] {
            assert!(
                problems(triggers).is_empty(),
                "{triggers}: {:?}",
                problems(triggers)
            );
        }
    }
}
