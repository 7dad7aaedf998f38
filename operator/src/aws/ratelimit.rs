//! A client-side rate limit (GCRA: a token bucket), shared fairly between
//! tenants.
//!
//! AWS's control-plane quotas are token buckets per account and region
//! ([`super::quota`]); one limiter stands for one of them. While the bucket
//! has tokens, a call goes at once. Once callers wait, they queue per tenant
//! (the pipeline's namespace) and the bucket's tokens go to the tenants in
//! turn ([`crate::fair::FairQueue`]): a namespace that applied 500
//! pipelines waits behind its own calls, not in front of another
//! namespace's. Within a tenant, first come, first served. When AWS
//! throttles anyway (another client of the account used the bucket),
//! [`RateLimiter::throttled`] pushes every waiter of the bucket back, not
//! just the caller: the bucket's whole traffic slows down, as AWS asks.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};

use crate::fair::FairQueue;

/// Limits calls to `rate` per second after a burst of `burst` calls.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    /// Wakes the dispatcher when the limit changes.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Time between tokens at the sustained rate.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run: the
    /// burst, less the token being taken.
    burst: Duration,
    /// Theoretical arrival time of the next call.
    tat: Option<Instant>,
    /// Callers waiting for a token, by tenant.
    waiters: FairQueue<oneshot::Sender<()>>,
    /// A task hands out tokens to the waiters.
    dispatching: bool,
}

impl State {
    /// When the next token is there, from `now`.
    fn next_token(&self, now: Instant) -> (Instant, Instant) {
        let current = self.tat.map_or(now, |t| t.max(now));
        let allowed_at = current.checked_sub(self.burst).unwrap_or(now).max(now);
        (current, allowed_at)
    }

