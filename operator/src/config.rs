//! Operator configuration, read from environment variables (the Helm chart
//! sets them). Parsing is pure over a lookup function so it is unit-tested.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::aws::quota::QuotaConfig;

/// What the platform team configures once for every pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorConfig {
    /// Region of pipelines that do not set `spec.region`.
    pub default_region: String,
    /// Regions pipelines may use; a pipeline naming another is `Stalled`.
    pub allowed_regions: Vec<String>,
    /// Prefix of every AWS name (keeps two installations apart).
    pub name_prefix: String,
    /// Directory with the built-in handlers' `manifest.json` and zips.
    pub handlers_dir: PathBuf,
    /// How often a converged pipeline is re-read from AWS to correct drift.
    pub resync: Duration,
    /// Permissions boundary attached to every role Sluice creates: the
    /// managed policy of `config/iam/pipeline-boundary.json`. Required: the
    /// operator's own AWS policy lets it create and change roles only with
    /// it, so leaked operator keys cannot make an unbounded role.
    pub permissions_boundary: String,
    /// The installation's secret: salts bucket names (global across every
    /// AWS account) so nobody can compute and squat them; its fingerprint
    /// marks released resources. Keep it for the installation's lifetime.
    pub installation_id: Secret,
    /// Address of the `/metrics`, `/livez` and `/readyz` server.
    pub admin_addr: SocketAddr,
    /// Watch only these namespaces (all namespaces when empty). The
    /// operator then needs RBAC in these namespaces only.
    pub watch_namespaces: Vec<String>,
    /// How much of AWS's control-plane quotas the operator uses.
    pub quotas: QuotaConfig,
    /// Pipelines reconciled at once. A pipeline waiting for AWS to catch up
    /// (a role not yet assumable, a function still Pending) holds no slot:
    /// it is requeued.
    pub max_concurrent_reconciles: u16,
    /// How often each pipeline's runtime health is polled; `None` turns
    /// polling off.
    pub health_interval: Option<Duration>,
    /// The window health figures cover.
    pub health_window: Duration,
}

/// A value never shown: `Debug` prints `(redacted)`, so a logged
/// configuration or identity does not carry it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

