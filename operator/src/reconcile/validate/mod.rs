//! Semantic validation of a spec: everything the CRD schema cannot check or
//! that depends on the operator's configuration, and the limits AWS enforces
//! that the emulator does not. Pure; every error names the field, the bad
//! value and what would be valid.

use std::collections::BTreeSet;

mod buckets;
mod events;
mod function;
mod kms;
mod queues;
mod roles;
mod schedules;
mod workflows;

pub use events::MAX_EVENT_PATTERN_CHARS;
use events::validate_rules;
use function::{Refs, validate_function};
use queues::validate_queues;
use schedules::validate_schedules;
use workflows::validate_workflows;

use crate::{
    artifacts::Catalog,
    config::OperatorConfig,
    crd::{DataPipelineSpec, MAX_FREE_FORM_DEPTH},
    plan::{CodePlan, Plan, graph::dead_letter_name},
};

/// Lambda's limit on a function's environment: 4 KB of names and values.
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// Whether a free-form object of the spec (event pattern, workflow
/// definition, schedule input) nests within [`MAX_FREE_FORM_DEPTH`] levels;
/// pushes the problem if not. An object too deep to parse at all was read
/// as the [`crate::crd::TOO_DEEP`] marker.
fn check_depth(at: &str, value: &serde_json::Value, problems: &mut Vec<String>) -> bool {
    let levels = if crate::crd::is_too_deep(value) {
        None
    } else {
        Some(events::depth(value))
    };
    match levels {
        Some(l) if l <= MAX_FREE_FORM_DEPTH => true,
        _ => {
            problems.push(format!(
                "{at}: nests {} levels; Sluice accepts at most {MAX_FREE_FORM_DEPTH}",
                levels.map_or("more than 127".into(), |l| l.to_string())
            ));
            false
        }
    }
}

/// The names of one kind of node, for "declared: ..." hints.
struct Declared<'a>(BTreeSet<&'a str>);

impl<'a> Declared<'a> {
    fn new(names: impl IntoIterator<Item = &'a str>) -> Self {
        Declared(names.into_iter().collect())
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    fn hint(&self) -> String {
        if self.0.is_empty() {
            "none declared".into()
        } else {
            format!(
                "declared: {}",
                self.0.iter().copied().collect::<Vec<_>>().join(", ")
            )
        }
    }
}

fn unique<'a>(problems: &mut Vec<String>, list: &str, names: impl IntoIterator<Item = &'a str>) {
    let mut seen = BTreeSet::new();
    for (i, name) in names.into_iter().enumerate() {
        if !seen.insert(name) {
            problems.push(format!(
                "spec.{list}[{i}].name: {name:?} is declared twice; names must be unique"
            ));
        }
    }
}

