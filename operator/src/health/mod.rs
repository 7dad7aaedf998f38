//! Runtime health: whether a converged pipeline is doing its job. Separate
//! from convergence, on its own interval ([`poller`]), it reads for each
//! pipeline a bounded set of figures over a recent window, one file per
//! kind it reads — [`functions`] (errors, throttles), [`dead_letters`]
//! (depth, age of the oldest message, dead letters archived),
//! [`workflows`] (failed, timed-out and aborted executions) and
//! [`streams`] (iterator age) — and writes them to `status.health` as
//! coarse figures with their window, with a `Healthy` condition whose
//! reason and message name the resource at fault and what to do.
//!
//! One poll costs at most `ceil(queries / 500)` CloudWatch `GetMetricData`
//! calls (one for any pipeline the CRD admits) plus one SQS
//! `GetQueueAttributes` per dead-letter queue (and, on a queue's first poll,
//! one `GetQueueUrl`). Everything here but [`observe`] and the poller is
//! pure.

pub mod cloudwatch;
pub mod dead_letters;
pub mod functions;
pub mod poller;
pub mod streams;
pub mod workflows;

use std::{collections::HashMap, fmt, time::Duration};

use crate::{
    aws::{Aws, AwsError},
    crd::{DataPipelineSpec, HealthSpec, HealthStatus, InventoryEntry},
    metrics::HealthGauges,
    plan::{Kind, Plan},
};

/// Reasons of the `Healthy` condition (CamelCase, as kstatus expects), in
/// the order a message lists them: what loses data first.
pub mod reasons {
    /// Messages in (or archived from) a dead-letter queue.
    pub const DEAD_LETTERS: &str = "DeadLetters";
    /// Failed runs of a schedule in its dead-letter queue.
    pub const SCHEDULE_RUNS_FAILED: &str = "ScheduleRunsFailed";
    /// Failed, timed-out or aborted workflow executions.
    pub const EXECUTIONS_FAILED: &str = "ExecutionsFailed";
    /// A function's error rate above its threshold.
    pub const FUNCTION_ERRORS: &str = "FunctionErrors";
    /// A stream consumer too far behind.
    pub const ITERATOR_AGE: &str = "IteratorAgeHigh";
    /// A function throttled above its threshold.
    pub const FUNCTION_THROTTLES: &str = "FunctionThrottles";
    /// Every figure within its threshold.
    pub const WITHIN_THRESHOLDS: &str = "WithinThresholds";
    /// The figures could not be read.
    pub const UNAVAILABLE: &str = "HealthUnavailable";
    /// `spec.suspend` is set: nothing is polled.
    pub const SUSPENDED: &str = "Suspended";

    /// Problem reasons, most urgent first.
    pub const ORDER: [&str; 6] = [
        DEAD_LETTERS,
        SCHEDULE_RUNS_FAILED,
        EXECUTIONS_FAILED,
        FUNCTION_ERRORS,
        ITERATOR_AGE,
        FUNCTION_THROTTLES,
    ];
}

/// The window figures cover, ending at the poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window(Duration);

impl Window {
    /// A window of `seconds`.
    pub fn from_secs(seconds: u64) -> Self {
        Window(Duration::from_secs(seconds))
    }

    /// Its length.
    pub fn duration(&self) -> Duration {
        self.0
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// An age for a message: `5m`, `2h`, `1d`.
pub fn format_age(seconds: i64) -> String {
    if seconds >= 86400 {
        format!("{}d", seconds / 86400)
    } else if seconds >= 3600 {
        format!("{}h", seconds / 3600)
    } else if seconds >= 60 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// One thing wrong, for the `Healthy` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// One of [`reasons::ORDER`].
    pub reason: &'static str,
    /// What is wrong, naming the resource, and what to do.
    pub message: String,
}

/// What one pipeline's health poll reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// Functions.
    pub functions: Vec<functions::Target>,
    /// Dead-letter queues.
    pub dead_letters: Vec<dead_letters::Target>,
    /// Workflows.
    pub workflows: Vec<workflows::Target>,
    /// Stream consumers.
    pub streams: Vec<streams::Target>,
}

/// What to read for a pipeline: every function, dead-letter queue, workflow
/// and stream consumer of its plan that its inventory lists as `Ready`
/// (what does not exist yet has no health to read).
pub fn targets(spec: &DataPipelineSpec, plan: &Plan, inventory: &[InventoryEntry]) -> Targets {
    let ready = |kind: Kind, id: &str| {
        inventory
            .iter()
            .any(|e| e.kind == kind.as_str() && e.id == id && e.state == "Ready")
    };
    Targets {
        functions: functions::targets(plan)
            .into_iter()
            .filter(|t| ready(Kind::Function, &t.name))
            .collect(),
        dead_letters: dead_letters::targets(spec, plan)
            .into_iter()
            .filter(|t| ready(Kind::Queue, &t.name))
            .collect(),
        workflows: workflows::targets(plan)
            .into_iter()
            .filter(|t| ready(Kind::StateMachine, &t.arn))
            .collect(),
        streams: streams::targets(spec, plan)
            .into_iter()
            .filter(|t| ready(Kind::Function, &t.name))
            .collect(),
    }
}

/// The readings of one poll, in the order of [`Targets`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// Functions.
    pub functions: Vec<functions::Reading>,
    /// Dead-letter queues.
    pub dead_letters: Vec<dead_letters::Reading>,
    /// Workflows.
    pub workflows: Vec<workflows::Reading>,
    /// Stream consumers.
    pub streams: Vec<streams::Reading>,
}

