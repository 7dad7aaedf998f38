//! How much I/O a handler keeps in flight, from the function's memory
//! setting (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, which Lambda always sets).
//!
//! Concurrent requests hide the round trip to S3 and DynamoDB, which is
//! most of a handler's billed time, but every request in flight holds its
//! body and a connection: a quarter of the function's memory is the budget
//! for bodies, and the number of requests follows the memory setting the
//! way Lambda's CPU share does (about 1/14 of a vCPU at 128 MB, one vCPU at
//! 1,769 MB): a small function could not drive more connections (each TLS
//! handshake costs CPU) and would only hold their buffers.

use crate::kit::config::{ConfigError, Env};

/// Memory of a function whose setting is unknown (Lambda's minimum).
pub const DEFAULT_MEMORY_MB: u64 = 128;

/// What a handler may have in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoLimits {
    /// Requests in flight at once (at least 1).
    pub requests: usize,
    /// Bytes of request and response bodies in flight at once.
    pub bytes: u64,
}

impl Default for IoLimits {
    fn default() -> Self {
        Self::for_memory_mb(DEFAULT_MEMORY_MB)
    }
}

impl IoLimits {
    /// The limits of a function with `memory_mb` of memory: a quarter of it
    /// for bodies in flight, and a request per 8 MB, between 8 and 64 (16 at
    /// 128 MB, 64 from 512 MB).
    pub fn for_memory_mb(memory_mb: u64) -> Self {
        let memory_mb = memory_mb.max(1);
        Self {
            requests: (memory_mb / 8).clamp(8, 64) as usize,
            bytes: memory_mb * 1024 * 1024 / 4,
        }
    }

    /// The limits for `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (128 MB when unset).
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        let name = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
        match env.optional(name) {
            None => Ok(Self::default()),
            Some(value) => match value.parse::<u64>() {
                Ok(mb) if mb > 0 => Ok(Self::for_memory_mb(mb)),
                _ => Err(ConfigError::Invalid {
                    name: name.to_owned(),
                    value,
                    reason: "must be the function's memory in MB, a whole number above 0".into(),
                }),
            },
        }
    }

    /// Budget share of one body of `size` bytes: never more than the whole
    /// budget, so one body larger than it still goes (alone).
    pub fn share(&self, size: u64) -> u64 {
        size.clamp(1, self.bytes.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_memory_setting() {
        assert_eq!(
            IoLimits::for_memory_mb(128),
            IoLimits {
                requests: 16,
                bytes: 32 * 1024 * 1024
            }
        );
        assert_eq!(IoLimits::for_memory_mb(512).requests, 64);
        assert_eq!(IoLimits::for_memory_mb(10).requests, 8);
        assert_eq!(IoLimits::for_memory_mb(10240).requests, 64);
        assert_eq!(IoLimits::default(), IoLimits::for_memory_mb(128));
    }

    #[test]
    fn from_env_reads_the_memory_size_and_names_a_bad_value() {
        let env = [("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")];
        assert_eq!(
            IoLimits::from_env(&env).expect("valid"),
            IoLimits::for_memory_mb(1024)
        );
        assert_eq!(
            IoLimits::from_env(&[("OTHER", "1")]).expect("unset"),
            IoLimits::default()
        );
        let err = IoLimits::from_env(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")])
            .expect_err("invalid");
        assert!(
            err.to_string().contains("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            "{err}"
        );
    }

    #[test]
    fn a_body_never_takes_more_than_the_budget() {
        let limits = IoLimits::for_memory_mb(128);
        assert_eq!(limits.share(0), 1);
        assert_eq!(limits.share(1000), 1000);
        assert_eq!(limits.share(u64::MAX), limits.bytes);
    }
}
