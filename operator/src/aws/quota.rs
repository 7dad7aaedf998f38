//! AWS's control-plane quotas, as the groups AWS meters them in.
//!
//! AWS throttles control-plane calls per account and region with token
//! buckets, and not one bucket per service: Lambda meters `GetFunction`,
//! `GetPolicy` and every other management call in three separate buckets;
//! Step Functions, Kinesis and CloudWatch Logs meter each API on its own.
//! A client-side limit that lumps a service together wastes most of its
//! budget (one 10 req/s limit for all of Lambda held `GetFunction`, which
//! may run at 100 req/s, to a tenth of it). [`quota`] maps each call to the
//! bucket AWS charges it to, with the rate and burst AWS publishes; the
//! operator runs each bucket at [`QuotaConfig::share`] of them.
//!
//! Sources (default quotas, as published; an account may have raised some,
//! see `SLUICE_AWS_QUOTAS`):
//! - Lambda, "API requests": <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html#api-requests>
//!   `GetFunction` 100 req/s, `GetPolicy` 15 req/s, the remainder of the
//!   control plane 15 req/s across all APIs; none can be increased.
//! - Step Functions, "Quotas related to API action throttling" (token
//!   buckets, bucket size and refill per second):
//!   <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html#service-limits-api-action-throttling-general>
//! - Kinesis Data Streams, "API limits" (per account and region, per API):
//!   <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>
//! - CloudWatch Logs quotas (per API): <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html>
//! - EventBridge quotas: every control-plane API other than `PutEvents` at
//!   50 req/s: <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html>
//! - EventBridge Scheduler quotas (us-east-1; smaller Regions allow less):
//!   <https://docs.aws.amazon.com/scheduler/latest/UserGuide/scheduler-quotas.html>
//! - DynamoDB control plane: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html>
//! - CloudWatch `GetMetricData` 50 req/s: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html>
//! - S3: 3,500 writes and 5,500 reads per second per prefix (answered with
//!   503 SlowDown above it): <https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html>
//! - IAM and SQS publish no per-second control-plane quota. IAM is one
//!   global endpoint; 20 req/s is a conservative figure, SQS's queue-level
//!   APIs get 100 req/s. Both are adjustable with `SLUICE_AWS_QUOTAS`, and
//!   whatever AWS really allows, a throttled call is retried, never failed.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use super::{Service, is_read};

/// One token bucket of AWS: its steady rate and how many calls it allows at
/// once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    /// Requests per second the bucket refills at.
    pub rate: f64,
    /// Bucket size: calls allowed at once after a quiet period.
    pub burst: f64,
}

impl Quota {
    const fn new(rate: f64, burst: f64) -> Self {
        Quota { rate, burst }
    }

    /// A bucket holding one second's worth of calls (AWS publishes only the
    /// rate for these).
    const fn per_second(rate: f64) -> Self {
        Quota { rate, burst: rate }
    }
}

