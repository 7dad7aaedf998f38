//! The platform's guardrails applied to a pipeline: which `SluicePolicy`
//! objects select its namespace, what they combine to, and what of a spec
//! they refuse. Pure; the controller feeds it the policies and the
//! namespace it watches, and a refusal stalls the pipeline with reason
//! `PolicyViolation` before any AWS call. The static rules are also
//! refused at admission by the ValidatingAdmissionPolicy of
//! `charts/sluice/templates/admission/` (`e2e/tests/policy.rs` holds the two to the
//! same answers).
//!
//! Several policies selecting one namespace combine to the most
//! restrictive: the smallest of each maximum, a feature only where every
//! one allows it, the regions and keys every one lists. A namespace no
//! policy selects gets the built-in default ([`SluicePolicySpec::default`],
//! the same values as `charts/sluice/files/default-policy.yaml`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::{
    asl,
    crd::{BillingMode, DataPipelineSpec, SluicePolicySpec, StreamMode},
    plan::{Plan, graph::DEFAULT_BUS},
    schedule_expression,
};

/// How a message names the built-in default, when no policy selects the
/// namespace.
pub const BUILT_IN: &str = "the built-in default policy";

/// Whether `selector` selects a namespace with `labels`. No selector, or an
/// empty one, selects every namespace. An operator other than `In`,
/// `NotIn`, `Exists` and `DoesNotExist` (the CRD refuses them) selects, so
/// a mistake never lifts a restriction.
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let listed = || value.is_some_and(|v| e.values.iter().flatten().any(|x| x == v));
        match e.operator.as_str() {
            "In" => listed(),
            "NotIn" => !listed(),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => true,
        }
    });
    by_labels && by_expressions
}

/// What the policies selecting one namespace combine to, with the name of
/// the policy each value comes from (for messages).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effective {
    /// The combined values (`namespace_selector` unused).
    pub values: SluicePolicySpec,
    /// The policies that selected the namespace, by name; empty when the
    /// built-in default applies.
    pub names: Vec<String>,
    by: BTreeMap<&'static str, String>,
    /// Set when two selecting policies name different account roles: the
    /// namespace's pipelines are refused until they agree.
    pub account_conflict: Option<String>,
}

