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
    /// How often a converged pipeline is re-read from AWS to correct drift
    /// (longer for an account whose reads would not fit, [`crate::pacing`]).
    pub resync: Duration,
    /// The share of each quota bucket's rate drift detection may use
    /// (`SLUICE_RESYNC_READ_SHARE`); the rest is for changes.
    pub resync_read_share: f64,
    /// Whether resyncs read the account's roles in one listing
    /// (`SLUICE_ROLE_LISTING`, [`crate::aws::listing`]); needs
    /// `config/iam/role-listing-policy.json` on the operator's identity.
    pub role_listing: bool,
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
    /// Shards the fleet is partitioned in, by namespace, each held by one
    /// replica through a Lease of its own ([`crate::shards`]); 1: one
    /// leader for everything.
    pub shards: usize,
    /// The account roles the operator may assume for namespaces whose
    /// SluicePolicy maps them to another account ([`crate::accounts`]).
    pub accounts: AccountsConfig,
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
        let resync_read_share = parse(
            &get,
            "SLUICE_RESYNC_READ_SHARE",
            0.5f64,
            |v| *v > 0.0 && *v <= 1.0,
            "a fraction above 0 and at most 1 of each quota bucket's rate that drift detection \
             may use (the rest is left for changes)",
        )?;
        let role_listing = parse(
            &get,
            "SLUICE_ROLE_LISTING",
            false,
            |_| true,
            "true or false (true needs config/iam/role-listing-policy.json on the operator's \
             identity)",
        )?;
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
        let accounts = accounts(&get)?;
        let shards = parse(
            &get,
            "SLUICE_SHARDS",
            1usize,
            |v| (1..=256).contains(v),
            "a whole number from 1 to 256 (more than 1 needs leader election)",
        )?;
        Ok(OperatorConfig {
            default_region,
            allowed_regions,
            name_prefix,
            handlers_dir,
            resync,
            resync_read_share,
            role_listing,
            permissions_boundary,
            installation_id: Secret(installation_id),
            admin_addr,
            watch_namespaces,
            quotas: QuotaConfig { share, overrides },
            max_concurrent_reconciles,
            health_interval: (health_interval > 0).then(|| Duration::from_secs(health_interval)),
            health_window: Duration::from_secs(health_window),
            shards,
            accounts,
        })
    }
}

impl OperatorConfig {
    /// The permissions boundary of the roles made in `account`: the same
    /// managed policy (path and name) in that account, where setting up an
    /// account role puts it (`config/iam/account-role/`). Unchanged for an
    /// empty account (offline planning) or the boundary's own.
    pub fn boundary_in(&self, account: &str) -> String {
        let parts: Vec<&str> = self.permissions_boundary.splitn(6, ':').collect();
        if account.is_empty() || parts.len() != 6 || parts[4] == account {
            return self.permissions_boundary.clone();
        }
        format!(
            "{}:{}:{}:{}:{account}:{}",
            parts[0], parts[1], parts[2], parts[3], parts[5]
        )
    }
}

/// The operator's side of account mapping (environment variables, set by
/// the Helm chart's `aws.*` values; what it allows: [`crate::accounts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountsConfig {
    /// Role ARNs the operator may assume, `*` matching any run of
    /// characters (`arn:aws:iam::*:role/sluice/sluice-operator`). Empty:
    /// none.
    pub roles: Vec<String>,
    /// Refuse namespaces no SluicePolicy maps to a role.
    pub require_role: bool,
    /// How long each session lasts (`DurationSeconds`).
    pub session: Duration,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            roles: Vec::new(),
            require_role: false,
            session: Duration::from_secs(3600),
        }
    }
}