/// The bucket a call is charged to: a key naming it (the service, or
/// `service:Operation` where AWS meters an API on its own) and AWS's
/// published quota for it.
pub fn quota(service: Service, operation: &str) -> (&'static str, Quota) {
    match service {
        Service::Lambda => match operation {
            "GetFunction" => ("lambda:GetFunction", Quota::per_second(100.0)),
            "GetPolicy" => ("lambda:GetPolicy", Quota::per_second(15.0)),
            _ => ("lambda", Quota::per_second(15.0)),
        },
        Service::StepFunctions => match operation {
            "CreateStateMachine" => ("states:CreateStateMachine", Quota::new(1.0, 100.0)),
            "DeleteStateMachine" => ("states:DeleteStateMachine", Quota::new(1.0, 100.0)),
            "UpdateStateMachine" => ("states:UpdateStateMachine", Quota::new(1.0, 200.0)),
            "DescribeStateMachine" => ("states:DescribeStateMachine", Quota::new(20.0, 200.0)),
            "ListTagsForResource" => ("states:ListTagsForResource", Quota::new(1.0, 100.0)),
            "TagResource" => ("states:TagResource", Quota::new(1.0, 200.0)),
            "UntagResource" => ("states:UntagResource", Quota::new(1.0, 200.0)),
            _ => ("states", Quota::new(1.0, 100.0)),
        },
        Service::Kinesis => match operation {
            "DescribeStreamSummary" => ("kinesis:DescribeStreamSummary", Quota::per_second(20.0)),
            "DescribeStream" => ("kinesis:DescribeStream", Quota::per_second(10.0)),
            "CreateStream" => ("kinesis:CreateStream", Quota::per_second(5.0)),
            "DeleteStream" => ("kinesis:DeleteStream", Quota::per_second(5.0)),
            "ListTagsForStream" => ("kinesis:ListTagsForStream", Quota::per_second(5.0)),
            "AddTagsToStream" => ("kinesis:AddTagsToStream", Quota::per_second(5.0)),
            "RemoveTagsFromStream" => ("kinesis:RemoveTagsFromStream", Quota::per_second(5.0)),
            "UpdateShardCount" => ("kinesis:UpdateShardCount", Quota::per_second(2.0)),
            // Retention, encryption and mode changes: 5 per stream and
            // account; metered here as one bucket.
            _ => ("kinesis", Quota::per_second(5.0)),
        },
        Service::Logs => match operation {
            "CreateLogGroup" => ("logs:CreateLogGroup", Quota::per_second(5.0)),
            "DeleteLogGroup" => ("logs:DeleteLogGroup", Quota::per_second(10.0)),
            "DescribeLogGroups" => ("logs:DescribeLogGroups", Quota::per_second(10.0)),
            "PutRetentionPolicy" => ("logs:PutRetentionPolicy", Quota::per_second(5.0)),
            "ListTagsForResource" => ("logs:ListTagsForResource", Quota::per_second(10.0)),
            _ => ("logs", Quota::per_second(5.0)),
        },
        Service::Events => ("events", Quota::per_second(50.0)),
        Service::Scheduler => match operation {
            "CreateSchedule" => ("scheduler:CreateSchedule", Quota::per_second(1000.0)),
            "UpdateSchedule" => ("scheduler:UpdateSchedule", Quota::per_second(1000.0)),
            "DeleteSchedule" => ("scheduler:DeleteSchedule", Quota::per_second(1000.0)),
            "GetSchedule" => ("scheduler:GetSchedule", Quota::per_second(1000.0)),
            _ => ("scheduler", Quota::per_second(50.0)),
        },
        Service::DynamoDb => ("dynamodb", Quota::per_second(2500.0)),
        Service::CloudWatch => ("cloudwatch", Quota::per_second(50.0)),
        // Never called (Lambda reads images); ECR's API default.
        Service::Ecr => ("ecr", Quota::per_second(20.0)),
        // Never called (Lambda checks networks); EC2's describe default.
        Service::Ec2 => ("ec2", Quota::per_second(100.0)),
        Service::S3 if is_read(operation) => ("s3:read", Quota::per_second(5500.0)),
        Service::S3 => ("s3:write", Quota::per_second(3500.0)),
        Service::Iam => ("iam", Quota::per_second(20.0)),
        Service::Sqs => ("sqs", Quota::per_second(100.0)),
        // One GetCallerIdentity per region and process.
        Service::Sts => ("sts", Quota::per_second(100.0)),
    }
}

/// How much of each quota the operator uses.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaConfig {
    /// Fraction of every bucket's rate and burst (`SLUICE_AWS_QUOTA_SHARE`):
    /// 1 for an operator alone in its account; 1/n for n operators sharing
    /// one (one per tenant group).
    pub share: f64,
    /// Buckets whose quota the account has raised (or that a test wants
    /// faster), by key: `SLUICE_AWS_QUOTAS=lambda=30,iam=5/10`.
    pub overrides: BTreeMap<String, Quota>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            share: 1.0,
            overrides: BTreeMap::new(),
        }
    }
}

impl QuotaConfig {
    /// A configuration for tests that should not wait on AWS's pace: every
    /// bucket `factor` times AWS's.
    pub fn scaled(factor: f64) -> Self {
        QuotaConfig {
            share: factor,
            overrides: BTreeMap::new(),
        }
    }

    /// The limit the operator keeps for a bucket: the published (or
    /// overridden) rate times the share, and half the burst (at least one
    /// call), so calls that bunch on their way to AWS still fit its bucket.
    pub fn client_limit(&self, key: &str, published: Quota) -> Quota {
        self.client_limit_of(key, published, 1.0)
    }

