//! The AWS side: one module per resource kind, each behind [`AwsResource`],
//! and the plumbing every call goes through ([`Aws::call`]): a client-side
//! rate limit per quota bucket of AWS ([`quota`]: Lambda's control plane,
//! `GetFunction` and `GetPolicy` are three), throttling retried inside that
//! limit as flow control, a counter per operation split into reads and
//! writes (steady state must make zero writes), classification of errors
//! into throttled, transient and client errors, and the leader's write
//! fence: a replica that is not the leader sends no write
//! ([`crate::fence::Fence`]).

pub mod bucket;
pub mod code;
pub mod event_bus;
pub mod event_source_mapping;
pub mod function;
pub mod invoke_config;
pub mod listing;
pub mod log_group;
pub mod notification;
pub mod operator_policy;
pub mod permissions;
pub mod queue;
pub mod quota;
pub mod ratelimit;
pub mod role;
pub mod rule;
pub mod schedule;
pub mod session;
pub mod state_machine;
pub mod stream;
pub mod table;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};

use crate::{
    Error, Result,
    fence::Fence,
    metrics::Metrics,
    naming::{ADOPT_FROM_ANNOTATION, Ownership, PipelineId, TAG_RELEASED_BY},
};
use quota::{Fractions, Quota, QuotaConfig};
use ratelimit::RateLimiter;

/// The SDK configuration loader every AWS client of the operator (and of
/// its tests) starts from: the standard chain for region, credentials and
/// `AWS_ENDPOINT_URL`, over one HTTPS client (hyper 1, rustls on ring). The
/// SDK crates are built without a TLS feature of their own, so a client
/// built from any other configuration has no way to connect.
pub fn config_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::{
        Builder,
        tls::{Provider, rustls_provider::CryptoMode},
    };
    let https = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// An AWS service Sluice calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// AWS Lambda.
    Lambda,
    /// IAM.
    Iam,
    /// Amazon S3.
    S3,
    /// AWS STS.
    Sts,
    /// Amazon SQS.
    Sqs,
    /// Amazon EventBridge.
    Events,
    /// Amazon Kinesis Data Streams.
    Kinesis,
    /// Amazon DynamoDB.
    DynamoDb,
    /// AWS Step Functions.
    StepFunctions,
    /// Amazon EventBridge Scheduler.
    Scheduler,
    /// Amazon CloudWatch Logs.
    Logs,
    /// Amazon CloudWatch (metrics, read by runtime health).
    CloudWatch,
    /// Amazon ECR: never called; Lambda reads teams' images with the
    /// operator's permissions ([`function::IMAGE_POLICY`]).
    Ecr,
    /// Amazon EC2: never called; Lambda checks a function's subnets and
    /// security groups with the operator's permissions
    /// ([`function::NETWORK_AND_LAYERS_POLICY`]).
    Ec2,
}

impl Service {
    /// Metric label: the service's IAM prefix ([`Service::iam_prefix`]).
    pub fn as_str(self) -> &'static str {
        self.iam_prefix()
    }

    /// The prefix of the service's IAM actions (`states:CreateStateMachine`,
    /// `events:PutRule`), which is also the service part of its ARNs.
    pub const fn iam_prefix(self) -> &'static str {
        match self {
            Service::Lambda => "lambda",
            Service::Iam => "iam",
            Service::S3 => "s3",
            Service::Sts => "sts",
            Service::Sqs => "sqs",
            Service::Events => "events",
            Service::Kinesis => "kinesis",
            Service::DynamoDb => "dynamodb",
            Service::StepFunctions => "states",
            Service::Scheduler => "scheduler",
            Service::Logs => "logs",
            Service::CloudWatch => "cloudwatch",
            Service::Ecr => "ecr",
            Service::Ec2 => "ec2",
        }
    }
}

/// Whether an operation reads or writes, from its name: AWS names every
/// read `Get*`, `Head*`, `List*` or `Describe*`. STS's `AssumeRole`
/// changes nothing in any account (it hands out a session), so it counts
/// as a read: renewing sessions is part of steady state, which makes no
/// writes.
pub fn is_read(operation: &str) -> bool {
    operation == "AssumeRole"
        || ["Get", "Head", "List", "Describe"]
            .iter()
            .any(|p| operation.starts_with(p))
}

/// Kinesis and DynamoDB answer `ResourceInUseException` while a change to
/// the resource is in progress, and `LimitExceededException` while too many
/// changes are: both are waited for (`what` names the resource, for the
/// status), anything else is the error it is.
pub(crate) fn wait_while_busy<'a>(
    what: &'static str,
    name: &'a str,
    after: Duration,
) -> impl Fn(AwsError) -> Error + 'a {
    move |e| {
        if e.has_code("ResourceInUseException") || e.has_code("LimitExceededException") {
            Error::Waiting {
                what: format!("{what} {name} to finish its last change"),
                after,
            }
        } else {
            e.into()
        }
    }
}

/// How a failed AWS call should be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttled: back off.
    Throttled,
    /// 5xx, timeout, connection failure: retry with backoff.
    Transient,
    /// A 4xx the caller may inspect by [`AwsError::code`].
    Client,
    /// Not sent: a write while this replica is not the leader (its write
    /// fence is closed). Not retried; the controller is being stopped.
    NotLeader,
    /// Not sent: AWS refused the session of the account role the call was
    /// to be made as (`sts:AssumeRole`). Not the resource's answer, so it
    /// carries no code or status a caller could take for one; retried with
    /// backoff (a new role's trust policy takes a while to apply).
    Session,
}

