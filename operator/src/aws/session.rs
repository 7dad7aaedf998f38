//! Credentials of a role in another account, one STS session per
//! pipeline: what a namespace's pipelines are made with when its
//! SluicePolicy names an account role ([`crate::accounts`]).
//!
//! The operator assumes the role with its own identity (`sts:AssumeRole`
//! and `sts:TagSession`, through [`Aws::call`]: rate-limited, counted and
//! retried like every other call), once per pipeline, with a session name
//! and session tags naming the namespace and the pipeline, so CloudTrail in
//! the team's account says which pipeline made each change and the role's
//! policies may condition on `aws:PrincipalTag/sluice.dev/namespace`. The
//! credentials are kept until a quarter of their lifetime (at most five
//! minutes) is left, then assumed again before the next call; a call AWS
//! still answers with `ExpiredToken` (clocks differ) is sent once more with
//! new ones, so no write fails because a session ran out.
//!
//! The clients of such an account hold [`AssumedRole`] as their credentials
//! provider, with the SDK's identity cache off: every request asks it, and
//! it answers with the credentials of the session [`SESSION`] names, which
//! [`Aws::call`] sets around each request. A request made any other way
//! has no session and is not signed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use aws_credential_types::{
    Credentials,
    provider::{self, ProvideCredentials, error::CredentialsError},
};
use sha2::{Digest, Sha256};

use super::{
    Aws, AwsError, ErrorClass, Service,
    operator_policy::{Action, Document, Statement},
};
use crate::crd::AccountRole;

/// The account roles SluicePolicies may name, by convention
/// `role/operators/sluice-operator` in each account (outside the path and
/// names of the roles the operator makes, so it may never change or delete
/// the role it acts as): assumed with session tags. The operator's
/// configuration (`aws.accountRoles`) and each role's trust policy narrow
/// this to the accounts the platform team set up.
pub const POLICY: &[Statement] = &[Statement::allow(
    "AssumeAccountRoles",
    Document::Core,
    &[
        Action::calls(Service::Sts, "AssumeRole"),
        Action::implied(Service::Sts, "TagSession", &[(Service::Sts, "AssumeRole")]),
    ],
    &[ACCOUNT_ROLES],
)];

/// The ARN pattern of the account roles the operator's policy lets it
/// assume.
pub const ACCOUNT_ROLES: &str = "arn:aws:iam::*:role/operators/sluice-operator";

/// The reviewer roles `kubectl sluice plan --live` reads a mapped
/// namespace's account as, by convention `role/operators/sluice-reviewer`
/// beside the account role: holding `config/iam/reviewer-policy.json` (no
/// write), trusting the reviewers' principal.
pub const REVIEWER_ROLES: &str = "arn:aws:iam::*:role/operators/sluice-reviewer";

/// The reviewer's one statement beyond the operator's reads: assuming a
/// reviewer role (`kubectl sluice plan --live` of a namespace whose
/// pipelines are in another account). Not the operator's: it is in the
/// reviewer's policy only ([`crate::policygen::reviewer_statements`]).
pub const REVIEWER_POLICY: &[Statement] = &[Statement::allow(
    "AssumeReviewerRoles",
    Document::Core,
    &[Action::calls(Service::Sts, "AssumeRole")],
    &[REVIEWER_ROLES],
)];

/// Whose session a request belongs to: (namespace, pipeline).
pub type SessionKey = (Arc<str>, Arc<str>);

tokio::task_local! {
    /// The session of the request being made, set by [`Aws::call`].
    pub static SESSION: SessionKey;
}

/// The session tag naming the pipeline's namespace.
pub const NAMESPACE_TAG: &str = "sluice.dev/namespace";
/// The session tag naming the pipeline.
pub const PIPELINE_TAG: &str = "sluice.dev/pipeline";

/// AWS's bounds on `DurationSeconds` (the role's `MaxSessionDuration`,
/// 3,600 s by default, may lower the upper one; a session assumed from a
/// session, role chaining, lasts at most an hour).
pub const SESSION_SECONDS: std::ops::RangeInclusive<u64> = 900..=43_200;

