//! DynamoDB items behind a trait: JSON → attribute-value conversion checked
//! against DynamoDB's limits (so one bad record cannot make a whole
//! BatchWriteItem call fail), batched writes with `UnprocessedItems` retries,
//! the SDK implementation and an in-memory one.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::Value;

use crate::aws::classify_sdk_error;
use crate::error::StoreError;
use crate::retry::{Backoff, Sent, send_in_batches};

/// BatchWriteItem accepts at most 25 put requests per call.
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// DynamoDB's item size limit (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's nesting limit for maps and lists.
const MAX_DEPTH: usize = 32;

/// A DynamoDB attribute value (the subset JSON maps to).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// String.
    S(String),
    /// Number, as DynamoDB's decimal string.
    N(String),
    /// Boolean.
    Bool(bool),
    /// Null.
    Null,
    /// List.
    L(Vec<AttrValue>),
    /// Map.
    M(BTreeMap<String, AttrValue>),
}

/// An item: attribute name → value.
pub type Item = BTreeMap<String, AttrValue>;

impl AttrValue {
    /// A string attribute.
    pub fn s(value: impl Into<String>) -> Self {
        AttrValue::S(value.into())
    }

    /// The string, if this is an `S`.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            AttrValue::S(s) => Some(s),
            _ => None,
        }
    }

    /// Converts JSON, rejecting what DynamoDB would reject: numbers outside
    /// its range (magnitude 1e-130 ..< 1e126) and nesting deeper than 32.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        Self::from_json_at(value, 0)
    }

    fn from_json_at(value: &Value, depth: usize) -> Result<Self, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than DynamoDB's {MAX_DEPTH} levels"));
        }
        Ok(match value {
            Value::Null => AttrValue::Null,
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::String(s) => AttrValue::S(s.clone()),
            Value::Number(n) => {
                if n.as_i64().is_none() && n.as_u64().is_none() {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    let magnitude = f.abs();
                    if !f.is_finite() || (magnitude != 0.0 && !(1e-130..1e126).contains(&magnitude))
                    {
                        return Err(format!("number {n} is outside DynamoDB's range"));
                    }
                }
                AttrValue::N(n.to_string())
            }
            Value::Array(items) => AttrValue::L(
                items
                    .iter()
                    .map(|v| Self::from_json_at(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => AttrValue::M(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Self::from_json_at(v, depth + 1)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// A rough size in bytes (names + values), for the 400 KB item limit.
    pub fn approx_size(&self) -> usize {
        match self {
            AttrValue::S(s) | AttrValue::N(s) => s.len(),
            AttrValue::Bool(_) | AttrValue::Null => 1,
            AttrValue::L(items) => 3 + items.iter().map(|v| 1 + v.approx_size()).sum::<usize>(),
            AttrValue::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| 1 + k.len() + v.approx_size())
                    .sum::<usize>()
            }
        }
    }

    fn into_sdk(self) -> AttributeValue {
        match self {
            AttrValue::S(s) => AttributeValue::S(s),
            AttrValue::N(n) => AttributeValue::N(n),
            AttrValue::Bool(b) => AttributeValue::Bool(b),
            AttrValue::Null => AttributeValue::Null(true),
            AttrValue::L(l) => AttributeValue::L(l.into_iter().map(AttrValue::into_sdk).collect()),
            AttrValue::M(m) => {
                AttributeValue::M(m.into_iter().map(|(k, v)| (k, v.into_sdk())).collect())
            }
        }
    }

    fn from_sdk(value: &AttributeValue) -> Self {
        match value {
            AttributeValue::S(s) => AttrValue::S(s.clone()),
            AttributeValue::N(n) => AttrValue::N(n.clone()),
            AttributeValue::Bool(b) => AttrValue::Bool(*b),
            AttributeValue::L(l) => AttrValue::L(l.iter().map(AttrValue::from_sdk).collect()),
            AttributeValue::M(m) => AttrValue::M(
                m.iter()
                    .map(|(k, v)| (k.clone(), AttrValue::from_sdk(v)))
                    .collect(),
            ),
            // We never write sets or binaries.
            _ => AttrValue::Null,
        }
    }
}

/// Approximate size of a whole item.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.approx_size()).sum()
}

/// Batched writes to a table.
pub trait ItemTable: Send + Sync {
    /// One BatchWriteItem call with at most [`MAX_BATCH_WRITE_ITEMS`] puts;
    /// returns the items DynamoDB left unprocessed.
    fn batch_put(
        &self,
        table: &str,
        items: Vec<Item>,
    ) -> impl Future<Output = Result<Vec<Item>, StoreError>> + Send;
}

/// Writes `items` in calls of at most 25, resending unprocessed items up to
/// `backoff.attempts` attempts. Items must have distinct `key_attr` values (a
/// batch with two puts of one key is rejected whole). Returns, per item,
/// `None` if written or the last error.
pub async fn write_all<T: ItemTable>(
    target: &T,
    table: &str,
    items: &[Item],
    key_attr: &str,
    backoff: Backoff,
) -> Vec<Option<StoreError>> {
    let unprocessed = || StoreError::Transient("BatchWriteItem left the item unprocessed".into());
    send_in_batches(
        items.len(),
        MAX_BATCH_WRITE_ITEMS,
        backoff,
        "BatchWriteItem",
        unprocessed,
        |chunk| async move {
            let batch: Vec<Item> = chunk.iter().map(|&i| items[i].clone()).collect();
            match target.batch_put(table, batch).await {
                Ok(left) => {
                    let left: Vec<&AttrValue> =
                        left.iter().filter_map(|i| i.get(key_attr)).collect();
                    chunk
                        .iter()
                        .map(|&i| match items[i].get(key_attr) {
                            Some(key) if left.contains(&key) => Sent::Retry(unprocessed()),
                            _ => Sent::Done,
                        })
                        .collect()
                }
                Err(error) => {
                    let transient = matches!(error, StoreError::Transient(_));
                    chunk
                        .iter()
                        .map(|_| Sent::failed(error.clone(), transient))
                        .collect()
                }
            }
        },
    )
    .await
}

/// [`ItemTable`] over Amazon DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: aws_sdk_dynamodb::Client,
}

impl DynamoTable {
    /// Wraps a DynamoDB client.
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        Self { client }
    }
}