    /// The limit of a replica using `fraction` of the account's quotas
    /// ([`Fractions`]): the share of it.
    pub fn client_limit_of(&self, key: &str, published: Quota, fraction: f64) -> Quota {
        let q = self.overrides.get(key).copied().unwrap_or(published);
        let share = self.share * fraction;
        Quota {
            rate: q.rate * share,
            burst: (q.burst * share / 2.0).max(1.0),
        }
    }

    /// Parses `key=rate[/burst]` pairs, comma-separated.
    pub fn parse_overrides(raw: &str) -> Result<BTreeMap<String, Quota>, String> {
        let mut out = BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=rate[/burst]"))?;
            let (rate, burst) = match value.split_once('/') {
                Some((r, b)) => (r, Some(b)),
                None => (value, None),
            };
            let number = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| *v > 0.0 && *v <= 100_000.0)
                    .ok_or_else(|| format!("{pair:?}: {s:?} is not a number above 0"))
            };
            let rate = number(rate)?;
            let burst = match burst {
                Some(b) => number(b)?,
                None => rate,
            };
            out.insert(key.trim().to_owned(), Quota::new(rate, burst));
        }
        Ok(out)
    }
}

/// The least part of an account's quotas a sharded replica keeps, even
/// holding none of its pipelines: a pipeline that lands in one of its
/// shards is served at once, before the next count of the fleet.
pub const MIN_FRACTION: f64 = 0.02;

/// The part of each account's quotas (by account and region) this replica
/// uses, on top of [`QuotaConfig::share`]: all of it alone or as the
/// leader; with shards, its part of each account's pipelines
/// ([`crate::shards::quota`]), so that replicas holding uneven parts of an
/// account together stay within its quotas without holding each other to
/// an even split.
#[derive(Debug)]
pub struct Fractions {
    /// `None`: every fraction is 1 (not sharded).
    parts: RwLock<Option<HashMap<(String, String), f64>>>,
    /// A place was asked for that the last count did not have: a count is
    /// due (its first pipelines are being reconciled at the minimum).
    missed: AtomicBool,
}

impl Fractions {
    /// All of every account's quotas.
    pub fn whole() -> Self {
        Fractions {
            parts: RwLock::new(None),
            missed: AtomicBool::new(false),
        }
    }

    /// A sharded replica's: [`MIN_FRACTION`] of everything until the first
    /// count.
    pub fn counted() -> Self {
        Fractions {
            parts: RwLock::new(Some(HashMap::new())),
            missed: AtomicBool::new(false),
        }
    }

    /// The part of `account`'s quotas in `region` this replica uses.
    pub fn get(&self, account: &str, region: &str) -> f64 {
        let parts = self.parts.read().unwrap_or_else(PoisonError::into_inner);
        match &*parts {
            None => 1.0,
            Some(parts) => match parts.get(&(account.to_owned(), region.to_owned())) {
                Some(part) => part.clamp(MIN_FRACTION, 1.0),
                None => {
                    self.missed.store(true, Ordering::Relaxed);
                    MIN_FRACTION
                }
            },
        }
    }

    /// Whether a place was asked for that the last count did not have,
    /// since the last time this was asked.
    pub fn take_missed(&self) -> bool {
        self.missed.swap(false, Ordering::Relaxed)
    }

