//! DLQ redrive: sending a dead letter back to the queue it came from, a
//! bounded number of times, after a delay, so a transient outage does not
//! need a human.
//!
//! The built-in `dlq-handler` archives each dead letter and then redrives it
//! with [`plan_redrive`] and a [`QueueSender`](crate::kit::queue::QueueSender);
//! a team's own dead-letter function can do the same. Configuration comes
//! from `REDRIVE_TARGETS`, `REDRIVE_MAX` and `REDRIVE_DELAY_SECONDS`
//! ([`RedriveConfig::from_env`]).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsMessage, SqsMessageAttribute};

use crate::kit::config::{ConfigError, Env};
use crate::kit::error::VALIDATION_ERROR_TYPE;
use crate::kit::idempotency::idempotency_key;
use crate::kit::queue::{
    MAX_DELAY_SECONDS, MAX_MESSAGE_ATTRIBUTES, OutgoingMessage, is_fifo, is_queue_url,
};
use crate::kit::sqs::message_id;

/// Message attribute counting how often a message was redriven.
pub const REDRIVE_COUNT_ATTRIBUTE: &str = "sluice-redrive-count";
/// Default `REDRIVE_MAX`.
pub const DEFAULT_MAX_REDRIVES: u32 = 2;
/// Default `REDRIVE_DELAY_SECONDS`.
pub const DEFAULT_REDRIVE_DELAY: Duration = Duration::from_secs(300);

/// Where and how often dead letters go back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveConfig {
    /// DLQ name → URL of the queue its messages came from.
    pub targets: BTreeMap<String, String>,
    /// Redrives per message (`REDRIVE_MAX`, default 2).
    pub max_redrives: u32,
    /// Delay before a redriven message is visible (`REDRIVE_DELAY_SECONDS`,
    /// default 300, at most 900; ignored by FIFO queues).
    pub delay: Duration,
}

impl RedriveConfig {
    /// Reads `REDRIVE_TARGETS` (`<dlq-name>=<queue-url>` pairs separated by
    /// commas) and, with it, `REDRIVE_MAX` and `REDRIVE_DELAY_SECONDS`.
    /// `None` when `REDRIVE_TARGETS` is unset: no redrive.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Option<Self>, ConfigError> {
        let Some(targets) = env.optional("REDRIVE_TARGETS") else {
            return Ok(None);
        };
        let invalid = |name: &str, value: &str, reason: String| ConfigError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let mut parsed = BTreeMap::new();
        for pair in targets.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (dlq, url) = pair
                .split_once('=')
                .map(|(d, u)| (d.trim(), u.trim()))
                .filter(|(d, u)| !d.is_empty() && !u.is_empty())
                .ok_or_else(|| {
                    invalid(
                        "REDRIVE_TARGETS",
                        &targets,
                        format!(
                            "{pair:?} is not <dlq-name>=<queue-url>, e.g. \
                             orders-dlq=https://sqs.us-east-1.amazonaws.com/123456789012/orders"
                        ),
                    )
                })?;
            if !is_queue_url(url) {
                return Err(invalid(
                    "REDRIVE_TARGETS",
                    &targets,
                    format!("the target of {dlq} must be a queue URL (https://...), not {url:?}"),
                ));
            }
            if is_fifo(url) != dlq.ends_with(".fifo") {
                return Err(invalid(
                    "REDRIVE_TARGETS",
                    &targets,
                    format!("{dlq} and {url} must both be FIFO queues or both standard"),
                ));
            }
            parsed.insert(dlq.to_owned(), url.to_owned());
        }
        let max = env.optional("REDRIVE_MAX");
        let max_redrives = match max.as_deref() {
            None => DEFAULT_MAX_REDRIVES,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "REDRIVE_MAX",
                        value,
                        "must be a whole number from 1 to 100".into(),
                    )
                })?,
        };
        let delay = env.seconds("REDRIVE_DELAY_SECONDS", DEFAULT_REDRIVE_DELAY)?;
        if delay.as_secs() > u64::from(MAX_DELAY_SECONDS) {
            return Err(invalid(
                "REDRIVE_DELAY_SECONDS",
                &delay.as_secs().to_string(),
                format!("SQS delays a message at most {MAX_DELAY_SECONDS} seconds"),
            ));
        }
        Ok(Some(Self {
            targets: parsed,
            max_redrives,
            delay,
        }))
    }
}

/// How often `message` was redriven already.
pub fn redrive_count(message: &SqsMessage) -> u32 {
    message
        .message_attributes
        .get(REDRIVE_COUNT_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Decides whether and where `message`, a dead letter from the DLQ named
/// `queue` that failed for `failure_reason` (when known), goes back (pure):
/// the message to send, or why not. Not after a validation error (retrying
/// cannot help), not after `max_redrives` redrives (counted in
/// [`REDRIVE_COUNT_ATTRIBUTE`], which the message sent carries, one
/// higher), not from a DLQ without a target. To a FIFO queue, the message
/// keeps its group and gets a deduplication id per attempt; to a standard
/// queue, it waits [`RedriveConfig::delay`].
pub fn plan_redrive(
    message: &SqsMessage,
    queue: &str,
    failure_reason: Option<&str>,
    config: &RedriveConfig,
) -> Result<OutgoingMessage, String> {
    let Some(target) = config.targets.get(queue) else {
        return Err(format!("no redrive target for queue {queue}"));
    };
    if failure_reason.is_some_and(|r| r.contains(VALIDATION_ERROR_TYPE)) {
        return Err("the failure was a validation error; retrying cannot help".into());
    }
    let count = redrive_count(message);
    if count >= config.max_redrives {
        return Err(format!(
            "redriven {count} times already (REDRIVE_MAX={})",
            config.max_redrives
        ));
    }
    // Reserved names (AWS., Amazon.) cannot be set by a sender.
    let mut attributes: BTreeMap<_, _> = message
        .message_attributes
        .iter()
        .filter(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            name.as_str() != REDRIVE_COUNT_ATTRIBUTE
                && !lower.starts_with("aws.")
                && !lower.starts_with("amazon.")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if attributes.len() >= MAX_MESSAGE_ATTRIBUTES {
        return Err(format!(
            "the message has {} attributes; SQS allows {MAX_MESSAGE_ATTRIBUTES}, so the \
             redrive counter cannot be added",
            attributes.len()
        ));
    }
    let mut counter = SqsMessageAttribute::default();
    counter.data_type = Some("Number".into());
    counter.string_value = Some((count + 1).to_string());
    attributes.insert(REDRIVE_COUNT_ATTRIBUTE.to_owned(), counter);
    let (delay_seconds, group_id, deduplication_id) = if is_fifo(target) {
        let Some(group) = message.attributes.get("MessageGroupId").cloned() else {
            return Err("a FIFO message without MessageGroupId cannot be redriven".into());
        };
        let dedup = idempotency_key(format!("{}:{}", message_id(message), count + 1).as_bytes());
        (0, Some(group), Some(dedup))
    } else {
        (
            u32::try_from(config.delay.as_secs()).unwrap_or(MAX_DELAY_SECONDS),
            None,
            None,
        )
    };
    Ok(OutgoingMessage {
        queue_url: target.clone(),
        body: message.body.clone().unwrap_or_default(),
        attributes,
        delay_seconds,
        group_id,
        deduplication_id,
    })
}
