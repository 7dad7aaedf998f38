//! EventBridge Scheduler expressions and time zones, checked the same way
//! at admission (the CRD's CEL rules are generated from the patterns here)
//! and by the operator (the same patterns, compiled with `regex`), so the
//! two never disagree.
//!
//! - `cron(minutes hours day-of-month month day-of-week year)`: minutes
//!   0–59, hours 0–23, day-of-month 1–31 (or `?`, `L`, `LW`, `<n>W`), month
//!   1–12 or `JAN`–`DEC`, day-of-week 1–7 or `SUN`–`SAT` (or `?`, `L`,
//!   `<d>L`, `<d>#<n>`), year 1970–2199; each field also `*`, ranges
//!   `a-b`, steps `/n` and lists `a,b`; one of the two day fields is `?`.
//! - `rate(<n> <unit>)`: `minute`, `hour` or `day` for 1, the plural above.
//! - `at(yyyy-mm-ddThh:mm:ss)`.

use std::sync::LazyLock;

use regex::Regex;
use schemars::{Schema, SchemaGenerator, json_schema};

fn list(item: &str) -> String {
    let one = format!(r"(\*|{item}(-{item})?)(/[0-9]+)?");
    format!("{one}(,{one})*")
}

/// The pattern of a whole cron expression.
pub fn cron_pattern() -> String {
    let minutes = list("([0-5]?[0-9])");
    let hours = list("([01]?[0-9]|2[0-3])");
    let day_number = "([1-9]|[12][0-9]|3[01])";
    let day_of_month = format!(r"(L|LW|{day_number}W|{})", list(day_number));
    let month = list("([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)");
    let weekday = "([1-7]|SUN|MON|TUE|WED|THU|FRI|SAT)";
    let day_of_week = format!(r"(L|{weekday}L|{weekday}#[1-5]|{})", list(weekday));
    let year = list("(19[7-9][0-9]|2[01][0-9][0-9])");
    format!(
        r"^cron\({minutes} {hours} (\? {month} {day_of_week}|{day_of_month} {month} \?) {year}\)$"
    )
}

/// The pattern of a rate expression.
pub const RATE_PATTERN: &str =
    r"^rate\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\)$";

/// The pattern of a one-time expression.
pub const AT_PATTERN: &str = r"^at\([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\)$";

static CRON: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(&cron_pattern()).ok());
static RATE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(RATE_PATTERN).ok());
static AT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(AT_PATTERN).ok());

fn matches(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(text))
}

/// Checks an expression; `Err` says what is wrong and what is valid.
pub fn check(expression: &str) -> Result<(), String> {
    let e = expression.trim();
    if e.starts_with("cron(") {
        if matches(&CRON, e) {
            Ok(())
        } else {
            Err(format!(
                "{e:?} is not a valid cron expression: six fields, minutes 0-59, hours 0-23, \
                 day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 1-7 or SUN-SAT, year \
                 1970-2199, one of the two day fields ?, e.g. cron(0 1 * * ? *)"
            ))
        }
    } else if e.starts_with("rate(") {
        if matches(&RATE, e) {
            Ok(())
        } else {
            Err(format!(
                "{e:?} is not a valid rate: a whole number above 0 and minute, hour or day \
                 (minutes, hours or days above 1), e.g. rate(5 minutes)"
            ))
        }
    } else if e.starts_with("at(") {
        if matches(&AT, e) {
            // The pattern admits 31 days in every month: AWS refuses a day
            // the calendar does not have (30 February, 31 April).
            let inner = &e[3..e.len() - 1];
            match chrono::NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S") {
                Ok(_) => Ok(()),
                Err(_) => Err(format!(
                    "{e:?} names a day the calendar does not have ({}); \
                     at(yyyy-mm-ddThh:mm:ss) of a real date",
                    &inner[..10]
                )),
            }
        } else {
            Err(format!(
                "{e:?} is not a valid one-time expression: at(yyyy-mm-ddThh:mm:ss)"
            ))
        }
    } else {
        Err(format!(
            "{e:?} is not a schedule expression: cron(...), rate(...) or at(...)"
        ))
    }
}

/// The shortest time between two runs of a valid expression, in minutes:
/// a rate's period; for a cron expression, the shortest gap between two of
/// the times of day its minutes and hours fields allow (the last of one day
/// to the first of the next counted too), a lower bound whatever the day
/// fields say; `None` for a one-time `at(...)`.
pub fn shortest_interval_minutes(expression: &str) -> Option<u32> {
    let e = expression.trim();
    if let Some(rate) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let (n, unit) = rate.split_once(' ')?;
        let n: u32 = n.parse().ok()?;
        let per = match unit.trim_end_matches('s') {
            "minute" => 1,
            "hour" => 60,
            "day" => 1440,
            _ => return None,
        };
        return Some(n.saturating_mul(per));
    }
    let fields: Vec<&str> = e
        .strip_prefix("cron(")?
        .strip_suffix(')')?
        .split_whitespace()
        .collect();
    let (minutes, hours) = (
        cron_values(fields.first()?, 0, 59)?,
        cron_values(fields.get(1)?, 0, 23)?,
    );
    let mut times: Vec<u32> = hours
        .iter()
        .flat_map(|h| minutes.iter().map(move |m| h * 60 + m))
        .collect();
    times.sort_unstable();
    let first = *times.first()?;
    let wrap = first + 1440 - times.last()?;
    Some(
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain(std::iter::once(wrap))
            .min()
            .unwrap_or(1440),
    )
}

