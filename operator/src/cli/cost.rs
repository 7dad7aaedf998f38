//! `kubectl sluice cost`: a monthly estimate of what a pipeline's plan
//! costs on AWS at stated volumes, one line per resource and what is
//! counted, from the price table in the repository
//! (`config/prices/us-east-1.yaml`, [`prices`]), with every assumption
//! printed and the article's decision rules applied where they fire
//! ("advice").
//!
//! The plan is the operator's own ([`super::check`]), so every resource
//! priced is one the operator would create, under its AWS name. Volumes are
//! stated at the sources ([`volumes`]) and propagated along the pipeline's
//! edges ([`flow`]); one file per AWS service prices its lines.
//!
//! A month is [`HOURS_PER_MONTH`] hours (AWS's convention for hourly
//! prices), so a day is 1/30.4167 of it. A KB is 1,024 bytes, a GB
//! 1,024 × 1,024 KB. Each line's dollars are its unrounded quantity times
//! its unit price, rounded half away from zero to the cent; subtotals and
//! the total add the rounded lines, so the table adds up as printed.

pub mod dynamodb;
pub mod events;
pub mod flow;
pub mod kinesis;
pub mod lambda;
pub mod logs;
pub mod prices;
pub mod s3;
pub mod scheduler;
pub mod sqs;
pub mod stepfunctions;
pub mod volumes;

use serde::Serialize;
use serde_json::Value;

use super::{
    OK, Outcome,
    args::{Args, Output},
    check::{self, Setup},
    load,
};
use crate::{crd::DataPipelineSpec, plan::Plan};
use flow::Flow;
use prices::{Price, Prices};
use volumes::Volumes;

/// Hours in a month.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Days in a month.
pub const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;
/// Seconds in a month.
pub const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;
/// KB in a GB.
pub const KB_PER_GB: f64 = 1024.0 * 1024.0;

/// Services in the order the table lists them.
const SERVICES: [&str; 9] = [
    "S3",
    "Lambda",
    "SQS",
    "EventBridge",
    "EventBridge Scheduler",
    "Step Functions",
    "Kinesis",
    "DynamoDB",
    "CloudWatch Logs",
];

/// Rounds dollars to the cent, half away from zero.
pub fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// `1234567.891` as `1,234,567.89` (`decimals` places).
pub fn number(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && s.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A figure with 2 decimals, or none when it is whole.
pub fn short(v: f64) -> String {
    number(v, if v.fract() == 0.0 { 0 } else { 2 })
}

/// One priced quantity.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// The AWS service.
    pub service: &'static str,
    /// The resource's kind (as in the plan and the status inventory).
    pub kind: &'static str,
    /// Its AWS name.
    pub name: String,
    /// What is counted.
    pub counted: String,
    /// How many a month (rounded to 2 places for show; the dollars use the
    /// unrounded figure).
    pub quantity: f64,
    /// The unit of the quantity.
    pub unit: String,
    /// The price as the table states it.
    pub unit_price: String,
    /// The table's price: dollars (`priceUsd`) for `pricePer` units.
    pub price_usd: f64,
    /// How many units `price_usd` is for.
    pub price_per: f64,
    /// Dollars a month, to the cent.
    pub usd: f64,
    #[serde(skip)]
    raw_quantity: f64,
}

impl Line {
    /// `quantity` of `counted` at `price`.
    pub fn new(
        service: &'static str,
        kind: &'static str,
        name: &str,
        counted: &str,
        quantity: f64,
        price: &Price,
    ) -> Line {
        Line {
            service,
            kind,
            name: name.to_owned(),
            counted: counted.to_owned(),
            quantity: (quantity * 100.0).round() / 100.0,
            unit: price.unit.clone(),
            unit_price: format!(
                "{}{}",
                price.display(),
                if price.confirmed {
                    ""
                } else {
                    " (unconfirmed)"
                }
            ),
            price_usd: price.usd,
            price_per: price.per,
            usd: round_cents(quantity * price.each()),
            raw_quantity: quantity,
        }
    }

    /// The quantity before rounding.
    pub fn raw_quantity(&self) -> f64 {
        self.raw_quantity
    }
}

/// A decision rule that fires at the stated volume, with the two figures
/// it compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    /// The rule's id.
    pub rule: &'static str,
    /// What it is about (`function processor`).
    pub resource: String,
    /// What it found and what to do.
    pub message: String,
    /// The figure as planned.
    pub current: f64,
    /// The figure it is compared with.
    pub alternative: f64,
    /// The figures' unit.
    pub unit: &'static str,
}

/// A service's subtotal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subtotal {
    /// The service.
    pub service: &'static str,
    /// Dollars a month.
    pub usd: f64,
}