impl ErrorClass {
    /// Its label on the `sluice_aws_errors_total` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Client => "client",
            ErrorClass::NotLeader => "not_leader",
            ErrorClass::Session => "session",
        }
    }
}

/// A failed AWS call, with what is needed to decide what to do about it.
/// It holds no request data, so it is safe to log and to put in status.
#[derive(Debug, Clone, thiserror::Error)]
pub struct AwsError {
    /// Service called.
    pub service: Service,
    /// Operation called.
    pub operation: &'static str,
    /// AWS error code, e.g. `NoSuchEntity`.
    pub code: Option<String>,
    /// AWS error message.
    pub message: Option<String>,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Treatment.
    pub class: ErrorClass,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.class == ErrorClass::NotLeader {
            return write!(
                f,
                "not the leader: {} {} was not sent: {}",
                self.service.as_str(),
                self.operation,
                self.message.as_deref().unwrap_or_default()
            );
        }
        write!(f, "{} {} failed", self.service.as_str(), self.operation)?;
        if let Some(code) = &self.code {
            write!(f, ": {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if self.code.is_none() && self.message.is_none() {
            match self.status {
                Some(status) => write!(f, ": HTTP {status}")?,
                None => write!(f, ": no response")?,
            }
        }
        Ok(())
    }
}

const THROTTLING_CODES: [&str; 8] = [
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    // Kinesis and DynamoDB answer control-plane rates (and too many
    // concurrent table or stream operations) with this code.
    "LimitExceededException",
];

/// AWS error codes that refuse the value sent: the same request fails the
/// same way until the spec changes, so the pipeline goes `Stalled` with
/// reason `AWSRejected` and AWS's message instead of retrying. Every other
/// client error (conflicts, resources in use, access denied while IAM
/// propagates, not found) keeps retrying. The README's table lists both.
pub const REJECTED_CODES: [&str; 22] = [
    // Most services' validation error.
    "ValidationException",
    // Lambda, Logs, CloudWatch.
    "InvalidParameterValueException",
    "InvalidParameterException",
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "RequestTooLargeException",
    "CodeStorageExceededException",
    // IAM.
    "MalformedPolicyDocument",
    "InvalidInput",
    "LimitExceeded",
    // SQS.
    "InvalidAttributeName",
    "InvalidAttributeValue",
    // S3.
    "InvalidArgument",
    "InvalidBucketName",
    "MalformedXML",
    // EventBridge.
    "InvalidEventPatternException",
    // Kinesis.
    "InvalidArgumentException",
    // Step Functions.
    "InvalidDefinition",
    "InvalidName",
    "InvalidArn",
    "InvalidLoggingConfiguration",
    "InvalidTracingConfiguration",
];

impl AwsError {
    /// Whether AWS refused the value itself ([`REJECTED_CODES`]): retrying
    /// without a spec change cannot help. Not one: what Lambda answers with
    /// InvalidParameterValueException while something settles ([`Self::is_settling`]).
    pub fn is_rejected(&self) -> bool {
        self.class == ErrorClass::Client
            && self
                .code
                .as_deref()
                .is_some_and(|c| REJECTED_CODES.contains(&c))
            && !self.is_settling()
    }

    /// Lambda's InvalidParameterValueException while something settles: a
    /// new role or grant not yet visible to it, code it could not read from
    /// S3 (uploaded again on the next pass), a queue's visibility timeout
    /// changed moments ago (SQS takes up to a minute to apply it).
    pub fn is_settling(&self) -> bool {
        let message = self.message.as_deref().unwrap_or_default();
        self.is_role_not_yet_usable()
            || (self.has_code("InvalidParameterValueException")
                && (message.contains("S3") || message.contains("isibility timeout")))
    }

    /// A write refused because this replica's write fence is closed.
    pub fn not_leader(service: Service, operation: &'static str) -> Self {
        AwsError {
            service,
            operation,
            code: None,
            message: Some(
                "this replica does not hold the leader Lease (or did not renew it within the \
                 renew deadline), so it may not write to AWS"
                    .into(),
            ),
            status: None,
            class: ErrorClass::NotLeader,
        }
    }

    fn from_sdk<E>(
        service: Service,
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let message = err.message().map(str::to_owned);
        let class = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorClass::Transient,
            _ if code
                .as_deref()
                .is_some_and(|c| THROTTLING_CODES.contains(&c))
                || status == Some(429) =>
            {
                ErrorClass::Throttled
            }
            _ if status.is_some_and(|s| s >= 500) => ErrorClass::Transient,
            SdkError::ResponseError(_) => ErrorClass::Transient,
            _ => ErrorClass::Client,
        };
        let message = message.or_else(|| match &err {
            SdkError::ConstructionFailure(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => Some(format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            )),
            _ => None,
        });
        AwsError {
            service,
            operation,
            code,
            message,
            status,
            class,
        }
    }

    /// Whether AWS said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "NoSuchEntity"
                    | "ResourceNotFoundException"
                    | "NoSuchBucket"
                    | "NotFound"
                    | "NoSuchTagSet"
                    | "NoSuchTagSetError"
                    | "NoSuchPublicAccessBlockConfiguration"
                    | "AWS.SimpleQueueService.NonExistentQueue"
                    | "QueueDoesNotExist"
                    | "StateMachineDoesNotExist"
            )
        ) || (self.status == Some(404) && self.class == ErrorClass::Client)
    }

    /// Whether the error has this AWS code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Whether Lambda refused a function's execution role that it checks
    /// when a mapping or a destination is set: a role or grant written
    /// seconds ago that IAM has not propagated yet.
    pub fn is_role_not_yet_usable(&self) -> bool {
        let message = self.message.as_deref().unwrap_or_default();
        self.has_code("InvalidParameterValueException")
            && (message.contains("execution role does not have permissions")
                || message.contains("cannot be assumed"))
    }
}

