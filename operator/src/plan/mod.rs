//! The desired AWS state of a pipeline: a pure function of the spec, the
//! pipeline's identity and the operator's configuration. No I/O here; every
//! rule of the graph (which edge implies which grant, permission, policy,
//! variable and mapping) is unit-tested.
//!
//! One file per kind of node, as in [`crate::aws`]: [`graph`] resolves
//! every logical name to its AWS name and ARN first, then each file plans
//! its kind from the spec and the graph.

pub mod bucket;
pub mod events;
pub mod function;
pub mod graph;
pub mod queue;
pub mod schedule;
pub mod stream;
pub mod table;
pub mod workflow;

use std::collections::BTreeSet;

pub use bucket::{BucketPlan, LambdaNotification, NotificationPlan};
pub use events::{EventBusPlan, RulePlan, TargetPlan};
pub use function::{
    CodeLocation, CodePlan, EPHEMERAL_STORAGE_MIB, EventSourceMappingPlan, FunctionPlan,
    INLINE_POLICY, InvokeConfigPlan, InvokeStatement, PermissionsPlan, RUNTIME, RolePlan,
    STATEMENT_PREFIX, VpcPlan, ZipCode,
};
pub use graph::Graph;
pub use queue::QueuePlan;
pub use schedule::SchedulePlan;
pub use stream::StreamPlan;
pub use table::TablePlan;
pub use workflow::{LogGroupPlan, StateMachinePlan};

use crate::{artifacts::Catalog, crd::DataPipelineSpec, naming::PipelineId};

/// Kinds of AWS resources, in the order they are applied. Deletion walks
/// this order backwards. Resources a grant can name (buckets, queues,
/// streams, tables, buses) come before the roles that hold the grants: a
/// role is written only once every resource its policy names has been found
/// to be this pipeline's, so a pipeline that meets another's resource under
/// its name stalls before it could be granted anything on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// S3 bucket.
    Bucket,
    /// SQS queue (dead-letter queues before the queues that use them).
    Queue,
    /// Kinesis data stream.
    Stream,
    /// DynamoDB table.
    Table,
    /// EventBridge event bus.
    EventBus,
    /// CloudWatch Logs log group (a workflow's execution logs).
    LogGroup,
    /// IAM role with its inline policy: a function's execution role, a
    /// workflow's, or one a service assumes to start or run a target.
    Role,
    /// Lambda function.
    Function,
    /// A function's asynchronous invocation settings and failure destination.
    InvokeConfig,
    /// The Sluice statements of a function's resource policy.
    Permissions,
    /// Step Functions state machine.
    StateMachine,
    /// EventBridge rule with its targets.
    Rule,
    /// EventBridge Scheduler schedule.
    Schedule,
    /// Lambda event source mapping (queue or stream → function).
    EventSourceMapping,
    /// A bucket's notification configuration.
    Notification,
}

impl Kind {
    /// Every kind, in apply order.
    pub const APPLY_ORDER: [Kind; 15] = [
        Kind::Bucket,
        Kind::Queue,
        Kind::Stream,
        Kind::Table,
        Kind::EventBus,
        Kind::LogGroup,
        Kind::Role,
        Kind::Function,
        Kind::InvokeConfig,
        Kind::Permissions,
        Kind::StateMachine,
        Kind::Rule,
        Kind::Schedule,
        Kind::EventSourceMapping,
        Kind::Notification,
    ];

    /// The kind's name in status and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bucket => "S3::Bucket",
            Kind::Queue => "SQS::Queue",
            Kind::Stream => "Kinesis::Stream",
            Kind::Table => "DynamoDB::Table",
            Kind::EventBus => "Events::EventBus",
            Kind::LogGroup => "Logs::LogGroup",
            Kind::Role => "IAM::Role",
            Kind::Function => "Lambda::Function",
            Kind::InvokeConfig => "Lambda::EventInvokeConfig",
            Kind::Permissions => "Lambda::Permission",
            Kind::StateMachine => "StepFunctions::StateMachine",
            Kind::Rule => "Events::Rule",
            Kind::Schedule => "Scheduler::Schedule",
            Kind::EventSourceMapping => "Lambda::EventSourceMapping",
            Kind::Notification => "S3::BucketNotification",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::APPLY_ORDER.into_iter().find(|k| k.as_str() == s)
    }
}

