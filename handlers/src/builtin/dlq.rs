//! Dead-letter handling: every message reaching a DLQ is archived as JSON
//! to `ARCHIVE_BUCKET` under `dead-letters/<queue>/<messageId>.json` — body,
//! attributes, message attributes and, when the message says why it failed,
//! the failure reason — so it can be inspected and replayed. Archiving is
//! idempotent (the key is the message id).
//!
//! **Redrive** (optional, `REDRIVE_TARGETS`; [`crate::kit::redrive`]): after
//! archiving, a message is sent back to the queue it came from, after a
//! delay, so a transient outage does not need a human. It is not redriven when its failure was a
//! validation error (retrying cannot help), when it has been redriven
//! `REDRIVE_MAX` times already (counted in the `sluice-redrive-count`
//! message attribute), or when its DLQ has no target. The archive records
//! the decision either way.

use std::collections::BTreeMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage, SqsMessageAttribute};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::builtin::s3_transform::JSON_CONTENT_TYPE;
use crate::kit::config::{ConfigError, Env};
use crate::kit::error::{HandlerError, StoreError};
use crate::kit::queue::QueueSender;
use crate::kit::redrive::{RedriveConfig, plan_redrive, redrive_count};
use crate::kit::sqs::{message_id, process_batch};
use crate::kit::store::ObjectStore;
use crate::kit::time::timestamp;

/// Key prefix of archived messages.
pub const ARCHIVE_PREFIX: &str = "dead-letters/";

/// Configuration of `dlq-handler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqConfig {
    /// `ARCHIVE_BUCKET`.
    pub archive_bucket: String,
    /// Redrive, when `REDRIVE_TARGETS` is set.
    pub redrive: Option<RedriveConfig>,
}

impl DlqConfig {
    /// Reads `ARCHIVE_BUCKET` and, optionally, redrive's `REDRIVE_TARGETS`,
    /// `REDRIVE_MAX` and `REDRIVE_DELAY_SECONDS` ([`RedriveConfig::from_env`]).
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            archive_bucket: env.required("ARCHIVE_BUCKET")?,
            redrive: RedriveConfig::from_env(env)?,
        })
    }
}

/// The redrive decision recorded with an archived message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Redrive {
    /// Sent back to `target` as redrive number `attempt`.
    Sent {
        /// Queue URL.
        target: String,
        /// 1 for the first redrive.
        attempt: u32,
    },
    /// Kept in the archive only.
    Skipped {
        /// Why.
        reason: String,
    },
    /// SendMessage failed. With `retried`, the message stays in the DLQ and
    /// the redrive is tried again; without, the error cannot go away (no
    /// such queue, invalid message) and the archive is all that is kept.
    Failed {
        /// Queue URL.
        target: String,
        /// The error.
        error: String,
        /// Whether the DLQ keeps the message for another try.
        retried: bool,
    },
}

/// The archived form of a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchivedMessage {
    /// SQS message id.
    pub message_id: String,
    /// Queue name (from the event source ARN).
    pub queue: String,
    /// Queue ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    /// Raw body.
    pub body: Option<String>,
    /// The body parsed, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_json: Option<Value>,
    /// System attributes (ApproximateReceiveCount, SentTimestamp, ...).
    pub attributes: BTreeMap<String, String>,
    /// Message attributes.
    pub message_attributes: BTreeMap<String, SqsMessageAttribute>,
    /// Why the message failed, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// What redrive did, when redrive is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redrive: Option<Redrive>,
    /// When it was archived.
    pub archived_at: String,
}