/// AWS clients by identity and region, connected on first use, shared by
/// the reconciler and the health poller (so both draw on the same rate
/// limits): the operator's own, and those of each account role a
/// SluicePolicy names ([`session`]). Quota limiters are per account and
/// region, as AWS's quotas are: two roles in one account share them.
#[derive(Debug)]
pub struct Regions {
    sdk: aws_config::SdkConfig,
    limits: QuotaConfig,
    metrics: Metrics,
    fence: Fence,
    /// How long each account-role session lasts.
    session: Duration,
    connected: tokio::sync::Mutex<HashMap<(Option<crate::crd::AccountRole>, String), Aws>>,
    limiters: Mutex<HashMap<(String, String), Arc<Limiters>>>,
    /// The part of each account's quotas this replica uses.
    fractions: Arc<Fractions>,
}

impl Regions {
    /// Connects nothing yet. Every client's writes go through `fence`;
    /// account-role sessions last `session`; each account's limits are
    /// `fractions` of `limits`.
    pub fn new(
        sdk: aws_config::SdkConfig,
        limits: QuotaConfig,
        metrics: Metrics,
        fence: Fence,
        session: Duration,
        fractions: Arc<Fractions>,
    ) -> Self {
        Regions {
            sdk,
            limits,
            metrics,
            fence,
            session,
            connected: tokio::sync::Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            fractions,
        }
    }

    /// The part of each account's quotas this replica uses.
    pub fn fractions(&self) -> &Arc<Fractions> {
        &self.fractions
    }

    /// Re-limits every account and region connected so far to its current
    /// fraction ([`Fractions::set`] changed them).
    pub fn apply_fractions(&self) {
        let all = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((account, region), limiters) in all.iter() {
            limiters.set_fraction(self.fractions.get(account, region));
        }
    }

    /// The operator's own clients of `region`, connected on first use.
    pub async fn get(&self, region: &str) -> Result<Aws> {
        self.as_role(None, region).await
    }

    /// The clients of `region` acting as `role` (one session per
    /// pipeline, [`Aws::for_pipeline`]), or as the operator itself.
    pub async fn as_role(
        &self,
        role: Option<&crate::crd::AccountRole>,
        region: &str,
    ) -> Result<Aws> {
        let key = (role.cloned(), region.to_owned());
        if let Some(aws) = self.connected.lock().await.get(&key) {
            return Ok(aws.clone());
        }
        let mut aws = match role {
            None => Aws::connect(&self.sdk, region, self.limits.clone(), self.metrics.clone())
                .await?
                .with_fence(self.fence.clone()),
            Some(role) => {
                let assumer = Box::pin(self.get(region)).await?;
                let assumed = Arc::new(session::AssumedRole::new(
                    role.clone(),
                    assumer,
                    self.session,
                ));
                let sdk = self
                    .sdk
                    .to_builder()
                    .region(aws_config::Region::new(region.to_owned()))
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .credentials_provider(
                        aws_credential_types::provider::SharedCredentialsProvider::new(
                            session::Shared(assumed.clone()),
                        ),
                    )
                    // Each request's credentials are its pipeline's session:
                    // nothing may be cached across requests.
                    .identity_cache(aws_sdk_sts::config::IdentityCache::no_cache())
                    .build();
                let mut aws =
                    Aws::unconnected(&sdk, region, self.limits.clone(), self.metrics.clone())
                        .with_fence(self.fence.clone());
                aws.account = role.account().to_owned();
                aws.role = Some(assumed);
                aws
            }
        };
        aws.limits = self.limiters(&aws.account, region);
        let mut connected = self.connected.lock().await;
        Ok(connected.entry(key).or_insert(aws).clone())
    }

    /// The clients of `region` acting as the account role `arn`, if a
    /// reconcile has connected them (it knows the role's external id).
    pub async fn connected_role(&self, arn: &str, region: &str) -> Option<Aws> {
        let connected = self.connected.lock().await;
        connected
            .iter()
            .find(|((role, r), _)| r == region && role.as_ref().is_some_and(|x| x.role_arn == arn))
            .map(|(_, aws)| aws.clone())
    }

