//! Lambda event source mappings (a queue or a stream feeding a function),
//! converged as a first-class resource: found again by the pair (function,
//! source), which Lambda keeps unique, so a lost status write cannot
//! orphan one; its UUID goes into the inventory's ARN. Every field Sluice
//! sets is compared after filling in Lambda's server-side defaults, so a
//! default AWS reports never reads as drift. The starting position only
//! matters when the mapping is created and is not compared.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_lambda::types::{
    DestinationConfig, EventSourceMappingConfiguration, EventSourcePosition, FunctionResponseType,
    OnFailure, ScalingConfig,
};

use super::operator_policy::{Action, Condition, Document, Statement};
use super::{Aws, AwsResource, Drift, Service};
use crate::{
    Error, Result,
    plan::{EventSourceMappingPlan, Kind, function::SourceKind},
};

/// What the operator's AWS policy allows for event source mappings
/// ([`super::operator_policy`]): a mapping's ARN names only its UUID, so
/// the function it invokes is the condition. Listing is authorized on `*`
/// only.
pub const POLICY: &[Statement] = &[
    Statement::allow(
        "EventSourceMappings",
        Document::Services,
        &[
            Action::calls(Service::Lambda, "CreateEventSourceMapping"),
            Action::calls(Service::Lambda, "UpdateEventSourceMapping"),
            Action::calls(Service::Lambda, "DeleteEventSourceMapping"),
        ],
        &["arn:aws:lambda:*:ACCOUNT_ID:event-source-mapping:*"],
    )
    .when(&[Condition::one(
        "ArnLike",
        "lambda:FunctionArn",
        "arn:aws:lambda:*:ACCOUNT_ID:function:sluice-*",
    )]),
    Statement::allow(
        "ListEventSourceMappings",
        Document::Services,
        &[Action::calls(Service::Lambda, "ListEventSourceMappings")],
        &["*"],
    ),
];

/// A mapping as found, with Lambda's defaults filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedMapping {
    /// UUID.
    pub uuid: String,
    /// Mapping ARN.
    pub arn: Option<String>,
    /// `Creating`, `Enabled`, `Updating`, ...
    pub state: String,
    /// Batch size.
    pub batch_size: Option<i32>,
    /// Batching window (0 when unset).
    pub batching_window_seconds: i32,
    /// Most concurrent invocations (queues).
    pub max_concurrency: Option<i32>,
    /// `ReportBatchItemFailures` is on.
    pub report_batch_item_failures: bool,
    /// Bisect on error (streams; false when unset).
    pub bisect_on_error: bool,
    /// Retries (streams; -1 when unset).
    pub maximum_retry_attempts: i32,
    /// Oldest record (streams; -1 when unset).
    pub maximum_record_age_seconds: i32,
    /// Batches per shard (streams; 1 when unset).
    pub parallelization_factor: i32,
    /// Failure destination.
    pub on_failure_arn: Option<String>,
}

/// The event source mapping kind.
#[derive(Debug)]
pub struct EventSourceMapping;

fn split(id: &str) -> (&str, &str) {
    id.split_once('|').unwrap_or((id, ""))
}

fn from_aws(m: &EventSourceMappingConfiguration) -> ObservedMapping {
    ObservedMapping {
        uuid: m.uuid().unwrap_or_default().to_owned(),
        arn: m.event_source_mapping_arn().map(str::to_owned),
        state: m.state().unwrap_or("Enabled").to_owned(),
        batch_size: m.batch_size(),
        batching_window_seconds: m.maximum_batching_window_in_seconds().unwrap_or(0),
        max_concurrency: m.scaling_config().and_then(|s| s.maximum_concurrency()),
        report_batch_item_failures: m
            .function_response_types()
            .contains(&FunctionResponseType::ReportBatchItemFailures),
        bisect_on_error: m.bisect_batch_on_function_error().unwrap_or(false),
        maximum_retry_attempts: m.maximum_retry_attempts().unwrap_or(-1),
        maximum_record_age_seconds: m.maximum_record_age_in_seconds().unwrap_or(-1),
        parallelization_factor: m.parallelization_factor().unwrap_or(1),
        on_failure_arn: m
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination())
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
    }
}