/// A configuration variable that is set but invalid.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl OperatorConfig {
    /// Reads the configuration from the process environment.
    /// `aws_region` is the region the AWS SDK resolved (AWS_REGION, profile).
    pub fn from_env(aws_region: Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok(), aws_region)
    }

    /// Reads the configuration through `get`.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        aws_region: Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let default_region = get("SLUICE_DEFAULT_REGION")
            .or(aws_region)
            .ok_or(ConfigError {
                var: "SLUICE_DEFAULT_REGION",
                message:
                    "no default region: set SLUICE_DEFAULT_REGION or AWS_REGION, e.g. us-east-1"
                        .into(),
            })?;
        let allowed_regions = match get("SLUICE_ALLOWED_REGIONS") {
            Some(list) => list
                .split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
            None => vec![default_region.clone()],
        };
        let name_prefix = get("SLUICE_NAME_PREFIX").unwrap_or_else(|| "sluice".into());
        if name_prefix.is_empty()
            || name_prefix.len() > 12
            || !name_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ConfigError {
                var: "SLUICE_NAME_PREFIX",
                message: format!(
                    "{name_prefix:?} is not valid: use 1 to 12 lowercase letters, digits or '-'"
                ),
            });
        }
        let handlers_dir = PathBuf::from(
            get("SLUICE_HANDLERS_DIR").unwrap_or_else(|| "/opt/sluice/handlers".into()),
        );
        let resync = Duration::from_secs(parse(
            &get,
            "SLUICE_RESYNC_SECONDS",
            300u64,
            |v| *v >= 10,
            "a whole number of seconds, at least 10",
        )?);
        let admin_addr = parse(
            &get,
            "SLUICE_ADMIN_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 8080)),
            |_| true,
            "an address like 0.0.0.0:8080",
        )?;
        let share = parse(
            &get,
            "SLUICE_AWS_QUOTA_SHARE",
            1.0f64,
            |v| *v > 0.0 && *v <= 1.0,
            "a fraction above 0 and at most 1 (1/n when n operators share one AWS account)",
        )?;
        let overrides = match get("SLUICE_AWS_QUOTAS") {
            None => Default::default(),
            Some(raw) => QuotaConfig::parse_overrides(&raw).map_err(|e| ConfigError {
                var: "SLUICE_AWS_QUOTAS",
                message: format!(
                    "{e}: expected comma-separated bucket=rate[/burst], e.g. lambda=30,iam=10/20"
                ),
            })?,
        };
        let max_concurrent_reconciles = parse(
            &get,
            "SLUICE_MAX_CONCURRENT_RECONCILES",
            32u16,
            |v| (1..=1024).contains(v),
            "a whole number from 1 to 1024",
        )?;
        let health_interval = parse(
            &get,
            "SLUICE_HEALTH_INTERVAL_SECONDS",
            60u64,
            |v| *v <= 86_400,
            "a whole number of seconds up to 86400, or 0 to turn health polling off",
        )?;
        let health_window = parse(
            &get,
            "SLUICE_HEALTH_WINDOW_SECONDS",
            900u64,
            |v| (60..=86_400).contains(v) && v.is_multiple_of(60),
            "a whole number of minutes in seconds (CloudWatch's periods), from 60 to 86400",
        )?;
        let watch_namespaces: Vec<String> = get("SLUICE_WATCH_NAMESPACES")
            .map(|list| {
                list.split(',')
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = watch_namespaces.iter().find(|n| !is_dns_label(n)) {
            return Err(ConfigError {
                var: "SLUICE_WATCH_NAMESPACES",
                message: format!(
                    "{bad:?} is not a namespace name: use comma-separated names of 1 to 63 \
                     lowercase letters, digits or '-', starting and ending with a letter or digit"
                ),
            });
        }
        let permissions_boundary = get("SLUICE_PERMISSIONS_BOUNDARY")
            .map(|b| b.trim().to_owned())
            .ok_or_else(|| ConfigError {
                var: "SLUICE_PERMISSIONS_BOUNDARY",
                message: "not set: every role Sluice creates carries a permissions boundary, the \
                          managed policy of config/iam/pipeline-boundary.json; create it and set \
                          its ARN, e.g. arn:aws:iam::123456789012:policy/sluice/sluice-pipeline-boundary"
                    .into(),
            })?;
        if !is_policy_arn(&permissions_boundary) {
            return Err(ConfigError {
                var: "SLUICE_PERMISSIONS_BOUNDARY",
                message: format!(
                    "{permissions_boundary:?} is not an IAM managed policy ARN: expected \
                     arn:<partition>:iam::<12-digit account>:policy/<path><name>"
                ),
            });
        }
        let installation_id = get("SLUICE_INSTALLATION_ID")
            .map(|i| i.trim().to_owned())
            .ok_or_else(|| ConfigError {
                var: "SLUICE_INSTALLATION_ID",
                message: "not set: a secret of this installation, at least 16 characters, e.g. \
                          `openssl rand -hex 16`, kept for its lifetime: new buckets' names derive \
                          from it so nobody can make them first in another account"
                    .into(),
            })?;
        if installation_id.len() < 16
            || installation_id.len() > 256
            || !installation_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError {
                var: "SLUICE_INSTALLATION_ID",
                message: format!(
                    "{} characters: use 16 to 256 printable characters without spaces, e.g. \
                     `openssl rand -hex 16`",
                    installation_id.chars().count()
                ),
            });
        }
        Ok(OperatorConfig {
            default_region,
            allowed_regions,
            name_prefix,
            handlers_dir,
            resync,
            permissions_boundary,
            installation_id: Secret(installation_id),
            admin_addr,
            watch_namespaces,
            quotas: QuotaConfig { share, overrides },
            max_concurrent_reconciles,
            health_interval: (health_interval > 0).then(|| Duration::from_secs(health_interval)),
            health_window: Duration::from_secs(health_window),
        })
    }
}

/// `arn:<partition>:iam::<12 digits>:policy/<path><name>`.
fn is_policy_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
    if !partition.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("policy/").is_some_and(|name| {
            !name.is_empty() && !name.ends_with('/')
        }))
}

