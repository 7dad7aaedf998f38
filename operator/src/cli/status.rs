//! `kubectl sluice status NAME`: what the operator says of a pipeline —
//! its conditions, the health figures of its last poll, its last events —
//! and every AWS resource it owns with a link to that resource in the AWS
//! console. Reads the cluster only; never AWS.

use k8s_openapi::api::core::v1::Event;
use serde::Serialize;

use super::{
    OK, Outcome,
    args::{Args, Output},
    cluster,
};
use crate::crd::{DataPipeline, InventoryEntry};

/// How many of the latest events are shown.
pub const EVENTS_SHOWN: usize = 10;

/// Runs `status NAME`.
pub fn run(args: &Args) -> Result<Outcome, String> {
    let name = args
        .positional
        .first()
        .ok_or("status needs the NAME of one pipeline")?;
    let (dp, events) = cluster::block_on(async {
        let (client, namespace) = cluster::connect(args.namespace.as_deref()).await?;
        let dp = cluster::pipeline(&client, &namespace, name).await?;
        let uid = dp.metadata.uid.clone().unwrap_or_default();
        let events = cluster::events(&client, &namespace, &uid).await?;
        Ok((dp, events))
    })?;
    let region = args
        .region
        .clone()
        .or_else(|| dp.spec.region.clone())
        .or_else(|| region_of(&dp))
        .unwrap_or_else(|| "us-east-1".into());
    let report = Report::of(&dp, &events, &region);
    let stdout = match args.output.unwrap_or(Output::Text) {
        Output::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
        Output::Text => report.text(),
        other => return Err(format!("status prints text or json, not {other:?}")),
    };
    Ok(Outcome { stdout, code: OK })
}

/// The region the inventory's ARNs name, for a pipeline without
/// `spec.region` (the operator's default region is not in the object).
fn region_of(dp: &DataPipeline) -> Option<String> {
    dp.status
        .iter()
        .flat_map(|s| &s.inventory)
        .filter_map(|e| e.arn.as_deref())
        .filter_map(|arn| arn.split(':').nth(3))
        .find(|r| !r.is_empty())
        .map(str::to_owned)
}

/// Everything `status` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `namespace/name`.
    pub pipeline: String,
    /// `metadata.generation` and the generation the status describes.
    pub generation: i64,
    /// The generation the status describes.
    pub observed_generation: Option<i64>,
    /// The conditions, as the operator wrote them.
    pub conditions: Vec<ConditionLine>,
    /// The health figures of the last poll (as status holds them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<serde_json::Value>,
    /// The latest events, oldest first.
    pub events: Vec<EventLine>,
    /// Every AWS resource the pipeline owns.
    pub inventory: Vec<ResourceLine>,
    /// The account they are in, and the role they were made as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<crate::crd::AccountStatus>,
    /// The operator's warnings.
    pub warnings: Vec<String>,
}

/// One condition.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionLine {
    /// e.g. `Ready`.
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The reason, e.g. `Converged`.
    pub reason: String,
    /// The message.
    pub message: String,
    /// When the status last changed.
    pub since: String,
}

/// One event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    /// When it last happened.
    pub time: String,
    /// `Normal` or `Warning`.
    pub r#type: String,
    /// The reason.
    pub reason: String,
    /// The note.
    pub message: String,
    /// How many times.
    pub count: i32,
}

/// One owned AWS resource.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLine {
    /// Kind, e.g. `Lambda::Function`.
    pub kind: String,
    /// Logical name in the spec.
    pub name: String,
    /// AWS name.
    pub id: String,
    /// `Ready`, or what the operator waits for.
    pub state: String,
    /// The resource in the AWS console.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console: Option<String>,
}

impl Report {
    /// The report of `dp` with `events` (oldest first), linking into the
    /// console of `region`.
    pub fn of(dp: &DataPipeline, events: &[Event], region: &str) -> Self {
        let status = dp.status.clone().unwrap_or_default();
        let conditions = status
            .conditions
            .iter()
            .map(|c| ConditionLine {
                r#type: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                since: c.last_transition_time.0.to_string(),
            })
            .collect();
        let skip = events.len().saturating_sub(EVENTS_SHOWN);
        let events = events
            .iter()
            .skip(skip)
            .map(|e| EventLine {
                time: cluster::event_time(e),
                r#type: e.type_.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
                count: e.count.unwrap_or(1),
            })
            .collect();
        let inventory = status
            .inventory
            .iter()
            .map(|e| ResourceLine {
                kind: e.kind.clone(),
                name: e.name.clone(),
                id: e.id.clone(),
                state: e.state.clone(),
                console: console_url(e, region),
            })
            .collect();
        Report {
            pipeline: format!(
                "{}/{}",
                dp.metadata.namespace.as_deref().unwrap_or("default"),
                dp.metadata.name.as_deref().unwrap_or_default()
            ),
            generation: dp.metadata.generation.unwrap_or_default(),
            observed_generation: status.observed_generation,
            conditions,
            health: status
                .health
                .as_ref()
                .and_then(|h| serde_json::to_value(h).ok()),
            events,
            inventory,
            account: status.account,
            warnings: status.warnings,
        }
    }

