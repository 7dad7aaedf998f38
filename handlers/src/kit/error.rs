//! Error classification shared by every handler.
//!
//! Lambda's retry machinery (async retries, SQS redrive, Kinesis bisect,
//! Step Functions `Retry`) only helps with transient failures. A malformed
//! object fails the same way on every attempt, so handlers sort each failure
//! into one of two classes:
//!
//! * [`HandlerError::Validation`] — the input is bad; retrying cannot help.
//!   Reported to Lambda with `errorType = "ValidationError"`.
//! * [`HandlerError::Retryable`] — a dependency failed (throttling, 5xx,
//!   timeouts); the invocation (or batch item) should be retried and, when
//!   retries run out, land in a DLQ. Reported as `errorType = "RetryableError"`.
//!
//! The `errorType` strings are what a Step Functions `Retry`/`Catch`
//! `ErrorEquals` list matches on. lambda_runtime 1.5 builds the error payload
//! from `Into<Diagnostic>`; its blanket conversions use `std::any::type_name`
//! (e.g. `alloc::boxed::Box<dyn core::error::Error>`), so we implement the
//! conversion ourselves to control the name.

use lambda_runtime::Diagnostic;

/// `errorType` reported for [`HandlerError::Validation`].
pub const VALIDATION_ERROR_TYPE: &str = "ValidationError";
/// `errorType` reported for [`HandlerError::Retryable`].
pub const RETRYABLE_ERROR_TYPE: &str = "RetryableError";

/// A handler failure, classified for retry purposes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Bad input: never retried.
    #[error("{0}")]
    Validation(String),
    /// Transient failure of a dependency: re-raised so Lambda retries.
    #[error("{0}")]
    Retryable(String),
}

impl HandlerError {
    /// A validation (permanent, bad input) error.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation(message.into())
    }

    /// A retryable (transient) error.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// Whether retrying the same input may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The Lambda `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => VALIDATION_ERROR_TYPE,
            Self::Retryable(_) => RETRYABLE_ERROR_TYPE,
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            Self::Validation(m) | Self::Retryable(m) => m,
        }
    }

    /// Prefixes the message with `context: `, keeping the class.
    #[must_use]
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        match self {
            Self::Validation(m) => Self::Validation(format!("{context}: {m}")),
            Self::Retryable(m) => Self::Retryable(format!("{context}: {m}")),
        }
    }

    /// Combines the failures of several independent records into one error.
    ///
    /// The result is retryable if any part is: retrying re-processes the
    /// records that failed transiently, and the handlers' writes are
    /// idempotent, so redoing the successful ones is harmless. Returns `None`
    /// for an empty list.
    pub fn combine(errors: Vec<HandlerError>, total: usize) -> Option<HandlerError> {
        if errors.is_empty() {
            return None;
        }
        let retryable = errors.iter().any(HandlerError::is_retryable);
        let detail = errors
            .iter()
            .map(HandlerError::message)
            .collect::<Vec<_>>()
            .join("; ");
        let message = format!("{} of {} records failed: {}", errors.len(), total, detail);
        Some(if retryable {
            Self::Retryable(message)
        } else {
            Self::Validation(message)
        })
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.message().to_owned(),
        }
    }
}

/// Errors from the storage/messaging traits ([`crate::kit::store::ObjectStore`],
/// [`crate::kit::dynamo::ItemTable`], ...), before a handler decides what they mean.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object/item does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The service rejected the request as invalid; resending it cannot help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Throttling, 5xx, network, credentials: may succeed later.
    #[error("{0}")]
    Transient(String),
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) | StoreError::Rejected(_) => {
                HandlerError::Validation(error.to_string())
            }
            StoreError::Transient(m) => HandlerError::Retryable(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_carries_distinct_error_types() {
        let v: Diagnostic = HandlerError::validation("bad key").into();
        assert_eq!(v.error_type, "ValidationError");
        assert_eq!(v.error_message, "bad key");
        let r: Diagnostic = HandlerError::retryable("throttled").into();
        assert_eq!(r.error_type, "RetryableError");
        assert_eq!(r.error_message, "throttled");
    }

    #[test]
    fn diagnostic_serializes_as_lambda_error_payload() {
        let d: Diagnostic = HandlerError::validation("x").into();
        let json = serde_json::to_value(d).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"errorType": "ValidationError", "errorMessage": "x"})
        );
    }

    #[test]
    fn context_keeps_class() {
        let e = HandlerError::retryable("timeout").context("s3://b/k");
        assert!(e.is_retryable());
        assert_eq!(e.message(), "s3://b/k: timeout");
        let e = HandlerError::validation("bad").context("k");
        assert!(!e.is_retryable());
    }

    #[test]
    fn combine_is_retryable_if_any_part_is() {
        assert_eq!(HandlerError::combine(vec![], 3), None);
        let only_bad =
            HandlerError::combine(vec![HandlerError::validation("a")], 2).expect("some error");
        assert_eq!(
            only_bad,
            HandlerError::validation("1 of 2 records failed: a")
        );
        let mixed = HandlerError::combine(
            vec![HandlerError::validation("a"), HandlerError::retryable("b")],
            2,
        )
        .expect("some error");
        assert!(mixed.is_retryable());
        assert!(mixed.message().contains("a; b"));
    }

    #[test]
    fn store_errors_map_to_classes() {
        assert!(!HandlerError::from(StoreError::NotFound("k".into())).is_retryable());
        assert!(!HandlerError::from(StoreError::Rejected("too big".into())).is_retryable());
        assert!(HandlerError::from(StoreError::Transient("503".into())).is_retryable());
    }
}
