//! CloudWatch Logs log groups (a workflow's execution logs): retention and
//! the ownership tags.

use std::collections::BTreeMap;

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Result,
    naming::OWNERSHIP_TAG_KEYS,
    plan::{Kind, LogGroupPlan},
};

/// What the operator's AWS policy allows for workflows' log groups
/// ([`super::operator_policy`]). `DescribeLogGroups` is authorized on `*`
/// only.
pub const POLICY: &[Statement] = &[
    Statement::allow(
        "WorkflowLogGroups",
        Document::Services,
        &[
            Action::calls(Service::Logs, "CreateLogGroup"),
            Action::calls(Service::Logs, "DeleteLogGroup"),
            Action::calls(Service::Logs, "PutRetentionPolicy"),
            Action::calls(Service::Logs, "TagResource"),
            Action::calls(Service::Logs, "UntagResource"),
            Action::calls(Service::Logs, "ListTagsForResource"),
        ],
        &["arn:aws:logs:*:ACCOUNT_ID:log-group:/aws/vendedlogs/states/sluice-*"],
    ),
    Statement::allow(
        "FindLogGroups",
        Document::Services,
        &[Action::calls(Service::Logs, "DescribeLogGroups")],
        &["*"],
    ),
];

/// A log group as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedLogGroup {
    /// ARN without the `:*` suffix (what the tagging APIs take).
    pub arn: String,
    /// Retention in days (`None`: kept forever).
    pub retention_days: Option<i32>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The log group kind.
#[derive(Debug)]
pub struct LogGroup;

async fn tag(aws: &Aws, arn: &str, tags: BTreeMap<String, String>) -> Result<()> {
    aws.call(Service::Logs, "TagResource", || {
        aws.logs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
    })
    .await?;
    Ok(())
}

async fn untag(aws: &Aws, arn: &str, keys: Vec<String>) -> Result<()> {
    aws.call(Service::Logs, "UntagResource", || {
        aws.logs
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.clone()))
            .send()
    })
    .await?;
    Ok(())
}

async fn retention(aws: &Aws, d: &LogGroupPlan) -> Result<()> {
    aws.call(Service::Logs, "PutRetentionPolicy", || {
        aws.logs
            .put_retention_policy()
            .log_group_name(&d.name)
            .retention_in_days(d.retention_days)
            .send()
    })
    .await?;
    Ok(())
}

impl AwsResource for LogGroup {
    type Desired = LogGroupPlan;
    type Observed = ObservedLogGroup;
    const KIND: Kind = Kind::LogGroup;

    fn id(desired: &LogGroupPlan) -> &str {
        &desired.name
    }

    fn logical(desired: &LogGroupPlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &LogGroupPlan) -> Option<String> {
        Some(aws.arn("logs", &format!("log-group:{}", desired.name)))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedLogGroup>> {
        let out = aws
            .call(Service::Logs, "DescribeLogGroups", || {
                aws.logs
                    .describe_log_groups()
                    .log_group_name_prefix(id)
                    .send()
            })
            .await?;
        let Some(group) = out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(id))
        else {
            return Ok(None);
        };
        let arn = group
            .arn()
            .unwrap_or_default()
            .trim_end_matches(":*")
            .to_owned();
        let tags = match aws
            .call(Service::Logs, "ListTagsForResource", || {
                aws.logs.list_tags_for_resource().resource_arn(&arn).send()
            })
            .await
        {
            Ok(out) => out
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(ObservedLogGroup {
            arn,
            retention_days: group.retention_in_days(),
            tags,
        }))
    }

    fn tags(observed: &ObservedLogGroup) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &LogGroupPlan, o: &ObservedLogGroup) -> Vec<Drift> {
        let mut drift = Vec::new();
        if o.retention_days != Some(d.retention_days) {
            drift.push(Drift::new(
                "retentionDays",
                d.retention_days,
                o.retention_days,
            ));
        }
        drift.extend(tag_drift(&d.tags, &o.tags));
        drift
    }

    async fn create(aws: &Aws, d: &LogGroupPlan) -> Result<Option<String>> {
        match aws
            .call(Service::Logs, "CreateLogGroup", || {
                aws.logs
                    .create_log_group()
                    .log_group_name(&d.name)
                    .set_tags(Some(d.tags.clone().into_iter().collect()))
                    .send()
            })
            .await
        {
            Ok(_) => {}
            Err(e) if e.has_code("ResourceAlreadyExistsException") => {}
            Err(e) => return Err(e.into()),
        }
        retention(aws, d).await?;
        Ok(None)
    }

    async fn update(
        aws: &Aws,
        d: &LogGroupPlan,
        o: &ObservedLogGroup,
        drift: &[Drift],
    ) -> Result<()> {
        for item in drift {
            match item.field {
                "retentionDays" => retention(aws, d).await?,
                "tags" => {
                    let (set, remove) = tag_changes(&d.tags, &o.tags);
                    if !set.is_empty() {
                        tag(aws, &o.arn, set).await?;
                    }
                    if !remove.is_empty() {
                        untag(aws, &o.arn, remove).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedLogGroup) -> Result<()> {
        match aws
            .call(Service::Logs, "DeleteLogGroup", || {
                aws.logs.delete_log_group().log_group_name(id).send()
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
        _id: &str,
        o: &ObservedLogGroup,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        tag(aws, &o.arn, marker.clone()).await?;
        untag(
            aws,
            &o.arn,
            OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
        )
        .await
    }
}
