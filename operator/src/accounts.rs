//! Which AWS account, and with which identity, a pipeline's resources are
//! made: its namespace's SluicePolicies may name a role in another account
//! (`spec.account`), which the operator assumes for every AWS call of the
//! namespace's pipelines ([`crate::aws::session`]); otherwise the operator's
//! own identity and account. Pure: the controller feeds it the effective
//! policy, the operator's configuration and what the pipeline's status
//! recorded.
//!
//! Two guards beside the policy, both the platform team's: the operator
//! assumes only roles its configuration lists (`aws.accountRoles`, a
//! second key to the same door: a SluicePolicy alone cannot send the
//! operator into an account), and it may require a role for every
//! namespace (`aws.requireAccountRole`), so no pipeline lands in the
//! operator's own account by omission.
//!
//! A pipeline whose resources exist in one account stays there: when its
//! namespace is mapped elsewhere it is refused (its resources would be
//! orphaned in the first and made anew, empty, in the second) until the
//! mapping goes back or the pipeline is deleted and created again.
pub use crate::config::AccountsConfig;
use crate::{
    crd::{AccountRole, AccountStatus},
    policy::Effective,
};

impl AccountsConfig {
    /// Whether the operator may assume `arn`.
    pub fn allows(&self, arn: &str) -> bool {
        self.roles.iter().any(|p| glob(p, arn))
    }

    fn listed(&self) -> String {
        if self.roles.is_empty() {
            "none".to_owned()
        } else {
            self.roles.join(", ")
        }
    }
}

