//! `word-count`, the template of a team's own function on the Sluice
//! handlers library (`sluice_handlers`).
//!
//! A bucket's ObjectCreated event (a `triggers` edge from the bucket) names
//! one or more objects; each is read, its words and lines counted, and one
//! SQS message per object, `{"bucket", "key", "words", "lines"}`, is sent
//! to the queue in `OUTPUT_QUEUE` (the `env` of the function's `uses` edge
//! to the queue: the operator puts the queue's URL there; a name is looked
//! up with GetQueueUrl).
//!
//! The logic ([`handle`]) is written over the library's traits
//! ([`ObjectStore`], [`QueueSender`]), so the tests below run it on JSON
//! events with in-memory ones, without a network; `main.rs` only wires the
//! real clients.
//!
//! Errors are per record, the way the library's handlers report them:
//! every record is tried, and the invocation then fails naming each object
//! that failed ([`HandlerError::combine`]): retryable when any failure was
//! transient (S3 or SQS throttled, unreachable), so Lambda retries the
//! event, a validation error otherwise (a missing object, a malformed
//! record), which goes to the function's on-failure destination or DLQ. A
//! retried event counts its other objects again: to a FIFO queue each
//! object's message carries a deduplication id, so SQS drops the repeat
//! within five minutes; to a standard queue, consumers see it twice (wrap
//! the work in [`sluice_handlers::once`] with an idempotency table to make
//! it exactly once).

use sluice_handlers::kit::idempotency::idempotency_key;
use sluice_handlers::kit::queue::is_fifo;
use sluice_handlers::serde_json::{Value, json};
use sluice_handlers::{
    ConfigError, Env, HandlerError, ObjectStore, OutgoingMessage, Payload, QueueSender,
    S3ObjectRef, s3_objects,
};

/// The function's configuration, read once at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `OUTPUT_QUEUE`: the URL (or name) of the queue the counts go to.
    pub output_queue: String,
}

impl Config {
    /// Reads `OUTPUT_QUEUE`; unset or empty is an error naming it.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            output_queue: env.required("OUTPUT_QUEUE")?,
        })
    }
}

/// Words and lines of a text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Runs of bytes between ASCII whitespace.
    pub words: u64,
    /// Lines, the last one counted whether or not it ends with a newline.
    pub lines: u64,
}

/// Counts the words and lines of `text` (bytes: any encoding that keeps
/// ASCII whitespace as itself, UTF-8 included).
pub fn count(text: &[u8]) -> Counts {
    let words = text
        .split(u8::is_ascii_whitespace)
        .filter(|word| !word.is_empty())
        .count();
    let newlines = text.iter().filter(|b| **b == b'\n').count();
    let unterminated = usize::from(text.last().is_some_and(|b| *b != b'\n'));
    Counts {
        words: words as u64,
        lines: (newlines + unterminated) as u64,
    }
}

/// The message body of one object's counts.
pub fn message_body(object: &S3ObjectRef, counts: Counts) -> String {
    json!({
        "bucket": object.bucket,
        "key": object.key,
        "words": counts.words,
        "lines": counts.lines,
    })
    .to_string()
}

/// The message of one object's counts for the queue at `queue_url`. To a
/// FIFO queue: grouped by bucket, and deduplicated per write of the object
/// (S3's sequencer tells two writes of one key apart).
pub fn message(queue_url: &str, object: &S3ObjectRef, counts: Counts) -> OutgoingMessage {
    let mut message = OutgoingMessage::new(queue_url, message_body(object, counts));
    if is_fifo(queue_url) {
        let write = format!(
            "{}\n{}",
            object.uri(),
            object.sequencer.as_deref().unwrap_or_default()
        );
        message.group_id = Some(object.bucket.clone());
        message.deduplication_id = Some(idempotency_key(write.as_bytes()));
    }
    message
}

/// Handles one S3 event: counts every object it names and sends the counts
/// to `queue_url`. The response lists what was sent; see the crate's
/// documentation for what fails and how.
pub async fn handle<S: ObjectStore, Q: QueueSender, P: Payload>(
    store: &S,
    sender: &Q,
    queue_url: &str,
    event: P,
) -> Result<Value, HandlerError> {
    let records = s3_objects(&event)?;
    let total = records.len();
    let mut sent = Vec::new();
    let mut errors = Vec::new();
    for record in records {
        let result = match record {
            Ok(object) => count_and_send(store, sender, queue_url, &object).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(done) => sent.push(done),
            Err(error) => errors.push(error),
        }
    }
    match HandlerError::combine(errors, total) {
        Some(error) => Err(error),
        None => Ok(json!({ "sent": sent })),
    }
}