/// The values one numeric cron field (minutes or hours) allows.
fn cron_values(field: &str, low: u32, high: u32) -> Option<Vec<u32>> {
    let mut values = std::collections::BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (low, high),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                // `a/n` runs from a to the end of the field.
                None if part.contains('/') => (r.parse().ok()?, high),
                None => {
                    let v = r.parse().ok()?;
                    (v, v)
                }
            },
        };
        values.extend((from..=to.min(high)).step_by(step as usize));
    }
    Some(values.into_iter().collect())
}

/// Every IANA time zone name the scheduler accepts (the tz database bundled
/// with the operator).
pub fn timezones() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::TimeZoneDatabase::bundled()
        .available()
        .map(|n| n.as_str().to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether `name` is an IANA time zone.
pub fn is_timezone(name: &str) -> bool {
    static NAMES: LazyLock<Vec<String>> = LazyLock::new(timezones);
    NAMES.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
}

/// The CRD schema of `schedules[].expression`: the patterns above as CEL
/// rules, so the API server refuses a bad expression at admission.
pub fn expression_schema(_: &mut SchemaGenerator) -> Schema {
    let cel = |pattern: &str| pattern.replace('\\', "\\\\");
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "x-kubernetes-validations": [
            {
                "rule": "self.startsWith('cron(') || self.startsWith('rate(') || self.startsWith('at(')",
                "message": "must be cron(...), rate(...) or at(...)"
            },
            {
                "rule": format!("!self.startsWith('cron(') || self.matches('{}')", cel(&cron_pattern())),
                "message": "a cron expression has six fields: minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 1-7 or SUN-SAT, year 1970-2199; one of the two day fields is ?, e.g. cron(0 1 * * ? *)"
            },
            {
                "rule": format!("!self.startsWith('rate(') || self.matches('{}')", cel(RATE_PATTERN)),
                "message": "a rate is a whole number above 0 and minute, hour or day (minutes, hours or days above 1), e.g. rate(5 minutes)"
            },
            {
                "rule": format!("!self.startsWith('at(') || self.matches('{}')", cel(AT_PATTERN)),
                "message": "a one-time expression is at(yyyy-mm-ddThh:mm:ss)"
            }
        ]
    })
}

/// The CRD schema of `schedules[].timezone`: one of the IANA names.
pub fn timezone_schema(_: &mut SchemaGenerator) -> Schema {
    let names = timezones()
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    json_schema!({
        "type": "string",
        "default": "UTC",
        "maxLength": 50,
        "x-kubernetes-validations": [{
            "rule": format!("self in [{names}]"),
            "message": "must be an IANA time zone, e.g. UTC, Europe/Paris or America/New_York"
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_expressions_pass() {
        for e in [
            "cron(0 1 * * ? *)",
            "cron(0/15 8-17 ? * MON-FRI *)",
            "cron(30 2 L * ? 2027)",
            "cron(0 9 ? JAN,JUL 2#1 *)",
            "cron(0 0 15W * ? *)",
            "rate(1 minute)",
            "rate(5 minutes)",
            "rate(12 hours)",
            "rate(1 day)",
            "at(2027-03-01T06:30:00)",
        ] {
            assert_eq!(check(e), Ok(()), "{e}");
        }
    }

    #[test]
    fn invalid_expressions_say_what_is_valid() {
        for (e, needle) in [
            ("cron(0 1 * * *)", "six fields"),
            ("cron(61 1 * * ? *)", "minutes 0-59"),
            ("cron(0 24 * * ? *)", "hours 0-23"),
            ("cron(0 1 * * * *)", "one of the two day fields ?"),
            ("cron(0 1 32 * ? *)", "day-of-month 1-31"),
            ("cron(0 1 ? * 8 *)", "day-of-week 1-7"),
            ("rate(0 minutes)", "above 0"),
            ("rate(1 minutes)", "minute"),
            ("rate(5 minute)", "minutes"),
            ("rate(5 weeks)", "rate"),
            ("at(2027-13-01T00:00:00)", "at(yyyy-mm-ddThh:mm:ss)"),
            (
                "at(2031-02-30T10:00:00)",
                "the calendar does not have (2031-02-30)",
            ),
            (
                "at(2027-04-31T10:00:00)",
                "the calendar does not have (2027-04-31)",
            ),
            (
                "at(2027-02-29T10:00:00)",
                "the calendar does not have (2027-02-29)",
            ),
            ("daily", "cron(...), rate(...) or at(...)"),
        ] {
            let err = check(e).expect_err(e);
            assert!(err.contains(needle), "{e}: {err}");
        }
    }

    #[test]
    fn the_bundled_time_zones_hold_the_usual_names() {
        assert!(is_timezone("UTC"));
        assert!(is_timezone("Europe/Paris"));
        assert!(is_timezone("America/New_York"));
        assert!(!is_timezone("Mars/Olympus_Mons"));
        assert!(timezones().len() > 300, "{}", timezones().len());
    }

    #[test]
    fn the_shortest_interval_of_each_kind_of_expression() {
        for (e, minutes) in [
            ("rate(1 minute)", Some(1)),
            ("rate(5 minutes)", Some(5)),
            ("rate(2 hours)", Some(120)),
            ("rate(1 day)", Some(1440)),
            ("cron(0 1 * * ? *)", Some(1440)),
            ("cron(0/15 8-17 ? * MON-FRI *)", Some(15)),
            ("cron(* * * * ? *)", Some(1)),
            ("cron(5,50 * * * ? *)", Some(15)),
            ("cron(0 0,23 * * ? *)", Some(60)),
            ("cron(10/20 3 * * ? *)", Some(20)),
            ("at(2027-03-01T06:30:00)", None),
        ] {
            assert_eq!(shortest_interval_minutes(e), minutes, "{e}");
        }
    }

    #[test]
    fn the_patterns_compile() {
        assert!(CRON.is_some() && RATE.is_some() && AT.is_some());
    }
}
