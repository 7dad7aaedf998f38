//! SQS SendMessage behind a trait (the dead-letter handler's redrive, a
//! team's function sending its results on), with the SDK implementation and
//! an in-memory one.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use aws_lambda_events::sqs::SqsMessageAttribute;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::MessageAttributeValue;

use crate::kit::aws::classify_sdk_error;
use crate::kit::error::StoreError;

/// SQS allows at most 10 message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// SQS's longest per-message delay (15 minutes).
pub const MAX_DELAY_SECONDS: u32 = 900;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Target queue URL.
    pub queue_url: String,
    /// Body, unchanged.
    pub body: String,
    /// Message attributes to set.
    pub attributes: BTreeMap<String, SqsMessageAttribute>,
    /// Per-message delay (standard queues only).
    pub delay_seconds: u32,
    /// FIFO queues: the message group.
    pub group_id: Option<String>,
    /// FIFO queues: the deduplication id.
    pub deduplication_id: Option<String>,
}

impl OutgoingMessage {
    /// A message with `body` for the queue at `queue_url`, without
    /// attributes, delay, group or deduplication id.
    pub fn new(queue_url: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            body: body.into(),
            attributes: BTreeMap::new(),
            delay_seconds: 0,
            group_id: None,
            deduplication_id: None,
        }
    }
}

/// Whether a queue URL names a FIFO queue.
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

/// Sends messages to SQS.
pub trait QueueSender: Send + Sync {
    /// Sends one message; returns the new message id.
    fn send(
        &self,
        message: &OutgoingMessage,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// [`QueueSender`] over Amazon SQS.
#[derive(Debug, Clone)]
pub struct SqsSender {
    client: aws_sdk_sqs::Client,
}

impl SqsSender {
    /// Wraps an SQS client.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }

    /// The sender of a function, on its SDK configuration
    /// ([`crate::kit::aws::load_config`]).
    pub fn for_function(config: &aws_types::SdkConfig) -> Self {
        Self::new(aws_sdk_sqs::Client::new(config))
    }

    /// The URL of a queue named by its URL (returned as it is: what the
    /// operator puts in the `env` of a `uses` edge to a queue) or by its
    /// name (looked up with GetQueueUrl, which needs `sqs:GetQueueUrl`).
    pub async fn queue_url(&self, name_or_url: &str) -> Result<String, StoreError> {
        if is_queue_url(name_or_url) {
            return Ok(name_or_url.to_owned());
        }
        let output = self
            .client
            .get_queue_url()
            .queue_name(name_or_url)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &format!("GetQueueUrl {name_or_url}")))?;
        output.queue_url.ok_or_else(|| {
            StoreError::Transient(format!("GetQueueUrl {name_or_url}: no URL in the answer"))
        })
    }
}

/// Whether `text` is a queue URL rather than a queue name (which cannot
/// contain `:` or `/`).
pub fn is_queue_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

fn to_sdk_attribute(attribute: &SqsMessageAttribute) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type(attribute.data_type.as_deref().unwrap_or("String"))
        .set_string_value(attribute.string_value.clone())
        .set_binary_value(
            attribute
                .binary_value
                .as_ref()
                .map(|b| Blob::new(b.0.clone())),
        )
        .build()
        .map_err(|e| StoreError::Rejected(format!("message attribute: {e}")))
}

impl QueueSender for SqsSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&message.queue_url)
            .message_body(&message.body)
            .set_message_group_id(message.group_id.clone())
            .set_message_deduplication_id(message.deduplication_id.clone());
        if message.delay_seconds > 0 {
            request = request.delay_seconds(i32::try_from(message.delay_seconds).unwrap_or(0));
        }
        for (name, attribute) in &message.attributes {
            request = request.message_attributes(name, to_sdk_attribute(attribute)?);
        }
        let output = request
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &format!("SendMessage {}", message.queue_url)))?;
        Ok(output.message_id.unwrap_or_default())
    }
}

/// In-memory [`QueueSender`] for tests: records what was sent and can fail
/// the next calls.
#[derive(Debug, Default)]
pub struct MemorySender {
    state: Mutex<SenderState>,
}

#[derive(Debug, Default)]
struct SenderState {
    sent: Vec<OutgoingMessage>,
    failures: Vec<StoreError>,
}

impl MemorySender {
    /// A sender that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the next call with `error`.
    pub fn fail_next(&self, error: StoreError) {
        self.lock().failures.push(error);
    }

    /// Every message accepted, in order.
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.lock().sent.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SenderState> {
        self.state.lock().expect("sender lock poisoned")
    }
}

impl QueueSender for MemorySender {
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError> {
        let mut state = self.lock();
        if !state.failures.is_empty() {
            return Err(state.failures.remove(0));
        }
        state.sent.push(message.clone());
        Ok(format!("sent-{}", state.sent.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_names() {
        assert!(is_queue_url(
            "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
        ));
        assert!(is_queue_url("http://127.0.0.1:5000/123456789012/orders"));
        assert!(!is_queue_url("orders"));
        assert!(!is_queue_url("orders.fifo"));
    }

    #[tokio::test]
    async fn the_memory_sender_records_and_fails_on_request() {
        let sender = MemorySender::new();
        sender.fail_next(StoreError::Transient("throttled".into()));
        let message = OutgoingMessage::new("https://q", "{}");
        assert!(sender.send(&message).await.is_err());
        assert_eq!(sender.send(&message).await.as_deref(), Ok("sent-1"));
        assert_eq!(sender.sent(), vec![message]);
    }
}