/// Everything an estimate says.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `namespace/name`.
    pub pipeline: String,
    /// The region priced.
    pub region: String,
    /// `USD`.
    pub currency: String,
    /// Where the prices come from.
    pub prices: String,
    /// The day they were taken.
    pub prices_taken: String,
    /// Where the volumes come from.
    pub volumes: String,
    /// The lines, by service.
    pub lines: Vec<Line>,
    /// Per service.
    pub subtotals: Vec<Subtotal>,
    /// Dollars a month.
    pub total: f64,
    /// Every figure assumed, stated or default.
    pub assumptions: Vec<String>,
    /// How volumes were derived along the edges.
    pub derivations: Vec<String>,
    /// The decision rules that fire.
    pub advice: Vec<Advice>,
    /// What the estimate leaves out.
    pub not_priced: Vec<String>,
}

/// What every service's lines are computed from.
#[derive(Debug)]
pub struct Cx<'a> {
    /// The spec.
    pub spec: &'a DataPipelineSpec,
    /// The operator's plan.
    pub plan: &'a Plan,
    /// The figures.
    pub volumes: &'a Volumes,
    /// The figures propagated.
    pub flow: &'a Flow,
    /// The prices.
    pub prices: &'a Prices,
}

/// Labels of where the prices and volumes came from, for the report.
#[derive(Debug)]
pub struct Sources<'a> {
    /// The price table.
    pub prices: &'a str,
    /// The volumes file, or `None` for the defaults.
    pub volumes: Option<&'a str>,
}

/// Estimates `checked` at `volumes` (parsed YAML; `None`: the defaults).
pub fn estimate(
    checked: &check::Checked,
    prices: &Prices,
    volumes: Option<&Value>,
    sources: &Sources<'_>,
) -> Result<Report, String> {
    let spec = &checked.pipeline.spec;
    let plan = &checked.plan;
    if checked.id.region != prices.region {
        return Err(format!(
            "the pipeline is in {} and the price table ({}) is for {}: pass --prices with a table for {} (config/prices/<region>.yaml); prices are never scaled from another region",
            checked.id.region, sources.prices, prices.region, checked.id.region
        ));
    }
    let queues: Vec<String> = plan.queues.iter().map(|q| q.logical.clone()).collect();
    let volumes = Volumes::resolve(spec, &queues, volumes)
        .map_err(|e| format!("{}: {e}", sources.volumes.unwrap_or("the default volumes")))?;
    let flow = flow::flow(spec, &volumes)?;
    let cx = Cx {
        spec,
        plan,
        volumes: &volumes,
        flow: &flow,
        prices,
    };
    let mut lines = Vec::new();
    lines.extend(s3::lines(&cx));
    lines.extend(lambda::lines(&cx));
    lines.extend(sqs::lines(&cx));
    lines.extend(events::lines(&cx));
    lines.extend(scheduler::lines(&cx));
    lines.extend(stepfunctions::lines(&cx));
    lines.extend(kinesis::lines(&cx));
    lines.extend(dynamodb::lines(&cx));
    lines.extend(logs::lines(&cx));
    let subtotals: Vec<Subtotal> = SERVICES
        .iter()
        .filter(|s| lines.iter().any(|l| l.service == **s))
        .map(|s| Subtotal {
            service: s,
            usd: round_cents(
                lines
                    .iter()
                    .filter(|l| l.service == *s)
                    .map(|l| l.usd)
                    .sum(),
            ),
        })
        .collect();
    let total = round_cents(subtotals.iter().map(|s| s.usd).sum());
    let mut advice = Vec::new();
    advice.extend(lambda::advice(&cx));
    advice.extend(sqs::advice(&cx));
    advice.extend(stepfunctions::advice(&cx));
    advice.extend(kinesis::advice(&cx));
    advice.extend(dynamodb::advice(&cx));
    let mut derivations = flow.derivations.clone();
    derivations.dedup();
    derivations.extend([
        format!(
            "a month is {HOURS_PER_MONTH} hours ({} days); KB = 1,024 bytes, GB = 1,024 x 1,024 KB",
            number(DAYS_PER_MONTH, 4)
        ),
        "no failures: nothing reaches a dead-letter queue or an on-failure destination, nothing is retried".into(),
        format!(
            "SQS: Lambda keeps 5 long polls (20 s) open on each queue it consumes: {} receives a month per mapping, or one per batch when batches are more; one DeleteMessageBatch per batch; producers send one message per request",
            number(sqs::POLLS_PER_MONTH, 0)
        ),
        "Lambda: free tiers excluded; every invocation billed for the function's average duration".into(),
        "per item a function handles (an object, message, record or event; an invocation otherwise): one object read from each bucket it is triggered by or reads, one object written to each bucket it writes, one message, record, event or execution to each queue, stream, bus or workflow it uses, one item written (1 KB a unit) or read (4 KB a unit) on each table it uses".into(),
    ]);
    let mut not_priced = vec![
        "data transfer (free within the region), KMS requests of encrypted resources, CloudWatch metrics and alarms, IAM (free)".to_owned(),
    ];
    for f in &plan.functions {
        if f.tracing == crate::crd::TracingMode::Active {
            not_priced.push(format!(
                "X-Ray traces of function {} (tracing Active)",
                f.logical
            ));
        }
    }
    for t in &plan.tables {
        if t.stream.is_some() {
            not_priced.push(format!(
                "the change stream of table {} (reads by Lambda are free; other readers are not priced)",
                t.logical
            ));
        }
    }
    Ok(Report {
        pipeline: format!("{}/{}", checked.id.namespace, checked.id.name),
        region: prices.region.clone(),
        currency: prices.currency.clone(),
        prices: sources.prices.to_owned(),
        prices_taken: prices.taken.clone(),
        volumes: sources.volumes.map_or(
            "the default volumes (no --assume-volume)".to_owned(),
            str::to_owned,
        ),
        lines,
        subtotals,
        total,
        assumptions: volumes.assumptions(),
        derivations,
        advice,
        not_priced,
    })
}