/// An RFC 1123 label, as Kubernetes namespace names are.
fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    valid: impl Fn(&T) -> bool,
    expected: &str,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<T>() {
            Ok(v) if valid(&v) => Ok(v),
            _ => Err(ConfigError {
                var,
                message: format!("{raw:?} is not valid: expected {expected}"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/sluice/sluice-pipeline-boundary";

    fn config(vars: &[(&str, &str)]) -> Result<OperatorConfig, ConfigError> {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("SLUICE_PERMISSIONS_BOUNDARY".into())
            .or_insert_with(|| BOUNDARY.into());
        map.entry("SLUICE_INSTALLATION_ID".into())
            .or_insert_with(|| "0123456789abcdef0123".into());
        OperatorConfig::from_lookup(|k| map.get(k).cloned(), Some("eu-west-1".into()))
    }

    #[test]
    fn defaults_follow_the_sdk_region() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.default_region, "eu-west-1");
        assert_eq!(c.allowed_regions, vec!["eu-west-1".to_string()]);
        assert_eq!(c.resync, Duration::from_secs(300));
        assert_eq!(c.name_prefix, "sluice");
        assert_eq!(c.health_interval, Some(Duration::from_secs(60)));
        assert_eq!(c.health_window, Duration::from_secs(900));
        assert_eq!(c.quotas, QuotaConfig::default());
        assert_eq!(c.max_concurrent_reconciles, 32);
    }

    #[test]
    fn health_polling_can_be_tuned_or_turned_off() {
        let c = config(&[
            ("SLUICE_HEALTH_INTERVAL_SECONDS", "2"),
            ("SLUICE_HEALTH_WINDOW_SECONDS", "60"),
        ])
        .expect("valid");
        assert_eq!(c.health_interval, Some(Duration::from_secs(2)));
        assert_eq!(c.health_window, Duration::from_secs(60));
        let off = config(&[("SLUICE_HEALTH_INTERVAL_SECONDS", "0")]).expect("valid");
        assert_eq!(off.health_interval, None);
        let err = config(&[("SLUICE_HEALTH_WINDOW_SECONDS", "90")]).expect_err("not minutes");
        assert_eq!(err.var, "SLUICE_HEALTH_WINDOW_SECONDS");
        assert!(err.message.contains("from 60 to 86400"), "{}", err.message);
    }

    #[test]
    fn invalid_values_name_the_variable_and_what_is_valid() {
        let err = config(&[("SLUICE_RESYNC_SECONDS", "soon")]).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_RESYNC_SECONDS");
        assert!(err.message.contains("at least 10"), "{}", err.message);
        let err = config(&[("SLUICE_NAME_PREFIX", "Bad_Prefix")]).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_NAME_PREFIX");
        let err = config(&[("SLUICE_AWS_QUOTA_SHARE", "0")]).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_AWS_QUOTA_SHARE");
        let err = config(&[("SLUICE_AWS_QUOTAS", "lambda=fast")]).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_AWS_QUOTAS");
        assert!(err.message.contains("lambda=30"), "{}", err.message);
        let err = config(&[("SLUICE_MAX_CONCURRENT_RECONCILES", "0")]).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_MAX_CONCURRENT_RECONCILES");
    }

    #[test]
    fn watch_namespaces_parse_as_a_list_of_namespace_names() {
        assert!(config(&[]).expect("valid").watch_namespaces.is_empty());
        let c = config(&[("SLUICE_WATCH_NAMESPACES", "team-a, team-b,")]).expect("valid");
        assert_eq!(c.watch_namespaces, ["team-a", "team-b"]);
        let err = config(&[("SLUICE_WATCH_NAMESPACES", "team-a,Team_B")]).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_WATCH_NAMESPACES");
        assert!(err.message.contains("Team_B"), "{}", err.message);
    }

    #[test]
    fn the_permissions_boundary_is_required_and_must_be_a_policy_arn() {
        assert_eq!(config(&[]).expect("valid").permissions_boundary, BOUNDARY);
        let missing = OperatorConfig::from_lookup(
            |k| (k == "SLUICE_INSTALLATION_ID").then(|| "0123456789abcdef0123".into()),
            Some("eu-west-1".into()),
        )
        .expect_err("no boundary");
        assert_eq!(missing.var, "SLUICE_PERMISSIONS_BOUNDARY");
        assert!(
            missing.message.contains("pipeline-boundary.json"),
            "{}",
            missing.message
        );
        for bad in [
            "sluice-pipeline-boundary",
            "arn:aws:iam::123456789012:role/sluice/x",
            "arn:aws:iam::1234:policy/x",
            "arn:aws:iam::123456789012:policy/",
        ] {
            let err = config(&[("SLUICE_PERMISSIONS_BOUNDARY", bad)]).expect_err(bad);
            assert_eq!(err.var, "SLUICE_PERMISSIONS_BOUNDARY");
        }
        let plain = "arn:aws:iam::123456789012:policy/boundary";
        let c = config(&[("SLUICE_PERMISSIONS_BOUNDARY", plain)]).expect("valid");
        assert_eq!(c.permissions_boundary, plain);
    }

    #[test]
    fn the_installation_id_is_required_and_long_enough_to_be_a_secret() {
        let missing = OperatorConfig::from_lookup(
            |k| (k == "SLUICE_PERMISSIONS_BOUNDARY").then(|| BOUNDARY.into()),
            Some("eu-west-1".into()),
        )
        .expect_err("no installation id");
        assert_eq!(missing.var, "SLUICE_INSTALLATION_ID");
        assert!(
            missing.message.contains("openssl rand"),
            "{}",
            missing.message
        );
        let short = config(&[("SLUICE_INSTALLATION_ID", "abc")]).expect_err("short");
        assert_eq!(short.var, "SLUICE_INSTALLATION_ID");
        assert!(
            !short.message.contains("abc"),
            "a secret is never echoed: {}",
            short.message
        );
        let c = config(&[]).expect("valid");
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"), "{c:?}");
    }

    #[test]
    fn allowed_regions_parse_as_a_list() {
        let c = config(&[("SLUICE_ALLOWED_REGIONS", "us-east-1, eu-west-1")]).expect("valid");
        assert_eq!(
            c.allowed_regions,
            vec!["us-east-1".to_string(), "eu-west-1".to_string()]
        );
    }
}