    /// The quota limiters of an account and region.
    fn limiters(&self, account: &str, region: &str) -> Arc<Limiters> {
        let mut all = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.entry((account.to_owned(), region.to_owned()))
            .or_insert_with(|| {
                Arc::new(Limiters {
                    config: self.limits.clone(),
                    fraction: Mutex::new(self.fractions.get(account, region)),
                    buckets: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// Whether this replica may write now (to AWS, and to pipelines'
    /// status).
    pub fn fence(&self) -> &Fence {
        &self.fence
    }
}

/// Clients and limits for one account and region.
#[derive(Clone, Debug)]
pub struct Aws {
    /// Account id (from STS).
    pub account: String,
    /// Region.
    pub region: String,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// Lambda.
    pub lambda: aws_sdk_lambda::Client,
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// EventBridge.
    pub events: aws_sdk_eventbridge::Client,
    /// Kinesis.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Step Functions.
    pub sfn: aws_sdk_sfn::Client,
    /// EventBridge Scheduler.
    pub scheduler: aws_sdk_scheduler::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudWatch metrics.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// STS.
    pub sts: aws_sdk_sts::Client,
    limits: Arc<Limiters>,
    metrics: Metrics,
    /// Whose calls these are (a pipeline's namespace): each quota bucket's
    /// calls are shared fairly between tenants ([`crate::fair`]).
    tenant: Arc<str>,
    /// The pipeline the calls are for (its session, with an account role).
    pipeline: Arc<str>,
    /// The account role these clients act as, one session per pipeline;
    /// `None`: the operator's own identity.
    role: Option<Arc<session::AssumedRole>>,
    /// Counts the reads made through these clients, by quota bucket
    /// ([`crate::pacing`]).
    tally: Option<crate::pacing::Tally>,
    /// Code artifacts known to be in S3 (`bucket/key`), [`code`].
    code_uploaded: Arc<tokio::sync::Mutex<std::collections::HashSet<String>>>,
    /// SHA-256 (hex) and size of teams' zips pinned by object version,
    /// [`code`].
    code_digests: Arc<tokio::sync::Mutex<HashMap<String, (String, u64)>>>,
    /// Teams' zips checked before deploying them, [`code::verify`].
    code_verified: Arc<tokio::sync::Mutex<std::collections::HashSet<String>>>,
    /// Account-wide listings and what full reads verified ([`listing`]).
    listings: Arc<listing::Listings>,
    /// How old a listing this pass may go by; `None`: every resource is
    /// read (not a resync, or listings are off).
    listing_age: Option<Duration>,
    /// Open while this replica may write: writes are refused, unsent,
    /// while it is closed.
    fence: Fence,
}

/// One limiter per quota bucket of AWS, made on first use.
#[derive(Debug)]
struct Limiters {
    config: QuotaConfig,
    /// The part of the account's quotas this replica uses ([`Fractions`]).
    fraction: Mutex<f64>,
    buckets: Mutex<HashMap<&'static str, (Arc<RateLimiter>, Quota)>>,
}

impl Limiters {
    fn for_call(&self, service: Service, operation: &str) -> Arc<RateLimiter> {
        let (key, published) = quota::quota(service, operation);
        let fraction = *self
            .fraction
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buckets
            .entry(key)
            .or_insert_with(|| {
                let q = self.config.client_limit_of(key, published, fraction);
                (
                    Arc::new(RateLimiter::with_burst(q.rate, q.burst)),
                    published,
                )
            })
            .0
            .clone()
    }

    /// Re-limits every bucket to `fraction` of the account's quotas.
    fn set_fraction(&self, fraction: f64) {
        let mut current = self
            .fraction
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if (*current - fraction).abs() < f64::EPSILON {
            return;
        }
        *current = fraction;
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, (limiter, published)) in buckets.iter() {
            let q = self.config.client_limit_of(key, *published, fraction);
            limiter.set_limit(q.rate, q.burst);
        }
    }
}

/// How many times a throttled call is retried inside its limiter before
/// the reconcile gives up its slot and comes back later.
const THROTTLE_RETRIES: u32 = 6;

impl Aws {
    /// Builds clients for `region` from a loaded SDK config and learns the
    /// account id.
    pub async fn connect(
        sdk: &aws_config::SdkConfig,
        region: &str,
        limits: QuotaConfig,
        metrics: Metrics,
    ) -> Result<Self> {
        // Retries are made in `call`, inside the limiter and counted; the
        // SDK's own would bypass both.
        let sdk = sdk
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let mut aws = Self::unconnected(&sdk, region, limits, metrics);
        let sts = aws.sts.clone();
        let identity = aws
            .call(Service::Sts, "GetCallerIdentity", || {
                sts.get_caller_identity().send()
            })
            .await?;
        aws.account = identity.account().unwrap_or_default().to_owned();
        if aws.account.is_empty() {
            return Err(Error::Aws(AwsError {
                service: Service::Sts,
                operation: "GetCallerIdentity",
                code: None,
                message: Some("no account id in the response".into()),
                status: None,
                class: ErrorClass::Transient,
            }));
        }
        Ok(aws)
    }

    /// The clients of `sdk`'s region, without the account id: nothing is
    /// called yet.
    fn unconnected(
        sdk: &aws_config::SdkConfig,
        region: &str,
        limits: QuotaConfig,
        metrics: Metrics,
    ) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                // moto and other emulators only speak path-style; real S3
                // accepts it too for the bucket-level calls Sluice makes.
                .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
                .build(),
        );
        Aws {
            account: String::new(),
            region: region.to_owned(),
            s3,
            lambda: aws_sdk_lambda::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            events: aws_sdk_eventbridge::Client::new(sdk),
            kinesis: aws_sdk_kinesis::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            scheduler: aws_sdk_scheduler::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            limits: Arc::new(Limiters {
                config: limits,
                fraction: Mutex::new(1.0),
                buckets: Mutex::new(HashMap::new()),
            }),
            metrics,
            tenant: Arc::from(""),
            pipeline: Arc::from(""),
            role: None,
            tally: None,
            code_uploaded: Default::default(),
            code_digests: Default::default(),
            code_verified: Default::default(),
            listings: Default::default(),
            listing_age: None,
            fence: Fence::always_open(),
        }
    }

    /// Makes one AWS call: waits for its quota bucket's limiter, counts it,
    /// times it and classifies a failure. A write is sent only while the
    /// write fence is open, checked just before each attempt (the limiter
    /// may have held it for a while): else it fails at once, unsent and
    /// not retried, with [`ErrorClass::NotLeader`]. A throttled call is retried
    /// inside the limiter (which then holds back the bucket's every caller,
    /// [`RateLimiter::throttled`]) up to [`THROTTLE_RETRIES`] times; a read
    /// that failed in transit is retried twice. Writes that failed in
    /// transit are not: the reconcile observes again before it repeats one.
    /// Every attempt is counted.
    pub async fn call<T, E, F, Fut>(
        &self,
        service: Service,
        operation: &'static str,
        mut f: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let limiter = self.limits.for_call(service, operation);
        let read = is_read(operation);
        let mut throttles = 0;
        let mut transients = 0;
        let mut expired = 0;
        let session: session::SessionKey = (self.tenant.clone(), self.pipeline.clone());
        loop {
            limiter.acquire_as(&self.tenant).await;
            // A session assumed (or renewed) first: the fence is looked at
            // after it, just before the call goes out.
            if let Some(role) = &self.role {
                role.ensure(&session).await?;
            }
            if !read && !self.fence.is_open() {
                self.metrics.fenced_write();
                tracing::warn!(
                    service = service.as_str(),
                    operation,
                    "not the leader: AWS write refused, unsent"
                );
                return Err(AwsError::not_leader(service, operation));
            }
            self.metrics
                .aws_call(&self.account, service.as_str(), operation, read);
            if read && let Some(tally) = &self.tally {
                let (key, published) = quota::quota(service, operation);
                tally.read(key, published);
            }
            let started = std::time::Instant::now();
            let sent = f();
            let result = match &self.role {
                Some(_) => session::SESSION.scope(session.clone(), sent).await,
                None => sent.await,
            }
            .map_err(|e| AwsError::from_sdk(service, operation, e));
            self.metrics
                .aws_latency(service.as_str(), operation, started.elapsed().as_secs_f64());
            let Err(e) = result else {
                return result;
            };
            // Not-found answers to reads are how Sluice observes absence.
            if !(e.is_not_found() && read) {
                self.metrics.aws_error(
                    &self.account,
                    service.as_str(),
                    operation,
                    e.class.as_str(),
                );
            }
            // A session AWS says has expired (its clock is ahead of
            // ours) was not used: assume it again and send once more.
            if let Some(role) = &self.role
                && session::is_expired(&e)
                && expired == 0
            {
                expired += 1;
                role.forget(&session);
                continue;
            }
            match e.class {
                ErrorClass::Throttled if throttles < THROTTLE_RETRIES => {
                    throttles += 1;
                    limiter.throttled(throttles).await;
                }
                ErrorClass::Transient if read && transients < 2 => {
                    transients += 1;
                    tokio::time::sleep(Duration::from_millis(200 << transients)).await;
                }
                _ => return Err(e),
            }
        }
    }

    /// The same clients, writing only while `fence` is open.
    pub fn with_fence(self, fence: Fence) -> Aws {
        Aws { fence, ..self }
    }

    /// The same clients, calling for `tenant` (a pipeline's namespace): its
    /// calls take their turn with other tenants' at every quota bucket.
    pub fn for_tenant(&self, tenant: &str) -> Aws {
        Aws {
            tenant: Arc::from(tenant),
            ..self.clone()
        }
    }

    /// The same clients, calling for pipeline `name` of `namespace`: its
    /// namespace's turn at every quota bucket, and, with an account role,
    /// the pipeline's own session.
    pub fn for_pipeline(&self, namespace: &str, name: &str) -> Aws {
        Aws {
            tenant: Arc::from(namespace),
            pipeline: Arc::from(name),
            ..self.clone()
        }
    }

    /// The same clients, taking resources of kinds with an account-wide
    /// listing as unchanged where a listing at most `age` old says so
    /// ([`listing`]); `None`: reading every resource.
    pub fn with_listing_age(&self, age: Option<Duration>) -> Aws {
        Aws {
            listing_age: age,
            ..self.clone()
        }
    }

    /// The same clients, counting their reads by quota bucket in `tally`.
    pub fn with_tally(&self, tally: crate::pacing::Tally) -> Aws {
        Aws {
            tally: Some(tally),
            ..self.clone()
        }
    }

    /// The account role these clients act as (`None`: the operator's own
    /// identity).
    pub fn role(&self) -> Option<&crate::crd::AccountRole> {
        self.role.as_deref().map(session::AssumedRole::role)
    }

    /// The AWS partition of this region.
    pub fn partition(&self) -> &'static str {
        crate::iam::partition(&self.region)
    }

    /// The ARN of a regional resource of this account and region:
    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition(),
            self.region,
            self.account
        )
    }
}

