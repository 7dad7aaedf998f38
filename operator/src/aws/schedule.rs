//! EventBridge Scheduler schedules: expression, time zone, window, dates,
//! target with its role, input, retry policy and dead-letter queue. A
//! schedule takes no tags, so its ownership is written in its description
//! (`sluice.dev/pipeline-uid=...`) and read back from there: another
//! pipeline's schedule is never touched, as with tagged kinds.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_scheduler::{
    operation::get_schedule::GetScheduleOutput,
    types::{
        DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
        Target,
    },
};
use serde_json::Value;

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service};
use crate::{
    Error, Result,
    plan::{Kind, SchedulePlan, schedule::SCHEDULE_GROUP},
};

/// What the operator's AWS policy allows for schedules
/// ([`super::operator_policy`]): in the default group, which carries no
/// tags (a schedule's ownership is in its description). The role passed
/// to Scheduler is allowed in [`super::role::POLICY`].
pub const POLICY: &[Statement] = &[Statement::allow(
    "Schedules",
    Document::Services,
    &[
        Action::calls(Service::Scheduler, "CreateSchedule"),
        Action::calls(Service::Scheduler, "UpdateSchedule"),
        Action::calls(Service::Scheduler, "DeleteSchedule"),
        Action::calls(Service::Scheduler, "GetSchedule"),
    ],
    &["arn:aws:scheduler:*:ACCOUNT_ID:schedule/default/sluice-*"],
)];

/// The scheduler's default retry policy, what it reports when none was set.
const DEFAULT_RETRY: (i32, i32) = (185, 86_400);

/// A schedule as found, normalised to compare with a plan.
#[derive(Clone, Debug, Default)]
pub struct ObservedSchedule {
    /// Expression.
    pub expression: String,
    /// Time zone (UTC when unset).
    pub timezone: String,
    /// Flexible window in minutes (`None`: off).
    pub flexible_window_minutes: Option<i32>,
    /// Start date, epoch seconds.
    pub start: Option<i64>,
    /// End date, epoch seconds.
    pub end: Option<i64>,
    /// Target ARN.
    pub target_arn: String,
    /// Role ARN.
    pub role_arn: String,
    /// Input, parsed.
    pub input: Option<Value>,
    /// `(retries, event age)`, defaults filled in.
    pub retry: (i32, i32),
    /// Dead-letter queue ARN.
    pub dead_letter_arn: Option<String>,
    /// ENABLED.
    pub enabled: bool,
    /// Ownership read from the description.
    pub tags: BTreeMap<String, String>,
    /// The schedule as returned, to rewrite only its description on release.
    pub raw: Option<GetScheduleOutput>,
}

/// The schedule kind.
#[derive(Debug)]
pub struct Schedule;

/// The description that carries a schedule's ownership.
pub fn description(tags: &BTreeMap<String, String>) -> String {
    let marks: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("Sluice schedule (managed; do not edit) {}", marks.join(" "))
}

/// The ownership written in a description by [`description`].
pub fn tags_of(description: &str) -> BTreeMap<String, String> {
    description
        .split_whitespace()
        .filter(|w| w.starts_with("sluice.dev/"))
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn epoch(rfc3339: &Option<String>) -> Option<i64> {
    rfc3339
        .as_deref()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.timestamp())
}

fn window(minutes: Option<i32>) -> Result<FlexibleTimeWindow> {
    match minutes {
        Some(m) => FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Flexible)
            .maximum_window_in_minutes(m),
        None => FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off),
    }
    .build()
    .map_err(|e| Error::InvalidSpec(format!("schedule window: {e}")))
}

fn target(d: &SchedulePlan) -> Result<Target> {
    let (retries, age) = d.retry.unwrap_or(DEFAULT_RETRY);
    Target::builder()
        .arn(&d.target_arn)
        .role_arn(&d.role_arn)
        .input(&d.input)
        .retry_policy(
            RetryPolicy::builder()
                .maximum_retry_attempts(retries)
                .maximum_event_age_in_seconds(age)
                .build(),
        )
        .set_dead_letter_config(
            d.dead_letter_arn
                .as_ref()
                .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
        )
        .build()
        .map_err(|e| Error::InvalidSpec(format!("schedule target: {e}")))
}

fn date(d: Option<i64>) -> Option<aws_smithy_types::DateTime> {
    d.map(aws_smithy_types::DateTime::from_secs)
}

fn state(enabled: bool) -> ScheduleState {
    if enabled {
        ScheduleState::Enabled
    } else {
        ScheduleState::Disabled
    }
}

