//! The price table (`config/prices/us-east-1.yaml`): compiled in, or read
//! from `--prices FILE`, and refused unless it has every price the
//! estimator multiplies by, each a finite number of dollars for a positive
//! number of units.

use serde::Deserialize;

/// The table compiled into the binary.
pub const BUILTIN: &str = include_str!("../../../../config/prices/us-east-1.yaml");
/// Where [`BUILTIN`] lives in the repository.
pub const BUILTIN_PATH: &str = "config/prices/us-east-1.yaml";

/// One price: `usd` dollars for `per` units of `unit`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Dollars.
    pub usd: f64,
    /// For how many units.
    pub per: f64,
    /// What a unit is (`requests`, `GB-seconds`).
    pub unit: String,
    /// The tier or the condition the price is for.
    #[serde(default)]
    pub note: Option<String>,
    /// `false` when the figure could not be confirmed on the day it was
    /// taken (the best published figure found).
    #[serde(default = "yes")]
    pub confirmed: bool,
}

fn yes() -> bool {
    true
}

impl Price {
    /// Dollars for one unit.
    pub fn each(&self) -> f64 {
        self.usd / self.per
    }

    /// `$0.20 per 1M requests`.
    pub fn display(&self) -> String {
        let per = if self.per == 1.0 {
            String::new()
        } else if self.per == 1_000.0 {
            "1K ".into()
        } else if self.per == 1_000_000.0 {
            "1M ".into()
        } else {
            format!("{} ", super::number(self.per, 0))
        };
        let unit = self.unit.strip_suffix('s').unwrap_or(&self.unit);
        let unit = if per.is_empty() { unit } else { &self.unit };
        format!("${} per {per}{unit}", trim_zeros(self.usd))
    }
}

fn trim_zeros(v: f64) -> String {
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0');
    let s = s.strip_suffix('.').unwrap_or(s);
    // Dollars show at least cents.
    match s.split_once('.') {
        Some((_, frac)) if frac.len() >= 2 => s.to_owned(),
        Some((int, frac)) => format!("{int}.{frac:0<2}"),
        None => format!("{s}.00"),
    }
}

/// A service's prices, with where they were taken from.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service<P> {
    /// The public pricing page.
    pub source: String,
    /// The free tier, excluded from the estimate.
    pub free_tier: String,
    /// The prices.
    pub prices: P,
}

/// Lambda.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lambda {
    /// Per request.
    pub requests: Price,
    /// Per GB-second on x86_64.
    pub duration_x86: Price,
    /// Per GB-second on arm64.
    pub duration_arm: Price,
    /// Per GB-second of `/tmp` above 512 MB.
    pub ephemeral_storage: Price,
}

/// SQS.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sqs {
    /// Per request (64 KB chunk) on a standard queue.
    pub standard_requests: Price,
    /// Per request on a FIFO queue.
    pub fifo_requests: Price,
}

/// EventBridge event buses.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventBridge {
    /// Per custom event put (64 KB chunk).
    pub custom_events: Price,
    /// Per AWS service event (free).
    pub service_events: Price,
    /// Per delivery to a target (free for the targets Sluice wires).
    pub deliveries: Price,
}

/// EventBridge Scheduler.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scheduler {
    /// Per invocation.
    pub invocations: Price,
}

/// Step Functions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepFunctions {
    /// Per Standard state transition.
    pub standard_transitions: Price,
    /// Per Express execution.
    pub express_requests: Price,
    /// Per Express GB-second.
    pub express_duration: Price,
}

/// Kinesis Data Streams.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kinesis {
    /// Per provisioned shard-hour.
    pub shard_hours: Price,
    /// Per PUT payload unit (25 KB).
    pub put_payload_units: Price,
    /// Per shard-hour of retention above 24 hours.
    pub extended_retention: Price,
    /// Per on-demand stream-hour.
    pub on_demand_stream_hours: Price,
    /// Per GB written on demand.
    pub on_demand_data_in: Price,
    /// Per GB read on demand.
    pub on_demand_data_out: Price,
}

