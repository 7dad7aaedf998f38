//! Bounded retries with exponential backoff for partial failures
//! (PutEvents `FailedEntryCount`, BatchWriteItem `UnprocessedItems`).

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

/// How often and how patiently to resend the failed part of a batch call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Total attempts, including the first call (at least 1).
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub base: Duration,
    /// Upper bound for one delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// No waiting between attempts (unit tests).
    pub fn immediate(attempts: u32) -> Self {
        Self {
            attempts,
            base: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The delay before retry number `retry` (1 = first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Sleeps before retry number `retry`.
    pub async fn wait(&self, retry: u32) {
        let delay = self.delay(retry);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// What a batch call did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent<E> {
    /// Accepted.
    Done,
    /// Failed in a way a resend may fix (throttled, unprocessed, 5xx).
    Retry(E),
    /// Failed for good (the entry or the request is invalid).
    Permanent(E),
}

impl<E> Sent<E> {
    /// [`Sent::Retry`] or [`Sent::Permanent`].
    pub fn failed(error: E, retryable: bool) -> Self {
        if retryable {
            Sent::Retry(error)
        } else {
            Sent::Permanent(error)
        }
    }
}

/// Sends `len` entries in calls of at most `chunk_size`, resending only the
/// entries a call reports as [`Sent::Retry`], for up to `backoff.attempts`
/// attempts in all with backoff between them. `send` gets the indices of one
/// call's entries and returns one [`Sent`] per index, in order (a missing
/// result counts as retryable `missing`). Returns, per entry, `None` if
/// accepted or its last error. One call at a time; see
/// [`send_in_concurrent_batches`].
pub async fn send_in_batches<E, F, Fut>(
    len: usize,
    chunk_size: usize,
    backoff: Backoff,
    what: &str,
    missing: impl Fn() -> E,
    send: F,
) -> Vec<Option<E>>
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: Future<Output = Vec<Sent<E>>>,
{
    send_in_concurrent_batches(len, chunk_size, 1, backoff, what, missing, send).await
}

/// [`send_in_batches`] with up to `concurrency` calls of an attempt in
/// flight at once. Calls are made, and their results read, in entry order.
pub async fn send_in_concurrent_batches<E, F, Fut>(
    len: usize,
    chunk_size: usize,
    concurrency: usize,
    backoff: Backoff,
    what: &str,
    missing: impl Fn() -> E,
    mut send: F,
) -> Vec<Option<E>>
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: Future<Output = Vec<Sent<E>>>,
{
    let mut errors: Vec<Option<E>> = std::iter::repeat_with(|| None).take(len).collect();
    let mut pending: Vec<usize> = (0..len).collect();
    for attempt in 1..=backoff.attempts.max(1) {
        if pending.is_empty() {
            break;
        }
        if attempt > 1 {
            backoff.wait(attempt - 1).await;
        }
        let calls: Vec<(Vec<usize>, Vec<Sent<E>>)> =
            futures::stream::iter(pending.chunks(chunk_size.max(1)))
                .map(|chunk| {
                    // Boxed to keep the callers' state machines shallow.
                    let call = Box::pin(send(chunk.to_vec()));
                    async move { (chunk.to_vec(), call.await) }
                })
                .buffered(concurrency.max(1))
                .collect()
                .await;
        let mut retry = Vec::new();
        for (chunk, results) in calls {
            let mut results = results.into_iter();
            for index in chunk {
                errors[index] = match results.next().unwrap_or_else(|| Sent::Retry(missing())) {
                    Sent::Done => None,
                    Sent::Retry(error) => {
                        retry.push(index);
                        Some(error)
                    }
                    Sent::Permanent(error) => Some(error),
                };
            }
        }
        if !retry.is_empty() {
            tracing::warn!(
                attempt,
                failed = retry.len(),
                call = what,
                "resending failed entries"
            );
        }
        pending = retry;
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_are_capped() {
        let b = Backoff {
            attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(350));
        assert_eq!(b.delay(40), Duration::from_millis(350));
    }

    #[tokio::test]
    async fn resends_only_retryable_failures_in_chunks() {
        use std::cell::RefCell;
        // Entry 1 fails twice then succeeds, 2 always fails retryably,
        // 3 fails permanently, 4's result goes missing once.
        let failures = RefCell::new([0u32, 2, u32::MAX, 0, 1]);
        let calls = RefCell::new(Vec::new());
        let errors = send_in_batches(
            5,
            2,
            Backoff::immediate(3),
            "Test",
            || "missing".to_owned(),
            |chunk: Vec<usize>| {
                calls.borrow_mut().push(chunk.clone());
                let mut results = Vec::new();
                for index in chunk {
                    let mut f = failures.borrow_mut();
                    if index == 4 && f[4] > 0 {
                        f[4] -= 1;
                        break;
                    }
                    results.push(match (index, f[index]) {
                        (3, _) => Sent::Permanent("invalid".to_owned()),
                        (_, 0) => Sent::Done,
                        (_, left) => {
                            f[index] = left.saturating_sub(1);
                            Sent::Retry(format!("throttled {index}"))
                        }
                    });
                }
                async move { results }
            },
        )
        .await;
        assert_eq!(
            errors,
            vec![
                None,
                None,
                Some("throttled 2".to_owned()),
                Some("invalid".to_owned()),
                None
            ]
        );
        assert_eq!(
            calls.into_inner(),
            vec![
                vec![0, 1],
                vec![2, 3],
                vec![4],
                vec![1, 2],
                vec![4],
                vec![1, 2]
            ]
        );
    }
}
