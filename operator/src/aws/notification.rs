//! A bucket's notification configuration. The bucket belongs to the
//! pipeline, so Sluice owns its whole configuration: what the triggers say
//! is exactly what is configured. The invoke permission must exist first,
//! because S3 checks the destination when the configuration is written.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    Event, EventBridgeConfiguration, FilterRule, FilterRuleName, LambdaFunctionConfiguration,
    NotificationConfiguration, NotificationConfigurationFilter, S3KeyFilter,
};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service};
use crate::{
    Error, Result,
    plan::{Kind, LambdaNotification, NotificationPlan},
};

/// What the operator's AWS policy allows for bucket notifications
/// ([`super::operator_policy`]): part of the buckets' statement.
pub const POLICY: &[Statement] = &[Statement::allow(
    "Buckets",
    Document::Core,
    &[
        Action::calls_as(
            Service::S3,
            "GetBucketNotificationConfiguration",
            "GetBucketNotification",
        ),
        Action::calls_as(
            Service::S3,
            "PutBucketNotificationConfiguration",
            "PutBucketNotification",
        ),
    ],
    super::bucket::BUCKETS,
)];

/// The destinations found on a bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedNotification {
    /// Sorted by id.
    pub lambdas: Vec<LambdaNotification>,
    /// Events also go to EventBridge.
    pub eventbridge: bool,
    /// The bucket also notifies queues or topics (not Sluice's).
    pub other_destinations: bool,
}

/// The bucket notification kind.
#[derive(Debug)]
pub struct Notification;

fn to_aws(n: &LambdaNotification) -> Result<LambdaFunctionConfiguration> {
    let mut rules = Vec::new();
    if let Some(prefix) = &n.prefix {
        rules.push(
            FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(prefix)
                .build(),
        );
    }
    if let Some(suffix) = &n.suffix {
        rules.push(
            FilterRule::builder()
                .name(FilterRuleName::Suffix)
                .value(suffix)
                .build(),
        );
    }
    let filter = (!rules.is_empty()).then(|| {
        NotificationConfigurationFilter::builder()
            .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
            .build()
    });
    LambdaFunctionConfiguration::builder()
        .id(&n.id)
        .lambda_function_arn(&n.function_arn)
        .set_events(Some(
            n.events.iter().map(|e| Event::from(e.as_str())).collect(),
        ))
        .set_filter(filter)
        .build()
        .map_err(|e| Error::InvalidSpec(format!("bucket notification {}: {e}", n.id)))
}

fn from_aws(c: &LambdaFunctionConfiguration) -> LambdaNotification {
    let mut prefix = None;
    let mut suffix = None;
    for rule in c
        .filter()
        .and_then(|f| f.key())
        .map(|k| k.filter_rules())
        .unwrap_or_default()
    {
        let value = rule.value().map(str::to_owned);
        // S3 returns rule names in either case ("prefix" or "Prefix").
        match rule
            .name()
            .map(|n| n.as_str().to_ascii_lowercase())
            .as_deref()
        {
            Some("prefix") => prefix = value,
            Some("suffix") => suffix = value,
            _ => {}
        }
    }
    let mut events: Vec<String> = c.events().iter().map(|e| e.as_str().to_owned()).collect();
    events.sort();
    events.dedup();
    LambdaNotification {
        id: c.id().unwrap_or_default().to_owned(),
        function_arn: c.lambda_function_arn().to_owned(),
        events,
        prefix: prefix.filter(|p| !p.is_empty()),
        suffix: suffix.filter(|s| !s.is_empty()),
    }
}

async fn put(
    aws: &Aws,
    bucket: &str,
    lambdas: &[LambdaNotification],
    eventbridge: bool,
) -> Result<()> {
    let configurations = lambdas.iter().map(to_aws).collect::<Result<Vec<_>>>()?;
    let configuration = NotificationConfiguration::builder()
        .set_lambda_function_configurations(Some(configurations))
        .set_event_bridge_configuration(
            eventbridge.then(|| EventBridgeConfiguration::builder().build()),
        )
        .build();
    aws.call(Service::S3, "PutBucketNotificationConfiguration", || {
        aws.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .expected_bucket_owner(&aws.account)
            .notification_configuration(configuration.clone())
            .send()
    })
    .await?;
    Ok(())
}

