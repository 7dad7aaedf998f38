//! EventBridge Scheduler schedules.
//!
//! | AWS rule (CreateSchedule / UpdateSchedule) | Where | Reference |
//! |---|---|---|
//! | `rate(n unit)` with n ≥ 1 and a unit that agrees with it; `cron(...)` of six fields (day-of-month or day-of-week `?`); `at(yyyy-mm-ddThh:mm:ss)` of a date that exists | here (`schedule_expression::check`) | ScheduleExpression |
//! | An IANA time zone | here | ScheduleExpressionTimezone |
//! | Start and end dates exist (no 30 February) and the end is after the start | here | StartDate, EndDate |
//! | Exactly one target; a queue target is standard (FIFO needs a message group Sluice does not send) | here | Target |
//! | A dead-letter queue is declared and standard | here | DeadLetterConfig |
//! | Input at most 8,192 characters | here | Target.Input |
//! | Flexible window 1 to 1,440 minutes | CRD schema | FlexibleTimeWindow |
//! | A free-form input nests at most [`MAX_FREE_FORM_DEPTH`](crate::crd::MAX_FREE_FORM_DEPTH) levels | admission and here | Sluice's own limit |

use std::collections::BTreeSet;

use super::{Declared, check_depth};
use crate::crd::DataPipelineSpec;

pub(super) fn validate_schedules(
    spec: &DataPipelineSpec,
    functions: &Declared<'_>,
    workflows: &Declared<'_>,
    queues: &Declared<'_>,
    fifo: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    for (i, s) in spec.schedules.iter().enumerate() {
        let at = format!("spec.schedules[{i}]");
        if let Err(e) = crate::schedule_expression::check(&s.expression) {
            problems.push(format!("{at}.expression: {e}"));
        }
        if !crate::schedule_expression::is_timezone(&s.timezone) {
            problems.push(format!(
                "{at}.timezone: {:?} is not an IANA time zone; e.g. UTC, Europe/Paris",
                s.timezone
            ));
        }
        let t = &s.target;
        match (&t.function, &t.workflow, &t.queue) {
            (Some(f), None, None) if !functions.has(f) => problems.push(format!(
                "{at}.target.function: {f:?} is not declared in spec.functions ({})",
                functions.hint()
            )),
            (None, Some(w), None) if !workflows.has(w) => problems.push(format!(
                "{at}.target.workflow: {w:?} is not declared in spec.workflows ({})",
                workflows.hint()
            )),
            (None, None, Some(q)) if !queues.has(q) => problems.push(format!(
                "{at}.target.queue: {q:?} is not declared in spec.queues ({})",
                queues.hint()
            )),
            (None, None, Some(q)) if fifo.contains(q.as_str()) => problems.push(format!(
                "{at}.target.queue: {q:?} is a FIFO queue; a schedule sends to standard queues"
            )),
            (Some(_), None, None) | (None, Some(_), None) | (None, None, Some(_)) => {}
            _ => problems.push(format!(
                "{at}.target: name exactly one of function, workflow or queue"
            )),
        }
        if let Some(d) = &s.dead_letter {
            if !queues.has(&d.queue) {
                problems.push(format!(
                    "{at}.deadLetter.queue: {:?} is not declared in spec.queues ({})",
                    d.queue,
                    queues.hint()
                ));
            } else if fifo.contains(d.queue.as_str()) {
                problems.push(format!(
                    "{at}.deadLetter.queue: {:?} is a FIFO queue; the scheduler sends failed \
                     runs to standard queues",
                    d.queue
                ));
            }
        }
        // The schema's pattern admits 30 February: a date that does not
        // parse is refused here, never dropped on the way to AWS.
        let mut when = |field: &str, d: &Option<String>| {
            let d = d.as_deref()?;
            match chrono::DateTime::parse_from_rfc3339(d) {
                Ok(t) => Some(t),
                Err(_) => {
                    problems.push(format!(
                        "{at}.{field}: {d:?} is not a date and time that exists: RFC 3339, \
                         e.g. 2027-02-01T00:00:00Z"
                    ));
                    None
                }
            }
        };
        let (start, end) = (
            when("startDate", &s.start_date),
            when("endDate", &s.end_date),
        );
        if let (Some(start), Some(end)) = (start, end)
            && start >= end
        {
            problems.push(format!(
                "{at}.endDate: {} is not after startDate {}",
                end.to_rfc3339(),
                start.to_rfc3339()
            ));
        }
        if let Some(input) = &s.input
            && check_depth(&format!("{at}.input"), input, problems)
            && input.to_string().len() > 8192
        {
            problems.push(format!(
                "{at}.input: over 8,192 characters as JSON, the scheduler's limit"
            ));
        }
    }
}
