//! SQS: requests per queue — messages sent, and the receives and deletes
//! of the event source mappings that consume it — each 64 KB chunk of a
//! payload a request; and the batching rule.
//!
//! Polling: Lambda keeps 5 long polls (20 s) open on every queue a
//! mapping consumes, [`POLLS_PER_MONTH`] receives a month whether or not a
//! message comes; messages arrive in those polls, so a queue's receives
//! are the larger of that and its batches. Each batch is deleted with one
//! DeleteMessageBatch.

use super::{Advice, Cx, Line, SECONDS_PER_MONTH, flow::chunks, round_cents};

/// Long polls a mapping makes a month on an idle queue: 5 pollers, one
/// 20-second poll each at a time.
pub const POLLS_PER_MONTH: f64 = 5.0 * SECONDS_PER_MONTH / 20.0;
/// Messages a month above which batch size 1 is "high volume".
pub const HIGH_VOLUME: f64 = 1_000_000.0;

fn kb(cx: &Cx<'_>, q: &str) -> f64 {
    cx.volumes
        .queues
        .get(q)
        .map_or(1.0, |v| v.average_message_kb.value)
}

/// The queues' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.sqs.prices;
    let mut out = Vec::new();
    for q in &cx.plan.queues {
        let price = if q.fifo {
            &p.fifo_requests
        } else {
            &p.standard_requests
        };
        let kb = kb(cx, &q.logical);
        let messages = cx
            .flow
            .queue_messages
            .get(&q.logical)
            .copied()
            .unwrap_or(0.0);
        out.push(Line::new(
            "SQS",
            "SQS::Queue",
            &q.name,
            "SendMessage requests",
            messages * chunks(kb, 64.0),
            price,
        ));
        let consumers = cx.flow.queue_consumers.get(&q.logical);
        if let Some(cs) = consumers.filter(|c| !c.is_empty()) {
            let receives: f64 = cs
                .iter()
                .map(|c| POLLS_PER_MONTH.max(c.batches * chunks(c.per_batch * kb, 64.0)))
                .sum();
            let deletes: f64 = cs.iter().map(|c| c.batches).sum();
            out.push(Line::new(
                "SQS",
                "SQS::Queue",
                &q.name,
                "ReceiveMessage requests (Lambda polling)",
                receives,
                price,
            ));
            out.push(Line::new(
                "SQS",
                "SQS::Queue",
                &q.name,
                "DeleteMessageBatch requests",
                deletes,
                price,
            ));
        }
    }
    out
}

/// Batch size 1 at high volume: the requests (Lambda's and SQS's) at
/// batch size 1 and at 10.
pub fn advice(cx: &Cx<'_>) -> Vec<Advice> {
    let mut out = Vec::new();
    let lambda = cx.prices.services.lambda.prices.requests.each();
    for q in &cx.plan.queues {
        let sqs = if q.fifo {
            cx.prices.services.sqs.prices.fifo_requests.each()
        } else {
            cx.prices.services.sqs.prices.standard_requests.each()
        };
        let kb = kb(cx, &q.logical);
        for c in cx
            .flow
            .queue_consumers
            .get(&q.logical)
            .into_iter()
            .flatten()
        {
            let messages = c.batches * c.per_batch;
            if c.batch_size != 1 || messages < HIGH_VOLUME {
                continue;
            }
            let at = |batch: f64| {
                let batches = messages / batch;
                batches * lambda
                    + (POLLS_PER_MONTH.max(batches * chunks(batch * kb, 64.0)) + batches) * sqs
            };
            let (one, ten) = (round_cents(at(1.0)), round_cents(at(10.0)));
            out.push(Advice {
                rule: "sqs-batching",
                resource: format!("function {}", c.function),
                message: format!(
                    "takes queue {} one message at a time at {} messages a month: Lambda and SQS requests cost ${one:.2} a month at batchSize 1 and ${ten:.2} at batchSize 10 (with reportBatchItemFailures, only failed messages return)",
                    q.logical,
                    super::number(messages, 0)
                ),
                current: one,
                alternative: ten,
                unit: "USD a month",
            });
        }
    }
    out
}
