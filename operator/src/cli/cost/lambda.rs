//! Lambda: requests and GB-seconds per function (memory from the plan,
//! the architecture's price), `/tmp` above 512 MB, and the rules on
//! duration (its timeout, Lambda's 900 s) and on arm64.

use super::{Advice, Cx, Line, round_cents};
use crate::plan::{CodePlan, FunctionPlan};

/// Lambda's longest run, seconds.
pub const LAMBDA_LIMIT_SECONDS: f64 = 900.0;
/// How close to a limit an average duration is "close": 80 %.
pub const CLOSE: f64 = 0.8;

fn invocations(cx: &Cx<'_>, f: &FunctionPlan) -> f64 {
    cx.flow
        .function_invocations
        .get(&f.logical)
        .copied()
        .unwrap_or(0.0)
}

fn seconds(cx: &Cx<'_>, f: &FunctionPlan) -> f64 {
    cx.volumes
        .functions
        .get(&f.logical)
        .map_or(0.0, |v| v.average_duration_ms.value)
        / 1000.0
}

/// A function's GB-seconds a month.
pub fn gb_seconds(cx: &Cx<'_>, f: &FunctionPlan) -> f64 {
    invocations(cx, f) * seconds(cx, f) * f64::from(f.memory_mib) / 1024.0
}

/// The functions' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.lambda.prices;
    let mut out = Vec::new();
    for f in &cx.plan.functions {
        let arm = f.code.architecture() == "arm64";
        out.push(Line::new(
            "Lambda",
            "Lambda::Function",
            &f.name,
            "requests",
            invocations(cx, f),
            &p.requests,
        ));
        out.push(Line::new(
            "Lambda",
            "Lambda::Function",
            &f.name,
            &format!(
                "GB-seconds ({} MB, {})",
                f.memory_mib,
                f.code.architecture()
            ),
            gb_seconds(cx, f),
            if arm {
                &p.duration_arm
            } else {
                &p.duration_x86
            },
        ));
        if f.ephemeral_storage_mib > 512 {
            out.push(Line::new(
                "Lambda",
                "Lambda::Function",
                &f.name,
                &format!(
                    "/tmp GB-seconds above 512 MB ({} MB)",
                    f.ephemeral_storage_mib
                ),
                invocations(cx, f) * seconds(cx, f) * f64::from(f.ephemeral_storage_mib - 512)
                    / 1024.0,
                &p.ephemeral_storage,
            ));
        }
    }
    out
}

/// Durations close to the timeout or to Lambda's limit, and x86_64 own
/// code that would be cheaper on arm64.
pub fn advice(cx: &Cx<'_>) -> Vec<Advice> {
    let p = &cx.prices.services.lambda.prices;
    let mut out = Vec::new();
    for f in &cx.plan.functions {
        let s = seconds(cx, f);
        let timeout = f64::from(f.timeout_seconds);
        if s >= CLOSE * LAMBDA_LIMIT_SECONDS {
            out.push(Advice {
                rule: "near-lambda-limit",
                resource: format!("function {}", f.logical),
                message: format!(
                    "averages {s:.1} s, close to Lambda's 900 s limit (decision rule 3): a slower input cannot finish; split the work into steps of a workflow (Step Functions)"
                ),
                current: s,
                alternative: LAMBDA_LIMIT_SECONDS,
                unit: "seconds",
            });
        } else if s >= CLOSE * timeout {
            out.push(Advice {
                rule: "near-timeout",
                resource: format!("function {}", f.logical),
                message: format!(
                    "averages {s:.1} s of its {timeout:.0} s timeout: invocations slower than average time out and are retried; raise timeoutSeconds, give it more memory, or split the work"
                ),
                current: s,
                alternative: timeout,
                unit: "seconds",
            });
        }
        let own = matches!(f.code, CodePlan::Zip(_) | CodePlan::Image { .. });
        if own && f.code.architecture() == "x86_64" {
            let gbs = gb_seconds(cx, f);
            let (x86, arm) = (
                round_cents(gbs * p.duration_x86.each()),
                round_cents(gbs * p.duration_arm.each()),
            );
            if arm < x86 {
                out.push(Advice {
                    rule: "arm64",
                    resource: format!("function {}", f.logical),
                    message: format!(
                        "runs the team's own code on x86_64: on arm64 its duration would cost ${arm:.2} a month instead of ${x86:.2} (about 20% less at the same duration); rebuild the code for arm64 (aarch64) and set code.architecture: arm64"
                    ),
                    current: x86,
                    alternative: arm,
                    unit: "USD a month",
                });
            }
        }
    }
    out
}
