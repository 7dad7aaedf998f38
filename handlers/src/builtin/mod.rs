//! The built-in functions, one module per pipeline pattern, each a library
//! function over the [`crate::kit`] traits that its entry point
//! ([`crate::entry`]) runs with the real AWS clients. A pipeline names one
//! with `handler:` (or `code: {builtin: NAME}`); they are public for the
//! crate's benchmark and integration tests, not as an API to build on.
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
//!
//! [`enrich`] and [`enrich_text`] are the article's JSON transformation
//! that several of them share; [`requirements`] is what each needs from its
//! environment (`handlers/requirements.json`).

pub mod batch_aggregate;
pub mod dlq;
pub mod enrich;
pub mod enrich_text;
pub mod requirements;
pub mod router;
pub mod s3_transform;
pub mod start_workflow;
pub mod stream_anomaly;
pub mod typed_processor;
pub mod workflow;
