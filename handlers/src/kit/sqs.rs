//! SQS batches: per-message parsing and partial batch responses.
//!
//! With `ReportBatchItemFailures` on the event source mapping, a handler
//! returns the ids of the messages that failed; only those become visible
//! again (and, after `maxReceiveCount`, move to the DLQ). Returning an error
//! instead would retry the whole batch.

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use serde::Deserialize;
use serde_json::Value;

use crate::kit::error::HandlerError;
use crate::kit::events::RawRecords;

/// A parsed message, or the id of a record that is not a valid message
/// with the reason.
pub type ParsedMessage = Result<SqsMessage, (String, HandlerError)>;

/// Splits an SQS event into messages. A record that is not an SQS message
/// but has a `messageId` becomes a per-message error.
pub fn parse_messages(event: Value) -> Result<Vec<ParsedMessage>, HandlerError> {
    RawRecords::from_event(event)?
        .records
        .into_iter()
        .map(|record| {
            let id = record
                .get("messageId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match (SqsMessage::deserialize(&record), id) {
                (Ok(message), Some(_)) => Ok(Ok(message)),
                (Err(e), Some(id)) => Ok(Err((
                    id,
                    HandlerError::validation(format!("malformed SQS record: {e}")),
                ))),
                // Without an id the failure cannot be reported per message;
                // fail the whole batch so nothing is silently dropped.
                (_, None) => Err(HandlerError::validation("SQS record without messageId")),
            }
        })
        .collect()
}

/// The message id (always present after [`parse_messages`]).
pub fn message_id(message: &SqsMessage) -> &str {
    message.message_id.as_deref().unwrap_or_default()
}

/// A partial batch response naming `failed` message ids.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}

/// Runs `process` on each message of an SQS batch, in order, and returns
/// the partial batch response: records that are not valid messages, and
/// messages `process` returns `false` for, are reported failed. From a FIFO
/// queue, every message after the first failure is reported failed without
/// being processed — Lambda's rule for FIFO partial batch responses — so a
/// message group keeps its order.
pub async fn process_batch<F, Fut>(
    event: Value,
    mut process: F,
) -> Result<SqsBatchResponse, HandlerError>
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut failed = Vec::new();
    for parsed in parse_messages(event)? {
        let message = match parsed {
            Ok(message) => message,
            Err((id, error)) => {
                tracing::error!(message_id = %id, error = %error, "malformed SQS record");
                failed.push(id);
                continue;
            }
        };
        let id = message_id(&message).to_owned();
        let fifo = message
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"));
        if fifo && !failed.is_empty() {
            failed.push(id);
            continue;
        }
        if !process(message).await {
            failed.push(id);
        }
    }
    Ok(batch_response(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn response_serializes_as_lambda_expects() {
        let json = serde_json::to_value(batch_response(vec!["m2".into()])).expect("json");
        assert_eq!(
            json,
            json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
        );
        let empty = serde_json::to_value(batch_response(vec![])).expect("json");
        assert_eq!(empty, json!({"batchItemFailures": []}));
    }

    #[test]
    fn records_without_id_fail_the_batch_and_bad_records_fail_alone() {
        assert!(parse_messages(json!({"Records": [{"body": "x"}]})).is_err());
        let parsed = parse_messages(json!({"Records": [
            {"messageId": "a", "body": "x"},
            {"messageId": "b", "body": 5}
        ]}))
        .expect("ok");
        assert_eq!(parsed.len(), 2);
        assert!(parsed[0].is_ok());
        assert!(matches!(&parsed[1], Err((id, _)) if id == "b"));
    }

    fn batch(queue: &str) -> Value {
        let record = |id: &str| {
            json!({"messageId": id, "body": id,
                   "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}")})
        };
        json!({"Records": [record("a"), record("b"), {"messageId": "bad", "body": 5}, record("c")]})
    }

    /// Runs a batch where message `b` fails; returns (processed, failed).
    async fn run(queue: &str) -> (Vec<String>, Vec<String>) {
        let mut processed = Vec::new();
        let response = process_batch(batch(queue), |m| {
            let id = message_id(&m).to_owned();
            processed.push(id.clone());
            async move { id != "b" }
        })
        .await
        .expect("ok");
        let failed = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        (processed, failed)
    }

    #[tokio::test]
    async fn a_standard_batch_goes_on_after_a_failure() {
        let (processed, failed) = run("q").await;
        assert_eq!(processed, ["a", "b", "c"]);
        assert_eq!(failed, ["b", "bad"]);
    }

    #[tokio::test]
    async fn a_fifo_batch_stops_at_the_first_failure() {
        let (processed, failed) = run("q.fifo").await;
        assert_eq!(processed, ["a", "b"], "c is not processed ahead of b");
        assert_eq!(failed, ["b", "bad", "c"]);
    }
}
