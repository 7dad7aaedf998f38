//! EventBridge: custom events put on the pipeline's buses (each 64 KB
//! chunk an event), S3's events on the default bus (free), and the
//! deliveries of rules to their targets (free for the targets Sluice
//! wires: SQS, Lambda and Step Functions in the same account and region).

use super::{Cx, Line, flow::chunks};

/// The buses' and rules' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.eventbridge.prices;
    let mut out = Vec::new();
    for b in &cx.plan.event_buses {
        let kb = cx
            .volumes
            .buses
            .get(&b.logical)
            .map_or(1.0, |v| v.average_event_kb.value);
        out.push(Line::new(
            "EventBridge",
            "Events::EventBus",
            &b.name,
            "custom events put",
            cx.flow.bus_events.get(&b.logical).copied().unwrap_or(0.0) * chunks(kb, 64.0),
            &p.custom_events,
        ));
    }
    for r in &cx.plan.rules {
        let from_bucket = cx.spec.workflows.iter().find_map(|w| {
            w.triggers
                .iter()
                .filter_map(|t| t.bucket.as_ref())
                .find(|b| format!("{}-from-{}", w.name, b.name) == r.logical)
                .map(|b| b.name.clone())
        });
        match from_bucket {
            Some(bucket) => {
                let events = cx.flow.bucket_events.get(&bucket).copied().unwrap_or(0.0);
                out.push(Line::new(
                    "EventBridge",
                    "Events::Rule",
                    &r.name,
                    "S3 events matched (default bus)",
                    events,
                    &p.service_events,
                ));
                out.push(Line::new(
                    "EventBridge",
                    "Events::Rule",
                    &r.name,
                    "deliveries to targets",
                    events * r.targets.len() as f64,
                    &p.deliveries,
                ));
            }
            None => out.push(Line::new(
                "EventBridge",
                "Events::Rule",
                &r.name,
                "deliveries to targets",
                cx.flow.rule_matches.get(&r.logical).copied().unwrap_or(0.0)
                    * r.targets.len() as f64,
                &p.deliveries,
            )),
        }
    }
    out
}
