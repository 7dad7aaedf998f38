//! Idempotency: skip records already processed.
//!
//! Before processing, a handler *claims* the record's key with a DynamoDB
//! conditional put (`attribute_not_exists(pk)`); a `ConditionalCheckFailed`
//! means another invocation has (or is) processing it, so the record is
//! skipped. If processing then fails the claim is released (deleted), so the
//! retry is not mistaken for a duplicate. Claims carry a TTL attribute
//! (`expires_at`, epoch seconds) for DynamoDB's TTL to sweep; an expired
//! claim not yet swept also counts as free.
//!
//! Table layout: partition key `pk` (String), TTL attribute `expires_at`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::aws::classify_sdk_error;
use crate::config::{ConfigError, Env};
use crate::error::StoreError;

/// Partition key attribute of the idempotency table.
pub const KEY_ATTRIBUTE: &str = "pk";
/// TTL attribute of the idempotency table.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Default claim lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The idempotency key of a payload: hex SHA-256.
pub fn idempotency_key(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

/// Result of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time seen: process it.
    New,
    /// Already claimed: skip it.
    Duplicate,
}

/// Claims and releases idempotency keys.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` until `now + ttl`.
    fn claim(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Releases a claim after processing failed.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Configuration: `IDEMPOTENCY_TABLE` (optional) and
/// `IDEMPOTENCY_TTL_SECONDS` (default 86400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// Table name.
    pub table: String,
    /// Claim lifetime.
    pub ttl: Duration,
}

impl IdempotencyConfig {
    /// `None` when `IDEMPOTENCY_TABLE` is unset: idempotency is off.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Option<Self>, ConfigError> {
        let Some(table) = env.optional("IDEMPOTENCY_TABLE") else {
            return Ok(None);
        };
        Ok(Some(Self {
            table,
            ttl: env.seconds("IDEMPOTENCY_TTL_SECONDS", DEFAULT_TTL)?,
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

impl IdempotencyStore for DynamoIdempotency {
    async fn claim(&self, key: &str, now: DateTime<Utc>) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .item(
                TTL_ATTRIBUTE,
                AttributeValue::N(expiry(now, self.config.ttl).to_string()),
            )
            .item(
                "claimed_at",
                AttributeValue::S(crate::enrich::timestamp(now)),
            )
            .condition_expression("attribute_not_exists(#pk) OR #exp < :now")
            .expression_attribute_names("#pk", KEY_ATTRIBUTE)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Claim::Duplicate)
            }
            Err(e) => Err(classify_sdk_error(
                &e,
                &format!("PutItem {}", self.config.table),
            )),
        }
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.config.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &format!("DeleteItem {}", self.config.table)))?;
        Ok(())
    }
}

/// In-memory [`IdempotencyStore`] with the same expiry semantics.
#[derive(Debug)]
pub struct MemoryIdempotency {
    ttl: Duration,
    claims: Mutex<HashMap<String, i64>>,
}

impl MemoryIdempotency {
    /// An empty store with claims living `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            claims: Mutex::default(),
        }
    }

    /// Whether `key` is currently recorded (expired or not).
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.claims.lock().expect("idempotency lock poisoned")
    }
}

impl IdempotencyStore for MemoryIdempotency {
    async fn claim(&self, key: &str, now: DateTime<Utc>) -> Result<Claim, StoreError> {
        let mut claims = self.lock();
        match claims.get(key) {
            Some(&expires) if expires >= now.timestamp() => Ok(Claim::Duplicate),
            _ => {
                claims.insert(key.to_owned(), expiry(now, self.ttl));
                Ok(Claim::New)
            }
        }
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn key_is_sha256_hex() {
        assert_eq!(
            idempotency_key(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn config_is_optional() {
        assert_eq!(
            IdempotencyConfig::from_env(&[("X", "1")]).expect("ok"),
            None
        );
        let c = IdempotencyConfig::from_env(&[
            ("IDEMPOTENCY_TABLE", "t"),
            ("IDEMPOTENCY_TTL_SECONDS", "60"),
        ])
        .expect("ok")
        .expect("enabled");
        assert_eq!(c.table, "t");
        assert_eq!(c.ttl, Duration::from_secs(60));
    }

    #[tokio::test]
    async fn duplicate_until_expired_or_released() {
        let store = MemoryIdempotency::new(Duration::from_secs(60));
        assert_eq!(store.claim("k", at(0)).await, Ok(Claim::New));
        assert_eq!(store.claim("k", at(30)).await, Ok(Claim::Duplicate));
        assert_eq!(store.claim("k", at(61)).await, Ok(Claim::New));
        store.release("k").await.expect("release");
        assert!(!store.contains("k"));
        assert_eq!(store.claim("k", at(62)).await, Ok(Claim::New));
    }
}
