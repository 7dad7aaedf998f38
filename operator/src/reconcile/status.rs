//! Status conditions, following the Kubernetes API conventions and kstatus:
//! `Ready` is always present; `Reconciling` and `Stalled` only while True;
//! every condition carries `observedGeneration`; `lastTransitionTime`
//! changes only when a condition's status really changes. `Healthy`
//! belongs to the health poller ([`crate::health`]), which writes it under
//! its own field manager; the reconciler writes the others and leaves it
//! alone.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Condition types.
pub const READY: &str = "Ready";
/// Present (True) while the operator is converging.
pub const RECONCILING: &str = "Reconciling";
/// Present (True) while progress needs a human.
pub const STALLED: &str = "Stalled";
/// Runtime health, written by the health poller: True, False (the reason
/// and message name the resource at fault) or Unknown.
pub const HEALTHY: &str = "Healthy";

/// The condition types the reconciler writes.
pub const RECONCILER_CONDITIONS: [&str; 3] = [READY, RECONCILING, STALLED];

/// The conditions the reconciler owns, from a status that holds them all.
pub fn reconciler_conditions(conditions: &[Condition]) -> Vec<Condition> {
    conditions
        .iter()
        .filter(|c| RECONCILER_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect()
}

/// The `Healthy` condition, keeping the previous `lastTransitionTime` when
/// its status did not change.
pub fn healthy(
    previous: &[Condition],
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let mut c = condition(HEALTHY, status, reason, message, generation);
    if let Some(old) = previous.iter().find(|p| p.type_ == HEALTHY)
        && old.status == c.status
    {
        c.last_transition_time = old.last_transition_time.clone();
    }
    c
}

/// What a reconcile concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything converged.
    Ready {
        /// Summary for `kubectl get`.
        message: String,
    },
    /// Work in progress (first visit, waiting on AWS, retrying an error).
    Progressing {
        /// CamelCase reason.
        reason: String,
        /// What is happening.
        message: String,
    },
    /// Cannot progress without a change (invalid spec, ownership conflict).
    Stalled {
        /// CamelCase reason.
        reason: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `spec.suspend` is set.
    Suspended,
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: truncate(message, 1024),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// `message` cut to `max` bytes at a char boundary, as conditions store it.
pub fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_owned();
    }
    let mut end = max - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// The conditions for a verdict, keeping `lastTransitionTime` of conditions
/// whose status did not change.
pub fn conditions(
    previous: &[Condition],
    verdict: &Verdict,
    generation: Option<i64>,
) -> Vec<Condition> {
    let mut out = match verdict {
        Verdict::Ready { message } => {
            vec![condition(READY, "True", "Converged", message, generation)]
        }
        Verdict::Progressing { reason, message } => vec![
            condition(READY, "False", reason, message, generation),
            condition(RECONCILING, "True", reason, message, generation),
        ],
        Verdict::Stalled { reason, message } => vec![
            condition(READY, "False", reason, message, generation),
            condition(STALLED, "True", reason, message, generation),
        ],
        Verdict::Suspended => vec![condition(
            READY,
            "False",
            "Suspended",
            "reconciliation is suspended (spec.suspend); AWS resources are left as they are",
            generation,
        )],
    };
    for c in &mut out {
        if let Some(old) = previous.iter().find(|p| p.type_ == c.type_)
            && old.status == c.status
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    out
}

/// Whether two condition lists say the same (ignoring transition times), so
/// an unchanged status is not written again.
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(c: &[Condition]) -> Vec<(&str, &str)> {
        c.iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect()
    }

    #[test]
    fn ready_is_always_present_and_the_others_only_while_true() {
        let ready = conditions(
            &[],
            &Verdict::Ready {
                message: "ok".into(),
            },
            Some(1),
        );
        assert_eq!(types(&ready), vec![("Ready", "True")]);
        let progressing = conditions(
            &[],
            &Verdict::Progressing {
                reason: "R".into(),
                message: "m".into(),
            },
            Some(1),
        );
        assert_eq!(
            types(&progressing),
            vec![("Ready", "False"), ("Reconciling", "True")]
        );
        let stalled = conditions(
            &[],
            &Verdict::Stalled {
                reason: "R".into(),
                message: "m".into(),
            },
            Some(1),
        );
        assert_eq!(
            types(&stalled),
            vec![("Ready", "False"), ("Stalled", "True")]
        );
        assert!(stalled.iter().all(|c| c.observed_generation == Some(1)));
    }

    #[test]
    fn transition_time_changes_only_on_a_real_transition() {
        let mut old = conditions(
            &[],
            &Verdict::Ready {
                message: "ok".into(),
            },
            Some(1),
        );
        old[0].last_transition_time = Time(Timestamp::UNIX_EPOCH);
        let same = conditions(
            &old,
            &Verdict::Ready {
                message: "ok".into(),
            },
            Some(2),
        );
        assert_eq!(same[0].last_transition_time, Time(Timestamp::UNIX_EPOCH));
        let changed = conditions(
            &old,
            &Verdict::Stalled {
                reason: "R".into(),
                message: "m".into(),
            },
            Some(2),
        );
        assert_ne!(changed[0].last_transition_time, Time(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn the_reconciler_leaves_healthy_to_the_health_poller() {
        let mut all = conditions(
            &[],
            &Verdict::Ready {
                message: "ok".into(),
            },
            Some(1),
        );
        all.push(healthy(&[], "False", "DeadLetters", "3 messages", Some(1)));
        assert_eq!(types(&reconciler_conditions(&all)), vec![("Ready", "True")]);
        let mut old = all[1].clone();
        old.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        let again = healthy(
            &[old.clone()],
            "False",
            "DeadLetters",
            "4 messages",
            Some(2),
        );
        assert_eq!(again.last_transition_time, Time(Timestamp::UNIX_EPOCH));
        let recovered = healthy(&[old], "True", "WithinThresholds", "ok", Some(2));
        assert_ne!(recovered.last_transition_time, Time(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let long = "é".repeat(2000);
        let c = conditions(
            &[],
            &Verdict::Stalled {
                reason: "R".into(),
                message: long,
            },
            None,
        );
        assert!(c[0].message.len() <= 1024);
    }
}