impl Effective {
    /// Combines the policies (name, spec) that select a namespace with
    /// `labels`; the built-in default when none does.
    pub fn for_namespace<'a>(
        policies: impl IntoIterator<Item = (&'a str, &'a SluicePolicySpec)>,
        labels: &BTreeMap<String, String>,
    ) -> Self {
        let mut selecting: Vec<(&str, &SluicePolicySpec)> = policies
            .into_iter()
            .filter(|(_, p)| selects(p.namespace_selector.as_ref(), labels))
            .collect();
        selecting.sort_by_key(|(name, _)| *name);
        Self::combine(&selecting)
    }

    /// The most restrictive combination of `policies` (already selected).
    pub fn combine(policies: &[(&str, &SluicePolicySpec)]) -> Self {
        let mut out = Effective::default();
        let Some(((first, base), rest)) = policies.split_first() else {
            return out;
        };
        out.values = (*base).clone();
        out.values.namespace_selector = None;
        out.names = policies.iter().map(|(n, _)| (*n).to_owned()).collect();
        for field in FIELDS {
            out.by.insert(field, (*first).to_owned());
        }
        if base.account.is_some() {
            out.by.insert("account", (*first).to_owned());
        }
        for (name, p) in rest {
            macro_rules! tighten {
                ($field:expr, $tighter:expr) => {
                    if $tighter {
                        out.by.insert($field, (*name).to_owned());
                    }
                };
            }
            macro_rules! min {
                ($($f:ident => $path:literal),* $(,)?) => {$(
                    let tighter = p.limits.$f < out.values.limits.$f;
                    if tighter { out.values.limits.$f = p.limits.$f; }
                    tighten!($path, tighter);
                )*};
            }
            min!(
                pipelines_per_namespace => "limits.pipelinesPerNamespace",
                functions_per_pipeline => "limits.functionsPerPipeline",
                roles_per_pipeline => "limits.rolesPerPipeline",
                memory_mib => "limits.memoryMiB",
                timeout_seconds => "limits.timeoutSeconds",
                reserved_concurrency_per_namespace => "limits.reservedConcurrencyPerNamespace",
                streams_per_pipeline => "limits.streamsPerPipeline",
                shards_per_stream => "limits.shardsPerStream",
                capacity_units => "limits.capacityUnits",
                stream_retention_hours => "limits.streamRetentionHours",
                queue_retention_seconds => "limits.queueRetentionSeconds",
                schedule_interval_minutes => "limits.scheduleIntervalMinutes",
            );
            macro_rules! and {
                ($($f:ident => $path:literal),* $(,)?) => {$(
                    let tighter = out.values.allow.$f && !p.allow.$f;
                    if tighter { out.values.allow.$f = false; }
                    tighten!($path, tighter);
                )*};
            }
            and!(
                default_event_bus => "allow.defaultEventBus",
                provisioned_streams => "allow.provisionedStreams",
                provisioned_tables => "allow.provisionedTables",
                reserved_concurrency => "allow.reservedConcurrency",
                workflow_loops => "allow.workflowLoops",
                adoption_from_earlier_namespace => "allow.adoptionFromEarlierNamespace",
            );
            // An account is an identity, not a limit: policies that name
            // one must name the same.
            match (&out.values.account, &p.account) {
                (_, None) => {}
                (None, Some(role)) => {
                    out.values.account = Some(role.clone());
                    out.by.insert("account", (*name).to_owned());
                }
                (Some(mine), Some(theirs)) if mine != theirs && out.account_conflict.is_none() => {
                    out.account_conflict = Some(format!(
                        "SluicePolicy {:?} and SluicePolicy {name:?} both select this \
                             namespace and name different AWS account roles in spec.account \
                             ({} and {}); the platform team must make them agree (or select \
                             the namespace with one of them only)",
                        out.by.get("account").map_or("", String::as_str),
                        mine.role_arn,
                        theirs.role_arn
                    ));
                }
                _ => {}
            }
            // Lists: what every policy lists (an empty region list means
            // "the operator's", so it narrows nothing).
            if !p.regions.is_empty() {
                if out.values.regions.is_empty() {
                    out.values.regions = p.regions.clone();
                    out.by.insert("regions", (*name).to_owned());
                } else {
                    let before = out.values.regions.len();
                    out.values.regions.retain(|r| p.regions.contains(r));
                    tighten!("regions", out.values.regions.len() < before);
                }
            }
            let before = out.values.kms_keys.len();
            out.values.kms_keys.retain(|k| p.kms_keys.contains(k));
            tighten!("kmsKeys", out.values.kms_keys.len() < before);
            let before = out.values.code_buckets.len();
            out.values
                .code_buckets
                .retain(|b| p.code_buckets.contains(b));
            tighten!("codeBuckets", out.values.code_buckets.len() < before);
            macro_rules! narrow {
                ($($f:ident => $path:literal),* $(,)?) => {$(
                    let before = out.values.$f.len();
                    out.values.$f.retain(|x| p.$f.contains(x));
                    tighten!($path, out.values.$f.len() < before);
                )*};
            }
            narrow!(
                layers => "layers",
                subnets => "subnets",
                security_groups => "securityGroups",
            );
            let before = out.values.image_repositories.len();
            out.values
                .image_repositories
                .retain(|r| p.image_repositories.contains(r));
            tighten!(
                "imageRepositories",
                out.values.image_repositories.len() < before
            );
        }
        out
    }

    /// `SluicePolicy "<name>"` for the policy that set `field`, or the
    /// built-in default.
    pub fn by(&self, field: &str) -> String {
        match self.by.get(field) {
            Some(name) => format!("SluicePolicy {name:?}"),
            None => BUILT_IN.to_owned(),
        }
    }
}

/// Every field a policy sets, as written in its spec.
const FIELDS: [&str; 25] = [
    "regions",
    "kmsKeys",
    "codeBuckets",
    "imageRepositories",
    "layers",
    "subnets",
    "securityGroups",
    "allow.defaultEventBus",
    "allow.provisionedStreams",
    "allow.provisionedTables",
    "allow.reservedConcurrency",
    "allow.workflowLoops",
    "allow.adoptionFromEarlierNamespace",
    "limits.pipelinesPerNamespace",
    "limits.functionsPerPipeline",
    "limits.rolesPerPipeline",
    "limits.memoryMiB",
    "limits.timeoutSeconds",
    "limits.reservedConcurrencyPerNamespace",
    "limits.streamsPerPipeline",
    "limits.shardsPerStream",
    "limits.capacityUnits",
    "limits.streamRetentionHours",
    "limits.queueRetentionSeconds",
    "limits.scheduleIntervalMinutes",
];

