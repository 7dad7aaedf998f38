//! IAM execution roles: trust policy, the inline policy `sluice`, the
//! optional permissions boundary and the ownership tags.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_iam::types::{EntityType, Tag};
use serde_json::Value;

use super::{
    Aws, AwsResource, Drift, Service,
    operator_policy::{Action, Condition, Document, Statement},
    tag_changes, tag_drift,
};
use crate::{
    Error, Result,
    iam::{grants_nothing, parse_policy, same_policy},
    naming::OWNERSHIP_TAG_KEYS,
    plan::{INLINE_POLICY, Kind, RolePlan},
};

/// Roles Sluice makes: under the path `/<prefix>/`, with the boundary.
const BOUNDED_ROLES: &[&str] = &["arn:aws:iam::ACCOUNT_ID:role/sluice/sluice-*"];

/// The permissions boundary every role Sluice makes carries
/// (config/iam/pipeline-boundary.json).
const BOUNDARY: &str = "arn:aws:iam::ACCOUNT_ID:policy/sluice/sluice-pipeline-boundary";

/// What the operator's AWS policy allows and denies for roles
/// ([`super::operator_policy`]). Roles are made and changed only under the
/// path and only with the boundary, and passed only to the services that
/// run as them; roles of earlier versions (at path `/`) may only be read
/// and deleted. The explicit Denies hold whatever else a policy attached
/// to the operator allows: the boundary is never removed or changed, and
/// no role is made or given a policy without it.
pub const POLICY: &[Statement] = &[
    Statement::allow(
        "ReadRoles",
        Document::Core,
        &[
            Action::calls(Service::Iam, "GetRole"),
            Action::calls(Service::Iam, "ListRolePolicies"),
            Action::calls(Service::Iam, "GetRolePolicy"),
        ],
        &[
            "arn:aws:iam::ACCOUNT_ID:role/sluice/sluice-*",
            "arn:aws:iam::ACCOUNT_ID:role/sluice-*",
        ],
    ),
    // One read of every role of the account for drift detection, in place
    // of three per role (super::listing). IAM offers it only on every
    // resource: it shows the operator the roles and policies of the whole
    // account (and changes nothing), so it is a document of its own that
    // the platform attaches only with SLUICE_ROLE_LISTING on.
    Statement::allow(
        "ListRolesForDriftDetection",
        Document::RoleListing,
        &[Action::calls(
            Service::Iam,
            "GetAccountAuthorizationDetails",
        )],
        &["*"],
    ),
    Statement::allow(
        "CreateAndChangeRolesOnlyWithTheBoundary",
        Document::Core,
        &[
            Action::calls(Service::Iam, "CreateRole"),
            Action::calls(Service::Iam, "PutRolePolicy"),
            Action::calls(Service::Iam, "DeleteRolePolicy"),
            Action::calls(Service::Iam, "PutRolePermissionsBoundary"),
            Action::calls(Service::Iam, "UpdateAssumeRolePolicy"),
        ],
        BOUNDED_ROLES,
    )
    .when(&[Condition::one(
        "StringEquals",
        "iam:PermissionsBoundary",
        BOUNDARY,
    )]),
    Statement::allow(
        "TagAndDeleteBoundedRoles",
        Document::Core,
        &[
            Action::calls(Service::Iam, "TagRole"),
            Action::calls(Service::Iam, "UntagRole"),
            Action::calls(Service::Iam, "DeleteRole"),
        ],
        BOUNDED_ROLES,
    ),
    Statement::allow(
        "RetireRolesOfEarlierVersions",
        Document::Core,
        &[
            Action::calls(Service::Iam, "DeleteRolePolicy"),
            Action::calls(Service::Iam, "DeleteRole"),
        ],
        &["arn:aws:iam::ACCOUNT_ID:role/sluice-*"],
    ),
    Statement::allow(
        "PassRolesToTheirServicesOnly",
        Document::Core,
        &[Action::implied(
            Service::Iam,
            "PassRole",
            &[
                (Service::Lambda, "CreateFunction"),
                (Service::Lambda, "UpdateFunctionConfiguration"),
                (Service::StepFunctions, "CreateStateMachine"),
                (Service::StepFunctions, "UpdateStateMachine"),
                (Service::Events, "PutTargets"),
                (Service::Scheduler, "CreateSchedule"),
                (Service::Scheduler, "UpdateSchedule"),
            ],
        )],
        BOUNDED_ROLES,
    )
    .when(&[Condition::any(
        "StringEquals",
        "iam:PassedToService",
        &[
            "lambda.amazonaws.com",
            "states.amazonaws.com",
            "events.amazonaws.com",
            "scheduler.amazonaws.com",
        ],
    )]),
    Statement::deny(
        "NeverRemoveTheBoundary",
        Document::Core,
        &[Action::guard(Service::Iam, "DeleteRolePermissionsBoundary")],
        &["*"],
    ),
    Statement::deny(
        "NeverChangeTheBoundaryPolicy",
        Document::Core,
        &[
            Action::guard(Service::Iam, "CreatePolicyVersion"),
            Action::guard(Service::Iam, "DeletePolicy"),
            Action::guard(Service::Iam, "DeletePolicyVersion"),
            Action::guard(Service::Iam, "SetDefaultPolicyVersion"),
            Action::guard(Service::Iam, "TagPolicy"),
            Action::guard(Service::Iam, "UntagPolicy"),
        ],
        &[BOUNDARY],
    ),
    Statement::deny(
        "NeverCreateRolesElsewhere",
        Document::Core,
        &[
            Action::guard(Service::Iam, "CreateRole"),
            Action::guard(Service::Iam, "PutRolePolicy"),
            Action::guard(Service::Iam, "AttachRolePolicy"),
            Action::guard(Service::Iam, "PutRolePermissionsBoundary"),
        ],
        &["*"],
    )
    .when(&[Condition::one(
        "StringNotEquals",
        "iam:PermissionsBoundary",
        BOUNDARY,
    )]),
];

