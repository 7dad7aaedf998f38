//! Idempotency: process each record once, even when it is delivered twice
//! or twice at the same time.
//!
//! [`once`] wraps the processing of one record:
//!
//! 1. **Claim** the record's key with one DynamoDB conditional put that
//!    writes `status = IN_PROGRESS`, a random `claim_token` and a lease
//!    (`lease_until`: the invocation's deadline plus a margin for clock
//!    skew). The put succeeds only when the key is free: never seen, expired
//!    (`expires_at` passed; an in-progress claim never expires before its
//!    lease), or an `IN_PROGRESS` claim whose lease ran out (its invocation
//!    crashed or timed out).
//! 2. When the claim is refused, DynamoDB returns the existing item
//!    (`ReturnValuesOnConditionCheckFailure = ALL_OLD`): `COMPLETED` means a
//!    duplicate and the record is skipped; `IN_PROGRESS` means another
//!    invocation is working on it right now, which is a *retryable* error —
//!    skipping it would lose the record if that other invocation fails.
//! 3. On success the claim becomes `COMPLETED` until `expires_at` (the TTL,
//!    default 24 h, swept by DynamoDB's TTL).
//! 4. On failure the claim is deleted so the retry is not mistaken for a
//!    duplicate. If that delete fails too (or the invocation dies first),
//!    the lease still runs out at the deadline: the retry waits, it is never
//!    skipped.
//!
//! Completing and releasing are conditional on the claim token, so an
//! invocation that outlived its lease cannot complete or delete the claim of
//! the invocation that took over; and a put the SDK retried after it had in
//! fact succeeded recognises its own token instead of waiting for itself.
//!
//! No step reads before it writes, so two concurrent deliveries cannot both
//! process the record (the article's read-then-write check can).
//!
//! Table layout: partition key `pk` (String), TTL attribute `expires_at`.
//! Keys are scoped by function name, so functions sharing a table never
//! suppress each other's records.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::kit::aws::classify_sdk_error;
use crate::kit::config::{ConfigError, Env};
use crate::kit::error::{HandlerError, StoreError};

/// Partition key attribute of the idempotency table.
pub const KEY_ATTRIBUTE: &str = "pk";
/// TTL attribute of the idempotency table (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Claim state attribute: [`IN_PROGRESS`] or [`COMPLETED`].
pub const STATUS_ATTRIBUTE: &str = "status";
/// Lease attribute of an in-progress claim (epoch seconds).
pub const LEASE_ATTRIBUTE: &str = "lease_until";
/// Attribute holding the token of the invocation that made the claim.
pub const TOKEN_ATTRIBUTE: &str = "claim_token";
/// Status of a claim whose processing has not finished.
pub const IN_PROGRESS: &str = "IN_PROGRESS";
/// Status of a processed record.
pub const COMPLETED: &str = "COMPLETED";
/// Default lifetime of a completed record.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Lease used when the invocation has no deadline (Lambda's maximum
/// timeout, so a lease never ends while its invocation may still run).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15 * 60);
/// Added to a deadline to make a lease: hosts' clocks differ by a little,
/// and a retry must not take over a claim whose invocation still runs.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// A token that tells this claim from every other: a random 64-bit value
/// (std's per-process random hasher keys) mixed with the time and a
/// counter.
pub fn claim_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:016x}{:08x}", hasher.finish(), nanos & 0xffff_ffff)
}

/// The idempotency key of a payload: hex SHA-256.
pub fn idempotency_key(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

/// Result of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now ours: process the record.
    New,
    /// The record was processed already: skip it.
    Completed,
    /// Another invocation holds the key until `lease_until` (epoch seconds).
    InProgress {
        /// When that claim's lease ends.
        lease_until: i64,
    },
}

/// Claims, completes and releases idempotency keys.
pub trait IdempotencyStore: Send + Sync {
    /// Prefix of every key, separating functions that share a table.
    fn scope(&self) -> &str {
        ""
    }

