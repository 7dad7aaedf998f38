//! EventBridge PutEvents behind a trait, with bounded retries of the
//! entries a call reports as failed (`FailedEntryCount`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Serialize;

use crate::kit::aws::classify_sdk_error;
use crate::kit::error::StoreError;
use crate::kit::retry::{Backoff, Sent, send_in_batches};

/// PutEvents accepts at most 10 entries per call.
pub const MAX_PUT_EVENTS_ENTRIES: usize = 10;

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventEntry {
    /// Event bus name or ARN.
    pub bus: String,
    /// `source` field.
    pub source: String,
    /// `detail-type` field.
    pub detail_type: String,
    /// `detail`, serialized JSON.
    pub detail: String,
}

/// What happened to one entry of a PutEvents call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Accepted by the bus.
    Published,
    /// Rejected; `code` is EventBridge's `ErrorCode`.
    Failed {
        /// Error code.
        code: String,
        /// Error message.
        message: String,
    },
}

/// Publishes events to EventBridge.
pub trait EventPublisher: Send + Sync {
    /// One PutEvents call with at most [`MAX_PUT_EVENTS_ENTRIES`] entries;
    /// returns one outcome per entry, in order.
    fn put_events(
        &self,
        entries: &[EventEntry],
    ) -> impl Future<Output = Result<Vec<EntryOutcome>, StoreError>> + Send;
}

/// Publishes `entries` in calls of at most 10, resending only the entries
/// that failed, up to `backoff.attempts` attempts in total. Returns, per
/// entry, `None` if published or the last error message.
pub async fn publish_all<P: EventPublisher>(
    publisher: &P,
    entries: &[EventEntry],
    backoff: Backoff,
) -> Vec<Option<String>> {
    send_in_batches(
        entries.len(),
        MAX_PUT_EVENTS_ENTRIES,
        backoff,
        "PutEvents",
        || "PutEvents returned no result for entry".to_owned(),
        |chunk| async move {
            let batch: Vec<EventEntry> = chunk.iter().map(|&i| entries[i].clone()).collect();
            match publisher.put_events(&batch).await {
                // A short result list is handled by send_in_batches.
                Ok(outcomes) => outcomes
                    .into_iter()
                    .map(|outcome| match outcome {
                        EntryOutcome::Published => Sent::Done,
                        EntryOutcome::Failed { code, message } => {
                            Sent::Retry(format!("PutEvents entry failed: {code}: {message}"))
                        }
                    })
                    .collect(),
                Err(error) => {
                    let message = format!("PutEvents failed: {error}");
                    let retryable = !matches!(error, StoreError::Rejected(_));
                    chunk
                        .iter()
                        .map(|_| Sent::failed(message.clone(), retryable))
                        .collect()
                }
            }
        },
    )
    .await
}

/// [`EventPublisher`] over Amazon EventBridge.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
}

impl EventBridgePublisher {
    /// Wraps an EventBridge client.
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        Self { client }
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn put_events(&self, entries: &[EventEntry]) -> Result<Vec<EntryOutcome>, StoreError> {
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&e.bus)
                    .source(&e.source)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .build()
            })
            .collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, "PutEvents"))?;
        Ok(output
            .entries()
            .iter()
            .map(|r| match r.error_code() {
                Some(code) => EntryOutcome::Failed {
                    code: code.to_owned(),
                    message: r.error_message().unwrap_or_default().to_owned(),
                },
                None => EntryOutcome::Published,
            })
            .collect())
    }
}

/// In-memory [`EventPublisher`] for tests: records every call and can fail
/// chosen entries a number of times, or whole calls.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    state: Mutex<PublisherState>,
}

#[derive(Debug, Default)]
struct PublisherState {
    calls: Vec<Vec<EventEntry>>,
    published: Vec<EventEntry>,
    /// detail substring → remaining failures.
    entry_failures: HashMap<String, u32>,
    call_failures: Vec<StoreError>,
}

