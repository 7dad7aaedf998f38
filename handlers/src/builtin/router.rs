//! Pattern 2 — fan-out router: classifies each object named by an S3 event
//! and publishes a `data-event` to EventBridge, whose rules route it by
//! `detail.data_type` to per-type queues.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kit::config::{ConfigError, Env};
use crate::kit::error::HandlerError;
use crate::kit::events::{RawRecords, S3ObjectRef, json_kind, parse_s3_record};
use crate::kit::publisher::{EventEntry, EventPublisher, publish_all};
use crate::kit::retry::Backoff;
use crate::kit::store::ObjectStore;

/// `source` of the events the router publishes when no pipeline source is
/// configured (a router run outside Sluice, in tests).
pub const EVENT_SOURCE: &str = "sluice.router";
/// The variable naming the pipeline's own event source: every event its
/// functions publish carries it (their grant to put events is conditioned
/// on it), and the rules of its buses match only it.
pub const SOURCE_VAR: &str = "SLUICE_EVENT_SOURCE";
/// `detail-type` of the events the router publishes.
pub const DETAIL_TYPE: &str = "data-event";

/// Configuration of `router`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// `EVENT_BUS`: bus name or ARN.
    pub event_bus: String,
    /// `SLUICE_EVENT_SOURCE`, else [`EVENT_SOURCE`]: the `source` of every
    /// event published.
    pub source: String,
    /// Retry policy for failed PutEvents entries.
    pub backoff: Backoff,
}

impl RouterConfig {
    /// Reads `EVENT_BUS` and `SLUICE_EVENT_SOURCE`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            event_bus: env.required("EVENT_BUS")?,
            source: env
                .optional(SOURCE_VAR)
                .unwrap_or_else(|| EVENT_SOURCE.to_owned()),
            backoff: Backoff::default(),
        })
    }
}

/// The `detail` of a routed event; also what typed processors consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDetail {
    /// Source bucket.
    pub bucket: String,
    /// Source key (decoded).
    pub key: String,
    /// `type_a`, `type_b`, `type_c` or the document's own `type`.
    pub data_type: String,
    /// S3's sequencer for the write that triggered routing, when known. It
    /// makes a re-routed event (a retried invocation) identical to the first,
    /// so the processors' idempotency check recognises it, while a later
    /// overwrite of the same key is a new event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

/// One routed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routed {
    /// `s3://bucket/key`.
    pub source: String,
    /// The data type chosen.
    pub data_type: String,
}

/// The function's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouterReport {
    /// Objects routed.
    pub routed: Vec<Routed>,
}

/// Checks a data type is safe as an EventBridge pattern value and as an S3
/// key segment (`processed/<data_type>/...`).
pub fn valid_data_type(data_type: &str) -> bool {
    !data_type.is_empty()
        && data_type.len() <= 64
        && data_type != "."
        && data_type != ".."
        && data_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The data type of a document: its own `type` field when present, else by
/// key prefix (`customer_` → `type_a`, `product_` → `type_b`, otherwise
/// `type_c`). The prefix is matched against the whole key and against its
/// last path segment, so `incoming/customer_1.json` is a customer file too.
pub fn classify(doc: &Value, key: &str) -> Result<String, String> {
    if let Some(declared) = doc.as_object().and_then(|o| o.get("type")) {
        let Value::String(declared) = declared else {
            return Err(format!(
                "`type` must be a string, got {}",
                json_kind(declared)
            ));
        };
        if !valid_data_type(declared) {
            return Err(format!(
                "`type` {declared:?} is not a valid data type (1-64 of A-Z a-z 0-9 _ - .)"
            ));
        }
        return Ok(declared.clone());
    }
    let file_name = key.rsplit('/').next().unwrap_or(key);
    let has_prefix = |prefix: &str| key.starts_with(prefix) || file_name.starts_with(prefix);
    Ok(if has_prefix("customer_") {
        "type_a"
    } else if has_prefix("product_") {
        "type_b"
    } else {
        "type_c"
    }
    .to_owned())
}

async fn route_one<S: ObjectStore>(
    store: &S,
    source: &S3ObjectRef,
) -> Result<RouteDetail, HandlerError> {
    let uri = source.uri();
    let body = store
        .get(&source.bucket, &source.key)
        .await
        .map_err(HandlerError::from)?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| HandlerError::validation(format!("{uri}: invalid JSON: {e}")))?;
    let data_type =
        classify(&doc, &source.key).map_err(|e| HandlerError::validation(format!("{uri}: {e}")))?;
    Ok(RouteDetail {
        bucket: source.bucket.clone(),
        key: source.key.clone(),
        data_type,
        sequencer: source.sequencer.clone(),
    })
}

