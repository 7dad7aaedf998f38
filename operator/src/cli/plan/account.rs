//! Where `plan --live` reads, and as whom.
//!
//! A namespace a SluicePolicy maps to another AWS account
//! (`spec.account`) has its pipelines' resources there, not in the account
//! the reviewer's credentials reach. Reading the reviewer's own account
//! would show every resource as one to create and check names against the
//! wrong account's, so the plan would lie. The account is, in this order:
//! 1. the pipeline's `status.account`, where it exists: where its
//!    resources are, whatever the mapping says now (the operator refuses
//!    to move them);
//! 2. the account of the role the namespace's SluicePolicies name: those
//!    given with `--policy`, else the cluster's;
//! 3. none known: the credentials' own account, as without accounts.
//!
//! Where that account is not the credentials' own, the plugin assumes a
//! reviewer role there (`--reviewer-role`, by default
//! `role/operators/<prefix>-reviewer`, beside the operator's
//! `role/operators/<prefix>-operator`): a role holding
//! `config/iam/reviewer-policy.json`, the operator's reads and no write,
//! and trusting the reviewer's principal. It never assumes the operator's
//! role, and refuses a role in another account than the one it must read,
//! before any call.

use crate::{crd::AccountStatus, policy::Effective};

/// The account a pipeline's resources are (or would be) in, and what says
/// so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The 12-digit account id.
    pub account: String,
    /// What says so, for the plan's notes and errors.
    pub source: String,
}

/// Where the pipeline's resources are: `recorded` (its `status.account`)
/// first, else the account of the role `effective` (the namespace's
/// SluicePolicies) names, else that of the `--reviewer-role` given;
/// `None` when none says (the credentials' own account is read). Two
/// policies naming different roles is an error, as for the operator.
pub fn target(
    recorded: Option<&AccountStatus>,
    effective: Option<&Effective>,
    reviewer_role: Option<&str>,
    (namespace, name): (&str, &str),
) -> Result<Option<Target>, String> {
    let given = || {
        reviewer_role.map(|arn| Target {
            account: arn.split(':').nth(4).unwrap_or_default().to_owned(),
            source: "--reviewer-role".to_owned(),
        })
    };
    if let Some(r) = recorded.filter(|r| !r.id.is_empty()) {
        return Ok(Some(Target {
            account: r.id.clone(),
            source: format!("status.account of DataPipeline {namespace}/{name}"),
        }));
    }
    let Some(effective) = effective else {
        return Ok(given());
    };
    if let Some(conflict) = &effective.account_conflict {
        return Err(format!(
            "the namespace {namespace} has no one account: {conflict}"
        ));
    }
    Ok(effective
        .values
        .account
        .as_ref()
        .map(|role| Target {
            account: role.account().to_owned(),
            source: format!(
                "spec.account of {} (role {})",
                effective.by("account"),
                role.role_arn
            ),
        })
        .or_else(given))
}

