//! SQS batches: per-message parsing and partial batch responses.
//!
//! With `ReportBatchItemFailures` on the event source mapping, a handler
//! returns the ids of the messages that failed; only those become visible
//! again (and, after `maxReceiveCount`, move to the DLQ). Returning an error
//! instead would retry the whole batch.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use serde::Deserialize;
use serde_json::Value;

use crate::error::HandlerError;
use crate::events::RawRecords;

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
}
