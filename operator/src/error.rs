//! The operator's error type and how each error drives the retry policy.

use std::time::Duration;

use crate::aws::{AwsError, ErrorClass};

/// The condition reason of [`Error::Rejected`].
pub const AWS_REJECTED: &str = "AWSRejected";
/// The condition reason of [`Error::PolicyViolation`].
pub const POLICY_VIOLATION: &str = "PolicyViolation";
/// The condition reason of [`Error::Account`].
pub const ACCOUNT_REFUSED: &str = "AccountRefused";

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid in a way the schema could not catch. Retrying
    /// cannot help: the pipeline is `Stalled` until the spec changes.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// The pipeline is outside what its namespace's SluicePolicy allows.
    /// Nothing changes in AWS until the spec or the policy does.
    #[error("outside the namespace's policy: {0}")]
    PolicyViolation(String),

    /// The pipeline may not be made in the AWS account its namespace maps
    /// to ([`crate::accounts`]): two SluicePolicies name different roles,
    /// the operator does not list the role, it requires one and none is
    /// given, or the pipeline's resources are in another account. Nothing
    /// is called in AWS until the platform team's mapping changes.
    #[error("AWS account: {0}")]
    Account(String),

    /// An AWS resource with a name this pipeline needs is owned by someone
    /// else. Sluice never modifies or deletes it.
    #[error("{0}")]
    Conflict(String),

    /// AWS has not caught up yet (a new role not yet assumable, a function
    /// still `Pending` or mid-update): retried after `after`.
    #[error("waiting: {what}")]
    Waiting {
        /// What the operator waits for, shown in status.
        what: String,
        /// When to look again.
        after: Duration,
    },

    /// A call to AWS failed.
    #[error(transparent)]
    Aws(#[from] AwsError),

    /// AWS refused a value of the spec (a permanent client error, e.g.
    /// `ValidationException`): the pipeline is `Stalled` with AWS's message
    /// until the spec changes.
    #[error("AWS refused {resource}: {error}; change the spec (the value AWS names) to try again")]
    Rejected {
        /// The resource the value was for, `Kind logical`.
        resource: String,
        /// AWS's answer.
        error: AwsError,
    },

    /// A call to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// A built-in handler artifact could not be read: an operator
    /// installation problem, not a pipeline one.
    #[error("handler artifact: {0}")]
    Artifact(String),

    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// This replica is not the leader (its write fence is closed), so it
    /// wrote nothing: the controller is being stopped. (Refused AWS
    /// writes are [`Error::Aws`] of class [`ErrorClass::NotLeader`].)
    #[error("not the leader: {0}")]
    NotLeader(&'static str),
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Label for the failure metric; a small fixed set.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::PolicyViolation(_) => "policy_violation",
            Error::Account(_) => "account",
            Error::Conflict(_) => "conflict",
            Error::Waiting { .. } => "waiting",
            Error::Aws(e) => match e.class {
                ErrorClass::Throttled => "aws_throttled",
                ErrorClass::Transient => "aws_transient",
                ErrorClass::Client => "aws_client",
                ErrorClass::NotLeader => "not_leader",
                ErrorClass::Session => "aws_session",
            },
            Error::Rejected { .. } => "aws_client",
            Error::Kube(_) => "kube",
            Error::Artifact(_) => "artifact",
            Error::Finalizer(_) => "finalizer",
            Error::NotLeader(_) => "not_leader",
        }
    }

    /// Whether retrying without a spec change can help. A stalled pipeline
    /// is not retried hot; it is looked at again on the slow resync.
    pub fn is_stalled(&self) -> bool {
        matches!(
            self,
            Error::InvalidSpec(_)
                | Error::PolicyViolation(_)
                | Error::Account(_)
                | Error::Conflict(_)
                | Error::Artifact(_)
                | Error::Rejected { .. }
        ) || self.is_rejected()
    }

    /// Whether AWS refused a value of the spec (see
    /// [`AwsError::is_rejected`]), wherever the call was made.
    pub fn is_rejected(&self) -> bool {
        match self {
            Error::Rejected { .. } => true,
            Error::Aws(e) => e.is_rejected(),
            _ => false,
        }
    }

    /// The condition reason for this error (CamelCase, as kstatus expects).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::PolicyViolation(_) => POLICY_VIOLATION,
            Error::Account(_) => ACCOUNT_REFUSED,
            Error::Conflict(_) => "OwnershipConflict",
            Error::Waiting { .. } => "WaitingForAWS",
            Error::Aws(e) if e.is_rejected() => AWS_REJECTED,
            Error::Aws(e) => match e.class {
                ErrorClass::Throttled => "AWSThrottled",
                ErrorClass::Transient => "AWSUnavailable",
                ErrorClass::Client => "AWSError",
                ErrorClass::NotLeader => "NotLeader",
                ErrorClass::Session => "AccountRoleUnavailable",
            },
            Error::Rejected { .. } => AWS_REJECTED,
            Error::Kube(_) => "KubernetesError",
            Error::Artifact(_) => "HandlerArtifactMissing",
            Error::Finalizer(_) => "FinalizerError",
            Error::NotLeader(_) => "NotLeader",
        }
    }

    /// Whether this replica refused to write because it is not the leader
    /// (also inside a finalizer error): nothing to report on the pipeline,
    /// the controller is being stopped and the leader reconciles it.
    pub fn is_not_leader(&self) -> bool {
        use kube::runtime::finalizer::Error as Finalizer;
        match self {
            Error::NotLeader(_) => true,
            Error::Aws(e) => e.class == ErrorClass::NotLeader,
            Error::Finalizer(e) => match e.as_ref() {
                Finalizer::ApplyFailed(inner) | Finalizer::CleanupFailed(inner) => {
                    inner.is_not_leader()
                }
                _ => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_category_is_a_metric_label_the_metrics_start_at_zero() {
        let aws = |class| {
            Error::Aws(AwsError {
                service: crate::aws::Service::Sqs,
                operation: "GetQueueUrl",
                code: None,
                message: None,
                status: None,
                class,
            })
        };
        let errors = [
            Error::InvalidSpec(String::new()),
            Error::PolicyViolation(String::new()),
            Error::Account(String::new()),
            Error::Conflict(String::new()),
            Error::Waiting {
                what: String::new(),
                after: Duration::from_secs(1),
            },
            aws(ErrorClass::Throttled),
            aws(ErrorClass::Transient),
            aws(ErrorClass::Client),
            aws(ErrorClass::NotLeader),
            aws(ErrorClass::Session),
            Error::Artifact(String::new()),
            Error::NotLeader("x"),
            Error::Rejected {
                resource: String::new(),
                error: AwsError {
                    service: crate::aws::Service::Sqs,
                    operation: "CreateQueue",
                    code: Some("InvalidAttributeValue".into()),
                    message: None,
                    status: Some(400),
                    class: ErrorClass::Client,
                },
            },
        ];
        for e in &errors {
            assert!(
                crate::metrics::ERROR_CATEGORIES.contains(&e.metric_label()),
                "{}",
                e.metric_label()
            );
        }
        assert!(crate::metrics::ERROR_CATEGORIES.contains(&"kube"));
        assert!(crate::metrics::ERROR_CATEGORIES.contains(&"finalizer"));
    }

    #[test]
    fn a_value_aws_refuses_stalls_and_what_may_pass_keeps_retrying() {
        let aws = |code: &str, message: &str| AwsError {
            service: crate::aws::Service::Sqs,
            operation: "CreateQueue",
            code: Some(code.into()),
            message: Some(message.into()),
            status: Some(400),
            class: ErrorClass::Client,
        };
        for code in crate::aws::REJECTED_CODES {
            assert!(aws(code, "bad value").is_rejected(), "{code}");
        }
        for code in [
            "ResourceConflictException",
            "ConcurrentModificationException",
            "ResourceInUseException",
            "AccessDenied",
            "AccessDeniedException",
            "NoSuchEntity",
        ] {
            assert!(!aws(code, "x").is_rejected(), "{code}");
        }
        // Lambda's answer while a new role propagates is retried.
        assert!(
            !aws(
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda."
            )
            .is_rejected()
        );
        // Nor code Lambda could not read from S3 (uploaded again), nor a
        // queue's visibility timeout SQS has not applied yet.
        assert!(
            !aws(
                "InvalidParameterValueException",
                "Error occurred while GetObject. S3 Error Code: NoSuchKey."
            )
            .is_rejected()
        );
        assert!(
            !aws(
                "InvalidParameterValueException",
                "Queue visibility timeout: 30 seconds is less than Function timeout: 60 seconds"
            )
            .is_rejected()
        );
        // A throttle or a 5xx with such a code is not a refusal.
        let mut busy = aws("ValidationException", "x");
        busy.class = ErrorClass::Transient;
        assert!(!busy.is_rejected());

        let e = Error::Rejected {
            resource: "SQS::Queue work".into(),
            error: aws(
                "InvalidAttributeValue",
                "Invalid value for the parameter MessageRetentionPeriod.",
            ),
        };
        assert!(e.is_stalled());
        assert_eq!(e.reason(), "AWSRejected");
        // Also where no resource is named.
        let bare = Error::Aws(aws("ValidationException", "x"));
        assert!(bare.is_stalled() && bare.reason() == "AWSRejected");
        assert!(!Error::Aws(aws("ResourceConflictException", "x")).is_stalled());
        assert_eq!(
            e.to_string(),
            "AWS refused SQS::Queue work: sqs CreateQueue failed: InvalidAttributeValue: Invalid \
             value for the parameter MessageRetentionPeriod.; change the spec (the value AWS \
             names) to try again"
        );
    }
}
