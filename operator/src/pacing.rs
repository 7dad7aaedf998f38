//! Drift detection paced to each account's read budget. A converged
//! pipeline is read back from AWS once per resync period; at a thousand
//! pipelines one pass of every pipeline of an account needs more reads of
//! some quota bucket (IAM's 20/s, Step Functions' `ListTagsForResource` at
//! 1/s) than fit in the configured period, so the period silently
//! stretched: the limiter held the reads back, and each pipeline came back
//! later than configured while every other caller of the bucket waited
//! behind them.
//!
//! Here each pass that converges records the reads it made, by quota
//! bucket, under the pipeline's account and region. The effective period
//! of an account and region is the configured one, or longer where one
//! pass of all of its pipelines needs more than a share
//! (`SLUICE_RESYNC_READ_SHARE`, half by default: the rest is for changes)
//! of some bucket's rate over the period:
//!
//! `period = max(configured, max over buckets of reads per pass / (share × rate))`
//!
//! Resyncs are spread over that period ([`crate::controller::next_resync`]),
//! it is exported per account and region (`sluice_resync_period_seconds`),
//! and a change is logged naming the bucket that sets it: stretched, but
//! never silently.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::{
    aws::quota::{Fractions, Quota, QuotaConfig},
    metrics::Metrics,
};

/// Reads made by one pass of one pipeline, by quota bucket (with AWS's
/// published quota of the bucket).
pub type Reads = BTreeMap<&'static str, (u32, Quota)>;

/// The reads of the AWS calls made through one set of clients
/// ([`crate::aws::Aws::with_tally`]).
#[derive(Clone, Debug, Default)]
pub struct Tally(Arc<Mutex<Reads>>);

impl Tally {
    /// Counts one read charged to bucket `key`.
    pub fn read(&self, key: &'static str, published: Quota) {
        let mut reads = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        reads.entry(key).or_insert((0, published)).0 += 1;
    }