/// A team's own code comes only from the buckets and repositories the
/// policy lists: the operator reads the object (and Lambda copies it) with
/// the operator's credentials, so an unlisted bucket would let a tenant run
/// code the platform never allowed, or read another tenant's.
fn own_code(spec: &DataPipelineSpec, effective: &Effective) -> Vec<String> {
    let v = &effective.values;
    let listed = |list: &[String]| {
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(", ")
        }
    };
    let mut problems = Vec::new();
    for (i, f) in spec.functions.iter().enumerate() {
        for (k, layer) in f.layers.iter().enumerate() {
            let unversioned = layer.rsplit_once(':').map_or(layer.as_str(), |(l, _)| l);
            if !v.layers.iter().any(|l| l == unversioned) {
                problems.push(format!(
                    "spec.functions[{i}].layers[{k}]: {unversioned:?} is not a layer {} lets this \
                     namespace use (layers: {}); ask the platform team to list it",
                    effective.by("layers"),
                    listed(&v.layers)
                ));
            }
        }
        if let Some(vpc) = &f.vpc {
            for (field, ids, allowed, by) in [
                ("subnetIds", &vpc.subnet_ids, &v.subnets, "subnets"),
                (
                    "securityGroupIds",
                    &vpc.security_group_ids,
                    &v.security_groups,
                    "securityGroups",
                ),
            ] {
                for (k, id) in ids.iter().enumerate() {
                    if !allowed.contains(id) {
                        problems.push(format!(
                            "spec.functions[{i}].vpc.{field}[{k}]: {id:?} is not one {} lets this \
                             namespace's functions use ({by}: {}); ask the platform team to list it",
                            effective.by(by),
                            listed(allowed)
                        ));
                    }
                }
            }
        }
        let Some(code) = &f.code else { continue };
        if let Some(s3) = &code.s3
            && !v.code_buckets.contains(&s3.bucket)
        {
            problems.push(format!(
                "spec.functions[{i}].code.s3.bucket: {:?} is not a bucket {} lets this namespace \
                 take code from (codeBuckets: {}); ask the platform team to list it",
                s3.bucket,
                effective.by("codeBuckets"),
                listed(&v.code_buckets)
            ));
        }
        if let Some(image) = &code.image {
            let repository = image.uri.split('@').next().unwrap_or_default();
            if !v.image_repositories.iter().any(|r| r == repository) {
                problems.push(format!(
                    "spec.functions[{i}].code.image.uri: repository {repository:?} is not one {} \
                     lets this namespace run images from (imageRepositories: {}); ask the \
                     platform team to list it",
                    effective.by("imageRepositories"),
                    listed(&v.image_repositories)
                ));
            }
        }
    }
    problems
}

/// The pipelines of one namespace, as far as its namespace-wide limits
/// count them: oldest first (creation time, then name), those being
/// deleted left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Neighbours {
    /// (UID, reserved concurrency of all its functions), oldest first.
    pub pipelines: Vec<(String, u64)>,
}