    /// Claims `key` for `token` as in progress until `lease_until`.
    fn claim(
        &self,
        key: &str,
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks `key` processed if `token` still holds it; it then stays a
    /// duplicate for the TTL.
    fn complete(
        &self,
        key: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases the claim after processing failed, if `token` still holds
    /// it and it is in progress.
    fn release(
        &self,
        key: &str,
        token: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`once`] did with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// Processed now, with this result.
    Processed(T),
    /// Processed before: skipped.
    Duplicate,
}

/// Processes a record at most once per `key` (see the module docs).
///
/// Keys are prefixed with the store's [`IdempotencyStore::scope`];
/// `lease_until` should be the invocation's deadline (see [`lease_until`]).
/// Without a store, `process` simply runs. Errors of the store itself are
/// retryable: a missing or throttled table is never a reason to drop a
/// record.
pub async fn once<S, T, F, Fut>(
    store: Option<&S>,
    key: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    process: F,
) -> Result<Once<T>, HandlerError>
where
    S: IdempotencyStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    // Boxed: the caller's future nested inside this one otherwise makes the
    // binaries' async state machines deeper than rustc's layout limit.
    let Some(store) = store else {
        return Box::pin(process()).await.map(Once::Processed);
    };
    let key = scoped_key(store.scope(), key);
    let token = claim_token();
    let claim = store
        .claim(&key, &token, now, lease_until)
        .await
        .map_err(|e| HandlerError::retryable(format!("idempotency claim: {e}")))?;
    match claim {
        Claim::New => {}
        Claim::Completed => return Ok(Once::Duplicate),
        Claim::InProgress { lease_until } => {
            return Err(HandlerError::retryable(format!(
                "another invocation is processing this record (its claim lasts until \
                 {}); retry later",
                crate::kit::time::timestamp(
                    DateTime::from_timestamp(lease_until, 0).unwrap_or(now)
                )
            )));
        }
    }
    match Box::pin(process()).await {
        Ok(value) => {
            // The work is done: a failed marker write does not undo it. The
            // claim then lapses with its lease, and a later duplicate is
            // processed again (at least once, never zero times).
            if let Err(error) = store.complete(&key, &token, now).await {
                tracing::error!(%error, "could not mark the record completed");
            }
            Ok(Once::Processed(value))
        }
        Err(error) => {
            if let Err(release) = store.release(&key, &token).await {
                tracing::warn!(
                    error = %release,
                    "could not release the idempotency claim; a retry waits for its lease to end"
                );
            }
            Err(error)
        }
    }
}

/// `scope#key`, or `key` when the scope is empty.
pub fn scoped_key(scope: &str, key: &str) -> String {
    if scope.is_empty() {
        key.to_owned()
    } else {
        format!("{scope}#{key}")
    }
}

/// The lease for an invocation: its deadline rounded up to the second,
/// plus [`LEASE_MARGIN`]; `now +` [`DEFAULT_LEASE`] when there is none.
pub fn lease_until(now: DateTime<Utc>, deadline: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let margin = chrono::Duration::from_std(LEASE_MARGIN).unwrap_or_default();
    match deadline {
        Some(deadline) => {
            let deadline = deadline.max(now);
            let secs = deadline.timestamp() + i64::from(deadline.timestamp_subsec_nanos() > 0);
            DateTime::from_timestamp(secs, 0).unwrap_or(deadline) + margin
        }
        None => now + chrono::Duration::from_std(DEFAULT_LEASE).unwrap_or_default(),
    }
}

/// Configuration: `IDEMPOTENCY_TABLE` (optional; unset turns idempotency
/// off), `IDEMPOTENCY_TTL_SECONDS` (default 86400) and the function name
/// Lambda sets (`AWS_LAMBDA_FUNCTION_NAME`) as the key scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// Table name.
    pub table: String,
    /// Lifetime of a completed record.
    pub ttl: Duration,
    /// Key prefix separating functions that share the table.
    pub scope: String,
}

