//! SQS queues: attributes (visibility, retention, FIFO deduplication,
//! encryption), the redrive policy naming the dead-letter queue, the queue
//! policy that lets exactly the pipeline's rules send, and the ownership
//! tags. Attributes come back as strings and JSON documents; the diff
//! compares parsed values so nothing flaps.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Error, Result,
    iam::same_policy,
    naming::OWNERSHIP_TAG_KEYS,
    plan::{Kind, QueuePlan, queue::Redrive},
};

/// Every queue Sluice makes.
pub const QUEUES: &[&str] = &["arn:aws:sqs:*:ACCOUNT_ID:sluice-*"];

/// What the operator's AWS policy allows for queues
/// ([`super::operator_policy`]).
pub const POLICY: &[Statement] = &[Statement::allow(
    "Queues",
    Document::Services,
    &[
        Action::calls(Service::Sqs, "CreateQueue"),
        Action::calls(Service::Sqs, "DeleteQueue"),
        Action::calls(Service::Sqs, "GetQueueUrl"),
        Action::calls(Service::Sqs, "GetQueueAttributes"),
        Action::calls(Service::Sqs, "SetQueueAttributes"),
        Action::calls(Service::Sqs, "TagQueue"),
        Action::calls(Service::Sqs, "UntagQueue"),
        Action::calls(Service::Sqs, "ListQueueTags"),
    ],
    QUEUES,
)];

