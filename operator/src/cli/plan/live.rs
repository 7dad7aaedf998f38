//! `plan --live`: the operator's observe and diff against the account the
//! pipeline's resources are in ([`account`]: the credentials' own, or a
//! reviewer role's there), with a closed write fence.

use std::collections::BTreeSet;

use super::{ChangeJson, account, change_of, changes_text, json, live_code, single};
use crate::{
    aws::{Aws, Service},
    cli::{
        Outcome,
        args::{Args, Output},
        check::{Observed, Setup},
        cluster,
    },
    crd::AccountStatus,
    fence::Fence,
    metrics::Metrics,
    plan::{CodePlan, Kind},
    policy::Effective,
};

/// Runs `plan --live`.
pub fn run(
    args: &Args,
    setup: &Setup,
    _env: &dyn Fn(&str) -> Option<String>,
) -> Result<Outcome, String> {
    cluster::block_on(diff(args, setup))
}

async fn diff(args: &Args, setup: &Setup) -> Result<Outcome, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Offline first: a pipeline the checks refuse is not worth a call.
    let offline = single(args, setup)?;
    let (namespace, name) = (&offline.id.namespace, &offline.id.name);
    let region = offline.id.region.clone();
    let sdk = crate::aws::config_loader().load().await;
    // Every write is refused before it is sent: this command only reads.
    let caller = Aws::connect(&sdk, &region, setup.config.quotas.clone(), Metrics::new())
        .await
        .map_err(|e| format!("cannot reach AWS in {region}: {e}"))?
        .with_fence(Fence::closed());
    let mut notes = Vec::new();
    let found = inventory(namespace, name, setup).await;
    notes.extend(found.note);
    let effective = setup.effective(namespace).or(found.effective);
    let target = account::target(
        found.account.as_ref(),
        effective.as_ref(),
        args.reviewer_role.as_deref(),
        (namespace, name),
    )?;
    let aws = match &target {
        Some(t) if t.account != caller.account || args.reviewer_role.is_some() => {
            let role = account::reviewer_role(
                args.reviewer_role.as_deref(),
                t,
                caller.partition(),
                &setup.config.name_prefix,
            )?;
            let aws = as_reviewer(&caller, &sdk, setup, &role, (namespace, name), t).await?;
            notes.push(format!(
                "read in account {} ({}) as {role}",
                t.account, t.source
            ));
            aws
        }
        _ => caller,
    };
    let mut here = setup.clone();
    here.account = aws.account.clone();
    here.observed = found.observed;
    let recorded = found.inventory;
    let checked = single(args, &here)?;
    let plan = crate::aws::code::resolve(&aws, checked.plan.clone())
        .await
        .map_err(|e| format!("cannot read the function code the plan names: {e}"))?;
    let recorded_ids: BTreeSet<(Kind, String)> = recorded.iter().cloned().collect();
    let previewed = crate::reconcile::preview(&aws, &checked.id, &plan, &recorded_ids)
        .await
        .map_err(|e| format!("reading what exists failed: {e}"))?;
    let builtin: BTreeSet<&str> = plan
        .functions
        .iter()
        .filter(|f| matches!(f.code, CodePlan::Builtin { .. }))
        .map(|f| f.name.as_str())
        .collect();
    let mut changes: Vec<ChangeJson> = Vec::new();
    for p in &previewed {
        let mut c = change_of(p);
        // Without the handlers' manifest the built-in code's digest is
        // unknown: no false change, and say so.
        if !setup.handlers_known && p.kind == Kind::Function && builtin.contains(p.id.as_str()) {
            let before = c.details.len();
            c.details.retain(|d| !d.starts_with("code:"));
            if c.details.len() < before {
                notes.push(format!(
                    "{}: the deployed built-in code was not compared; set SLUICE_HANDLERS_DIR \
                     to the operator's handlers (the directory of manifest.json) to compare it",
                    p.id
                ));
                if c.details.is_empty() {
                    c.action = "unchanged";
                }
            }
        }
        changes.push(c);
    }
    let wanted = plan.ids();
    for (kind, id) in recorded.iter().filter(|k| !wanted.contains(*k)) {
        changes.push(ChangeJson {
            action: "delete",
            kind: kind.as_str(),
            id: id.clone(),
            logical: String::new(),
            details: vec!["in the pipeline's inventory, no longer planned".into()],
        });
    }
    let code = live_code(&changes);
    let stdout = match args.output.unwrap_or(Output::Text) {
        Output::Json => json(&checked, Some(changes))?,
        _ => changes_text(&checked, &changes, &notes),
    };
    Ok(Outcome { stdout, code })
}

