//! Least-privilege IAM derived from the pipeline graph, and the
//! normalisation that lets Sluice compare policy documents with what AWS
//! returns without flapping.
//!
//! Every grant comes from an edge: a bucket trigger grants `s3:GetObject` on
//! that bucket's objects; a `uses` edge grants exactly its access; logs are
//! granted on the function's own log group only; X-Ray only when tracing is
//! `Active`. Nothing is ever granted on `*` except the two X-Ray actions,
//! which AWS does not scope to resources.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The trust policy that lets Lambda assume a function's execution role,
/// restricted to the pipeline's own account.
pub fn lambda_trust_policy(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

/// The actions each edge grants, in one place so the README's table, the
/// planner and the tests agree.
pub mod actions {
    /// Read objects (bucket trigger, `uses: bucket, access: read`), on `<bucket>/*`.
    pub const S3_GET_OBJECTS: &[&str] = &["s3:GetObject"];
    /// List a bucket (`access: read`), on the bucket.
    pub const S3_LIST: &[&str] = &["s3:ListBucket"];
    /// Write objects (`access: write`), on `<bucket>/*`.
    pub const S3_PUT_OBJECTS: &[&str] = &["s3:AbortMultipartUpload", "s3:PutObject"];
    /// Consume a queue (queue trigger), on the queue.
    pub const SQS_CONSUME: &[&str] = &[
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ];
    /// Send to a queue (`access: send`, failure destinations), on the queue.
    pub const SQS_SEND: &[&str] = &["sqs:SendMessage"];
    /// Put events on a bus (`access: put`), on the bus.
    pub const EVENTS_PUT: &[&str] = &["events:PutEvents"];
    /// Read a table (`access: read`), on the table and its indexes.
    pub const DYNAMODB_READ: &[&str] = &[
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
    ];
    /// Write a table (`access: write`), on the table.
    pub const DYNAMODB_WRITE: &[&str] = &[
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:DescribeTable",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ];
    /// The idempotency claims (`idempotency: {table}`), on the table.
    pub const DYNAMODB_IDEMPOTENCY: &[&str] = &[
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ];
    /// Consume a stream (stream trigger), on the stream.
    pub const KINESIS_CONSUME: &[&str] = &[
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
        "kinesis:SubscribeToShard",
    ];
    /// Read a stream (`access: read`), on the stream.
    pub const KINESIS_READ: &[&str] = &[
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    ];
    /// Put records on a stream (`access: put`), on the stream.
    pub const KINESIS_PUT: &[&str] = &["kinesis:PutRecord", "kinesis:PutRecords"];
    /// Read what a customer-managed key encrypts, on the key.
    pub const KMS_DECRYPT: &[&str] = &["kms:Decrypt", "kms:DescribeKey"];
    /// Write what a customer-managed key encrypts, on the key.
    pub const KMS_ENCRYPT: &[&str] = &[
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey*",
        "kms:ReEncrypt*",
    ];
    /// Start a state machine's executions, on the state machine.
    pub const STATES_START: &[&str] = &["states:StartExecution"];
    /// Invoke a function (workflow task), on the function.
    pub const LAMBDA_INVOKE: &[&str] = &["lambda:InvokeFunction"];
}

/// The grants of one role: actions per resource ARN, each under an
/// optional condition. Built from the graph's edges; never holds a wildcard
/// resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// (resource, condition as JSON text) → actions.
    by_resource: BTreeMap<(String, Option<String>), BTreeSet<&'static str>>,
}

/// The condition on every S3 grant: the bucket belongs to `account`, so a
/// bucket of the same name another account made first (squatted) is never
/// reached, whatever its own policy allows.
pub fn in_account(account: &str) -> Value {
    json!({"StringEquals": {"s3:ResourceAccount": account}})
}

/// The condition on every grant to put events: only with the pipeline's own
/// `source` ([`crate::naming::PipelineId::event_source`]).
pub fn with_source(source: &str) -> Value {
    json!({"StringEquals": {"events:source": source}})
}

impl Grants {
    /// Allows `actions` on `resource` (an ARN; object ARNs end in `/*`).
    pub fn allow(&mut self, resource: impl Into<String>, actions: &[&'static str]) {
        self.allow_if(resource, actions, None);
    }

    /// Allows `actions` on `resource` when `condition` (an IAM `Condition`
    /// block) holds.
    pub fn allow_if(
        &mut self,
        resource: impl Into<String>,
        actions: &[&'static str],
        condition: Option<&Value>,
    ) {
        self.by_resource
            .entry((resource.into(), condition.map(Value::to_string)))
            .or_default()
            .extend(actions.iter().copied());
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.by_resource.is_empty()
    }

    /// The actions granted on `resource`, under any condition.
    pub fn actions_on(&self, resource: &str) -> Vec<&'static str> {
        self.by_resource
            .iter()
            .filter(|((r, _), _)| r == resource)
            .flat_map(|(_, actions)| actions.iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// One statement per distinct action set and condition, listing every
    /// resource that gets exactly that set, in a stable order.
    pub fn statements(&self) -> Vec<Value> {
        type Key<'a> = (Vec<&'static str>, Option<&'a str>);
        let mut by_actions: BTreeMap<Key<'_>, Vec<&str>> = BTreeMap::new();
        for ((resource, condition), actions) in &self.by_resource {
            by_actions
                .entry((actions.iter().copied().collect(), condition.as_deref()))
                .or_default()
                .push(resource);
        }
        by_actions
            .into_iter()
            .enumerate()
            .map(|(index, ((actions, condition), resources))| {
                let mut statement = json!({
                    "Sid": format!("Grant{index}"),
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": resources,
                });
                if let Some(condition) = condition.and_then(|c| serde_json::from_str(c).ok()) {
                    statement["Condition"] = condition;
                }
                statement
            })
            .collect()
    }
}

/// Inputs of a function's execution policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionGrants {
    /// Partition of the region.
    pub partition: String,
    /// Region of the function.
    pub region: String,
    /// Account of the function.
    pub account: String,
    /// AWS name of the function (its log group is `/aws/lambda/<name>`).
    pub function_name: String,
    /// What the function's edges grant.
    pub grants: Grants,
    /// X-Ray tracing is `Active`.
    pub xray: bool,
    /// In a VPC: the network interfaces Lambda makes with the role.
    pub vpc: Option<NetworkAccess>,
}

/// The subnets and security groups of a function in a VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAccess {
    /// Subnet ids.
    pub subnet_ids: Vec<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
}

/// The inline execution policy of a function's role.
pub fn execution_policy(g: &ExecutionGrants) -> Value {
    let mut statements = vec![json!({
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [format!(
            "arn:{}:logs:{}:{}:log-group:/aws/lambda/{}:*",
            g.partition, g.region, g.account, g.function_name
        )],
    })];
    statements.extend(g.grants.statements());
    if let Some(net) = &g.vpc {
        // What Lambda does with the role to put the function in the VPC
        // (AWS's AWSLambdaVPCAccessExecutionRole, scoped): make interfaces
        // only in these subnets with these groups, manage only interfaces
        // of this account and region. The two Describe actions take no
        // resource (EC2 has none for them).
        let ec2 = |what: &str| format!("arn:{}:ec2:{}:{}:{what}", g.partition, g.region, g.account);
        let mut create: Vec<String> = net
            .subnet_ids
            .iter()
            .map(|s| ec2(&format!("subnet/{s}")))
            .chain(
                net.security_group_ids
                    .iter()
                    .map(|sg| ec2(&format!("security-group/{sg}"))),
            )
            .collect();
        create.push(ec2("network-interface/*"));
        statements.push(json!({
            "Sid": "NetworkInterfacesInItsSubnets",
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface"],
            "Resource": create,
        }));
        statements.push(json!({
            "Sid": "ManageNetworkInterfaces",
            "Effect": "Allow",
            "Action": [
                "ec2:AssignPrivateIpAddresses",
                "ec2:DeleteNetworkInterface",
                "ec2:UnassignPrivateIpAddresses"
            ],
            "Resource": [ec2("network-interface/*")],
        }));
        statements.push(json!({
            "Sid": "DescribeNetwork",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            "Resource": ["*"],
        }));
    }
    if g.xray {
        statements.push(json!({
            "Sid": "WriteTraces",
            "Effect": "Allow",
            "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            "Resource": ["*"],
        }));
    }
    document(statements)
}

/// A policy granting exactly `grants` (no logs), for the roles a service
/// assumes: a rule's, a schedule's.
pub fn service_policy(grants: &Grants) -> Value {
    document(grants.statements())
}

/// A policy document of `statements`; none for a role granted nothing (a
/// workflow of Pass and Choice states only). IAM refuses a document without
/// a statement (MalformedPolicyDocument), so such a role gets no inline
/// policy at all: see [`grants_nothing`].
fn document(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Whether a generated policy has no statement: its role gets no inline
/// policy (and loses a stale one) instead of one IAM would refuse.
pub fn grants_nothing(policy: &Value) -> bool {
    policy
        .get("Statement")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

/// The actions Step Functions needs to deliver execution logs to
/// CloudWatch Logs. AWS documents them on `*`: log delivery is set up
/// through account-level APIs that take no resource.
pub const STATES_LOG_DELIVERY: &[&str] = &[
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
];

/// The role policy of a workflow: `grants` (the functions its tasks
/// invoke), plus log delivery when it logs and X-Ray when it traces, the
/// two grants AWS does not scope to resources.
pub fn workflow_policy(grants: &Grants, logging: bool, tracing: bool) -> Value {
    let mut statements = grants.statements();
    if logging {
        statements.push(json!({
            "Sid": "DeliverLogs",
            "Effect": "Allow",
            "Action": STATES_LOG_DELIVERY,
            "Resource": ["*"],
        }));
    }
    if tracing {
        statements.push(json!({
            "Sid": "WriteTraces",
            "Effect": "Allow",
            "Action": [
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:PutTelemetryRecords",
                "xray:PutTraceSegments"
            ],
            "Resource": ["*"],
        }));
    }
    document(statements)
}

/// A trust policy letting `service` (e.g. `states.amazonaws.com`) assume a
/// role, for this account only.
pub fn service_trust_policy(service: &str, account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

/// Parses a policy document as IAM returns it: sometimes URL-encoded JSON.
pub fn parse_policy(raw: &str) -> Option<Value> {
    serde_json::from_str(raw).ok().or_else(|| {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?;
        serde_json::from_str(&decoded).ok()
    })
}

/// Normalises a policy document so that two documents that mean the same
/// compare equal: single strings and one-element lists are the same, order
/// of statements and of actions/resources does not matter, and `Sid`s are
/// ignored (AWS may add or drop them).
pub fn normalize_policy(doc: &Value) -> Value {
    let mut statements: Vec<Value> = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().map(normalize_statement).collect(),
        Some(single) => vec![normalize_statement(single)],
        None => Vec::new(),
    };
    statements.sort_by_key(|s| s.to_string());
    json!({
        "Version": doc.get("Version").cloned().unwrap_or(Value::Null),
        "Statement": statements,
    })
}

fn normalize_statement(statement: &Value) -> Value {
    let Value::Object(map) = statement else {
        return statement.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        match key.as_str() {
            "Sid" => {}
            "Action" | "NotAction" | "Resource" | "NotResource" => {
                out.insert(key.clone(), string_set(value));
            }
            "Principal" | "NotPrincipal" => {
                out.insert(key.clone(), normalize_principal(value));
            }
            "Condition" => {
                out.insert(key.clone(), normalize_condition(value));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

fn string_set(value: &Value) -> Value {
    let set: BTreeSet<String> = match value {
        Value::String(s) => BTreeSet::from([s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        other => BTreeSet::from([other.to_string()]),
    };
    Value::Array(set.into_iter().map(Value::String).collect())
}

fn normalize_principal(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), string_set(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn normalize_condition(value: &Value) -> Value {
    match value {
        Value::Object(operators) => Value::Object(
            operators
                .iter()
                .map(|(op, keys)| {
                    let keys = match keys {
                        Value::Object(keys) => Value::Object(
                            keys.iter()
                                // Condition keys are case-insensitive in IAM.
                                .map(|(k, v)| (k.to_ascii_lowercase(), string_set(v)))
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    (op.clone(), keys)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether two policy documents grant the same.
pub fn same_policy(a: &Value, b: &Value) -> bool {
    normalize_policy(a) == normalize_policy(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> ExecutionGrants {
        let mut grants = Grants::default();
        grants.allow("arn:aws:s3:::in-bucket/*", actions::S3_GET_OBJECTS);
        grants.allow("arn:aws:s3:::out-bucket/*", actions::S3_PUT_OBJECTS);
        ExecutionGrants {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            function_name: "fn-1".into(),
            grants,
            xray: false,
            vpc: None,
        }
    }

    fn grants_on(doc: &Value, action: &str) -> Vec<String> {
        doc["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter(|s| {
                s["Action"]
                    .as_array()
                    .expect("actions")
                    .iter()
                    .any(|a| a == action)
            })
            .flat_map(|s| s["Resource"].as_array().expect("resources").clone())
            .map(|r| r.as_str().expect("resource").to_owned())
            .collect()
    }

    #[test]
    fn policy_grants_exactly_the_edges() {
        let doc = execution_policy(&grants());
        assert_eq!(
            grants_on(&doc, "s3:GetObject"),
            vec!["arn:aws:s3:::in-bucket/*"]
        );
        assert_eq!(
            grants_on(&doc, "s3:PutObject"),
            vec!["arn:aws:s3:::out-bucket/*"]
        );
        assert!(grants_on(&doc, "s3:ListBucket").is_empty());
        assert!(grants_on(&doc, "xray:PutTraceSegments").is_empty());
        assert_eq!(
            grants_on(&doc, "logs:PutLogEvents"),
            vec!["arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/fn-1:*"]
        );
        // Nothing but X-Ray may ever be granted on "*".
        assert!(!doc.to_string().contains("\"*\""));
    }

    #[test]
    fn resources_with_the_same_actions_share_a_statement() {
        let mut g = Grants::default();
        g.allow("arn:q1", actions::SQS_SEND);
        g.allow("arn:q2", actions::SQS_SEND);
        g.allow("arn:q2", actions::SQS_SEND);
        g.allow("arn:t", actions::DYNAMODB_WRITE);
        let statements = g.statements();
        assert_eq!(statements.len(), 2);
        let send = statements
            .iter()
            .find(|s| s["Action"] == json!(["sqs:SendMessage"]))
            .expect("send statement");
        assert_eq!(send["Resource"], json!(["arn:q1", "arn:q2"]));
    }

    #[test]
    fn tracing_adds_xray_only_when_active() {
        let doc = execution_policy(&ExecutionGrants {
            xray: true,
            ..grants()
        });
        assert_eq!(grants_on(&doc, "xray:PutTraceSegments"), vec!["*"]);
    }

    #[test]
    fn normalisation_ignores_order_sids_and_string_vs_list() {
        let ours = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": ["arn:x"]},
            {"Sid": "B", "Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": ["arn:y"]}
        ]});
        let theirs = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:y"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:x"}
        ]});
        assert!(same_policy(&ours, &theirs));
        let changed = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:y"},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:x"}
        ]});
        assert!(!same_policy(&ours, &changed));
    }

    #[test]
    fn url_encoded_documents_parse() {
        let doc = lambda_trust_policy("123456789012");
        let encoded = percent_encoding::utf8_percent_encode(
            &doc.to_string(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let parsed = parse_policy(&encoded).expect("parses");
        assert!(same_policy(&doc, &parsed));
    }

    /// The IAM documents the platform installs (config/iam/), as AWS stores
    /// them: each within AWS's 6,144 characters of a managed policy (white
    /// space not counted).
    fn shipped(file: &str) -> Value {
        let path = format!(
            "{}/../config/iam/{file}",
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
        );
        let text = std::fs::read_to_string(&path).expect("policy file");
        serde_json::from_str(&text.replace("ACCOUNT_ID", "123456789012")).expect("JSON")
    }

    #[test]
    fn the_shipped_policies_fit_a_managed_policy() {
        for file in [
            "operator-policy.json",
            "operator-policy-services.json",
            "pipeline-boundary.json",
        ] {
            let compact = shipped(file).to_string();
            let counted = compact.chars().filter(|c| !c.is_whitespace()).count();
            assert!(counted <= 6144, "{file}: {counted} characters");
        }
    }

    /// `*` and `?` as IAM matches them, case-sensitively.
    fn glob(pattern: &str, value: &str) -> bool {
        fn go(p: &[u8], v: &[u8]) -> bool {
            match (p.first(), v.first()) {
                (None, None) => true,
                (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
                (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
                (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
                _ => false,
            }
        }
        go(pattern.as_bytes(), value.as_bytes())
    }

    fn strings(v: &Value) -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Every grant of every role the samples make lies inside the
    /// permissions boundary every role carries: a grant outside it would be
    /// silently useless on AWS. (Conditions are the boundary's own, e.g.
    /// `s3:ResourceAccount`, which the grants meet by naming this account's
    /// buckets.)
    #[test]
    fn every_grant_of_the_samples_lies_inside_the_boundary() {
        let boundary = shipped("pipeline-boundary.json");
        let allows = |action: &str, resource: &str| {
            boundary["Statement"]
                .as_array()
                .expect("statements")
                .iter()
                .any(|s| {
                    s["Effect"] == "Allow"
                        && strings(&s["Action"]).iter().any(|a| glob(a, action))
                        && strings(&s["Resource"]).iter().any(|r| glob(r, resource))
                })
        };
        // The plans' prefix is `sluice`, as the boundary file's.
        assert_eq!(crate::plan::tests::pid().prefix, "sluice");
        // Every sample, and own-code's with its Python function in a VPC.
        let mut in_vpc = crate::plan::tests::sample("own-code.yaml");
        in_vpc.functions[1].vpc = Some(crate::crd::VpcSpec {
            subnet_ids: vec!["subnet-0123456789abcdef0".into()],
            security_group_ids: vec!["sg-01234567".into()],
        });
        let specs = crate::plan::tests::SAMPLES
            .iter()
            .map(|file| (*file, crate::plan::tests::sample(file)))
            .chain([("own-code.yaml in a VPC", in_vpc)]);
        for (file, spec) in specs {
            let plan = crate::plan::tests::plan_of(&spec);
            for role in &plan.roles {
                for s in role.policy["Statement"].as_array().expect("statements") {
                    for action in strings(&s["Action"]) {
                        for resource in strings(&s["Resource"]) {
                            assert!(
                                allows(&action, &resource),
                                "{file}: role {} is granted {action} on {resource}, outside \
                                 config/iam/pipeline-boundary.json",
                                role.logical
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_function_in_a_vpc_makes_interfaces_only_in_its_subnets() {
        let mut g = grants();
        g.vpc = Some(NetworkAccess {
            subnet_ids: vec!["subnet-0123456789abcdef0".into()],
            security_group_ids: vec!["sg-01234567".into()],
        });
        let doc = execution_policy(&g);
        assert_eq!(
            grants_on(&doc, "ec2:CreateNetworkInterface"),
            [
                "arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0123456789abcdef0",
                "arn:aws:ec2:us-east-1:123456789012:security-group/sg-01234567",
                "arn:aws:ec2:us-east-1:123456789012:network-interface/*",
            ]
        );
        assert_eq!(
            grants_on(&doc, "ec2:DeleteNetworkInterface"),
            ["arn:aws:ec2:us-east-1:123456789012:network-interface/*"]
        );
        // Out of a VPC: no EC2 at all.
        assert!(grants_on(&execution_policy(&grants()), "ec2:DescribeSubnets").is_empty());
    }

    #[test]
    fn a_role_granted_nothing_has_no_statement_so_no_inline_policy() {
        // IAM refuses an empty Statement (MalformedPolicyDocument): such a
        // role gets no inline policy, which grants_nothing tells.
        assert!(grants_nothing(&workflow_policy(
            &Grants::default(),
            false,
            false
        )));
        assert!(grants_nothing(&service_policy(&Grants::default())));
        assert!(!grants_nothing(&workflow_policy(
            &Grants::default(),
            true,
            false
        )));
        assert!(!grants_nothing(&execution_policy(&grants())));
    }

    #[test]
    fn partitions() {
        assert_eq!(partition("us-east-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }
}