/// Handles an S3 event: classifies every record, publishes the events in
/// chunks of ten (resending failed entries), then fails naming every record
/// that could not be routed.
pub async fn handle<S: ObjectStore, P: EventPublisher>(
    store: &S,
    publisher: &P,
    config: &RouterConfig,
    event: Value,
) -> Result<RouterReport, HandlerError> {
    let records = RawRecords::from_event(event)?.records;
    let total = records.len();
    let mut errors = Vec::new();
    let mut details = Vec::new();
    for record in &records {
        let routed = match parse_s3_record(record) {
            Ok(source) => route_one(store, &source).await,
            Err(e) => Err(e),
        };
        match routed {
            Ok(detail) => details.push(detail),
            Err(e) => {
                tracing::error!(error_type = e.error_type(), error = %e, "record not routed");
                errors.push(e);
            }
        }
    }

    let mut entries = Vec::with_capacity(details.len());
    for detail in &details {
        let json = serde_json::to_string(detail)
            .map_err(|e| HandlerError::validation(format!("cannot serialize event detail: {e}")))?;
        entries.push(EventEntry {
            bus: config.event_bus.clone(),
            source: config.source.clone(),
            detail_type: DETAIL_TYPE.into(),
            detail: json,
        });
    }
    let outcomes = publish_all(publisher, &entries, config.backoff).await;

    let mut report = RouterReport::default();
    for (detail, outcome) in details.iter().zip(outcomes) {
        let source = format!("s3://{}/{}", detail.bucket, detail.key);
        match outcome {
            None => {
                tracing::info!(%source, data_type = %detail.data_type, "routed");
                report.routed.push(Routed {
                    source,
                    data_type: detail.data_type.clone(),
                });
            }
            Some(message) => errors.push(HandlerError::retryable(format!("{source}: {message}"))),
        }
    }
    match HandlerError::combine(errors, total) {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::publisher::MemoryPublisher;
    use crate::kit::store::MemoryStore;
    use serde_json::json;

    fn config() -> RouterConfig {
        RouterConfig {
            event_bus: "pipeline-bus".into(),
            source: EVENT_SOURCE.into(),
            backoff: Backoff::immediate(3),
        }
    }

    #[test]
    fn the_source_is_the_pipelines_own_when_the_operator_names_it() {
        let own = RouterConfig::from_env(&[
            ("EVENT_BUS", "b"),
            (SOURCE_VAR, "sluice.team-a.orders.0123456789abcdef"),
        ])
        .expect("valid");
        assert_eq!(own.source, "sluice.team-a.orders.0123456789abcdef");
        let plain = RouterConfig::from_env(&[("EVENT_BUS", "b")]).expect("valid");
        assert_eq!(plain.source, EVENT_SOURCE);
    }

    fn record(key: &str) -> Value {
        json!({"eventSource": "aws:s3", "s3": {"bucket": {"name": "in"}, "object": {"key": key}}})
    }

    fn detail(entry: &EventEntry) -> Value {
        serde_json::from_str(&entry.detail).expect("detail is JSON")
    }

    #[test]
    fn classification_rules() {
        assert_eq!(
            classify(&json!({"type": "vip"}), "customer_1.json"),
            Ok("vip".into())
        );
        assert_eq!(classify(&json!({}), "customer_1.json"), Ok("type_a".into()));
        assert_eq!(classify(&json!({}), "product_9.json"), Ok("type_b".into()));
        assert_eq!(
            classify(&json!({}), "in/product_9.json"),
            Ok("type_b".into())
        );
        assert_eq!(classify(&json!({}), "order.json"), Ok("type_c".into()));
        assert_eq!(classify(&json!([1]), "customer_x"), Ok("type_a".into()));
        assert!(classify(&json!({"type": 3}), "k").is_err());
        assert!(classify(&json!({"type": "../etc"}), "k").is_err());
        assert!(classify(&json!({"type": ""}), "k").is_err());
    }

    #[tokio::test]
    async fn routes_every_record_with_expected_event_shape() {
        let store = MemoryStore::new();
        store.insert("in", "customer_1.json", "{}");
        store.insert("in", "product 2.json", r#"{"type":"type_b"}"#);
        store.insert("in", "misc.json", "{}");
        let publisher = MemoryPublisher::new();
        let ev = json!({"Records": [record("customer_1.json"), record("product+2.json"), record("misc.json")]});
        let report = handle(&store, &publisher, &config(), ev).await.expect("ok");
        assert_eq!(report.routed.len(), 3);
        let published = publisher.published();
        assert_eq!(published.len(), 3);
        assert!(published.iter().all(|e| e.bus == "pipeline-bus"
            && e.source == "sluice.router"
            && e.detail_type == "data-event"));
        assert_eq!(
            detail(&published[0]),
            json!({"bucket": "in", "key": "customer_1.json", "data_type": "type_a"})
        );
        assert_eq!(detail(&published[1])["key"], "product 2.json");
        assert_eq!(detail(&published[2])["data_type"], "type_c");
    }

    #[tokio::test]
    async fn large_batch_is_chunked() {
        let store = MemoryStore::new();
        let mut records = Vec::new();
        for i in 0..25 {
            store.insert("in", &format!("f{i}.json"), "{}");
            records.push(record(&format!("f{i}.json")));
        }
        let publisher = MemoryPublisher::new();
        handle(&store, &publisher, &config(), json!({"Records": records}))
            .await
            .expect("ok");
        assert!(publisher.calls().iter().all(|c| c.len() <= 10));
        assert_eq!(publisher.calls().len(), 3);
    }

    #[tokio::test]
    async fn poisoned_record_does_not_block_the_others() {
        let store = MemoryStore::new();
        store.insert("in", "good.json", "{}");
        store.insert("in", "bad.json", "not json");
        let publisher = MemoryPublisher::new();
        let ev = json!({"Records": [record("bad.json"), record("good.json")]});
        let err = handle(&store, &publisher, &config(), ev)
            .await
            .expect_err("fails");
        assert_eq!(err.error_type(), "ValidationError");
        assert!(
            err.message().contains("s3://in/bad.json: invalid JSON"),
            "{err}"
        );
        assert_eq!(publisher.published().len(), 1);
    }

    #[tokio::test]
    async fn unpublishable_entries_are_retryable_errors() {
        let store = MemoryStore::new();
        store.insert("in", "a.json", "{}");
        let publisher = MemoryPublisher::new();
        publisher.fail_entry("a.json", 10);
        let err = handle(
            &store,
            &publisher,
            &config(),
            json!({"Records": [record("a.json")]}),
        )
        .await
        .expect_err("fails");
        assert!(err.is_retryable());
        assert_eq!(publisher.calls().len(), 3);
    }

    #[tokio::test]
    async fn empty_event_publishes_nothing() {
        let publisher = MemoryPublisher::new();
        let report = handle(
            &MemoryStore::new(),
            &publisher,
            &config(),
            json!({"Records": []}),
        )
        .await
        .expect("ok");
        assert!(report.routed.is_empty());
        assert!(publisher.calls().is_empty());
    }
}