/// The values Lambda will report for the plan: stream-only settings take
/// their defaults for queues.
fn expected(d: &EventSourceMappingPlan) -> ObservedMapping {
    ObservedMapping {
        batch_size: Some(d.batch_size),
        batching_window_seconds: d.batching_window_seconds,
        max_concurrency: d.max_concurrency,
        report_batch_item_failures: d.report_batch_item_failures,
        bisect_on_error: d.bisect_on_error.unwrap_or(false),
        maximum_retry_attempts: d.maximum_retry_attempts.unwrap_or(-1),
        maximum_record_age_seconds: d.maximum_record_age_seconds.unwrap_or(-1),
        parallelization_factor: d.parallelization_factor.unwrap_or(1),
        on_failure_arn: d.on_failure_arn.clone(),
        ..ObservedMapping::default()
    }
}

fn response_types(d: &EventSourceMappingPlan) -> Vec<FunctionResponseType> {
    if d.report_batch_item_failures {
        vec![FunctionResponseType::ReportBatchItemFailures]
    } else {
        Vec::new()
    }
}

fn destinations(d: &EventSourceMappingPlan) -> Option<DestinationConfig> {
    (d.source == SourceKind::Stream).then(|| {
        DestinationConfig::builder()
            .on_failure(
                OnFailure::builder()
                    .set_destination(d.on_failure_arn.clone())
                    .build(),
            )
            .build()
    })
}

fn scaling(d: &EventSourceMappingPlan) -> Option<ScalingConfig> {
    (d.source == SourceKind::Queue).then(|| {
        ScalingConfig::builder()
            .set_maximum_concurrency(d.max_concurrency)
            .build()
    })
}

/// Lambda checks the execution role when a mapping is created or changed;
/// a grant written seconds ago may not be visible to it yet.
fn settle(e: super::AwsError, d: &EventSourceMappingPlan) -> Error {
    if e.is_role_not_yet_usable() {
        Error::Waiting {
            what: format!(
                "the execution role of {} to be usable with {} (IAM propagates in seconds)",
                d.function, d.source_arn
            ),
            after: Duration::from_secs(5),
        }
    } else if e.has_code("ResourceInUseException") || e.has_code("ResourceConflictException") {
        Error::Waiting {
            what: format!(
                "the mapping from {} to {} to finish its last change",
                d.source_arn, d.function
            ),
            after: Duration::from_secs(3),
        }
    } else {
        e.into()
    }
}

impl AwsResource for EventSourceMapping {
    type Desired = EventSourceMappingPlan;
    type Observed = ObservedMapping;
    const KIND: Kind = Kind::EventSourceMapping;

    fn id(desired: &EventSourceMappingPlan) -> &str {
        &desired.id
    }

    fn logical(desired: &EventSourceMappingPlan) -> &str {
        &desired.logical
    }

    fn arn(_aws: &Aws, _desired: &EventSourceMappingPlan) -> Option<String> {
        None
    }

    fn observed_arn(observed: &ObservedMapping) -> Option<String> {
        observed.arn.clone()
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedMapping>> {
        let (function, source) = split(id);
        let out = match aws
            .call(Service::Lambda, "ListEventSourceMappings", || {
                aws.lambda
                    .list_event_source_mappings()
                    .function_name(function)
                    .event_source_arn(source)
                    .send()
            })
            .await
        {
            Ok(out) => out,
            // The function is gone, and its mappings with it.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(out
            .event_source_mappings()
            .iter()
            .find(|m| m.event_source_arn() == Some(source))
            .map(from_aws))
    }

    fn tags(_observed: &ObservedMapping) -> Option<&BTreeMap<String, String>> {
        // Owned through the function it feeds, whose ownership was checked.
        None
    }

    fn diff(d: &EventSourceMappingPlan, o: &ObservedMapping) -> Vec<Drift> {
        let want = expected(d);
        let mut drift = Vec::new();
        let mut check = |field: &'static str, want: String, have: String| {
            if want != have {
                drift.push(Drift { field, want, have });
            }
        };
        check(
            "batchSize",
            format!("{:?}", want.batch_size),
            format!("{:?}", o.batch_size),
        );
        check(
            "batchingWindowSeconds",
            want.batching_window_seconds.to_string(),
            o.batching_window_seconds.to_string(),
        );
        check(
            "maxConcurrency",
            format!("{:?}", want.max_concurrency),
            format!("{:?}", o.max_concurrency),
        );
        check(
            "reportBatchItemFailures",
            want.report_batch_item_failures.to_string(),
            o.report_batch_item_failures.to_string(),
        );
        if d.source == SourceKind::Stream {
            check(
                "bisectOnError",
                want.bisect_on_error.to_string(),
                o.bisect_on_error.to_string(),
            );
            check(
                "maximumRetryAttempts",
                want.maximum_retry_attempts.to_string(),
                o.maximum_retry_attempts.to_string(),
            );
            check(
                "maximumRecordAgeSeconds",
                want.maximum_record_age_seconds.to_string(),
                o.maximum_record_age_seconds.to_string(),
            );
            check(
                "parallelizationFactor",
                want.parallelization_factor.to_string(),
                o.parallelization_factor.to_string(),
            );
            check(
                "onFailure",
                format!("{:?}", want.on_failure_arn),
                format!("{:?}", o.on_failure_arn),
            );
        }
        drift
    }