/// Everything `effective` refuses of a pipeline: its spec, its plan (the
/// roles it makes), its region (`spec.region` or the operator's default)
/// and its place among its namespace's pipelines. One message per problem,
/// naming the field, the value, the limit and the policy that sets it.
pub fn check(
    spec: &DataPipelineSpec,
    plan: &Plan,
    region: &str,
    uid: &str,
    neighbours: &Neighbours,
    effective: &Effective,
) -> Vec<String> {
    let v = &effective.values;
    let mut problems = Vec::new();
    // Namespace-wide: this pipeline's place among its neighbours.
    if let Some(position) = neighbours.pipelines.iter().position(|(u, _)| u == uid) {
        problems.extend(over(
            effective,
            "metadata.namespace".into(),
            &format!(" pipelines (this one is number {} by age)", position + 1),
            position as u64 + 1,
            v.limits.pipelines_per_namespace,
            "limits.pipelinesPerNamespace",
        ));
        let reserved: u64 = neighbours.pipelines[..=position]
            .iter()
            .map(|(_, r)| r)
            .sum();
        let own: u64 = neighbours.pipelines[position].1;
        if own > 0 && v.allow.reserved_concurrency {
            problems.extend(over(effective,
                "spec.functions[].reservedConcurrency".into(),
                " reserved concurrency in this namespace with this pipeline's (oldest pipelines first)",
                reserved,
                v.limits.reserved_concurrency_per_namespace,
                "limits.reservedConcurrencyPerNamespace",
            ));
        }
    }

    problems.extend(over(
        effective,
        "spec.functions".into(),
        " functions",
        spec.functions.len() as u64,
        v.limits.functions_per_pipeline,
        "limits.functionsPerPipeline",
    ));
    problems.extend(over(
        effective,
        "spec".into(),
        " IAM roles (one per function, per workflow, per workflow events start and per schedule)",
        plan.roles.len() as u64,
        v.limits.roles_per_pipeline,
        "limits.rolesPerPipeline",
    ));
    for (i, f) in spec.functions.iter().enumerate() {
        let at = format!("spec.functions[{i}]");
        problems.extend(over(
            effective,
            format!("{at}.memoryMiB"),
            " MiB",
            f.memory_mib.max(0) as u64,
            v.limits.memory_mib,
            "limits.memoryMiB",
        ));
        problems.extend(over(
            effective,
            format!("{at}.timeoutSeconds"),
            " s",
            f.timeout_seconds.max(0) as u64,
            v.limits.timeout_seconds,
            "limits.timeoutSeconds",
        ));
    }
    problems.extend(over(
        effective,
        "spec.streams".into(),
        " streams",
        spec.streams.len() as u64,
        v.limits.streams_per_pipeline,
        "limits.streamsPerPipeline",
    ));
    for (i, s) in spec.streams.iter().enumerate() {
        let at = format!("spec.streams[{i}]");
        if s.mode == StreamMode::Provisioned {
            if v.allow.provisioned_streams {
                problems.extend(over(
                    effective,
                    format!("{at}.shards"),
                    " shards",
                    s.shards.unwrap_or(0).max(0) as u64,
                    v.limits.shards_per_stream,
                    "limits.shardsPerStream",
                ));
            } else {
                problems.push(disallowed(
                    effective,
                    &format!("{at}.mode"),
                    "Provisioned streams (billed per shard-hour, used or not)",
                    "allow.provisionedStreams",
                    "use mode: OnDemand",
                ));
            }
        }
        problems.extend(over(
            effective,
            format!("{at}.retentionHours"),
            " hours",
            s.retention_hours.max(0) as u64,
            v.limits.stream_retention_hours,
            "limits.streamRetentionHours",
        ));
    }
    for (i, t) in spec.tables.iter().enumerate() {
        let at = format!("spec.tables[{i}]");
        if t.billing_mode == BillingMode::Provisioned {
            if !v.allow.provisioned_tables {
                problems.push(disallowed(
                    effective,
                    &format!("{at}.billingMode"),
                    "Provisioned tables (billed per hour, used or not)",
                    "allow.provisionedTables",
                    "use billingMode: PayPerRequest",
                ));
            } else if let Some(c) = &t.capacity {
                for (which, units) in [("read", c.read), ("write", c.write)] {
                    problems.extend(over(
                        effective,
                        format!("{at}.capacity.{which}"),
                        " capacity units",
                        units.max(0) as u64,
                        v.limits.capacity_units,
                        "limits.capacityUnits",
                    ));
                }
            }
        }
    }
    for (i, q) in spec.queues.iter().enumerate() {
        problems.extend(over(
            effective,
            format!("spec.queues[{i}].retentionSeconds"),
            " s",
            q.retention_seconds.max(0) as u64,
            v.limits.queue_retention_seconds,
            "limits.queueRetentionSeconds",
        ));
    }
    for (i, f) in spec.functions.iter().enumerate() {
        if f.reserved_concurrency.is_some() && !v.allow.reserved_concurrency {
            problems.push(disallowed(
                effective,
                &format!("spec.functions[{i}].reservedConcurrency"),
                "reserved concurrency (it takes from the concurrency every function of the \
                 account shares)",
                "allow.reservedConcurrency",
                "leave reservedConcurrency out",
            ));
        }
    }
    for (i, s) in spec.schedules.iter().enumerate() {
        if let Some(minutes) = schedule_expression::shortest_interval_minutes(&s.expression)
            && i64::from(minutes) < i64::from(v.limits.schedule_interval_minutes)
        {
            problems.push(format!(
                "spec.schedules[{i}].expression: {:?} runs as often as every {minutes} minutes; \
                 {} allows this namespace at most every {} (limits.scheduleIntervalMinutes)",
                s.expression,
                effective.by("limits.scheduleIntervalMinutes"),
                v.limits.schedule_interval_minutes
            ));
        }
    }
    for (i, w) in spec.workflows.iter().enumerate() {
        if !v.allow.workflow_loops
            && let Some(cycle) = asl::find_loop(&w.definition)
        {
            problems.push(disallowed(
                effective,
                &format!("spec.workflows[{i}].definition"),
                &format!("workflows whose states loop ({cycle}), which can run without end"),
                "allow.workflowLoops",
                "bound it with a Retry (MaxAttempts) or a Map over the items instead",
            ));
        }
    }
    if !v.allow.default_event_bus {
        for (i, r) in spec.rules.iter().enumerate() {
            if r.event_bus.is_none() {
                problems.push(disallowed(
                    effective,
                    &format!("spec.rules[{i}].eventBus"),
                    "rules on the account's default event bus (it carries every team's events)",
                    "allow.defaultEventBus",
                    "declare a bus in spec.eventBuses and name it here",
                ));
            }
        }
        for (i, f) in spec.functions.iter().enumerate() {
            for (j, u) in f.uses.iter().enumerate() {
                if u.event_bus.as_deref() == Some(DEFAULT_BUS) {
                    problems.push(disallowed(
                        effective,
                        &format!("spec.functions[{i}].uses[{j}].eventBus"),
                        "putting events on the account's default event bus",
                        "allow.defaultEventBus",
                        "declare a bus in spec.eventBuses and name it here",
                    ));
                }
            }
        }
    }
    if !v.regions.is_empty() && !v.regions.iter().any(|r| r == region) {
        problems.push(format!(
            "spec.region: {region:?} is not a region {} allows this namespace; allowed: {}",
            effective.by("regions"),
            v.regions.join(", ")
        ));
    }
    problems.extend(own_code(spec, effective));
    let keys: BTreeSet<&str> = v.kms_keys.iter().map(String::as_str).collect();
    let encrypted =
        spec.queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| Some((format!("spec.queues[{i}]"), q.encryption.as_ref()?)))
            .chain(
                spec.streams.iter().enumerate().filter_map(|(i, s)| {
                    Some((format!("spec.streams[{i}]"), s.encryption.as_ref()?))
                }),
            )
            .chain(
                spec.tables.iter().enumerate().filter_map(|(i, t)| {
                    Some((format!("spec.tables[{i}]"), t.encryption.as_ref()?))
                }),
            );
    for (at, e) in encrypted {
        if !keys.contains(e.kms_key_arn.as_str()) {
            problems.push(format!(
                "{at}.encryption.kmsKeyArn: {:?} is not a key {} lets this namespace use \
                 (kmsKeys: {}); leave encryption out for AWS-managed encryption, or ask the \
                 platform team to list the key",
                e.kms_key_arn,
                effective.by("kmsKeys"),
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.iter().copied().collect::<Vec<_>>().join(", ")
                }
            ));
        }
    }
    problems
}