/// Checks a spec before planning. Returns every problem, one per line.
pub fn validate(
    spec: &DataPipelineSpec,
    config: &OperatorConfig,
    catalog: &Catalog,
) -> Result<(), String> {
    let mut problems = Vec::new();

    let region = spec.region.as_deref().unwrap_or(&config.default_region);
    if !config.allowed_regions.iter().any(|r| r == region) {
        problems.push(format!(
            "spec.region: {region:?} is not a region this operator may manage; allowed: {}",
            config.allowed_regions.join(", ")
        ));
    }

    unique(
        &mut problems,
        "buckets",
        spec.buckets.iter().map(|b| b.name.as_str()),
    );
    unique(
        &mut problems,
        "queues",
        spec.queues.iter().map(|q| q.name.as_str()),
    );
    unique(
        &mut problems,
        "eventBuses",
        spec.event_buses.iter().map(|b| b.name.as_str()),
    );
    unique(
        &mut problems,
        "rules",
        spec.rules.iter().map(|r| r.name.as_str()),
    );
    unique(
        &mut problems,
        "streams",
        spec.streams.iter().map(|s| s.name.as_str()),
    );
    unique(
        &mut problems,
        "tables",
        spec.tables.iter().map(|t| t.name.as_str()),
    );
    unique(
        &mut problems,
        "functions",
        spec.functions.iter().map(|f| f.name.as_str()),
    );

    let buckets = Declared::new(spec.buckets.iter().map(|b| b.name.as_str()));
    let derived_dlqs: Vec<String> = spec
        .queues
        .iter()
        .filter(|q| q.dead_letter.as_ref().is_some_and(|d| d.queue.is_none()))
        .map(|q| dead_letter_name(&q.name))
        .collect();
    let queues = Declared::new(
        spec.queues
            .iter()
            .map(|q| q.name.as_str())
            .chain(derived_dlqs.iter().map(String::as_str)),
    );
    let fifo: BTreeSet<&str> = spec
        .queues
        .iter()
        .filter(|q| q.fifo)
        .map(|q| q.name.as_str())
        .chain(spec.queues.iter().filter(|q| q.fifo).filter_map(|q| {
            derived_dlqs
                .iter()
                .find(|d| **d == dead_letter_name(&q.name))
                .map(String::as_str)
        }))
        .collect();
    let buses = Declared::new(spec.event_buses.iter().map(|b| b.name.as_str()));
    let streams = Declared::new(spec.streams.iter().map(|s| s.name.as_str()));
    let tables = Declared::new(spec.tables.iter().map(|t| t.name.as_str()));
    let functions = Declared::new(spec.functions.iter().map(|f| f.name.as_str()));
    let workflows = Declared::new(spec.workflows.iter().map(|w| w.name.as_str()));

    kms::validate_kms_keys(spec, region, &mut problems);
    buckets::validate_bucket_notifications(spec, &mut problems);
    validate_queues(spec, &queues, &fifo, &mut problems);
    validate_rules(
        spec,
        &buses,
        &queues,
        &fifo,
        &functions,
        &workflows,
        &mut problems,
    );
    validate_workflows(spec, &buckets, &functions, &mut problems);
    validate_schedules(spec, &functions, &workflows, &queues, &fifo, &mut problems);
    for (i, f) in spec.functions.iter().enumerate() {
        let refs = Refs {
            buckets: &buckets,
            queues: &queues,
            fifo: &fifo,
            buses: &buses,
            streams: &streams,
            tables: &tables,
            workflows: &workflows,
        };
        validate_function(spec, i, f, catalog, &refs, &mut problems);
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// What the spec allows but probably does not mean: a workflow-step
/// function (its handler is extract, transform, load or notify) that no
/// workflow runs and nothing else invokes. Shown in status, not refused.
pub fn warnings(spec: &DataPipelineSpec) -> Vec<String> {
    const STEPS: [&str; 4] = ["extract", "transform", "load", "notify"];
    let in_workflows: BTreeSet<String> = spec
        .workflows
        .iter()
        .flat_map(|w| crate::asl::referenced_functions(&w.definition))
        .collect();
    spec.functions
        .iter()
        .filter(|f| f.builtin().is_some_and(|h| STEPS.contains(&h)))
        .filter(|f| f.triggers.is_empty() && !in_workflows.contains(&f.name))
        .filter(|f| {
            !spec.rules.iter().any(|r| {
                r.targets
                    .iter()
                    .any(|t| t.function.as_ref() == Some(&f.name))
            }) && !spec
                .schedules
                .iter()
                .any(|s| s.target.function.as_ref() == Some(&f.name))
        })
        .map(|f| {
            format!(
                "function {} (handler {}, a workflow step) is unreachable: no workflow, trigger, \
                 rule or schedule runs it; name it in a workflow's Task (Resource: function:{})",
                f.name,
                f.builtin().unwrap_or_default(),
                f.name
            )
        })
        .collect()
}

/// Checks what depends on the plan: each function's environment gives its
/// handler every variable it requires (naming the edge that would), and
/// stays within Lambda's 4 KB with the names Sluice derived.
pub fn validate_plan(plan: &Plan) -> Result<(), String> {
    let mut problems = Vec::new();
    for f in &plan.functions {
        let at = format!("spec.functions[name={}]", f.logical);
        if let CodePlan::Builtin {
            handler, artifact, ..
        } = &f.code
        {
            for (var, edge) in &artifact.required_env {
                if !f.environment.contains_key(var) {
                    problems.push(format!(
                        "{at}: handler {handler} needs {var}, which no edge of the function \
                         sets; add {edge}"
                    ));
                }
            }
        }
        let size: usize = f.environment.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_ENVIRONMENT_BYTES {
            problems.push(format!(
                "{at}.environment: {size} bytes of names and values with what Sluice adds (real \
                 resource names, queue URLs); Lambda allows {MAX_ENVIRONMENT_BYTES}; drop or \
                 shorten variables"
            ));
        }
    }
    roles::validate_roles(plan, &mut problems);
    for r in &plan.rules {
        let size = r.pattern.to_string().chars().count();
        if size > MAX_EVENT_PATTERN_CHARS {
            problems.push(format!(
                "spec.rules[name={}].pattern: {size} characters as JSON with what Sluice adds to \
                 keep it to the pipeline's own events; EventBridge allows {MAX_EVENT_PATTERN_CHARS}; \
                 shorten it",
                r.logical
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{
        PlanContext,
        tests::{catalog, pattern1, pid, sample},
    };

    fn config() -> OperatorConfig {
        OperatorConfig::from_lookup(
            |k| match k {
                "SLUICE_PERMISSIONS_BOUNDARY" => {
                    Some("arn:aws:iam::123456789012:policy/sluice/sluice-pipeline-boundary".into())
                }
                "SLUICE_INSTALLATION_ID" => Some("0123456789abcdef0123".into()),
                _ => None,
            },
            Some("us-east-1".into()),
        )
        .expect("config")
    }

    #[test]
    fn the_pattern1_sample_is_valid() {
        assert_eq!(validate(&pattern1(), &config(), &catalog()), Ok(()));
    }

    #[test]
    fn unknown_handler_names_the_field_and_the_choices() {
        let mut spec = pattern1();
        spec.functions[0].handler = Some("nope".into());
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(err.contains("spec.functions[0].handler"), "{err}");
        assert!(err.contains("s3-json-transform"), "{err}");
    }

    #[test]
    fn regions_outside_the_allow_list_are_refused() {
        let mut spec = pattern1();
        spec.region = Some("eu-west-1".into());
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(
            err.contains("spec.region") && err.contains("us-east-1"),
            "{err}"
        );
    }

    #[test]
    fn dangling_references_and_reserved_names_are_refused() {
        let mut spec = pattern1();
        spec.functions[0].uses[0].bucket = Some("missing".into());
        spec.functions[0]
            .environment
            .insert("AWS_REGION".into(), "x".into());
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(err.contains("spec.functions[0].uses[0].bucket"), "{err}");
        assert!(
            err.contains("spec.functions[0].environment.AWS_REGION"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut spec = pattern1();
        spec.buckets.push(spec.buckets[0].clone());
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(err.contains("spec.buckets[2].name"), "{err}");
    }

    fn plan_of(spec: &DataPipelineSpec) -> Plan {
        let (catalog, id) = (catalog(), pid());
        crate::plan::plan(
            spec,
            PlanContext {
                id: &id,
                catalog: &catalog,
                permissions_boundary: None,
            },
        )
    }

    fn problems(spec: &DataPipelineSpec) -> String {
        validate(spec, &config(), &catalog()).expect_err("invalid")
    }

    #[test]
    fn the_samples_are_valid_and_meet_their_handlers_needs() {
        for file in crate::plan::tests::SAMPLES {
            let spec = sample(file);
            assert_eq!(validate(&spec, &config(), &catalog()), Ok(()), "{file}");
            assert_eq!(validate_plan(&plan_of(&spec)), Ok(()), "{file}");
        }
    }

    #[test]
    fn a_missing_handler_variable_names_the_edge_to_add() {
        let mut spec = sample("fan-out.yaml");
        spec.functions[0].uses.clear();
        let err = validate_plan(&plan_of(&spec)).expect_err("router needs its bus");
        assert!(
            err.contains("spec.functions[name=router]")
                && err.contains("EVENT_BUS")
                && err.contains("uses: {eventBus: <bus>, access: put, env: EVENT_BUS}"),
            "{err}"
        );
    }

    #[test]
    fn the_one_edge_that_can_give_a_handlers_variable_gives_it() {
        let mut spec = sample("fan-out.yaml");
        // The router's bus edge without `env: EVENT_BUS`: it is the only
        // edge that can give EVENT_BUS, so it does.
        spec.functions[0].uses[0].env = None;
        assert_eq!(validate(&spec, &config(), &catalog()), Ok(()));
        let plan = plan_of(&spec);
        assert_eq!(validate_plan(&plan), Ok(()));
        let router = plan
            .functions
            .iter()
            .find(|f| f.logical == "router")
            .expect("router");
        assert_eq!(
            router.environment.get("EVENT_BUS"),
            router.environment.get("EVENT_BUS_MAIN"),
        );
        assert!(router.environment.contains_key("EVENT_BUS"));
    }

    #[test]
    fn two_edges_that_could_give_a_handlers_variable_are_named() {
        let mut spec = sample("fan-out.yaml");
        spec.functions[0].uses[0].env = None;
        let mut second = spec.functions[0].uses[0].clone();
        second.event_bus = Some("audit".into());
        spec.functions[0].uses.push(second);
        spec.event_buses.push(spec.event_buses[0].clone());
        spec.event_buses[1].name = "audit".into();
        let err = validate(&spec, &config(), &catalog()).expect_err("ambiguous");
        assert!(
            err.contains("spec.functions[0].uses: handler router needs EVENT_BUS")
                && err.contains("uses[0] (eventBus main), uses[1] (eventBus audit)")
                && err.contains("add env: EVENT_BUS"),
            "{err}"
        );
        // Saying which settles it.
        spec.functions[0].uses[1].env = Some("EVENT_BUS".into());
        assert_eq!(validate(&spec, &config(), &catalog()), Ok(()));
    }

    #[test]
    fn an_environment_over_4_kb_is_refused() {
        let mut spec = pattern1();
        for i in 0..40 {
            spec.functions[0]
                .environment
                .insert(format!("VAR_{i}"), "x".repeat(100));
        }
        let err = validate_plan(&plan_of(&spec)).expect_err("too big");
        assert!(err.contains("environment") && err.contains("4096"), "{err}");
    }

    #[test]
    fn a_role_policy_over_iams_10240_characters_is_refused_naming_the_function() {
        let mut spec = pattern1();
        // Reads of 100 buckets: about 135 characters each.
        for i in 0..100 {
            let name = format!("extra-{i}");
            let mut bucket = spec.buckets[0].clone();
            bucket.name = name.clone();
            spec.buckets.push(bucket);
            let mut edge = spec.functions[0].uses[0].clone();
            edge.bucket = Some(name);
            edge.access = crate::crd::Access::Read;
            edge.env = Some(format!("EXTRA_{i}"));
            spec.functions[0].uses.push(edge);
        }
        assert_eq!(validate(&spec, &config(), &catalog()), Ok(()));
        let plan = plan_of(&spec);
        let err = validate_plan(&plan).expect_err("too big");
        assert!(
            err.contains("spec.functions[name=processor].uses: the IAM role")
                && err.contains("IAM allows 10240 per role"),
            "{err}"
        );
        // The samples are well within it.
        for file in ["fan-out.yaml", "orchestrated.yaml", "own-code.yaml"] {
            assert_eq!(validate_plan(&plan_of(&sample(file))), Ok(()), "{file}");
        }
    }

    #[test]
    fn fifo_rules_aws_enforces_are_checked_here() {
        let mut spec = sample("fan-out.yaml");
        for q in &mut spec.queues {
            if q.name == "type-a" {
                q.fifo = true;
            }
        }
        spec.functions[1].triggers[0]
            .queue
            .as_mut()
            .expect("queue trigger")
            .batch_size = 20;
        spec.functions[1].triggers[0]
            .queue
            .as_mut()
            .expect("queue trigger")
            .batching_window_seconds = 5;
        let err = problems(&spec);
        assert!(
            err.contains("spec.functions[1].triggers[0].queue.batchSize: 20 is above 10"),
            "{err}"
        );
        assert!(
            err.contains("spec.rules[0].targets[0].messageGroupId"),
            "{err}"
        );
        assert!(
            err.contains(
                "spec.functions[1].triggers[0].queue.batchingWindowSeconds: 5 s, but \"type-a\" \
                 is a FIFO queue"
            ),
            "{err}"
        );
        let a = spec
            .queues
            .iter()
            .position(|q| q.name == "type-a")
            .expect("type-a");
        assert!(
            err.contains(&format!(
                "spec.rules[0].targets[0].queue: \"type-a\" is a FIFO queue without content-based \
                 deduplication, and EventBridge sends to a FIFO queue only with it; set \
                 spec.queues[{a}].contentBasedDeduplication: true"
            )),
            "{err}"
        );
        // Its generated dead-letter queue deduplicates as it does.
        spec.rules[0].targets[0].queue = Some("type-a-dlq".into());
        let err = problems(&spec);
        assert!(
            err.contains(&format!(
                "spec.rules[0].targets[0].queue: \"type-a-dlq\" is a FIFO queue without \
                 content-based deduplication, and EventBridge sends to a FIFO queue only with it; \
                 set spec.queues[{a}].contentBasedDeduplication: true"
            )),
            "{err}"
        );
        spec.queues[a].content_based_deduplication = true;
        let err = problems(&spec);
        assert!(!err.contains("content-based"), "{err}");
    }

    #[test]
    fn event_patterns_must_match_by_lists() {
        let mut spec = sample("fan-out.yaml");
        spec.rules[0].pattern = serde_json::json!({"detail-type": "data-event", "detail": {}});
        let err = problems(&spec);
        assert!(
            err.contains("spec.rules[0].pattern.detail-type: \"data-event\" must be a list"),
            "{err}"
        );
        assert!(
            err.contains("spec.rules[0].pattern.detail: an empty object"),
            "{err}"
        );
    }

    #[test]
    fn dead_letter_queues_are_checked() {
        let mut spec = sample("fan-out.yaml");
        // type-a's DLQ is type-b, type-b's is type-a: a cycle.
        spec.queues[0].dead_letter.as_mut().expect("dl").queue = Some("type-b".into());
        spec.queues[1].dead_letter.as_mut().expect("dl").queue = Some("type-a".into());
        // A queue named like the DLQ Sluice creates for type-c.
        let mut clash = spec.queues[3].clone();
        clash.name = "type-c-dlq".into();
        spec.queues.push(clash);
        let err = problems(&spec);
        assert!(err.contains("form a cycle"), "{err}");
        assert!(
            err.contains(
                "spec.queues[2].deadLetter: Sluice creates the dead-letter queue \"type-c-dlq\""
            ),
            "{err}"
        );
    }

    #[test]
    fn a_visibility_timeout_shorter_than_a_consumer_is_refused() {
        let mut spec = sample("fan-out.yaml");
        spec.queues[0].visibility_timeout_seconds = Some(10);
        let err = problems(&spec);
        assert!(
            err.contains("spec.queues[0].visibilityTimeoutSeconds: 10 is shorter than the 30 s"),
            "{err}"
        );
    }

    #[test]
    fn an_idempotency_table_needs_the_claims_key() {
        let mut spec = sample("fan-out.yaml");
        spec.tables[0].partition_key.name = "id".into();
        let err = problems(&spec);
        assert!(
            err.contains("spec.functions[1].idempotency.table")
                && err.contains("{name: pk, type: S}"),
            "{err}"
        );
    }

    #[test]
    fn failure_destinations_are_standard_queues() {
        let mut spec = sample("fan-out.yaml");
        for q in &mut spec.queues {
            if q.name == "router-failures" {
                q.fifo = true;
            }
        }
        let err = problems(&spec);
        assert!(
            err.contains("spec.functions[0].asyncInvocation.onFailure.queue: \"router-failures\" is a FIFO queue"),
            "{err}"
        );
    }

    #[test]
    fn an_express_workflow_waits_for_no_task_token() {
        let mut spec = sample("orchestrated.yaml");
        let d = &mut spec.workflows[0].definition;
        let first = d["StartAt"].as_str().expect("StartAt").to_owned();
        let function = d["States"][&first]["Resource"]
            .as_str()
            .and_then(|r| r.strip_prefix("function:"))
            .expect("a function: task first")
            .to_owned();
        d["States"][&first]["Resource"] =
            serde_json::json!("arn:aws:states:::lambda:invoke.waitForTaskToken");
        d["States"][&first]["Parameters"] = serde_json::json!({"FunctionName": function});
        assert_eq!(validate(&spec, &config(), &catalog()), Ok(()));
        spec.workflows[0].type_ = crate::crd::WorkflowType::Express;
        let err = problems(&spec);
        assert!(
            err.contains(&format!(
                "spec.workflows[0].definition.States.{first}.Resource: \
                 \"arn:aws:states:::lambda:invoke.waitForTaskToken\" uses the .waitForTaskToken"
            )),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_workflow_is_refused_before_any_aws_call_naming_state_and_field() {
        let mut spec = sample("orchestrated.yaml");
        let d = &mut spec.workflows[0].definition;
        d["States"]["Transform"]["Next"] = serde_json::json!("Loader");
        d["States"]["Notify"]["Resource"] = serde_json::json!("function:mailer");
        d["States"]["Orphan"] = serde_json::json!({"Type": "Pass", "End": true});
        let err = problems(&spec);
        assert!(
            err.contains(
                "spec.workflows[0].definition.States.Transform.Next: \"Loader\" is not a state"
            ),
            "{err}"
        );
        assert!(
            err.contains("spec.workflows[0].definition.States.Notify.Resource: function \"mailer\" is not declared"),
            "{err}"
        );
        assert!(
            err.contains("spec.workflows[0].definition.States.Orphan: unreachable"),
            "{err}"
        );
    }

    #[test]
    fn schedules_are_checked_like_aws_checks_them() {
        let mut spec = sample("periodic-batch.yaml");
        spec.schedules[0].expression = "cron(0 25 * * ? *)".into();
        spec.schedules[0].timezone = "Mars/Olympus".into();
        spec.schedules[0].start_date = Some("2027-02-01T00:00:00Z".into());
        spec.schedules[0].end_date = Some("2027-01-01T00:00:00Z".into());
        let err = problems(&spec);
        assert!(
            err.contains("spec.schedules[0].expression: \"cron(0 25 * * ? *)\""),
            "{err}"
        );
        assert!(
            err.contains("spec.schedules[0].timezone: \"Mars/Olympus\""),
            "{err}"
        );
        assert!(err.contains("spec.schedules[0].endDate"), "{err}");
        // Days the calendar does not have: refused, not dropped.
        let mut spec = sample("periodic-batch.yaml");
        spec.schedules[0].start_date = Some("2031-02-30T10:00:00Z".into());
        spec.schedules[0].end_date = Some("2031-04-31T10:00:00+02:00".into());
        let err = problems(&spec);
        assert!(
            err.contains("spec.schedules[0].startDate: \"2031-02-30T10:00:00Z\" is not a date"),
            "{err}"
        );
        assert!(
            err.contains("spec.schedules[0].endDate: \"2031-04-31T10:00:00+02:00\" is not a date"),
            "{err}"
        );
        spec.schedules[0].start_date = Some("2028-02-29T10:00:00Z".into());
        spec.schedules[0].end_date = None;
        spec.schedules[0].expression = "at(2028-02-29T12:00:00)".into();
        assert_eq!(validate(&spec, &config(), &catalog()), Ok(()));
        let mut spec = sample("periodic-batch.yaml");
        spec.queues[0].fifo = true;
        spec.schedules[0].target = serde_yaml::from_str("{queue: batch-failures}").expect("target");
        spec.schedules[0].dead_letter = None;
        let err = problems(&spec);
        assert!(
            err.contains("spec.schedules[0].target.queue: \"batch-failures\" is a FIFO queue"),
            "{err}"
        );
    }

    #[test]
    fn more_than_900_seconds_shows_the_workflow_to_write() {
        let mut spec = sample("periodic-batch.yaml");
        spec.functions[0].timeout_seconds = 3600;
        let err = problems(&spec);
        assert!(
            err.contains("spec.functions[0].timeoutSeconds: 3600")
                && err.contains("Resource: \"function:batch\"")
                && err.contains("Retry"),
            "{err}"
        );
    }

    #[test]
    fn a_workflow_step_nothing_runs_is_a_warning() {
        let mut spec = sample("orchestrated.yaml");
        assert_eq!(warnings(&spec), Vec::<String>::new());
        spec.workflows.clear();
        let w = warnings(&spec);
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(
            w[0].contains("function extract (handler extract, a workflow step) is unreachable"),
            "{w:?}"
        );
    }

    #[test]
    fn a_variable_a_handler_takes_from_an_edge_cannot_be_set_by_hand() {
        let mut spec = sample("periodic-batch.yaml");
        spec.functions[0]
            .environment
            .insert("SOURCE_BUCKET".into(), "another-teams-bucket".into());
        let err = problems(&spec);
        assert!(
            err.contains("spec.functions[0].environment.SOURCE_BUCKET: handler batch-aggregate takes SOURCE_BUCKET from an edge")
                && err.contains("uses: {bucket: <source>, access: read, env: SOURCE_BUCKET}"),
            "{err}"
        );
        // A variable the handler does not take is the team's own.
        let mut spec = sample("periodic-batch.yaml");
        spec.functions[0]
            .environment
            .insert("REPORT_TITLE".into(), "daily".into());
        assert_eq!(validate(&spec, &config(), &catalog()), Ok(()));
    }

    #[test]
    fn sluice_writes_the_keys_that_keep_a_rule_to_its_pipelines_events() {
        let mut spec = sample("fan-out.yaml");
        spec.rules[0].pattern["source"] = serde_json::json!(["sluice.router"]);
        let err = problems(&spec);
        assert!(
            err.contains("spec.rules[0].pattern.source: a rule on the pipeline's own bus"),
            "{err}"
        );
        let mut spec = sample("fan-out.yaml");
        spec.rules[0].event_bus = None;
        spec.rules[0].pattern["resources"] = serde_json::json!(["arn:aws:s3:::victim"]);
        spec.rules[0].pattern["$or"] = serde_json::json!([{"a": ["b"]}, {"c": ["d"]}]);
        let err = problems(&spec);
        assert!(err.contains("spec.rules[0].pattern.resources"), "{err}");
        assert!(err.contains("spec.rules[0].pattern.$or"), "{err}");
    }
}
