//! Kinesis data streams: capacity mode, shard count, retention, KMS
//! encryption (always on) and the ownership tags. Kinesis takes one change
//! at a time: each puts the stream in `UPDATING`, so one pass makes one
//! change and waits for `ACTIVE` before the next.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_kinesis::types::{EncryptionType, ScalingType, StreamMode, StreamModeDetails};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Error, Result,
    naming::OWNERSHIP_TAG_KEYS,
    plan::{Kind, StreamPlan},
};

/// What the operator's AWS policy allows for streams
/// ([`super::operator_policy`]). Encryption is only ever started.
pub const POLICY: &[Statement] = &[Statement::allow(
    "Streams",
    Document::Services,
    &[
        Action::calls(Service::Kinesis, "CreateStream"),
        Action::calls(Service::Kinesis, "DeleteStream"),
        Action::calls(Service::Kinesis, "DescribeStreamSummary"),
        Action::calls(Service::Kinesis, "ListTagsForStream"),
        Action::calls(Service::Kinesis, "AddTagsToStream"),
        Action::calls(Service::Kinesis, "RemoveTagsFromStream"),
        Action::calls(Service::Kinesis, "UpdateShardCount"),
        Action::calls(Service::Kinesis, "UpdateStreamMode"),
        Action::calls(Service::Kinesis, "IncreaseStreamRetentionPeriod"),
        Action::calls(Service::Kinesis, "DecreaseStreamRetentionPeriod"),
        Action::calls(Service::Kinesis, "StartStreamEncryption"),
    ],
    &["arn:aws:kinesis:*:ACCOUNT_ID:stream/sluice-*"],
)];

