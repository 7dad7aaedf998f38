//! The library a function is built on: what every built-in handler uses and
//! what a team's own crate may use. Nothing here knows a particular
//! pipeline pattern; the built-in functions are in [`crate::builtin`].
//!
//! Each AWS service sits behind a small trait with an SDK implementation
//! and an in-memory one, so a function's logic is unit-tested on JSON event
//! fixtures without a network.
//!
//! | Module | What it gives |
//! |--------|---------------|
//! | [`logging`] | JSON logs and the runtime loop: [`logging::run`], [`logging::run_raw`], [`logging::run_with_invocation`] |
//! | [`config`] | configuration from the environment: [`config::Env`], [`config::ProcessEnv`], [`config::ConfigError`] |
//! | [`error`] | [`error::HandlerError`] (validation or retryable, Lambda's `errorType`) and [`error::StoreError`] |
//! | [`events`] | lenient S3 / SQS / Kinesis record parsing, one result per record: [`events::s3_objects`] |
//! | [`sqs`] | SQS batches with partial batch responses: [`sqs::process_batch`] |
//! | [`idempotency`] | once-only processing with DynamoDB claims: [`idempotency::once`] |
//! | [`redrive`] | sending dead letters back to their queue: [`redrive::plan_redrive`] |
//! | [`aws`] | the SDK configuration of a function: [`aws::load_config`] |
//! | [`http`] | the lean HTTP client every SDK client uses: [`http::LambdaHttpClient`] |
//! | [`store`] | S3 objects: [`store::ObjectStore`], [`store::S3Store`], [`store::MemoryStore`] |
//! | [`queue`] | SQS SendMessage: [`queue::QueueSender`], [`queue::SqsSender`], [`queue::MemorySender`] |
//! | [`publisher`] | EventBridge PutEvents: [`publisher::EventPublisher`] |
//! | [`dynamo`] | DynamoDB items and batch writes: [`dynamo::ItemTable`] |
//! | [`retry`] | bounded retries of partial failures: [`retry::Backoff`] |
//! | [`limits`] | how much I/O to keep in flight for the function's memory: [`limits::IoLimits`] |
//! | [`time`] | timestamps as every handler writes them: [`time::timestamp`] |

pub mod aws;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub(crate) mod json_scan;
pub mod limits;
pub mod logging;
pub(crate) mod numbers;
pub mod publisher;
pub mod queue;
pub mod redrive;
pub mod retry;
pub mod sqs;
pub mod store;
pub mod time;