    /// Replaces the counted parts; answers whether any part moved by more
    /// than a twentieth of itself (or appeared or went), so callers
    /// re-limit only then. A replica that is not sharded keeps the whole.
    pub fn set(&self, new: HashMap<(String, String), f64>) -> bool {
        let mut parts = self.parts.write().unwrap_or_else(PoisonError::into_inner);
        let Some(old) = parts.as_mut() else {
            return false;
        };
        let moved = |a: f64, b: f64| (a - b).abs() > a.max(MIN_FRACTION) / 20.0;
        let changed = old.len() != new.len()
            || new
                .iter()
                .any(|(k, v)| old.get(k).is_none_or(|o| moved(*o, *v)));
        if changed {
            *old = new;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_meters_get_function_get_policy_and_the_rest_apart() {
        let key = |op| quota(Service::Lambda, op).0;
        assert_eq!(key("GetFunction"), "lambda:GetFunction");
        assert_eq!(key("GetPolicy"), "lambda:GetPolicy");
        for op in [
            "CreateFunction",
            "AddPermission",
            "ListEventSourceMappings",
            "GetFunctionEventInvokeConfig",
            "TagResource",
        ] {
            assert_eq!(key(op), "lambda", "{op}");
        }
        assert_eq!(quota(Service::Lambda, "GetFunction").1.rate, 100.0);
        assert_eq!(quota(Service::Lambda, "CreateFunction").1.rate, 15.0);
        assert_eq!(quota(Service::Lambda, "GetPolicy").1.rate, 15.0);
    }

    #[test]
    fn step_functions_buckets_are_large_and_refill_slowly() {
        let (key, q) = quota(Service::StepFunctions, "CreateStateMachine");
        assert_eq!(key, "states:CreateStateMachine");
        assert_eq!(q, Quota::new(1.0, 100.0));
        assert_eq!(
            quota(Service::StepFunctions, "DescribeStateMachine").1,
            Quota::new(20.0, 200.0)
        );
    }

    #[test]
    fn s3_reads_and_writes_are_separate_buckets() {
        assert_eq!(quota(Service::S3, "GetBucketTagging").0, "s3:read");
        assert_eq!(quota(Service::S3, "PutBucketTagging").0, "s3:write");
    }

    #[test]
    fn the_client_keeps_its_share_and_half_the_burst() {
        let config = QuotaConfig {
            share: 0.5,
            overrides: QuotaConfig::parse_overrides("lambda=30, iam=5/10").expect("valid"),
        };
        let lambda = config.client_limit("lambda", Quota::per_second(15.0));
        assert_eq!(lambda, Quota::new(15.0, 7.5));
        let iam = config.client_limit("iam", Quota::per_second(20.0));
        assert_eq!(iam, Quota::new(2.5, 2.5));
        let sfn = QuotaConfig::default().client_limit("states", Quota::new(1.0, 100.0));
        assert_eq!(sfn, Quota::new(1.0, 50.0));
        let tiny = QuotaConfig::default().client_limit("x", Quota::new(1.0, 1.0));
        assert_eq!(tiny.burst, 1.0, "at least one call");
    }

    #[test]
    fn overrides_name_what_is_wrong() {
        assert!(
            QuotaConfig::parse_overrides("lambda")
                .expect_err("no rate")
                .contains("key=rate")
        );
        assert!(
            QuotaConfig::parse_overrides("lambda=-1")
                .expect_err("negative")
                .contains("above 0")
        );
        assert!(QuotaConfig::parse_overrides("").expect("empty").is_empty());
    }

    #[test]
    fn fractions_are_whole_unsharded_and_counted_when_sharded() {
        let whole = Fractions::whole();
        assert!(!whole.set([(("1".into(), "r".into()), 0.5)].into()));
        assert_eq!(whole.get("1", "r"), 1.0);

        let counted = Fractions::counted();
        assert_eq!(
            counted.get("1", "r"),
            MIN_FRACTION,
            "before the first count"
        );
        assert!(counted.set([(("1".into(), "r".into()), 0.4)].into()));
        assert_eq!(counted.get("1", "r"), 0.4);
        assert_eq!(
            counted.get("2", "r"),
            MIN_FRACTION,
            "an account it holds none of"
        );
        // Within a twentieth: not worth re-limiting every bucket.
        assert!(!counted.set([(("1".into(), "r".into()), 0.41)].into()));
        assert_eq!(counted.get("1", "r"), 0.4);
        assert!(counted.set([(("1".into(), "r".into()), 0.5)].into()));
        assert!(counted.set(HashMap::new()), "an account gone");
        assert_eq!(counted.get("1", "r"), MIN_FRACTION);

        let config = QuotaConfig {
            share: 0.5,
            overrides: BTreeMap::new(),
        };
        let iam = config.client_limit_of("iam", Quota::per_second(20.0), 0.4);
        assert!((iam.rate - 4.0).abs() < 1e-9, "{iam:?}");
        assert!((iam.burst - 2.0).abs() < 1e-9, "{iam:?}");
    }
}
