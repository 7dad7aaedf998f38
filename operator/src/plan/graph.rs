//! Every node of a pipeline resolved to its AWS name and ARN, so each
//! kind's planner looks up what an edge points at instead of deriving it
//! again.

use std::collections::BTreeMap;

use crate::{
    crd::DataPipelineSpec,
    iam,
    naming::{NameKind, PipelineId},
};

/// Name of the account's default EventBridge bus.
pub const DEFAULT_BUS: &str = "default";

/// One resolved node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Logical name in the spec.
    pub logical: String,
    /// AWS name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Customer-managed KMS key encrypting it, if any.
    pub kms_key: Option<String>,
}

/// A resolved queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueNode {
    /// Name and ARN.
    pub node: Node,
    /// Queue URL (the form SQS accepts in every region).
    pub url: String,
    /// FIFO queue.
    pub fifo: bool,
    /// For a dead-letter queue Sluice creates: the queue it serves.
    pub dead_letter_of: Option<String>,
}

/// A resolved rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleNode {
    /// Name and ARN.
    pub node: Node,
    /// Name of its bus (`default` for the account's).
    pub bus: String,
}

/// The resolved graph of one pipeline.
#[derive(Clone, Debug)]
pub struct Graph<'a> {
    /// The pipeline.
    pub id: &'a PipelineId,
    /// AWS partition of the pipeline's region.
    pub partition: &'static str,
    /// Buckets by logical name.
    pub buckets: BTreeMap<String, Node>,
    /// Queues by logical name, with the dead-letter queues Sluice creates
    /// (`<queue>-dlq`).
    pub queues: BTreeMap<String, QueueNode>,
    /// Streams by logical name.
    pub streams: BTreeMap<String, Node>,
    /// Tables by logical name.
    pub tables: BTreeMap<String, Node>,
    /// Buses by logical name, with `default`.
    pub buses: BTreeMap<String, Node>,
    /// Rules by logical name.
    pub rules: BTreeMap<String, RuleNode>,
    /// Functions by logical name.
    pub functions: BTreeMap<String, Node>,
    /// Execution roles by function logical name.
    pub roles: BTreeMap<String, Node>,
    /// State machines by workflow logical name.
    pub workflows: BTreeMap<String, Node>,
    /// Roles of the state machines, by workflow logical name.
    pub workflow_roles: BTreeMap<String, Node>,
    /// Roles EventBridge assumes to start a workflow, by workflow logical
    /// name (for workflows a rule or a bucket starts).
    pub start_roles: BTreeMap<String, Node>,
    /// Schedules by logical name.
    pub schedules: BTreeMap<String, Node>,
    /// Roles the scheduler assumes, by schedule logical name.
    pub schedule_roles: BTreeMap<String, Node>,
}

/// The logical name a role of another node is hashed under: distinct from
/// every function's name (which has no ':').
pub fn role_key(purpose: &str, logical: &str) -> String {
    format!("{purpose}:{logical}")
}

/// The logical name of the dead-letter queue Sluice creates for `queue`.
pub fn dead_letter_name(queue: &str) -> String {
    format!("{queue}-dlq")
}