/// `SLUICE_ACCOUNT_ROLES`, `SLUICE_REQUIRE_ACCOUNT_ROLE` and
/// `SLUICE_ACCOUNT_SESSION_SECONDS`.
fn accounts(get: &impl Fn(&str) -> Option<String>) -> Result<AccountsConfig, ConfigError> {
    let roles: Vec<String> = get("SLUICE_ACCOUNT_ROLES")
        .map(|list| {
            list.split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = roles.iter().find(|r| !is_role_pattern(r)) {
        return Err(ConfigError {
            var: "SLUICE_ACCOUNT_ROLES",
            message: format!(
                "{bad:?} is not a role ARN: use comma-separated \
                 arn:<partition>:iam::<12-digit account>:role/<path><name>, where `*` matches any \
                 run of characters (e.g. arn:aws:iam::*:role/sluice/sluice-operator)"
            ),
        });
    }
    let require_role = parse(
        get,
        "SLUICE_REQUIRE_ACCOUNT_ROLE",
        false,
        |_| true,
        "true or false",
    )?;
    if require_role && roles.is_empty() {
        return Err(ConfigError {
            var: "SLUICE_REQUIRE_ACCOUNT_ROLE",
            message: "true, but SLUICE_ACCOUNT_ROLES lists no role: no pipeline could be placed \
                      anywhere; list the account roles namespaces map to"
                .into(),
        });
    }
    let session = parse(
        get,
        "SLUICE_ACCOUNT_SESSION_SECONDS",
        3600u64,
        |v| crate::aws::session::SESSION_SECONDS.contains(v),
        "a whole number of seconds from 900 to 43200 (at most the roles' MaxSessionDuration, \
         3600 unless raised; 3600 when the operator itself runs as an assumed role)",
    )?;
    Ok(AccountsConfig {
        roles,
        require_role,
        session: Duration::from_secs(session),
    })
}

/// An IAM role ARN, `*` standing for any run of characters.
fn is_role_pattern(pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && (parts[1] == "*" || parts[1].starts_with("aws"))
        && parts[2] == "iam"
        && parts[3].is_empty()
        && (parts[4] == "*"
            || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())))
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len()
}

/// Where the in-cluster service account's namespace is mounted.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Leader election on a `coordination.k8s.io/v1` Lease ([`crate::leader`]):
/// which Lease, who this replica is, and the timing. The timing rule, which
/// [`LeaderElection::from_lookup`] enforces, is explained in
/// [`crate::leader`]: `renew deadline ≥ 2 × retry period`, and `lease
/// duration − renew deadline ≥ 2 s` and `≥ lease duration / 10`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's name (`SLUICE_LEASE_NAME`).
    pub lease_name: String,
    /// The Lease's namespace (`SLUICE_LEASE_NAMESPACE`, else `POD_NAMESPACE`,
    /// else the service account's namespace).
    pub lease_namespace: String,
    /// This replica's name in the Lease's `holderIdentity` (`POD_NAME`, else
    /// the host's name and a random suffix).
    pub identity: String,
    /// How long a Lease not renewed stays held, as the standbys judge it
    /// from when they saw it change.
    pub lease_duration: std::time::Duration,
    /// How long after its last successful renewal started the leader stops
    /// writing and stops its controller, unless it renewed since.
    pub renew_deadline: std::time::Duration,
    /// How often the leader renews and the standbys look at the Lease.
    pub retry_period: std::time::Duration,
}