/// The refusal of `value` above `limit`, if it is.
fn over(
    effective: &Effective,
    at: String,
    what: &str,
    value: u64,
    limit: i32,
    field: &str,
) -> Option<String> {
    (value > u64::try_from(limit).unwrap_or(0)).then(|| {
        format!(
            "{at}: {value}{what} is more than {} allows this namespace ({field}: {limit})",
            effective.by(field)
        )
    })
}

fn disallowed(effective: &Effective, at: &str, what: &str, field: &str, instead: &str) -> String {
    format!(
        "{at}: {} does not allow this namespace {what} ({field}: false); {instead}",
        effective.by(field)
    )
}

/// A pipeline's reserved concurrency, all functions together.
pub fn reserved_concurrency(spec: &DataPipelineSpec) -> u64 {
    spec.functions
        .iter()
        .filter_map(|f| f.reserved_concurrency)
        .map(|r| r.max(0) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::plan::tests::{plan_of, sample};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn policy(yaml: &str) -> SluicePolicySpec {
        serde_yaml::from_str(yaml).expect("policy")
    }

    fn problems(spec: &DataPipelineSpec, effective: &Effective) -> Vec<String> {
        check(
            spec,
            &plan_of(spec),
            "us-east-1",
            "uid",
            &Neighbours::default(),
            effective,
        )
    }

    #[test]
    fn every_sample_passes_the_built_in_default() {
        for file in crate::plan::tests::SAMPLES {
            let spec = sample(file);
            let found = problems(&spec, &Effective::default());
            if file == "own-code.yaml" {
                // A team's own code only from buckets the platform lists.
                assert_eq!(found.len(), 2, "{found:?}");
                assert!(
                    found
                        .iter()
                        .all(|p| p.contains(".code.s3.bucket") && p.contains("codeBuckets: none")),
                    "{found:?}"
                );
                let listing = SluicePolicySpec {
                    code_buckets: vec!["team-code".into()],
                    ..Default::default()
                };
                let listed = Effective::combine(&[("teams", &listing)]);
                assert_eq!(problems(&spec, &listed), Vec::<String>::new());
                continue;
            }
            assert_eq!(found, Vec::<String>::new(), "{file}");
        }
    }

    #[test]
    fn layers_subnets_and_security_groups_only_where_listed() {
        let mut spec = sample("own-code.yaml");
        spec.functions[1].layers =
            vec!["arn:aws:lambda:us-east-1:123456789012:layer:team-deps:7".into()];
        spec.functions[1].vpc = Some(crate::crd::VpcSpec {
            subnet_ids: vec!["subnet-0123456789abcdef0".into()],
            security_group_ids: vec!["sg-01234567".into()],
        });
        let code = SluicePolicySpec {
            code_buckets: vec!["team-code".into()],
            ..Default::default()
        };
        let found = problems(&spec, &Effective::combine(&[("code", &code)]));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].contains("spec.functions[1].layers[0]"),
            "{found:?}"
        );
        assert!(
            found[1].contains("spec.functions[1].vpc.subnetIds[0]"),
            "{found:?}"
        );
        assert!(
            found[2].contains("spec.functions[1].vpc.securityGroupIds[0]"),
            "{found:?}"
        );
        let all = SluicePolicySpec {
            layers: vec!["arn:aws:lambda:us-east-1:123456789012:layer:team-deps".into()],
            subnets: vec!["subnet-0123456789abcdef0".into()],
            security_groups: vec!["sg-01234567".into()],
            ..code
        };
        assert_eq!(
            problems(&spec, &Effective::combine(&[("all", &all)])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn images_only_from_listed_repositories_and_lists_narrow() {
        let mut spec = sample("own-code.yaml");
        spec.functions[0].code = Some(crate::crd::CodeSpec {
            builtin: None,
            s3: None,
            image: Some(crate::crd::ImageCode {
                uri: format!(
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app@sha256:{}",
                    "a".repeat(64)
                ),
            }),
            runtime: None,
            handler: None,
            architecture: None,
        });
        let both = SluicePolicySpec {
            code_buckets: vec!["team-code".into()],
            image_repositories: vec![
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app".into(),
            ],
            ..Default::default()
        };
        let narrower = SluicePolicySpec {
            code_buckets: vec!["team-code".into()],
            ..Default::default()
        };
        assert_eq!(
            problems(&spec, &Effective::combine(&[("both", &both)])),
            Vec::<String>::new()
        );
        let combined = Effective::combine(&[("both", &both), ("narrower", &narrower)]);
        let found = problems(&spec, &combined);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("spec.functions[0].code.image.uri")
                && found[0].contains("SluicePolicy \"narrower\""),
            "{found:?}"
        );
    }

    #[test]
    fn the_shipped_default_policy_is_the_built_in_one() {
        let raw = include_str!("../../charts/sluice/files/default-policy.yaml");
        let shipped: crate::crd::SluicePolicy = serde_yaml::from_str(raw).expect("policy");
        let mut spec = shipped.spec.clone();
        spec.namespace_selector = None;
        assert_eq!(spec, SluicePolicySpec::default());
        // It selects the namespaces without a policy label of their own.
        let selector = shipped.spec.namespace_selector.as_ref();
        assert!(selects(selector, &labels(&[("team", "a")])));
        assert!(!selects(selector, &labels(&[("sluice.dev/policy", "big")])));
    }

    #[test]
    fn selectors_follow_the_kubernetes_rules() {
        let ns = labels(&[("team", "a"), ("tier", "gold")]);
        let mut s = LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            ..Default::default()
        };
        assert!(selects(Some(&s), &ns));
        assert!(!selects(Some(&s), &labels(&[("team", "b")])));
        let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        };
        s.match_expressions = Some(vec![requirement("tier", "In", &["gold", "silver"])]);
        assert!(selects(Some(&s), &ns));
        s.match_expressions = Some(vec![requirement("tier", "NotIn", &["gold"])]);
        assert!(!selects(Some(&s), &ns));
        s.match_expressions = Some(vec![requirement("sluice.dev/policy", "DoesNotExist", &[])]);
        assert!(selects(Some(&s), &ns));
        s.match_expressions = Some(vec![requirement("tier", "Exists", &[])]);
        assert!(selects(Some(&s), &ns));
        s.match_expressions = Some(vec![requirement("tier", "Resembles", &[])]);
        assert!(
            selects(Some(&s), &ns),
            "an unknown operator restricts rather than lifts"
        );
        assert!(selects(None, &BTreeMap::new()));
        assert!(selects(Some(&LabelSelector::default()), &BTreeMap::new()));
    }

    #[test]
    fn several_policies_combine_to_the_most_restrictive_and_name_their_source() {
        let a = policy(
            "{regions: [us-east-1, eu-west-1], kmsKeys: [k1, k2], allow: {defaultEventBus: true}, limits: {memoryMiB: 4096, timeoutSeconds: 60}}",
        );
        let b = policy(
            "{regions: [eu-west-1], kmsKeys: [k2], allow: {defaultEventBus: false}, limits: {memoryMiB: 1024}}",
        );
        let e = Effective::combine(&[("a", &a), ("b", &b)]);
        assert_eq!(e.values.limits.memory_mib, 1024);
        assert_eq!(e.by("limits.memoryMiB"), "SluicePolicy \"b\"");
        assert_eq!(e.values.limits.timeout_seconds, 60);
        assert_eq!(e.by("limits.timeoutSeconds"), "SluicePolicy \"a\"");
        assert!(!e.values.allow.default_event_bus);
        assert_eq!(e.by("allow.defaultEventBus"), "SluicePolicy \"b\"");
        assert_eq!(e.values.regions, ["eu-west-1"]);
        assert_eq!(e.values.kms_keys, ["k2"]);
        assert_eq!(e.names, ["a", "b"]);
        // Order does not matter.
        let reversed = Effective::combine(&[("b", &b), ("a", &a)]);
        assert_eq!(reversed.values, e.values);
        // No policy: the built-in default, named as such.
        let none = Effective::for_namespace([], &BTreeMap::new());
        assert_eq!(none.values, SluicePolicySpec::default());
        assert_eq!(none.by("limits.memoryMiB"), BUILT_IN);
        // Only the selecting ones count.
        let mut c = policy("{limits: {memoryMiB: 128}}");
        c.namespace_selector = Some(LabelSelector {
            match_labels: Some(labels(&[("team", "c")])),
            ..Default::default()
        });
        let for_a = Effective::for_namespace([("a", &a), ("c", &c)], &labels(&[("team", "a")]));
        assert_eq!(for_a.values.limits.memory_mib, 4096);
        assert_eq!(for_a.names, ["a"]);
    }

    #[test]
    fn each_limit_is_refused_naming_the_field_the_value_and_the_policy() {
        let strict = policy(
            "{regions: [eu-west-1], limits: {memoryMiB: 128, timeoutSeconds: 10, functionsPerPipeline: 1, rolesPerPipeline: 1, scheduleIntervalMinutes: 1440}}",
        );
        let e = Effective::combine(&[("strict", &strict)]);
        let found = problems(&sample("fan-out.yaml"), &e).join("\n");
        for needle in [
            "spec.functions[0].memoryMiB: 256 MiB is more than SluicePolicy \"strict\" allows this namespace (limits.memoryMiB: 128)",
            "spec.functions[0].timeoutSeconds: 30 s",
            "spec.functions: 5 functions",
            "IAM roles",
            "spec.region: \"us-east-1\" is not a region SluicePolicy \"strict\" allows",
        ] {
            assert!(found.contains(needle), "{needle}\nin:\n{found}");
        }
        let mut twice_a_day = sample("periodic-batch.yaml");
        twice_a_day.schedules[0].expression = "rate(12 hours)".into();
        let batch = problems(&twice_a_day, &e).join("\n");
        assert!(batch.contains("spec.schedules[0].expression"), "{batch}");
        assert!(
            problems(&sample("periodic-batch.yaml"), &Effective::default()).is_empty(),
            "daily passes the default"
        );
    }

    #[test]
    fn features_are_refused_unless_allowed() {
        let mut spec = sample("stream.yaml");
        spec.streams[0].shards = Some(3);
        spec.functions[0].reserved_concurrency = Some(5);
        spec.tables[0].billing_mode = BillingMode::Provisioned;
        spec.tables[0].capacity = Some(crate::crd::Capacity { read: 30, write: 5 });
        spec.streams[0].encryption = Some(crate::crd::KmsEncryption {
            kms_key_arn: "arn:aws:kms:us-east-1:123456789012:key/platform".into(),
        });
        let found = problems(&spec, &Effective::default()).join("\n");
        for needle in [
            "spec.streams[0].shards: 3 shards",
            "spec.functions[0].reservedConcurrency: the built-in default policy does not allow",
            "spec.tables[0].billingMode",
            "spec.streams[0].encryption.kmsKeyArn: \"arn:aws:kms:us-east-1:123456789012:key/platform\" is not a key",
        ] {
            assert!(found.contains(needle), "{needle}\nin:\n{found}");
        }
        let open = policy(
            "{kmsKeys: [arn:aws:kms:us-east-1:123456789012:key/platform], allow: {provisionedTables: true, reservedConcurrency: true}, limits: {shardsPerStream: 4, capacityUnits: 25}}",
        );
        let e = Effective::combine(&[("open", &open)]);
        let found = problems(&spec, &e).join("\n");
        assert!(
            found.contains("spec.tables[0].capacity.read: 30 capacity units"),
            "{found}"
        );
        assert!(!found.contains("write"), "{found}");
        assert!(
            !found.contains("kmsKeyArn") && !found.contains("shards"),
            "{found}"
        );
    }

    #[test]
    fn the_default_bus_is_closed_unless_allowed() {
        let mut spec = sample("fan-out.yaml");
        spec.rules[0].event_bus = None;
        spec.functions[0].uses[0].event_bus = Some(DEFAULT_BUS.into());
        let found = problems(&spec, &Effective::default()).join("\n");
        assert!(found.contains("spec.rules[0].eventBus"), "{found}");
        assert!(
            found.contains("spec.functions[0].uses[0].eventBus"),
            "{found}"
        );
        let open = policy("{allow: {defaultEventBus: true}}");
        assert!(problems(&spec, &Effective::combine(&[("open", &open)])).is_empty());
    }

    #[test]
    fn workflow_loops_are_refused_unless_allowed() {
        let mut spec = sample("orchestrated.yaml");
        let states = spec.workflows[0].definition["States"]
            .as_object_mut()
            .expect("states");
        let first = states.keys().next().expect("a state").clone();
        let last = states
            .iter()
            .find(|(_, s)| s.get("End").is_some())
            .map(|(k, _)| k.clone())
            .expect("an end");
        let state = states.get_mut(&last).expect("state");
        state.as_object_mut().expect("object").remove("End");
        state["Next"] = serde_json::json!(first);
        let found = problems(&spec, &Effective::default()).join("\n");
        assert!(found.contains("spec.workflows[0].definition"), "{found}");
        let open = policy("{allow: {workflowLoops: true}}");
        assert!(problems(&spec, &Effective::combine(&[("open", &open)])).is_empty());
    }

    #[test]
    fn namespace_limits_count_the_oldest_pipelines_first() {
        let spec = sample("event-triggered.yaml");
        let plan = plan_of(&spec);
        let e = Effective::combine(&[(
            "two",
            &policy(
                "{allow: {reservedConcurrency: true}, limits: {pipelinesPerNamespace: 2, reservedConcurrencyPerNamespace: 10}}",
            ),
        )]);
        let neighbours = Neighbours {
            pipelines: vec![("a".into(), 6), ("b".into(), 6), ("c".into(), 0)],
        };
        let at = |uid: &str| check(&spec, &plan, "us-east-1", uid, &neighbours, &e).join("\n");
        assert_eq!(at("a"), "");
        let b = at("b");
        assert!(b.contains("12 reserved concurrency"), "{b}");
        assert!(!b.contains("metadata.namespace"), "{b}");
        let c = at("c");
        assert!(c.contains("metadata.namespace: 3 pipelines"), "{c}");
        assert!(!c.contains("reserved"), "a pipeline reserving nothing: {c}");
    }
}
