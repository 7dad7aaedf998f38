//! IAM roles: what Sluice derives for each function, workflow and service
//! role, checked against IAM's limits before CreateRole and PutRolePolicy.
//!
//! | AWS rule (CreateRole, PutRolePolicy) | Where | Reference |
//! |---|---|---|
//! | A role name is 1 to 64 characters of `[\w+=,.@-]` | naming (derived names are at most 64) | CreateRole, RoleName |
//! | A path is `/`, or `/.../` of at most 512 characters | naming (`/<prefix>/`) | CreateRole, Path |
//! | The inline policies of a role total at most 10,240 characters, whitespace not counted | here | IAM quotas, "Role policy size" |
//! | A trust policy is at most 2,048 characters (the default quota) | here | IAM quotas, "Role trust policy length" |
//! | A policy has at least one statement | `iam` (a role with no grant gets no inline policy) | "IAM JSON policy elements: Statement" |
//! | At most 50 tags, keys 128 and values 256 characters | naming (ownership tags are hashed to fit) | TagRole |
//!
//! Not enforced: the account's quota of 1,000 roles (it depends on what
//! else the account holds); IAM's refusal stalls the pipeline
//! (`AWSRejected`, `LimitExceeded`).

use crate::plan::Plan;

/// IAM's limit on the inline policies of one role, whitespace not counted.
pub const MAX_ROLE_POLICY_CHARS: usize = 10_240;
/// IAM's default limit on a role's trust policy.
pub const MAX_TRUST_POLICY_CHARS: usize = 2_048;

/// Characters of `policy` as IAM counts them: its JSON without whitespace
/// outside strings (serde_json's compact form).
fn size(policy: &serde_json::Value) -> usize {
    policy.to_string().chars().count()
}

/// The field a role's grants come from: the edges of its function or its
/// workflow, else the node it serves.
fn field(plan: &Plan, role: &crate::plan::function::RolePlan) -> String {
    let arn_tail = format!("/{}", role.name);
    if let Some(f) = plan
        .functions
        .iter()
        .find(|f| f.role_arn.ends_with(&arn_tail))
    {
        return format!("spec.functions[name={}].uses", f.logical);
    }
    if let Some(w) = plan
        .state_machines
        .iter()
        .find(|w| w.role_arn.ends_with(&arn_tail))
    {
        return format!("spec.workflows[name={}].definition", w.logical);
    }
    format!("the role of {}", role.logical)
}

pub(super) fn validate_roles(plan: &Plan, problems: &mut Vec<String>) {
    for role in &plan.roles {
        let policy = size(&role.policy);
        if policy > MAX_ROLE_POLICY_CHARS {
            problems.push(format!(
                "{}: the IAM role {} would need an inline policy of {policy} characters to grant \
                 what it uses; IAM allows {MAX_ROLE_POLICY_CHARS} per role: split the work over \
                 more functions, or use fewer resources from this one",
                field(plan, role),
                role.name
            ));
        }
        let trust = size(&role.trust_policy);
        if trust > MAX_TRUST_POLICY_CHARS {
            problems.push(format!(
                "{}: the IAM role {} would need a trust policy of {trust} characters; IAM allows \
                 {MAX_TRUST_POLICY_CHARS} by default",
                field(plan, role),
                role.name
            ));
        }
    }
}