/// A stream as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedStream {
    /// Stream ARN.
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING` or `DELETING`.
    pub status: String,
    /// `ON_DEMAND` or `PROVISIONED`.
    pub mode: Option<String>,
    /// Open shards.
    pub open_shards: Option<i32>,
    /// Retention in hours.
    pub retention_hours: Option<i32>,
    /// KMS key id, when encrypted.
    pub kms_key: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The Kinesis stream kind.
#[derive(Debug)]
pub struct Stream;

fn wait(what: String) -> Error {
    Error::Waiting {
        what,
        after: Duration::from_secs(3),
    }
}

fn mode(d: &StreamPlan) -> Result<StreamModeDetails> {
    StreamModeDetails::builder()
        .stream_mode(StreamMode::from(d.mode.as_aws()))
        .build()
        .map_err(|e| Error::InvalidSpec(format!("stream mode: {e}")))
}

/// A change still in progress is waited for ([`super::wait_while_busy`]).
fn busy(name: &str) -> impl Fn(super::AwsError) -> Error + '_ {
    super::wait_while_busy("Kinesis stream", name, Duration::from_secs(3))
}

impl AwsResource for Stream {
    type Desired = StreamPlan;
    type Observed = ObservedStream;
    const KIND: Kind = Kind::Stream;

    fn id(desired: &StreamPlan) -> &str {
        &desired.name
    }

    fn logical(desired: &StreamPlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &StreamPlan) -> Option<String> {
        Some(aws.arn("kinesis", &format!("stream/{}", desired.name)))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedStream>> {
        let summary = match aws
            .call(Service::Kinesis, "DescribeStreamSummary", || {
                aws.kinesis.describe_stream_summary().stream_name(id).send()
            })
            .await
        {
            Ok(out) => match out.stream_description_summary {
                Some(s) => s,
                None => return Ok(None),
            },
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let tags = match aws
            .call(Service::Kinesis, "ListTagsForStream", || {
                aws.kinesis.list_tags_for_stream().stream_name(id).send()
            })
            .await
        {
            Ok(out) => out
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
                .collect(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let encrypted = summary.encryption_type() == Some(&EncryptionType::Kms);
        Ok(Some(ObservedStream {
            arn: summary.stream_arn().to_owned(),
            status: summary.stream_status().as_str().to_owned(),
            mode: summary
                .stream_mode_details()
                .map(|m| m.stream_mode().as_str().to_owned()),
            open_shards: Some(summary.open_shard_count()),
            retention_hours: Some(summary.retention_period_hours()),
            kms_key: encrypted
                .then(|| summary.key_id().map(str::to_owned))
                .flatten(),
            tags,
        }))
    }

    fn tags(observed: &ObservedStream) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &StreamPlan, o: &ObservedStream) -> Vec<Drift> {
        let mut drift = Vec::new();
        // Kinesis reports no mode for streams made before modes existed:
        // those are provisioned.
        let mode = o.mode.as_deref().unwrap_or("PROVISIONED");
        if mode != d.mode.as_aws() {
            drift.push(Drift::new("mode", d.mode.as_aws(), mode));
        }
        if let Some(shards) = d.shards
            && o.open_shards != Some(shards)
        {
            drift.push(Drift::new("shards", shards, o.open_shards));
        }
        if o.retention_hours != Some(d.retention_hours) {
            drift.push(Drift::new(
                "retentionHours",
                d.retention_hours,
                o.retention_hours,
            ));
        }
        if o.kms_key.as_deref() != Some(d.kms_key.as_str()) {
            drift.push(Drift::new("encryption", &d.kms_key, &o.kms_key));
        }
        drift.extend(tag_drift(&d.tags, &o.tags));
        drift
    }

    async fn create(aws: &Aws, d: &StreamPlan) -> Result<Option<String>> {
        let details = mode(d)?;
        match aws
            .call(Service::Kinesis, "CreateStream", || {
                aws.kinesis
                    .create_stream()
                    .stream_name(&d.name)
                    .set_shard_count(d.shards)
                    .stream_mode_details(details.clone())
                    .set_tags(Some(d.tags.clone().into_iter().collect()))
                    .send()
            })
            .await
        {
            Ok(_) => {}
            Err(e) if e.has_code("ResourceInUseException") => {}
            Err(e) => return Err(e.into()),
        }
        // Encryption and retention can only be set once the stream is
        // ACTIVE: come back shortly rather than at the next resync.
        Err(wait(format!(
            "Kinesis stream {} to become ACTIVE to encrypt it",
            d.name
        )))
    }

    async fn update(aws: &Aws, d: &StreamPlan, o: &ObservedStream, drift: &[Drift]) -> Result<()> {
        let fields: Vec<&str> = drift.iter().map(|x| x.field).collect();
        if fields.contains(&"tags") {
            let (set, remove) = tag_changes(&d.tags, &o.tags);
            if !set.is_empty() {
                aws.call(Service::Kinesis, "AddTagsToStream", || {
                    aws.kinesis
                        .add_tags_to_stream()
                        .stream_name(&d.name)
                        .set_tags(Some(set.clone().into_iter().collect()))
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
            if !remove.is_empty() {
                aws.call(Service::Kinesis, "RemoveTagsFromStream", || {
                    aws.kinesis
                        .remove_tags_from_stream()
                        .stream_name(&d.name)
                        .set_tag_keys(Some(remove.clone()))
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
        }
        let Some(change) = fields.iter().find(|f| **f != "tags") else {
            return Ok(());
        };
        if o.status != "ACTIVE" {
            return Err(wait(format!("Kinesis stream {} is {}", d.name, o.status)));
        }
        match *change {
            "mode" => {
                let details = mode(d)?;
                aws.call(Service::Kinesis, "UpdateStreamMode", || {
                    aws.kinesis
                        .update_stream_mode()
                        .stream_arn(&o.arn)
                        .stream_mode_details(details.clone())
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
            "shards" => {
                let shards = d.shards.unwrap_or(1);
                aws.call(Service::Kinesis, "UpdateShardCount", || {
                    aws.kinesis
                        .update_shard_count()
                        .stream_name(&d.name)
                        .target_shard_count(shards)
                        .scaling_type(ScalingType::UniformScaling)
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
            "retentionHours" => {
                let current = o.retention_hours.unwrap_or(24);
                if d.retention_hours > current {
                    aws.call(Service::Kinesis, "IncreaseStreamRetentionPeriod", || {
                        aws.kinesis
                            .increase_stream_retention_period()
                            .stream_name(&d.name)
                            .retention_period_hours(d.retention_hours)
                            .send()
                    })
                    .await
                    .map_err(busy(&d.name))?;
                } else {
                    aws.call(Service::Kinesis, "DecreaseStreamRetentionPeriod", || {
                        aws.kinesis
                            .decrease_stream_retention_period()
                            .stream_name(&d.name)
                            .retention_period_hours(d.retention_hours)
                            .send()
                    })
                    .await
                    .map_err(busy(&d.name))?;
                }
            }
            "encryption" => {
                aws.call(Service::Kinesis, "StartStreamEncryption", || {
                    aws.kinesis
                        .start_stream_encryption()
                        .stream_name(&d.name)
                        .encryption_type(EncryptionType::Kms)
                        .key_id(&d.kms_key)
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
            _ => {}
        }
        // One change per pass: the next waits for ACTIVE.
        if fields.iter().filter(|f| **f != "tags").count() > 1 {
            return Err(wait(format!(
                "Kinesis stream {} to apply its next change",
                d.name
            )));
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedStream) -> Result<()> {
        match aws
            .call(Service::Kinesis, "DeleteStream", || {
                aws.kinesis
                    .delete_stream()
                    .stream_name(id)
                    .enforce_consumer_deletion(true)
                    .send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(busy(id)(e)),
        }
    }

    async fn release(
        aws: &Aws,
        id: &str,
        _o: &ObservedStream,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        aws.call(Service::Kinesis, "AddTagsToStream", || {
            aws.kinesis
                .add_tags_to_stream()
                .stream_name(id)
                .set_tags(Some(marker.clone().into_iter().collect()))
                .send()
        })
        .await
        .map_err(busy(id))?;
        aws.call(Service::Kinesis, "RemoveTagsFromStream", || {
            aws.kinesis
                .remove_tags_from_stream()
                .stream_name(id)
                .set_tag_keys(Some(
                    OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
                ))
                .send()
        })
        .await
        .map_err(busy(id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::StreamMode as SpecMode;

    fn desired() -> StreamPlan {
        StreamPlan {
            logical: "events".into(),
            name: "s".into(),
            mode: SpecMode::Provisioned,
            shards: Some(1),
            retention_hours: 24,
            kms_key: "alias/aws/kinesis".into(),
            tags: BTreeMap::new(),
        }
    }

    fn observed() -> ObservedStream {
        ObservedStream {
            arn: "arn".into(),
            status: "ACTIVE".into(),
            mode: Some("PROVISIONED".into()),
            open_shards: Some(1),
            retention_hours: Some(24),
            kms_key: Some("alias/aws/kinesis".into()),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn a_converged_stream_has_no_drift() {
        assert_eq!(Stream::diff(&desired(), &observed()), vec![]);
    }

    #[test]
    fn shards_retention_and_encryption_are_compared() {
        let mut o = observed();
        o.open_shards = Some(2);
        o.retention_hours = Some(48);
        o.kms_key = None;
        let fields: Vec<_> = Stream::diff(&desired(), &o)
            .iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, ["shards", "retentionHours", "encryption"]);
        // On-demand streams have no shard count to compare.
        let mut d = desired();
        d.mode = SpecMode::OnDemand;
        d.shards = None;
        let mut o = observed();
        o.mode = Some("ON_DEMAND".into());
        o.open_shards = Some(4);
        assert_eq!(Stream::diff(&d, &o), vec![]);
    }
}
