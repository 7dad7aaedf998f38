//! Kinesis Data Streams: shard-hours and PUT payload units (provisioned)
//! or stream-hours and GB in and out (on demand), and the rule comparing
//! the two modes at the stated volume.

use super::{
    Advice, Cx, HOURS_PER_MONTH, KB_PER_GB, Line, SECONDS_PER_MONTH, flow::chunks, round_cents,
};
use crate::{crd::StreamMode, plan::StreamPlan};

/// What one shard takes in a second: records.
pub const SHARD_RECORDS_PER_SECOND: f64 = 1000.0;
/// What one shard takes in a second: MB.
pub const SHARD_MB_PER_SECOND: f64 = 1.0;

struct Load {
    records: f64,
    kb: f64,
    consumers: f64,
}

fn load(cx: &Cx<'_>, s: &StreamPlan) -> Load {
    Load {
        records: cx
            .flow
            .stream_records
            .get(&s.logical)
            .copied()
            .unwrap_or(0.0),
        kb: cx
            .volumes
            .streams
            .get(&s.logical)
            .map_or(1.0, |v| v.average_record_kb.value),
        consumers: cx
            .flow
            .stream_consumers
            .get(&s.logical)
            .copied()
            .unwrap_or(0) as f64,
    }
}

fn gb_in(l: &Load) -> f64 {
    l.records * l.kb.ceil().max(1.0) / KB_PER_GB
}

fn retention_hours(s: &StreamPlan) -> f64 {
    if s.retention_hours > 24 {
        HOURS_PER_MONTH
    } else {
        0.0
    }
}

fn provisioned_usd(cx: &Cx<'_>, s: &StreamPlan, shards: f64, l: &Load) -> f64 {
    let p = &cx.prices.services.kinesis.prices;
    shards * HOURS_PER_MONTH * p.shard_hours.each()
        + l.records * chunks(l.kb, 25.0) * p.put_payload_units.each()
        + shards * retention_hours(s) * p.extended_retention.each()
}

fn on_demand_usd(cx: &Cx<'_>, l: &Load) -> f64 {
    let p = &cx.prices.services.kinesis.prices;
    HOURS_PER_MONTH * p.on_demand_stream_hours.each()
        + gb_in(l) * p.on_demand_data_in.each()
        + gb_in(l) * l.consumers * p.on_demand_data_out.each()
}

/// Shards the stated volume needs.
fn needed_shards(l: &Load) -> f64 {
    let rps = l.records / SECONDS_PER_MONTH;
    let mbps = rps * l.kb / 1024.0;
    (rps / SHARD_RECORDS_PER_SECOND)
        .ceil()
        .max((mbps / SHARD_MB_PER_SECOND).ceil())
        .max(1.0)
}

/// The streams' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.kinesis.prices;
    let mut out = Vec::new();
    for s in &cx.plan.streams {
        let l = load(cx, s);
        let line = |what: &str, q: f64, price| {
            Line::new("Kinesis", "Kinesis::Stream", &s.name, what, q, price)
        };
        match s.mode {
            StreamMode::Provisioned => {
                let shards = f64::from(s.shards.unwrap_or(1));
                out.push(line(
                    &format!(
                        "shard-hours ({shards} shard{})",
                        if shards == 1.0 { "" } else { "s" }
                    ),
                    shards * HOURS_PER_MONTH,
                    &p.shard_hours,
                ));
                out.push(line(
                    "PUT payload units (25 KB)",
                    l.records * chunks(l.kb, 25.0),
                    &p.put_payload_units,
                ));
                if s.retention_hours > 24 {
                    out.push(line(
                        &format!("extended retention shard-hours ({} h)", s.retention_hours),
                        shards * retention_hours(s),
                        &p.extended_retention,
                    ));
                }
            }
            StreamMode::OnDemand => {
                out.push(line(
                    "stream-hours (on demand)",
                    HOURS_PER_MONTH,
                    &p.on_demand_stream_hours,
                ));
                out.push(line("GB written", gb_in(&l), &p.on_demand_data_in));
                out.push(line(
                    &format!(
                        "GB read ({} consumer{})",
                        l.consumers,
                        if l.consumers == 1.0 { "" } else { "s" }
                    ),
                    gb_in(&l) * l.consumers,
                    &p.on_demand_data_out,
                ));
            }
        }
    }
    out
}

/// A provisioned stream cheaper on demand (or too small for the volume),
/// an on-demand stream cheaper provisioned.
pub fn advice(cx: &Cx<'_>) -> Vec<Advice> {
    let mut out = Vec::new();
    for s in &cx.plan.streams {
        let l = load(cx, s);
        let od = round_cents(on_demand_usd(cx, &l));
        let needed = needed_shards(&l);
        match s.mode {
            StreamMode::Provisioned => {
                let shards = f64::from(s.shards.unwrap_or(1));
                let prov = round_cents(provisioned_usd(cx, s, shards, &l));
                if needed > shards {
                    out.push(Advice {
                        rule: "kinesis-capacity",
                        resource: format!("stream {}", s.logical),
                        message: format!(
                            "the stated volume needs {needed} shards (1,000 records or 1 MB a second each) and it has {shards}: writes would be throttled; raise shards or use OnDemand"
                        ),
                        current: shards,
                        alternative: needed,
                        unit: "shards",
                    });
                } else if od < prov {
                    out.push(Advice {
                        rule: "kinesis-on-demand",
                        resource: format!("stream {}", s.logical),
                        message: format!(
                            "costs ${prov:.2} a month with {shards} provisioned shards; on demand it would cost ${od:.2} at the stated volume"
                        ),
                        current: prov,
                        alternative: od,
                        unit: "USD a month",
                    });
                }
            }
            StreamMode::OnDemand => {
                let prov = round_cents(provisioned_usd(cx, s, needed, &l));
                if prov < od {
                    out.push(Advice {
                        rule: "kinesis-provisioned",
                        resource: format!("stream {}", s.logical),
                        message: format!(
                            "costs ${od:.2} a month on demand; {needed} provisioned shards (enough for the stated volume) would cost ${prov:.2}; a steady volume is cheaper provisioned, a spiky one may need more shards than its average"
                        ),
                        current: od,
                        alternative: prov,
                        unit: "USD a month",
                    });
                }
            }
        }
    }
    out
}
