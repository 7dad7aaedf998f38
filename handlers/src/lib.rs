//! Lambda functions for Sluice pipelines: the library a function is built
//! on ([`kit`]), the built-in handlers made with it ([`builtin`]), and the
//! one executable that serves them ([`entry`], `src/bin/bootstrap.rs`).
//!
//! # Your own function
//!
//! A team's crate depends on this one and is built into its own
//! `bootstrap` (`examples/rust-function/` in the repository is a template
//! to copy; `scripts/own-code.sh` builds it, uploads it by digest and prints
//! the `code:` block of the pipeline). What it may use is re-exported here;
//! the modules of [`kit`] have the rest.
//!
//! **Running a handler.** [`run`] takes an async function from the event
//! (a [`serde_json::Value`]) to a result whose [`HandlerError`] says
//! whether Lambda may retry ([`HandlerError::Retryable`]) or not
//! ([`HandlerError::Validation`]); it logs one JSON line per invocation
//! with the request id. [`run_raw`] hands over the event's JSON text instead
//! (parse a large batch once, into your own types), [`run_with_invocation`]
//! adds the [`Invocation`] (request id, deadline). Call [`init_logging`]
//! first.
//!
//! **Configuration from the environment.** The operator puts the real name,
//! URL or ARN of every resource a function `uses` into the variable the
//! edge's `env` names. Read them before starting the runtime, through
//! [`Env`] ([`ProcessEnv`] in the function, a map in tests), so a missing
//! variable fails the function at init with a [`ConfigError`] naming it
//! ([`startup_error`] logs it) rather than every event.
//!
//! **Typed events.** [`s3_objects`] reads an S3 (or S3-through-EventBridge)
//! event into one [`S3ObjectRef`] per record, a malformed record being that
//! record's error, not the whole event's. [`aws_lambda_events`] has the
//! SQS and Kinesis event types.
//!
//! **Errors per record.** An S3 event's records are independent: process
//! each, collect the failures and end with [`HandlerError::combine`], which
//! is retryable when any failure is, so a transient failure is retried and
//! nothing is dropped silently. For SQS, [`process_batch`] returns a partial
//! batch response (`batchItemFailures`): only the failed messages come back
//! (and go to the DLQ after `maxReceiveCount`); FIFO order is kept.
//!
//! **Idempotency claims.** [`once`] runs a record's work at most once per
//! key across redeliveries and concurrent invocations, with claims in a
//! DynamoDB table ([`DynamoIdempotency`], configured by
//! [`IdempotencyConfig::from_env`]; [`MemoryIdempotency`] in tests).
//!
//! **DLQ redrive.** [`plan_redrive`] decides whether a dead letter goes back
//! to its source queue (never after a validation error, at most
//! `REDRIVE_MAX` times, after a delay) and builds the [`OutgoingMessage`];
//! a [`QueueSender`] sends it. The built-in `dlq-handler` does exactly that
//! after archiving.
//!
//! **AWS clients.** [`load_config`] is the function's SDK configuration:
//! region and credentials from Lambda's environment, `AWS_ENDPOINT_URL`
//! honoured (the local emulator), and the lean [`LambdaHttpClient`] (hyper 1
//! and rustls on ring, HTTP/1.1) instead of aws-config's provider chain and
//! the SDK's default client. Build service clients from it with the SDK
//! crates re-exported here, so your crate links the same versions.
//!
//! **S3 and SQS.** [`ObjectStore`] is get/put/list over buckets;
//! [`S3Store::for_function`] the real one (every call checks the bucket
//! is the account's own), [`MemoryStore`] the one for unit tests.
//! [`QueueSender`] sends one message: [`SqsSender`], [`MemorySender`]. Write
//! the logic over the traits and unit-test it without a network.
//!
//! # The built-in handlers
//!
//! One executable, `bootstrap`, serves every built-in handler: Lambda
//! names the handler in `_HANDLER` (the function's `Handler` setting) and
//! [`entry`] runs it; [`HANDLERS`] lists them. Each entry point reads its
//! configuration, builds the real AWS clients and hands a [`builtin`]
//! function to the runtime; see [`builtin`] for which handler is which
//! pipeline pattern.

#![warn(missing_docs)]

pub mod builtin;
pub mod entry;
pub mod kit;

pub use entry::HANDLERS;

// Running a handler.
pub use kit::logging::{
    Invocation, init as init_logging, run, run_raw, run_with_invocation, startup_error,
};
// Configuration from the environment.
pub use kit::config::{ConfigError, Env, ProcessEnv};
// Errors and typed events.
pub use kit::error::{HandlerError, StoreError};
pub use kit::events::{Payload, S3ObjectRef, s3_objects};
// Partial batch responses.
pub use kit::sqs::{batch_response, process_batch};
// Idempotency claims.
pub use kit::idempotency::{
    Claim, DynamoIdempotency, IdempotencyConfig, IdempotencyStore, MemoryIdempotency, Once, once,
};
// DLQ redrive.
pub use kit::redrive::{RedriveConfig, plan_redrive};
// The AWS SDK configuration and HTTP client of a function.
pub use kit::aws::load_config;
pub use kit::http::LambdaHttpClient;
// S3 and SQS.
pub use kit::queue::{MemorySender, OutgoingMessage, QueueSender, SqsSender};
pub use kit::store::{MemoryStore, ObjectStore, S3Store};

// The crates in the API above, at the versions and features this crate
// builds with: a team's crate uses these rather than its own copies.
pub use aws_lambda_events;
pub use aws_sdk_dynamodb;
pub use aws_sdk_eventbridge;
pub use aws_sdk_s3;
pub use aws_sdk_sqs;
pub use aws_types;
pub use lambda_runtime;
pub use serde_json;
