//! DynamoDB tables of a pipeline.
//!
//! | AWS rule (CreateTable, UpdateTable, UpdateTimeToLive) | Where | Reference |
//! |---|---|---|
//! | A table name is 3 to 255 characters of `[a-zA-Z0-9_.-]` | naming (derived names are at most 255) | CreateTable, TableName |
//! | Attribute names 1 to 255 characters (Sluice allows `[A-Za-z0-9_.-]`) | CRD schema | AttributeDefinition |
//! | Key schema: one partition key, at most one sort key, of type S, N or B | CRD schema | KeySchemaElement |
//! | Capacity only in provisioned mode, 1 to 40,000 units each (the default table quota) | CRD schema and rule | ProvisionedThroughput |
//! | Keys cannot change once the table exists | CRD transition rule | UpdateTable |
//! | An idempotency table has partition key `pk` (S) and no TTL on another attribute | `reconcile::validate::function` | Sluice's handlers |
//!
//! Not enforced: the two capacity decreases an hour UpdateTable allows
//! after the first four of a day (it depends on the table's history);
//! AWS's refusal stalls the pipeline (`AWSRejected`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::queue::KmsEncryption;

/// A DynamoDB table.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.billingMode == 'PayPerRequest' ? !has(self.capacity) : has(self.capacity)", "message": "capacity is set exactly when billingMode is Provisioned"},
    {"rule": "!has(self.sortKey) || self.sortKey.name != self.partitionKey.name", "message": "sortKey and partitionKey must be different attributes"},
    {"rule": "!has(self.partitionKey) || oldSelf.partitionKey == self.partitionKey", "message": "partitionKey cannot change: DynamoDB fixes a table's keys at creation; declare a new table instead"},
    {"rule": "has(self.sortKey) == has(oldSelf.sortKey) && (!has(self.sortKey) || oldSelf.sortKey == self.sortKey)", "message": "sortKey cannot change: DynamoDB fixes a table's keys at creation; declare a new table instead"}
]))]
pub struct TableSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The partition key (fixed once the table exists).
    pub partition_key: KeyAttribute,

    /// The sort key, if any (fixed once the table exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeyAttribute>,

    /// `PayPerRequest` (on demand) or `Provisioned` with `capacity`.
    #[serde(default)]
    pub billing_mode: BillingMode,

    /// Read and write capacity units of a provisioned table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,

    /// Attribute holding each item's expiry (epoch seconds); DynamoDB
    /// deletes expired items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub ttl_attribute: Option<String>,

    /// A DynamoDB stream of changes, with this view of each item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamView>,

    /// Encryption at rest with this KMS key; without it, with a key AWS
    /// owns (DynamoDB always encrypts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<KmsEncryption>,
}

/// A key attribute of a table.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyAttribute {
    /// Attribute name.
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub name: String,

    /// `S` (string), `N` (number) or `B` (binary).
    #[serde(rename = "type")]
    pub type_: KeyType,
}

/// Type of a key attribute.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

impl KeyType {
    /// The value DynamoDB's API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }
}

/// Billing mode of a table.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BillingMode {
    /// On demand.
    #[default]
    PayPerRequest,
    /// Fixed capacity.
    Provisioned,
}

impl BillingMode {
    /// The value DynamoDB's API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            BillingMode::PayPerRequest => "PAY_PER_REQUEST",
            BillingMode::Provisioned => "PROVISIONED",
        }
    }
}

/// Provisioned capacity of a table.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// Read capacity units (1 to 40,000).
    #[schemars(range(min = 1, max = 40000))]
    pub read: i64,
    /// Write capacity units (1 to 40,000).
    #[schemars(range(min = 1, max = 40000))]
    pub write: i64,
}

/// What a DynamoDB stream record holds.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StreamView {
    /// The item after the change.
    NewImage,
    /// The item before the change.
    OldImage,
    /// Both.
    NewAndOldImages,
    /// Only the key attributes.
    KeysOnly,
}

impl StreamView {
    /// The value DynamoDB's API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
            StreamView::KeysOnly => "KEYS_ONLY",
        }
    }
}
