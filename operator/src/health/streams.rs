//! Stream consumers: how far behind the newest record a function reading a
//! Kinesis stream is (`AWS/Lambda` `IteratorAge`, by `FunctionName`, the
//! highest value in the window), one query each.

use super::{
    Problem, Window,
    cloudwatch::{Batch, Readings, Stat},
    format_age, reasons,
};
use crate::{
    crd::{DataPipelineSpec, HealthSpec, StreamConsumerHealth, coarse_age},
    plan::Plan,
};

/// A function reading a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Logical name of the function.
    pub function: String,
    /// Function name in AWS.
    pub name: String,
    /// Logical name of the stream.
    pub stream: String,
}

/// Every (function, stream) trigger of the spec whose function is planned.
pub fn targets(spec: &DataPipelineSpec, plan: &Plan) -> Vec<Target> {
    spec.functions
        .iter()
        .flat_map(|f| {
            f.triggers
                .iter()
                .filter_map(|t| t.stream.as_ref())
                .map(move |s| (f.name.clone(), s.name.clone()))
        })
        .filter_map(|(function, stream)| {
            let name = plan
                .functions
                .iter()
                .find(|p| p.logical == function)?
                .name
                .clone();
            Some(Target {
                function,
                name,
                stream,
            })
        })
        .collect()
}

/// Where a consumer's reading is in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queries {
    iterator_age: usize,
}

/// Adds a consumer's query to the batch.
pub fn query(t: &Target, batch: &mut Batch) -> Queries {
    Queries {
        iterator_age: batch.add(
            "AWS/Lambda",
            "IteratorAge",
            "FunctionName",
            &t.name,
            Stat::Maximum,
        ),
    }
}

/// One consumer's highest iterator age in the window, seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Seconds behind the newest record (Lambda reports milliseconds).
    pub iterator_age_seconds: f64,
}

impl Reading {
    /// Reads a consumer's query.
    pub fn from(q: &Queries, r: &Readings) -> Self {
        Reading {
            iterator_age_seconds: r.value(q.iterator_age) / 1000.0,
        }
    }
}

/// The consumer's entry in `status.health`.
pub fn figures(t: &Target, r: &Reading) -> StreamConsumerHealth {
    StreamConsumerHealth {
        function: t.function.clone(),
        stream: t.stream.clone(),
        iterator_age_seconds: coarse_age(r.iterator_age_seconds),
    }
}

/// What is wrong with a consumer, if anything.
pub fn problems(t: &Target, r: &Reading, limits: &HealthSpec, window: &Window) -> Vec<Problem> {
    if r.iterator_age_seconds <= limits.max_iterator_age_seconds as f64 {
        return Vec::new();
    }
    vec![Problem {
        reason: reasons::ITERATOR_AGE,
        message: format!(
            "function {} ({}) fell over {} behind stream {} in the last {window} (more than \
             spec.health.maxIteratorAgeSeconds {}); look for its errors, or give it more \
             throughput (batchSize, parallelizationFactor)",
            t.function,
            t.name,
            format_age(coarse_age(r.iterator_age_seconds).max(60)),
            t.stream,
            limits.max_iterator_age_seconds
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::sample;

    #[test]
    fn a_consumer_behind_its_stream_is_named_with_the_stream() {
        let spec = sample("stream.yaml");
        let plan = crate::plan::tests::plan_of(&spec);
        let t = targets(&spec, &plan);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].function.as_str(), t[0].stream.as_str()),
            ("processor", "events")
        );
        let r = Reading {
            iterator_age_seconds: 700.0,
        };
        let p = problems(&t[0], &r, &HealthSpec::default(), &Window::from_secs(900));
        assert_eq!(p[0].reason, "IteratorAgeHigh");
        assert!(
            p[0].message.contains("fell over 5m behind stream events"),
            "{}",
            p[0].message
        );
        assert!(
            problems(
                &t[0],
                &Reading {
                    iterator_age_seconds: 30.0
                },
                &HealthSpec::default(),
                &Window::from_secs(900)
            )
            .is_empty()
        );
    }
}