/// The queue name from `arn:aws:sqs:region:account:name`, made safe as a
/// key segment.
pub fn queue_name(arn: Option<&str>) -> String {
    let name = arn
        .and_then(|a| a.rsplit(':').next())
        .filter(|n| !n.is_empty())
        .unwrap_or("unknown-queue");
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn attribute_text(message: &SqsMessage, name: &str) -> Option<String> {
    message
        .message_attributes
        .get(name)
        .and_then(|a| a.string_value.clone())
        .filter(|s| !s.is_empty())
}

/// Finds a failure reason: Lambda async-invoke DLQ attributes
/// (`ErrorCode`/`ErrorMessage`), an explicit `failure_reason` attribute, or
/// a Lambda on-failure destination record in the body
/// (`requestContext.condition`, `responsePayload.errorType/errorMessage`).
pub fn failure_reason(message: &SqsMessage, body_json: Option<&Value>) -> Option<String> {
    if let Some(error) = attribute_text(message, "ErrorMessage") {
        return Some(match attribute_text(message, "ErrorCode") {
            Some(code) => format!("{code}: {error}"),
            None => error,
        });
    }
    for name in ["failure_reason", "FailureReason"] {
        if let Some(reason) = attribute_text(message, name) {
            return Some(reason);
        }
    }
    let body = body_json?;
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
    let parts: Vec<&str> = [
        text("/requestContext/condition"),
        text("/responsePayload/errorType"),
        text("/responsePayload/errorMessage"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// Builds the archive record for one message (pure).
pub fn archive_record(message: &SqsMessage, now: DateTime<Utc>) -> ArchivedMessage {
    let body_json = message
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<Value>(b).ok());
    ArchivedMessage {
        message_id: message_id(message).to_owned(),
        queue: queue_name(message.event_source_arn.as_deref()),
        event_source_arn: message.event_source_arn.clone(),
        body: message.body.clone(),
        failure_reason: failure_reason(message, body_json.as_ref()),
        body_json,
        attributes: message.attributes.clone().into_iter().collect(),
        message_attributes: message.message_attributes.clone().into_iter().collect(),
        redrive: None,
        archived_at: timestamp(now),
    }
}

/// The archive key of a record.
pub fn archive_key(record: &ArchivedMessage) -> String {
    let id: String = record
        .message_id
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    format!("{ARCHIVE_PREFIX}{}/{id}.json", record.queue)
}

/// Writes the archive record of one message.
async fn write_archive<S: ObjectStore>(
    store: &S,
    config: &DlqConfig,
    record: &ArchivedMessage,
) -> Result<String, String> {
    let key = archive_key(record);
    let body = serde_json::to_vec_pretty(record).map_err(|e| format!("cannot serialize: {e}"))?;
    store
        .put(&config.archive_bucket, &key, body, JSON_CONTENT_TYPE)
        .await
        .map_err(|e| e.to_string())?;
    Ok(key)
}

/// Archives one message and redrives it when eligible. `false` when the
/// message must stay in the DLQ (to be tried again).
async fn archive_and_redrive<S: ObjectStore, Q: QueueSender>(
    store: &S,
    sender: &Q,
    config: &DlqConfig,
    message: &SqsMessage,
    now: DateTime<Utc>,
) -> bool {
    let mut record = archive_record(message, now);
    let planned = config.redrive.as_ref().map(|redrive| {
        plan_redrive(
            message,
            &record.queue,
            record.failure_reason.as_deref(),
            redrive,
        )
    });
    record.redrive = planned.as_ref().map(|planned| match planned {
        Ok(outgoing) => Redrive::Sent {
            target: outgoing.queue_url.clone(),
            attempt: redrive_count(message) + 1,
        },
        Err(reason) => Redrive::Skipped {
            reason: reason.clone(),
        },
    });
    let id = record.message_id.clone();
    let key = match write_archive(store, config, &record).await {
        Ok(key) => key,
        Err(error) => {
            tracing::error!(message_id = %id, %error, "archive failed");
            return false;
        }
    };
    tracing::warn!(
        message_id = %id,
        queue = %record.queue,
        failure_reason = record.failure_reason.as_deref().unwrap_or("unknown"),
        archive_key = %key,
        "dead letter archived"
    );
    let outgoing = match planned {
        Some(Ok(outgoing)) => outgoing,
        Some(Err(reason)) => {
            tracing::info!(message_id = %id, %reason, "not redriven");
            return true;
        }
        None => return true,
    };
    let error = match sender.send(&outgoing).await {
        Ok(new_id) => {
            tracing::info!(
                message_id = %id,
                new_message_id = %new_id,
                delay_seconds = outgoing.delay_seconds,
                "dead letter redriven"
            );
            return true;
        }
        Err(error) => error,
    };
    // The archive said "sent": make it tell what happened instead.
    let retried = matches!(error, StoreError::Transient(_));
    tracing::error!(message_id = %id, %error, retried, "redrive failed");
    record.redrive = Some(Redrive::Failed {
        target: outgoing.queue_url,
        error: error.to_string(),
        retried,
    });
    match write_archive(store, config, &record).await {
        // A permanent failure: the archive holds the whole message and the
        // reason, so it leaves the DLQ instead of failing until retention.
        Ok(_) => !retried,
        Err(error) => {
            tracing::error!(message_id = %id, %error, "archive rewrite failed");
            false
        }
    }
}

/// Archives every message of a DLQ batch and redrives the eligible ones.
/// A message whose archive or redrive fails is reported so it stays in the
/// DLQ (both steps are safe to repeat: the archive key is the message id,
/// and a message is only redriven after its archive is written). From a
/// FIFO DLQ, the messages after the first failure are reported too, without
/// being touched, so a group's order survives ([`process_batch`]).
pub async fn handle<S: ObjectStore, Q: QueueSender>(
    store: &S,
    sender: &Q,
    config: &DlqConfig,
    event: Value,
    now: DateTime<Utc>,
) -> Result<SqsBatchResponse, HandlerError> {
    process_batch(event, |message| async move {
        archive_and_redrive(store, sender, config, &message, now).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::idempotency::idempotency_key;
    use crate::kit::queue::MemorySender;
    use crate::kit::redrive::{DEFAULT_MAX_REDRIVES, REDRIVE_COUNT_ATTRIBUTE};
    use crate::kit::store::MemoryStore;
    use chrono::TimeZone;
    use serde_json::json;
    use std::time::Duration;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 5, 11, 0, 0)
            .single()
            .expect("valid")
    }

    fn config() -> DlqConfig {
        DlqConfig {
            archive_bucket: "archive".into(),
            redrive: None,
        }
    }

    fn redrive_config() -> DlqConfig {
        DlqConfig::from_env(&[
            ("ARCHIVE_BUCKET", "archive"),
            (
                "REDRIVE_TARGETS",
                "type-a-dlq=https://sqs.us-east-1.amazonaws.com/123456789012/type-a, \
                 f-dlq.fifo=https://sqs.us-east-1.amazonaws.com/123456789012/f.fifo",
            ),
            ("REDRIVE_DELAY_SECONDS", "60"),
        ])
        .expect("valid")
    }

    fn dead_letter(id: &str, body: &str, message_attributes: Value) -> Value {
        json!({
            "messageId": id, "receiptHandle": "r", "body": body,
            "attributes": {"ApproximateReceiveCount": "4", "SentTimestamp": "1717581600000"},
            "messageAttributes": message_attributes, "md5OfBody": "m", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:type-a-dlq", "awsRegion": "us-east-1"
        })
    }

    fn failures(r: &SqsBatchResponse) -> Vec<String> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[tokio::test]
    async fn archives_body_attributes_and_reason() {
        let store = MemoryStore::new();
        let attrs = json!({
            "ErrorCode": {"stringValue": "200", "dataType": "String", "stringListValues": [], "binaryListValues": []},
            "ErrorMessage": {"stringValue": "s3://in/a.json: invalid JSON", "dataType": "String"}
        });
        let ev = json!({"Records": [dead_letter("m-1", r#"{"bucket":"in"}"#, attrs)]});
        let response = handle(&store, &MemorySender::new(), &config(), ev, now())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        let archived = store
            .json("archive", "dead-letters/type-a-dlq/m-1.json")
            .expect("archived");
        assert_eq!(archived["body"], r#"{"bucket":"in"}"#);
        assert_eq!(archived["body_json"]["bucket"], "in");
        assert_eq!(archived["attributes"]["ApproximateReceiveCount"], "4");
        assert_eq!(
            archived["message_attributes"]["ErrorCode"]["stringValue"],
            "200"
        );
        assert_eq!(
            archived["failure_reason"],
            "200: s3://in/a.json: invalid JSON"
        );
        assert_eq!(archived["archived_at"], "2024-06-05T11:00:00.000Z");
    }

    #[test]
    fn reason_from_on_failure_destination_body() {
        let body = json!({
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "responsePayload": {"errorType": "ValidationError", "errorMessage": "bad"}
        });
        let mut message = SqsMessage::default();
        message.body = Some(body.to_string());
        assert_eq!(
            failure_reason(&message, Some(&body)).as_deref(),
            Some("RetriesExhausted: ValidationError: bad")
        );
        assert_eq!(
            failure_reason(&SqsMessage::default(), Some(&json!({"x": 1}))),
            None
        );
    }

    #[test]
    fn queue_names_and_keys_are_safe() {
        assert_eq!(queue_name(Some("arn:aws:sqs:us-east-1:1:q.fifo")), "q.fifo");
        assert_eq!(queue_name(None), "unknown-queue");
        assert_eq!(queue_name(Some("weird/name")), "weird_name");
    }

    #[tokio::test]
    async fn non_json_bodies_and_failed_writes() {
        let store = MemoryStore::new();
        store.fail_on(
            "dead-letters/type-a-dlq/m-2.json",
            StoreError::Transient("503".into()),
        );
        let ev = json!({"Records": [
            dead_letter("m-1", "plain text", json!({})),
            dead_letter("m-2", "x", json!({})),
        ]});
        let response = handle(&store, &MemorySender::new(), &config(), ev, now())
            .await
            .expect("ok");
        assert_eq!(failures(&response), vec!["m-2"]);
        let archived = store
            .json("archive", "dead-letters/type-a-dlq/m-1.json")
            .expect("archived");
        assert_eq!(archived["body"], "plain text");
        assert!(archived.get("body_json").is_none());
        assert!(archived.get("failure_reason").is_none());
    }

    #[tokio::test]
    async fn empty_batch() {
        let store = MemoryStore::new();
        let response = handle(
            &store,
            &MemorySender::new(),
            &config(),
            json!({"Records": []}),
            now(),
        )
        .await
        .expect("ok");
        assert!(failures(&response).is_empty());
        assert_eq!(store.put_calls(), 0);
    }

    #[test]
    fn redrive_configuration_errors_name_the_variable() {
        let base = [("ARCHIVE_BUCKET", "archive")];
        assert_eq!(
            DlqConfig::from_env(&base).expect("ok").redrive,
            None,
            "redrive is off without REDRIVE_TARGETS"
        );
        let config = redrive_config().redrive.expect("on");
        assert_eq!(config.max_redrives, DEFAULT_MAX_REDRIVES);
        assert_eq!(config.delay, Duration::from_secs(60));
        assert_eq!(config.targets.len(), 2);
        for (vars, name, hint) in [
            (
                vec![("REDRIVE_TARGETS", "just-a-name")],
                "REDRIVE_TARGETS",
                "<dlq-name>=<queue-url>",
            ),
            (
                vec![("REDRIVE_TARGETS", "a=sqs-queue")],
                "REDRIVE_TARGETS",
                "queue URL",
            ),
            (
                vec![("REDRIVE_TARGETS", "a=https://q/b.fifo")],
                "REDRIVE_TARGETS",
                "FIFO",
            ),
            (
                vec![("REDRIVE_TARGETS", "a=https://q/b"), ("REDRIVE_MAX", "0")],
                "REDRIVE_MAX",
                "1 to 100",
            ),
            (
                vec![
                    ("REDRIVE_TARGETS", "a=https://q/b"),
                    ("REDRIVE_DELAY_SECONDS", "901"),
                ],
                "REDRIVE_DELAY_SECONDS",
                "900",
            ),
        ] {
            let mut env: Vec<(&str, &str)> = base.to_vec();
            env.extend(vars);
            let error = DlqConfig::from_env(env.as_slice()).expect_err("invalid");
            let text = error.to_string();
            assert!(text.contains(name) && text.contains(hint), "{text}");
        }
    }

    #[tokio::test]
    async fn redrives_transient_failures_with_a_counter_and_delay() {
        let store = MemoryStore::new();
        let sender = MemorySender::new();
        let attrs = json!({"tenant": {"stringValue": "acme", "dataType": "String"}});
        let ev = json!({"Records": [dead_letter("m-1", r#"{"bucket":"in"}"#, attrs)]});
        let response = handle(&store, &sender, &redrive_config(), ev, now())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        let sent = sender.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].queue_url,
            "https://sqs.us-east-1.amazonaws.com/123456789012/type-a"
        );
        assert_eq!(sent[0].body, r#"{"bucket":"in"}"#);
        assert_eq!(sent[0].delay_seconds, 60);
        assert_eq!(
            sent[0].attributes["tenant"].string_value.as_deref(),
            Some("acme")
        );
        assert_eq!(
            sent[0].attributes[REDRIVE_COUNT_ATTRIBUTE]
                .string_value
                .as_deref(),
            Some("1")
        );
        let archived = store
            .json("archive", "dead-letters/type-a-dlq/m-1.json")
            .expect("archived");
        assert_eq!(
            archived["redrive"],
            json!({"action": "sent", "target": sent[0].queue_url, "attempt": 1})
        );
    }

    #[tokio::test]
    async fn redrive_stops_at_the_limit_and_for_validation_errors() {
        let store = MemoryStore::new();
        let sender = MemorySender::new();
        let twice = json!({REDRIVE_COUNT_ATTRIBUTE: {"stringValue": "2", "dataType": "Number"}});
        let invalid = json!({
            "ErrorCode": {"stringValue": "ValidationError", "dataType": "String"},
            "ErrorMessage": {"stringValue": "bad input", "dataType": "String"}
        });
        let mut elsewhere = dead_letter("m-3", "x", json!({}));
        elsewhere["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:123456789012:other-dlq");
        let ev = json!({"Records": [
            dead_letter("m-1", "x", twice),
            dead_letter("m-2", "x", invalid),
            elsewhere,
        ]});
        let response = handle(&store, &sender, &redrive_config(), ev, now())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        assert!(sender.sent().is_empty());
        let reason = |key: &str| {
            store.json("archive", key).expect("archived")["redrive"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        assert!(reason("dead-letters/type-a-dlq/m-1.json").contains("REDRIVE_MAX=2"));
        assert!(reason("dead-letters/type-a-dlq/m-2.json").contains("validation error"));
        assert!(reason("dead-letters/other-dlq/m-3.json").contains("no redrive target"));
    }

    #[tokio::test]
    async fn a_failed_redrive_keeps_the_message_in_the_dlq() {
        let store = MemoryStore::new();
        let sender = MemorySender::new();
        sender.fail_next(StoreError::Transient("SQS 503".into()));
        let ev = json!({"Records": [dead_letter("m-1", "x", json!({}))]});
        let response = handle(&store, &sender, &redrive_config(), ev.clone(), now())
            .await
            .expect("ok");
        assert_eq!(failures(&response), vec!["m-1"]);
        // The archive tells the truth: not sent, tried again.
        let key = "dead-letters/type-a-dlq/m-1.json";
        let archived = store.json("archive", key).expect("archived");
        assert_eq!(archived["redrive"]["action"], "failed", "{archived}");
        assert_eq!(archived["redrive"]["retried"], true);
        assert!(
            archived["redrive"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("503"))
        );
        // The retry archives again and redrives.
        let response = handle(&store, &sender, &redrive_config(), ev, now())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        assert_eq!(sender.sent().len(), 1);
        let archived = store.json("archive", key).expect("archived");
        assert_eq!(archived["redrive"]["action"], "sent");
    }

    #[tokio::test]
    async fn a_redrive_that_cannot_succeed_leaves_the_message_archived_only() {
        let store = MemoryStore::new();
        let sender = MemorySender::new();
        sender.fail_next(StoreError::NotFound(
            "SendMessage: QueueDoesNotExist: gone".into(),
        ));
        let ev = json!({"Records": [dead_letter("m-1", "x", json!({}))]});
        let response = handle(&store, &sender, &redrive_config(), ev, now())
            .await
            .expect("ok");
        assert!(
            failures(&response).is_empty(),
            "not retried until retention"
        );
        let archived = store
            .json("archive", "dead-letters/type-a-dlq/m-1.json")
            .expect("archived");
        assert_eq!(archived["redrive"]["action"], "failed");
        assert_eq!(archived["redrive"]["retried"], false);
        assert_eq!(archived["body"], "x", "the archive keeps the message");
    }

    #[tokio::test]
    async fn a_fifo_batch_stops_at_the_first_failure() {
        let store = MemoryStore::new();
        let sender = MemorySender::new();
        sender.fail_next(StoreError::Transient("SQS 503".into()));
        let fifo = |id: &str| {
            let mut m = dead_letter(id, "x", json!({}));
            m["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:123456789012:f-dlq.fifo");
            m["attributes"]["MessageGroupId"] = json!("g");
            m
        };
        let ev = json!({"Records": [fifo("m-1"), fifo("m-2"), fifo("m-3")]});
        let response = handle(&store, &sender, &redrive_config(), ev, now())
            .await
            .expect("ok");
        assert_eq!(failures(&response), vec!["m-1", "m-2", "m-3"]);
        assert!(sender.sent().is_empty(), "m-2 is not redriven before m-1");
        assert!(
            store
                .object("archive", "dead-letters/f-dlq.fifo/m-2.json")
                .is_none()
        );
    }

    #[tokio::test]
    async fn fifo_redrive_keeps_the_group_and_deduplicates_per_attempt() {
        let sender = MemorySender::new();
        let mut message = dead_letter("m-1", "x", json!({}));
        message["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:123456789012:f-dlq.fifo");
        message["attributes"]["MessageGroupId"] = json!("customer-7");
        let ev = json!({"Records": [message]});
        let store = MemoryStore::new();
        let response = handle(&store, &sender, &redrive_config(), ev, now())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        let sent = &sender.sent()[0];
        assert_eq!(sent.group_id.as_deref(), Some("customer-7"));
        assert_eq!(
            sent.delay_seconds, 0,
            "FIFO queues take no per-message delay"
        );
        assert_eq!(
            sent.deduplication_id.as_deref(),
            Some(idempotency_key(b"m-1:1").as_str())
        );
    }
}
