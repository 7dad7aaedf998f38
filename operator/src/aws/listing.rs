//! "Did anything change?" in one read per account instead of several per
//! resource, where AWS offers such a read.
//!
//! A resync pass of a converged pipeline reads every resource back to find
//! changes made outside Sluice. For IAM, the bucket that binds a large
//! fleet (the fleet benchmark's resync needed about 9 IAM reads per
//! pipeline: `GetRole`, `ListRolePolicies` and `GetRolePolicy` for each of
//! its roles), AWS offers one call that answers for every role of the
//! account at once: `GetAccountAuthorizationDetails` with the `Role`
//! filter, up to 1,000 roles a page, each with its trust policy, inline
//! policies, permissions boundary and tags: everything the role kind
//! reads.
//!
//! So for kinds with such a listing ([`super::AwsResource::listed`]):
//! - a full read that found a resource as desired records its
//!   *fingerprint* (a digest of everything read) with a digest of what was
//!   desired ([`Listings::verify`]);
//! - a resync pass takes the resource's fingerprint from the account's
//!   listing, at most a quarter of the resync period old and taken after
//!   the last write to it; the same fingerprint under the same desired
//!   state means nothing changed, and the resource is not read at all;
//! - anything else (not listed, a different fingerprint, no fresh
//!   listing, a pass that is not a resync, any write since) reads the
//!   resource as before.
//!
//! A change made outside Sluice is still found, one listing later: drift
//! detection takes up to a quarter of a period longer, and each listing
//! costs a page per 1,000 roles of the account instead of 3 reads per role.
//! Only fingerprints are kept (a few dozen bytes per resource), never the
//! documents.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{Hash, Hasher},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use crate::plan::Kind;

/// What one listing of an account found: each listed resource's
/// fingerprint by id, and when the listing started (a write after that may
/// be missing from it).
#[derive(Debug)]
struct Listed {
    started: Instant,
    fingerprints: HashMap<String, u64>,
    /// The listing failed: none is asked for before then (every resource
    /// is read meanwhile).
    failed_until: Option<Instant>,
}

/// How long after a refused listing (the operator's identity lacks
/// `config/iam/role-listing-policy.json`) another is tried.
const DENIED_RETRY: Duration = Duration::from_secs(3600);

/// The listings of one set of clients (an identity in a region), and the
/// fingerprints of the resources found as desired.
#[derive(Debug, Default)]
pub struct Listings {
    /// The roles of the account; held while a listing is taken, so
    /// passes that need one at once share it.
    roles: tokio::sync::Mutex<Option<Listed>>,
    /// (kind, id) → (fingerprint, digest of the desired state) of a full
    /// read that found the resource as desired.
    verified: Mutex<HashMap<(Kind, String), (u64, u64)>>,
    /// (kind, id) → the last write to it.
    written: Mutex<HashMap<(Kind, String), Instant>>,
}

impl Listings {
    /// The resource's fingerprint and desired digest when a full read last
    /// found it as desired (and nothing was written to it since).
    pub fn verified(&self, kind: Kind, id: &str) -> Option<(u64, u64)> {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(kind, id.to_owned()))
            .copied()
    }

    /// A full read found the resource as `desired` (a digest), with this
    /// `fingerprint`.
    pub fn verify(&self, kind: Kind, id: &str, fingerprint: u64, desired: u64) {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((kind, id.to_owned()), (fingerprint, desired));
    }

    /// The resource is about to be written (or is gone): what was verified
    /// of it no longer holds, and listings started before now do not show
    /// it as it will be.
    pub fn wrote(&self, kind: Kind, id: &str) {
        let key = (kind, id.to_owned());
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        written.insert(key, Instant::now());
        // Writes older than any listing still wanted no longer matter.
        if written.len() > 4096 {
            let horizon = Instant::now().checked_sub(Duration::from_secs(3600));
            written.retain(|_, at| horizon.is_none_or(|h| *at > h));
        }
    }

    /// The fingerprint of role `id` in a listing of the account's roles no
    /// older than `max_age` and started after the last write to the role,
    /// taking a new listing with `list` when there is none; `None` when
    /// the listing does not have the role, or could not be taken: AWS
    /// refused it (tried again an hour later) or it failed otherwise (tried
    /// again `max_age` later). The role is read instead.
    pub async fn role<F, Fut>(
        &self,
        id: &str,
        max_age: Duration,
        list: F,
    ) -> crate::Result<Option<u64>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::Result<HashMap<String, u64>>>,
    {
        let written = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(Kind::Role, id.to_owned()))
            .copied();
        let mut roles = self.roles.lock().await;
        let fresh = roles.as_ref().is_some_and(|l| {
            l.failed_until.is_some_and(|t| t > Instant::now())
                || (l.failed_until.is_none()
                    && l.started.elapsed() <= max_age
                    && written.is_none_or(|w| l.started > w))
        });
        if !fresh {
            let started = Instant::now();
            *roles = Some(match list().await {
                Ok(fingerprints) => Listed {
                    started,
                    fingerprints,
                    failed_until: None,
                },
                Err(e) => {
                    let denied = matches!(&e, crate::Error::Aws(a)
                        if a.has_code("AccessDenied") || a.status == Some(403));
                    let wait = if denied { DENIED_RETRY } else { max_age };
                    tracing::warn!(
                        error = %e,
                        retry_seconds = wait.as_secs(),
                        "cannot list the account's roles (iam:GetAccountAuthorizationDetails, \
                         config/iam/role-listing-policy.json): resyncs read each role meanwhile"
                    );
                    Listed {
                        started,
                        fingerprints: HashMap::new(),
                        failed_until: Some(started + wait),
                    }
                }
            });
        }
        Ok(roles.as_ref().and_then(|l| l.fingerprints.get(id).copied()))
    }
}