/// DynamoDB.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamoDb {
    /// Per on-demand write request unit.
    pub write_request_units: Price,
    /// Per on-demand read request unit.
    pub read_request_units: Price,
    /// Per provisioned WCU-hour.
    pub wcu_hours: Price,
    /// Per provisioned RCU-hour.
    pub rcu_hours: Price,
    /// Per GB-month stored.
    pub storage: Price,
}

/// S3.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3 {
    /// Per GB-month stored.
    pub storage: Price,
    /// Per PUT.
    pub put_requests: Price,
    /// Per GET.
    pub get_requests: Price,
}

/// CloudWatch Logs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logs {
    /// Per GB ingested.
    pub ingestion: Price,
    /// Per GB-month stored.
    pub storage: Price,
}

/// Every service.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Services {
    /// Lambda.
    pub lambda: Service<Lambda>,
    /// SQS.
    pub sqs: Service<Sqs>,
    /// EventBridge.
    pub eventbridge: Service<EventBridge>,
    /// EventBridge Scheduler.
    pub scheduler: Service<Scheduler>,
    /// Step Functions.
    pub stepfunctions: Service<StepFunctions>,
    /// Kinesis Data Streams.
    pub kinesis: Service<Kinesis>,
    /// DynamoDB.
    pub dynamodb: Service<DynamoDb>,
    /// S3.
    pub s3: Service<S3>,
    /// CloudWatch Logs.
    pub logs: Service<Logs>,
}

/// The price table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prices {
    /// The region the prices are for.
    pub region: String,
    /// Always `USD`.
    pub currency: String,
    /// The day the prices were taken (YYYY-MM-DD).
    pub taken: String,
    /// The prices.
    pub services: Services,
}

impl Prices {
    /// The compiled-in table.
    pub fn builtin() -> Result<Prices, String> {
        Prices::parse(BUILTIN_PATH, BUILTIN)
    }

    /// Parses and checks a table; errors name the file and the field.
    pub fn parse(name: &str, text: &str) -> Result<Prices, String> {
        let prices: Prices =
            serde_yaml::from_str(text).map_err(|e| format!("{name}: not a price table: {e}"))?;
        let mut problems = Vec::new();
        if prices.currency != "USD" {
            problems.push(format!("currency: {:?}, expected USD", prices.currency));
        }
        if chrono::NaiveDate::parse_from_str(&prices.taken, "%Y-%m-%d").is_err() {
            problems.push(format!("taken: {:?}, expected YYYY-MM-DD", prices.taken));
        }
        let value: serde_json::Value =
            serde_yaml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        for (service, s) in value["services"].as_object().into_iter().flatten() {
            if !s["source"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://"))
            {
                problems.push(format!(
                    "services.{service}.source: the https:// page the prices come from"
                ));
            }
            for (key, p) in s["prices"].as_object().into_iter().flatten() {
                let at = format!("services.{service}.prices.{key}");
                let usd = p["usd"].as_f64().unwrap_or(f64::NAN);
                let per = p["per"].as_f64().unwrap_or(f64::NAN);
                if !usd.is_finite() || usd < 0.0 {
                    problems.push(format!("{at}.usd: {usd}, expected dollars, 0 or more"));
                }
                if !per.is_finite() || per <= 0.0 {
                    problems.push(format!(
                        "{at}.per: {per}, expected a number of units above 0"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(prices)
        } else {
            Err(format!("{name}: {}", problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_table_is_complete_and_for_us_east_1() {
        let p = Prices::builtin().expect("valid table");
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.taken, "2026-12-07");
        assert_eq!(
            p.services.lambda.prices.requests.display(),
            "$0.20 per 1M requests"
        );
        assert_eq!(
            p.services.s3.prices.storage.display(),
            "$0.023 per GB-month"
        );
        assert!(!p.services.kinesis.prices.on_demand_stream_hours.confirmed);
    }

    #[test]
    fn a_bad_table_names_the_field() {
        let broken = BUILTIN.replace("requests: {usd: 0.20,", "requests: {usd: -0.20,");
        let e = Prices::parse("x.yaml", &broken).expect_err("negative");
        assert!(e.contains("services.lambda.prices.requests.usd"), "{e}");
        let missing = BUILTIN.replace("      durationArm:", "      durationArmX:");
        let e = Prices::parse("x.yaml", &missing).expect_err("missing");
        assert!(e.contains("durationArm"), "{e}");
    }
}
