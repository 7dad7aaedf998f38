//! Lambda functions: invocations, errors and throttles over the window
//! (`AWS/Lambda`, by `FunctionName`), three queries each.

use super::{
    Problem, Window,
    cloudwatch::{Batch, Readings, Stat},
    reasons,
};
use crate::{
    crd::{FunctionHealth, HealthSpec, coarse},
    plan::Plan,
};

/// A function whose health is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Logical name.
    pub logical: String,
    /// Function name in AWS.
    pub name: String,
}

/// Every function of the plan.
pub fn targets(plan: &Plan) -> Vec<Target> {
    plan.functions
        .iter()
        .map(|f| Target {
            logical: f.logical.clone(),
            name: f.name.clone(),
        })
        .collect()
}

/// Where a function's readings are in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queries {
    invocations: usize,
    errors: usize,
    throttles: usize,
}

/// Adds a function's queries to the batch.
pub fn query(t: &Target, batch: &mut Batch) -> Queries {
    let mut add = |metric| batch.add("AWS/Lambda", metric, "FunctionName", &t.name, Stat::Sum);
    Queries {
        invocations: add("Invocations"),
        errors: add("Errors"),
        throttles: add("Throttles"),
    }
}

/// One function's figures over the window, exact.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Invocations.
    pub invocations: f64,
    /// Invocations ending in an error.
    pub errors: f64,
    /// Throttled invocation attempts.
    pub throttles: f64,
}

impl Reading {
    /// Reads a function's queries.
    pub fn from(q: &Queries, r: &Readings) -> Self {
        Reading {
            invocations: r.value(q.invocations),
            errors: r.value(q.errors),
            throttles: r.value(q.throttles),
        }
    }

    /// Errors per invocation (0 without invocations).
    pub fn error_ratio(&self) -> f64 {
        if self.invocations > 0.0 {
            (self.errors / self.invocations).min(1.0)
        } else if self.errors > 0.0 {
            1.0
        } else {
            0.0
        }
    }

    /// Throttles per invocation attempt (throttled attempts are not
    /// invocations).
    pub fn throttle_ratio(&self) -> f64 {
        let attempts = self.invocations + self.throttles;
        if attempts > 0.0 {
            self.throttles / attempts
        } else {
            0.0
        }
    }
}

fn percent(ratio: f64) -> i32 {
    (ratio * 100.0).round() as i32
}

/// The function's entry in `status.health`.
pub fn figures(t: &Target, r: &Reading) -> FunctionHealth {
    FunctionHealth {
        name: t.logical.clone(),
        invocations: coarse(r.invocations),
        errors: coarse(r.errors),
        throttles: coarse(r.throttles),
        error_percent: percent(r.error_ratio()),
    }
}

/// What is wrong with a function, if anything.
pub fn problems(t: &Target, r: &Reading, limits: &HealthSpec, window: &Window) -> Vec<Problem> {
    let mut out = Vec::new();
    let errors = percent(r.error_ratio());
    if coarse(r.errors) > 0 && errors > limits.max_function_error_percent {
        out.push(Problem {
            reason: reasons::FUNCTION_ERRORS,
            message: format!(
                "{} of {} invocations of function {} ({}) failed in the last {} ({}% > \
                 spec.health.maxFunctionErrorPercent {}%); read its log group /aws/lambda/{}",
                coarse(r.errors),
                coarse(r.invocations),
                t.logical,
                t.name,
                window,
                errors,
                limits.max_function_error_percent,
                t.name
            ),
        });
    }
    let throttles = percent(r.throttle_ratio());
    if coarse(r.throttles) > 0 && throttles > limits.max_function_throttle_percent {
        out.push(Problem {
            reason: reasons::FUNCTION_THROTTLES,
            message: format!(
                "{} invocations of function {} ({}) were throttled in the last {} ({}% > \
                 spec.health.maxFunctionThrottlePercent {}%); raise its reservedConcurrency \
                 or the account's concurrency quota",
                coarse(r.throttles),
                t.logical,
                t.name,
                window,
                throttles,
                limits.max_function_throttle_percent
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            logical: "processor".into(),
            name: "sluice-ns-p-processor-0123".into(),
        }
    }

    #[test]
    fn errors_above_the_threshold_name_the_function_and_its_logs() {
        let r = Reading {
            invocations: 10.0,
            errors: 3.0,
            throttles: 0.0,
        };
        let p = problems(
            &target(),
            &r,
            &HealthSpec::default(),
            &Window::from_secs(900),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].reason, "FunctionErrors");
        assert!(
            p[0].message.starts_with("3 of 10 invocations of function processor (sluice-ns-p-processor-0123) failed in the last 15m (30% > spec.health.maxFunctionErrorPercent 5%)"),
            "{}",
            p[0].message
        );
        assert!(
            p[0].message
                .contains("/aws/lambda/sluice-ns-p-processor-0123")
        );
        assert_eq!(figures(&target(), &r).error_percent, 30);
    }

    #[test]
    fn errors_within_the_threshold_and_idle_functions_are_fine() {
        let within = Reading {
            invocations: 1000.0,
            errors: 10.0,
            throttles: 0.0,
        };
        assert!(
            problems(
                &target(),
                &within,
                &HealthSpec::default(),
                &Window::from_secs(900)
            )
            .is_empty()
        );
        assert!(
            problems(
                &target(),
                &Reading::default(),
                &HealthSpec::default(),
                &Window::from_secs(900)
            )
            .is_empty()
        );
    }

    #[test]
    fn throttles_count_against_attempts() {
        let r = Reading {
            invocations: 80.0,
            errors: 0.0,
            throttles: 20.0,
        };
        assert!((r.throttle_ratio() - 0.2).abs() < 1e-9);
        let p = problems(
            &target(),
            &r,
            &HealthSpec::default(),
            &Window::from_secs(60),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].reason, "FunctionThrottles");
        assert!(
            p[0].message.contains("reservedConcurrency"),
            "{}",
            p[0].message
        );
    }
}