impl<'a> Graph<'a> {
    /// Resolves every node of `spec`.
    pub fn new(spec: &DataPipelineSpec, id: &'a PipelineId) -> Self {
        let partition = iam::partition(&id.region);
        let (region, account) = (&id.region, &id.account);
        let node = |logical: &str, name: String, arn: String, kms: Option<&String>| Node {
            logical: logical.to_owned(),
            name,
            arn,
            kms_key: kms.cloned(),
        };

        let buckets = spec
            .buckets
            .iter()
            .map(|b| {
                let name = id.aws_name(NameKind::Bucket, &b.name);
                let arn = format!("arn:{partition}:s3:::{name}");
                (b.name.clone(), node(&b.name, name, arn, None))
            })
            .collect();

        let mut queues = BTreeMap::new();
        let mut add_queue = |logical: &str, fifo: bool, kms: Option<&String>, of: Option<&str>| {
            let kind = if fifo {
                NameKind::FifoQueue
            } else {
                NameKind::Queue
            };
            let name = id.aws_name(kind, logical);
            let arn = format!("arn:{partition}:sqs:{region}:{account}:{name}");
            let url = format!(
                "https://sqs.{region}.{}/{account}/{name}",
                dns_suffix(partition)
            );
            queues.insert(
                logical.to_owned(),
                QueueNode {
                    node: node(logical, name, arn, kms),
                    url,
                    fifo,
                    dead_letter_of: of.map(str::to_owned),
                },
            );
        };
        for q in &spec.queues {
            let kms = q.encryption.as_ref().map(|e| &e.kms_key_arn);
            add_queue(&q.name, q.fifo, kms, None);
            if let Some(d) = &q.dead_letter
                && d.queue.is_none()
            {
                add_queue(&dead_letter_name(&q.name), q.fifo, kms, Some(&q.name));
            }
        }

        let streams = spec
            .streams
            .iter()
            .map(|s| {
                let name = id.aws_name(NameKind::Stream, &s.name);
                let arn = format!("arn:{partition}:kinesis:{region}:{account}:stream/{name}");
                let kms = s.encryption.as_ref().map(|e| &e.kms_key_arn);
                (s.name.clone(), node(&s.name, name, arn, kms))
            })
            .collect();

        let tables = spec
            .tables
            .iter()
            .map(|t| {
                let name = id.aws_name(NameKind::Table, &t.name);
                let arn = format!("arn:{partition}:dynamodb:{region}:{account}:table/{name}");
                let kms = t.encryption.as_ref().map(|e| &e.kms_key_arn);
                (t.name.clone(), node(&t.name, name, arn, kms))
            })
            .collect();

        let bus_arn =
            |name: &str| format!("arn:{partition}:events:{region}:{account}:event-bus/{name}");
        let mut buses: BTreeMap<String, Node> = spec
            .event_buses
            .iter()
            .map(|b| {
                let name = id.aws_name(NameKind::EventBus, &b.name);
                let arn = bus_arn(&name);
                (b.name.clone(), node(&b.name, name, arn, None))
            })
            .collect();
        buses.insert(
            DEFAULT_BUS.to_owned(),
            node(
                DEFAULT_BUS,
                DEFAULT_BUS.to_owned(),
                bus_arn(DEFAULT_BUS),
                None,
            ),
        );

        let rules = spec
            .rules
            .iter()
            .map(|r| {
                let name = id.aws_name(NameKind::Rule, &r.name);
                let bus = r
                    .event_bus
                    .as_ref()
                    .and_then(|b| buses.get(b))
                    .map_or_else(|| DEFAULT_BUS.to_owned(), |b| b.name.clone());
                let path = if bus == DEFAULT_BUS {
                    name.clone()
                } else {
                    format!("{bus}/{name}")
                };
                let arn = format!("arn:{partition}:events:{region}:{account}:rule/{path}");
                let rule = RuleNode {
                    node: node(&r.name, name, arn, None),
                    bus,
                };
                (r.name.clone(), rule)
            })
            .collect();

        let functions = spec
            .functions
            .iter()
            .map(|f| {
                let name = id.aws_name(NameKind::Function, &f.name);
                let arn = format!("arn:{partition}:lambda:{region}:{account}:function:{name}");
                (f.name.clone(), node(&f.name, name, arn, None))
            })
            .collect();

        let role = |key: &str, logical: &str| {
            let name = id.aws_name(NameKind::Role, key);
            let arn = format!(
                "arn:{partition}:iam::{account}:role{}{name}",
                id.role_path()
            );
            (logical.to_owned(), node(key, name, arn, None))
        };
        let roles = spec
            .functions
            .iter()
            .map(|f| role(&f.name, &f.name))
            .collect();

        let workflows = spec
            .workflows
            .iter()
            .map(|w| {
                let name = id.aws_name(NameKind::StateMachine, &w.name);
                let arn = format!("arn:{partition}:states:{region}:{account}:stateMachine:{name}");
                (w.name.clone(), node(&w.name, name, arn, None))
            })
            .collect();
        let workflow_roles = spec
            .workflows
            .iter()
            .map(|w| role(&role_key("workflow", &w.name), &w.name))
            .collect();
        let started_by_events = |w: &str| {
            spec.rules
                .iter()
                .any(|r| r.targets.iter().any(|t| t.workflow.as_deref() == Some(w)))
                || spec
                    .workflows
                    .iter()
                    .any(|x| x.name == w && !x.triggers.is_empty())
        };
        let start_roles = spec
            .workflows
            .iter()
            .filter(|w| started_by_events(&w.name))
            .map(|w| role(&role_key("start", &w.name), &w.name))
            .collect();
        let schedules = spec
            .schedules
            .iter()
            .map(|s| {
                let name = id.aws_name(NameKind::Schedule, &s.name);
                let arn =
                    format!("arn:{partition}:scheduler:{region}:{account}:schedule/default/{name}");
                (s.name.clone(), node(&s.name, name, arn, None))
            })
            .collect();
        let schedule_roles = spec
            .schedules
            .iter()
            .map(|s| role(&role_key("schedule", &s.name), &s.name))
            .collect();

        Graph {
            id,
            partition,
            buckets,
            queues,
            streams,
            tables,
            buses,
            rules,
            functions,
            roles,
            workflows,
            workflow_roles,
            start_roles,
            schedules,
            schedule_roles,
        }
    }
}

/// The DNS suffix of service endpoints in a partition.
fn dns_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    }
}