/// One difference between desired and observed state, for events and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// Field that differs.
    pub field: &'static str,
    /// Desired value (redacted where it could hold a secret).
    pub want: String,
    /// Observed value (redacted likewise).
    pub have: String,
}

impl Drift {
    /// A drift of `field`. An optional value reads as its value, or
    /// `(unset)`: `Some(1024)` is an implementation's word, not AWS's.
    pub fn new(field: &'static str, want: impl fmt::Debug, have: impl fmt::Debug) -> Self {
        Drift {
            field,
            want: shown(&want),
            have: shown(&have),
        }
    }

    /// A drift whose values are not shown (environment variables may hold secrets).
    pub fn redacted(field: &'static str) -> Self {
        Drift {
            field,
            want: "(redacted)".into(),
            have: "(redacted)".into(),
        }
    }
}

/// `value` as a drift shows it: without the `Some(…)` of an optional.
fn shown(value: &impl fmt::Debug) -> String {
    let debug = format!("{value:?}");
    if debug == "None" {
        return "(unset)".into();
    }
    match debug
        .strip_prefix("Some(")
        .and_then(|d| d.strip_suffix(')'))
    {
        Some(inner) => inner.to_owned(),
        None => debug,
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} → {}", self.field, self.have, self.want)
    }
}

/// What converging one resource did, and the ARN found or created when the
/// plan could not derive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converged {
    /// What happened.
    pub outcome: Outcome,
    /// ARN learned from AWS.
    pub arn: Option<String>,
}

