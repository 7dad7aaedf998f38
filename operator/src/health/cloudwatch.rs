//! CloudWatch metrics, read in batches: every metric one poll needs, of
//! every kind, goes into one `GetMetricData` call (up to 500 queries a
//! call, so a pipeline of the largest allowed size still takes one), with
//! the window as the period so each query returns one or two data points.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;

use crate::aws::operator_policy::{Action, Document, Statement};
use crate::aws::{Aws, AwsError, Service};

/// What the operator's AWS policy allows for runtime health's metrics
/// ([`crate::aws::operator_policy`]): `GetMetricData` is read-only and not
/// resource-scoped.
pub const POLICY: &[Statement] = &[Statement::allow(
    "HealthMetrics",
    Document::Core,
    &[Action::calls(Service::CloudWatch, "GetMetricData")],
    &["*"],
)];

/// Most queries one `GetMetricData` call takes (an AWS limit).
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// How data points of a query combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Summed over the window (counts).
    Sum,
    /// The highest value in the window (ages).
    Maximum,
}

impl Stat {
    fn as_str(self) -> &'static str {
        match self {
            Stat::Sum => "Sum",
            Stat::Maximum => "Maximum",
        }
    }
}

/// One metric of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// CloudWatch namespace, e.g. `AWS/Lambda`.
    pub namespace: &'static str,
    /// Metric name, e.g. `Errors`.
    pub metric: &'static str,
    /// The one dimension naming the resource, e.g. `FunctionName`.
    pub dimension: &'static str,
    /// Its value: the resource's AWS name (or ARN for Step Functions).
    pub value: String,
    /// How data points combine.
    pub stat: Stat,
}

/// The queries of one poll; [`Batch::add`] hands out the index a reading
/// is found under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    queries: Vec<Query>,
}

impl Batch {
    /// Adds a query; returns its index.
    pub fn add(
        &mut self,
        namespace: &'static str,
        metric: &'static str,
        dimension: &'static str,
        value: &str,
        stat: Stat,
    ) -> usize {
        self.queries.push(Query {
            namespace,
            metric,
            dimension,
            value: value.to_owned(),
            stat,
        });
        self.queries.len() - 1
    }

    /// The queries, in the order they were added.
    pub fn queries(&self) -> &[Query] {
        &self.queries
    }

    /// `GetMetricData` calls this batch takes.
    pub fn calls(&self) -> usize {
        self.queries.len().div_ceil(MAX_QUERIES_PER_CALL)
    }
}

/// What CloudWatch answered, by query index: `None` where it had no data
/// point in the window (a function never invoked has no `Errors`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings(pub Vec<Option<f64>>);

impl Readings {
    /// The reading of query `index`, 0 without data.
    pub fn value(&self, index: usize) -> f64 {
        self.0.get(index).copied().flatten().unwrap_or(0.0)
    }

    /// The reading of query `index`, if CloudWatch had data.
    pub fn get(&self, index: usize) -> Option<f64> {
        self.0.get(index).copied().flatten()
    }
}

/// Query id: CloudWatch wants a lowercase letter first.
fn id(index: usize) -> String {
    format!("q{index}")
}

/// Combines the data points of one query.
pub fn combine(stat: Stat, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match stat {
        Stat::Sum => values.iter().sum(),
        Stat::Maximum => values.iter().copied().fold(f64::MIN, f64::max),
    })
}

fn to_sdk(index: usize, q: &Query, period: i32) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id(index))
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(q.namespace)
                        .metric_name(q.metric)
                        .dimensions(
                            Dimension::builder()
                                .name(q.dimension)
                                .value(&q.value)
                                .build(),
                        )
                        .build(),
                )
                .period(period)
                .stat(q.stat.as_str())
                .build(),
        )
        .return_data(true)
        .build()
}

/// Reads every query of `batch` over the `window` ending now: one
/// `GetMetricData` call per [`MAX_QUERIES_PER_CALL`] queries, through
/// [`Aws::call`] (rate-limited and counted).
pub async fn read(aws: &Aws, batch: &Batch, window: Duration) -> Result<Readings, AwsError> {
    let mut readings = Readings(vec![None; batch.queries.len()]);
    if batch.queries.is_empty() {
        return Ok(readings);
    }
    let period = i32::try_from(window.as_secs()).unwrap_or(i32::MAX);
    let end = std::time::SystemTime::now();
    let start = end.checked_sub(window).unwrap_or(std::time::UNIX_EPOCH);
    for (chunk_no, chunk) in batch.queries.chunks(MAX_QUERIES_PER_CALL).enumerate() {
        let offset = chunk_no * MAX_QUERIES_PER_CALL;
        let queries: Vec<MetricDataQuery> = chunk
            .iter()
            .enumerate()
            .map(|(i, q)| to_sdk(offset + i, q, period))
            .collect();
        let mut next_token: Option<String> = None;
        // With the window as the period each query has at most two data
        // points, far below a page; the token is followed all the same, a
        // bounded number of times.
        for _page in 0..4 {
            let request = aws
                .cloudwatch
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(DateTime::from(start))
                .end_time(DateTime::from(end))
                .set_next_token(next_token.clone());
            let out = aws
                .call(Service::CloudWatch, "GetMetricData", || {
                    request.clone().send()
                })
                .await?;
            for result in out.metric_data_results() {
                let Some(index) = result
                    .id()
                    .and_then(|i| i.strip_prefix('q'))
                    .and_then(|i| i.parse::<usize>().ok())
                else {
                    continue;
                };
                let Some(query) = batch.queries.get(index) else {
                    continue;
                };
                let value = combine(query.stat, result.values());
                if let Some(slot) = readings.0.get_mut(index) {
                    *slot = match (*slot, value) {
                        (Some(a), Some(b)) => combine(query.stat, &[a, b]),
                        (a, b) => a.or(b),
                    };
                }
            }
            next_token = out.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_add_and_maxima_take_the_highest() {
        assert_eq!(combine(Stat::Sum, &[1.0, 2.0]), Some(3.0));
        assert_eq!(combine(Stat::Maximum, &[1.0, 7.0, 2.0]), Some(7.0));
        assert_eq!(combine(Stat::Sum, &[]), None);
    }

    #[test]
    fn a_batch_needs_one_call_per_500_queries() {
        let mut b = Batch::default();
        assert_eq!(b.calls(), 0);
        for i in 0..501 {
            let index = b.add(
                "AWS/Lambda",
                "Errors",
                "FunctionName",
                &format!("f{i}"),
                Stat::Sum,
            );
            assert_eq!(index, i);
        }
        assert_eq!(b.calls(), 2);
    }

    #[test]
    fn query_ids_start_with_a_letter_and_carry_the_index() {
        let q = to_sdk(
            7,
            &Query {
                namespace: "AWS/SQS",
                metric: "ApproximateAgeOfOldestMessage",
                dimension: "QueueName",
                value: "q".into(),
                stat: Stat::Maximum,
            },
            900,
        );
        assert_eq!(q.id(), Some("q7"));
        let stat = q.metric_stat().expect("stat");
        assert_eq!(stat.period(), Some(900));
        assert_eq!(stat.stat(), Some("Maximum"));
    }
}
