//! The statements of a function's resource policy that let a service (S3
//! here) invoke it. Sluice owns the statements whose id starts with
//! `sluice-`; others are left alone. One `GetPolicy` reads them all.

use std::collections::BTreeMap;

use serde_json::Value;

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service};
use crate::{
    Result,
    plan::{InvokeStatement, Kind, PermissionsPlan, STATEMENT_PREFIX},
};

/// What the operator's AWS policy allows for functions' permissions
/// ([`super::operator_policy`]): part of the functions' statement.
pub const POLICY: &[Statement] = &[Statement::allow(
    "Functions",
    Document::Services,
    &[
        Action::calls(Service::Lambda, "GetPolicy"),
        Action::calls(Service::Lambda, "AddPermission"),
        Action::calls(Service::Lambda, "RemovePermission"),
    ],
    super::function::FUNCTIONS,
)];

/// The Sluice statements found in a function's policy, by sid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedPermissions {
    /// Statements Sluice owns.
    pub statements: BTreeMap<String, InvokeStatement>,
}

/// The Lambda permission kind.
#[derive(Debug)]
pub struct Permissions;

/// Reads our statements from a resource-policy document. A statement whose
/// shape we do not recognise is recorded with empty fields so the diff
/// replaces it.
pub fn parse_statements(policy: &Value) -> BTreeMap<String, InvokeStatement> {
    let statements = match policy.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(single) => vec![single.clone()],
        None => Vec::new(),
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    // Condition keys are case-insensitive; AWS writes `AWS:SourceArn`.
    let condition = |s: &Value, op: &str, key: &str| -> String {
        s.get("Condition")
            .and_then(|c| c.get(op))
            .and_then(Value::as_object)
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map(|v| match v {
                Value::Array(a) if a.len() == 1 => text(a.first()),
                other => text(Some(other)),
            })
            .unwrap_or_default()
    };
    statements
        .iter()
        .filter_map(|s| {
            let sid = text(s.get("Sid"));
            if !sid.starts_with(STATEMENT_PREFIX) {
                return None;
            }
            let principal = match s.get("Principal") {
                Some(Value::Object(p)) => text(p.get("Service")),
                Some(other) => text(Some(other)),
                None => String::new(),
            };
            Some((
                sid.clone(),
                InvokeStatement {
                    sid,
                    principal,
                    source_arn: condition(s, "ArnLike", "aws:SourceArn"),
                    source_account: condition(s, "StringEquals", "aws:SourceAccount"),
                },
            ))
        })
        .collect()
}

/// `(to add, sids to remove)`: a changed statement is removed and added again.
fn changes(d: &PermissionsPlan, o: &ObservedPermissions) -> (Vec<InvokeStatement>, Vec<String>) {
    let want: BTreeMap<&str, &InvokeStatement> =
        d.statements.iter().map(|s| (s.sid.as_str(), s)).collect();
    let mut add = Vec::new();
    let mut remove = Vec::new();
    for (sid, have) in &o.statements {
        if want.get(sid.as_str()) != Some(&have) {
            remove.push(sid.clone());
        }
    }
    for s in &d.statements {
        if o.statements.get(&s.sid) != Some(s) {
            add.push(s.clone());
        }
    }
    (add, remove)
}

impl AwsResource for Permissions {
    type Desired = PermissionsPlan;
    type Observed = ObservedPermissions;
    const KIND: Kind = Kind::Permissions;

    fn id(desired: &PermissionsPlan) -> &str {
        &desired.function
    }

    fn logical(desired: &PermissionsPlan) -> &str {
        &desired.logical
    }

