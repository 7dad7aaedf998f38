//! SQS SendMessage behind a trait (the dead-letter handler's redrive), with
//! the SDK implementation and an in-memory one.

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