/// A digest of the parts of a resource as read, in a fixed order.
pub fn fingerprint(parts: &[Option<&str>], tags: &BTreeMap<String, String>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for part in parts {
        part.hash(&mut hasher);
    }
    tags.hash(&mut hasher);
    hasher.finish()
}

/// A digest of a desired state (its debug form: every field).
pub fn desired_digest(desired: &impl std::fmt::Debug) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{desired:?}").hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_serves_until_it_is_too_old_or_the_role_was_written() {
        let listings = Listings::default();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let list = |fingerprints: HashMap<String, u64>| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(fingerprints)
            }
        };
        let age = Duration::from_secs(15);
        let a = listings.role("a", age, list(listing(&[("a", 1), ("b", 2)])));
        assert_eq!(a.await.expect("listed"), Some(1));
        // The same listing answers for another role, and for a role it
        // does not have.
        let b = listings.role("b", age, list(listing(&[])));
        assert_eq!(b.await.expect("listed"), Some(2));
        let c = listings.role("c", age, list(listing(&[])));
        assert_eq!(c.await.expect("listed"), None);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);

        // Written since: listed again.
        tokio::time::advance(Duration::from_secs(1)).await;
        listings.wrote(Kind::Role, "a");
        let a = listings.role("a", age, list(listing(&[("a", 3)])));
        assert_eq!(a.await.expect("listed"), Some(3));
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);

        // Too old: listed again.
        tokio::time::advance(Duration::from_secs(16)).await;
        let a = listings.role("a", age, list(listing(&[("a", 4)])));
        assert_eq!(a.await.expect("listed"), Some(4));
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_listing_is_not_asked_for_again_for_an_hour() {
        let listings = Listings::default();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let refused = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(crate::Error::Aws(crate::aws::AwsError {
                service: crate::aws::Service::Iam,
                operation: "GetAccountAuthorizationDetails",
                code: Some("AccessDenied".into()),
                message: None,
                status: Some(403),
                class: crate::aws::ErrorClass::Client,
            }))
        };
        let age = Duration::from_secs(15);
        for _ in 0..3 {
            let got = listings.role("a", age, refused).await;
            assert_eq!(got.expect("not an error: the role is read"), None);
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        tokio::time::advance(DENIED_RETRY).await;
        let got = listings.role("a", age, || async { Ok(listing(&[("a", 5)])) });
        assert_eq!(got.await.expect("listed"), Some(5));
    }

    #[test]
    fn a_write_forgets_what_was_verified() {
        let listings = Listings::default();
        listings.verify(Kind::Role, "a", 7, 9);
        assert_eq!(listings.verified(Kind::Role, "a"), Some((7, 9)));
        assert_eq!(listings.verified(Kind::Queue, "a"), None);
        listings.wrote(Kind::Role, "a");
        assert_eq!(listings.verified(Kind::Role, "a"), None);
    }

    #[test]
    fn fingerprints_change_with_any_part_and_any_tag() {
        let tags: BTreeMap<String, String> = [("k".to_owned(), "v".to_owned())].into();
        let base = fingerprint(&[Some("a"), None], &tags);
        assert_eq!(base, fingerprint(&[Some("a"), None], &tags));
        assert_ne!(base, fingerprint(&[Some("a"), Some("")], &tags));
        assert_ne!(base, fingerprint(&[None, Some("a")], &tags));
        let other: BTreeMap<String, String> = [("k".to_owned(), "w".to_owned())].into();
        assert_ne!(base, fingerprint(&[Some("a"), None], &other));
    }
}
