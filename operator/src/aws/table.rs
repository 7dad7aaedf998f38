//! DynamoDB tables: keys (fixed at creation), billing mode and capacity,
//! the change stream, encryption, TTL and the ownership tags. DynamoDB takes
//! one kind of change per `UpdateTable` and none while the table is not
//! `ACTIVE`, so one pass makes one change and waits.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput,
    ScalarAttributeType, SseSpecification, SseType, StreamSpecification, StreamViewType, Tag,
    TimeToLiveSpecification,
};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Error, Result,
    crd::{Capacity, KeyAttribute},
    naming::OWNERSHIP_TAG_KEYS,
    plan::{Kind, TablePlan},
};

/// What the operator's AWS policy allows for tables
/// ([`super::operator_policy`]).
pub const POLICY: &[Statement] = &[Statement::allow(
    "Tables",
    Document::Services,
    &[
        Action::calls(Service::DynamoDb, "CreateTable"),
        Action::calls(Service::DynamoDb, "DeleteTable"),
        Action::calls(Service::DynamoDb, "DescribeTable"),
        Action::calls(Service::DynamoDb, "UpdateTable"),
        Action::calls(Service::DynamoDb, "DescribeTimeToLive"),
        Action::calls(Service::DynamoDb, "UpdateTimeToLive"),
        Action::calls(Service::DynamoDb, "TagResource"),
        Action::calls(Service::DynamoDb, "UntagResource"),
        Action::calls(Service::DynamoDb, "ListTagsOfResource"),
    ],
    &["arn:aws:dynamodb:*:ACCOUNT_ID:table/sluice-*"],
)];

/// A table as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedTable {
    /// Table ARN.
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, ...
    pub status: String,
    /// `(name, type)` of the partition key.
    pub partition_key: Option<(String, String)>,
    /// `(name, type)` of the sort key.
    pub sort_key: Option<(String, String)>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing_mode: String,
    /// `(read, write)` capacity units.
    pub capacity: Option<(i64, i64)>,
    /// Stream view type, when the stream is on.
    pub stream: Option<String>,
    /// KMS key ARN of a customer-managed key.
    pub kms_key: Option<String>,
    /// TTL attribute, when TTL is on (or being turned on).
    pub ttl_attribute: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The DynamoDB table kind.
#[derive(Debug)]
pub struct Table;

fn wait(what: String) -> Error {
    Error::Waiting {
        what,
        after: Duration::from_secs(3),
    }
}

fn key_pair(k: &KeyAttribute) -> (String, String) {
    (k.name.clone(), k.type_.as_aws().to_owned())
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidSpec(format!("table: {e}"))
}

fn throughput(c: Capacity) -> Result<ProvisionedThroughput> {
    ProvisionedThroughput::builder()
        .read_capacity_units(c.read)
        .write_capacity_units(c.write)
        .build()
        .map_err(invalid)
}

fn stream_spec(d: &TablePlan) -> Result<StreamSpecification> {
    StreamSpecification::builder()
        .stream_enabled(d.stream.is_some())
        .set_stream_view_type(d.stream.map(|v| StreamViewType::from(v.as_aws())))
        .build()
        .map_err(invalid)
}

fn sse(d: &TablePlan) -> SseSpecification {
    match &d.kms_key {
        Some(key) => SseSpecification::builder()
            .enabled(true)
            .sse_type(SseType::Kms)
            .kms_master_key_id(key)
            .build(),
        // The key AWS owns: the default, and free.
        None => SseSpecification::builder().enabled(false).build(),
    }
}

/// A change still in progress is waited for ([`super::wait_while_busy`]).
fn busy(name: &str) -> impl Fn(super::AwsError) -> Error + '_ {
    super::wait_while_busy("DynamoDB table", name, Duration::from_secs(3))
}

impl AwsResource for Table {
    type Desired = TablePlan;
    type Observed = ObservedTable;
    const KIND: Kind = Kind::Table;

    fn id(desired: &TablePlan) -> &str {
        &desired.name
    }