impl IdempotencyConfig {
    /// `None` when `IDEMPOTENCY_TABLE` is unset: idempotency is off.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Option<Self>, ConfigError> {
        let Some(table) = env.optional("IDEMPOTENCY_TABLE") else {
            return Ok(None);
        };
        let ttl = env.seconds("IDEMPOTENCY_TTL_SECONDS", DEFAULT_TTL)?;
        if ttl.is_zero() {
            return Err(ConfigError::Invalid {
                name: "IDEMPOTENCY_TTL_SECONDS".into(),
                value: "0".into(),
                reason: "must be at least 1 (seconds a processed record is remembered)".into(),
            });
        }
        Ok(Some(Self {
            table,
            ttl,
            scope: env.optional("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        }))
    }
}

/// [`IdempotencyStore`] over a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoIdempotency {
    client: aws_sdk_dynamodb::Client,
    config: IdempotencyConfig,
}

impl DynamoIdempotency {
    /// Uses `config.table`.
    pub fn new(client: aws_sdk_dynamodb::Client, config: IdempotencyConfig) -> Self {
        Self { client, config }
    }
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> i64 {
    now.timestamp()
        .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
}

/// `expires_at` of an in-progress claim: never before its lease ends, or a
/// TTL shorter than the lease would free a claim whose invocation runs.
fn claim_expiry(now: DateTime<Utc>, ttl: Duration, lease_until: DateTime<Utc>) -> i64 {
    expiry(now, ttl).max(lease_until.timestamp())
}

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// What a refused claim found, from the item DynamoDB returned; `None`
/// when there is no item to tell.
fn refused_claim(item: Option<&HashMap<String, AttributeValue>>, token: &str) -> Option<Claim> {
    let item = item?;
    let status = item.get(STATUS_ATTRIBUTE).and_then(|s| s.as_s().ok());
    if status.is_some_and(|s| s == COMPLETED) {
        return Some(Claim::Completed);
    }
    // Our own put, retried by the SDK after it had succeeded.
    if item
        .get(TOKEN_ATTRIBUTE)
        .and_then(|t| t.as_s().ok())
        .is_some_and(|t| t == token)
    {
        return Some(Claim::New);
    }
    // In progress, or a status this version does not know: never skip.
    Some(Claim::InProgress {
        lease_until: item
            .get(LEASE_ATTRIBUTE)
            .and_then(|n| n.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    })
}

impl DynamoIdempotency {
    /// The claim stored for `key` (a strongly consistent read), for a
    /// refusal that did not return the item.
    async fn stored_claim(&self, key: &str, token: &str) -> Result<Claim, StoreError> {
        let table = &self.config.table;
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &format!("GetItem {table}")))?;
        // Gone meanwhile (released): the retry will claim it.
        Ok(refused_claim(output.item(), token).unwrap_or(Claim::InProgress { lease_until: 0 }))
    }
}

impl IdempotencyStore for DynamoIdempotency {
    fn scope(&self) -> &str {
        &self.config.scope
    }

    async fn claim(
        &self,
        key: &str,
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let table = &self.config.table;
        let result = self
            .client
            .put_item()
            .table_name(table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .item(STATUS_ATTRIBUTE, AttributeValue::S(IN_PROGRESS.to_owned()))
            .item(LEASE_ATTRIBUTE, number(lease_until.timestamp()))
            .item(TOKEN_ATTRIBUTE, AttributeValue::S(token.to_owned()))
            .item(
                TTL_ATTRIBUTE,
                number(claim_expiry(now, self.config.ttl, lease_until)),
            )
            .item(
                "claimed_at",
                AttributeValue::S(crate::kit::time::timestamp(now)),
            )
            .condition_expression(
                "attribute_not_exists(#pk) OR #exp < :now \
                 OR (#status = :in_progress AND #lease < :now)",
            )
            .expression_attribute_names("#pk", KEY_ATTRIBUTE)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_names("#status", STATUS_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_values(":now", number(now.timestamp()))
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::New),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    match refused_claim(refused.item(), token) {
                        Some(claim) => Ok(claim),
                        None => self.stored_claim(key, token).await,
                    }
                }
                _ => Err(classify_sdk_error(&e, &format!("PutItem {table}"))),
            },
        }
    }

    async fn complete(&self, key: &str, token: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let table = &self.config.table;
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .update_expression("SET #status = :completed, #exp = :exp REMOVE #lease")
            .condition_expression("#token = :token")
            .expression_attribute_names("#status", STATUS_ATTRIBUTE)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_names("#token", TOKEN_ATTRIBUTE)
            .expression_attribute_values(":completed", AttributeValue::S(COMPLETED.into()))
            .expression_attribute_values(":exp", number(expiry(now, self.config.ttl)))
            .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Rejected(format!(
                    "UpdateItem {table}: the claim was taken over after its lease ended"
                )))
            }
            Err(e) => Err(classify_sdk_error(&e, &format!("UpdateItem {table}"))),
        }
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let table = &self.config.table;
        // Only our in-progress claim is released: a claim another invocation
        // took over, or completed, stays.
        let result = self
            .client
            .delete_item()
            .table_name(table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .condition_expression("#status = :in_progress AND #token = :token")
            .expression_attribute_names("#status", STATUS_ATTRIBUTE)
            .expression_attribute_names("#token", TOKEN_ATTRIBUTE)
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify_sdk_error(&e, &format!("DeleteItem {table}"))),
        }
    }
}

