//! A function's asynchronous invocation settings: retries, the oldest event
//! still tried, and the queue that receives events that failed every
//! attempt. It carries no tags: it belongs to the function, whose
//! ownership was checked first.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_lambda::types::{DestinationConfig, OnFailure};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service};
use crate::{
    Error, Result,
    plan::{InvokeConfigPlan, Kind},
};

/// What the operator's AWS policy allows for functions' event invoke
/// configurations ([`super::operator_policy`]): part of the functions'
/// statement.
pub const POLICY: &[Statement] = &[Statement::allow(
    "Functions",
    Document::Services,
    &[
        Action::calls(Service::Lambda, "GetFunctionEventInvokeConfig"),
        Action::calls(Service::Lambda, "PutFunctionEventInvokeConfig"),
        Action::calls(Service::Lambda, "DeleteFunctionEventInvokeConfig"),
    ],
    super::function::FUNCTIONS,
)];

/// The settings as found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedInvokeConfig {
    /// Retries.
    pub maximum_retry_attempts: Option<i32>,
    /// Oldest event, in seconds.
    pub maximum_event_age_seconds: Option<i32>,
    /// Failure destination ARN.
    pub on_failure_arn: Option<String>,
}

/// The event invoke configuration kind.
#[derive(Debug)]
pub struct InvokeConfig;

async fn put(aws: &Aws, d: &InvokeConfigPlan) -> Result<()> {
    let destinations = d.on_failure_arn.as_ref().map(|arn| {
        DestinationConfig::builder()
            .on_failure(OnFailure::builder().destination(arn).build())
            .build()
    });
    aws.call(Service::Lambda, "PutFunctionEventInvokeConfig", || {
        aws.lambda
            .put_function_event_invoke_config()
            .function_name(&d.function)
            .maximum_retry_attempts(d.maximum_retry_attempts)
            .maximum_event_age_in_seconds(d.maximum_event_age_seconds)
            .set_destination_config(destinations.clone())
            .send()
    })
    .await
    .map_err(|e| settle(e, d))?;
    Ok(())
}

/// Lambda checks that the execution role may send to the on-failure
/// destination; a grant written seconds ago may not be visible to it yet
/// (seen at 1,000 pipelines: the role's policy and this call a moment
/// apart).
fn settle(e: super::AwsError, d: &InvokeConfigPlan) -> Error {
    if e.is_role_not_yet_usable() {
        Error::Waiting {
            what: format!(
                "the execution role of {} to be allowed its on-failure destination (IAM propagates in seconds)",
                d.function
            ),
            after: Duration::from_secs(5),
        }
    } else {
        e.into()
    }
}

impl AwsResource for InvokeConfig {
    type Desired = InvokeConfigPlan;
    type Observed = ObservedInvokeConfig;
    const KIND: Kind = Kind::InvokeConfig;

    fn id(desired: &InvokeConfigPlan) -> &str {
        &desired.function
    }

    fn logical(desired: &InvokeConfigPlan) -> &str {
        &desired.logical
    }

    fn arn(_aws: &Aws, _desired: &InvokeConfigPlan) -> Option<String> {
        None
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedInvokeConfig>> {
        match aws
            .call(Service::Lambda, "GetFunctionEventInvokeConfig", || {
                aws.lambda
                    .get_function_event_invoke_config()
                    .function_name(id)
                    .send()
            })
            .await
        {
            Ok(out) => Ok(Some(ObservedInvokeConfig {
                maximum_retry_attempts: out.maximum_retry_attempts(),
                maximum_event_age_seconds: out.maximum_event_age_in_seconds(),
                on_failure_arn: out
                    .destination_config()
                    .and_then(|d| d.on_failure())
                    .and_then(|f| f.destination())
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn tags(_observed: &ObservedInvokeConfig) -> Option<&BTreeMap<String, String>> {
        None
    }

    fn diff(d: &InvokeConfigPlan, o: &ObservedInvokeConfig) -> Vec<Drift> {
        let mut drift = Vec::new();
        if o.maximum_retry_attempts != Some(d.maximum_retry_attempts) {
            drift.push(Drift::new(
                "maximumRetryAttempts",
                d.maximum_retry_attempts,
                o.maximum_retry_attempts,
            ));
        }
        if o.maximum_event_age_seconds != Some(d.maximum_event_age_seconds) {
            drift.push(Drift::new(
                "maximumEventAgeSeconds",
                d.maximum_event_age_seconds,
                o.maximum_event_age_seconds,
            ));
        }
        if o.on_failure_arn != d.on_failure_arn {
            drift.push(Drift::new(
                "onFailure",
                &d.on_failure_arn,
                &o.on_failure_arn,
            ));
        }
        drift
    }

    async fn create(aws: &Aws, d: &InvokeConfigPlan) -> Result<Option<String>> {
        put(aws, d).await?;
        Ok(None)
    }

    async fn update(
        aws: &Aws,
        d: &InvokeConfigPlan,
        _o: &ObservedInvokeConfig,
        _drift: &[Drift],
    ) -> Result<()> {
        put(aws, d).await
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedInvokeConfig) -> Result<()> {
        match aws
            .call(Service::Lambda, "DeleteFunctionEventInvokeConfig", || {
                aws.lambda
                    .delete_function_event_invoke_config()
                    .function_name(id)
                    .send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(
        _aws: &Aws,
        _id: &str,
        _o: &ObservedInvokeConfig,
        _marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        // No tags of its own; a retained function keeps its settings.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_the_role_may_not_reach_yet_is_waited_for() {
        let error = |message: &str| super::super::AwsError {
            service: Service::Lambda,
            operation: "PutFunctionEventInvokeConfig",
            code: Some("InvalidParameterValueException".into()),
            message: Some(message.into()),
            status: Some(400),
            class: super::super::ErrorClass::Client,
        };
        let plan = InvokeConfigPlan {
            logical: "router".into(),
            function: "sluice-team-a-orders-router-0123".into(),
            maximum_retry_attempts: 2,
            maximum_event_age_seconds: 3600,
            on_failure_arn: Some("arn:aws:sqs:us-east-1:123456789012:q".into()),
        };
        let not_yet = error(
            "The function execution role does not have permissions to call SendMessage on arn:aws:sqs:us-east-1:123456789012:q",
        );
        assert!(matches!(settle(not_yet, &plan), Error::Waiting { .. }));
        let bad = error("MaximumRetryAttempts must be between 0 and 2");
        assert!(matches!(settle(bad, &plan), Error::Aws(_)));
    }
}
