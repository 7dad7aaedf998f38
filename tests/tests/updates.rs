//! Changes made in place, under the operator's exact IAM policy (the
//! harness's operator user): a stream's retention up and down, its shard
//! count and its capacity mode; a table's capacity; a function's reserved
//! concurrency set and removed; a role's trust policy and boundary set back
//! after someone changed them. Each is the one update AWS offers for it, so
//! each action of the policy behind it is needed by this test (the e2e
//! coverage check holds the policy to that).

use std::time::Duration;

use sluice_integration_tests::{Harness, sample};
use sluice_operator::{
    Error,
    aws::{Aws, AwsResource, function::Function, stream::Stream, table::Table},
    crd::{BillingMode, Capacity, DataPipelineSpec, StreamMode},
    naming::PipelineId,
    plan::Plan,
    reconcile::{self, Progress},
};

/// Applies until nothing is left to wait for (a stream updating, a role
/// propagating), as the controller requeues.
async fn converge(aws: &Aws, id: &PipelineId, plan: &Plan, progress: &mut Progress) {
    for _ in 0..50 {
        match reconcile::apply(aws, id, plan, progress).await {
            Ok(()) => return,
            Err(Error::Waiting { .. }) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("converge: {e}"),
        }
    }
    panic!("still waiting after 50 passes: {:?}", progress.inventory());
}

/// The stream sample: a provisioned stream, a table, a consumer.
fn spec() -> DataPipelineSpec {
    sample("stream.yaml")
}

fn id_of(progress: &Progress, kind: &str) -> String {
    progress
        .inventory()
        .into_iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in the inventory"))
        .id
}

#[tokio::test]
async fn streams_tables_concurrency_and_roles_change_in_place() {
    let h = Harness::new().await;
    let mut spec = spec();
    let mut progress = Progress::default();
    converge(&h.aws, &h.id, &h.plan(&spec), &mut progress).await;
    let stream = id_of(&progress, "Kinesis::Stream");
    let table = id_of(&progress, "DynamoDB::Table");

    // Retention up (IncreaseStreamRetentionPeriod), more shards
    // (UpdateShardCount), a provisioned table (UpdateTable), reserved
    // concurrency (PutFunctionConcurrency).
    spec.streams[0].retention_hours = 48;
    spec.streams[0].shards = Some(2);
    spec.tables[0].billing_mode = BillingMode::Provisioned;
    spec.tables[0].capacity = Some(Capacity { read: 5, write: 5 });
    spec.functions[0].reserved_concurrency = Some(3);
    converge(&h.aws, &h.id, &h.plan(&spec), &mut progress).await;
    let observed = Stream::observe(&h.aws, &stream)
        .await
        .expect("observe")
        .expect("stream");
    assert_eq!(observed.retention_hours, Some(48), "{observed:?}");
    assert_eq!(observed.open_shards, Some(2), "{observed:?}");
    let t = Table::observe(&h.aws, &table)
        .await
        .expect("observe")
        .expect("table");
    assert_eq!(t.billing_mode, "PROVISIONED", "{t:?}");
    assert_eq!(t.capacity, Some((5, 5)), "{t:?}");
    let function = &h.plan(&spec).functions[0].name.clone();
    let f = Function::observe(&h.aws, function)
        .await
        .expect("observe")
        .expect("function");
    assert_eq!(f.reserved_concurrency, Some(3), "{f:?}");

    // Retention down (DecreaseStreamRetentionPeriod), on-demand
    // (UpdateStreamMode), reserved concurrency removed
    // (DeleteFunctionConcurrency).
    spec.streams[0].retention_hours = 24;
    spec.streams[0].mode = StreamMode::OnDemand;
    spec.streams[0].shards = None;
    spec.functions[0].reserved_concurrency = None;
    converge(&h.aws, &h.id, &h.plan(&spec), &mut progress).await;
    let observed = Stream::observe(&h.aws, &stream)
        .await
        .expect("observe")
        .expect("stream");
    assert_eq!(observed.retention_hours, Some(24), "{observed:?}");
    assert_eq!(observed.mode.as_deref(), Some("ON_DEMAND"), "{observed:?}");
    let f = Function::observe(&h.aws, function)
        .await
        .expect("observe")
        .expect("function");
    assert_eq!(f.reserved_concurrency, None, "{f:?}");

    // Someone rewrites a role's trust policy and removes its boundary (as
    // the administrator): set back with UpdateAssumeRolePolicy and
    // PutRolePermissionsBoundary.
    let role = id_of(&progress, "IAM::Role");
    let iam = aws_sdk_iam::Client::new(&h.sdk);
    iam.update_assume_role_policy()
        .role_name(&role)
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("drift");
    iam.delete_role_permissions_boundary()
        .role_name(&role)
        .send()
        .await
        .expect("drift");
    converge(&h.aws, &h.id, &h.plan(&spec), &mut progress).await;
    let r = iam.get_role().role_name(&role).send().await.expect("role");
    let r = r.role().expect("role");
    assert_eq!(
        r.permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(h.boundary.as_str())
    );
    let trust = urlencoding_decode(r.assume_role_policy_document().unwrap_or_default());
    assert!(!trust.contains("ec2.amazonaws.com"), "{trust}");

    reconcile::cleanup(&h.aws, &h.id, Some(&h.plan(&spec)), false, &mut progress)
        .await
        .expect("cleanup");
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