/// The scheduler checks that it can assume the role; a new role may not be
/// assumable for a few seconds.
fn write_error(e: super::AwsError, d: &SchedulePlan) -> Error {
    let message = e.message.clone().unwrap_or_default();
    if e.has_code("ValidationException") && message.contains("assume") {
        Error::Waiting {
            what: format!(
                "the scheduler to be able to assume the new role {}",
                d.role_arn
            ),
            after: Duration::from_secs(5),
        }
    } else if e.has_code("ConflictException") {
        Error::Waiting {
            what: format!("schedule {} is being changed", d.name),
            after: Duration::from_secs(2),
        }
    } else {
        e.into()
    }
}

impl AwsResource for Schedule {
    type Desired = SchedulePlan;
    type Observed = ObservedSchedule;
    const KIND: Kind = Kind::Schedule;

    fn id(desired: &SchedulePlan) -> &str {
        &desired.name
    }

    fn logical(desired: &SchedulePlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &SchedulePlan) -> Option<String> {
        Some(aws.arn(
            "scheduler",
            &format!("schedule/{SCHEDULE_GROUP}/{}", desired.name),
        ))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedSchedule>> {
        let out = match aws
            .call(Service::Scheduler, "GetSchedule", || {
                aws.scheduler
                    .get_schedule()
                    .name(id)
                    .group_name(SCHEDULE_GROUP)
                    .send()
            })
            .await
        {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let t = out.target();
        let retry = t.and_then(|t| t.retry_policy()).map_or(DEFAULT_RETRY, |r| {
            (
                r.maximum_retry_attempts().unwrap_or(DEFAULT_RETRY.0),
                r.maximum_event_age_in_seconds().unwrap_or(DEFAULT_RETRY.1),
            )
        });
        Ok(Some(ObservedSchedule {
            expression: out.schedule_expression().unwrap_or_default().to_owned(),
            timezone: out
                .schedule_expression_timezone()
                .filter(|z| !z.is_empty())
                .unwrap_or("UTC")
                .to_owned(),
            flexible_window_minutes: out
                .flexible_time_window()
                .filter(|w| *w.mode() == FlexibleTimeWindowMode::Flexible)
                .and_then(|w| w.maximum_window_in_minutes()),
            start: out.start_date().map(|d| d.secs()),
            end: out.end_date().map(|d| d.secs()),
            target_arn: t.map(|t| t.arn().to_owned()).unwrap_or_default(),
            role_arn: t.map(|t| t.role_arn().to_owned()).unwrap_or_default(),
            input: t
                .and_then(|t| t.input())
                .and_then(|i| serde_json::from_str(i).ok()),
            retry,
            dead_letter_arn: t
                .and_then(|t| t.dead_letter_config())
                .and_then(|d| d.arn())
                .map(str::to_owned),
            enabled: out.state() != Some(&ScheduleState::Disabled),
            tags: tags_of(out.description().unwrap_or_default()),
            raw: Some(out),
        }))
    }

    fn tags(observed: &ObservedSchedule) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &SchedulePlan, o: &ObservedSchedule) -> Vec<Drift> {
        let mut drift = Vec::new();
        let mut check = |field: &'static str, want: String, have: String| {
            if want != have {
                drift.push(Drift { field, want, have });
            }
        };
        check("expression", d.expression.clone(), o.expression.clone());
        check("timezone", d.timezone.clone(), o.timezone.clone());
        check(
            "flexibleWindowMinutes",
            format!("{:?}", d.flexible_window_minutes),
            format!("{:?}", o.flexible_window_minutes),
        );
        check(
            "startDate",
            format!("{:?}", epoch(&d.start_date)),
            format!("{:?}", o.start),
        );
        check(
            "endDate",
            format!("{:?}", epoch(&d.end_date)),
            format!("{:?}", o.end),
        );
        check("target", d.target_arn.clone(), o.target_arn.clone());
        check("role", d.role_arn.clone(), o.role_arn.clone());
        let input: Option<Value> = serde_json::from_str(&d.input).ok();
        check("input", format!("{input:?}"), format!("{:?}", o.input));
        check(
            "retry",
            format!("{:?}", d.retry.unwrap_or(DEFAULT_RETRY)),
            format!("{:?}", o.retry),
        );
        check(
            "deadLetter",
            format!("{:?}", d.dead_letter_arn),
            format!("{:?}", o.dead_letter_arn),
        );
        check("enabled", d.enabled.to_string(), o.enabled.to_string());
        if o.tags != d.tags {
            drift.push(Drift::new("tags", &d.tags, &o.tags));
        }
        drift
    }

    async fn create(aws: &Aws, d: &SchedulePlan) -> Result<Option<String>> {
        let (window, target) = (window(d.flexible_window_minutes)?, target(d)?);
        aws.call(Service::Scheduler, "CreateSchedule", || {
            aws.scheduler
                .create_schedule()
                .name(&d.name)
                .group_name(SCHEDULE_GROUP)
                .schedule_expression(&d.expression)
                .schedule_expression_timezone(&d.timezone)
                .flexible_time_window(window.clone())
                .set_start_date(date(epoch(&d.start_date)))
                .set_end_date(date(epoch(&d.end_date)))
                .target(target.clone())
                .state(state(d.enabled))
                .description(description(&d.tags))
                .send()
        })
        .await
        .map_err(|e| write_error(e, d))?;
        Ok(None)
    }