/// A queue as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedQueue {
    /// Queue URL.
    pub url: String,
    /// Queue ARN.
    pub arn: String,
    /// Every attribute, as SQS returns them.
    pub attributes: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl ObservedQueue {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str) -> Option<i64> {
        self.attribute(name).and_then(|v| v.trim().parse().ok())
    }

    fn flag(&self, name: &str) -> bool {
        self.attribute(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The redrive policy, parsed: `maxReceiveCount` is a number or a string
    /// depending on who wrote it.
    fn redrive(&self) -> Option<Redrive> {
        let policy: Value = serde_json::from_str(self.attribute("RedrivePolicy")?).ok()?;
        let count = match &policy["maxReceiveCount"] {
            Value::Number(n) => n.as_i64()?,
            Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        Some(Redrive {
            dead_letter_arn: policy["deadLetterTargetArn"].as_str()?.to_owned(),
            max_receive_count: i32::try_from(count).ok()?,
        })
    }

    fn policy(&self) -> Option<Value> {
        crate::iam::parse_policy(self.attribute("Policy")?)
    }
}

/// The SQS queue kind.
#[derive(Debug)]
pub struct Queue;

/// The attributes Sluice sets on a queue, as SQS spells them. Empty values
/// remove a policy, a redrive policy or a KMS key.
fn attributes(d: &QueuePlan, creating: bool) -> BTreeMap<QueueAttributeName, String> {
    let mut a = BTreeMap::new();
    a.insert(
        QueueAttributeName::VisibilityTimeout,
        d.visibility_timeout_seconds.to_string(),
    );
    a.insert(
        QueueAttributeName::MessageRetentionPeriod,
        d.retention_seconds.to_string(),
    );
    if d.fifo {
        if creating {
            a.insert(QueueAttributeName::FifoQueue, "true".into());
        }
        a.insert(
            QueueAttributeName::ContentBasedDeduplication,
            d.content_based_deduplication.to_string(),
        );
    }
    match &d.kms_key {
        Some(key) => {
            a.insert(QueueAttributeName::KmsMasterKeyId, key.clone());
            a.insert(QueueAttributeName::SqsManagedSseEnabled, "false".into());
        }
        None => {
            if !creating {
                a.insert(QueueAttributeName::KmsMasterKeyId, String::new());
            }
            a.insert(QueueAttributeName::SqsManagedSseEnabled, "true".into());
        }
    }
    match &d.redrive {
        Some(r) => {
            a.insert(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({
                    "deadLetterTargetArn": r.dead_letter_arn,
                    "maxReceiveCount": r.max_receive_count,
                })
                .to_string(),
            );
        }
        None if !creating => {
            a.insert(QueueAttributeName::RedrivePolicy, String::new());
        }
        None => {}
    }
    match &d.policy {
        Some(p) => {
            a.insert(QueueAttributeName::Policy, p.to_string());
        }
        None if !creating => {
            a.insert(QueueAttributeName::Policy, String::new());
        }
        None => {}
    }
    a
}

fn wait(what: String, after: Duration) -> Error {
    Error::Waiting { what, after }
}

/// What a failed CreateQueue means: SQS keeps a deleted queue's name for 60
/// seconds, a concurrent create may be in flight, and a dead-letter queue
/// created a moment ago may not be visible yet; all are waited for.
fn create_error(e: super::AwsError, name: &str) -> Error {
    let message = e.message.as_deref().unwrap_or_default();
    if e.has_code("AWS.SimpleQueueService.QueueDeletedRecently")
        || e.has_code("QueueDeletedRecently")
    {
        wait(
            format!(
                "SQS queue {name} was deleted less than 60 s ago; SQS frees the name after 60 s"
            ),
            Duration::from_secs(20),
        )
    } else if e.has_code("QueueAlreadyExists") || e.has_code("QueueNameExists") {
        wait(
            format!("SQS queue {name} is being created"),
            Duration::from_secs(2),
        )
    } else if message.contains("Dead-letter target does not exist") {
        wait(
            format!("the dead-letter queue of SQS queue {name} to appear"),
            Duration::from_secs(2),
        )
    } else {
        e.into()
    }
}

async fn set_attributes(
    aws: &Aws,
    url: &str,
    attributes: BTreeMap<QueueAttributeName, String>,
) -> Result<()> {
    aws.call(Service::Sqs, "SetQueueAttributes", || {
        aws.sqs
            .set_queue_attributes()
            .queue_url(url)
            .set_attributes(Some(attributes.clone().into_iter().collect()))
            .send()
    })
    .await?;
    Ok(())
}

async fn tag(aws: &Aws, url: &str, tags: BTreeMap<String, String>) -> Result<()> {
    aws.call(Service::Sqs, "TagQueue", || {
        aws.sqs
            .tag_queue()
            .queue_url(url)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
    })
    .await?;
    Ok(())
}

async fn untag(aws: &Aws, url: &str, keys: Vec<String>) -> Result<()> {
    aws.call(Service::Sqs, "UntagQueue", || {
        aws.sqs
            .untag_queue()
            .queue_url(url)
            .set_tag_keys(Some(keys.clone()))
            .send()
    })
    .await?;
    Ok(())
}

impl AwsResource for Queue {
    type Desired = QueuePlan;
    type Observed = ObservedQueue;
    const KIND: Kind = Kind::Queue;

    fn id(desired: &QueuePlan) -> &str {
        &desired.name
    }

    fn logical(desired: &QueuePlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &QueuePlan) -> Option<String> {
        Some(aws.arn("sqs", &desired.name))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedQueue>> {
        let url = match aws
            .call(Service::Sqs, "GetQueueUrl", || {
                aws.sqs.get_queue_url().queue_name(id).send()
            })
            .await
        {
            Ok(out) => out.queue_url().unwrap_or_default().to_owned(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let attributes: BTreeMap<String, String> = match aws
            .call(Service::Sqs, "GetQueueAttributes", || {
                aws.sqs
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(QueueAttributeName::All)
                    .send()
            })
            .await
        {
            Ok(out) => out
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            // Deleted between the two calls.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let tags = match aws
            .call(Service::Sqs, "ListQueueTags", || {
                aws.sqs.list_queue_tags().queue_url(&url).send()
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
        Ok(Some(ObservedQueue {
            arn: attributes.get("QueueArn").cloned().unwrap_or_default(),
            url,
            attributes,
            tags,
        }))
    }

    fn tags(observed: &ObservedQueue) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &QueuePlan, o: &ObservedQueue) -> Vec<Drift> {
        let mut drift = Vec::new();
        let visibility = o.number("VisibilityTimeout");
        if visibility != Some(i64::from(d.visibility_timeout_seconds)) {
            drift.push(Drift::new(
                "visibilityTimeoutSeconds",
                d.visibility_timeout_seconds,
                visibility,
            ));
        }
        let retention = o.number("MessageRetentionPeriod");
        if retention != Some(i64::from(d.retention_seconds)) {
            drift.push(Drift::new(
                "retentionSeconds",
                d.retention_seconds,
                retention,
            ));
        }
        if d.fifo && o.flag("ContentBasedDeduplication") != d.content_based_deduplication {
            drift.push(Drift::new(
                "contentBasedDeduplication",
                d.content_based_deduplication,
                o.flag("ContentBasedDeduplication"),
            ));
        }
        let encrypted_as_planned = match &d.kms_key {
            Some(key) => o.attribute("KmsMasterKeyId") == Some(key.as_str()),
            None => o.attribute("KmsMasterKeyId").is_none() && o.flag("SqsManagedSseEnabled"),
        };
        if !encrypted_as_planned {
            drift.push(Drift::new(
                "encryption",
                d.kms_key.as_deref().unwrap_or("SQS-managed"),
                o.attribute("KmsMasterKeyId")
                    .unwrap_or("SQS-managed or none"),
            ));
        }
        if o.redrive() != d.redrive {
            drift.push(Drift::new("deadLetter", &d.redrive, o.redrive()));
        }
        let policy_matches = match (&d.policy, o.policy()) {
            (Some(want), Some(have)) => same_policy(want, &have),
            (None, None) => true,
            _ => false,
        };
        if !policy_matches {
            drift.push(Drift::new("policy", &d.policy, o.policy()));
        }
        drift.extend(tag_drift(&d.tags, &o.tags));
        drift
    }

    async fn create(aws: &Aws, d: &QueuePlan) -> Result<Option<String>> {
        let attributes = attributes(d, true);
        match aws
            .call(Service::Sqs, "CreateQueue", || {
                aws.sqs
                    .create_queue()
                    .queue_name(&d.name)
                    .set_attributes(Some(attributes.clone().into_iter().collect()))
                    .set_tags(Some(d.tags.clone().into_iter().collect()))
                    .send()
            })
            .await
        {
            Ok(_) => Ok(None),
            Err(e) => Err(create_error(e, &d.name)),
        }
    }

    async fn update(aws: &Aws, d: &QueuePlan, o: &ObservedQueue, drift: &[Drift]) -> Result<()> {
        let fields: Vec<&str> = drift.iter().map(|x| x.field).collect();
        if fields.iter().any(|f| *f != "tags") {
            // One call sets every attribute Sluice owns; unchanged ones are
            // rewritten with their current values.
            set_attributes(aws, &o.url, attributes(d, false)).await?;
        }
        if fields.contains(&"tags") {
            let (set, remove) = tag_changes(&d.tags, &o.tags);
            if !set.is_empty() {
                tag(aws, &o.url, set).await?;
            }
            if !remove.is_empty() {
                untag(aws, &o.url, remove).await?;
            }
        }
        Ok(())
    }

    async fn delete(aws: &Aws, _id: &str, o: &ObservedQueue) -> Result<()> {
        match aws
            .call(Service::Sqs, "DeleteQueue", || {
                aws.sqs.delete_queue().queue_url(&o.url).send()
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
        o: &ObservedQueue,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        tag(aws, &o.url, marker.clone()).await?;
        untag(
            aws,
            &o.url,
            OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn desired() -> QueuePlan {
        QueuePlan {
            logical: "q".into(),
            name: "sluice-q".into(),
            fifo: false,
            content_based_deduplication: false,
            visibility_timeout_seconds: 180,
            retention_seconds: 345_600,
            kms_key: None,
            redrive: Some(Redrive {
                dead_letter_arn: "arn:aws:sqs:us-east-1:1:sluice-q-dlq".into(),
                max_receive_count: 3,
            }),
            policy: Some(json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:1:sluice-q",
                "Condition": {"ArnEquals": {"aws:SourceArn": ["arn:aws:events:us-east-1:1:rule/r"]}}
            }]})),
            tags: BTreeMap::from([("sluice.dev/pipeline-uid".into(), "u".into())]),
        }
    }

    /// What SQS returns for the desired queue: strings, `maxReceiveCount`
    /// as a string, the policy with single-element lists flattened and
    /// defaults for attributes Sluice does not set.
    fn observed() -> ObservedQueue {
        ObservedQueue {
            url: "https://sqs/1/sluice-q".into(),
            arn: "arn:aws:sqs:us-east-1:1:sluice-q".into(),
            attributes: BTreeMap::from([
                ("VisibilityTimeout".into(), "180".into()),
                ("MessageRetentionPeriod".into(), "345600".into()),
                ("DelaySeconds".into(), "0".into()),
                ("SqsManagedSseEnabled".into(), "true".into()),
                (
                    "RedrivePolicy".into(),
                    r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:sluice-q-dlq","maxReceiveCount":"3"}"#.into(),
                ),
                (
                    "Policy".into(),
                    json!({"Version": "2012-10-17", "Statement": {
                        "Sid": "sluice-events",
                        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:1:sluice-q",
                        "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/r"}}
                    }})
                    .to_string(),
                ),
            ]),
            tags: BTreeMap::from([("sluice.dev/pipeline-uid".into(), "u".into())]),
        }
    }

    #[test]
    fn what_sqs_returns_for_the_plan_is_no_drift() {
        assert_eq!(Queue::diff(&desired(), &observed()), vec![]);
    }

    #[test]
    fn a_changed_redrive_policy_and_visibility_are_seen() {
        let mut o = observed();
        o.attributes.insert(
            "RedrivePolicy".into(),
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:sluice-q-dlq","maxReceiveCount":10}"#
                .into(),
        );
        o.attributes.insert("VisibilityTimeout".into(), "30".into());
        let fields: Vec<_> = Queue::diff(&desired(), &o)
            .iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, ["visibilityTimeoutSeconds", "deadLetter"]);
    }

    #[test]
    fn a_removed_policy_or_key_is_seen() {
        let mut o = observed();
        o.attributes.remove("Policy");
        let mut d = desired();
        d.kms_key = Some("arn:aws:kms:us-east-1:1:key/k".into());
        let fields: Vec<_> = Queue::diff(&d, &o).iter().map(|d| d.field).collect();
        assert_eq!(fields, ["encryption", "policy"]);
    }

    fn error(code: &str, message: &str) -> super::super::AwsError {
        super::super::AwsError {
            service: super::super::Service::Sqs,
            operation: "CreateQueue",
            code: Some(code.into()),
            message: Some(message.into()),
            status: Some(400),
            class: super::super::ErrorClass::Client,
        }
    }

    #[test]
    fn a_recently_deleted_name_or_a_new_dead_letter_queue_is_waited_for() {
        for (code, message) in [
            (
                "AWS.SimpleQueueService.QueueDeletedRecently",
                "You must wait 60 seconds",
            ),
            ("QueueDeletedRecently", "You must wait 60 seconds"),
            (
                "InvalidParameterValue",
                "Value for parameter RedrivePolicy is invalid. Reason: Dead-letter target does not exist.",
            ),
        ] {
            assert!(
                matches!(
                    create_error(error(code, message), "q"),
                    Error::Waiting { .. }
                ),
                "{code}"
            );
        }
        assert!(matches!(
            create_error(error("InvalidAttributeName", "Unknown Attribute"), "q"),
            Error::Aws(_)
        ));
    }

    #[test]
    fn updates_clear_what_the_plan_no_longer_has() {
        let mut d = desired();
        d.redrive = None;
        d.policy = None;
        let a = attributes(&d, false);
        assert_eq!(a[&QueueAttributeName::RedrivePolicy], "");
        assert_eq!(a[&QueueAttributeName::Policy], "");
        assert_eq!(a[&QueueAttributeName::KmsMasterKeyId], "");
        // A create never sends empty attributes.
        let created = attributes(&d, true);
        assert!(created.values().all(|v| !v.is_empty()), "{created:?}");
    }
}
