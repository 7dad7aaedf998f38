//! Dead-letter queues: every queue failures land in — a queue's
//! `deadLetter`, a function's asynchronous `onFailure`, a stream trigger's
//! `onFailure`, a schedule's `deadLetter`. Their depth comes from SQS
//! (`GetQueueAttributes`, one call per queue, exact and current); the age
//! of the oldest message and what a consumer such as the dlq-handler
//! received in the window come from CloudWatch (`AWS/SQS`, by `QueueName`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::types::QueueAttributeName;

use super::{
    Problem, Window,
    cloudwatch::{Batch, Readings, Stat},
    format_age, reasons,
};
use crate::aws::operator_policy::{Action, Document, Statement};
use crate::{
    aws::{Aws, AwsError, Service},
    crd::{DataPipelineSpec, DeadLetterQueueHealth, HealthSpec, coarse, coarse_age},
    plan::{Plan, graph::dead_letter_name},
};

/// What the operator's AWS policy allows for reading dead-letter queues'
/// depth ([`crate::aws::operator_policy`]): part of the queues' statement.
pub const POLICY: &[Statement] = &[Statement::allow(
    "Queues",
    Document::Services,
    &[
        Action::calls(Service::Sqs, "GetQueueUrl"),
        Action::calls(Service::Sqs, "GetQueueAttributes"),
    ],
    crate::aws::queue::QUEUES,
)];

/// Built-in handler that archives dead letters.
pub const DLQ_HANDLER: &str = "dlq-handler";

/// What sends failures to a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Messages a queue could not deliver (`queues[].deadLetter`).
    Queue(String),
    /// Failed asynchronous invocations of a function
    /// (`functions[].asyncInvocation.onFailure`).
    AsyncInvocations(String),
    /// Stream batches a function gave up on
    /// (`functions[].triggers[].stream.onFailure`).
    StreamBatches(String),
    /// Failed runs of a schedule (`schedules[].deadLetter`).
    Schedule(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Queue(q) => write!(f, "queue {q}"),
            Source::AsyncInvocations(fun) => {
                write!(f, "asynchronous invocations of function {fun}")
            }
            Source::StreamBatches(fun) => write!(f, "stream batches of function {fun}"),
            Source::Schedule(s) => write!(f, "schedule {s}"),
        }
    }
}

/// A function archiving a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archiver {
    /// Logical name of the function.
    pub function: String,
    /// The bucket it archives to (its `ARCHIVE_BUCKET`).
    pub bucket: Option<String>,
}

/// A dead-letter queue whose health is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Logical name.
    pub logical: String,
    /// Queue name in AWS.
    pub name: String,
    /// What sends failures there.
    pub sources: Vec<Source>,
    /// A dlq-handler consuming it, if any.
    pub archiver: Option<Archiver>,
}

/// Every queue of the plan that is somebody's dead-letter queue.
pub fn targets(spec: &DataPipelineSpec, plan: &Plan) -> Vec<Target> {
    let mut sources: BTreeMap<String, Vec<Source>> = BTreeMap::new();
    for q in &spec.queues {
        if let Some(d) = &q.dead_letter {
            let dlq = d.queue.clone().unwrap_or_else(|| dead_letter_name(&q.name));
            sources
                .entry(dlq)
                .or_default()
                .push(Source::Queue(q.name.clone()));
        }
    }
    for f in &spec.functions {
        if let Some(dest) = f
            .async_invocation
            .as_ref()
            .and_then(|a| a.on_failure.as_ref())
        {
            sources
                .entry(dest.queue.clone())
                .or_default()
                .push(Source::AsyncInvocations(f.name.clone()));
        }
        for t in &f.triggers {
            if let Some(dest) = t.stream.as_ref().and_then(|s| s.on_failure.as_ref()) {
                sources
                    .entry(dest.queue.clone())
                    .or_default()
                    .push(Source::StreamBatches(f.name.clone()));
            }
        }
    }
    for s in &spec.schedules {
        if let Some(dest) = &s.dead_letter {
            sources
                .entry(dest.queue.clone())
                .or_default()
                .push(Source::Schedule(s.name.clone()));
        }
    }
    plan.queues
        .iter()
        .filter_map(|q| {
            let mut sources = sources.get(&q.logical)?.clone();
            sources.sort();
            sources.dedup();
            let archiver = spec
                .functions
                .iter()
                .filter(|f| f.builtin() == Some(DLQ_HANDLER))
                .find(|f| {
                    f.triggers
                        .iter()
                        .any(|t| t.queue.as_ref().is_some_and(|t| t.name == q.logical))
                })
                .map(|f| Archiver {
                    function: f.name.clone(),
                    bucket: plan
                        .functions
                        .iter()
                        .find(|p| p.logical == f.name)
                        .and_then(|p| p.environment.get("ARCHIVE_BUCKET").cloned()),
                });
            Some(Target {
                logical: q.logical.clone(),
                name: q.name.clone(),
                sources,
                archiver,
            })
        })
        .collect()
}

