//! Structured (JSON) logging and the invocation wrapper every binary uses.
//!
//! lambda_runtime wraps each invocation in a span carrying `requestId` (and
//! the X-Ray trace id); the JSON formatter prints the span list, so every log
//! line of an invocation carries the request id. [`run`] logs one summary line
//! per invocation with the request id and, on failure, the error class.

use std::future::Future;

use chrono::{DateTime, Utc};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::level_filters::LevelFilter;

use crate::kit::error::HandlerError;

/// Installs a JSON subscriber. The level comes from `RUST_LOG`, else from
/// Lambda's `AWS_LAMBDA_LOG_LEVEL` (advanced logging controls), else `info`.
/// A level, not per-target directives: see [`level`].
pub fn init() {
    let level = level(
        crate::kit::config::optional("RUST_LOG").as_deref(),
        crate::kit::config::optional("AWS_LAMBDA_LOG_LEVEL").as_deref(),
    );
    // A second init (tests) is harmless; ignore the error.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_target(false)
        .with_current_span(false)
        .with_span_list(true)
        .try_init();
}

/// The level to log at: `RUST_LOG`'s, else `AWS_LAMBDA_LOG_LEVEL`'s (whose
/// `FATAL` is `error`), else `info`. Of a directive list such as
/// `warn,aws_smithy=debug`, the global level is taken and the per-target
/// parts are ignored: a function logs its handler and nothing else worth
/// filtering by target.
pub fn level(rust_log: Option<&str>, lambda_level: Option<&str>) -> LevelFilter {
    let parse = |text: &str| {
        text.split(',')
            .map(str::trim)
            .filter(|d| !d.contains('='))
            .find_map(|d| match d.to_ascii_lowercase().as_str() {
                "fatal" => Some(LevelFilter::ERROR),
                other => other.parse::<LevelFilter>().ok(),
            })
    };
    rust_log
        .and_then(parse)
        .or_else(|| lambda_level.and_then(parse))
        .unwrap_or(LevelFilter::INFO)
}

/// What a handler may need to know about its invocation besides the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Lambda's request id.
    pub request_id: String,
    /// When Lambda stops the invocation (its timeout), if known.
    pub deadline: Option<DateTime<Utc>>,
}

impl Invocation {
    fn from_context(context: &lambda_runtime::Context) -> Self {
        Self {
            request_id: context.request_id.clone(),
            deadline: i64::try_from(context.deadline)
                .ok()
                .filter(|ms| *ms > 0)
                .and_then(DateTime::from_timestamp_millis),
        }
    }
}

/// Runs the Lambda runtime loop with a handler over the raw JSON payload.
///
/// Taking `Value` (rather than letting the runtime deserialize a typed event)
/// means a malformed event surfaces as our `ValidationError` instead of the
/// runtime's own deserialization error type.
pub async fn run<F, Fut, T>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
    T: Serialize,
{
    run_with_invocation(move |payload, _| handler(payload)).await
}

/// [`run`] for handlers that parse the payload themselves, from the JSON
/// text Lambda delivered ([`crate::kit::events::Payload`]): a large batch is then
/// parsed once, straight into the handler's types, instead of into a
/// [`Value`] first. A payload that is not JSON at all is still the
/// runtime's own error, as with [`run`].
pub async fn run_raw<F, Fut, T>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Box<RawValue>) -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
    T: Serialize,
{
    serve(move |payload, _| handler(payload)).await
}

/// [`run`] for handlers that also need the [`Invocation`] (its deadline).
pub async fn run_with_invocation<F, Fut, T>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value, Invocation) -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
    T: Serialize,
{
    serve(handler).await
}

/// The runtime loop over payloads of type `P`.
async fn serve<P, F, Fut, T>(handler: F) -> Result<(), lambda_runtime::Error>
where
    P: DeserializeOwned,
    F: Fn(P, Invocation) -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
    T: Serialize,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<P>| async move {
        let invocation = Invocation::from_context(&event.context);
        let request_id = invocation.request_id.clone();
        // Boxed: keeps the runtime's state machine within rustc's layout
        // depth limit whatever the handler's future looks like.
        let result = Box::pin(handler(event.payload, invocation)).await;
        match &result {
            Ok(_) => tracing::info!(request_id, "invocation succeeded"),
            Err(error) => tracing::error!(
                request_id,
                error_type = error.error_type(),
                error = %error,
                "invocation failed"
            ),
        }
        result
    }))
    .await
}

/// Logs a configuration error at startup and converts it for `main`, so
/// the init failure is readable in the function's logs.
pub fn startup_error(error: crate::kit::config::ConfigError) -> lambda_runtime::Error {
    tracing::error!(error = %error, "invalid configuration");
    error.to_string().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_comes_from_rust_log_then_lambda_then_info() {
        assert_eq!(level(Some("debug"), Some("ERROR")), LevelFilter::DEBUG);
        assert_eq!(level(None, Some("WARN")), LevelFilter::WARN);
        assert_eq!(level(None, Some("FATAL")), LevelFilter::ERROR);
        assert_eq!(level(None, None), LevelFilter::INFO);
        // Per-target directives are ignored; the global level is kept.
        assert_eq!(
            level(Some("aws_smithy=trace,warn"), None),
            LevelFilter::WARN
        );
        assert_eq!(
            level(Some("aws_smithy=trace"), Some("debug")),
            LevelFilter::DEBUG
        );
        assert_eq!(level(Some("loud"), None), LevelFilter::INFO);
        assert_eq!(level(Some("off"), None), LevelFilter::OFF);
    }
}