/// Everything a pipeline needs in AWS.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// Buckets.
    pub buckets: Vec<BucketPlan>,
    /// Queues, dead-letter queues first.
    pub queues: Vec<QueuePlan>,
    /// Streams.
    pub streams: Vec<StreamPlan>,
    /// Tables.
    pub tables: Vec<TablePlan>,
    /// Event buses.
    pub event_buses: Vec<EventBusPlan>,
    /// Log groups.
    pub log_groups: Vec<LogGroupPlan>,
    /// Roles: one per function, per workflow, per workflow EventBridge
    /// starts, per schedule.
    pub roles: Vec<RolePlan>,
    /// Functions.
    pub functions: Vec<FunctionPlan>,
    /// Asynchronous invocation settings of functions that set them.
    pub invoke_configs: Vec<InvokeConfigPlan>,
    /// Invoke permissions of functions that S3 or a rule invokes.
    pub permissions: Vec<PermissionsPlan>,
    /// State machines.
    pub state_machines: Vec<StateMachinePlan>,
    /// Rules.
    pub rules: Vec<RulePlan>,
    /// Schedules.
    pub schedules: Vec<SchedulePlan>,
    /// Event source mappings.
    pub event_source_mappings: Vec<EventSourceMappingPlan>,
    /// Notifications of buckets that trigger functions.
    pub notifications: Vec<NotificationPlan>,
}

impl Plan {
    /// `(kind, AWS id)` of every planned resource.
    pub fn ids(&self) -> BTreeSet<(Kind, String)> {
        let mut ids = BTreeSet::new();
        let mut add = |kind: Kind, id: &str| {
            ids.insert((kind, id.to_owned()));
        };
        self.buckets.iter().for_each(|x| add(Kind::Bucket, &x.name));
        self.queues.iter().for_each(|x| add(Kind::Queue, &x.name));
        self.streams.iter().for_each(|x| add(Kind::Stream, &x.name));
        self.tables.iter().for_each(|x| add(Kind::Table, &x.name));
        self.event_buses
            .iter()
            .for_each(|x| add(Kind::EventBus, &x.name));
        self.log_groups
            .iter()
            .for_each(|x| add(Kind::LogGroup, &x.name));
        self.roles.iter().for_each(|x| add(Kind::Role, &x.name));
        self.functions
            .iter()
            .for_each(|x| add(Kind::Function, &x.name));
        self.invoke_configs
            .iter()
            .for_each(|x| add(Kind::InvokeConfig, &x.function));
        self.permissions
            .iter()
            .for_each(|x| add(Kind::Permissions, &x.function));
        self.state_machines
            .iter()
            .for_each(|x| add(Kind::StateMachine, &x.arn));
        self.rules.iter().for_each(|x| add(Kind::Rule, &x.id));
        self.schedules
            .iter()
            .for_each(|x| add(Kind::Schedule, &x.name));
        self.event_source_mappings
            .iter()
            .for_each(|x| add(Kind::EventSourceMapping, &x.id));
        self.notifications
            .iter()
            .for_each(|x| add(Kind::Notification, &x.bucket));
        ids
    }
}

/// The bucket names a pipeline's inventory records (those an earlier
/// version named keep their names: [`PipelineId::aws_name`]).
pub fn recorded_buckets(dp: &crate::crd::DataPipeline) -> BTreeSet<String> {
    dp.status
        .iter()
        .flat_map(|s| &s.inventory)
        .filter(|e| e.kind == Kind::Bucket.as_str())
        .map(|e| e.id.clone())
        .collect()
}

/// Inputs of planning besides the spec.
#[derive(Clone, Copy, Debug)]
pub struct PlanContext<'a> {
    /// The pipeline's identity (names and tags derive from it).
    pub id: &'a PipelineId,
    /// Built-in handler artifacts.
    pub catalog: &'a Catalog,
    /// Permissions boundary for every role.
    pub permissions_boundary: Option<&'a str>,
}