impl MemoryPublisher {
    /// A publisher that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails (with `InternalFailure`) the next `times` attempts of every
    /// entry whose detail contains `detail_substring`.
    pub fn fail_entry(&self, detail_substring: &str, times: u32) {
        self.lock()
            .entry_failures
            .insert(detail_substring.to_owned(), times);
    }

    /// Fails the next whole call with `error`.
    pub fn fail_next_call(&self, error: StoreError) {
        self.lock().call_failures.push(error);
    }

    /// The entries of every call made.
    pub fn calls(&self) -> Vec<Vec<EventEntry>> {
        self.lock().calls.clone()
    }

    /// Every entry accepted.
    pub fn published(&self) -> Vec<EventEntry> {
        self.lock().published.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PublisherState> {
        self.state.lock().expect("publisher lock poisoned")
    }
}

impl EventPublisher for MemoryPublisher {
    async fn put_events(&self, entries: &[EventEntry]) -> Result<Vec<EntryOutcome>, StoreError> {
        let mut state = self.lock();
        state.calls.push(entries.to_vec());
        if entries.len() > MAX_PUT_EVENTS_ENTRIES {
            return Err(StoreError::Rejected("more than 10 entries".into()));
        }
        if !state.call_failures.is_empty() {
            return Err(state.call_failures.remove(0));
        }
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            let failing = state
                .entry_failures
                .iter_mut()
                .find(|(needle, left)| **left > 0 && entry.detail.contains(needle.as_str()));
            if let Some((_, left)) = failing {
                *left -= 1;
                outcomes.push(EntryOutcome::Failed {
                    code: "InternalFailure".into(),
                    message: "injected".into(),
                });
            } else {
                state.published.push(entry.clone());
                outcomes.push(EntryOutcome::Published);
            }
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<EventEntry> {
        (0..n)
            .map(|i| EventEntry {
                bus: "bus".into(),
                source: "s".into(),
                detail_type: "t".into(),
                detail: format!("{{\"n\":\"e{i}\"}}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn chunks_of_ten() {
        let p = MemoryPublisher::new();
        let errors = publish_all(&p, &entries(23), Backoff::immediate(3)).await;
        assert!(errors.iter().all(Option::is_none));
        let sizes: Vec<usize> = p.calls().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        assert_eq!(p.published().len(), 23);
    }

    #[tokio::test]
    async fn only_failed_entries_are_resent() {
        let p = MemoryPublisher::new();
        p.fail_entry("\"e4\"", 2);
        let errors = publish_all(&p, &entries(12), Backoff::immediate(3)).await;
        assert!(errors.iter().all(Option::is_none), "{errors:?}");
        let calls = p.calls();
        // 10 + 2, then e4 twice more.
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[2].len(), 1);
        assert!(calls[3][0].detail.contains("e4"));
        assert_eq!(p.published().len(), 12);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let p = MemoryPublisher::new();
        p.fail_entry("\"e1\"", 100);
        let errors = publish_all(&p, &entries(3), Backoff::immediate(3)).await;
        assert!(errors[0].is_none() && errors[2].is_none());
        assert!(
            errors[1]
                .as_deref()
                .is_some_and(|e| e.contains("InternalFailure"))
        );
        assert_eq!(p.calls().len(), 3);
    }

    #[tokio::test]
    async fn whole_call_failures_retry_unless_rejected() {
        let p = MemoryPublisher::new();
        p.fail_next_call(StoreError::Transient("503".into()));
        let errors = publish_all(&p, &entries(2), Backoff::immediate(2)).await;
        assert!(errors.iter().all(Option::is_none));
        assert_eq!(p.calls().len(), 2);

        let p = MemoryPublisher::new();
        p.fail_next_call(StoreError::Rejected("bad".into()));
        let errors = publish_all(&p, &entries(2), Backoff::immediate(5)).await;
        assert!(errors.iter().all(Option::is_some));
        assert_eq!(p.calls().len(), 1);
    }
}