/// A role assumed for many pipelines, each in a session of its own.
#[derive(Debug)]
pub struct AssumedRole {
    role: AccountRole,
    lifetime: Duration,
    /// The operator's own clients in the same region, which assume it.
    assumer: Aws,
    sessions: Mutex<HashMap<SessionKey, Session>>,
}

#[derive(Debug, Default)]
struct Session {
    credentials: Option<Held>,
    /// Held while the session is being assumed, so concurrent calls of one
    /// pipeline assume it once.
    assuming: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Clone, Debug)]
struct Held {
    credentials: Credentials,
    /// When to assume the role again rather than use these.
    renew_at: SystemTime,
}

impl AssumedRole {
    /// Sessions of `role`, assumed by `assumer` for `lifetime` each.
    pub fn new(role: AccountRole, assumer: Aws, lifetime: Duration) -> Self {
        AssumedRole {
            role,
            lifetime,
            assumer,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The role.
    pub fn role(&self) -> &AccountRole {
        &self.role
    }

    fn held(&self, key: &SessionKey, now: SystemTime) -> Option<Credentials> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .get(key)?
            .credentials
            .as_ref()
            .filter(|h| now < h.renew_at)
            .map(|h| h.credentials.clone())
    }

    /// Makes sure the session of `key` holds credentials that are not
    /// about to expire, assuming the role for it if not.
    pub async fn ensure(&self, key: &SessionKey) -> Result<(), AwsError> {
        if self.held(key, SystemTime::now()).is_some() {
            return Ok(());
        }
        let assuming = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            // Sessions of deleted pipelines go when their credentials are
            // long expired.
            if sessions.len() >= 64 && !sessions.contains_key(key) {
                let stale = SystemTime::now() - self.lifetime;
                sessions.retain(|_, s| s.credentials.as_ref().is_some_and(|h| h.renew_at > stale));
            }
            sessions.entry(key.clone()).or_default().assuming.clone()
        };
        let _one = assuming.lock().await;
        if self.held(key, SystemTime::now()).is_some() {
            return Ok(());
        }
        // Boxed: assuming goes through `Aws::call`, which calls `ensure`
        // (for the operator's own clients it never does).
        let held = Box::pin(self.assume(key)).await?;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.entry(key.clone()).or_default().credentials = Some(held);
        Ok(())
    }

