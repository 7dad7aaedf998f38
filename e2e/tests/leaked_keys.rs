//! The operator's own AWS keys, as an attacker who stole them would use
//! them: the delegated-administrator pattern of config/iam/ keeps them to
//! what Sluice needs. They cannot make a role without the permissions
//! boundary (config/iam/pipeline-boundary.json), take a boundary off, change
//! the boundary policy, hand a role outside the installation's path to a
//! service, or act outside the allowed regions; what they may make stays
//! inside the boundary. The emulator evaluates the policies, conditions and
//! boundaries as IAM does (e2e/moto/sluice_harness/iam.py).

use serde_json::json;
use sluice_e2e::{flow::role_may, operator_identity, operator_sdk, sdk, sdk_as, token};

fn access_denied<T: std::fmt::Debug, E: std::fmt::Debug>(what: &str, result: &Result<T, E>) {
    assert!(
        matches!(result, Err(e) if format!("{e:?}").contains("AccessDenied")),
        "{what}: not refused: {result:?}"
    );
}

fn admin_policy() -> String {
    json!({"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    .to_string()
}

fn lambda_trust() -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn leaked_operator_keys_cannot_make_an_unbounded_role_or_leave_the_allowed_regions() {
    let prefix = format!("leak{}", &token()[..5]);
    let me = operator_identity(&prefix).expect("the emulator enforces IAM");
    let boundary = me.permissions_boundary.clone();
    let iam = aws_sdk_iam::Client::new(&operator_sdk(&prefix).await);
    let path = format!("/{prefix}/");

    // 1. An admin role without the boundary: refused, at the installation's
    // path or any other.
    for role_path in [path.as_str(), "/"] {
        let made = iam
            .create_role()
            .role_name(format!("{prefix}-admin"))
            .path(role_path)
            .assume_role_policy_document(lambda_trust())
            .send()
            .await;
        access_denied(
            &format!("CreateRole without a boundary at {role_path}"),
            &made,
        );
    }
    // With the boundary, outside the path: refused.
    let made = iam
        .create_role()
        .role_name(format!("{prefix}-elsewhere"))
        .path("/")
        .permissions_boundary(&boundary)
        .assume_role_policy_document(lambda_trust())
        .send()
        .await;
    access_denied("CreateRole outside the installation's path", &made);
    // With another boundary (a policy of the attacker's choosing): refused.
    let other = boundary.replace("pipeline-boundary", "something-else");
    let made = iam
        .create_role()
        .role_name(format!("{prefix}-otherboundary"))
        .path(&path)
        .permissions_boundary(&other)
        .assume_role_policy_document(lambda_trust())
        .send()
        .await;
    access_denied("CreateRole with another boundary", &made);

    // 2. What it may make: a bounded role under its path, even with `*` in
    // its inline policy...
    let bounded = format!("{prefix}-bounded");
    iam.create_role()
        .role_name(&bounded)
        .path(&path)
        .permissions_boundary(&boundary)
        .assume_role_policy_document(lambda_trust())
        .send()
        .await
        .expect("a bounded role");
    iam.put_role_policy()
        .role_name(&bounded)
        .policy_name("wide")
        .policy_document(admin_policy())
        .send()
        .await
        .expect("an inline policy on a bounded role");
    // ...whose boundary it can neither take off nor change, nor swap.
    access_denied(
        "DeleteRolePermissionsBoundary",
        &iam.delete_role_permissions_boundary()
            .role_name(&bounded)
            .send()
            .await,
    );
    access_denied(
        "PutRolePermissionsBoundary with another policy",
        &iam.put_role_permissions_boundary()
            .role_name(&bounded)
            .permissions_boundary(&other)
            .send()
            .await,
    );
    access_denied(
        "CreatePolicyVersion of the boundary",
        &iam.create_policy_version()
            .policy_arn(&boundary)
            .policy_document(admin_policy())
            .set_as_default(true)
            .send()
            .await,
    );
    access_denied(
        "DeletePolicy of the boundary",
        &iam.delete_policy().policy_arn(&boundary).send().await,
    );
    // The boundary is what a role so made may do: nothing outside Sluice's
    // names, nothing in IAM, whatever its inline policy says.
    for (action, resource, allowed) in [
        (
            "s3:GetObject",
            format!("arn:aws:s3:::{prefix}-data/x"),
            true,
        ),
        ("s3:GetObject", "arn:aws:s3:::payroll/x".to_owned(), false),
        (
            "iam:CreateUser",
            "arn:aws:iam::123456789012:user/x".to_owned(),
            false,
        ),
        (
            "sts:AssumeRole",
            "arn:aws:iam::123456789012:role/admin".to_owned(),
            false,
        ),
        (
            "dynamodb:Scan",
            "arn:aws:dynamodb:us-east-1:123456789012:table/customers".to_owned(),
            false,
        ),
    ] {
        // Buckets of this account (the boundary's s3:ResourceAccount).
        let verdict = role_may(
            &format!("arn:aws:iam::123456789012:role{path}{bounded}"),
            action,
            &resource,
            &[("s3:ResourceAccount", "123456789012")],
        );
        assert_eq!(verdict, allowed, "{action} on {resource}");
    }

    // 3. Handing a role to a service: only the installation's bounded roles.
    let admin_iam = aws_sdk_iam::Client::new(&sdk().await);
    let unbounded = format!("{prefix}-platform-admin");
    let role = admin_iam
        .create_role()
        .role_name(&unbounded)
        .assume_role_policy_document(lambda_trust())
        .send()
        .await
        .expect("the platform's own admin role");
    let lambda = aws_sdk_lambda::Client::new(&operator_sdk(&prefix).await);
    let create = |role: String| {
        lambda
            .create_function()
            .function_name(format!("{prefix}-fn-{}", token()))
            .role(role)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("x")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(b"PK".to_vec()))
                    .build(),
            )
            .send()
    };
    access_denied(
        "PassRole of an unbounded role",
        &create(role.role().expect("role").arn().to_owned()).await,
    );

    // 4. Regions: the same call in an allowed region and in another.
    let home = aws_sdk_sqs::Client::new(&operator_sdk(&prefix).await);
    let queue = home
        .create_queue()
        .queue_name(format!("{prefix}-q"))
        .send()
        .await
        .expect("a queue in the allowed region");
    let away = aws_sdk_sqs::Client::new(
        &sdk_as(&me.access_key_id, &me.secret_access_key, "eu-north-1").await,
    );
    access_denied(
        "CreateQueue in eu-north-1",
        &away
            .create_queue()
            .queue_name(format!("{prefix}-q"))
            .send()
            .await,
    );

    // Tidy up as the administrator.
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let _ = sqs
        .delete_queue()
        .queue_url(queue.queue_url().unwrap_or_default())
        .send()
        .await;
    let _ = admin_iam
        .delete_role_policy()
        .role_name(&bounded)
        .policy_name("wide")
        .send()
        .await;
    let _ = admin_iam.delete_role().role_name(&bounded).send().await;
    let _ = admin_iam.delete_role().role_name(&unbounded).send().await;
}
