//! CloudWatch Logs: what functions log (their `/aws/lambda/<name>` log
//! groups) and what workflows with logging log, ingested and stored. A
//! month's storage is the month's ingestion held a month: a Lambda log
//! group never expires, so its storage grows by as much every month.

use super::{Cx, KB_PER_GB, Line};
use crate::crd::LoggingLevel;

/// The log groups' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.logs.prices;
    let mut out = Vec::new();
    for f in &cx.plan.functions {
        let kb = cx
            .volumes
            .functions
            .get(&f.logical)
            .map_or(1.0, |v| v.log_kb_per_invocation.value);
        let gb = cx
            .flow
            .function_invocations
            .get(&f.logical)
            .copied()
            .unwrap_or(0.0)
            * kb
            / KB_PER_GB;
        let group = format!("/aws/lambda/{}", f.name);
        out.push(Line::new(
            "CloudWatch Logs",
            "Logs::LogGroup",
            &group,
            "GB ingested (Lambda)",
            gb,
            &p.ingestion,
        ));
        out.push(Line::new(
            "CloudWatch Logs",
            "Logs::LogGroup",
            &group,
            "GB-months stored (this month's)",
            gb,
            &p.storage,
        ));
    }
    for w in &cx.spec.workflows {
        let Some(group) = cx.plan.log_groups.iter().find(|g| g.logical == w.name) else {
            continue;
        };
        let kb = match w.logging {
            LoggingLevel::All => cx
                .volumes
                .workflows
                .get(&w.name)
                .map_or(1.0, |v| v.log_kb_per_transition.value),
            // Only failed executions log; none are assumed.
            _ => 0.0,
        };
        let transitions = cx
            .flow
            .workflow_executions
            .get(&w.name)
            .copied()
            .unwrap_or(0.0)
            * cx.flow
                .workflow_paths
                .get(&w.name)
                .map_or(0.0, |p| p.transitions);
        let gb = transitions * kb / KB_PER_GB;
        let kept = f64::from(group.retention_days) / super::DAYS_PER_MONTH;
        out.push(Line::new(
            "CloudWatch Logs",
            "Logs::LogGroup",
            &group.name,
            "GB ingested (workflow)",
            gb,
            &p.ingestion,
        ));
        out.push(Line::new(
            "CloudWatch Logs",
            "Logs::LogGroup",
            &group.name,
            &format!("GB-months stored ({} days kept)", group.retention_days),
            gb * kept.min(1.0),
            &p.storage,
        ));
    }
    out
}
