//! Built-in Lambda handlers for Sluice pipelines.
//!
//! Each binary in `src/bin/` is a thin wrapper: it reads its configuration,
//! builds the real AWS clients and hands a library function to the Lambda
//! runtime. All behaviour lives here, generic over small traits
//! ([`store::ObjectStore`], [`publisher::EventPublisher`],
//! [`dynamo::ItemTable`], [`idempotency::IdempotencyStore`],
//! [`queue::QueueSender`]), each with an
//! AWS SDK implementation and an in-memory one, so every handler is
//! unit-tested on JSON event fixtures without a network.
//!
//! | Binary | Module | Pattern |
//! |--------|--------|---------|
//! | `s3-json-transform` | [`s3_transform`] | 1: event-triggered processing |
//! | `router` | [`router`] | 2: fan-out router |
//! | `typed-processor` | [`typed_processor`] | 2: per-type processors |
//! | `extract`, `transform`, `load`, `notify` | [`workflow`] | 3: Step Functions steps |
//! | `stream-anomaly` | [`stream_anomaly`] | 4: Kinesis stream processing |
//! | `batch-aggregate` | [`batch_aggregate`] | 5: scheduled batch |
//! | `dlq-handler` | [`dlq`] | best practice 2: dead letters |

pub mod aws;
pub mod batch_aggregate;
pub mod config;
pub mod dlq;
pub mod dynamo;
pub mod enrich;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod logging;
pub mod numbers;
pub mod publisher;
pub mod queue;
pub mod retry;
pub mod router;
pub mod s3_transform;
pub mod sqs;
pub mod store;
pub mod stream_anomaly;
pub mod typed_processor;
pub mod workflow;

pub use error::{HandlerError, StoreError};

/// Every handler binary this crate builds (the names a pipeline's
/// `handler:` field refers to).
pub const BINARIES: &[&str] = &[
    "batch-aggregate",
    "dlq-handler",
    "extract",
    "load",
    "notify",
    "router",
    "s3-json-transform",
    "stream-anomaly",
    "transform",
    "typed-processor",
];

#[cfg(test)]
mod tests {
    #[test]
    fn binaries_list_matches_src_bin() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin");
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .expect("src/bin exists")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".rs").map(str::to_owned)
            })
            .collect();
        found.sort();
        assert_eq!(found, super::BINARIES);
    }
}