/// What converging one resource did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do.
    Unchanged,
    /// Created.
    Created,
    /// Updated these fields.
    Updated(Vec<String>),
    /// Found under our deterministic name, released (`Retain`) by a
    /// pipeline of this namespace and name, and adopted.
    Adopted,
}

/// One AWS resource kind. Desired values come from [`crate::plan`];
/// `observe` reads the resource by its AWS id; `diff` is pure.
#[allow(async_fn_in_trait)] // used with static dispatch inside this crate only
pub trait AwsResource {
    /// Desired state, from the plan.
    type Desired: Sync + std::fmt::Debug;
    /// Observed state.
    type Observed: Send;

    /// Kind in status and events.
    const KIND: crate::plan::Kind;

    /// AWS id of the desired resource.
    fn id(desired: &Self::Desired) -> &str;

    /// Logical name in the spec.
    fn logical(desired: &Self::Desired) -> &str;

    /// ARN of the desired resource, if it has one.
    fn arn(aws: &Aws, desired: &Self::Desired) -> Option<String>;

    /// Reads the resource; `None` when it does not exist.
    async fn observe(aws: &Aws, id: &str) -> Result<Option<Self::Observed>>;

    /// Whether the kind has an account-wide listing ([`listing`]): its
    /// writes and full reads are remembered for it.
    const LISTED: bool = false;

    /// For kinds with an account-wide listing ([`listing`]): a digest of
    /// everything [`Self::observe`] found that the listing shows too.
    fn fingerprint(_observed: &Self::Observed) -> Option<u64> {
        None
    }

    /// For kinds with an account-wide listing: the resource's fingerprint
    /// in a listing fresh enough for this pass ([`Aws::with_listing_age`]);
    /// `None` when the kind has no listing, the pass may not use one, or
    /// the listing does not have it (it is read instead). Kinds whose ARN
    /// comes from AWS ([`Self::observed_arn`]) have none.
    async fn listed(_aws: &Aws, _id: &str) -> Result<Option<u64>> {
        Ok(None)
    }

    /// The ownership tags found, or `None` for resources that carry no tags
    /// of their own (they belong to a resource that does).
    fn tags(observed: &Self::Observed) -> Option<&BTreeMap<String, String>>;

    /// What differs (tags included).
    fn diff(desired: &Self::Desired, observed: &Self::Observed) -> Vec<Drift>;

    /// Creates the resource. Returns its ARN when the plan could not derive
    /// it (an event source mapping's carries a UUID AWS chooses).
    async fn create(aws: &Aws, desired: &Self::Desired) -> Result<Option<String>>;

    /// The ARN found on an observed resource, for kinds whose ARN the plan
    /// cannot derive.
    fn observed_arn(_observed: &Self::Observed) -> Option<String> {
        None
    }

    /// Brings an existing resource to the desired state.
    async fn update(
        aws: &Aws,
        desired: &Self::Desired,
        observed: &Self::Observed,
        drift: &[Drift],
    ) -> Result<()>;

    /// Deletes the resource (it was observed and is ours).
    async fn delete(aws: &Aws, id: &str, observed: &Self::Observed) -> Result<()>;

    /// Leaves the resource (`Retain`): sets `marker` (the release marker
    /// naming the pipeline, [`PipelineId::release_marker`]) first, then
    /// removes Sluice's ownership tags, so a crash in between leaves it
    /// owned rather than unmarked.
    async fn release(
        aws: &Aws,
        id: &str,
        observed: &Self::Observed,
        marker: &BTreeMap<String, String>,
    ) -> Result<()>;
}

/// Why a found resource is not this pipeline's to change, for
/// [`Error::Conflict`]; `None` when it is.
fn refusal(
    kind: crate::plan::Kind,
    id: &str,
    pipeline: &PipelineId,
    ownership: &Ownership,
    recorded: bool,
) -> Option<String> {
    let kind = kind.as_str();
    match ownership {
        Ownership::Owned | Ownership::ReleasedToUs => None,
        Ownership::Unmarked if recorded => None,
        Ownership::Foreign { owner } => Some(format!(
            "{kind} {id} belongs to pipeline {owner} (its sluice.dev/pipeline-uid tag is not \
             this pipeline's); Sluice will not modify or delete it"
        )),
        Ownership::ReleasedByOther { by } => Some(format!(
            "{kind} {id} was released by pipeline {by} (tag {TAG_RELEASED_BY}={by}) and only \
             that pipeline may adopt it; Sluice will not modify or delete it"
        )),
        Ownership::ReleasedFromEarlierNamespace { by, namespace_uid } => Some(format!(
            "{kind} {id} was released by pipeline {by} in an earlier namespace of this name \
             ({}; this one is {}); a namespace made again under a departed team's name does not \
             adopt its resources by name; if it is this team's, the platform may allow \
             allow.adoptionFromEarlierNamespace in its SluicePolicy and the pipeline be annotated \
             {ADOPT_FROM_ANNOTATION}={}; Sluice will not modify or delete it",
            namespace_uid.as_deref().map_or(
                "a namespace UID not recorded, released by an earlier version".to_owned(),
                |u| format!("UID {u}")
            ),
            pipeline.namespace_uid,
            namespace_uid
                .as_deref()
                .unwrap_or("<the earlier namespace's UID>")
        )),
        Ownership::Unmarked => Some(format!(
            "{kind} {id} exists without Sluice's ownership tags or a release marker, so this \
             pipeline did not create it and will not adopt it by name; delete or rename it, or, \
             if it is this pipeline's, tag it {TAG_RELEASED_BY}={}",
            pipeline.pipeline_tag()
        )),
    }
}