    /// Sets the limit. The tokens already spent ahead of now stay spent:
    /// the debt is rescaled to the new interval.
    fn set(&mut self, rate: f64, burst: f64) {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        if let Some(tat) = self.tat
            && !self.interval.is_zero()
        {
            let now = Instant::now();
            let ahead = tat.saturating_duration_since(now);
            let ratio = interval.as_secs_f64() / self.interval.as_secs_f64();
            self.tat = Some(now + ahead.mul_f64(ratio));
        }
        self.interval = interval;
        self.burst = interval.mul_f64(burst.floor().max(1.0) - 1.0);
    }
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
        let mut state = State::default();
        state.set(rate, burst);
        RateLimiter {
            state: Mutex::new(state),
            changed: Notify::new(),
        }
    }

    /// Changes the rate and burst from now on (a replica's share of an
    /// account's quota follows its part of the account's pipelines). Calls
    /// already let through stay counted: the bucket refills at the new
    /// rate from where it is.
    pub fn set_limit(&self, rate: f64, burst: f64) {
        self.state().set(rate, burst);
        // A waiting dispatcher computed its wake-up at the old rate.
        self.changed.notify_waiters();
    }

    /// The sustained rate, calls per second.
    pub fn rate(&self) -> f64 {
        1.0 / self.state().interval.as_secs_f64()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// AWS throttled a call of this bucket (the `attempt`-th time in a
    /// row for that call): no call of the bucket starts before the bucket
    /// has refilled for `interval × 2^attempt` (at most 5 s), with jitter,
    /// so the whole bucket's traffic backs off, then resumes at the rate.
    /// Returns how long that is from now.
    pub async fn throttled(&self, attempt: u32) -> Duration {
        let jitter = 0.5 + rand::random::<f64>() / 2.0;
        let mut state = self.state();
        let backoff = state
            .interval
            .mul_f64(f64::from(2u32.saturating_pow(attempt.min(16))))
            .min(Duration::from_secs(5))
            .mul_f64(jitter);
        let now = Instant::now();
        // Every later call waits until the bucket is empty again plus the
        // back-off: the burst is spent.
        let resume = now + backoff + state.burst;
        let current = state.tat.map_or(now, |t| t.max(now));
        state.tat = Some(current.max(resume));
        (current.max(resume) - state.burst).saturating_duration_since(now)
    }

    /// Waits until a call is allowed (one tenant).
    pub async fn acquire(self: &Arc<Self>) {
        self.acquire_as("").await;
    }

    /// Waits until a call of `tenant` is allowed: at once while the bucket
    /// has tokens and nobody waits, else in `tenant`'s turn.
    pub async fn acquire_as(self: &Arc<Self>, tenant: &str) {
        let receiver = {
            let mut state = self.state();
            let now = Instant::now();
            let (current, allowed_at) = state.next_token(now);
            if state.waiters.is_empty() && allowed_at <= now {
                state.tat = Some(current + state.interval);
                return;
            }
            let (sender, receiver) = oneshot::channel();
            state.waiters.push(tenant, sender);
            if !state.dispatching {
                state.dispatching = true;
                tokio::spawn(self.clone().dispatch());
            }
            receiver
        };
        // Err only when the runtime shuts down the dispatcher: go.
        let _ = receiver.await;
    }

    /// Hands each token, when the bucket has one, to the next waiter in
    /// turn; ends when nobody waits.
    async fn dispatch(self: Arc<Self>) {
        loop {
            let changed = self.changed.notified();
            let wait_until = {
                let mut state = self.state();
                if state.waiters.is_empty() {
                    state.dispatching = false;
                    return;
                }
                state.next_token(Instant::now()).1
            };
            tokio::select! {
                () = tokio::time::sleep_until(wait_until) => {}
                // The limit changed: the next token may be sooner.
                () = changed => continue,
            }
            let mut state = self.state();
            let now = Instant::now();
            let (current, allowed_at) = state.next_token(now);
            // A throttle moved the next token later meanwhile.
            if allowed_at > now {
                continue;
            }
            // A waiter that gave up does not take the token.
            while let Some(waiter) = state.waiters.pop() {
                if waiter.send(()).is_ok() {
                    state.tat = Some(current + state.interval);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_holds_the_rate() {
        let limiter = Arc::new(RateLimiter::new(10.0));
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
        let limiter = Arc::new(RateLimiter::with_burst(1.0, 20.0));
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
        let limiter = Arc::new(RateLimiter::with_burst(10.0, 10.0));
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
        let limiter = Arc::new(RateLimiter::new(0.5));
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_tenant_gets_the_next_token_whatever_another_queued() {
        // 1 call a second; one namespace queues 30 calls, then another
        // namespace asks for one.
        let limiter = Arc::new(RateLimiter::with_burst(1.0, 1.0));
        limiter.acquire_as("big").await;
        let start = Instant::now();
        let mut big = Vec::new();
        for _ in 0..30 {
            let l = limiter.clone();
            big.push(tokio::spawn(async move { l.acquire_as("big").await }));
            tokio::task::yield_now().await;
        }
        let l = limiter.clone();
        let small = tokio::spawn(async move {
            l.acquire_as("small").await;
            Instant::now()
        });
        let served = small.await.expect("small");
        // Its turn comes second: after one of big's, not after all 30.
        assert!(
            served - start <= Duration::from_millis(2100),
            "{:?}",
            served - start
        );
        for b in big {
            b.await.expect("big");
        }
        // The bucket's rate held for everyone: 31 calls at 1 a second.
        assert!(
            start.elapsed() >= Duration::from_secs(30),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_raised_limit_serves_the_waiters_at_the_new_rate() {
        // 1 call in 10 s: the second caller waits for the next token.
        let limiter = Arc::new(RateLimiter::with_burst(0.1, 1.0));
        limiter.acquire().await;
        let start = Instant::now();
        let waiter = {
            let l = limiter.clone();
            tokio::spawn(async move {
                l.acquire().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The replica's share grew a hundredfold.
        limiter.set_limit(10.0, 1.0);
        assert!((limiter.rate() - 10.0).abs() < 1e-9);
        let served = waiter.await.expect("waiter");
        // Not at the 10 s the old rate promised.
        assert!(
            served - start < Duration::from_secs(2),
            "{:?}",
            served - start
        );
        // And a lowered one holds later calls to it.
        limiter.set_limit(0.5, 1.0);
        let before = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(
            before.elapsed() >= Duration::from_secs(2),
            "{:?}",
            before.elapsed()
        );
    }
}
