//! Bounded retries with exponential backoff for partial failures
//! (PutEvents `FailedEntryCount`, BatchWriteItem `UnprocessedItems`).

use std::time::Duration;

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
}