    /// For people.
    pub fn text(&self) -> String {
        let mut out = format!("DataPipeline {}", self.pipeline);
        match self.observed_generation {
            Some(g) if g == self.generation => out.push_str(&format!(" (generation {g})\n")),
            Some(g) => out.push_str(&format!(
                " (generation {}; the status describes generation {g}: the operator has not \
                 caught up)\n",
                self.generation
            )),
            None => out.push_str(" (the operator has not reported on it yet)\n"),
        }
        out.push_str("\nConditions:\n");
        if self.conditions.is_empty() {
            out.push_str("  (none)\n");
        }
        for c in &self.conditions {
            out.push_str(&format!(
                "  {:<12} {:<7} {:<22} since {}\n",
                c.r#type, c.status, c.reason, c.since
            ));
            if !c.message.is_empty() {
                for line in c.message.lines() {
                    out.push_str(&format!("      {line}\n"));
                }
            }
        }
        if !self.warnings.is_empty() {
            out.push_str("\nWarnings:\n");
            for w in &self.warnings {
                out.push_str(&format!("  - {w}\n"));
            }
        }
        out.push_str("\nHealth:\n");
        match &self.health {
            None => out.push_str("  (not polled yet)\n"),
            Some(h) => out.push_str(&health_text(h)),
        }
        out.push_str(&format!(
            "\nEvents (the latest {}, oldest first):\n",
            EVENTS_SHOWN
        ));
        if self.events.is_empty() {
            out.push_str("  (none)\n");
        }
        for e in &self.events {
            let times = if e.count > 1 {
                format!(" (×{})", e.count)
            } else {
                String::new()
            };
            // To the second: the fraction only makes the column ragged.
            let time = match e.time.split_once('.') {
                Some((seconds, _)) => format!("{seconds}Z"),
                None => e.time.clone(),
            };
            out.push_str(&format!(
                "  {time:<20}  {:<7} {:<20} {}{times}\n",
                e.r#type, e.reason, e.message
            ));
        }
        out.push_str(&format!("\nAWS resources ({}", self.inventory.len()));
        if let Some(a) = &self.account {
            out.push_str(&format!(", account {}", a.id));
            if let Some(role) = &a.role_arn {
                out.push_str(&format!(" as {role}"));
            }
        }
        out.push_str("):\n");
        let kind_w = self
            .inventory
            .iter()
            .map(|r| r.kind.len())
            .max()
            .unwrap_or(4);
        let id_w = self.inventory.iter().map(|r| r.id.len()).max().unwrap_or(2);
        for r in &self.inventory {
            out.push_str(&format!(
                "  {:<kind_w$}  {:<id_w$}  {:<8} ({})\n",
                r.kind, r.id, r.state, r.name
            ));
            if let Some(url) = &r.console {
                out.push_str(&format!("  {:<kind_w$}  {url}\n", ""));
            }
        }
        out
    }
}

/// The health figures as lines, one per thing measured.
fn health_text(h: &serde_json::Value) -> String {
    let mut out = format!(
        "  over the last {}\n",
        h["window"].as_str().unwrap_or("window")
    );
    let rows = |key: &str| h[key].as_array().cloned().unwrap_or_default();
    for f in rows("functions") {
        out.push_str(&format!(
            "  function {:<20} {} invocations, {} errors ({} %), {} throttles\n",
            f["name"].as_str().unwrap_or_default(),
            f["invocations"],
            f["errors"],
            f["errorPercent"],
            f["throttles"]
        ));
    }
    for q in rows("deadLetterQueues") {
        let age = q["oldestMessageAgeSeconds"]
            .as_i64()
            .map_or(String::new(), |s| format!(", oldest ≥ {s} s"));
        out.push_str(&format!(
            "  dead letters {:<16} {} waiting, {} received (from {}){age}\n",
            q["name"].as_str().unwrap_or_default(),
            q["messages"],
            q["received"],
            q["source"].as_str().unwrap_or_default()
        ));
    }
    for w in rows("workflows") {
        out.push_str(&format!(
            "  workflow {:<20} {} failed, {} timed out, {} aborted\n",
            w["name"].as_str().unwrap_or_default(),
            w["failed"],
            w["timedOut"],
            w["aborted"]
        ));
    }
    for s in rows("streamConsumers") {
        out.push_str(&format!(
            "  stream {} → {}: iterator age ≥ {} s\n",
            s["stream"].as_str().unwrap_or_default(),
            s["function"].as_str().unwrap_or_default(),
            s["iteratorAgeSeconds"]
        ));
    }
    out
}