/// Runs `cost`.
pub fn run(args: &Args, setup: &Setup) -> Result<Outcome, String> {
    let prices = match &args.prices {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--prices {}: {e}", path.display()))?;
            Prices::parse(&path.display().to_string(), &text)?
        }
        None => Prices::builtin()?,
    };
    let prices_label = args
        .prices
        .as_ref()
        .map_or(prices::BUILTIN_PATH.to_owned(), |p| p.display().to_string());
    if let Some(r) = &args.region
        && *r != prices.region
    {
        return Err(format!(
            "--region {r}: the price table ({prices_label}) is for {}; pass --prices with a table for {r} (prices are never scaled from another region)",
            prices.region
        ));
    }
    let volumes = match &args.assume_volume {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--assume-volume {}: {e}", path.display()))?;
            let v: Value = serde_yaml::from_str(&text)
                .map_err(|e| format!("--assume-volume {}: not YAML: {e}", path.display()))?;
            Some(v)
        }
        None => None,
    };
    let volumes_label = args.assume_volume.as_ref().map(|p| p.display().to_string());
    let manifest = check::one_pipeline(load::read(&args.files)?, "cost")?;
    let checked = check::check_or_explain(&manifest, setup, args)?;
    let report = estimate(
        &checked,
        &prices,
        volumes.as_ref(),
        &Sources {
            prices: &prices_label,
            volumes: volumes_label.as_deref(),
        },
    )?;
    let stdout = match args.output.unwrap_or(Output::Text) {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            s.push('\n');
            s
        }
        Output::Text => text(&report),
        other => return Err(format!("cost prints text or json, not {other:?}")),
    };
    Ok(Outcome { stdout, code: OK })
}

/// The report as a table for people.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "Monthly cost estimate: DataPipeline {} in {} ({})\nprices: {}, taken {} (free tiers excluded)\nvolumes: {}\n\n",
        r.pipeline, r.region, r.currency, r.prices, r.prices_taken, r.volumes
    );
    let header = [
        "KIND",
        "NAME",
        "COUNTED",
        "QUANTITY/MONTH",
        "UNIT PRICE",
        "USD/MONTH",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for s in &r.subtotals {
        for l in r.lines.iter().filter(|l| l.service == s.service) {
            rows.push([
                l.kind.to_owned(),
                l.name.clone(),
                l.counted.clone(),
                number(l.quantity, 2),
                l.unit_price.clone(),
                number(l.usd, 2),
            ]);
        }
        rows.push([
            String::new(),
            String::new(),
            format!("subtotal {}", s.service),
            String::new(),
            String::new(),
            number(s.usd, 2),
        ]);
    }
    rows.push([
        "TOTAL".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        number(r.total, 2),
    ]);
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let fmt = |cells: [&str; 6]| -> String {
        let mut line = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if i == 3 || i == 5 {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            }
            if i < 5 {
                line.push_str("  ");
            }
        }
        line.trim_end().to_owned() + "\n"
    };
    out.push_str(&fmt(header));
    for row in &rows {
        out.push_str(&fmt(row.each_ref().map(String::as_str)));
    }
    let section = |out: &mut String, title: &str, items: &[String]| {
        if !items.is_empty() {
            out.push_str(&format!("\n{title}:\n"));
            for i in items {
                out.push_str(&format!("  - {i}\n"));
            }
        }
    };
    section(&mut out, "Assumptions (stated, or default)", &r.assumptions);
    section(
        &mut out,
        "Derived along the pipeline's edges",
        &r.derivations,
    );
    let advice: Vec<String> = r
        .advice
        .iter()
        .map(|a| format!("[{}] {}: {}", a.rule, a.resource, a.message))
        .collect();
    if advice.is_empty() {
        out.push_str("\nAdvice: none of the decision rules fires at these volumes.\n");
    } else {
        section(&mut out, "Advice", &advice);
    }
    section(&mut out, "Not priced", &r.not_priced);
    out
}

#[cfg(test)]
mod tests;
