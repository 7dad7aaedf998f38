//! EventBridge event buses: created with the pipeline's tags; nothing else
//! about them is configured.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::Tag;

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Error, Result,
    naming::OWNERSHIP_TAG_KEYS,
    plan::{EventBusPlan, Kind},
};

/// What the operator's AWS policy allows for event buses
/// ([`super::operator_policy`]).
pub const POLICY: &[Statement] = &[Statement::allow(
    "EventBuses",
    Document::Services,
    &[
        Action::calls(Service::Events, "CreateEventBus"),
        Action::calls(Service::Events, "DeleteEventBus"),
        Action::calls(Service::Events, "DescribeEventBus"),
        Action::calls(Service::Events, "TagResource"),
        Action::calls(Service::Events, "UntagResource"),
        Action::calls(Service::Events, "ListTagsForResource"),
    ],
    &["arn:aws:events:*:ACCOUNT_ID:event-bus/sluice-*"],
)];

/// A bus as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedEventBus {
    /// Bus ARN.
    pub arn: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The EventBridge bus kind.
#[derive(Debug)]
pub struct EventBus;

/// EventBridge tags from a map.
pub(crate) fn tag_list(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Error::InvalidSpec(format!("tag {k}: {e}")))
        })
        .collect()
}

/// The tags of an EventBridge resource (bus or rule) by ARN.
pub(crate) async fn read_tags(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>> {
    match aws
        .call(Service::Events, "ListTagsForResource", || {
            aws.events.list_tags_for_resource().resource_arn(arn).send()
        })
        .await
    {
        Ok(out) => Ok(Some(
            out.tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        )),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Brings the Sluice tags of an EventBridge resource to `want`.
pub(crate) async fn converge_tags(
    aws: &Aws,
    arn: &str,
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> Result<()> {
    let (set, remove) = tag_changes(want, have);
    if !set.is_empty() {
        let tags = tag_list(&set)?;
        aws.call(Service::Events, "TagResource", || {
            aws.events
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
    }
    if !remove.is_empty() {
        aws.call(Service::Events, "UntagResource", || {
            aws.events
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(remove.clone()))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// Leaves an EventBridge resource with only the release marker.
pub(crate) async fn release_tags(
    aws: &Aws,
    arn: &str,
    marker: &BTreeMap<String, String>,
) -> Result<()> {
    let tags = tag_list(marker)?;
    aws.call(Service::Events, "TagResource", || {
        aws.events
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags.clone()))
            .send()
    })
    .await?;
    aws.call(Service::Events, "UntagResource", || {
        aws.events
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(
                OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
            ))
            .send()
    })
    .await?;
    Ok(())
}

impl AwsResource for EventBus {
    type Desired = EventBusPlan;
    type Observed = ObservedEventBus;
    const KIND: Kind = Kind::EventBus;

    fn id(desired: &EventBusPlan) -> &str {
        &desired.name
    }

    fn logical(desired: &EventBusPlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &EventBusPlan) -> Option<String> {
        Some(aws.arn("events", &format!("event-bus/{}", desired.name)))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedEventBus>> {
        let arn = match aws
            .call(Service::Events, "DescribeEventBus", || {
                aws.events.describe_event_bus().name(id).send()
            })
            .await
        {
            Ok(out) => out.arn().unwrap_or_default().to_owned(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(tags) = read_tags(aws, &arn).await? else {
            return Ok(None);
        };
        Ok(Some(ObservedEventBus { arn, tags }))
    }

    fn tags(observed: &ObservedEventBus) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &EventBusPlan, o: &ObservedEventBus) -> Vec<Drift> {
        tag_drift(&d.tags, &o.tags).into_iter().collect()
    }

    async fn create(aws: &Aws, d: &EventBusPlan) -> Result<Option<String>> {
        let tags = tag_list(&d.tags)?;
        match aws
            .call(Service::Events, "CreateEventBus", || {
                aws.events
                    .create_event_bus()
                    .name(&d.name)
                    .description(format!(
                        "Sluice event bus {} (managed; do not edit)",
                        d.logical
                    ))
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if e.has_code("ResourceAlreadyExistsException") => Err(Error::Waiting {
                what: format!("event bus {} is being created", d.name),
                after: std::time::Duration::from_secs(2),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn update(
        aws: &Aws,
        d: &EventBusPlan,
        o: &ObservedEventBus,
        _drift: &[Drift],
    ) -> Result<()> {
        converge_tags(aws, &o.arn, &d.tags, &o.tags).await
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedEventBus) -> Result<()> {
        match aws
            .call(Service::Events, "DeleteEventBus", || {
                aws.events.delete_event_bus().name(id).send()
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
        o: &ObservedEventBus,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        release_tags(aws, &o.arn, marker).await
    }
}