    async fn create(aws: &Aws, d: &EventSourceMappingPlan) -> Result<Option<String>> {
        let stream = d.source == SourceKind::Stream;
        let out = aws
            .call(Service::Lambda, "CreateEventSourceMapping", || {
                aws.lambda
                    .create_event_source_mapping()
                    .function_name(&d.function)
                    .event_source_arn(&d.source_arn)
                    .batch_size(d.batch_size)
                    .maximum_batching_window_in_seconds(d.batching_window_seconds)
                    .set_scaling_config(scaling(d).filter(|_| d.max_concurrency.is_some()))
                    .set_function_response_types(Some(response_types(d)))
                    .set_starting_position(
                        d.starting_position
                            .map(|p| EventSourcePosition::from(p.as_aws())),
                    )
                    .set_bisect_batch_on_function_error(d.bisect_on_error.filter(|_| stream))
                    .set_maximum_retry_attempts(d.maximum_retry_attempts.filter(|_| stream))
                    .set_maximum_record_age_in_seconds(
                        d.maximum_record_age_seconds.filter(|_| stream),
                    )
                    .set_parallelization_factor(d.parallelization_factor.filter(|_| stream))
                    .set_destination_config(destinations(d).filter(|_| d.on_failure_arn.is_some()))
                    .send()
            })
            .await
            .map_err(|e| settle(e, d))?;
        Ok(out.event_source_mapping_arn().map(str::to_owned))
    }

    async fn update(
        aws: &Aws,
        d: &EventSourceMappingPlan,
        o: &ObservedMapping,
        _drift: &[Drift],
    ) -> Result<()> {
        if matches!(
            o.state.as_str(),
            "Creating" | "Updating" | "Enabling" | "Disabling"
        ) {
            return Err(Error::Waiting {
                what: format!(
                    "the mapping from {} to {} is {}",
                    d.source_arn, d.function, o.state
                ),
                after: Duration::from_secs(3),
            });
        }
        let stream = d.source == SourceKind::Stream;
        aws.call(Service::Lambda, "UpdateEventSourceMapping", || {
            aws.lambda
                .update_event_source_mapping()
                .uuid(&o.uuid)
                .batch_size(d.batch_size)
                .maximum_batching_window_in_seconds(d.batching_window_seconds)
                .set_scaling_config(scaling(d))
                .set_function_response_types(Some(response_types(d)))
                .set_bisect_batch_on_function_error(d.bisect_on_error.filter(|_| stream))
                .set_maximum_retry_attempts(d.maximum_retry_attempts.filter(|_| stream))
                .set_maximum_record_age_in_seconds(d.maximum_record_age_seconds.filter(|_| stream))
                .set_parallelization_factor(d.parallelization_factor.filter(|_| stream))
                .set_destination_config(destinations(d))
                .send()
        })
        .await
        .map_err(|e| settle(e, d))?;
        Ok(())
    }