/// Observes, diffs and applies one desired resource. `recorded`: the
/// pipeline's own inventory lists the resource (so it is ours even if its
/// tags were lost).
pub async fn converge<R: AwsResource>(
    aws: &Aws,
    pipeline: &PipelineId,
    desired: &R::Desired,
    recorded: bool,
) -> Result<Converged> {
    let id = R::id(desired);
    // A value AWS refuses names the resource it was for.
    let rejected = |e: Error| match e {
        Error::Aws(error) if error.is_rejected() => Error::Rejected {
            resource: format!("{} {}", R::KIND.as_str(), R::logical(desired)),
            error,
        },
        e => e,
    };
    // Unchanged in the account's listing since a full read found it as
    // desired: not read.
    if let Some(listed) = R::listed(aws, id).await?
        && aws.listings.verified(R::KIND, id) == Some((listed, listing::desired_digest(desired)))
    {
        return Ok(Converged {
            outcome: Outcome::Unchanged,
            arn: None,
        });
    }
    // What a listing must know of: only kinds that have one.
    let wrote = || {
        if R::LISTED {
            aws.listings.wrote(R::KIND, id);
        }
    };
    match R::observe(aws, id).await? {
        None => {
            wrote();
            let arn = R::create(aws, desired).await.map_err(rejected)?;
            Ok(Converged {
                outcome: Outcome::Created,
                arn,
            })
        }
        Some(observed) => {
            let arn = R::observed_arn(&observed);
            let converged = |outcome| Converged {
                outcome,
                arn: arn.clone(),
            };
            let ownership = R::tags(&observed).map(|t| pipeline.ownership(t));
            if let Some(reason) = ownership
                .as_ref()
                .and_then(|o| refusal(R::KIND, id, pipeline, o, recorded))
            {
                return Err(Error::Conflict(reason));
            }
            let adopted = ownership == Some(Ownership::ReleasedToUs);
            let drift = R::diff(desired, &observed);
            if drift.is_empty() {
                if let Some(fingerprint) = R::fingerprint(&observed) {
                    let wanted = listing::desired_digest(desired);
                    aws.listings.verify(R::KIND, id, fingerprint, wanted);
                }
                return Ok(converged(Outcome::Unchanged));
            }
            wrote();
            R::update(aws, desired, &observed, &drift)
                .await
                .map_err(rejected)?;
            if adopted {
                Ok(converged(Outcome::Adopted))
            } else {
                Ok(converged(Outcome::Updated(
                    drift.iter().map(|d| d.field.to_owned()).collect(),
                )))
            }
        }
    }
}

/// What converging one resource would do, found without writing
/// ([`preview`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preview {
    /// It exists as desired.
    Unchanged,
    /// It does not exist: it would be created.
    Create,
    /// It exists and these fields would change.
    Update(Vec<Drift>),
    /// It was released to this pipeline: it would be adopted, changing
    /// these fields.
    Adopt(Vec<Drift>),
    /// It exists but is not this pipeline's: converging would stop here.
    Conflict(String),
}

/// What [`converge`] would do to one resource, with the same reads, the
/// same ownership rule and the same diff, and no write.
pub async fn preview<R: AwsResource>(
    aws: &Aws,
    pipeline: &PipelineId,
    desired: &R::Desired,
    recorded: bool,
) -> Result<Preview> {
    let Some(observed) = R::observe(aws, R::id(desired)).await? else {
        return Ok(Preview::Create);
    };
    let ownership = R::tags(&observed).map(|t| pipeline.ownership(t));
    if let Some(reason) = ownership
        .as_ref()
        .and_then(|o| refusal(R::KIND, R::id(desired), pipeline, o, recorded))
    {
        return Ok(Preview::Conflict(reason));
    }
    let drift = R::diff(desired, &observed);
    Ok(if ownership == Some(Ownership::ReleasedToUs) {
        Preview::Adopt(drift)
    } else if drift.is_empty() {
        Preview::Unchanged
    } else {
        Preview::Update(drift)
    })
}

/// What deleting or releasing one resource did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// It was already gone.
    Absent,
    /// Deleted.
    Deleted,
    /// Ownership tags replaced by the release marker, resource kept.
    Released,
    /// Not this pipeline's (another's, released by another, or never
    /// marked): left alone, with the reason.
    Skipped(String),
}