async fn count_and_send<S: ObjectStore, Q: QueueSender>(
    store: &S,
    sender: &Q,
    queue_url: &str,
    object: &S3ObjectRef,
) -> Result<Value, HandlerError> {
    let body = store
        .get(&object.bucket, &object.key)
        .await
        .map_err(|e| HandlerError::from(e).context(object.uri()))?;
    let counts = count(&body);
    let message_id = sender
        .send(&message(queue_url, object, counts))
        .await
        .map_err(|e| {
            HandlerError::from(e).context(format!("sending the counts of {}", object.uri()))
        })?;
    Ok(json!({
        "object": object.uri(),
        "words": counts.words,
        "lines": counts.lines,
        "messageId": message_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_handlers::kit::error::StoreError;
    use sluice_handlers::{MemorySender, MemoryStore};

    const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/counts";

    fn object(bucket: &str, key: &str) -> S3ObjectRef {
        S3ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            sequencer: Some("0055AED6DCD90281E5".into()),
        }
    }

    fn event(records: &[(&str, &str)]) -> Value {
        let records: Vec<Value> = records
            .iter()
            .map(|(bucket, key)| {
                json!({
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}}
                })
            })
            .collect();
        json!({ "Records": records })
    }

    #[test]
    fn counts_words_and_lines() {
        assert_eq!(count(b""), Counts { words: 0, lines: 0 });
        assert_eq!(count(b"one"), Counts { words: 1, lines: 1 });
        assert_eq!(count(b"one two\n"), Counts { words: 2, lines: 1 });
        assert_eq!(
            count(b"  one\ttwo  \n\nthree\r\nfour"),
            Counts { words: 4, lines: 4 }
        );
        assert_eq!(
            count("grüße aus köln\n".as_bytes()),
            Counts { words: 3, lines: 1 }
        );
    }

    #[test]
    fn the_body_is_bucket_key_words_lines() {
        let body = message_body(&object("in", "a b.txt"), Counts { words: 3, lines: 2 });
        let parsed: Value = sluice_handlers::serde_json::from_str(&body).expect("json");
        assert_eq!(
            parsed,
            json!({"bucket": "in", "key": "a b.txt", "words": 3, "lines": 2})
        );
    }

    #[test]
    fn fifo_messages_are_grouped_and_deduplicated_per_write() {
        let counts = Counts::default();
        let standard = message(QUEUE, &object("in", "k"), counts);
        assert_eq!((standard.group_id, standard.deduplication_id), (None, None));
        let fifo_url = format!("{QUEUE}.fifo");
        let first = message(&fifo_url, &object("in", "k"), counts);
        assert_eq!(first.group_id.as_deref(), Some("in"));
        let mut rewritten = object("in", "k");
        rewritten.sequencer = Some("0055AED6DCD90281F0".into());
        let second = message(&fifo_url, &rewritten, counts);
        assert!(first.deduplication_id.is_some());
        assert_ne!(first.deduplication_id, second.deduplication_id);
    }

    #[test]
    fn the_queue_comes_from_output_queue() {
        let env = [("OUTPUT_QUEUE", QUEUE)];
        let config = Config::from_env(&env).expect("set");
        assert_eq!(config.output_queue, QUEUE);
        let err = Config::from_env(&[("OUTPUT_QUEUE", "")]).expect_err("empty");
        assert!(err.to_string().contains("OUTPUT_QUEUE"), "{err}");
    }

    #[tokio::test]
    async fn one_message_per_object() {
        let store = MemoryStore::new();
        store.insert("in", "a.txt", "hello world\n");
        store.insert("in", "dir/b c.txt", "one\ntwo\nthree");
        let sender = MemorySender::new();
        let event = event(&[("in", "a.txt"), ("in", "dir/b+c.txt")]);
        let response = handle(&store, &sender, QUEUE, event).await.expect("ok");
        assert_eq!(response["sent"].as_array().map(Vec::len), Some(2));
        let bodies: Vec<Value> = sender
            .sent()
            .iter()
            .map(|m| {
                assert_eq!(m.queue_url, QUEUE);
                sluice_handlers::serde_json::from_str(&m.body).expect("json")
            })
            .collect();
        assert_eq!(
            bodies,
            vec![
                json!({"bucket": "in", "key": "a.txt", "words": 2, "lines": 1}),
                json!({"bucket": "in", "key": "dir/b c.txt", "words": 3, "lines": 3}),
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_record_is_reported_and_the_others_still_sent() {
        let store = MemoryStore::new();
        store.insert("in", "there.txt", "x");
        let sender = MemorySender::new();
        let mut event = event(&[("in", "missing.txt"), ("in", "there.txt")]);
        if let Some(records) = event["Records"].as_array_mut() {
            records.push(json!({"s3": {"bucket": {"name": "in"}}}));
        }
        let err = handle(&store, &sender, QUEUE, event)
            .await
            .expect_err("two failures");
        assert!(!err.is_retryable(), "{err}");
        assert!(err.message().contains("2 of 3 records failed"), "{err}");
        assert!(err.message().contains("s3://in/missing.txt"), "{err}");
        assert_eq!(sender.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_throttled_send_is_retryable() {
        let store = MemoryStore::new();
        store.insert("in", "a.txt", "x");
        let sender = MemorySender::new();
        sender.fail_next(StoreError::Transient("throttled".into()));
        let err = handle(&store, &sender, QUEUE, event(&[("in", "a.txt")]))
            .await
            .expect_err("retry");
        assert!(err.is_retryable(), "{err}");
        assert!(
            err.message()
                .contains("sending the counts of s3://in/a.txt"),
            "{err}"
        );
    }
}
