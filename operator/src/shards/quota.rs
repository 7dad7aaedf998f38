//! Each replica's part of each account's quotas, with shards.
//!
//! AWS meters an account's control plane per account and region, whoever
//! calls. Split evenly (each of R replicas at 1/R of every quota), the
//! replicas waste most of it: shards go by namespace, so one replica may
//! hold 60 % of one account's pipelines and 10 % of another's, and waits on
//! a third of the first account's quota while the others leave theirs
//! unused (3 replicas converged 3 × 200 pipelines 2.2 times slower than
//! one). Instead each replica uses, of each account and region, the part
//! its held shards have of the account's pipelines there, counted from the
//! pipelines every replica sees; together they use all of it and never
//! more (but for [`MIN_FRACTION`](crate::aws::quota::MIN_FRACTION) each,
//! and for the moment between one replica handing a shard back and the
//! next counting it). Counted again every [`RECOUNT`], within a second
//! when the held shards change or a call goes to an account and region
//! the last count did not have (a new pipeline's first calls run at the
//! minimum until then); limiters and resync periods follow a part that
//! moved by more than a twentieth.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use kube::ResourceExt;

use crate::{accounts, controller::Context};

/// How often the parts are counted while the held shards stay the same
/// (pipelines come and go meanwhile).
pub const RECOUNT: Duration = Duration::from_secs(10);

/// One pipeline as the count sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Counted {
    /// The account its resources are (or will be) in.
    pub account: String,
    /// Its region.
    pub region: String,
    /// Its shard.
    pub shard: usize,
}

/// The part of each account and region's pipelines in the `held` shards.
/// Places with none held are left out (the replica keeps the minimum).
pub fn parts(
    pipelines: impl IntoIterator<Item = Counted>,
    held: &BTreeSet<usize>,
) -> HashMap<(String, String), f64> {
    let mut counts: HashMap<(String, String), (u32, u32)> = HashMap::new();
    for p in pipelines {
        let entry = counts.entry((p.account, p.region)).or_default();
        entry.1 += 1;
        if held.contains(&p.shard) {
            entry.0 += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, (mine, _))| *mine > 0)
        .map(|(place, (mine, all))| (place, f64::from(mine) / f64::from(all)))
        .collect()
}

/// Counts this replica's parts from every pipeline it sees: each one's
/// account is the one its status records, or the one its namespace maps
/// to, or the operator's own; a pipeline whose account cannot be told yet
/// (a refused mapping, AWS unreachable) is left out until it can.
pub async fn count(ctx: &Context) -> HashMap<(String, String), f64> {
    let held = ctx.shards.held();
    // The operator's own account, by region; the account each namespace
    // maps to (`None`: the operator's own; `Err`: refused).
    let mut own: HashMap<String, Option<String>> = HashMap::new();
    let mut mapped: HashMap<String, Result<Option<String>, ()>> = HashMap::new();
    let mut pipelines = Vec::new();
    for dp in ctx.pipelines() {
        let namespace = dp.namespace().unwrap_or_default();
        let region = crate::controller::region(&dp, ctx);
        let recorded = dp
            .status
            .as_ref()
            .and_then(|s| s.account.as_ref())
            .map(|a| a.id.clone());
        let account = match recorded {
            Some(id) => Some(id),
            None => {
                let mapping = mapped.entry(namespace.clone()).or_insert_with(|| {
                    accounts::role_for(&ctx.effective_policy(&namespace), &ctx.config.accounts)
                        .map(|role| role.map(|r| r.account().to_owned()))
                        .map_err(|_| ())
                });
                match mapping {
                    Ok(Some(account)) => Some(account.clone()),
                    Ok(None) => {
                        if !own.contains_key(&region) {
                            // Connects on first use (one GetCallerIdentity).
                            let id = ctx.aws(&region).await.ok().map(|aws| aws.account);
                            own.insert(region.clone(), id);
                        }
                        own[&region].clone()
                    }
                    Err(()) => None,
                }
            }
        };
        if let Some(account) = account {
            pipelines.push(Counted {
                account,
                region,
                shard: ctx.shards.of(&namespace),
            });
        }
    }
    parts(pipelines, &held)
}

/// Counts the parts and, where one moved, re-limits the accounts and
/// re-paces their resyncs.
pub async fn recount(ctx: &Context) {
    let parts = count(ctx).await;
    ctx.metrics.quota_parts(&parts);
    if ctx.regions.fractions().set(parts.clone()) {
        ctx.regions.apply_fractions();
        ctx.repace();
        let mut parts: Vec<_> = parts.into_iter().collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        tracing::info!(
            parts = ?parts
                .iter()
                .map(|((account, region), f)| format!("{account}/{region}={f:.2}"))
                .collect::<Vec<_>>(),
            "this replica's parts of the accounts' quotas"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(account: &str, region: &str, shard: usize) -> Counted {
        Counted {
            account: account.into(),
            region: region.into(),
            shard,
        }
    }

    #[test]
    fn a_replica_uses_its_part_of_each_accounts_pipelines() {
        // Account 1: 6 pipelines, 3 in held shards; account 2: 4, 1 held;
        // account 3: none held; account 1 in another region: 1 of 1.
        let pipelines = vec![
            p("1", "r", 0),
            p("1", "r", 0),
            p("1", "r", 2),
            p("1", "r", 1),
            p("1", "r", 3),
            p("1", "r", 3),
            p("2", "r", 0),
            p("2", "r", 1),
            p("2", "r", 1),
            p("2", "r", 3),
            p("3", "r", 1),
            p("1", "s", 2),
        ];
        let held: BTreeSet<usize> = [0, 2].into();
        let got = parts(pipelines, &held);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!((got[&("1".into(), "r".into())] - 0.5).abs() < 1e-9);
        assert!((got[&("2".into(), "r".into())] - 0.25).abs() < 1e-9);
        assert!((got[&("1".into(), "s".into())] - 1.0).abs() < 1e-9);
        assert!(!got.contains_key(&("3".into(), "r".into())));
    }

    #[test]
    fn the_replicas_parts_of_an_account_add_up_to_all_of_it() {
        let pipelines: Vec<Counted> = (0..100).map(|i| p("1", "r", i % 7)).collect();
        let holders: [BTreeSet<usize>; 3] = [[0, 3].into(), [1, 4, 6].into(), [2, 5].into()];
        let sum: f64 = holders
            .iter()
            .map(|held| parts(pipelines.clone(), held)[&("1".into(), "r".into())])
            .sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    }
}