fn to_sdk_item(item: Item) -> HashMap<String, AttributeValue> {
    item.into_iter().map(|(k, v)| (k, v.into_sdk())).collect()
}

impl ItemTable for DynamoTable {
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(to_sdk_item(item)))
                .build()
                .map_err(|e| StoreError::Rejected(format!("building PutRequest: {e}")))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let output = self
            .client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &format!("BatchWriteItem {table}")))?;
        Ok(output
            .unprocessed_items()
            .and_then(|m| m.get(table))
            .map(|requests| {
                requests
                    .iter()
                    .filter_map(|r| r.put_request())
                    .map(|p| {
                        p.item()
                            .iter()
                            .map(|(k, v)| (k.clone(), AttrValue::from_sdk(v)))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// In-memory [`ItemTable`] for tests, keyed by one attribute.
#[derive(Debug)]
pub struct MemoryTable {
    key_attr: String,
    state: Mutex<TableState>,
}

#[derive(Debug, Default)]
struct TableState {
    items: BTreeMap<(String, String), Item>,
    calls: Vec<usize>,
    /// key value → times left to report it unprocessed.
    unprocessed: HashMap<String, u32>,
}

impl MemoryTable {
    /// An empty table keyed by the string attribute `key_attr`.
    pub fn new(key_attr: &str) -> Self {
        Self {
            key_attr: key_attr.to_owned(),
            state: Mutex::default(),
        }
    }

    /// Leaves the item with key `key` unprocessed `times` times.
    pub fn leave_unprocessed(&self, key: &str, times: u32) {
        self.lock().unprocessed.insert(key.to_owned(), times);
    }

    /// The item with key `key` in `table`.
    pub fn get(&self, table: &str, key: &str) -> Option<Item> {
        self.lock()
            .items
            .get(&(table.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Number of items in `table`.
    pub fn len(&self, table: &str) -> usize {
        self.lock().items.keys().filter(|(t, _)| t == table).count()
    }

    /// Whether `table` is empty.
    pub fn is_empty(&self, table: &str) -> bool {
        self.len(table) == 0
    }

    /// The size of every BatchWriteItem call made.
    pub fn calls(&self) -> Vec<usize> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TableState> {
        self.state.lock().expect("memory table lock poisoned")
    }
}

impl ItemTable for MemoryTable {
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut state = self.lock();
        state.calls.push(items.len());
        if items.len() > MAX_BATCH_WRITE_ITEMS {
            return Err(StoreError::Rejected(
                "too many items in one BatchWriteItem".into(),
            ));
        }
        let mut keys = Vec::new();
        for item in &items {
            let Some(key) = item.get(&self.key_attr).and_then(AttrValue::as_s) else {
                return Err(StoreError::Rejected("item without a string key".into()));
            };
            if keys.contains(&key) {
                return Err(StoreError::Rejected(
                    "provided list of item keys contains duplicates".into(),
                ));
            }
            keys.push(key);
        }
        let mut unprocessed = Vec::new();
        for item in items {
            let key = item
                .get(&self.key_attr)
                .and_then(AttrValue::as_s)
                .unwrap_or_default()
                .to_owned();
            if let Some(left) = state.unprocessed.get_mut(&key).filter(|left| **left > 0) {
                *left -= 1;
                unprocessed.push(item);
                continue;
            }
            state.items.insert((table.to_owned(), key), item);
        }
        Ok(unprocessed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(id: &str) -> Item {
        Item::from([("id".to_owned(), AttrValue::s(id))])
    }

    #[test]
    fn json_maps_to_attribute_values() {
        let v =
            AttrValue::from_json(&json!({"a": [1, 2.5, "x", null, true], "b": {}})).expect("ok");
        let AttrValue::M(m) = v else {
            panic!("expected a map")
        };
        assert_eq!(
            m["a"],
            AttrValue::L(vec![
                AttrValue::N("1".into()),
                AttrValue::N("2.5".into()),
                AttrValue::s("x"),
                AttrValue::Null,
                AttrValue::Bool(true)
            ])
        );
        assert_eq!(m["b"], AttrValue::M(BTreeMap::new()));
    }

    #[test]
    fn out_of_range_numbers_and_deep_nesting_are_rejected() {
        assert!(AttrValue::from_json(&json!(1e300)).is_err());
        assert!(AttrValue::from_json(&json!(1e-200)).is_err());
        assert!(AttrValue::from_json(&json!(0.0)).is_ok());
        assert!(AttrValue::from_json(&json!(u64::MAX)).is_ok());
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        assert!(AttrValue::from_json(&deep).is_err());
    }

    #[test]
    fn sdk_round_trip() {
        let v = AttrValue::from_json(&json!({"x": [1, "s", false, null]})).expect("ok");
        assert_eq!(AttrValue::from_sdk(&v.clone().into_sdk()), v);
    }

    #[tokio::test]
    async fn writes_in_chunks_of_25() {
        let t = MemoryTable::new("id");
        let items: Vec<Item> = (0..60).map(|i| item(&format!("k{i}"))).collect();
        let errors = write_all(&t, "tbl", &items, "id", Backoff::immediate(3)).await;
        assert!(errors.iter().all(Option::is_none));
        assert_eq!(t.calls(), vec![25, 25, 10]);
        assert_eq!(t.len("tbl"), 60);
    }

    #[tokio::test]
    async fn unprocessed_items_are_retried_then_reported() {
        let t = MemoryTable::new("id");
        t.leave_unprocessed("k1", 2);
        t.leave_unprocessed("k2", 99);
        let items: Vec<Item> = (0..3).map(|i| item(&format!("k{i}"))).collect();
        let errors = write_all(&t, "tbl", &items, "id", Backoff::immediate(3)).await;
        assert!(errors[0].is_none());
        assert!(errors[1].is_none(), "k1 succeeds on the third attempt");
        assert!(matches!(errors[2], Some(StoreError::Transient(_))));
        assert_eq!(t.calls(), vec![3, 2, 2]);
        assert!(t.get("tbl", "k1").is_some());
        assert!(t.get("tbl", "k2").is_none());
    }
}