    fn logical(desired: &TablePlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &TablePlan) -> Option<String> {
        Some(aws.arn("dynamodb", &format!("table/{}", desired.name)))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedTable>> {
        let table = match aws
            .call(Service::DynamoDb, "DescribeTable", || {
                aws.dynamodb.describe_table().table_name(id).send()
            })
            .await
        {
            Ok(out) => match out.table {
                Some(t) => t,
                None => return Ok(None),
            },
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let arn = table.table_arn().unwrap_or_default().to_owned();
        let types: BTreeMap<&str, &str> = table
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name(), a.attribute_type().as_str()))
            .collect();
        let key = |role: KeyType| {
            table
                .key_schema()
                .iter()
                .find(|k| *k.key_type() == role)
                .map(|k| {
                    let name = k.attribute_name();
                    (
                        name.to_owned(),
                        types.get(name).copied().unwrap_or_default().to_owned(),
                    )
                })
        };
        let ttl = match aws
            .call(Service::DynamoDb, "DescribeTimeToLive", || {
                aws.dynamodb.describe_time_to_live().table_name(id).send()
            })
            .await
        {
            Ok(out) => out.time_to_live_description().and_then(|t| {
                let on = t
                    .time_to_live_status()
                    .is_some_and(|s| matches!(s.as_str(), "ENABLED" | "ENABLING"));
                on.then(|| t.attribute_name().map(str::to_owned)).flatten()
            }),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let tags = match aws
            .call(Service::DynamoDb, "ListTagsOfResource", || {
                aws.dynamodb
                    .list_tags_of_resource()
                    .resource_arn(&arn)
                    .send()
            })
            .await
        {
            Ok(out) => out
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let billing_mode = table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map_or("PROVISIONED", |b| b.as_str())
            .to_owned();
        let capacity = (billing_mode == "PROVISIONED")
            .then(|| {
                table.provisioned_throughput().map(|p| {
                    (
                        p.read_capacity_units().unwrap_or_default(),
                        p.write_capacity_units().unwrap_or_default(),
                    )
                })
            })
            .flatten();
        let stream = table
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned());
        let kms_key = table
            .sse_description()
            .filter(|s| s.sse_type() == Some(&SseType::Kms))
            .and_then(|s| s.kms_master_key_arn())
            .map(str::to_owned);
        Ok(Some(ObservedTable {
            status: table
                .table_status()
                .map_or("ACTIVE", |s| s.as_str())
                .to_owned(),
            partition_key: key(KeyType::Hash),
            sort_key: key(KeyType::Range),
            billing_mode,
            capacity,
            stream,
            kms_key,
            ttl_attribute: ttl,
            arn,
            tags,
        }))
    }

    fn tags(observed: &ObservedTable) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &TablePlan, o: &ObservedTable) -> Vec<Drift> {
        let mut drift = Vec::new();
        let keys = (
            Some(key_pair(&d.partition_key)),
            d.sort_key.as_ref().map(key_pair),
        );
        if (o.partition_key.clone(), o.sort_key.clone()) != keys {
            drift.push(Drift::new("keys", &keys, (&o.partition_key, &o.sort_key)));
        }
        if o.billing_mode != d.billing_mode.as_aws() {
            drift.push(Drift::new(
                "billingMode",
                d.billing_mode.as_aws(),
                &o.billing_mode,
            ));
        } else if let Some(c) = d.capacity
            && o.capacity != Some((c.read, c.write))
        {
            drift.push(Drift::new("capacity", (c.read, c.write), o.capacity));
        }
        let stream = d.stream.map(|v| v.as_aws().to_owned());
        if o.stream != stream {
            drift.push(Drift::new("stream", &stream, &o.stream));
        }
        if o.kms_key != d.kms_key {
            drift.push(Drift::new("encryption", &d.kms_key, &o.kms_key));
        }
        if o.ttl_attribute != d.ttl_attribute {
            drift.push(Drift::new(
                "ttlAttribute",
                &d.ttl_attribute,
                &o.ttl_attribute,
            ));
        }
        drift.extend(tag_drift(&d.tags, &o.tags));
        drift
    }