/// The CloudWatch queries of one poll, and where each target's are.
#[derive(Clone, Debug, Default)]
pub struct Queries {
    /// Every query.
    pub batch: cloudwatch::Batch,
    functions: Vec<functions::Queries>,
    dead_letters: Vec<dead_letters::Queries>,
    workflows: Vec<workflows::Queries>,
    streams: Vec<streams::Queries>,
}

/// Puts every CloudWatch metric the targets need into one batch.
pub fn queries(targets: &Targets) -> Queries {
    let mut batch = cloudwatch::Batch::default();
    let functions = targets
        .functions
        .iter()
        .map(|t| functions::query(t, &mut batch))
        .collect();
    let dead_letters = targets
        .dead_letters
        .iter()
        .map(|t| dead_letters::query(t, &mut batch))
        .collect();
    let workflows = targets
        .workflows
        .iter()
        .map(|t| workflows::query(t, &mut batch))
        .collect();
    let streams = targets
        .streams
        .iter()
        .map(|t| streams::query(t, &mut batch))
        .collect();
    Queries {
        batch,
        functions,
        dead_letters,
        workflows,
        streams,
    }
}

/// AWS calls one poll of `targets` makes once every queue URL is known:
/// the `GetMetricData` calls and one `GetQueueAttributes` per dead-letter
/// queue.
pub fn calls_per_poll(targets: &Targets) -> usize {
    queries(targets).batch.calls() + targets.dead_letters.len()
}

/// Reads the targets' figures: the CloudWatch batch, then each dead-letter
/// queue's depth. `urls` remembers queue URLs between polls.
pub async fn observe(
    aws: &Aws,
    targets: &Targets,
    window: Window,
    urls: &mut HashMap<String, String>,
) -> Result<Observation, AwsError> {
    let q = queries(targets);
    let readings = cloudwatch::read(aws, &q.batch, window.duration()).await?;
    let mut depths = Vec::with_capacity(targets.dead_letters.len());
    for t in &targets.dead_letters {
        depths.push(dead_letters::depth(aws, &t.name, urls).await?);
    }
    Ok(Observation {
        functions: q
            .functions
            .iter()
            .map(|q| functions::Reading::from(q, &readings))
            .collect(),
        dead_letters: q
            .dead_letters
            .iter()
            .zip(depths)
            .map(|(q, depth)| dead_letters::Reading::from(depth, q, &readings))
            .collect(),
        workflows: q
            .workflows
            .iter()
            .map(|q| workflows::Reading::from(q, &readings))
            .collect(),
        streams: q
            .streams
            .iter()
            .map(|q| streams::Reading::from(q, &readings))
            .collect(),
    })
}

/// What one poll concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// `status.health`.
    pub status: HealthStatus,
    /// What is wrong, most urgent first; empty when healthy.
    pub problems: Vec<Problem>,
    /// The pipeline's gauges (exact figures).
    pub gauges: HealthGauges,
}

