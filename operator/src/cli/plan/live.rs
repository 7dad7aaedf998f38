//! `plan --live`: the operator's observe and diff against the account the
//! credentials reach, with a closed write fence.

use std::collections::BTreeSet;

use super::{ChangeJson, change_of, changes_text, json, live_code, single};
use crate::{
    aws::Aws,
    cli::{
        Outcome,
        args::{Args, Output},
        check::{Observed, Setup},
        cluster,
    },
    fence::Fence,
    metrics::Metrics,
    plan::{CodePlan, Kind},
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
    let region = offline.id.region.clone();
    let sdk = crate::aws::config_loader().load().await;
    // Every write is refused before it is sent: this command only reads.
    let aws = Aws::connect(&sdk, &region, setup.config.quotas.clone(), Metrics::new())
        .await
        .map_err(|e| format!("cannot reach AWS in {region}: {e}"))?
        .with_fence(Fence::closed());
    let mut here = setup.clone();
    here.account = aws.account.clone();
    let mut notes = Vec::new();
    let (recorded, observed, inventory_note) =
        inventory(&offline.id.namespace, &offline.id.name).await;
    notes.extend(inventory_note);
    here.observed = observed;
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

/// What the cluster records of the pipeline, when it is there: its
/// inventory (what it owns now, a resource whose tags were lost still its
/// own, and what a new plan would delete) and the identity its resources
/// are named and tagged with.
async fn inventory(
    namespace: &str,
    name: &str,
) -> (Vec<(Kind, String)>, Option<Observed>, Option<String>) {
    let unseen = |why: String| {
        (
            Vec::new(),
            None,
            Some(format!(
                "deletions are not shown: the pipeline's inventory could not be read from the \
                 cluster ({why})"
            )),
        )
    };
    let client = match cluster::connect(Some(namespace)).await {
        Ok((c, _)) => c,
        Err(e) => return unseen(e),
    };
    match cluster::pipeline_opt(&client, namespace, name).await {
        Ok(Some(dp)) => {
            let list = dp
                .status
                .iter()
                .flat_map(|s| &s.inventory)
                .filter_map(|e| Kind::parse(&e.kind).map(|k| (k, e.id.clone())))
                .collect();
            let observed = Observed {
                uid: dp.metadata.uid.clone().unwrap_or_default(),
                namespace_uid: cluster::namespace_uid(&client, namespace).await,
                kept_bucket_names: crate::plan::recorded_buckets(&dp),
            };
            (list, Some(observed), None)
        }
        Ok(None) => (Vec::new(), None, None),
        Err(e) => unseen(e),
    }
}