/// Plans the desired AWS state. The spec must have passed
/// [`crate::reconcile::validate`]; references it checked are looked up here
/// without further errors.
pub fn plan(spec: &DataPipelineSpec, cx: PlanContext<'_>) -> Plan {
    let graph = Graph::new(spec, cx.id);
    let functions = function::plan(spec, &graph, cx);
    let workflows = workflow::plan(spec, &graph, cx.permissions_boundary);
    let (schedules, schedule_roles) = schedule::plan(spec, &graph, cx.permissions_boundary);
    let mut roles = functions.roles;
    roles.extend(workflows.roles);
    roles.extend(schedule_roles);
    Plan {
        buckets: bucket::plan(spec, &graph),
        queues: queue::plan(spec, &graph),
        streams: stream::plan(spec, &graph),
        tables: table::plan(spec, &graph),
        event_buses: events::plan_buses(spec, &graph),
        log_groups: workflows.log_groups,
        roles,
        functions: functions.functions,
        invoke_configs: functions.invoke_configs,
        permissions: functions.permissions,
        state_machines: workflows.state_machines,
        rules: events::plan_rules(spec, &graph),
        schedules,
        event_source_mappings: functions.event_source_mappings,
        notifications: bucket::plan_notifications(spec, &graph),
    }
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{crd::DataPipelineSpec, iam, naming};

    /// Every built-in handler, with the requirements the handlers crate
    /// declares, so the samples are checked against what the real handlers
    /// need.
    pub(crate) fn catalog() -> Catalog {
        Catalog::declared()
    }

    /// Every sample of `config/samples/`, one per pattern of the article.
    pub(crate) const SAMPLES: [&str; 6] = [
        "event-triggered.yaml",
        "fan-out.yaml",
        "orchestrated.yaml",
        "stream.yaml",
        "periodic-batch.yaml",
        "own-code.yaml",
    ];

    /// A sample of `config/samples/`, as a spec.
    pub(crate) fn sample(file: &str) -> DataPipelineSpec {
        let path = format!(
            "{}/../config/samples/{file}",
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
        );
        let raw = std::fs::read_to_string(&path).expect("sample");
        let doc: crate::crd::DataPipeline = serde_yaml::from_str(&raw).expect("sample parses");
        doc.spec
    }

    pub(crate) fn pid() -> PipelineId {
        PipelineId {
            prefix: "sluice".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            namespace: "data".into(),
            name: "orders".into(),
            uid: "uid-1".into(),
            namespace_uid: "ns-uid-1".into(),
            installation: crate::config::Secret("0123456789abcdef0123".into()),
            adopt_from: None,
            kept_bucket_names: Default::default(),
        }
    }

    pub(crate) fn pattern1() -> DataPipelineSpec {
        serde_yaml::from_str(
            r#"
buckets: [{name: input}, {name: output}]
functions:
  - name: processor
    handler: s3-json-transform
    memoryMiB: 256
    triggers: [{bucket: {name: input, events: ["s3:ObjectCreated:*"], suffix: .json}}]
    uses: [{bucket: output, access: write, env: OUTPUT_BUCKET}]
"#,
        )
        .expect("valid spec")
    }

    /// The plan of `spec` for [`pid`] with every built-in handler.
    pub(crate) fn plan_of(spec: &DataPipelineSpec) -> Plan {
        let catalog = catalog();
        let id = pid();
        plan(
            spec,
            PlanContext {
                id: &id,
                catalog: &catalog,
                permissions_boundary: None,
            },
        )
    }

    #[test]
    fn pattern1_plans_every_resource_once() {
        let p = plan_of(&pattern1());
        assert_eq!(p.roles.len(), 1);
        assert_eq!(p.buckets.len(), 2);
        assert_eq!(p.functions.len(), 1);
        assert_eq!(p.permissions.len(), 1);
        assert_eq!(p.notifications.len(), 1);
        assert_eq!(p.ids().len(), 6);
    }

    #[test]
    fn trigger_implies_permission_notification_and_read_grant() {
        let p = plan_of(&pattern1());
        let input = &p
            .buckets
            .iter()
            .find(|b| b.logical == "input")
            .expect("input")
            .name;
        let f = &p.functions[0];
        let perm = &p.permissions[0];
        assert_eq!(perm.function, f.name);
        assert_eq!(perm.statements[0].principal, "s3.amazonaws.com");
        assert_eq!(
            perm.statements[0].source_arn,
            format!("arn:aws:s3:::{input}")
        );
        assert_eq!(perm.statements[0].source_account, "123456789012");
        let n = &p.notifications[0];
        assert_eq!(&n.bucket, input);
        assert!(
            n.lambdas[0]
                .function_arn
                .ends_with(&format!(":function:{}", f.name))
        );
        assert_eq!(n.lambdas[0].suffix.as_deref(), Some(".json"));
        let policy = p.roles[0].policy.to_string();
        assert!(policy.contains(&format!("arn:aws:s3:::{input}/*")));
    }

    #[test]
    fn uses_implies_grant_and_environment() {
        let p = plan_of(&pattern1());
        let output = &p
            .buckets
            .iter()
            .find(|b| b.logical == "output")
            .expect("output")
            .name;
        let f = &p.functions[0];
        assert_eq!(f.environment.get("OUTPUT_BUCKET"), Some(output));
        assert_eq!(
            f.environment.get("SLUICE_PIPELINE").map(String::as_str),
            Some("data/orders")
        );
        let policy = &p.roles[0].policy;
        let put = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| {
                s["Action"]
                    .as_array()
                    .expect("actions")
                    .iter()
                    .any(|a| a == "s3:PutObject")
            })
            .expect("put grant");
        assert_eq!(put["Resource"][0], format!("arn:aws:s3:::{output}/*"));
        // Write access does not imply read.
        assert!(
            !policy
                .to_string()
                .contains(&format!("arn:aws:s3:::{output}\""))
        );
    }

    #[test]
    fn function_config_follows_spec() {
        let p = plan_of(&pattern1());
        let f = &p.functions[0];
        assert_eq!(f.memory_mib, 256);
        assert_eq!(f.timeout_seconds, 30);
        assert!(
            f.role_arn
                .ends_with(&format!(":role/sluice/{}", p.roles[0].name))
        );
        assert_eq!(
            f.tags.get(naming::TAG_PIPELINE_UID).map(String::as_str),
            Some("uid-1")
        );
    }

    #[test]
    fn planning_is_deterministic() {
        assert_eq!(plan_of(&pattern1()), plan_of(&pattern1()));
    }

    #[test]
    fn a_function_without_triggers_gets_no_permissions() {
        let mut spec = pattern1();
        spec.functions[0].triggers.clear();
        let p = plan_of(&spec);
        assert!(p.permissions.is_empty());
        assert!(p.notifications.is_empty());
    }

    fn fan_out() -> Plan {
        plan_of(&sample("fan-out.yaml"))
    }

    fn policy_grants(role: &RolePlan) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for s in role.policy["Statement"].as_array().expect("statements") {
            for r in s["Resource"].as_array().expect("resources") {
                let actions = s["Action"].as_array().expect("actions");
                out.entry(r.as_str().expect("resource").to_owned())
                    .or_default()
                    .extend(
                        actions
                            .iter()
                            .map(|a| a.as_str().expect("action").to_owned()),
                    );
            }
        }
        for actions in out.values_mut() {
            actions.sort();
        }
        out
    }

    fn role<'a>(p: &'a Plan, logical: &str) -> &'a RolePlan {
        p.roles
            .iter()
            .find(|r| r.logical == logical)
            .expect("role planned")
    }

    fn queue<'a>(p: &'a Plan, logical: &str) -> &'a QueuePlan {
        p.queues
            .iter()
            .find(|q| q.logical == logical)
            .expect("queue planned")
    }

    const ACCOUNT: &str = "123456789012";

    fn arn(service: &str, resource: &str) -> String {
        format!("arn:aws:{service}:us-east-1:{ACCOUNT}:{resource}")
    }

    #[test]
    fn fan_out_plans_the_articles_stack() {
        let p = fan_out();
        assert_eq!(p.buckets.len(), 3);
        assert_eq!(
            p.queues.len(),
            7,
            "three queues, their DLQs, router-failures"
        );
        assert_eq!(p.event_buses.len(), 1);
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.functions.len(), 5);
        assert_eq!(p.event_source_mappings.len(), 6);
        assert_eq!(p.invoke_configs.len(), 1);
        assert_eq!(
            p.permissions.len(),
            1,
            "only the router is invoked by a service"
        );
        assert_eq!(p.ids().len(), 34);
    }

    #[test]
    fn dead_letter_queues_come_first_and_receive_after_max_receives() {
        let p = fan_out();
        for t in ["type-a", "type-b", "type-c"] {
            let dlq_position = p
                .queues
                .iter()
                .position(|q| q.logical == format!("{t}-dlq"))
                .expect("dlq");
            let position = p.queues.iter().position(|q| q.logical == t).expect("queue");
            assert!(dlq_position < position, "{t}: DLQ created first");
            let q = queue(&p, t);
            let dlq = queue(&p, &format!("{t}-dlq"));
            let redrive = q.redrive.as_ref().expect("redrive");
            assert_eq!(redrive.dead_letter_arn, arn("sqs", &dlq.name));
            assert_eq!(redrive.max_receive_count, 3);
            assert_eq!(dlq.retention_seconds, queue::DEAD_LETTER_RETENTION_SECONDS);
            // 6 × the consumers' 30 s timeout.
            assert_eq!(q.visibility_timeout_seconds, 180);
            assert_eq!(dlq.visibility_timeout_seconds, 180);
        }
        assert_eq!(queue(&p, "router-failures").visibility_timeout_seconds, 30);
    }

    #[test]
    fn a_queue_policy_lets_exactly_its_rules_send() {
        let p = fan_out();
        let q = queue(&p, "type-a");
        let rule = p
            .rules
            .iter()
            .find(|r| r.logical == "type-a")
            .expect("rule");
        let policy = q.policy.as_ref().expect("policy");
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
        assert_eq!(statement["Action"], "sqs:SendMessage");
        assert_eq!(statement["Resource"], arn("sqs", &q.name));
        assert_eq!(
            statement["Condition"]["ArnEquals"]["aws:SourceArn"],
            serde_json::json!([rule.arn])
        );
        assert!(queue(&p, "type-a-dlq").policy.is_none());
        assert!(queue(&p, "router-failures").policy.is_none());
        // The rule sends to that queue only, on the pipeline's bus.
        assert_eq!(rule.targets.len(), 1);
        assert_eq!(rule.targets[0].arn, arn("sqs", &q.name));
        assert_eq!(rule.bus, p.event_buses[0].name);
        assert_eq!(
            rule.arn,
            arn("events", &format!("rule/{}/{}", rule.bus, rule.name))
        );
    }

    #[test]
    fn a_rule_targeting_a_generated_dead_letter_queue_gets_the_same_queue_policy() {
        let mut spec = sample("fan-out.yaml");
        spec.rules[0].targets[0].queue = Some("type-a-dlq".into());
        let p = plan_of(&spec);
        let dlq = queue(&p, "type-a-dlq");
        let rule = p
            .rules
            .iter()
            .find(|r| r.logical == spec.rules[0].name)
            .expect("rule");
        let policy = dlq.policy.as_ref().expect("a rule's target needs a policy");
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Resource"], arn("sqs", &dlq.name));
        assert_eq!(statement["Action"], "sqs:SendMessage");
        assert_eq!(
            statement["Condition"]["ArnEquals"]["aws:SourceArn"],
            serde_json::json!([rule.arn])
        );
    }

    #[test]
    fn every_edge_grants_exactly_its_actions() {
        let p = fan_out();
        let bucket = |l: &str| {
            p.buckets
                .iter()
                .find(|b| b.logical == l)
                .expect("bucket")
                .name
                .clone()
        };
        let function = |l: &str| {
            p.functions
                .iter()
                .find(|f| f.logical == l)
                .expect("fn")
                .name
                .clone()
        };
        let logs = |f: &str| {
            (
                arn("logs", &format!("log-group:/aws/lambda/{}:*", function(f))),
                vec![
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
            )
        };
        let table = &p.tables[0].name;
        let want =
            |pairs: Vec<(String, Vec<&str>)>| -> std::collections::BTreeMap<String, Vec<String>> {
                pairs
                    .into_iter()
                    .map(|(r, a)| (r, a.into_iter().map(str::to_owned).collect()))
                    .collect()
            };
        assert_eq!(
            policy_grants(role(&p, "processor-a")),
            want(vec![
                logs("processor-a"),
                (
                    format!("arn:aws:s3:::{}/*", bucket("input")),
                    vec!["s3:GetObject"]
                ),
                (
                    format!("arn:aws:s3:::{}", bucket("input")),
                    vec!["s3:ListBucket"]
                ),
                (
                    format!("arn:aws:s3:::{}/*", bucket("output")),
                    vec!["s3:AbortMultipartUpload", "s3:PutObject"]
                ),
                (
                    arn("sqs", &queue(&p, "type-a").name),
                    iam::actions::SQS_CONSUME.to_vec()
                ),
                (
                    arn("dynamodb", &format!("table/{table}")),
                    iam::actions::DYNAMODB_IDEMPOTENCY.to_vec()
                ),
            ])
        );
        assert_eq!(
            policy_grants(role(&p, "router")),
            want(vec![
                logs("router"),
                (
                    format!("arn:aws:s3:::{}/*", bucket("input")),
                    vec!["s3:GetObject"]
                ),
                (
                    arn("events", &format!("event-bus/{}", p.event_buses[0].name)),
                    vec!["events:PutEvents"]
                ),
                (
                    arn("sqs", &queue(&p, "router-failures").name),
                    vec!["sqs:SendMessage"]
                ),
            ])
        );
        // No resource is ever "*" (no role here traces with X-Ray).
        for r in &p.roles {
            assert!(
                !policy_grants(r).contains_key("*"),
                "{}: {:#}",
                r.logical,
                r.policy
            );
        }
    }

    #[test]
    fn edges_set_the_variables_the_handlers_read() {
        let p = fan_out();
        let f = |l: &str| p.functions.iter().find(|f| f.logical == l).expect("fn");
        assert_eq!(
            f("router").environment.get("EVENT_BUS"),
            Some(&p.event_buses[0].name)
        );
        let processor = f("processor-b");
        assert_eq!(
            processor.environment.get("IDEMPOTENCY_TABLE"),
            Some(&p.tables[0].name)
        );
        assert!(processor.environment.contains_key("OUTPUT_BUCKET"));
        assert!(
            processor.environment.contains_key("BUCKET_INPUT"),
            "default name"
        );
        // The idempotency table expires claims by the attribute they write.
        assert_eq!(p.tables[0].ttl_attribute.as_deref(), Some("expires_at"));
    }

    #[test]
    fn rule_targets_and_triggers_become_permissions_and_mappings() {
        let mut spec = sample("fan-out.yaml");
        // A rule may target a function directly.
        spec.rules[0].targets[0].queue = None;
        spec.rules[0].targets[0].function = Some("processor-a".into());
        let p = plan_of(&spec);
        let perms = p
            .permissions
            .iter()
            .find(|x| x.logical == "processor-a")
            .expect("permission");
        let rule = p
            .rules
            .iter()
            .find(|r| r.logical == "type-a")
            .expect("rule");
        assert_eq!(perms.statements[0].principal, "events.amazonaws.com");
        assert_eq!(perms.statements[0].source_arn, rule.arn);
        assert!(
            queue(&p, "type-a").policy.is_none(),
            "no rule sends to it now"
        );

        let dlq_handler: Vec<_> = p
            .event_source_mappings
            .iter()
            .filter(|m| m.logical == "dead-letters")
            .collect();
        assert_eq!(dlq_handler.len(), 3);
        assert!(
            dlq_handler
                .iter()
                .all(|m| m.report_batch_item_failures && m.batch_size == 10)
        );
    }

    #[test]
    fn the_stream_sample_maps_the_articles_settings() {
        let p = plan_of(&sample("stream.yaml"));
        let m = &p.event_source_mappings[0];
        assert_eq!(m.source, function::SourceKind::Stream);
        assert_eq!(m.batch_size, 100);
        assert_eq!(m.batching_window_seconds, 60);
        assert_eq!(
            m.starting_position,
            Some(crate::crd::StartingPosition::Latest)
        );
        assert_eq!(m.bisect_on_error, Some(true));
        assert_eq!(m.maximum_retry_attempts, Some(3));
        assert_eq!(
            m.on_failure_arn.as_deref(),
            Some(arn("sqs", &queue(&p, "failed-records").name).as_str())
        );
        assert_eq!(
            m.source_arn,
            arn("kinesis", &format!("stream/{}", p.streams[0].name))
        );
        assert_eq!(p.streams[0].kms_key, stream::AWS_MANAGED_KINESIS_KEY);
        assert_eq!(p.streams[0].shards, Some(1));
        let grants = policy_grants(role(&p, "processor"));
        assert_eq!(
            grants[&m.source_arn],
            iam::actions::KINESIS_CONSUME
                .iter()
                .map(|a| (*a).to_owned())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            p.functions[0].environment.get("RESULTS_TABLE"),
            Some(&p.tables[0].name)
        );
    }

    #[test]
    fn a_customer_key_is_granted_to_readers_and_writers() {
        let mut spec = sample("stream.yaml");
        let key = "arn:aws:kms:us-east-1:123456789012:key/abc".to_owned();
        spec.streams[0].encryption = Some(crate::crd::KmsEncryption {
            kms_key_arn: key.clone(),
        });
        spec.tables[0].encryption = Some(crate::crd::KmsEncryption {
            kms_key_arn: key.clone(),
        });
        let p = plan_of(&spec);
        let grants = policy_grants(role(&p, "processor"));
        // Reads the stream (decrypt) and writes the table (encrypt too).
        assert_eq!(
            grants[&key],
            iam::actions::KMS_ENCRYPT
                .iter()
                .map(|a| (*a).to_owned())
                .collect::<Vec<_>>()
        );
        assert_eq!(p.streams[0].kms_key, key);
    }

    #[test]
    fn a_workflow_runs_its_functions_by_arn_under_a_role_that_may_invoke_only_them() {
        let p = plan_of(&sample("orchestrated.yaml"));
        let machine = &p.state_machines[0];
        let arn_of = |l: &str| {
            arn(
                "lambda",
                &format!(
                    "function:{}",
                    p.functions
                        .iter()
                        .find(|f| f.logical == l)
                        .expect("fn")
                        .name
                ),
            )
        };
        for (state, function) in [
            ("Extract", "extract"),
            ("Transform", "transform"),
            ("Load", "load"),
            ("Notify", "notify"),
        ] {
            assert_eq!(
                machine.definition["States"][state]["Resource"],
                arn_of(function),
                "{state}"
            );
        }
        // Retry, Catch and Fail as written.
        let extract = &machine.definition["States"]["Extract"];
        assert_eq!(
            extract["Retry"],
            serde_json::json!([{"ErrorEquals": ["States.TaskFailed", "States.Timeout"],
                "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}])
        );
        assert_eq!(
            extract["Catch"],
            serde_json::json!([{"ErrorEquals": ["States.ALL"], "Next": "ProcessingFailed"}])
        );
        assert_eq!(
            machine.definition["States"]["ProcessingFailed"]["Error"],
            "DataPipelineError"
        );
        let workflow_role = role(&p, "workflow:etl");
        assert_eq!(
            machine.role_arn,
            arn("iam", &format!("role/sluice/{}", workflow_role.name)).replace(":us-east-1:", "::")
        );
        assert_eq!(
            workflow_role.trust_policy["Statement"][0]["Principal"]["Service"],
            "states.amazonaws.com"
        );
        let grants = policy_grants(workflow_role);
        let want: std::collections::BTreeMap<String, Vec<String>> =
            ["extract", "transform", "load", "notify"]
                .iter()
                .map(|f| (arn_of(f), vec!["lambda:InvokeFunction".to_owned()]))
                .collect();
        assert_eq!(grants, want);
    }

    #[test]
    fn a_bucket_starts_a_workflow_through_eventbridge_without_a_function() {
        let p = plan_of(&sample("orchestrated.yaml"));
        let machine = &p.state_machines[0];
        let input = p
            .buckets
            .iter()
            .find(|b| b.logical == "input")
            .expect("input");
        let n = p
            .notifications
            .iter()
            .find(|n| n.logical == "input")
            .expect("notification");
        assert!(n.eventbridge && n.lambdas.is_empty());
        let rule = p
            .rules
            .iter()
            .find(|r| r.logical == "etl-from-input")
            .expect("rule");
        assert_eq!(rule.bus, "default");
        assert_eq!(
            rule.pattern,
            serde_json::json!({"source": ["aws.s3"], "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [input.name]}, "object": {"key": [{"suffix": ".json"}]}}})
        );
        let start = role(&p, "start:etl");
        assert_eq!(rule.targets[0].arn, machine.arn);
        assert_eq!(
            rule.targets[0].role_arn.as_deref(),
            Some(
                arn("iam", &format!("role/sluice/{}", start.name))
                    .replace(":us-east-1:", "::")
                    .as_str()
            )
        );
        assert_eq!(
            start.trust_policy["Statement"][0]["Principal"]["Service"],
            "events.amazonaws.com"
        );
        assert_eq!(
            policy_grants(start),
            [(
                machine.arn.clone(),
                vec!["states:StartExecution".to_owned()]
            )]
            .into_iter()
            .collect()
        );
        assert!(p.permissions.is_empty(), "no function is invoked by S3");
    }

    #[test]
    fn a_schedule_role_may_run_exactly_its_target_and_send_to_its_dead_letter_queue() {
        let p = plan_of(&sample("periodic-batch.yaml"));
        let s = &p.schedules[0];
        let batch = &p.functions[0];
        let dlq = queue(&p, "batch-failures");
        assert_eq!(s.expression, "cron(0 1 * * ? *)");
        assert_eq!(s.timezone, "UTC");
        assert_eq!(
            s.target_arn,
            arn("lambda", &format!("function:{}", batch.name))
        );
        assert_eq!(
            s.dead_letter_arn.as_deref(),
            Some(arn("sqs", &dlq.name).as_str())
        );
        assert_eq!(s.retry, Some((3, 3600)));
        let r = role(&p, "schedule:daily");
        assert_eq!(
            s.role_arn,
            arn("iam", &format!("role/sluice/{}", r.name)).replace(":us-east-1:", "::")
        );
        assert_eq!(
            r.trust_policy["Statement"][0]["Principal"]["Service"],
            "scheduler.amazonaws.com"
        );
        assert_eq!(
            policy_grants(r),
            [
                (
                    s.target_arn.clone(),
                    vec!["lambda:InvokeFunction".to_owned()]
                ),
                (arn("sqs", &dlq.name), vec!["sqs:SendMessage".to_owned()]),
            ]
            .into_iter()
            .collect()
        );
        assert!(
            s.tags.contains_key(naming::TAG_PIPELINE_UID),
            "ownership kept in the description"
        );
    }

    #[test]
    fn functions_may_start_workflows_they_use() {
        let mut spec = sample("orchestrated.yaml");
        let mut trigger = spec.functions[0].clone();
        trigger.name = "trigger".into();
        trigger.uses = vec![
            serde_yaml::from_str("{workflow: etl, access: start, env: STATE_MACHINE_ARN}")
                .expect("use"),
        ];
        spec.functions.push(trigger);
        let p = plan_of(&spec);
        let f = p
            .functions
            .iter()
            .find(|f| f.logical == "trigger")
            .expect("trigger");
        let machine = &p.state_machines[0];
        assert_eq!(f.environment.get("STATE_MACHINE_ARN"), Some(&machine.arn));
        assert_eq!(
            policy_grants(role(&p, "trigger"))[&machine.arn],
            vec!["states:StartExecution".to_owned()]
        );
    }

    #[test]
    fn service_roles_never_share_a_name_with_a_function_role() {
        let mut spec = sample("orchestrated.yaml");
        // A function named like the workflow.
        let mut clash = spec.functions[0].clone();
        clash.name = "etl".into();
        spec.functions.push(clash);
        let p = plan_of(&spec);
        let names: std::collections::BTreeSet<&str> =
            p.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), p.roles.len());
    }
}