impl AwsResource for Notification {
    type Desired = NotificationPlan;
    type Observed = ObservedNotification;
    const KIND: Kind = Kind::Notification;

    fn id(desired: &NotificationPlan) -> &str {
        &desired.bucket
    }

    fn logical(desired: &NotificationPlan) -> &str {
        &desired.logical
    }

    fn arn(_aws: &Aws, _desired: &NotificationPlan) -> Option<String> {
        None
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedNotification>> {
        let out = match aws
            .call(Service::S3, "GetBucketNotificationConfiguration", || {
                aws.s3
                    .get_bucket_notification_configuration()
                    .bucket(id)
                    .expected_bucket_owner(&aws.account)
                    .send()
            })
            .await
        {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(None),
            // An HTTP 200 whose body is not a NotificationConfiguration: the
            // AWS emulator answers an empty configuration with a differently
            // named root element. Reading it as "no configuration" is safe:
            // at worst one extra Put rewrites the same configuration.
            Err(e) if e.status == Some(200) && e.code.is_none() => return Ok(None),
            // The bucket is another account's (the call names this one as
            // owner): its notifications are not this pipeline's.
            Err(e) if e.status == Some(403) => {
                return Err(Error::Conflict(format!(
                    "S3 bucket {id} is owned by another AWS account (S3 answered 403 to a request \
                     expecting this account as its owner); Sluice will not read or change its \
                     notifications"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let mut lambdas: Vec<LambdaNotification> = out
            .lambda_function_configurations()
            .iter()
            .map(from_aws)
            .collect();
        lambdas.sort();
        let other_destinations =
            !out.queue_configurations().is_empty() || !out.topic_configurations().is_empty();
        let eventbridge = out.event_bridge_configuration().is_some();
        if lambdas.is_empty() && !other_destinations && !eventbridge {
            return Ok(None);
        }
        Ok(Some(ObservedNotification {
            lambdas,
            eventbridge,
            other_destinations,
        }))
    }

    fn tags(_observed: &ObservedNotification) -> Option<&BTreeMap<String, String>> {
        None
    }

    fn diff(d: &NotificationPlan, o: &ObservedNotification) -> Vec<Drift> {
        let mut drift = Vec::new();
        if d.lambdas != o.lambdas {
            let ids = |l: &[LambdaNotification]| l.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
            drift.push(Drift::new(
                "lambdaConfigurations",
                ids(&d.lambdas),
                ids(&o.lambdas),
            ));
        }
        if d.eventbridge != o.eventbridge {
            drift.push(Drift::new("eventBridge", d.eventbridge, o.eventbridge));
        }
        if o.other_destinations {
            drift.push(Drift::new("otherDestinations", "none", "present"));
        }
        drift
    }

    async fn create(aws: &Aws, d: &NotificationPlan) -> Result<Option<String>> {
        put(aws, &d.bucket, &d.lambdas, d.eventbridge).await?;
        Ok(None)
    }

    async fn update(
        aws: &Aws,
        d: &NotificationPlan,
        _o: &ObservedNotification,
        _drift: &[Drift],
    ) -> Result<()> {
        put(aws, &d.bucket, &d.lambdas, d.eventbridge).await
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedNotification) -> Result<()> {
        match put(aws, id, &[], false).await {
            Err(Error::Aws(e)) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    async fn release(
        _aws: &Aws,
        _id: &str,
        _o: &ObservedNotification,
        _marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_sdk_types() {
        let n = LambdaNotification {
            id: "sluice-p-0".into(),
            function_arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
            events: vec!["s3:ObjectCreated:*".into()],
            prefix: Some("in/".into()),
            suffix: None,
        };
        assert_eq!(from_aws(&to_aws(&n).expect("valid")), n);
    }
}
