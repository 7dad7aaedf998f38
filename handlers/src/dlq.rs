//! Dead-letter handling: every message reaching a DLQ is archived as JSON
//! to `ARCHIVE_BUCKET` under `dead-letters/<queue>/<messageId>.json` — body,
//! attributes, message attributes and, when the message says why it failed,
//! the failure reason — so it can be inspected and replayed. Archiving is
//! idempotent (the key is the message id).

use std::collections::BTreeMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage, SqsMessageAttribute};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::config::{ConfigError, Env};
use crate::enrich::timestamp;
use crate::error::HandlerError;
use crate::s3_transform::JSON_CONTENT_TYPE;
use crate::sqs::{batch_response, message_id, parse_messages};
use crate::store::ObjectStore;

/// Key prefix of archived messages.
pub const ARCHIVE_PREFIX: &str = "dead-letters/";

/// Configuration of `dlq-handler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqConfig {
    /// `ARCHIVE_BUCKET`.
    pub archive_bucket: String,
}

impl DlqConfig {
    /// Reads `ARCHIVE_BUCKET`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            archive_bucket: env.required("ARCHIVE_BUCKET")?,
        })
    }
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

/// Archives every message of a DLQ batch; failed writes are reported so
/// the messages stay in the DLQ.
pub async fn handle<S: ObjectStore>(
    store: &S,
    config: &DlqConfig,
    event: Value,
    now: DateTime<Utc>,
) -> Result<SqsBatchResponse, HandlerError> {
    let mut failed = Vec::new();
    for parsed in parse_messages(event)? {
        let message = match parsed {
            Ok(message) => message,
            Err((id, error)) => {
                tracing::error!(message_id = %id, error = %error, "malformed DLQ record");
                failed.push(id);
                continue;
            }
        };
        let record = archive_record(&message, now);
        let key = archive_key(&record);
        let body = match serde_json::to_vec_pretty(&record) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(message_id = %record.message_id, %error, "cannot serialize");
                failed.push(record.message_id);
                continue;
            }
        };
        match store
            .put(&config.archive_bucket, &key, body, JSON_CONTENT_TYPE)
            .await
        {
            Ok(()) => tracing::warn!(
                message_id = %record.message_id,
                queue = %record.queue,
                failure_reason = record.failure_reason.as_deref().unwrap_or("unknown"),
                archive_key = %key,
                "dead letter archived"
            ),
            Err(error) => {
                tracing::error!(message_id = %record.message_id, %error, "archive failed");
                failed.push(record.message_id);
            }
        }
    }
    Ok(batch_response(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;
    use crate::store::MemoryStore;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 5, 11, 0, 0)
            .single()
            .expect("valid")
    }

    fn config() -> DlqConfig {
        DlqConfig {
            archive_bucket: "archive".into(),
        }
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
        let response = handle(&store, &config(), ev, now()).await.expect("ok");
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
        let response = handle(&store, &config(), ev, now()).await.expect("ok");
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
        let response = handle(&store, &config(), json!({"Records": []}), now())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        assert_eq!(store.put_calls(), 0);
    }
}