impl LeaderElection {
    /// Reads leader election's configuration from the process environment
    /// and, for the namespace, the in-cluster service account's. `None`:
    /// `SLUICE_LEADER_ELECTION=false`.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let in_cluster = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE).ok();
        Self::from_lookup(|k| std::env::var(k).ok(), in_cluster, host_identity)
    }

    /// Reads the configuration through `get`; `in_cluster_namespace` is the
    /// content of [`SERVICE_ACCOUNT_NAMESPACE_FILE`], if there is one, and
    /// `default_identity` names this replica when `POD_NAME` is not set.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        in_cluster_namespace: Option<String>,
        default_identity: impl FnOnce() -> String,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        match get("SLUICE_LEADER_ELECTION") {
            None => {}
            Some(v) if v.eq_ignore_ascii_case("true") => {}
            Some(v) if v.eq_ignore_ascii_case("false") => return Ok(None),
            Some(v) => {
                return Err(ConfigError {
                    var: "SLUICE_LEADER_ELECTION",
                    message: format!(
                        "{v:?} is not valid: expected true (the default: replicas elect a \
                         leader on a Lease) or false (one process, which always leads)"
                    ),
                });
            }
        }
        let lease_name = get("SLUICE_LEASE_NAME").unwrap_or_else(|| "sluice-operator".into());
        if !is_dns_subdomain(&lease_name) {
            return Err(ConfigError {
                var: "SLUICE_LEASE_NAME",
                message: format!(
                    "{lease_name:?} is not a valid Lease name: use up to 253 lowercase letters, \
                     digits, '-' or '.', starting and ending with a letter or digit"
                ),
            });
        }
        let lease_namespace = match (get("SLUICE_LEASE_NAMESPACE"), get("POD_NAMESPACE")) {
            (Some(ns), _) => ("SLUICE_LEASE_NAMESPACE", ns),
            (None, Some(ns)) => ("POD_NAMESPACE", ns),
            (None, None) => match in_cluster_namespace
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
            {
                Some(ns) => ("SLUICE_LEASE_NAMESPACE", ns),
                None => {
                    return Err(ConfigError {
                        var: "SLUICE_LEASE_NAMESPACE",
                        message: format!(
                            "leader election is on (SLUICE_LEADER_ELECTION) and there is no \
                             namespace for its Lease: neither SLUICE_LEASE_NAMESPACE nor \
                             POD_NAMESPACE is set and {SERVICE_ACCOUNT_NAMESPACE_FILE} does not \
                             exist (not running in a pod); set SLUICE_LEASE_NAMESPACE, or \
                             SLUICE_LEADER_ELECTION=false to run one process that always leads"
                        ),
                    });
                }
            },
        };
        let (var, lease_namespace) = lease_namespace;
        if !is_dns_label(&lease_namespace) {
            return Err(ConfigError {
                var,
                message: format!(
                    "{lease_namespace:?} is not a namespace name: use 1 to 63 lowercase \
                     letters, digits or '-', starting and ending with a letter or digit"
                ),
            });
        }
        let identity = get("POD_NAME").unwrap_or_else(default_identity);
        let seconds = |var, default| {
            parse(
                &get,
                var,
                default,
                |v: &u64| (1..=3600).contains(v),
                "a whole number of seconds from 1 to 3600",
            )
        };
        let lease = seconds("SLUICE_LEASE_DURATION_SECONDS", 15)?;
        let renew = seconds("SLUICE_LEASE_RENEW_DEADLINE_SECONDS", 10)?;
        let retry = seconds("SLUICE_LEASE_RETRY_PERIOD_SECONDS", 2)?;
        // The margin covers clock-rate differences between replicas over a
        // lease duration and an AWS write in flight when the fence closes.
        let margin = lease.saturating_sub(renew);
        if renew >= lease || margin < 2 || margin * 10 < lease {
            return Err(ConfigError {
                var: "SLUICE_LEASE_RENEW_DEADLINE_SECONDS",
                message: format!(
                    "{renew} is not valid with SLUICE_LEASE_DURATION_SECONDS={lease}: the renew \
                     deadline must be shorter than the lease duration by at least 2 seconds and \
                     by at least a tenth of the lease duration (the margin for clock-rate \
                     differences and AWS calls in flight when a leader stops), so at most {}",
                    lease.saturating_sub(2.max(lease.div_ceil(10)))
                ),
            });
        }
        if retry * 2 > renew {
            return Err(ConfigError {
                var: "SLUICE_LEASE_RETRY_PERIOD_SECONDS",
                message: format!(
                    "{retry} is not valid with SLUICE_LEASE_RENEW_DEADLINE_SECONDS={renew}: the \
                     retry period must be at most half the renew deadline, so that a failed \
                     renewal is tried again before the deadline, so at most {}",
                    renew / 2
                ),
            });
        }
        Ok(Some(LeaderElection {
            lease_name,
            lease_namespace,
            identity,
            lease_duration: std::time::Duration::from_secs(lease),
            renew_deadline: std::time::Duration::from_secs(renew),
            retry_period: std::time::Duration::from_secs(retry),
        }))
    }
}