/// The reviewer role to read `target` as: `flag` (`--reviewer-role`) where
/// given, which must be a role of that account, else the convention
/// `arn:<partition>:iam::<account>:role/operators/<prefix>-reviewer`.
pub fn reviewer_role(
    flag: Option<&str>,
    target: &Target,
    partition: &str,
    prefix: &str,
) -> Result<String, String> {
    let Some(arn) = flag else {
        return Ok(format!(
            "arn:{partition}:iam::{}:role/operators/{prefix}-reviewer",
            target.account
        ));
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let is_role = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len();
    if !is_role {
        return Err(format!(
            "--reviewer-role {arn:?}: expected an IAM role ARN, \
             arn:{partition}:iam::<12-digit account>:role/<path/name>"
        ));
    }
    if parts[4] != target.account {
        return Err(format!(
            "--reviewer-role {arn} is a role of account {}, but the pipeline's resources are in \
             account {} ({}): pass a reviewer role of account {}",
            parts[4], target.account, target.source, target.account
        ));
    }
    if parts[5].ends_with(&format!("/{prefix}-operator")) {
        return Err(format!(
            "--reviewer-role {arn} is the operator's own role (it may write); pass a role holding \
             config/iam/reviewer-policy.json"
        ));
    }
    Ok(arn.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::{AccountRole, SluicePolicySpec};

    const B: &str = "310987654321";

    fn mapped(policies: &[(&str, &str)]) -> Effective {
        let specs: Vec<(String, SluicePolicySpec)> = policies
            .iter()
            .map(|(name, arn)| {
                let mut spec: SluicePolicySpec =
                    serde_json::from_value(serde_json::json!({})).expect("an empty policy");
                spec.account = Some(AccountRole {
                    role_arn: (*arn).to_owned(),
                    external_id: None,
                });
                ((*name).to_owned(), spec)
            })
            .collect();
        Effective::for_namespace(specs.iter().map(|(n, s)| (n.as_str(), s)), &BTreeMap::new())
    }

    fn role_b() -> String {
        format!("arn:aws:iam::{B}:role/operators/sluice-operator")
    }

    #[test]
    fn the_recorded_account_wins_over_the_mapping() {
        let recorded = AccountStatus {
            id: "210987654321".into(),
            role_arn: None,
        };
        let effective = mapped(&[("team-b", &role_b())]);
        let t = target(Some(&recorded), Some(&effective), None, ("data", "orders"))
            .expect("a target")
            .expect("known");
        assert_eq!(t.account, "210987654321");
        assert!(
            t.source
                .contains("status.account of DataPipeline data/orders")
        );
    }

    #[test]
    fn a_mapped_namespace_reads_the_roles_account() {
        let effective = mapped(&[("team-b", &role_b())]);
        let t = target(None, Some(&effective), None, ("data", "orders"))
            .expect("a target")
            .expect("known");
        assert_eq!(t.account, B);
        assert!(t.source.contains("\"team-b\""), "{}", t.source);
        assert!(t.source.contains(&role_b()), "{}", t.source);
    }

    #[test]
    fn no_mapping_and_no_record_reads_the_credentials_own_account() {
        assert_eq!(target(None, None, None, ("data", "orders")), Ok(None));
        assert_eq!(
            target(None, Some(&mapped(&[])), None, ("data", "orders")),
            Ok(None)
        );
        // Unless a reviewer role is given: its account, never ignored.
        let given = format!("arn:aws:iam::{B}:role/ci/plan-reader");
        let t = target(None, Some(&mapped(&[])), Some(&given), ("data", "orders"))
            .expect("a target")
            .expect("the role's account");
        assert_eq!(
            (t.account.as_str(), t.source.as_str()),
            (B, "--reviewer-role")
        );
    }

    #[test]
    fn policies_naming_two_roles_are_an_error() {
        let effective = mapped(&[
            ("team-b", &role_b()),
            (
                "other",
                "arn:aws:iam::210987654321:role/operators/sluice-operator",
            ),
        ]);
        let e = target(None, Some(&effective), None, ("data", "orders")).expect_err("conflict");
        assert!(e.contains("no one account"), "{e}");
    }

    #[test]
    fn the_reviewer_role_is_the_conventional_one_or_a_role_of_the_same_account() {
        let t = Target {
            account: B.into(),
            source: "status.account of DataPipeline data/orders".into(),
        };
        assert_eq!(
            reviewer_role(None, &t, "aws", "sluice"),
            Ok(format!("arn:aws:iam::{B}:role/operators/sluice-reviewer"))
        );
        let own = format!("arn:aws:iam::{B}:role/ci/plan-reader");
        assert_eq!(reviewer_role(Some(&own), &t, "aws", "sluice"), Ok(own));
        let elsewhere = reviewer_role(
            Some("arn:aws:iam::210987654321:role/ci/plan-reader"),
            &t,
            "aws",
            "sluice",
        )
        .expect_err("another account");
        assert!(
            elsewhere.contains("account 210987654321") && elsewhere.contains(B),
            "{elsewhere}"
        );
        let operator = reviewer_role(Some(&role_b()), &t, "aws", "sluice").expect_err("operator");
        assert!(operator.contains("operator's own role"), "{operator}");
        for bad in [
            "reviewer",
            "arn:aws:iam::31098765432:role/x",
            "arn:aws:iam::310987654321:user/x",
            "arn:aws:iam::310987654321:role/",
            "arn:aws:sts::310987654321:role/x",
        ] {
            let e = reviewer_role(Some(bad), &t, "aws", "sluice").expect_err(bad);
            assert!(e.starts_with("--reviewer-role"), "{bad}: {e}");
        }
    }
}
