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
pub mod stream;
pub mod table;

use std::collections::BTreeSet;

pub use bucket::{BucketPlan, LambdaNotification, NotificationPlan};
pub use events::{EventBusPlan, RulePlan, TargetPlan};
pub use function::{
    EventSourceMappingPlan, FunctionPlan, INLINE_POLICY, InvokeConfigPlan, InvokeStatement,
    PermissionsPlan, RUNTIME, RolePlan, STATEMENT_PREFIX,
};
pub use graph::Graph;
pub use queue::QueuePlan;
pub use stream::StreamPlan;
pub use table::TablePlan;

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
    /// IAM execution role with its inline policy.
    Role,
    /// Lambda function.
    Function,
    /// A function's asynchronous invocation settings and failure destination.
    InvokeConfig,
    /// The Sluice statements of a function's resource policy.
    Permissions,
    /// EventBridge rule with its targets.
    Rule,
    /// Lambda event source mapping (queue or stream → function).
    EventSourceMapping,
    /// A bucket's notification configuration.
    Notification,
}

impl Kind {
    /// Every kind, in apply order.
    pub const APPLY_ORDER: [Kind; 12] = [
        Kind::Bucket,
        Kind::Queue,
        Kind::Stream,
        Kind::Table,
        Kind::EventBus,
        Kind::Role,
        Kind::Function,
        Kind::InvokeConfig,
        Kind::Permissions,
        Kind::Rule,
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
            Kind::Role => "IAM::Role",
            Kind::Function => "Lambda::Function",
            Kind::InvokeConfig => "Lambda::EventInvokeConfig",
            Kind::Permissions => "Lambda::Permission",
            Kind::Rule => "Events::Rule",
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
    /// Roles, one per function.
    pub roles: Vec<RolePlan>,
    /// Functions.
    pub functions: Vec<FunctionPlan>,
    /// Asynchronous invocation settings of functions that set them.
    pub invoke_configs: Vec<InvokeConfigPlan>,
    /// Invoke permissions of functions that S3 or a rule invokes.
    pub permissions: Vec<PermissionsPlan>,
    /// Rules.
    pub rules: Vec<RulePlan>,
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
        self.rules.iter().for_each(|x| add(Kind::Rule, &x.id));
        self.event_source_mappings
            .iter()
            .for_each(|x| add(Kind::EventSourceMapping, &x.id));
        self.notifications
            .iter()
            .for_each(|x| add(Kind::Notification, &x.bucket));
        ids
    }
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
    Plan {
        buckets: bucket::plan(spec, &graph),
        queues: queue::plan(spec, &graph),
        streams: stream::plan(spec, &graph),
        tables: table::plan(spec, &graph),
        event_buses: events::plan_buses(spec, &graph),
        roles: functions.roles,
        functions: functions.functions,
        invoke_configs: functions.invoke_configs,
        permissions: functions.permissions,
        rules: events::plan_rules(spec, &graph),
        event_source_mappings: functions.event_source_mappings,
        notifications: bucket::plan_notifications(spec, &graph),
    }
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{artifacts::Artifact, crd::DataPipelineSpec, naming};

    pub(crate) fn catalog() -> Catalog {
        Catalog::from_artifacts(vec![Artifact {
            name: "s3-json-transform".into(),
            zip: "s3-json-transform.zip".into(),
            sha256: "00".repeat(32),
            size: 1,
            dir: "/nonexistent".into(),
            architecture: "x86_64".into(),
            required_env: Default::default(),
        }])
    }

    pub(crate) fn pid() -> PipelineId {
        PipelineId {
            prefix: "sluice".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            namespace: "data".into(),
            name: "orders".into(),
            uid: "uid-1".into(),
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

    fn plan_of(spec: &DataPipelineSpec) -> Plan {
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
        assert!(f.role_arn.ends_with(&format!(":role/{}", p.roles[0].name)));
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
}
