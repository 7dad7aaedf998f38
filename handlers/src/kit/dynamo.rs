//! DynamoDB items behind a trait: JSON → attribute-value conversion checked
//! against DynamoDB's limits (so one bad record cannot make a whole
//! BatchWriteItem call fail), batched writes with `UnprocessedItems` retries,
//! the SDK implementation and an in-memory one.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::kit::aws::classify_sdk_error;
use crate::kit::error::StoreError;
use crate::kit::limits::IoLimits;
use crate::kit::retry::{Backoff, Sent, send_in_concurrent_batches};

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

    /// Parses JSON text straight into an attribute value, with the checks of
    /// [`AttrValue::from_json`] and the same result, without building a
    /// [`Value`] first. A syntax error is `Err(Syntax)`, a value DynamoDB
    /// would refuse `Err(Refused)`.
    pub fn parse_json(text: &[u8]) -> Result<Self, ParseError> {
        // One pass of UTF-8 validation over the whole text is cheaper than
        // serde_json's per string when reading bytes.
        let text = std::str::from_utf8(text)
            .map_err(|e| ParseError::Syntax(format!("invalid UTF-8: {e}")))?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = AttrSeed { depth: 0 }
            .deserialize(&mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value));
        parsed.map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ParseError::Refused(e.to_string()),
            _ => ParseError::Syntax(e.to_string()),
        })
    }

    fn from_json_at(value: &Value, depth: usize) -> Result<Self, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(match value {
            Value::Null => AttrValue::Null,
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::String(s) => AttrValue::S(s.clone()),
            Value::Number(n) => {
                if n.as_i64().is_none() && n.as_u64().is_none() {
                    check_range(n.as_f64().unwrap_or(f64::NAN))?;
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

/// Why JSON text did not become an attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// It is not JSON.
    Syntax(String),
    /// It is JSON that DynamoDB would refuse (a number out of its range,
    /// nesting deeper than 32).
    Refused(String),
}

fn too_deep() -> String {
    format!("nested deeper than DynamoDB's {MAX_DEPTH} levels")
}

/// DynamoDB numbers: magnitude 1e-130 ..< 1e126, or zero.
fn check_range(f: f64) -> Result<(), String> {
    let magnitude = f.abs();
    if !f.is_finite() || (magnitude != 0.0 && !(1e-130..1e126).contains(&magnitude)) {
        let shown = Number::from_f64(f).map_or_else(|| f.to_string(), |n| n.to_string());
        return Err(format!("number {shown} is outside DynamoDB's range"));
    }
    Ok(())
}

/// Deserializes one value at `depth` into an [`AttrValue`].
struct AttrSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for AttrSeed {
    type Value = AttrValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<AttrValue, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(too_deep()));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AttrSeed {
    type Value = AttrValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<AttrValue, E> {
        Ok(AttrValue::Bool(b))
    }

    fn visit_unit<E>(self) -> Result<AttrValue, E> {
        Ok(AttrValue::Null)
    }

    fn visit_i64<E>(self, i: i64) -> Result<AttrValue, E> {
        Ok(AttrValue::N(i.to_string()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<AttrValue, E> {
        Ok(AttrValue::N(u.to_string()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<AttrValue, E> {
        check_range(f).map_err(E::custom)?;
        // The same text as `Value`'s number would print.
        Number::from_f64(f)
            .map(|n| AttrValue::N(n.to_string()))
            .ok_or_else(|| E::custom(format!("number {f} is outside DynamoDB's range")))
    }

    fn visit_str<E>(self, s: &str) -> Result<AttrValue, E> {
        Ok(AttrValue::S(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<AttrValue, E> {
        Ok(AttrValue::S(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AttrValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(AttrSeed {
            depth: self.depth + 1,
        })? {
            items.push(item);
        }
        Ok(AttrValue::L(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttrValue, A::Error> {
        let mut members = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            // A repeated key keeps its last value, as `Value` does.
            let value = map.next_value_seed(AttrSeed {
                depth: self.depth + 1,
            })?;
            members.insert(key, value);
        }
        Ok(AttrValue::M(members))
    }
}

/// Approximate size of a whole item.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.approx_size()).sum()
}

/// A BatchWriteItem call that failed as a whole, with the items it was
/// given, so they can be sent again without having been copied.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFailure {
    /// Why the call failed.
    pub error: StoreError,
    /// The items of the call, as they were given.
    pub items: Vec<Item>,
}

/// Batched writes to a table.
pub trait ItemTable: Send + Sync {
    /// One BatchWriteItem call with at most [`MAX_BATCH_WRITE_ITEMS`] puts;
    /// returns the items DynamoDB left unprocessed, or, when the call fails
    /// as a whole, the error and every item.
    fn batch_put(
        &self,
        table: &str,
        items: Vec<Item>,
    ) -> impl Future<Output = Result<Vec<Item>, BatchFailure>> + Send;
}

/// Writes `items` in calls of at most 25 (BatchWriteItem's limit; 25 items
/// of at most 400 KB also stay under its 16 MB request limit), up to
/// [`IoLimits::default`]'s requests at once, resending unprocessed items up
/// to `backoff.attempts` attempts. Items must have distinct `key_attr`
/// values (a batch with two puts of one key is rejected whole). Returns,
/// per item, `None` if written or the last error.
pub async fn write_all<T: ItemTable>(
    target: &T,
    table: &str,
    items: &[Item],
    key_attr: &str,
    backoff: Backoff,
) -> Vec<Option<StoreError>> {
    let limits = IoLimits::default();
    write_all_concurrently(
        target,
        table,
        items.to_vec(),
        key_attr,
        backoff,
        limits.requests,
    )
    .await
}

/// [`write_all`] with up to `concurrency` calls in flight at once, taking
/// the items: each goes into its call as it is (no copy), and comes back
/// from the call only if it has to be sent again.
pub async fn write_all_concurrently<T: ItemTable>(
    target: &T,
    table: &str,
    items: Vec<Item>,
    key_attr: &str,
    backoff: Backoff,
    concurrency: usize,
) -> Vec<Option<StoreError>> {
    let unprocessed = || StoreError::Transient("BatchWriteItem left the item unprocessed".into());
    let keys: Vec<Option<AttrValue>> = items.iter().map(|i| i.get(key_attr).cloned()).collect();
    let len = items.len();
    // Each item is in its slot, or out in a call. Calls in flight together
    // take disjoint slots; the lock is never held across an await.
    let slots = std::sync::Mutex::new(items.into_iter().map(Some).collect::<Vec<_>>());
    let (slots, keys) = (&slots, &keys);
    let lock = || {
        slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    send_in_concurrent_batches(
        len,
        MAX_BATCH_WRITE_ITEMS,
        concurrency,
        backoff,
        "BatchWriteItem",
        unprocessed,
        |chunk| async move {
            let batch: Vec<Item> = {
                let mut slots = lock();
                chunk.iter().filter_map(|&i| slots[i].take()).collect()
            };
            match target.batch_put(table, batch).await {
                Ok(left) => {
                    let mut retry = vec![false; chunk.len()];
                    let mut slots = lock();
                    for item in left {
                        let key = item.get(key_attr);
                        if let Some(at) = chunk.iter().position(|&i| keys[i].as_ref() == key) {
                            retry[at] = true;
                            slots[chunk[at]] = Some(item);
                        }
                    }
                    retry
                        .into_iter()
                        .map(|again| {
                            if again {
                                Sent::Retry(unprocessed())
                            } else {
                                Sent::Done
                            }
                        })
                        .collect()
                }
                Err(BatchFailure { error, items }) => {
                    let mut slots = lock();
                    for (&i, item) in chunk.iter().zip(items) {
                        slots[i] = Some(item);
                    }
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

fn to_sdk_item(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter()
        .map(|(k, v)| (k.clone(), v.clone().into_sdk()))
        .collect()
}

impl ItemTable for DynamoTable {
    /// The request is made from copies (the SDK takes its values by value),
    /// so a failed call gives the items back as they were.
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<Vec<Item>, BatchFailure> {
        let mut requests = Vec::with_capacity(items.len());
        for item in &items {
            let put = match PutRequest::builder()
                .set_item(Some(to_sdk_item(item)))
                .build()
            {
                Ok(put) => put,
                Err(e) => {
                    return Err(BatchFailure {
                        error: StoreError::Rejected(format!("building PutRequest: {e}")),
                        items,
                    });
                }
            };
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let output = match self
            .client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => {
                return Err(BatchFailure {
                    error: classify_sdk_error(&e, &format!("BatchWriteItem {table}")),
                    items,
                });
            }
        };
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
    /// table → key → item.
    items: HashMap<String, HashMap<String, Item>>,
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
            .get(table)
            .and_then(|items| items.get(key))
            .cloned()
    }

    /// Number of items in `table`.
    pub fn len(&self, table: &str) -> usize {
        self.lock().items.get(table).map_or(0, HashMap::len)
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
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<Vec<Item>, BatchFailure> {
        let mut state = self.lock();
        state.calls.push(items.len());
        let refuse = |message: &str, items| {
            Err(BatchFailure {
                error: StoreError::Rejected(message.into()),
                items,
            })
        };
        if items.len() > MAX_BATCH_WRITE_ITEMS {
            return refuse("too many items in one BatchWriteItem", items);
        }
        let mut keys = Vec::new();
        for item in &items {
            let Some(key) = item.get(&self.key_attr).and_then(AttrValue::as_s) else {
                return refuse("item without a string key", items);
            };
            if keys.contains(&key) {
                return refuse("provided list of item keys contains duplicates", items);
            }
            keys.push(key);
        }
        let mut unprocessed = Vec::new();
        let TableState {
            items: tables,
            unprocessed: left_unprocessed,
            ..
        } = &mut *state;
        let stored = tables.entry(table.to_owned()).or_default();
        for item in items {
            let key = item
                .get(&self.key_attr)
                .and_then(AttrValue::as_s)
                .unwrap_or_default()
                .to_owned();
            if let Some(left) = left_unprocessed.get_mut(&key).filter(|left| **left > 0) {
                *left -= 1;
                unprocessed.push(item);
                continue;
            }
            stored.insert(key, item);
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