    /// Forgets the session's credentials (AWS said they expired).
    pub fn forget(&self, key: &SessionKey) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = sessions.get_mut(key) {
            s.credentials = None;
        }
    }

    async fn assume(&self, key: &SessionKey) -> Result<Held, AwsError> {
        let (namespace, pipeline) = key;
        let sts = &self.assumer.sts;
        let asked = SystemTime::now();
        let out = self
            .assumer
            .call(Service::Sts, "AssumeRole", || {
                let mut request = sts
                    .assume_role()
                    .role_arn(&self.role.role_arn)
                    .role_session_name(session_name(namespace, pipeline))
                    .duration_seconds(self.lifetime.as_secs().try_into().unwrap_or(3600))
                    .tags(tag(NAMESPACE_TAG, namespace))
                    .tags(tag(PIPELINE_TAG, pipeline));
                if let Some(id) = &self.role.external_id {
                    request = request.external_id(id);
                }
                request.send()
            })
            .await
            .map_err(|e| self.explained(e, namespace, pipeline))?;
        let Some(c) = out.credentials() else {
            return Err(self.explained(
                AwsError {
                    service: Service::Sts,
                    operation: "AssumeRole",
                    code: None,
                    message: Some("no credentials in the response".into()),
                    status: None,
                    class: ErrorClass::Transient,
                },
                namespace,
                pipeline,
            ));
        };
        let expires = SystemTime::try_from(*c.expiration()).unwrap_or(asked + self.lifetime);
        Ok(Held {
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                Some(expires),
                "sluice-assumed-role",
            ),
            renew_at: renew_at(asked, expires),
        })
    }

    /// AWS's refusal of a session, with what the platform team can do
    /// about it: the message says which role, for which pipeline, and what
    /// must allow it. A refusal (a client error) becomes
    /// [`ErrorClass::Session`], its code and status folded into the
    /// message, so the call it was for cannot take it for its resource's
    /// answer (S3's 403 reads as a bucket of another account); throttling
    /// and outages keep their class.
    fn explained(&self, mut e: AwsError, namespace: &str, pipeline: &str) -> AwsError {
        let mut original = e.message.take().unwrap_or_default();
        if e.class == ErrorClass::Client {
            if let Some(code) = e.code.take() {
                original = format!("{code}: {original}");
            }
            e.status = None;
            e.class = ErrorClass::Session;
        }
        e.message = Some(format!(
            "the operator could not assume {} for {namespace}/{pipeline}: {original} (the role's \
             trust policy must let the operator's principal sts:AssumeRole and sts:TagSession{}, \
             and the operator's own policy must allow both on the role)",
            self.role.role_arn,
            if self.role.external_id.is_some() {
                " with the SluicePolicy's external id"
            } else {
                ""
            }
        ));
        e
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let held = SESSION
            .try_with(|key| self.held(key, SystemTime::now()))
            .ok()
            .flatten();
        provider::future::ProvideCredentials::ready(held.ok_or_else(|| {
            CredentialsError::not_loaded(
                "no pipeline session: calls with an account role's clients go through Aws::call",
            )
        }))
    }
}

/// An [`AssumedRole`] shared with the SDK clients that sign with it.
#[derive(Debug)]
pub struct Shared(pub Arc<AssumedRole>);

impl ProvideCredentials for Shared {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}

/// When to assume again: a quarter of the lifetime before expiry, at most
/// five minutes before.
fn renew_at(asked: SystemTime, expires: SystemTime) -> SystemTime {
    let lifetime = expires.duration_since(asked).unwrap_or_default();
    expires - (lifetime / 4).min(Duration::from_secs(300))
}

fn tag(key: &str, value: &str) -> aws_sdk_sts::types::Tag {
    aws_sdk_sts::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .expect("key and value are set")
}

/// The session name of a pipeline: `<namespace>.<name>`, which
/// Kubernetes' names keep within AWS's characters (`[\w+=,.@-]`); one
/// longer than AWS's 64 characters keeps its first 55 and a hash of the
/// whole.
pub fn session_name(namespace: &str, pipeline: &str) -> String {
    let full = format!("{namespace}.{pipeline}");
    if full.len() <= 64 {
        return full;
    }
    let hash = hex::encode(Sha256::digest(full.as_bytes()));
    format!("{}.{}", &full[..55], &hash[..8])
}

/// Whether AWS refused a call because its credentials expired.
pub fn is_expired(e: &AwsError) -> bool {
    e.has_code("ExpiredToken") || e.has_code("ExpiredTokenException")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_fit_aws_and_stay_apart() {
        assert_eq!(session_name("team-a", "orders"), "team-a.orders");
        let long = "p".repeat(253);
        let a = session_name("team-a", &long);
        let b = session_name("team-b", &long);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b, "two namespaces' long names stay apart");
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
        assert!(a.chars().all(allowed), "{a}");
    }

    #[test]
    fn sessions_are_renewed_before_they_expire() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // An hour: five minutes before.
        assert_eq!(
            renew_at(t0, t0 + Duration::from_secs(3600)),
            t0 + Duration::from_secs(3300)
        );
        // A short one (the emulator's): a quarter of it before.
        assert_eq!(
            renew_at(t0, t0 + Duration::from_secs(8)),
            t0 + Duration::from_secs(6)
        );
        // Already expired: renewed at once.
        assert!(renew_at(t0, t0) <= t0);
    }
}
