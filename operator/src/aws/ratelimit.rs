//! A client-side rate limit (GCRA: a token bucket without a refill task).
//!
//! AWS's control-plane quotas are token buckets per account and region
//! ([`super::quota`]); one limiter stands for one of them. Waiters are
//! served in the order they arrived (the lock is fair), so a pipeline with
//! many resources, making its calls one after another, gets the same turn
//! as every other pipeline waiting on the bucket. When AWS throttles anyway
//! (another client of the account used the bucket), [`RateLimiter::throttled`]
//! pushes every waiter of the bucket back, not just the caller: the
//! bucket's whole traffic slows down, as AWS asks.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

/// Limits calls to `rate` per second after a burst of `burst` calls.
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
        Self::with_burst(rate, rate.max(1.0).floor())
    }

    /// A limiter allowing `rate` calls per second after a burst of `burst`
    /// calls, the shape of AWS's token-bucket quotas (Step Functions'
    /// CreateStateMachine: a bucket of 100 refilled at 1 per second).
    pub fn with_burst(rate: f64, burst: f64) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        RateLimiter {
            interval,
            burst: interval.mul_f64((burst.floor().max(1.0)) - 1.0),
            tat: Mutex::new(None),
        }
    }

    /// AWS throttled a call of this bucket (the `attempt`-th time in a
    /// row for that call): no call of the bucket starts before the bucket
    /// has refilled for `interval × 2^attempt` (at most 5 s), with jitter,
    /// so the whole bucket's traffic backs off, then resumes at the rate.
    /// Returns how long that is from now.
    pub async fn throttled(&self, attempt: u32) -> Duration {
        let backoff = self
            .interval
            .mul_f64(f64::from(2u32.saturating_pow(attempt.min(16))))
            .min(Duration::from_secs(5))
            .mul_f64(0.5 + rand::random::<f64>() / 2.0);
        let mut tat = self.tat.lock().await;
        let now = Instant::now();
        // Every later call waits until the bucket is empty again plus the
        // back-off: the burst is spent.
        let resume = now + backoff + self.burst;
        let current = tat.map_or(now, |t| t.max(now));
        *tat = Some(current.max(resume));
        (current.max(resume) - self.burst).saturating_duration_since(now)
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
        let limiter = RateLimiter::with_burst(1.0, 20.0);
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
    async fn a_throttle_holds_back_every_caller_of_the_bucket() {
        let limiter = RateLimiter::with_burst(10.0, 10.0);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        let pause = limiter.throttled(3).await;
        // 2^3 intervals of 100 ms, jittered to between half and all of it.
        assert!(pause >= Duration::from_millis(400), "{pause:?}");
        assert!(pause <= Duration::from_millis(800), "{pause:?}");
        limiter.acquire().await;
        assert!(start.elapsed() >= pause, "the next call waits");
        // Then the bucket runs at its rate, not in a burst.
        let resumed = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert!(resumed.elapsed() >= Duration::from_millis(490));
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