/// In-memory [`IdempotencyStore`] with the same semantics, and failure
/// injection for tests.
#[derive(Debug)]
pub struct MemoryIdempotency {
    ttl: Duration,
    scope: String,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    records: HashMap<String, Record>,
    fail_complete: bool,
    fail_release: bool,
}

/// A stored claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `true` once completed.
    pub completed: bool,
    /// Token of the claiming invocation.
    pub token: String,
    /// Lease end (in progress only), epoch seconds.
    pub lease_until: i64,
    /// TTL, epoch seconds.
    pub expires_at: i64,
}

impl MemoryIdempotency {
    /// An empty store remembering completed records for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            scope: String::new(),
            state: Mutex::default(),
        }
    }

    /// The same store with keys prefixed by `scope`.
    #[must_use]
    pub fn with_scope(mut self, scope: &str) -> Self {
        self.scope = scope.to_owned();
        self
    }

    /// The stored claim for the (scoped) `key`.
    pub fn record(&self, key: &str) -> Option<Record> {
        self.lock().records.get(key).cloned()
    }

    /// Number of stored claims.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether no claim is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes every `complete` (`fail_complete`) or `release` fail.
    pub fn fail(&self, fail_complete: bool, fail_release: bool) {
        let mut state = self.lock();
        state.fail_complete = fail_complete;
        state.fail_release = fail_release;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().expect("idempotency lock poisoned")
    }
}

impl IdempotencyStore for MemoryIdempotency {
    fn scope(&self) -> &str {
        &self.scope
    }

    async fn claim(
        &self,
        key: &str,
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let now_secs = now.timestamp();
        let mut state = self.lock();
        if let Some(existing) = state.records.get(key)
            && existing.expires_at >= now_secs
        {
            if existing.completed {
                return Ok(Claim::Completed);
            }
            if existing.token == token {
                return Ok(Claim::New);
            }
            if existing.lease_until >= now_secs {
                return Ok(Claim::InProgress {
                    lease_until: existing.lease_until,
                });
            }
        }
        state.records.insert(
            key.to_owned(),
            Record {
                completed: false,
                token: token.to_owned(),
                lease_until: lease_until.timestamp(),
                expires_at: claim_expiry(now, self.ttl, lease_until),
            },
        );
        Ok(Claim::New)
    }

    async fn complete(&self, key: &str, token: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.fail_complete {
            return Err(StoreError::Transient("injected UpdateItem failure".into()));
        }
        let expires_at = expiry(now, self.ttl);
        match state.records.get_mut(key) {
            Some(record) if record.token == token => {
                record.completed = true;
                record.lease_until = 0;
                record.expires_at = expires_at;
                Ok(())
            }
            _ => Err(StoreError::Rejected(
                "the claim was taken over after its lease ended".into(),
            )),
        }
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.fail_release {
            return Err(StoreError::Transient("injected DeleteItem failure".into()));
        }
        if state
            .records
            .get(key)
            .is_some_and(|r| !r.completed && r.token == token)
        {
            state.records.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid")
    }

    /// Runs `once` with a lease of 10 s; `ok` decides the outcome.
    async fn run(
        store: &MemoryIdempotency,
        now: i64,
        calls: &AtomicU32,
        ok: bool,
    ) -> Result<Once<u32>, HandlerError> {
        once(Some(store), "k", at(now), at(now + 10), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if ok {
                Ok(n)
            } else {
                Err(HandlerError::retryable("downstream 503"))
            }
        })
        .await
    }