    async fn update(
        aws: &Aws,
        d: &SchedulePlan,
        _o: &ObservedSchedule,
        _drift: &[Drift],
    ) -> Result<()> {
        // UpdateSchedule replaces the whole schedule.
        let (window, target) = (window(d.flexible_window_minutes)?, target(d)?);
        aws.call(Service::Scheduler, "UpdateSchedule", || {
            aws.scheduler
                .update_schedule()
                .name(&d.name)
                .group_name(SCHEDULE_GROUP)
                .schedule_expression(&d.expression)
                .schedule_expression_timezone(&d.timezone)
                .flexible_time_window(window.clone())
                .set_start_date(date(epoch(&d.start_date)))
                .set_end_date(date(epoch(&d.end_date)))
                .target(target.clone())
                .state(state(d.enabled))
                .description(description(&d.tags))
                .send()
        })
        .await
        .map_err(|e| write_error(e, d))?;
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedSchedule) -> Result<()> {
        match aws
            .call(Service::Scheduler, "DeleteSchedule", || {
                aws.scheduler
                    .delete_schedule()
                    .name(id)
                    .group_name(SCHEDULE_GROUP)
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
        aws: &Aws,
        id: &str,
        o: &ObservedSchedule,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        // Everything as found but the description: only the marker.
        let Some(raw) = &o.raw else { return Ok(()) };
        let Some(found) = raw.target().cloned() else {
            return Ok(());
        };
        let found_window = raw.flexible_time_window().cloned();
        aws.call(Service::Scheduler, "UpdateSchedule", || {
            aws.scheduler
                .update_schedule()
                .name(id)
                .group_name(SCHEDULE_GROUP)
                .set_schedule_expression(raw.schedule_expression().map(str::to_owned))
                .set_schedule_expression_timezone(
                    raw.schedule_expression_timezone().map(str::to_owned),
                )
                .set_flexible_time_window(found_window.clone())
                .set_start_date(raw.start_date().cloned())
                .set_end_date(raw.end_date().cloned())
                .target(found.clone())
                .set_state(raw.state().cloned())
                .description(description(marker))
                .send()
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{TAG_PIPELINE_UID, TAG_RELEASED_BY};

    #[test]
    fn ownership_round_trips_through_the_description() {
        let tags = BTreeMap::from([
            (TAG_PIPELINE_UID.to_owned(), "uid-1".to_owned()),
            ("sluice.dev/pipeline".to_owned(), "ns/p".to_owned()),
        ]);
        let text = description(&tags);
        assert!(text.len() <= 512, "{text}");
        assert_eq!(tags_of(&text), tags);
        let marker = BTreeMap::from([(TAG_RELEASED_BY.to_owned(), "ns/p".to_owned())]);
        assert_eq!(tags_of(&description(&marker)), marker);
        assert!(tags_of("a schedule someone else made").is_empty());
    }

    fn plan() -> SchedulePlan {
        SchedulePlan {
            logical: "daily".into(),
            name: "s".into(),
            expression: "cron(0 1 * * ? *)".into(),
            timezone: "UTC".into(),
            flexible_window_minutes: None,
            start_date: Some("2027-01-01T00:00:00Z".into()),
            end_date: None,
            target_arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
            role_arn: "arn:aws:iam::1:role/r".into(),
            input: r#"{"a": 1}"#.into(),
            retry: None,
            dead_letter_arn: None,
            enabled: true,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn the_schedulers_defaults_and_date_forms_are_no_drift() {
        let d = plan();
        let o = ObservedSchedule {
            expression: d.expression.clone(),
            timezone: "UTC".into(),
            flexible_window_minutes: None,
            start: epoch(&Some("2027-01-01T01:00:00+01:00".into())),
            end: None,
            target_arn: d.target_arn.clone(),
            role_arn: d.role_arn.clone(),
            input: Some(serde_json::json!({"a": 1})),
            retry: DEFAULT_RETRY,
            dead_letter_arn: None,
            enabled: true,
            tags: BTreeMap::new(),
            raw: None,
        };
        assert_eq!(Schedule::diff(&d, &o), vec![]);
        let changed = ObservedSchedule {
            expression: "rate(1 day)".into(),
            ..o
        };
        let fields: Vec<_> = Schedule::diff(&d, &changed)
            .iter()
            .map(|x| x.field)
            .collect();
        assert_eq!(fields, ["expression"]);
    }
}