    /// The reads counted so far.
    pub fn reads(&self) -> Reads {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An account and region.
type Place = (String, String);

/// The effective resync period of every account and region the operator
/// works in.
#[derive(Debug)]
pub struct Pacer {
    configured: Duration,
    share: f64,
    quotas: QuotaConfig,
    /// This replica's part of each account's quotas.
    fractions: Arc<Fractions>,
    metrics: Metrics,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Each pipeline's place and the reads of its last pass, by UID.
    pipelines: HashMap<String, (Place, Reads)>,
    /// Reads of one pass of every pipeline, by place and bucket.
    demand: HashMap<Place, BTreeMap<&'static str, (u64, Quota)>>,
    /// The period last computed for each place.
    periods: HashMap<Place, Duration>,
}

/// A period and what sets it: the bucket whose budget it needs, or none
/// (the configured period suffices).
#[derive(Clone, Debug, PartialEq)]
pub struct Period {
    /// How long one pass of every pipeline takes within the budget (at
    /// least the configured period).
    pub period: Duration,
    /// The bucket that stretches it, with its reads per pass and the rate
    /// of the budget (share × the operator's limit), if any does.
    pub bound_by: Option<(&'static str, u64, f64)>,
}

impl Pacer {
    /// A pacer for resyncs every `configured`, using at most `share` of each
    /// bucket's rate (the operator's limit: `quotas` applied, times this
    /// replica's `fractions` of each account) for them.
    pub fn new(
        configured: Duration,
        share: f64,
        quotas: QuotaConfig,
        fractions: Arc<Fractions>,
        metrics: Metrics,
    ) -> Self {
        Pacer {
            configured,
            share,
            quotas,
            fractions,
            metrics,
            state: Mutex::new(State::default()),
        }
    }

    /// This replica's fractions of the accounts changed: every place's
    /// period is computed again (its reads are its part's, and so is its
    /// budget).
    pub fn refresh_all(&self) {
        let mut state = self.state();
        let places: Vec<Place> = state.demand.keys().cloned().collect();
        for place in places {
            self.refresh(&mut state, &place);
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the reads of a pass of pipeline `uid` in `account` and
    /// `region` that converged; answers the place's period.
    pub fn record(&self, uid: &str, account: &str, region: &str, reads: Reads) -> Period {
        let place: Place = (account.to_owned(), region.to_owned());
        let mut state = self.state();
        if let Some((before, old)) = state.pipelines.remove(uid) {
            subtract(&mut state, &before, &old);
        }
        let demand = state.demand.entry(place.clone()).or_default();
        for (key, (n, q)) in &reads {
            demand.entry(key).or_insert((0, *q)).0 += u64::from(*n);
        }
        state
            .pipelines
            .insert(uid.to_owned(), (place.clone(), reads));
        self.refresh(&mut state, &place)
    }

    /// A pipeline is gone: its reads leave its place's demand.
    pub fn forget(&self, uid: &str) {
        let mut state = self.state();
        if let Some((place, reads)) = state.pipelines.remove(uid) {
            subtract(&mut state, &place, &reads);
            self.refresh(&mut state, &place);
        }
    }

    /// The period of the place of pipeline `uid` (the configured one until
    /// a pass of it converged in this process).
    pub fn period_of(&self, uid: &str) -> Duration {
        let state = self.state();
        state
            .pipelines
            .get(uid)
            .and_then(|(place, _)| state.periods.get(place))
            .copied()
            .unwrap_or(self.configured)
    }

    /// Computes a place's period, exports it, and logs a change of more
    /// than a tenth.
    fn refresh(&self, state: &mut State, place: &Place) -> Period {
        let period = self.period(place, state.demand.get(place));
        let before = state
            .periods
            .insert(place.clone(), period.period)
            .unwrap_or(self.configured);
        let (account, region) = place;
        self.metrics
            .resync_period(account, region, period.period.as_secs_f64());
        let (a, b) = (before.as_secs_f64(), period.period.as_secs_f64());
        if (a - b).abs() > a / 10.0 {
            match period.bound_by {
                Some((bucket, reads, rate)) => tracing::warn!(
                    account,
                    region,
                    seconds = b.round(),
                    configured = self.configured.as_secs(),
                    bucket,
                    reads_per_pass = reads,
                    budget_per_second = rate,
                    "resync period stretched: one pass of this account's pipelines needs more of \
                     a quota bucket than the resync share of it allows in the configured period"
                ),
                None => tracing::info!(
                    account,
                    region,
                    seconds = b.round(),
                    "resync period back to the configured one"
                ),
            }
        }
        period
    }

    fn period(
        &self,
        place: &Place,
        demand: Option<&BTreeMap<&'static str, (u64, Quota)>>,
    ) -> Period {
        let mut out = Period {
            period: self.configured,
            bound_by: None,
        };
        let fraction = self.fractions.get(&place.0, &place.1);
        for (key, (reads, published)) in demand.into_iter().flatten() {
            let rate = self.quotas.client_limit_of(key, *published, fraction).rate * self.share;
            if rate <= 0.0 {
                continue;
            }
            let needed = Duration::from_secs_f64(*reads as f64 / rate);
            if needed > out.period {
                out = Period {
                    period: needed,
                    bound_by: Some((key, *reads, rate)),
                };
            }
        }
        out
    }
}

fn subtract(state: &mut State, place: &Place, reads: &Reads) {
    if let Some(demand) = state.demand.get_mut(place) {
        for (key, (n, _)) in reads {
            if let Some(d) = demand.get_mut(key) {
                d.0 = d.0.saturating_sub(u64::from(*n));
            }
        }
        demand.retain(|_, (n, _)| *n > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IAM: Quota = Quota {
        rate: 20.0,
        burst: 20.0,
    };
    const TAGS: Quota = Quota {
        rate: 1.0,
        burst: 100.0,
    };

    fn pacer() -> Pacer {
        Pacer::new(
            Duration::from_secs(300),
            0.5,
            QuotaConfig::default(),
            Arc::new(Fractions::whole()),
            Metrics::new(),
        )
    }

    fn reads(pairs: &[(&'static str, u32, Quota)]) -> Reads {
        pairs.iter().map(|(k, n, q)| (*k, (*n, *q))).collect()
    }

    #[test]
    fn a_small_fleet_keeps_the_configured_period() {
        let p = pacer();
        let got = p.record("u1", "111", "eu-west-1", reads(&[("iam", 3, IAM)]));
        assert_eq!(got.period, Duration::from_secs(300));
        assert_eq!(got.bound_by, None);
        assert_eq!(p.period_of("u1"), Duration::from_secs(300));
        assert_eq!(p.period_of("unknown"), Duration::from_secs(300));
    }

    #[test]
    fn a_large_fleet_stretches_its_accounts_period_by_its_binding_bucket() {
        let p = pacer();
        // 1,000 pipelines × 4 IAM reads at half of 20/s: 400 s; × 1 read
        // of Step Functions tags at half of 1/s: 2,000 s, which binds.
        for i in 0..1000 {
            p.record(
                &format!("u{i}"),
                "111",
                "eu-west-1",
                reads(&[("iam", 4, IAM), ("states:ListTagsForResource", 1, TAGS)]),
            );
        }
        assert_eq!(p.period_of("u7"), Duration::from_secs(2000));
        let last = p.record(
            "u0",
            "111",
            "eu-west-1",
            reads(&[("iam", 4, IAM), ("states:ListTagsForResource", 1, TAGS)]),
        );
        assert_eq!(
            last.bound_by,
            Some(("states:ListTagsForResource", 1000, 0.5))
        );
        // Another account's pipelines are paced on their own budget.
        p.record("v1", "222", "eu-west-1", reads(&[("iam", 4, IAM)]));
        assert_eq!(p.period_of("v1"), Duration::from_secs(300));
        // ...and so is another region of the same account.
        p.record("w1", "111", "us-east-1", reads(&[("iam", 4, IAM)]));
        assert_eq!(p.period_of("w1"), Duration::from_secs(300));
    }

    #[test]
    fn a_pass_replaces_the_last_and_deleted_pipelines_leave_the_demand() {
        let p = pacer();
        for i in 0..1000 {
            p.record(&format!("u{i}"), "111", "r", reads(&[("iam", 4, IAM)]));
        }
        assert_eq!(p.period_of("u1"), Duration::from_secs(400));
        // A pass counted again is not counted twice.
        p.record("u1", "111", "r", reads(&[("iam", 4, IAM)]));
        assert_eq!(p.period_of("u1"), Duration::from_secs(400));
        for i in 0..500 {
            p.forget(&format!("u{i}"));
        }
        // 500 × 4 / 10 = 200 s: back to the configured 300 s.
        assert_eq!(p.period_of("u900"), Duration::from_secs(300));
    }

    #[test]
    fn the_budget_is_the_operators_limit_times_the_share() {
        // An operator with a quarter of the quotas (four in the account)
        // and a raised IAM quota of 40/s.
        let quotas = QuotaConfig {
            share: 0.25,
            overrides: [(
                "iam".to_owned(),
                Quota {
                    rate: 40.0,
                    burst: 40.0,
                },
            )]
            .into(),
        };
        let p = Pacer::new(
            Duration::from_secs(60),
            0.5,
            quotas,
            Arc::new(Fractions::whole()),
            Metrics::new(),
        );
        for i in 0..100 {
            p.record(&format!("u{i}"), "111", "r", reads(&[("iam", 3, IAM)]));
        }
        // 300 reads / (40 × 0.25 × 0.5 = 5/s) = 60 s.
        assert_eq!(p.period_of("u1"), Duration::from_secs(60));
        p.record("u100", "111", "r", reads(&[("iam", 5, IAM)]));
        assert_eq!(p.period_of("u1"), Duration::from_secs(61));
    }

    #[test]
    fn a_sharded_replica_paces_its_part_on_its_part_of_the_budget() {
        let fractions = Arc::new(Fractions::counted());
        fractions.set([(("111".to_owned(), "r".to_owned()), 0.25)].into());
        let p = Pacer::new(
            Duration::from_secs(60),
            0.5,
            QuotaConfig::default(),
            fractions.clone(),
            Metrics::new(),
        );
        // 250 pipelines (a quarter of 1,000) × 4 IAM reads at half of a
        // quarter of 20/s: 400 s, as for the whole fleet on the whole quota.
        for i in 0..250 {
            p.record(&format!("u{i}"), "111", "r", reads(&[("iam", 4, IAM)]));
        }
        assert_eq!(p.period_of("u1"), Duration::from_secs(400));
        // Its part of the account doubles (another replica's shards came
        // to it) while its own pipelines' reads are not counted yet.
        fractions.set([(("111".to_owned(), "r".to_owned()), 0.5)].into());
        p.refresh_all();
        assert_eq!(p.period_of("u1"), Duration::from_secs(200));
    }
}