/// Whether a resource with these tags is this pipeline's to delete or
/// release: owned by it, or listed in its inventory (`recorded`) with its
/// tags lost. `Err` says why not.
pub fn removable(
    pipeline: &PipelineId,
    tags: &BTreeMap<String, String>,
    recorded: bool,
) -> Result<(), String> {
    match pipeline.ownership(tags) {
        Ownership::Owned => Ok(()),
        Ownership::Unmarked if recorded => Ok(()),
        Ownership::ReleasedToUs => Err(format!(
            "released earlier by {} and not adopted since",
            pipeline.pipeline_ref()
        )),
        Ownership::Foreign { owner } => Err(format!("belongs to {owner}")),
        Ownership::ReleasedByOther { by } => Err(format!("released by {by}")),
        Ownership::ReleasedFromEarlierNamespace { by, .. } => {
            Err(format!("released by {by} in an earlier namespace"))
        }
        Ownership::Unmarked => Err("not marked as Sluice's".into()),
    }
}

/// Deletes (or, with `retain`, releases) one resource by id, if it is ours:
/// owned by this pipeline, or listed in its inventory (`recorded`) with its
/// tags lost. A resource released earlier under this pipeline's name but
/// not adopted since is left as it is.
pub async fn remove<R: AwsResource>(
    aws: &Aws,
    pipeline: &PipelineId,
    id: &str,
    retain: bool,
    recorded: bool,
) -> Result<Removal> {
    let observed = match R::observe(aws, id).await {
        Ok(Some(observed)) => observed,
        Ok(None) => return Ok(Removal::Absent),
        // Found under our name but not ours to read (a bucket of another
        // account): never deleted, and no reason to keep the pipeline.
        Err(Error::Conflict(why)) => return Ok(Removal::Skipped(why)),
        Err(e) => return Err(e),
    };
    if let Some(Err(why)) = R::tags(&observed).map(|t| removable(pipeline, t, recorded)) {
        return Ok(Removal::Skipped(why));
    }
    if R::LISTED {
        aws.listings.wrote(R::KIND, id);
    }
    if retain {
        R::release(aws, id, &observed, &pipeline.release_marker()).await?;
        Ok(Removal::Released)
    } else {
        R::delete(aws, id, &observed).await?;
        Ok(Removal::Deleted)
    }
}

/// Tag map difference: `(to set, keys to remove)` among Sluice's own keys.
pub(crate) fn tag_changes(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let set = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = have
        .keys()
        .filter(|k| k.starts_with("sluice.dev/") && !want.contains_key(*k))
        .cloned()
        .collect();
    (set, remove)
}

/// Drift entry for tags, when Sluice's tags differ.
pub(crate) fn tag_drift(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> Option<Drift> {
    let (set, remove) = tag_changes(want, have);
    (!set.is_empty() || !remove.is_empty()).then(|| Drift::new("tags", set, remove))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_sdk_lambda::operation::create_function::CreateFunctionError;

    use super::*;

    type Sdk<T> = std::result::Result<T, SdkError<CreateFunctionError, HttpResponse>>;

    fn offline(metrics: &Metrics) -> Aws {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        Aws::unconnected(&sdk, "us-east-1", QuotaConfig::default(), metrics.clone())
    }

    #[test]
    fn a_drift_reads_as_values_not_as_optionals() {
        assert_eq!(
            Drift::new("memoryMiB", 256, Some(1024)).to_string(),
            "memoryMiB: 1024 → 256"
        );
        assert_eq!(
            Drift::new("kmsKey", Some("arn:k"), None::<String>).to_string(),
            "kmsKey: (unset) → \"arn:k\""
        );
        assert_eq!(
            Drift::new("layers", vec!["a"], Vec::<String>::new()).to_string(),
            "layers: [] → [\"a\"]"
        );
    }

    #[tokio::test]
    async fn a_closed_fence_refuses_writes_unsent_and_lets_reads_through() {
        let metrics = Metrics::new();
        let fence = Fence::closed();
        let aws = offline(&metrics)
            .with_fence(fence.clone())
            .for_tenant("team-a");
        let sent = AtomicU32::new(0);
        let send = || async {
            sent.fetch_add(1, Ordering::SeqCst);
            Sdk::Ok(())
        };
        let e = aws
            .call(Service::Lambda, "CreateFunction", send)
            .await
            .expect_err("fenced");
        assert_eq!(e.class, ErrorClass::NotLeader);
        assert!(
            e.to_string()
                .starts_with("not the leader: lambda CreateFunction was not sent"),
            "{e}"
        );
        assert_eq!(sent.load(Ordering::SeqCst), 0, "not sent, not retried");
        assert_eq!(metrics.aws_totals(), (0, 0), "not counted as a call");
        assert!(
            metrics
                .render()
                .contains("sluice_leader_fenced_writes_total 1")
        );
        let error = Error::from(e);
        assert!(error.is_not_leader() && !error.is_stalled());

        aws.call(Service::Lambda, "GetFunction", send)
            .await
            .expect("a read");
        assert_eq!(sent.load(Ordering::SeqCst), 1);

        fence.open_until(tokio::time::Instant::now() + Duration::from_secs(10));
        aws.call(Service::Lambda, "CreateFunction", send)
            .await
            .expect("the leader writes");
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        assert_eq!(metrics.aws_totals(), (1, 1));
    }

    #[tokio::test]
    async fn without_leader_election_writes_are_never_fenced() {
        let metrics = Metrics::new();
        let aws = offline(&metrics);
        aws.call(Service::Lambda, "CreateFunction", || async { Sdk::Ok(()) })
            .await
            .expect("always open");
    }
}