/// This host's name and a random suffix: a replica's identity outside a pod
/// (where `POD_NAME` is not set), unique even for two processes on a host.
fn host_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice-operator".into());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// An RFC 1123 subdomain, as most Kubernetes object names are.
fn is_dns_subdomain(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
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
    fn account_roles_parse_as_role_arn_patterns() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.accounts, AccountsConfig::default());
        assert!(
            !c.accounts
                .allows("arn:aws:iam::111111111111:role/operators/sluice-operator")
        );
        let c = config(&[
            (
                "SLUICE_ACCOUNT_ROLES",
                "arn:aws:iam::*:role/operators/sluice-operator, arn:aws:iam::222222222222:role/x",
            ),
            ("SLUICE_REQUIRE_ACCOUNT_ROLE", "true"),
            ("SLUICE_ACCOUNT_SESSION_SECONDS", "900"),
        ])
        .expect("valid");
        assert_eq!(c.accounts.roles.len(), 2);
        assert!(c.accounts.require_role);
        assert_eq!(c.accounts.session, Duration::from_secs(900));
        assert!(
            c.accounts
                .allows("arn:aws:iam::111111111111:role/operators/sluice-operator")
        );
        for bad in [
            "sluice-operator",
            "arn:aws:iam::123:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
        ] {
            let err = config(&[("SLUICE_ACCOUNT_ROLES", bad)]).expect_err(bad);
            assert_eq!(err.var, "SLUICE_ACCOUNT_ROLES");
            assert!(err.message.contains(bad), "{}", err.message);
        }
        let err = config(&[("SLUICE_REQUIRE_ACCOUNT_ROLE", "true")]).expect_err("no roles");
        assert_eq!(err.var, "SLUICE_REQUIRE_ACCOUNT_ROLE");
        for bad in ["899", "43201", "an hour"] {
            let err = config(&[("SLUICE_ACCOUNT_SESSION_SECONDS", bad)]).expect_err(bad);
            assert_eq!(err.var, "SLUICE_ACCOUNT_SESSION_SECONDS");
        }
    }

    #[test]
    fn the_resync_read_share_is_a_fraction() {
        assert_eq!(config(&[]).expect("valid").resync_read_share, 0.5);
        let c = config(&[("SLUICE_RESYNC_READ_SHARE", "0.25")]).expect("valid");
        assert_eq!(c.resync_read_share, 0.25);
        for bad in ["0", "1.5", "half"] {
            let err = config(&[("SLUICE_RESYNC_READ_SHARE", bad)]).expect_err(bad);
            assert_eq!(err.var, "SLUICE_RESYNC_READ_SHARE");
        }
    }

    #[test]
    fn the_boundary_of_another_account_is_the_same_policy_there() {
        let c = config(&[]).expect("valid");
        assert_eq!(
            c.boundary_in("111111111111"),
            "arn:aws:iam::111111111111:policy/sluice/sluice-pipeline-boundary"
        );
        assert_eq!(c.boundary_in("123456789012"), BOUNDARY);
        assert_eq!(c.boundary_in(""), BOUNDARY);
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

    fn leader(
        vars: &[(&str, &str)],
        in_cluster: Option<&str>,
    ) -> Result<Option<LeaderElection>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LeaderElection::from_lookup(
            |k| map.get(k).cloned(),
            in_cluster.map(str::to_owned),
            || "host-0badcafe".into(),
        )
    }

    #[test]
    fn leader_election_is_on_by_default_with_client_go_timing() {
        let l = leader(
            &[("POD_NAMESPACE", "sluice-system"), ("POD_NAME", "op-1")],
            None,
        )
        .expect("valid")
        .expect("on");
        assert_eq!(
            l,
            LeaderElection {
                lease_name: "sluice-operator".into(),
                lease_namespace: "sluice-system".into(),
                identity: "op-1".into(),
                lease_duration: Duration::from_secs(15),
                renew_deadline: Duration::from_secs(10),
                retry_period: Duration::from_secs(2),
            }
        );
        assert_eq!(
            leader(&[("SLUICE_LEADER_ELECTION", "false")], None).expect("valid"),
            None,
            "off needs no namespace"
        );
        let err = leader(&[("SLUICE_LEADER_ELECTION", "yes")], None).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_LEADER_ELECTION");
        assert!(err.message.contains("true") && err.message.contains("false"));
    }

    #[test]
    fn the_lease_namespace_comes_from_the_variable_the_pod_or_the_service_account() {
        let ns = |vars: &[(&str, &str)], file| {
            leader(vars, file)
                .expect("valid")
                .expect("on")
                .lease_namespace
        };
        assert_eq!(ns(&[], Some("from-file\n")), "from-file");
        assert_eq!(ns(&[("POD_NAMESPACE", "pod")], Some("file")), "pod");
        assert_eq!(
            ns(
                &[("SLUICE_LEASE_NAMESPACE", "mine"), ("POD_NAMESPACE", "pod")],
                Some("file")
            ),
            "mine"
        );
        let err = leader(&[], None).expect_err("nowhere to put the Lease");
        assert_eq!(err.var, "SLUICE_LEASE_NAMESPACE");
        assert!(
            err.message.contains("SLUICE_LEADER_ELECTION=false")
                && err.message.contains("POD_NAMESPACE"),
            "{}",
            err.message
        );
        let err = leader(&[("POD_NAMESPACE", "Bad_NS")], None).expect_err("invalid");
        assert_eq!(err.var, "POD_NAMESPACE");
        let err = leader(&[("SLUICE_LEASE_NAME", "-x")], Some("ns")).expect_err("invalid");
        assert_eq!(err.var, "SLUICE_LEASE_NAME");
    }

    #[test]
    fn without_a_pod_name_the_identity_is_the_hosts_with_a_suffix() {
        let l = leader(&[], Some("ns")).expect("valid").expect("on");
        assert_eq!(l.identity, "host-0badcafe");
        assert!(super::host_identity().len() > 9);
        assert_ne!(super::host_identity(), super::host_identity());
    }

    #[test]
    fn lease_timing_leaves_a_margin_and_a_second_try() {
        let timing = |lease: &str, renew: &str, retry: &str| {
            leader(
                &[
                    ("SLUICE_LEASE_DURATION_SECONDS", lease),
                    ("SLUICE_LEASE_RENEW_DEADLINE_SECONDS", renew),
                    ("SLUICE_LEASE_RETRY_PERIOD_SECONDS", retry),
                ],
                Some("ns"),
            )
        };
        // Quick settings for tests, and slow ones.
        assert!(timing("4", "2", "1").is_ok());
        assert!(timing("60", "40", "5").is_ok());
        assert!(timing("100", "90", "5").is_ok());
        for (lease, renew, retry, var) in [
            ("15", "15", "2", "SLUICE_LEASE_RENEW_DEADLINE_SECONDS"),
            ("15", "20", "2", "SLUICE_LEASE_RENEW_DEADLINE_SECONDS"),
            ("15", "14", "2", "SLUICE_LEASE_RENEW_DEADLINE_SECONDS"),
            ("100", "91", "5", "SLUICE_LEASE_RENEW_DEADLINE_SECONDS"),
            ("15", "10", "10", "SLUICE_LEASE_RETRY_PERIOD_SECONDS"),
            ("15", "10", "6", "SLUICE_LEASE_RETRY_PERIOD_SECONDS"),
            ("15", "10", "0", "SLUICE_LEASE_RETRY_PERIOD_SECONDS"),
            ("soon", "10", "2", "SLUICE_LEASE_DURATION_SECONDS"),
        ] {
            let err = timing(lease, renew, retry).expect_err(lease);
            assert_eq!(err.var, var, "{lease} {renew} {retry}: {}", err.message);
        }
        let err = timing("15", "14", "2").expect_err("no margin");
        assert!(err.message.contains("at most 13"), "{}", err.message);
        let err = timing("15", "10", "6").expect_err("no second try");
        assert!(err.message.contains("at most 5"), "{}", err.message);
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