/// Where a queue's CloudWatch readings are in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queries {
    oldest_age: usize,
    received: usize,
}

/// Adds a queue's queries to the batch.
pub fn query(t: &Target, batch: &mut Batch) -> Queries {
    Queries {
        oldest_age: batch.add(
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            &t.name,
            Stat::Maximum,
        ),
        received: batch.add(
            "AWS/SQS",
            "NumberOfMessagesReceived",
            "QueueName",
            &t.name,
            Stat::Sum,
        ),
    }
}

/// One dead-letter queue's figures, exact.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Messages in the queue (waiting, in flight and delayed); `None` when
    /// the queue was not found.
    pub messages: Option<f64>,
    /// Messages received from it within the window.
    pub received: f64,
    /// Age of its oldest message, seconds.
    pub oldest_age: Option<f64>,
}

impl Reading {
    /// Combines the queue's depth with its CloudWatch readings.
    pub fn from(depth: Option<f64>, q: &Queries, r: &Readings) -> Self {
        Reading {
            messages: depth,
            received: r.value(q.received),
            oldest_age: r.get(q.oldest_age),
        }
    }

    fn dead_letters(&self) -> f64 {
        self.messages.unwrap_or(0.0).max(self.received)
    }
}

/// The queue's depth now: one `GetQueueAttributes` call. Queue URLs are
/// remembered in `urls` (by queue name), so only the first poll of a queue
/// spends a `GetQueueUrl`. `None` when the queue does not exist (yet).
pub async fn depth(
    aws: &Aws,
    name: &str,
    urls: &mut HashMap<String, String>,
) -> Result<Option<f64>, AwsError> {
    let url = match urls.get(name) {
        Some(url) => url.clone(),
        None => {
            let found = aws
                .call(Service::Sqs, "GetQueueUrl", || {
                    aws.sqs.get_queue_url().queue_name(name).send()
                })
                .await;
            match found {
                Ok(out) => {
                    let url = out.queue_url().unwrap_or_default().to_owned();
                    urls.insert(name.to_owned(), url.clone());
                    url
                }
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    };
    let out = aws
        .call(Service::Sqs, "GetQueueAttributes", || {
            aws.sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .send()
        })
        .await;
    match out {
        Ok(out) => Ok(Some(
            out.attributes()
                .map(|a| {
                    a.values()
                        .filter_map(|v| v.trim().parse::<f64>().ok())
                        .sum()
                })
                .unwrap_or(0.0),
        )),
        Err(e) if e.is_not_found() => {
            urls.remove(name);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The queue's entry in `status.health`.
pub fn figures(t: &Target, r: &Reading) -> DeadLetterQueueHealth {
    let messages = coarse(r.messages.unwrap_or(0.0));
    DeadLetterQueueHealth {
        name: t.logical.clone(),
        source: t
            .sources
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        messages,
        received: coarse(r.received),
        oldest_message_age_seconds: r.oldest_age.filter(|_| messages > 0).map(coarse_age),
    }
}

/// What is wrong with a dead-letter queue, if anything.
pub fn problems(t: &Target, r: &Reading, limits: &HealthSpec, window: &Window) -> Vec<Problem> {
    let dead_letters = coarse(r.dead_letters());
    if dead_letters <= limits.max_dead_letters.max(0) {
        return Vec::new();
    }
    let only_schedules = t.sources.iter().all(|s| matches!(s, Source::Schedule(_)));
    let reason = if only_schedules {
        reasons::SCHEDULE_RUNS_FAILED
    } else {
        reasons::DEAD_LETTERS
    };
    let sources = t
        .sources
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let messages = coarse(r.messages.unwrap_or(0.0));
    let what = if messages > 0 {
        let age = r
            .oldest_age
            .map(|a| format!(", the oldest {} old", format_age(coarse_age(a))))
            .filter(|_| r.oldest_age.is_some_and(|a| a >= 60.0))
            .unwrap_or_default();
        let noun = if only_schedules {
            "failed runs"
        } else {
            "messages"
        };
        format!(
            "{messages} {noun} in DLQ {} ({}) from {sources}{age}",
            t.logical, t.name
        )
    } else {
        format!(
            "{} dead letters from {sources} reached DLQ {} ({}) in the last {window}",
            coarse(r.received),
            t.logical,
            t.name
        )
    };
    let todo = match &t.archiver {
        Some(Archiver {
            function,
            bucket: Some(bucket),
        }) => format!(
            "inspect them in the archive of dlq-handler {function} at s3://{bucket}/dead-letters/{}/",
            t.name
        ),
        Some(Archiver {
            function,
            bucket: None,
        }) => format!("inspect the archive of dlq-handler {function}"),
        None if t.sources.iter().any(|s| matches!(s, Source::Queue(_))) => format!(
            "inspect them with aws sqs receive-message on {} and, once the cause is fixed, \
             move them back with aws sqs start-message-move-task",
            t.name
        ),
        None => format!("inspect them with aws sqs receive-message on {}", t.name),
    };
    vec![Problem {
        reason,
        message: format!(
            "{what} (more than spec.health.maxDeadLetters {}); {todo}",
            limits.max_dead_letters
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{plan_of, sample};

    fn fan_out(logical: &str) -> Target {
        let spec = sample("fan-out.yaml");
        targets(&spec, &plan_of(&spec))
            .into_iter()
            .find(|t| t.logical == logical)
            .expect("target")
    }

    #[test]
    fn the_fan_out_sample_has_four_dead_letter_queues_three_archived() {
        let spec = sample("fan-out.yaml");
        let t = targets(&spec, &plan_of(&spec));
        let mut names: Vec<&str> = t.iter().map(|t| t.logical.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["router-failures", "type-a-dlq", "type-b-dlq", "type-c-dlq"]
        );
        let a = fan_out("type-a-dlq");
        assert_eq!(a.sources, [Source::Queue("type-a".into())]);
        let archiver = a.archiver.as_ref().expect("dlq-handler");
        assert_eq!(archiver.function, "dead-letters");
        assert!(
            archiver
                .bucket
                .as_deref()
                .is_some_and(|b| b.contains("dead-letters"))
        );
        let failures = fan_out("router-failures");
        assert_eq!(
            failures.sources,
            [Source::AsyncInvocations("router".into())]
        );
        assert!(failures.archiver.is_none());
    }

    #[test]
    fn schedules_and_streams_send_their_failures_to_queues_too() {
        let spec = sample("periodic-batch.yaml");
        let t = targets(&spec, &plan_of(&spec));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].sources, [Source::Schedule("daily".into())]);
        let spec = sample("stream.yaml");
        let t = targets(&spec, &plan_of(&spec));
        assert_eq!(t[0].sources, [Source::StreamBatches("processor".into())]);
    }

    #[test]
    fn messages_in_an_archived_dlq_point_at_the_archive() {
        let t = &fan_out("type-a-dlq");
        let r = Reading {
            messages: Some(3.0),
            received: 0.0,
            oldest_age: Some(400.0),
        };
        let p = problems(t, &r, &HealthSpec::default(), &Window::from_secs(900));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].reason, "DeadLetters");
        let bucket = t
            .archiver
            .as_ref()
            .and_then(|a| a.bucket.clone())
            .expect("bucket");
        assert_eq!(
            p[0].message,
            format!(
                "3 messages in DLQ type-a-dlq ({}) from queue type-a, the oldest 5m old (more \
                 than spec.health.maxDeadLetters 0); inspect them in the archive of dlq-handler \
                 dead-letters at s3://{bucket}/dead-letters/{}/",
                t.name, t.name
            )
        );
        let f = figures(t, &r);
        assert_eq!((f.messages, f.oldest_message_age_seconds), (3, Some(300)));
    }

    #[test]
    fn dead_letters_archived_within_the_window_count_too() {
        let t = &fan_out("type-b-dlq");
        let r = Reading {
            messages: Some(0.0),
            received: 12.0,
            oldest_age: None,
        };
        let p = problems(t, &r, &HealthSpec::default(), &Window::from_secs(900));
        assert!(
            p[0].message
                .starts_with("12 dead letters from queue type-b reached DLQ type-b-dlq"),
            "{}",
            p[0].message
        );
        let tolerant = HealthSpec {
            max_dead_letters: 20,
            ..HealthSpec::default()
        };
        assert!(problems(t, &r, &tolerant, &Window::from_secs(900)).is_empty());
    }

    #[test]
    fn failed_schedule_runs_have_their_own_reason() {
        let spec = sample("periodic-batch.yaml");
        let t = &targets(&spec, &plan_of(&spec))[0];
        let r = Reading {
            messages: Some(2.0),
            ..Reading::default()
        };
        let p = problems(t, &r, &HealthSpec::default(), &Window::from_secs(900));
        assert_eq!(p[0].reason, "ScheduleRunsFailed");
        assert!(
            p[0].message
                .starts_with("2 failed runs in DLQ batch-failures"),
            "{}",
            p[0].message
        );
        assert!(p[0].message.ends_with(&format!(
            "inspect them with aws sqs receive-message on {}",
            t.name
        )));
    }
}
