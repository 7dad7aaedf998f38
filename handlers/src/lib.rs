//! Built-in Lambda handlers for Sluice pipelines.
//!
//! One executable, `bootstrap` (`src/bin/bootstrap.rs`), serves every
//! handler: Lambda names the handler in `_HANDLER` and [`entry`] runs it.
//! Each entry point is a thin wrapper: it reads its configuration, builds
//! the real AWS clients and hands a library function to the Lambda
//! runtime. All behaviour lives here, generic over small traits
//! ([`store::ObjectStore`], [`publisher::EventPublisher`],
//! [`dynamo::ItemTable`], [`idempotency::IdempotencyStore`],
//! [`queue::QueueSender`]), each with an
//! AWS SDK implementation and an in-memory one, so every handler is
//! unit-tested on JSON event fixtures without a network.
//!
//! | Handler | Module | Pattern |
//! |--------|--------|---------|
//! | `s3-json-transform` | [`s3_transform`] | 1: event-triggered processing |
//! | `router` | [`router`] | 2: fan-out router |
//! | `typed-processor` | [`typed_processor`] | 2: per-type processors |
//! | `extract`, `transform`, `load`, `notify` | [`workflow`] | 3: Step Functions steps |
//! | `stream-anomaly` | [`stream_anomaly`] | 4: Kinesis stream processing |
//! | `start-workflow` | [`start_workflow`] | 3: the trigger function that starts the workflow |
//! | `batch-aggregate` | [`batch_aggregate`] | 5: scheduled batch |
//! | `dlq-handler` | [`dlq`] | best practice 2: dead letters |

pub mod aws;
pub mod batch_aggregate;
pub mod config;
pub mod dlq;
pub mod dynamo;
pub mod enrich;
pub mod enrich_text;
pub mod entry;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod json_scan;
pub mod limits;
pub mod logging;
pub mod numbers;
pub mod publisher;
pub mod queue;
pub mod requirements;
pub mod retry;
pub mod router;
pub mod s3_transform;
pub mod sqs;
pub mod start_workflow;
pub mod store;
pub mod stream_anomaly;
pub mod typed_processor;
pub mod workflow;

pub use error::{HandlerError, StoreError};

pub use entry::HANDLERS;
