//! Step Functions workflows: executions failed, timed out and aborted over
//! the window (`AWS/States`, by `StateMachineArn`), three queries each.

use super::{
    Problem, Window,
    cloudwatch::{Batch, Readings, Stat},
    reasons,
};
use crate::{
    crd::{HealthSpec, WorkflowHealth, coarse},
    plan::Plan,
};

/// A workflow whose health is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Logical name.
    pub logical: String,
    /// State machine ARN.
    pub arn: String,
}

/// Every state machine of the plan.
pub fn targets(plan: &Plan) -> Vec<Target> {
    plan.state_machines
        .iter()
        .map(|m| Target {
            logical: m.logical.clone(),
            arn: m.arn.clone(),
        })
        .collect()
}

/// Where a workflow's readings are in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queries {
    failed: usize,
    timed_out: usize,
    aborted: usize,
}

/// Adds a workflow's queries to the batch.
pub fn query(t: &Target, batch: &mut Batch) -> Queries {
    let mut add = |metric| batch.add("AWS/States", metric, "StateMachineArn", &t.arn, Stat::Sum);
    Queries {
        failed: add("ExecutionsFailed"),
        timed_out: add("ExecutionsTimedOut"),
        aborted: add("ExecutionsAborted"),
    }
}

/// One workflow's figures over the window, exact.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Failed executions.
    pub failed: f64,
    /// Timed-out executions.
    pub timed_out: f64,
    /// Aborted executions.
    pub aborted: f64,
}

impl Reading {
    /// Reads a workflow's queries.
    pub fn from(q: &Queries, r: &Readings) -> Self {
        Reading {
            failed: r.value(q.failed),
            timed_out: r.value(q.timed_out),
            aborted: r.value(q.aborted),
        }
    }

    /// Executions that did not succeed.
    pub fn unsuccessful(&self) -> f64 {
        self.failed + self.timed_out + self.aborted
    }
}

/// The workflow's entry in `status.health`.
pub fn figures(t: &Target, r: &Reading) -> WorkflowHealth {
    WorkflowHealth {
        name: t.logical.clone(),
        failed: coarse(r.failed),
        timed_out: coarse(r.timed_out),
        aborted: coarse(r.aborted),
    }
}

/// What is wrong with a workflow, if anything.
pub fn problems(t: &Target, r: &Reading, limits: &HealthSpec, window: &Window) -> Vec<Problem> {
    let bad = coarse(r.unsuccessful());
    if bad <= limits.max_failed_executions.max(0) {
        return Vec::new();
    }
    let mut kinds = Vec::new();
    for (n, what) in [
        (r.failed, "failed"),
        (r.timed_out, "timed out"),
        (r.aborted, "aborted"),
    ] {
        if coarse(n) > 0 {
            kinds.push(format!("{} {what}", coarse(n)));
        }
    }
    vec![Problem {
        reason: reasons::EXECUTIONS_FAILED,
        message: format!(
            "executions of workflow {} ({}) in the last {window}: {} (more than \
             spec.health.maxFailedExecutions {}); list them with aws stepfunctions \
             list-executions --state-machine-arn {} --status-filter FAILED",
            t.logical,
            t.arn,
            kinds.join(", "),
            limits.max_failed_executions,
            t.arn
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_and_timed_out_executions_add_up_against_the_threshold() {
        let t = Target {
            logical: "etl".into(),
            arn: "arn:aws:states:us-east-1:123456789012:stateMachine:sluice-etl".into(),
        };
        let r = Reading {
            failed: 2.0,
            timed_out: 1.0,
            aborted: 0.0,
        };
        let p = problems(&t, &r, &HealthSpec::default(), &Window::from_secs(900));
        assert_eq!(p[0].reason, "ExecutionsFailed");
        assert!(
            p[0].message.starts_with("executions of workflow etl (arn:aws:states:us-east-1:123456789012:stateMachine:sluice-etl) in the last 15m: 2 failed, 1 timed out"),
            "{}",
            p[0].message
        );
        let tolerant = HealthSpec {
            max_failed_executions: 3,
            ..HealthSpec::default()
        };
        assert!(problems(&t, &r, &tolerant, &Window::from_secs(900)).is_empty());
        assert_eq!(figures(&t, &r).timed_out, 1);
    }
}