/// Whether `pattern` (`*`: any run of characters) matches all of `value`.
fn glob(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The role a pipeline of a namespace whose policies combine to
/// `effective` is made with (`None`: the operator's own identity), or why
/// none may be: two policies disagree, the role is not one the operator
/// lists, or the operator requires a role and none is given.
pub fn role_for(
    effective: &Effective,
    config: &AccountsConfig,
) -> Result<Option<AccountRole>, String> {
    if let Some(conflict) = &effective.account_conflict {
        return Err(conflict.clone());
    }
    match &effective.values.account {
        Some(role) if !config.allows(&role.role_arn) => Err(format!(
            "spec.account.roleArn of {}: {} is not a role the operator may assume (its \
             aws.accountRoles: {}); the platform team lists it in the operator's Helm value \
             aws.accountRoles",
            effective.by("account"),
            role.role_arn,
            config.listed()
        )),
        Some(role) => Ok(Some(role.clone())),
        None if config.require_role => Err(format!(
            "no SluicePolicy selecting this namespace names an AWS account (spec.account), and \
             the operator places no pipeline in its own account (aws.requireAccountRole); the \
             platform team maps the namespace to an account role{}",
            if effective.names.is_empty() {
                String::new()
            } else {
                format!(" in SluicePolicy {}", effective.names.join(" or "))
            }
        )),
        None => Ok(None),
    }
}

/// Refuses a pipeline whose resources (`recorded`, with `has_resources`)
/// are in another account than `account`, where its namespace now maps.
pub fn stays_in_account(
    recorded: Option<&AccountStatus>,
    has_resources: bool,
    account: &str,
) -> Result<(), String> {
    match recorded {
        Some(r) if has_resources && r.id != account => Err(format!(
            "this pipeline's AWS resources are in account {}{}, but its namespace now maps to \
             account {account}; moving would orphan them there and make them anew, empty, here: \
             map the namespace back (SluicePolicy spec.account), or delete the pipeline (its \
             resources in {} go with it, as the mapping allows) and create it again",
            r.id,
            r.role_arn
                .as_deref()
                .map_or_else(String::new, |a| format!(" (made as {a})")),
            r.id
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SluicePolicySpec;

    fn role(arn: &str) -> AccountRole {
        AccountRole {
            role_arn: arn.into(),
            external_id: Some("team-a-7f3c".into()),
        }
    }

    fn config(roles: &[&str]) -> AccountsConfig {
        AccountsConfig {
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..AccountsConfig::default()
        }
    }

    fn mapped(pairs: &[(&str, Option<&str>)]) -> Effective {
        let specs: Vec<(String, SluicePolicySpec)> = pairs
            .iter()
            .map(|(name, arn)| {
                (
                    (*name).to_owned(),
                    SluicePolicySpec {
                        account: arn.map(role),
                        ..SluicePolicySpec::default()
                    },
                )
            })
            .collect();
        let refs: Vec<(&str, &SluicePolicySpec)> =
            specs.iter().map(|(n, s)| (n.as_str(), s)).collect();
        Effective::combine(&refs)
    }

    const A: &str = "arn:aws:iam::111111111111:role/sluice/sluice-operator";
    const B: &str = "arn:aws:iam::222222222222:role/sluice/sluice-operator";

    #[test]
    fn globs_match_whole_arns() {
        assert!(glob("arn:aws:iam::*:role/sluice/sluice-operator", A));
        assert!(glob(A, A));
        assert!(!glob(A, B));
        assert!(glob("arn:aws:iam::111111111111:role/*", A));
        assert!(!glob("arn:aws:iam::111111111111:role/*", B));
        assert!(
            !glob("arn:aws:iam::*:role/sluice/sluice-op", A),
            "a prefix is not a match"
        );
        assert!(!glob("*:role/other", A));
        assert!(glob("*", A));
        assert!(!glob("", A));
        assert!(glob("arn:*:iam::*:role/*operator", A));
        assert!(!glob("arn:*:*:*:*operatorX", A));
    }

    #[test]
    fn a_listed_role_is_used_and_no_role_is_the_operators_own() {
        let listed = config(&["arn:aws:iam::*:role/sluice/sluice-operator"]);
        assert_eq!(
            role_for(&mapped(&[("teams", Some(A))]), &listed).expect("allowed"),
            Some(role(A))
        );
        assert_eq!(
            role_for(&mapped(&[("teams", None)]), &listed).expect("allowed"),
            None
        );
        assert_eq!(
            role_for(&Effective::default(), &listed).expect("allowed"),
            None
        );
    }

    #[test]
    fn a_role_the_operator_does_not_list_is_refused_naming_policy_and_list() {
        let only_b = config(&[B]);
        let e = role_for(&mapped(&[("team-a", Some(A))]), &only_b).expect_err("refused");
        assert!(e.contains("spec.account.roleArn"), "{e}");
        assert!(e.contains("SluicePolicy \"team-a\""), "{e}");
        assert!(e.contains(A) && e.contains(B), "{e}");
        let none = role_for(&mapped(&[("team-a", Some(A))]), &config(&[])).expect_err("refused");
        assert!(none.contains("aws.accountRoles: none"), "{none}");
    }

    #[test]
    fn policies_naming_different_roles_refuse_the_namespace() {
        let both = config(&["arn:aws:iam::*:role/sluice/sluice-operator"]);
        let e = role_for(&mapped(&[("a", Some(A)), ("b", Some(B))]), &both).expect_err("refused");
        assert!(e.contains("\"a\"") && e.contains("\"b\""), "{e}");
        assert!(e.contains(A) && e.contains(B), "{e}");
        // Agreeing policies, and one that names none, are no conflict.
        assert_eq!(
            role_for(
                &mapped(&[("a", Some(A)), ("b", None), ("c", Some(A))]),
                &both
            )
            .expect("allowed"),
            Some(role(A))
        );
        // The policy named for the role is the one that set it.
        let e =
            role_for(&mapped(&[("a", None), ("b", Some(A))]), &config(&[])).expect_err("refused");
        assert!(e.contains("SluicePolicy \"b\""), "{e}");
    }

    #[test]
    fn a_required_role_refuses_unmapped_namespaces() {
        let required = AccountsConfig {
            require_role: true,
            ..config(&[A])
        };
        let e = role_for(&mapped(&[("teams", None)]), &required).expect_err("refused");
        assert!(e.contains("aws.requireAccountRole"), "{e}");
        assert!(e.contains("SluicePolicy teams"), "{e}");
        assert!(role_for(&Effective::default(), &required).is_err());
        assert!(role_for(&mapped(&[("teams", Some(A))]), &required).is_ok());
    }

    #[test]
    fn resources_stay_in_their_account() {
        let there = AccountStatus {
            id: "111111111111".into(),
            role_arn: Some(A.into()),
        };
        assert!(stays_in_account(Some(&there), true, "111111111111").is_ok());
        assert!(stays_in_account(Some(&there), false, "222222222222").is_ok());
        assert!(stays_in_account(None, true, "222222222222").is_ok());
        let e = stays_in_account(Some(&there), true, "222222222222").expect_err("refused");
        assert!(
            e.contains("111111111111") && e.contains("222222222222"),
            "{e}"
        );
        assert!(e.contains(A), "{e}");
    }
}
