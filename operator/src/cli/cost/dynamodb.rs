//! DynamoDB: request units (on demand) or capacity-hours (provisioned),
//! storage, and the rule comparing the two modes at the stated volume.
//! Provisioned capacity for an on-demand table is sized for the average
//! rate at 70 % utilisation (auto scaling's default target).

use super::{
    Advice, Cx, DAYS_PER_MONTH, HOURS_PER_MONTH, Line, SECONDS_PER_MONTH, flow::chunks, round_cents,
};
use crate::{crd::BillingMode, plan::TablePlan};

/// Auto scaling's default target utilisation.
pub const TARGET_UTILISATION: f64 = 0.7;

fn units(cx: &Cx<'_>, t: &TablePlan) -> (f64, f64) {
    let v = cx.volumes.tables.get(&t.logical);
    let kb = v.map_or(1.0, |v| v.average_item_kb.value);
    let ext_reads = v.map_or(0.0, |v| v.reads_per_day.value) * DAYS_PER_MONTH * chunks(kb, 4.0);
    (
        cx.flow.table_writes.get(&t.logical).copied().unwrap_or(0.0),
        cx.flow.table_reads.get(&t.logical).copied().unwrap_or(0.0) + ext_reads,
    )
}

fn on_demand_usd(cx: &Cx<'_>, w: f64, r: f64) -> f64 {
    let p = &cx.prices.services.dynamodb.prices;
    w * p.write_request_units.each() + r * p.read_request_units.each()
}

fn provisioned_usd(cx: &Cx<'_>, wcu: f64, rcu: f64) -> f64 {
    let p = &cx.prices.services.dynamodb.prices;
    HOURS_PER_MONTH * (wcu * p.wcu_hours.each() + rcu * p.rcu_hours.each())
}

/// The tables' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.dynamodb.prices;
    let mut out = Vec::new();
    for t in &cx.plan.tables {
        let (w, r) = units(cx, t);
        let line = |what: &str, q: f64, price| {
            Line::new("DynamoDB", "DynamoDB::Table", &t.name, what, q, price)
        };
        match (t.billing_mode, t.capacity) {
            (BillingMode::Provisioned, Some(c)) => {
                out.push(line(
                    &format!("WCU-hours ({} WCU)", c.write),
                    c.write as f64 * HOURS_PER_MONTH,
                    &p.wcu_hours,
                ));
                out.push(line(
                    &format!("RCU-hours ({} RCU)", c.read),
                    c.read as f64 * HOURS_PER_MONTH,
                    &p.rcu_hours,
                ));
            }
            _ => {
                out.push(line("write request units", w, &p.write_request_units));
                out.push(line("read request units", r, &p.read_request_units));
            }
        }
        out.push(line(
            "GB-months stored",
            cx.volumes
                .tables
                .get(&t.logical)
                .map_or(0.0, |v| v.stored_gb.value),
            &p.storage,
        ));
    }
    out
}

/// A provisioned table cheaper on demand (or too small), an on-demand
/// table cheaper provisioned.
pub fn advice(cx: &Cx<'_>) -> Vec<Advice> {
    let mut out = Vec::new();
    for t in &cx.plan.tables {
        let (w, r) = units(cx, t);
        let od = round_cents(on_demand_usd(cx, w, r));
        let (wps, rps) = (w / SECONDS_PER_MONTH, r / SECONDS_PER_MONTH);
        match (t.billing_mode, t.capacity) {
            (BillingMode::Provisioned, Some(c)) => {
                let prov = round_cents(provisioned_usd(cx, c.write as f64, c.read as f64));
                if wps > c.write as f64 || rps > c.read as f64 {
                    out.push(Advice {
                        rule: "dynamodb-capacity",
                        resource: format!("table {}", t.logical),
                        message: format!(
                            "the stated volume averages {wps:.1} writes and {rps:.1} reads a second against {} WCU and {} RCU: requests would be throttled",
                            c.write, c.read
                        ),
                        current: c.write as f64,
                        alternative: wps.ceil(),
                        unit: "WCU",
                    });
                } else if od < prov {
                    out.push(Advice {
                        rule: "dynamodb-on-demand",
                        resource: format!("table {}", t.logical),
                        message: format!(
                            "costs ${prov:.2} a month provisioned ({} WCU, {} RCU); on demand its stated requests would cost ${od:.2}",
                            c.write, c.read
                        ),
                        current: prov,
                        alternative: od,
                        unit: "USD a month",
                    });
                }
            }
            _ => {
                let wcu = (wps / TARGET_UTILISATION).ceil().max(1.0);
                let rcu = (rps / TARGET_UTILISATION).ceil().max(1.0);
                let prov = round_cents(provisioned_usd(cx, wcu, rcu));
                if prov < od {
                    out.push(Advice {
                        rule: "dynamodb-provisioned",
                        resource: format!("table {}", t.logical),
                        message: format!(
                            "costs ${od:.2} a month on demand; provisioned at {wcu} WCU and {rcu} RCU (the average rate at 70% utilisation) it would cost ${prov:.2}; worth it for a steady load, with auto scaling for peaks"
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