/// Reads as the reviewer role `role` of `target`'s account: one STS
/// session (the pipeline's session name, the shortest lifetime AWS
/// grants), its identity checked to be that account before anything is
/// read.
async fn as_reviewer(
    caller: &Aws,
    sdk: &aws_config::SdkConfig,
    setup: &Setup,
    role: &str,
    (namespace, name): (&str, &str),
    target: &account::Target,
) -> Result<Aws, String> {
    let refused = |why: String| {
        format!(
            "the pipeline's resources are in account {} ({}), not the credentials' own ({}); \
             plan --live reads there as {role}, which it could not act as: {why}. Create that \
             role with config/iam/reviewer-policy.json, trusting these credentials' principal \
             (config/iam/account-role/README.md), or pass --reviewer-role",
            target.account, target.source, caller.account
        )
    };
    let sts = &caller.sts;
    let out = caller
        .call(Service::Sts, "AssumeRole", || {
            sts.assume_role()
                .role_arn(role)
                .role_session_name(crate::aws::session::session_name(namespace, name))
                .duration_seconds(900)
                .send()
        })
        .await
        .map_err(|e| refused(e.to_string()))?;
    let c = out
        .credentials()
        .ok_or_else(|| refused("no credentials in STS's answer".into()))?;
    let credentials = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        std::time::SystemTime::try_from(*c.expiration()).ok(),
        "sluice-plan-reviewer",
    );
    let sdk = sdk
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .build();
    let aws = Aws::connect(
        &sdk,
        &caller.region,
        setup.config.quotas.clone(),
        Metrics::new(),
    )
    .await
    .map_err(|e| refused(e.to_string()))?
    .with_fence(Fence::closed());
    if aws.account != target.account {
        return Err(refused(format!(
            "its session acts in account {}",
            aws.account
        )));
    }
    Ok(aws)
}

/// What the cluster says of the pipeline and its namespace.
#[derive(Default)]
struct Found {
    /// Its inventory: what it owns now (a resource whose tags were lost
    /// still its own, and what a new plan would delete).
    inventory: Vec<(Kind, String)>,
    /// The identity its AWS resources are named and tagged with.
    observed: Option<Observed>,
    /// Where its resources are (`status.account`).
    account: Option<AccountStatus>,
    /// The cluster's SluicePolicies for the namespace, when no `--policy`
    /// was given and they could be read.
    effective: Option<Effective>,
    /// What could not be read.
    note: Option<String>,
}

/// What the cluster records of the pipeline, when it is there, and the
/// SluicePolicies that select its namespace (unless `--policy` gave some).
async fn inventory(namespace: &str, name: &str, setup: &Setup) -> Found {
    let unseen = |why: String| Found {
        note: Some(format!(
            "deletions are not shown: the pipeline's inventory could not be read from the \
             cluster ({why})"
        )),
        ..Found::default()
    };
    let client = match cluster::connect(Some(namespace)).await {
        Ok((c, _)) => c,
        Err(e) => return unseen(e),
    };
    let mut found = match cluster::pipeline_opt(&client, namespace, name).await {
        Ok(Some(dp)) => Found {
            inventory: dp
                .status
                .iter()
                .flat_map(|s| &s.inventory)
                .filter_map(|e| Kind::parse(&e.kind).map(|k| (k, e.id.clone())))
                .collect(),
            observed: Some(Observed {
                uid: dp.metadata.uid.clone().unwrap_or_default(),
                namespace_uid: cluster::namespace_uid(&client, namespace).await,
                kept_bucket_names: crate::plan::recorded_buckets(&dp),
            }),
            account: dp.status.as_ref().and_then(|s| s.account.clone()),
            ..Found::default()
        },
        Ok(None) => Found::default(),
        Err(e) => return unseen(e),
    };
    if setup.policies.is_empty() && found.account.is_none() {
        match cluster::effective_policy(&client, namespace).await {
            Ok(effective) => found.effective = Some(effective),
            Err(e) => {
                found.note = Some(format!(
                    "the namespace's SluicePolicies could not be read ({e}): where they map it \
                     to another AWS account, pass them with --policy"
                ));
            }
        }
    }
    found
}
