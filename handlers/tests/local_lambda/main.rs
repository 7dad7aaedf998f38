//! The real handler binaries (built by `make handlers`) running under
//! cargo-lambda's local Lambda Runtime API emulator, against moto, invoked
//! through aws-sdk-lambda's Invoke API.
//!
//! Built only with the `env-tests` feature and run by `make env-tests`, which
//! brings up moto and sets:
//! - `AWS_ENDPOINT_URL`: moto;
//! - `SLUICE_CARGO_LAMBDA`: the cargo-lambda binary (`scripts/tools.sh path cargo-lambda`);
//! - `SLUICE_LAMBDA_BIN_DIR`: the directory of the built handler binaries.
//!
//! Each test starts its own emulator (`cargo lambda watch --only-lambda-apis`)
//! on a free port and one handler process polling it, uses resource names
//! with a random suffix, and kills both processes when it ends.
//!
//! | Module | Handlers |
//! |--------|----------|
//! | `patterns` | s3-json-transform, router, stream-anomaly, batch-aggregate |
//! | `queues` | typed-processor (with DynamoDB idempotency), dlq-handler (with redrive) |
//! | `workflow` | extract → transform → load → notify, and their error types |

mod emulator;
mod harness;
mod patterns;
mod queues;
mod workflow;