    async fn delete(aws: &Aws, _id: &str, o: &ObservedMapping) -> Result<()> {
        match aws
            .call(Service::Lambda, "DeleteEventSourceMapping", || {
                aws.lambda
                    .delete_event_source_mapping()
                    .uuid(&o.uuid)
                    .send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) if e.has_code("ResourceInUseException") => Err(Error::Waiting {
                what: format!("event source mapping {} is changing", o.uuid),
                after: Duration::from_secs(3),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(
        _aws: &Aws,
        _id: &str,
        _o: &ObservedMapping,
        _marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        // No tags of its own; a retained function keeps its sources.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::StartingPosition;

    fn queue_plan() -> EventSourceMappingPlan {
        EventSourceMappingPlan {
            logical: "p".into(),
            id: "fn|arn:aws:sqs:us-east-1:1:q".into(),
            function: "fn".into(),
            source_arn: "arn:aws:sqs:us-east-1:1:q".into(),
            source: SourceKind::Queue,
            batch_size: 10,
            batching_window_seconds: 0,
            max_concurrency: None,
            report_batch_item_failures: true,
            starting_position: None,
            bisect_on_error: None,
            maximum_retry_attempts: None,
            maximum_record_age_seconds: None,
            parallelization_factor: None,
            on_failure_arn: None,
        }
    }

    fn stream_plan() -> EventSourceMappingPlan {
        EventSourceMappingPlan {
            source: SourceKind::Stream,
            source_arn: "arn:aws:kinesis:us-east-1:1:stream/s".into(),
            batch_size: 100,
            batching_window_seconds: 60,
            starting_position: Some(StartingPosition::Latest),
            bisect_on_error: Some(true),
            maximum_retry_attempts: Some(3),
            maximum_record_age_seconds: Some(-1),
            parallelization_factor: Some(1),
            on_failure_arn: Some("arn:aws:sqs:us-east-1:1:failed".into()),
            ..queue_plan()
        }
    }

    #[test]
    fn a_queue_mapping_as_lambda_reports_it_has_no_drift() {
        // Lambda reports no stream settings and a zero window for queues.
        let o = ObservedMapping {
            uuid: "u".into(),
            state: "Enabled".into(),
            batch_size: Some(10),
            report_batch_item_failures: true,
            maximum_retry_attempts: -1,
            maximum_record_age_seconds: -1,
            parallelization_factor: 1,
            ..ObservedMapping::default()
        };
        assert_eq!(EventSourceMapping::diff(&queue_plan(), &o), vec![]);
    }

    #[test]
    fn every_stream_field_is_compared() {
        let d = stream_plan();
        let mut o = expected(&d);
        assert_eq!(EventSourceMapping::diff(&d, &o), vec![]);
        o.batch_size = Some(500);
        o.bisect_on_error = false;
        o.on_failure_arn = None;
        let fields: Vec<_> = EventSourceMapping::diff(&d, &o)
            .iter()
            .map(|x| x.field)
            .collect();
        assert_eq!(fields, ["batchSize", "bisectOnError", "onFailure"]);
    }

    #[test]
    fn a_role_lambda_cannot_use_yet_is_waited_for() {
        let error = |code: &str, message: &str| super::super::AwsError {
            service: super::super::Service::Lambda,
            operation: "CreateEventSourceMapping",
            code: Some(code.into()),
            message: Some(message.into()),
            status: Some(400),
            class: super::super::ErrorClass::Client,
        };
        let not_yet = error(
            "InvalidParameterValueException",
            "The provided execution role does not have permissions to call ReceiveMessage on SQS",
        );
        assert!(matches!(
            settle(not_yet, &queue_plan()),
            Error::Waiting { .. }
        ));
        let busy = error("ResourceInUseException", "The mapping is being updated");
        assert!(matches!(settle(busy, &queue_plan()), Error::Waiting { .. }));
        let bad = error("InvalidParameterValueException", "BatchSize out of range");
        assert!(matches!(settle(bad, &queue_plan()), Error::Aws(_)));
    }

    #[test]
    fn ids_carry_function_and_source() {
        assert_eq!(
            split(&EventSourceMappingPlan::id_of("fn", "arn:aws:sqs:r:1:q")),
            ("fn", "arn:aws:sqs:r:1:q")
        );
    }
}