    fn arn(_aws: &Aws, _desired: &PermissionsPlan) -> Option<String> {
        None
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedPermissions>> {
        match aws
            .call(Service::Lambda, "GetPolicy", || {
                aws.lambda.get_policy().function_name(id).send()
            })
            .await
        {
            Ok(out) => {
                let policy: Value = out
                    .policy()
                    .and_then(|p| serde_json::from_str(p).ok())
                    .unwrap_or(Value::Null);
                let statements = parse_statements(&policy);
                Ok((!statements.is_empty()).then_some(ObservedPermissions { statements }))
            }
            // No policy at all, or no function (then the function kind reports it).
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn tags(_observed: &ObservedPermissions) -> Option<&BTreeMap<String, String>> {
        None
    }

    fn diff(d: &PermissionsPlan, o: &ObservedPermissions) -> Vec<Drift> {
        let (add, remove) = changes(d, o);
        if add.is_empty() && remove.is_empty() {
            return Vec::new();
        }
        let add: Vec<&str> = add.iter().map(|s| s.sid.as_str()).collect();
        vec![Drift::new("statements", add, remove)]
    }

    async fn create(aws: &Aws, d: &PermissionsPlan) -> Result<Option<String>> {
        Self::update(aws, d, &ObservedPermissions::default(), &[]).await?;
        Ok(None)
    }

    async fn update(
        aws: &Aws,
        d: &PermissionsPlan,
        o: &ObservedPermissions,
        _drift: &[Drift],
    ) -> Result<()> {
        let (add, remove) = changes(d, o);
        for sid in remove {
            remove_statement(aws, &d.function, &sid).await?;
        }
        for s in add {
            match aws
                .call(Service::Lambda, "AddPermission", || {
                    aws.lambda
                        .add_permission()
                        .function_name(&d.function)
                        .statement_id(&s.sid)
                        .action("lambda:InvokeFunction")
                        .principal(&s.principal)
                        .source_arn(&s.source_arn)
                        .source_account(&s.source_account)
                        .send()
                })
                .await
            {
                Ok(_) => {}
                Err(e) if e.has_code("ResourceConflictException") => {
                    return Err(crate::Error::Waiting {
                        what: format!("function {} to accept a permission change", d.function),
                        after: std::time::Duration::from_secs(2),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, o: &ObservedPermissions) -> Result<()> {
        for sid in o.statements.keys() {
            remove_statement(aws, id, sid).await?;
        }
        Ok(())
    }

    async fn release(
        _aws: &Aws,
        _id: &str,
        _o: &ObservedPermissions,
        _marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        // Statements carry no tags; a retained function keeps its wiring.
        Ok(())
    }
}

async fn remove_statement(aws: &Aws, function: &str, sid: &str) -> Result<()> {
    match aws
        .call(Service::Lambda, "RemovePermission", || {
            aws.lambda
                .remove_permission()
                .function_name(function)
                .statement_id(sid)
                .send()
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn statement() -> InvokeStatement {
        InvokeStatement {
            sid: "sluice-s3-input".into(),
            principal: "s3.amazonaws.com".into(),
            source_arn: "arn:aws:s3:::b".into(),
            source_account: "123456789012".into(),
        }
    }

    #[test]
    fn parses_the_policy_lambda_returns() {
        let policy = json!({"Version": "2012-10-17", "Id": "default", "Statement": [
            {"Sid": "sluice-s3-input", "Effect": "Allow",
             "Principal": {"Service": "s3.amazonaws.com"},
             "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:us-east-1:1:function:f",
             "Condition": {"StringEquals": {"AWS:SourceAccount": "123456789012"},
                           "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b"}}},
            {"Sid": "someone-else", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction"}
        ]});
        let parsed = parse_statements(&policy);
        assert_eq!(parsed.len(), 1, "foreign statements are not ours");
        assert_eq!(parsed["sluice-s3-input"], statement());
    }

    #[test]
    fn changed_statements_are_replaced_and_stale_ones_removed() {
        let d = PermissionsPlan {
            logical: "f".into(),
            function: "f".into(),
            statements: vec![statement()],
        };
        let mut changed = statement();
        changed.source_arn = "arn:aws:s3:::other".into();
        let mut stale = statement();
        stale.sid = "sluice-s3-gone".into();
        let o = ObservedPermissions {
            statements: BTreeMap::from([
                (changed.sid.clone(), changed),
                (stale.sid.clone(), stale),
            ]),
        };
        let (add, remove) = changes(&d, &o);
        assert_eq!(add, vec![statement()]);
        assert_eq!(
            remove,
            vec!["sluice-s3-gone".to_string(), "sluice-s3-input".to_string()]
        );
        let converged = ObservedPermissions {
            statements: BTreeMap::from([(statement().sid, statement())]),
        };
        assert!(Permissions::diff(&d, &converged).is_empty());
    }
}