    #[test]
    fn key_is_sha256_hex() {
        assert_eq!(
            idempotency_key(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn config_is_optional_and_scoped_by_function() {
        assert_eq!(
            IdempotencyConfig::from_env(&[("X", "1")]).expect("ok"),
            None
        );
        let c = IdempotencyConfig::from_env(&[
            ("IDEMPOTENCY_TABLE", "t"),
            ("IDEMPOTENCY_TTL_SECONDS", "60"),
            ("AWS_LAMBDA_FUNCTION_NAME", "orders-type-a"),
        ])
        .expect("ok")
        .expect("enabled");
        assert_eq!(c.table, "t");
        assert_eq!(c.ttl, Duration::from_secs(60));
        assert_eq!(c.scope, "orders-type-a");
        let zero = IdempotencyConfig::from_env(&[
            ("IDEMPOTENCY_TABLE", "t"),
            ("IDEMPOTENCY_TTL_SECONDS", "0"),
        ])
        .expect_err("zero TTL");
        assert!(
            zero.to_string().contains("IDEMPOTENCY_TTL_SECONDS"),
            "{zero}"
        );
    }

    #[test]
    fn lease_is_the_deadline_rounded_up_plus_a_margin() {
        let now = at(0);
        let deadline = now + chrono::Duration::milliseconds(2_500);
        assert_eq!(lease_until(now, Some(deadline)), at(3 + 5));
        assert_eq!(lease_until(now, Some(at(5))), at(5 + 5));
        assert_eq!(lease_until(now, None), at(900));
        assert_eq!(lease_until(now, Some(at(-1))), at(5));
    }

    #[test]
    fn claim_tokens_differ() {
        let tokens: std::collections::HashSet<String> = (0..1000).map(|_| claim_token()).collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[tokio::test]
    async fn completed_records_are_skipped_until_the_ttl_ends() {
        let store = MemoryIdempotency::new(Duration::from_secs(60)).with_scope("fn");
        let calls = AtomicU32::new(0);
        assert_eq!(run(&store, 0, &calls, true).await, Ok(Once::Processed(1)));
        assert_eq!(run(&store, 30, &calls, true).await, Ok(Once::Duplicate));
        assert_eq!(run(&store, 61, &calls, true).await, Ok(Once::Processed(2)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(store.record("fn#k").expect("stored").completed);
    }

    #[tokio::test]
    async fn a_concurrent_duplicate_is_retried_not_skipped() {
        let store = MemoryIdempotency::new(Duration::from_secs(60)).with_scope("fn");
        // The first delivery has claimed the key and is still running.
        assert_eq!(
            store.claim("fn#k", "other", at(0), at(10)).await,
            Ok(Claim::New)
        );
        let calls = AtomicU32::new(0);
        let second = run(&store, 1, &calls, true).await.expect_err("in progress");
        assert!(second.is_retryable(), "{second}");
        assert!(second.message().contains("another invocation"), "{second}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "not processed twice");
    }

    #[tokio::test]
    async fn a_failure_frees_the_record_for_its_retry() {
        let store = MemoryIdempotency::new(Duration::from_secs(60));
        let calls = AtomicU32::new(0);
        let error = run(&store, 0, &calls, false).await.expect_err("fails");
        assert!(error.is_retryable());
        assert!(store.is_empty(), "claim released");
        assert_eq!(run(&store, 1, &calls, true).await, Ok(Once::Processed(2)));
    }

    #[tokio::test]
    async fn a_lost_release_delays_the_retry_but_never_drops_the_record() {
        let store = MemoryIdempotency::new(Duration::from_secs(3600));
        store.fail(false, true);
        let calls = AtomicU32::new(0);
        run(&store, 0, &calls, false).await.expect_err("fails");
        // Within the lease (the failed invocation's deadline): retry later.
        let early = run(&store, 5, &calls, true).await.expect_err("lease held");
        assert!(early.is_retryable());
        // After it, far before the 1 h TTL: processed.
        assert_eq!(run(&store, 11, &calls, true).await, Ok(Once::Processed(2)));
    }

    #[tokio::test]
    async fn a_crashed_invocation_is_taken_over_after_its_lease() {
        let store = MemoryIdempotency::new(Duration::from_secs(3600)).with_scope("fn");
        // Claimed, then the process died: neither completed nor released.
        assert_eq!(
            store.claim("fn#k", "other", at(0), at(10)).await,
            Ok(Claim::New)
        );
        let calls = AtomicU32::new(0);
        assert_eq!(run(&store, 11, &calls, true).await, Ok(Once::Processed(1)));
    }

    #[tokio::test]
    async fn a_lost_completion_keeps_the_result() {
        let store = MemoryIdempotency::new(Duration::from_secs(3600));
        store.fail(true, false);
        let calls = AtomicU32::new(0);
        assert_eq!(run(&store, 0, &calls, true).await, Ok(Once::Processed(1)));
    }

    #[tokio::test]
    async fn store_errors_are_retryable_and_scopes_are_separate() {
        struct Down;
        impl IdempotencyStore for Down {
            async fn claim(
                &self,
                _: &str,
                _: &str,
                _: DateTime<Utc>,
                _: DateTime<Utc>,
            ) -> Result<Claim, StoreError> {
                Err(StoreError::NotFound(
                    "ResourceNotFoundException: no table".into(),
                ))
            }
            async fn complete(&self, _: &str, _: &str, _: DateTime<Utc>) -> Result<(), StoreError> {
                Ok(())
            }
            async fn release(&self, _: &str, _: &str) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let error = once(Some(&Down), "k", at(0), at(1), || async { Ok(()) })
            .await
            .expect_err("table missing");
        assert!(error.is_retryable(), "{error}");

        // Two functions sharing one table each process the same payload.
        let a = MemoryIdempotency::new(Duration::from_secs(60)).with_scope("a");
        let result = once(Some(&a), "k", at(0), at(1), || async { Ok(()) }).await;
        assert_eq!(result, Ok(Once::Processed(())));
        assert!(a.record("a#k").is_some());
        assert!(a.record("k").is_none());
    }

    #[test]
    fn refused_claims_read_the_returned_item() {
        let item = |status: &str| {
            HashMap::from([
                (
                    STATUS_ATTRIBUTE.to_owned(),
                    AttributeValue::S(status.into()),
                ),
                (LEASE_ATTRIBUTE.to_owned(), number(42)),
                (
                    TOKEN_ATTRIBUTE.to_owned(),
                    AttributeValue::S("theirs".into()),
                ),
            ])
        };
        assert_eq!(
            refused_claim(Some(&item(IN_PROGRESS)), "ours"),
            Some(Claim::InProgress { lease_until: 42 })
        );
        assert_eq!(
            refused_claim(Some(&item(IN_PROGRESS)), "theirs"),
            Some(Claim::New),
            "a retried put finds its own claim"
        );
        assert_eq!(
            refused_claim(Some(&item(COMPLETED)), "ours"),
            Some(Claim::Completed)
        );
        assert_eq!(
            refused_claim(Some(&item("SOMETHING_NEW")), "ours"),
            Some(Claim::InProgress { lease_until: 42 }),
            "an unknown status is never skipped"
        );
        assert_eq!(refused_claim(None, "ours"), None);
    }

    #[tokio::test]
    async fn a_ttl_shorter_than_the_lease_never_frees_a_running_claim() {
        let store = MemoryIdempotency::new(Duration::from_secs(60));
        // Lease 900 s, TTL 60 s: at 61 s the first invocation still runs.
        assert_eq!(store.claim("k", "a", at(0), at(900)).await, Ok(Claim::New));
        assert_eq!(
            store.claim("k", "b", at(61), at(961)).await,
            Ok(Claim::InProgress {
                lease_until: 1_700_000_900
            })
        );
        assert_eq!(
            store.claim("k", "b", at(901), at(1800)).await,
            Ok(Claim::New)
        );
    }

    #[tokio::test]
    async fn an_invocation_that_outlived_its_lease_cannot_touch_the_new_claim() {
        let store = MemoryIdempotency::new(Duration::from_secs(3600));
        assert_eq!(store.claim("k", "a", at(0), at(10)).await, Ok(Claim::New));
        // "a" overran its lease; "b" took the record over.
        assert_eq!(store.claim("k", "b", at(11), at(21)).await, Ok(Claim::New));
        // "a" then fails: its release must not free "b"'s claim ...
        store.release("k", "a").await.expect("release");
        assert_eq!(
            store.claim("k", "c", at(12), at(22)).await,
            Ok(Claim::InProgress {
                lease_until: 1_700_000_021
            })
        );
        // ... nor may "a" complete it.
        assert!(store.complete("k", "a", at(13)).await.is_err());
        assert!(!store.record("k").expect("held").completed);
        store.complete("k", "b", at(14)).await.expect("b completes");
        assert_eq!(
            store.claim("k", "c", at(15), at(25)).await,
            Ok(Claim::Completed)
        );
    }
}
