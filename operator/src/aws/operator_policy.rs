//! What a module that calls [`Aws::call`](super::Aws::call) declares,
//! beside those calls, that IAM must allow for them and on which resources:
//! its `POLICY`, a list of [`Statement`]s. [`crate::policygen`] assembles
//! every module's declarations into the two managed policies the platform
//! installs: `config/iam/operator-policy.json` ([`Document::Core`]) and
//! `config/iam/operator-policy-services.json` ([`Document::Services`]; two
//! because one managed policy may hold 6,144 characters).
//!
//! The declarations name what the files ship: the default name prefix
//! (`sluice-*`, the path `/sluice/`), `ACCOUNT_ID` and `"ALLOWED_REGION"`,
//! which whoever installs the policy replaces (and the emulator's harness,
//! `render` in e2e/moto/sluice_harness/iam.py, for each test's prefix).
//!
//! Statements of one `Sid` may be declared by several modules (a function's
//! permissions and its event invoke configuration are in `Functions`);
//! their actions are merged, and they must agree on everything else.

use super::Service;

/// One of the two managed policies of the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// `config/iam/operator-policy.json`: the account id, roles and the
    /// guards around them, buckets and code artifacts, metrics.
    Core,
    /// `config/iam/operator-policy-services.json`: the other services'
    /// resources.
    Services,
    /// `config/iam/role-listing-policy.json`, attached only with
    /// `SLUICE_ROLE_LISTING` on: the one read of every role of the account
    /// that resyncs use in place of three per role
    /// ([`super::listing`]). IAM offers it on every resource only, so it
    /// is not part of the operator's policy proper.
    RoleListing,
}

impl Document {
    /// The operator's policy proper, in the order they are installed.
    pub const ALL: [Document; 2] = [Document::Core, Document::Services];

    /// Every document `policygen` writes: the operator's, then the
    /// optional one.
    pub const EVERY: [Document; 3] = [Document::Core, Document::Services, Document::RoleListing];

    /// The file under `config/iam/`.
    pub fn file(self) -> &'static str {
        match self {
            Document::Core => "operator-policy.json",
            Document::Services => "operator-policy-services.json",
            Document::RoleListing => "role-listing-policy.json",
        }
    }

    /// Its name as `policygen` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Document::Core => "core",
            Document::Services => "services",
            Document::RoleListing => "role-listing",
        }
    }

    /// The document named `name` ([`Document::name`]).
    pub fn from_name(name: &str) -> Option<Document> {
        Document::EVERY.into_iter().find(|d| d.name() == name)
    }
}

/// A statement's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Allows its actions.
    Allow,
    /// Denies its actions, whatever any other statement allows.
    Deny,
}

/// Why a statement names an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Sluice makes this API call: `Aws::call(service, "<operation>", …)`.
    /// The action is the one IAM checks for it, mostly of the same name,
    /// not always (S3's `HeadBucket` is `s3:ListBucket`).
    Call(&'static str),
    /// IAM checks this action too when Sluice makes one of these calls, for
    /// something the call carries: a role it hands to a service
    /// (`iam:PassRole`), tags set at creation, the logging it configures,
    /// the tags or the code object the service reads on the caller's behalf.
    ImpliedBy(&'static [(Service, &'static str)]),
    /// Nothing Sluice needs: what an explicit Deny forbids.
    Guard,
}

/// One IAM action of a statement, and why it is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    /// Its service (the action's prefix).
    pub service: Service,
    /// The action without its prefix (`PutBucketNotification`), or a
    /// wildcard in a guard.
    pub name: &'static str,
    /// Why.
    pub reason: Reason,
}

impl Action {
    /// The action of API call `operation`, of the same name.
    pub const fn calls(service: Service, operation: &'static str) -> Action {
        Action {
            service,
            name: operation,
            reason: Reason::Call(operation),
        }
    }

    /// The action `action` IAM checks for API call `operation`.
    pub const fn calls_as(
        service: Service,
        operation: &'static str,
        action: &'static str,
    ) -> Action {
        Action {
            service,
            name: action,
            reason: Reason::Call(operation),
        }
    }

    /// An action IAM checks of the calls `by` too.
    pub const fn implied(
        service: Service,
        action: &'static str,
        by: &'static [(Service, &'static str)],
    ) -> Action {
        Action {
            service,
            name: action,
            reason: Reason::ImpliedBy(by),
        }
    }

    /// An action an explicit Deny names.
    pub const fn guard(service: Service, action: &'static str) -> Action {
        Action {
            service,
            name: action,
            reason: Reason::Guard,
        }
    }

    /// As IAM names it: `states:CreateStateMachine`.
    pub fn iam(&self) -> String {
        format!("{}:{}", self.service.iam_prefix(), self.name)
    }
}

/// The values a condition compares a key with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// One value, written as a string.
    One(&'static str),
    /// Any of these, written as a list (also for one value that the
    /// installer replaces by several, `"ALLOWED_REGION"`).
    Any(&'static [&'static str]),
}

/// One condition of a statement: `{operator: {key: values}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The condition operator: `StringEquals`, `ArnLike`…
    pub operator: &'static str,
    /// The condition key: `iam:PermissionsBoundary`…
    pub key: &'static str,
    /// What the key is compared with.
    pub values: Values,
}

impl Condition {
    /// `{operator: {key: value}}`.
    pub const fn one(operator: &'static str, key: &'static str, value: &'static str) -> Condition {
        Condition {
            operator,
            key,
            values: Values::One(value),
        }
    }

    /// `{operator: {key: [values]}}`.
    pub const fn any(
        operator: &'static str,
        key: &'static str,
        values: &'static [&'static str],
    ) -> Condition {
        Condition {
            operator,
            key,
            values: Values::Any(values),
        }
    }
}

/// One statement of the operator's policy, or a module's part of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Its `Sid`.
    pub sid: &'static str,
    /// Which of the two policies holds it.
    pub document: Document,
    /// Allow or Deny.
    pub effect: Effect,
    /// `NotAction` instead of `Action`: every action but these.
    pub not_action: bool,
    /// The actions.
    pub actions: &'static [Action],
    /// The resources (ARN patterns).
    pub resources: &'static [&'static str],
    /// The conditions, all of which must hold.
    pub conditions: &'static [Condition],
}

impl Statement {
    /// Allows `actions` on `resources`.
    pub const fn allow(
        sid: &'static str,
        document: Document,
        actions: &'static [Action],
        resources: &'static [&'static str],
    ) -> Statement {
        Statement {
            sid,
            document,
            effect: Effect::Allow,
            not_action: false,
            actions,
            resources,
            conditions: &[],
        }
    }

    /// Denies `actions` on `resources`.
    pub const fn deny(
        sid: &'static str,
        document: Document,
        actions: &'static [Action],
        resources: &'static [&'static str],
    ) -> Statement {
        Statement {
            effect: Effect::Deny,
            ..Statement::allow(sid, document, actions, resources)
        }
    }

    /// Only when `conditions` hold.
    pub const fn when(self, conditions: &'static [Condition]) -> Statement {
        Statement { conditions, ..self }
    }

    /// Of every action but its own (`NotAction`).
    pub const fn every_action_but(self) -> Statement {
        Statement {
            not_action: true,
            ..self
        }
    }
}