impl Assessment {
    /// Whether nothing is wrong.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// `(reason, message)` of the `Healthy` condition.
    pub fn reason_and_message(&self, targets: &Targets, window: &Window) -> (String, String) {
        match self.problems.as_slice() {
            [] => (
                reasons::WITHIN_THRESHOLDS.to_owned(),
                format!(
                    "every figure within spec.health over the last {window}: {} functions, {} \
                     dead-letter queues, {} workflows, {} stream consumers watched",
                    targets.functions.len(),
                    targets.dead_letters.len(),
                    targets.workflows.len(),
                    targets.streams.len()
                ),
            ),
            [first, rest @ ..] => {
                let mut message = first.message.clone();
                if !rest.is_empty() {
                    message.push_str(&format!(
                        " (and {} more: {})",
                        rest.len(),
                        rest.iter()
                            .map(|p| p.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                }
                (first.reason.to_owned(), message)
            }
        }
    }
}

/// Judges an observation against the pipeline's thresholds.
pub fn assess(
    targets: &Targets,
    observation: &Observation,
    limits: &HealthSpec,
    window: &Window,
) -> Assessment {
    let mut status = HealthStatus {
        window: window.to_string(),
        ..HealthStatus::default()
    };
    let mut problems = Vec::new();
    let mut gauges = HealthGauges::default();
    for (t, r) in targets.functions.iter().zip(&observation.functions) {
        status.functions.push(functions::figures(t, r));
        problems.extend(functions::problems(t, r, limits, window));
        gauges.function_error_ratio = gauges.function_error_ratio.max(r.error_ratio());
    }
    for (t, r) in targets.dead_letters.iter().zip(&observation.dead_letters) {
        status.dead_letter_queues.push(dead_letters::figures(t, r));
        problems.extend(dead_letters::problems(t, r, limits, window));
        gauges.dead_letter_messages += r.messages.unwrap_or(0.0);
    }
    for (t, r) in targets.workflows.iter().zip(&observation.workflows) {
        status.workflows.push(workflows::figures(t, r));
        problems.extend(workflows::problems(t, r, limits, window));
        gauges.failed_executions += r.unsuccessful();
    }
    for (t, r) in targets.streams.iter().zip(&observation.streams) {
        status.stream_consumers.push(streams::figures(t, r));
        problems.extend(streams::problems(t, r, limits, window));
        gauges.iterator_age_seconds = gauges.iterator_age_seconds.max(r.iterator_age_seconds);
    }
    // Stable: most urgent reason first, then in the order of the spec.
    problems.sort_by_key(|p| {
        reasons::ORDER
            .iter()
            .position(|r| *r == p.reason)
            .unwrap_or(usize::MAX)
    });
    Assessment {
        status,
        problems,
        gauges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{plan_of, sample};

    fn ready_inventory(plan: &Plan) -> Vec<InventoryEntry> {
        plan.ids()
            .into_iter()
            .map(|(kind, id)| InventoryEntry {
                kind: kind.as_str().to_owned(),
                name: String::new(),
                id,
                arn: None,
                state: "Ready".into(),
            })
            .collect()
    }

    #[test]
    fn one_poll_of_the_fan_out_sample_costs_five_calls() {
        let spec = sample("fan-out.yaml");
        let plan = plan_of(&spec);
        let t = targets(&spec, &plan, &ready_inventory(&plan));
        assert_eq!(t.functions.len(), 5);
        assert_eq!(t.dead_letters.len(), 4);
        let q = queries(&t);
        // 3 per function, 2 per dead-letter queue, in one GetMetricData.
        assert_eq!(q.batch.queries().len(), 5 * 3 + 4 * 2);
        assert_eq!(calls_per_poll(&t), 1 + 4);
    }

    #[test]
    fn what_is_not_ready_in_the_inventory_is_not_read() {
        let spec = sample("orchestrated.yaml");
        let plan = plan_of(&spec);
        let mut inventory = ready_inventory(&plan);
        assert_eq!(targets(&spec, &plan, &inventory).workflows.len(), 1);
        for e in &mut inventory {
            if e.kind == Kind::StateMachine.as_str() {
                e.state = "Waiting: role".into();
            }
        }
        let t = targets(&spec, &plan, &inventory);
        assert!(t.workflows.is_empty());
        assert_eq!(t.functions.len(), 4);
        assert!(targets(&spec, &plan, &[]).functions.is_empty());
    }

    #[test]
    fn the_most_urgent_problem_gives_the_reason_and_the_rest_follow() {
        let spec = sample("fan-out.yaml");
        let plan = plan_of(&spec);
        let t = targets(&spec, &plan, &ready_inventory(&plan));
        let mut o = Observation {
            functions: vec![functions::Reading::default(); 5],
            dead_letters: vec![
                dead_letters::Reading {
                    messages: Some(0.0),
                    ..Default::default()
                };
                4
            ],
            ..Default::default()
        };
        let window = Window::from_secs(900);
        let a = assess(&t, &o, &HealthSpec::default(), &window);
        assert!(a.healthy());
        let (reason, message) = a.reason_and_message(&t, &window);
        assert_eq!(reason, "WithinThresholds");
        assert!(
            message.contains("5 functions, 4 dead-letter queues"),
            "{message}"
        );
        assert_eq!(a.status.window, "15m");
        assert_eq!(a.status.functions.len(), 5);

        o.functions[0] = functions::Reading {
            invocations: 4.0,
            errors: 2.0,
            throttles: 0.0,
        };
        let c = t
            .dead_letters
            .iter()
            .position(|d| d.logical == "type-c-dlq")
            .expect("type-c-dlq");
        o.dead_letters[c].messages = Some(7.0);
        let a = assess(&t, &o, &HealthSpec::default(), &window);
        let (reason, message) = a.reason_and_message(&t, &window);
        assert_eq!(reason, "DeadLetters");
        assert!(
            message.starts_with("7 messages in DLQ type-c-dlq"),
            "{message}"
        );
        assert!(
            message.contains("(and 1 more: 2 of 4 invocations of function router"),
            "{message}"
        );
        assert_eq!(a.gauges.dead_letter_messages, 7.0);
        assert_eq!(a.gauges.function_error_ratio, 0.5);
    }

    #[test]
    fn windows_and_ages_read_as_people_write_them() {
        assert_eq!(Window::from_secs(900).to_string(), "15m");
        assert_eq!(Window::from_secs(3600).to_string(), "1h");
        assert_eq!(Window::from_secs(90).to_string(), "90s");
        assert_eq!(format_age(300), "5m");
        assert_eq!(format_age(7200), "2h");
        assert_eq!(format_age(172800), "2d");
    }
}