    async fn create(aws: &Aws, d: &TablePlan) -> Result<Option<String>> {
        let mut keys = vec![(&d.partition_key, KeyType::Hash)];
        if let Some(sort) = &d.sort_key {
            keys.push((sort, KeyType::Range));
        }
        let schema = keys
            .iter()
            .map(|(k, role)| {
                KeySchemaElement::builder()
                    .attribute_name(&k.name)
                    .key_type(role.clone())
                    .build()
                    .map_err(invalid)
            })
            .collect::<Result<Vec<_>>>()?;
        let definitions = keys
            .iter()
            .map(|(k, _)| {
                AttributeDefinition::builder()
                    .attribute_name(&k.name)
                    .attribute_type(ScalarAttributeType::from(k.type_.as_aws()))
                    .build()
                    .map_err(invalid)
            })
            .collect::<Result<Vec<_>>>()?;
        let tags = d
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(invalid))
            .collect::<Result<Vec<_>>>()?;
        let throughput = d.capacity.map(throughput).transpose()?;
        let streams = d.stream.is_some().then(|| stream_spec(d)).transpose()?;
        match aws
            .call(Service::DynamoDb, "CreateTable", || {
                aws.dynamodb
                    .create_table()
                    .table_name(&d.name)
                    .set_key_schema(Some(schema.clone()))
                    .set_attribute_definitions(Some(definitions.clone()))
                    .billing_mode(BillingMode::from(d.billing_mode.as_aws()))
                    .set_provisioned_throughput(throughput.clone())
                    .set_stream_specification(streams.clone())
                    .sse_specification(sse(d))
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await
        {
            Ok(_) => {}
            Err(e) if e.has_code("ResourceInUseException") => {}
            Err(e) => return Err(e.into()),
        }
        if d.ttl_attribute.is_some() {
            // TTL can be set once the table is ACTIVE.
            return Err(wait(format!(
                "DynamoDB table {} to become ACTIVE to turn on TTL",
                d.name
            )));
        }
        Ok(None)
    }

    async fn update(aws: &Aws, d: &TablePlan, o: &ObservedTable, drift: &[Drift]) -> Result<()> {
        let fields: Vec<&str> = drift.iter().map(|x| x.field).collect();
        if fields.contains(&"keys") {
            return Err(Error::InvalidSpec(format!(
                "DynamoDB table {} has keys {:?} / {:?} but the spec asks for {} / {:?}; a table's \
                 keys are fixed when it is created: declare a table of another name",
                d.name,
                o.partition_key,
                o.sort_key,
                d.partition_key.name,
                d.sort_key.as_ref().map(|k| &k.name)
            )));
        }
        if fields.contains(&"tags") {
            let (set, remove) = tag_changes(&d.tags, &o.tags);
            if !set.is_empty() {
                let tags = set
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(invalid))
                    .collect::<Result<Vec<_>>>()?;
                aws.call(Service::DynamoDb, "TagResource", || {
                    aws.dynamodb
                        .tag_resource()
                        .resource_arn(&o.arn)
                        .set_tags(Some(tags.clone()))
                        .send()
                })
                .await?;
            }
            if !remove.is_empty() {
                aws.call(Service::DynamoDb, "UntagResource", || {
                    aws.dynamodb
                        .untag_resource()
                        .resource_arn(&o.arn)
                        .set_tag_keys(Some(remove.clone()))
                        .send()
                })
                .await?;
            }
        }
        let changes: Vec<&str> = fields.into_iter().filter(|f| *f != "tags").collect();
        let Some(change) = changes.first() else {
            return Ok(());
        };
        if o.status != "ACTIVE" {
            return Err(wait(format!("DynamoDB table {} is {}", d.name, o.status)));
        }
        match *change {
            "billingMode" | "capacity" => {
                let throughput = d.capacity.map(throughput).transpose()?;
                aws.call(Service::DynamoDb, "UpdateTable", || {
                    aws.dynamodb
                        .update_table()
                        .table_name(&d.name)
                        .billing_mode(BillingMode::from(d.billing_mode.as_aws()))
                        .set_provisioned_throughput(throughput.clone())
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
            "stream" => {
                // A stream's view cannot change in place: turn it off first.
                let spec = if o.stream.is_some() {
                    StreamSpecification::builder()
                        .stream_enabled(false)
                        .build()
                        .map_err(invalid)?
                } else {
                    stream_spec(d)?
                };
                aws.call(Service::DynamoDb, "UpdateTable", || {
                    aws.dynamodb
                        .update_table()
                        .table_name(&d.name)
                        .stream_specification(spec.clone())
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
                if o.stream.is_some() && d.stream.is_some() {
                    return Err(wait(format!(
                        "the old stream of DynamoDB table {} to close before the new one",
                        d.name
                    )));
                }
            }
            "encryption" => {
                aws.call(Service::DynamoDb, "UpdateTable", || {
                    aws.dynamodb
                        .update_table()
                        .table_name(&d.name)
                        .sse_specification(sse(d))
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
            "ttlAttribute" => {
                let spec = match (&d.ttl_attribute, &o.ttl_attribute) {
                    (Some(want), _) => TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(want),
                    (None, Some(have)) => TimeToLiveSpecification::builder()
                        .enabled(false)
                        .attribute_name(have),
                    (None, None) => return Ok(()),
                }
                .build()
                .map_err(invalid)?;
                aws.call(Service::DynamoDb, "UpdateTimeToLive", || {
                    aws.dynamodb
                        .update_time_to_live()
                        .table_name(&d.name)
                        .time_to_live_specification(spec.clone())
                        .send()
                })
                .await
                .map_err(busy(&d.name))?;
            }
            _ => {}
        }
        if changes.len() > 1 {
            return Err(wait(format!(
                "DynamoDB table {} to apply its next change",
                d.name
            )));
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedTable) -> Result<()> {
        match aws
            .call(Service::DynamoDb, "DeleteTable", || {
                aws.dynamodb.delete_table().table_name(id).send()
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
        _id: &str,
        o: &ObservedTable,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        let tags = marker
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(invalid))
            .collect::<Result<Vec<_>>>()?;
        aws.call(Service::DynamoDb, "TagResource", || {
            aws.dynamodb
                .tag_resource()
                .resource_arn(&o.arn)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
        aws.call(Service::DynamoDb, "UntagResource", || {
            aws.dynamodb
                .untag_resource()
                .resource_arn(&o.arn)
                .set_tag_keys(Some(
                    OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
                ))
                .send()
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BillingMode as SpecBilling, KeyType as SpecKey, StreamView};

    fn desired() -> TablePlan {
        TablePlan {
            logical: "results".into(),
            name: "t".into(),
            partition_key: KeyAttribute {
                name: "id".into(),
                type_: SpecKey::S,
            },
            sort_key: None,
            billing_mode: SpecBilling::PayPerRequest,
            capacity: None,
            ttl_attribute: Some("expires_at".into()),
            stream: Some(StreamView::NewImage),
            kms_key: None,
            tags: BTreeMap::new(),
        }
    }

    fn observed() -> ObservedTable {
        ObservedTable {
            arn: "arn".into(),
            status: "ACTIVE".into(),
            partition_key: Some(("id".into(), "S".into())),
            sort_key: None,
            billing_mode: "PAY_PER_REQUEST".into(),
            capacity: None,
            stream: Some("NEW_IMAGE".into()),
            kms_key: None,
            ttl_attribute: Some("expires_at".into()),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn a_converged_table_has_no_drift() {
        assert_eq!(Table::diff(&desired(), &observed()), vec![]);
    }

    #[test]
    fn stream_ttl_and_keys_are_compared() {
        let mut o = observed();
        o.stream = None;
        o.ttl_attribute = None;
        o.partition_key = Some(("pk".into(), "S".into()));
        let fields: Vec<_> = Table::diff(&desired(), &o)
            .iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, ["keys", "stream", "ttlAttribute"]);
    }
}