/// The console's host for `region`'s partition.
fn console_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        format!("https://{region}.console.amazonaws-us-gov.com")
    } else {
        format!("https://{region}.console.aws.amazon.com")
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The resource's page in the AWS console, for a kind that has one (an
/// event source mapping's, a function's settings and resource policy's are
/// on its function's page; a bucket notification's on its bucket's).
pub fn console_url(e: &InventoryEntry, region: &str) -> Option<String> {
    let host = console_host(region);
    let q = format!("region={region}");
    let arn_part = |i: usize| e.arn.as_deref().and_then(|a| a.split(':').nth(i));
    let id = e.id.as_str();
    Some(match e.kind.as_str() {
        "S3::Bucket" => format!("{host}/s3/buckets/{id}?{q}&tab=objects"),
        "S3::BucketNotification" => format!("{host}/s3/buckets/{id}?{q}&tab=properties"),
        "SQS::Queue" => {
            let account = arn_part(4)?;
            let url = format!("https://sqs.{region}.amazonaws.com/{account}/{id}");
            format!("{host}/sqs/v3/home?{q}#/queues/{}", encode(&url))
        }
        "Kinesis::Stream" => {
            format!("{host}/kinesis/home?{q}#/streams/details/{id}/monitoring")
        }
        "DynamoDB::Table" => format!("{host}/dynamodbv2/home?{q}#table?name={id}"),
        "Events::EventBus" => format!("{host}/events/home?{q}#/eventbus/{id}"),
        "Events::Rule" => {
            let (bus, rule) = id.split_once('/').unwrap_or(("default", id));
            format!("{host}/events/home?{q}#/eventbus/{bus}/rules/{rule}")
        }
        "Logs::LogGroup" => format!(
            "{host}/cloudwatch/home?{q}#logsV2:log-groups/log-group/{}",
            encode(id).replace('%', "$25")
        ),
        "IAM::Role" => {
            let global = console_host(region).replacen(&format!("{region}."), "", 1);
            format!("{global}/iam/home#/roles/details/{id}")
        }
        "Lambda::Function" => format!("{host}/lambda/home?{q}#/functions/{id}"),
        "Lambda::EventInvokeConfig" => {
            format!("{host}/lambda/home?{q}#/functions/{id}?tab=configure")
        }
        "Lambda::Permission" => {
            format!("{host}/lambda/home?{q}#/functions/{id}?tab=configure")
        }
        "Lambda::EventSourceMapping" => {
            let function = id.split('|').next()?;
            format!("{host}/lambda/home?{q}#/functions/{function}?tab=configure")
        }
        "StepFunctions::StateMachine" => {
            let arn = e.arn.as_deref()?;
            format!("{host}/states/home?{q}#/statemachines/view/{}", encode(arn))
        }
        "Scheduler::Schedule" => {
            // arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/NAME
            let group = arn_part(5)
                .and_then(|r| r.split('/').nth(1))
                .unwrap_or("default");
            format!("{host}/scheduler/home?{q}#schedules/{group}/{id}")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DataPipelineSpec, DataPipelineStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn entry(kind: &str, id: &str, arn: Option<&str>) -> InventoryEntry {
        InventoryEntry {
            kind: kind.into(),
            name: "x".into(),
            id: id.into(),
            arn: arn.map(str::to_owned),
            state: "Ready".into(),
        }
    }

    #[test]
    fn every_kind_the_operator_records_links_to_its_console_page() {
        let r = "eu-west-1";
        let cases = [
            (
                entry("S3::Bucket", "b", None),
                "https://eu-west-1.console.aws.amazon.com/s3/buckets/b?region=eu-west-1&tab=objects",
            ),
            (
                entry(
                    "SQS::Queue",
                    "q",
                    Some("arn:aws:sqs:eu-west-1:123456789012:q"),
                ),
                "https://eu-west-1.console.aws.amazon.com/sqs/v3/home?region=eu-west-1#/queues/\
                 https%3A%2F%2Fsqs.eu-west-1.amazonaws.com%2F123456789012%2Fq",
            ),
            (
                entry("Events::Rule", "bus/rule", None),
                "https://eu-west-1.console.aws.amazon.com/events/home?region=eu-west-1#/eventbus/bus/rules/rule",
            ),
            (
                entry("Logs::LogGroup", "/aws/vendedlogs/states/w", None),
                "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:\
                 log-groups/log-group/$252Faws$252Fvendedlogs$252Fstates$252Fw",
            ),
            (
                entry("IAM::Role", "role", None),
                "https://console.aws.amazon.com/iam/home#/roles/details/role",
            ),
            (
                entry(
                    "Lambda::EventSourceMapping",
                    "fn|arn:aws:sqs:eu-west-1:1:q",
                    None,
                ),
                "https://eu-west-1.console.aws.amazon.com/lambda/home?region=eu-west-1#/functions/fn?tab=configure",
            ),
            (
                entry(
                    "StepFunctions::StateMachine",
                    "m",
                    Some("arn:aws:states:eu-west-1:1:stateMachine:m"),
                ),
                "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/statemachines/view/\
                 arn%3Aaws%3Astates%3Aeu-west-1%3A1%3AstateMachine%3Am",
            ),
            (
                entry(
                    "Scheduler::Schedule",
                    "s",
                    Some("arn:aws:scheduler:eu-west-1:1:schedule/sluice/s"),
                ),
                "https://eu-west-1.console.aws.amazon.com/scheduler/home?region=eu-west-1#schedules/sluice/s",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(console_url(&e, r).as_deref(), Some(want), "{}", e.kind);
        }
        // Every kind the operator records has a page.
        for kind in crate::plan::Kind::APPLY_ORDER {
            let e = entry(
                kind.as_str(),
                "a|b",
                Some("arn:aws:svc:eu-west-1:1:thing/g/a"),
            );
            assert!(console_url(&e, r).is_some(), "{}", kind.as_str());
        }
        assert_eq!(
            console_url(&entry("IAM::Role", "role", None), "cn-north-1").as_deref(),
            Some("https://console.amazonaws.cn/iam/home#/roles/details/role")
        );
    }

    #[test]
    fn the_report_shows_conditions_health_the_latest_events_and_links() {
        let spec: DataPipelineSpec =
            serde_json::from_value(serde_json::json!({})).expect("an empty spec");
        let mut dp = DataPipeline::new("orders", spec);
        dp.metadata.namespace = Some("team-a".into());
        dp.metadata.generation = Some(3);
        let health = serde_json::from_value(serde_json::json!({
            "window": "15m",
            "functions": [{"name": "processor", "invocations": 120, "errors": 6,
                           "throttles": 0, "errorPercent": 5}],
        }))
        .expect("health");
        dp.status = Some(DataPipelineStatus {
            observed_generation: Some(2),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Converged".into(),
                message: "8 resources converged".into(),
                last_transition_time: Time(Default::default()),
                observed_generation: Some(2),
            }],
            inventory: vec![entry("Lambda::Function", "f-123", None)],
            health: Some(health),
            ..Default::default()
        });
        let events: Vec<Event> = (0..12)
            .map(|i| Event {
                reason: Some(format!("Step{i}")),
                message: Some(format!("event {i}")),
                type_: Some("Normal".into()),
                ..Default::default()
            })
            .collect();
        let report = Report::of(&dp, &events, "us-east-1");
        let text = report.text();
        assert!(text.contains("DataPipeline team-a/orders"), "{text}");
        assert!(text.contains("not caught up"), "{text}");
        assert!(
            text.contains("Ready") && text.contains("Converged"),
            "{text}"
        );
        assert!(
            text.contains("function processor") && text.contains("6 errors (5 %)"),
            "{text}"
        );
        // The latest ten, oldest first.
        assert_eq!(report.events.len(), EVENTS_SHOWN);
        assert_eq!(report.events[0].reason, "Step2");
        assert!(
            !text.contains("Step1 ") && text.contains("Step11"),
            "{text}"
        );
        assert!(
            text.contains(
                "https://us-east-1.console.aws.amazon.com/lambda/home?region=us-east-1#/functions/f-123"
            ),
            "{text}"
        );
    }
}