/// An IAM role as found.
#[derive(Clone, Debug)]
pub struct ObservedRole {
    /// Role ARN.
    pub arn: String,
    /// IAM path (`/` for roles of Sluice before 0.2, which had none).
    pub path: String,
    /// Trust policy.
    pub trust_policy: Option<Value>,
    /// The inline policy `sluice`, if present.
    pub policy: Option<Value>,
    /// Other inline policies (deleted with the role).
    pub inline_policies: Vec<String>,
    /// Permissions boundary ARN.
    pub permissions_boundary: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The IAM role kind.
#[derive(Debug)]
pub struct Role;

fn tags(map: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
    map.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Error::InvalidSpec(format!("tag {k}: {e}")))
        })
        .collect()
}

impl AwsResource for Role {
    type Desired = RolePlan;
    type Observed = ObservedRole;
    const KIND: Kind = Kind::Role;

    fn id(desired: &RolePlan) -> &str {
        &desired.name
    }

    fn logical(desired: &RolePlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &RolePlan) -> Option<String> {
        Some(format!(
            "arn:{}:iam::{}:role{}{}",
            aws.partition(),
            aws.account,
            desired.path,
            desired.name
        ))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedRole>> {
        let role = match aws
            .call(Service::Iam, "GetRole", || {
                aws.iam.get_role().role_name(id).send()
            })
            .await
        {
            Ok(out) => match out.role {
                Some(role) => role,
                None => return Ok(None),
            },
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let inline = aws
            .call(Service::Iam, "ListRolePolicies", || {
                aws.iam.list_role_policies().role_name(id).send()
            })
            .await?;
        let policy = if inline.policy_names().iter().any(|p| p == INLINE_POLICY) {
            let out = aws
                .call(Service::Iam, "GetRolePolicy", || {
                    aws.iam
                        .get_role_policy()
                        .role_name(id)
                        .policy_name(INLINE_POLICY)
                        .send()
                })
                .await?;
            parse_policy(out.policy_document())
        } else {
            None
        };
        Ok(Some(ObservedRole {
            arn: role.arn().to_owned(),
            path: role.path().to_owned(),
            trust_policy: role.assume_role_policy_document().and_then(parse_policy),
            policy,
            inline_policies: inline.policy_names().to_vec(),
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_owned),
            tags: role
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        }))
    }

    const LISTED: bool = true;

    fn fingerprint(observed: &ObservedRole) -> Option<u64> {
        Some(fingerprint(observed))
    }

    async fn listed(aws: &Aws, id: &str) -> Result<Option<u64>> {
        let Some(age) = aws.listing_age else {
            return Ok(None);
        };
        aws.listings.role(id, age, || list_roles(aws)).await
    }

    fn tags(observed: &ObservedRole) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(desired: &RolePlan, observed: &ObservedRole) -> Vec<Drift> {
        let mut drift = Vec::new();
        if observed.path != desired.path {
            // IAM cannot move a role: it is deleted and created again
            // under the path the operator's policy allows.
            drift.push(Drift::new("path", &desired.path, &observed.path));
            return drift;
        }
        if !observed
            .trust_policy
            .as_ref()
            .is_some_and(|p| same_policy(p, &desired.trust_policy))
        {
            drift.push(Drift::new("trustPolicy", "(planned)", "(differs)"));
        }
        // A role granted nothing has no inline policy (IAM refuses one
        // without statements): a stale one is drift, to be deleted.
        if grants_nothing(&desired.policy) {
            if observed.inline_policies.iter().any(|p| p == INLINE_POLICY) {
                drift.push(Drift::new("policy", "(none)", "(stale)"));
            }
        } else if !observed
            .policy
            .as_ref()
            .is_some_and(|p| same_policy(p, &desired.policy))
        {
            drift.push(Drift::new("policy", "(planned)", "(differs)"));
        }
        // Sluice sets a boundary and never removes one (its AWS policy
        // denies DeleteRolePermissionsBoundary).
        if desired.permissions_boundary.is_some()
            && observed.permissions_boundary != desired.permissions_boundary
        {
            drift.push(Drift::new(
                "permissionsBoundary",
                &desired.permissions_boundary,
                &observed.permissions_boundary,
            ));
        }
        drift.extend(tag_drift(&desired.tags, &observed.tags));
        drift
    }

    async fn create(aws: &Aws, d: &RolePlan) -> Result<Option<String>> {
        let tag_list = tags(&d.tags)?;
        aws.call(Service::Iam, "CreateRole", || {
            aws.iam
                .create_role()
                .role_name(&d.name)
                .path(&d.path)
                .assume_role_policy_document(d.trust_policy.to_string())
                .description(format!(
                    "Sluice execution role of function {} (managed; do not edit)",
                    d.logical
                ))
                .set_permissions_boundary(d.permissions_boundary.clone())
                .set_tags(Some(tag_list.clone()))
                .send()
        })
        .await
        .map_err(|e| {
            if e.has_code("EntityAlreadyExists") {
                // A role of this name deleted a moment ago (one of an
                // earlier version's, moved under the path) that IAM still
                // lists: it is gone within seconds.
                Error::Waiting {
                    what: format!(
                        "IAM role {} to be deleted before it is created again",
                        d.name
                    ),
                    after: std::time::Duration::from_secs(2),
                }
            } else {
                e.into()
            }
        })?;
        if !grants_nothing(&d.policy) {
            put_policy(aws, d).await?;
        }
        Ok(None)
    }

    async fn update(aws: &Aws, d: &RolePlan, o: &ObservedRole, drift: &[Drift]) -> Result<()> {
        if drift.iter().any(|d| d.field == "path") {
            // A role of an earlier version at path `/`: its functions keep
            // its ARN until they are updated to the new one, moments later.
            Self::delete(aws, &d.name, o).await?;
            Self::create(aws, d).await?;
            return Ok(());
        }
        // The boundary first: the operator may change a role's trust and
        // inline policy only while the role carries the boundary
        // (`iam:PermissionsBoundary` in its policy), so a role whose
        // boundary was removed by hand gets it back before anything else.
        let mut drift: Vec<&Drift> = drift.iter().collect();
        drift.sort_by_key(|d| d.field != "permissionsBoundary");
        for item in drift {
            match item.field {
                "trustPolicy" => {
                    aws.call(Service::Iam, "UpdateAssumeRolePolicy", || {
                        aws.iam
                            .update_assume_role_policy()
                            .role_name(&d.name)
                            .policy_document(d.trust_policy.to_string())
                            .send()
                    })
                    .await?;
                }
                "policy" => put_policy(aws, d).await?,
                "permissionsBoundary" => {
                    if let Some(arn) = &d.permissions_boundary {
                        aws.call(Service::Iam, "PutRolePermissionsBoundary", || {
                            aws.iam
                                .put_role_permissions_boundary()
                                .role_name(&d.name)
                                .permissions_boundary(arn)
                                .send()
                        })
                        .await?;
                    }
                }
                "tags" => {
                    let (set, remove) = tag_changes(&d.tags, &o.tags);
                    if !set.is_empty() {
                        let tag_list = tags(&set)?;
                        aws.call(Service::Iam, "TagRole", || {
                            aws.iam
                                .tag_role()
                                .role_name(&d.name)
                                .set_tags(Some(tag_list.clone()))
                                .send()
                        })
                        .await?;
                    }
                    if !remove.is_empty() {
                        aws.call(Service::Iam, "UntagRole", || {
                            aws.iam
                                .untag_role()
                                .role_name(&d.name)
                                .set_tag_keys(Some(remove.clone()))
                                .send()
                        })
                        .await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, o: &ObservedRole) -> Result<()> {
        for policy in &o.inline_policies {
            match aws
                .call(Service::Iam, "DeleteRolePolicy", || {
                    aws.iam
                        .delete_role_policy()
                        .role_name(id)
                        .policy_name(policy)
                        .send()
                })
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        match aws
            .call(Service::Iam, "DeleteRole", || {
                aws.iam.delete_role().role_name(id).send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(
        aws: &Aws,
        id: &str,
        _o: &ObservedRole,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        let marker = tags(marker)?;
        aws.call(Service::Iam, "TagRole", || {
            aws.iam
                .tag_role()
                .role_name(id)
                .set_tags(Some(marker.clone()))
                .send()
        })
        .await?;
        aws.call(Service::Iam, "UntagRole", || {
            aws.iam
                .untag_role()
                .role_name(id)
                .set_tag_keys(Some(
                    OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
                ))
                .send()
        })
        .await?;
        Ok(())
    }
}

/// Writes the role's inline policy, or deletes it when the role is granted
/// nothing (IAM refuses a policy without statements).
/// A digest of everything a full read of a role finds: what a listing of
/// the account's roles shows of it too ([`super::listing`]).
fn fingerprint(o: &ObservedRole) -> u64 {
    let trust = o.trust_policy.as_ref().map(Value::to_string);
    let policy = o.policy.as_ref().map(Value::to_string);
    let mut inline = o.inline_policies.clone();
    inline.sort();
    let inline = inline.join("\n");
    super::listing::fingerprint(
        &[
            Some(&o.arn),
            Some(&o.path),
            trust.as_deref(),
            policy.as_deref(),
            Some(&inline),
            o.permissions_boundary.as_deref(),
        ],
        &o.tags,
    )
}

/// The fingerprints of the account's roles that carry Sluice's ownership
/// tags, from `GetAccountAuthorizationDetails` (roles only, 1,000 a page):
/// trust policy, inline policies, boundary and tags, as a full read finds
/// them.
async fn list_roles(aws: &Aws) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = aws
            .call(Service::Iam, "GetAccountAuthorizationDetails", || {
                aws.iam
                    .get_account_authorization_details()
                    .filter(EntityType::Role)
                    .max_items(1000)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
        for role in page.role_detail_list() {
            let tags: BTreeMap<String, String> = role
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            if !OWNERSHIP_TAG_KEYS.iter().any(|k| tags.contains_key(*k)) {
                continue;
            }
            let (Some(name), Some(arn)) = (role.role_name(), role.arn()) else {
                continue;
            };
            let inline = role.role_policy_list();
            let observed = ObservedRole {
                arn: arn.to_owned(),
                path: role.path().unwrap_or("/").to_owned(),
                trust_policy: role.assume_role_policy_document().and_then(parse_policy),
                policy: inline
                    .iter()
                    .find(|p| p.policy_name() == Some(INLINE_POLICY))
                    .and_then(|p| p.policy_document())
                    .and_then(parse_policy),
                inline_policies: inline
                    .iter()
                    .filter_map(|p| p.policy_name().map(str::to_owned))
                    .collect(),
                permissions_boundary: role
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_owned),
                tags,
            };
            out.insert(name.to_owned(), fingerprint(&observed));
        }
        marker = page.marker().map(str::to_owned);
        if !page.is_truncated() || marker.is_none() {
            return Ok(out);
        }
    }
}

async fn put_policy(aws: &Aws, d: &RolePlan) -> Result<()> {
    if grants_nothing(&d.policy) {
        return match aws
            .call(Service::Iam, "DeleteRolePolicy", || {
                aws.iam
                    .delete_role_policy()
                    .role_name(&d.name)
                    .policy_name(INLINE_POLICY)
                    .send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    aws.call(Service::Iam, "PutRolePolicy", || {
        aws.iam
            .put_role_policy()
            .role_name(&d.name)
            .policy_name(INLINE_POLICY)
            .policy_document(d.policy.to_string())
            .send()
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        crd::LoggingLevel,
        plan::tests::{plan_of, sample},
    };

    /// The role of a workflow whose Tasks invoke no pipeline function.
    fn granted_nothing() -> RolePlan {
        let mut spec = sample("orchestrated.yaml");
        spec.workflows[0].definition =
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
        spec.workflows[0].logging = LoggingLevel::None;
        spec.workflows[0].tracing = false;
        let plan = plan_of(&spec);
        plan.roles
            .iter()
            .find(|r| r.trust_policy.to_string().contains("states.amazonaws.com"))
            .expect("the workflow's role")
            .clone()
    }

    fn observed(d: &RolePlan, policy: Option<Value>) -> ObservedRole {
        ObservedRole {
            arn: "arn:aws:iam::123456789012:role/x".into(),
            path: d.path.clone(),
            trust_policy: Some(d.trust_policy.clone()),
            inline_policies: policy.iter().map(|_| INLINE_POLICY.to_owned()).collect(),
            policy,
            permissions_boundary: d.permissions_boundary.clone(),
            tags: d.tags.clone(),
        }
    }

    #[test]
    fn a_role_granted_nothing_has_no_inline_policy_and_loses_a_stale_one() {
        let d = granted_nothing();
        assert!(grants_nothing(&d.policy), "{}", d.policy);
        // No inline policy is what it should have: no drift.
        assert!(Role::diff(&d, &observed(&d, None)).is_empty());
        // One left from before (e.g. the Deny of earlier versions) is drift,
        // which update deletes.
        let stale = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "GrantedNothing", "Effect": "Deny", "Action": "*", "Resource": "*"}]});
        let drift = Role::diff(&d, &observed(&d, Some(stale)));
        assert_eq!(drift.len(), 1, "{drift:?}");
        assert_eq!(drift[0].field, "policy");
    }
}
