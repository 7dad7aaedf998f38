//! The generated input both implementations run on: Kinesis batches, order
//! documents of a given size, the batch job's daily objects, and the events
//! that name them. Deterministic, so every run measures the same bytes.

use base64::Engine as _;
use serde_json::{Value, json};

/// Records per Kinesis batch (the article's `batch_size=100`).
pub const KINESIS_BATCH: u64 = 100;

/// A Kinesis event of `KINESIS_BATCH` records, numbered from
/// `batch * KINESIS_BATCH`, as Lambda delivers it.
pub fn kinesis_event(batch: u64) -> Vec<u8> {
    let records: Vec<Value> = (0..KINESIS_BATCH)
        .map(|i| {
            let n = batch * KINESIS_BATCH + i;
            let reading = json!({
                "id": format!("sensor-{n}"),
                "value": (n % 300) as f64 + 0.5,
                "threshold": 100,
                "timestamp": "2024-06-05T10:00:00Z",
                "site": "eu-west-1a",
            });
            json!({
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:4959{n:016}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/sluice-bench",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/sluice-bench",
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": format!("pk-{}", n % 16),
                    "sequenceNumber": format!("4959{n:016}"),
                    "approximateArrivalTimestamp": 1717581600.123,
                    "data": base64::engine::general_purpose::STANDARD.encode(reading.to_string()),
                }
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap_or_default()
}

/// An order of at least `bytes` bytes: a few fields and as many items as it
/// takes (about 100 bytes each).
pub fn order(id: u64, bytes: usize) -> Vec<u8> {
    let mut items = Vec::new();
    let mut size = 60;
    let mut i = 0u64;
    while size < bytes {
        let item = json!({
            "sku": format!("sku-{i:06}"),
            "name": "A product with a reasonably long descriptive name",
            "quantity": i % 7 + 1,
            "price": (i % 1000) as f64 / 100.0 + 0.99,
        });
        size += item.to_string().len() + 1;
        items.push(item);
        i += 1;
    }
    let body = json!({
        "order_id": format!("o-{id}"),
        "customer": "c-1",
        "currency": "EUR",
        "items": items,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Items in an order document.
pub fn item_count(order: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(order)
        .ok()
        .and_then(|v| v["items"].as_array().map(|a| a.len() as u64))
        .unwrap_or(0)
}

/// An S3 `ObjectCreated:Put` notification for one object, as S3 sends it.
pub fn s3_event(bucket: &str, key: &str, size: usize) -> Vec<u8> {
    let event = json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-06-05T00:59:59.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "sluice-bench",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": size, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                          "sequencer": "0055AED6DCD90281E5"}}
    }]});
    serde_json::to_vec(&event).unwrap_or_default()
}

/// Records per object of the batch job.
pub const RECORDS_PER_OBJECT: u64 = 20;

/// The batch job's object number `n` of a day: `RECORDS_PER_OBJECT`
/// records, whole and fractional values over 12 categories.
pub fn daily_object(n: u64) -> Vec<u8> {
    let records: Vec<Value> = (0..RECORDS_PER_OBJECT)
        .map(|i| {
            json!({
                "category": format!("category-{}", (n + i) % 12),
                "value": if i % 2 == 0 { json!(i) } else { json!(i as f64 * 0.25) },
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "records": records })).unwrap_or_default()
}

/// The key of the batch job's object `n` on `day` (`YYYY/MM/DD`).
pub fn daily_key(day: &str, n: u64) -> String {
    format!("{day}/part-{n:05}.json")
}

/// The scheduled event that asks for `date` (`YYYY-MM-DD`).
pub fn batch_event(date: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "date": date })).unwrap_or_default()
}

/// The DynamoDB items of a Kinesis event's readings, shaped like the
/// handler's (the reading as a map, a few attributes beside it), for the
/// floor of the Kinesis scenario.
pub fn kinesis_items(
    event: &[u8],
) -> Result<Vec<aws_sdk_dynamodb::types::WriteRequest>, crate::Error> {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    fn attribute(value: &Value) -> AttributeValue {
        match value {
            Value::Null => AttributeValue::Null(true),
            Value::Bool(b) => AttributeValue::Bool(*b),
            Value::Number(n) => AttributeValue::N(n.to_string()),
            Value::String(s) => AttributeValue::S(s.clone()),
            Value::Array(items) => AttributeValue::L(items.iter().map(attribute).collect()),
            Value::Object(map) => {
                AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
            }
        }
    }
    let event: Value = serde_json::from_slice(event)?;
    let mut requests = Vec::new();
    for record in event["Records"].as_array().into_iter().flatten() {
        let data = base64::engine::general_purpose::STANDARD
            .decode(record["kinesis"]["data"].as_str().unwrap_or_default())?;
        let reading: Value = serde_json::from_slice(&data)?;
        let mut item = std::collections::HashMap::new();
        item.insert("id".to_owned(), attribute(&reading["id"]));
        item.insert("anomaly".to_owned(), AttributeValue::Bool(false));
        item.insert("anomaly_score".to_owned(), AttributeValue::N("0".into()));
        item.insert(
            "processed_at".to_owned(),
            AttributeValue::S("2024-06-05T10:00:00.000Z".into()),
        );
        item.insert(
            "sequence_number".to_owned(),
            attribute(&record["kinesis"]["sequenceNumber"]),
        );
        item.insert(
            "partition_key".to_owned(),
            attribute(&record["kinesis"]["partitionKey"]),
        );
        item.insert("timestamp".to_owned(), attribute(&reading["timestamp"]));
        item.insert("data".to_owned(), attribute(&reading));
        requests.push(
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build(),
        );
    }
    Ok(requests)
}
