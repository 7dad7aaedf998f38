//! A client-side rate limit (GCRA: a token bucket without a refill task).
//!
//! AWS's control-plane quotas are per account and region and shared with
//! every other client of the account (Lambda's management APIs: 15 req/s in
//! all). Sluice keeps itself below its configured share, allowing a burst of
//! one second's worth of calls.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

/// Limits calls to `rate` per second with a burst of `rate` calls.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: Duration,
    /// Theoretical arrival time of the next call.
    tat: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` calls per second.
    pub fn new(rate: f64) -> Self {
        Self::with_burst(rate, rate.max(1.0).floor() as u32)
    }

    /// A limiter allowing `rate` calls per second after a burst of `burst`
    /// calls, the shape of AWS's token-bucket quotas (Step Functions'
    /// CreateStateMachine: a bucket of 100 refilled at 1 per second).
    pub fn with_burst(rate: f64, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        RateLimiter {
            interval,
            burst: interval.mul_f64(f64::from(burst.max(1) - 1)),
            tat: Mutex::new(None),
        }
    }

    /// Waits until a call is allowed.
    pub async fn acquire(&self) {
        let wait_until = {
            let mut tat = self.tat.lock().await;
            let now = Instant::now();
            let current = tat.map_or(now, |t| t.max(now));
            let allowed_at = current.checked_sub(self.burst).unwrap_or(now).max(now);
            *tat = Some(current + self.interval);
            allowed_at
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_holds_the_rate() {
        let limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        for _ in 0..10 {
            limiter.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(5),
            "burst of 10 is immediate"
        );
        for _ in 0..20 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        // 30 calls at 10/s with a burst of 10: the last waits ~2 s.
        assert!(elapsed >= Duration::from_millis(1990), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_bucket_refills_slowly() {
        let limiter = RateLimiter::with_burst(1.0, 20);
        let start = Instant::now();
        for _ in 0..20 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(5), "burst of 20");
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_millis(1990),
            "then 1 per second"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_rates_space_calls_out() {
        let limiter = RateLimiter::new(0.5);
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(2));
    }
}
