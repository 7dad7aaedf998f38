//! EventBridge Scheduler: runs a month, derived from the schedule
//! expression itself, and their price.
//!
//! - `rate(n unit)`: a month of [`super::HOURS_PER_MONTH`] hours divided by
//!   the period.
//! - `cron(min hour dom month dow year)`: the times of day the minutes and
//!   hours fields allow, on the days the other fields allow, averaged over
//!   a whole Gregorian cycle (the 400 years 2001-2400, every weekday and
//!   leap day in its true proportion), or over the listed years when the
//!   year field lists some; times a month of [`super::DAYS_PER_MONTH`]
//!   days. `L`, `LW`, `nW`, `dL` and `d#n` are honoured; time zones and
//!   daylight-saving days are not (a day has 24 hours).
//! - `at(...)`: once, priced as one run in the month it falls in.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};

use super::{Cx, DAYS_PER_MONTH, HOURS_PER_MONTH, Line};

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Runs a month of a valid expression.
pub fn runs_per_month(expression: &str) -> Result<f64, String> {
    let e = expression.trim();
    if let Some(rate) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let (n, unit) = rate
            .split_once(' ')
            .ok_or_else(|| format!("{e:?}: expected rate(<n> <unit>)"))?;
        let n: f64 = n
            .parse()
            .map_err(|_| format!("{e:?}: {n:?} is not a whole number"))?;
        let hours = match unit.trim_end_matches('s') {
            "minute" => 1.0 / 60.0,
            "hour" => 1.0,
            "day" => 24.0,
            u => {
                return Err(format!(
                    "{e:?}: unit {u:?}; expected minutes, hours or days"
                ));
            }
        };
        if n <= 0.0 {
            return Err(format!("{e:?}: the period must be above 0"));
        }
        return Ok(HOURS_PER_MONTH / (n * hours));
    }
    if e.starts_with("at(") && e.ends_with(')') {
        return Ok(1.0);
    }
    let fields: Vec<&str> = e
        .strip_prefix("cron(")
        .and_then(|c| c.strip_suffix(')'))
        .ok_or_else(|| format!("{e:?}: not cron(...), rate(...) or at(...)"))?
        .split_whitespace()
        .collect();
    let [minutes, hours, dom, month, dow, year] = fields[..] else {
        return Err(format!("{e:?}: a cron expression has six fields"));
    };
    let minutes = values(minutes, 0, 59, &[]).ok_or_else(|| bad(e, "minutes", minutes))?;
    let hours = values(hours, 0, 23, &[]).ok_or_else(|| bad(e, "hours", hours))?;
    let months = values(month, 1, 12, &MONTHS).ok_or_else(|| bad(e, "month", month))?;
    let (first, last) = if year == "*" {
        (2001, 2400)
    } else {
        let ys = values(year, 1970, 2199, &[]).ok_or_else(|| bad(e, "year", year))?;
        (
            *ys.first().ok_or_else(|| bad(e, "year", year))?,
            *ys.last().ok_or_else(|| bad(e, "year", year))?,
        )
    };
    let years = if year == "*" {
        (first..=last).collect()
    } else {
        values(year, 1970, 2199, &[]).ok_or_else(|| bad(e, "year", year))?
    };
    let day = DayRule::parse(dom, dow).ok_or_else(|| bad(e, "day-of-month/day-of-week", dom))?;
    let (mut days, mut matching) = (0u64, 0u64);
    for y in years.iter().copied() {
        let Ok(y) = i32::try_from(y) else { continue };
        let mut d = NaiveDate::from_ymd_opt(y, 1, 1).ok_or_else(|| bad(e, "year", year))?;
        while d.year() == y {
            days += 1;
            if months.contains(&d.month()) && day.matches(d) {
                matching += 1;
            }
            d = match d.succ_opt() {
                Some(n) => n,
                None => break,
            };
        }
    }
    let per_day = matching as f64 / days.max(1) as f64;
    Ok(per_day * (minutes.len() * hours.len()) as f64 * DAYS_PER_MONTH)
}

/// How a cron expression's figure was reached, for the assumptions.
pub fn explain(expression: &str) -> &'static str {
    let e = expression.trim();
    if e.starts_with("rate(") {
        " (730 hours a month / the period)"
    } else if e.starts_with("at(") {
        " (once: priced in the month it runs)"
    } else {
        " (times a day x the share of days the day fields match over a 400-year cycle x 30.42 days; time zone and daylight saving ignored)"
    }
}

fn bad(e: &str, field: &str, value: &str) -> String {
    format!("{e:?}: cannot read the {field} field {value:?}")
}

/// The values a field allows: `*`, `a`, `a-b`, `*/n`, `a/n`, `a-b/n` and
/// lists of them; names (`JAN`, `MON`) stand for their number.
fn values(field: &str, low: u32, high: u32, names: &[&str]) -> Option<Vec<u32>> {
    let number = |s: &str| -> Option<u32> {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + low)
            .or_else(|| s.parse().ok())
    };
    let mut out = BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (low, high),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if part.contains('/') => (number(r)?, high),
                None => {
                    let v = number(r)?;
                    (v, v)
                }
            },
        };
        if from < low || to > high || from > to {
            return None;
        }
        out.extend((from..=to).step_by(step as usize));
    }
    Some(out.into_iter().collect())
}

/// Which days of a month the two day fields allow.
enum DayRule {
    /// Any day (`?` with `*`).
    Any,
    /// Days of the month.
    Dom(Vec<u32>),
    /// The last day of the month.
    Last,
    /// The last weekday (Mon-Fri) of the month.
    LastWeekday,
    /// The weekday nearest the day, within the month.
    NearestWeekday(u32),
    /// Days of the week (1 = Sunday).
    Dow(Vec<u32>),
    /// The last given day of the week of the month.
    LastDow(u32),
    /// The n-th given day of the week of the month.
    NthDow(u32, u32),
}

fn sunday_based(d: Weekday) -> u32 {
    d.num_days_from_sunday() + 1
}

fn last_of_month(d: NaiveDate) -> u32 {
    let (y, m) = (d.year(), d.month());
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |l| l.day())
}

impl DayRule {
    fn parse(dom: &str, dow: &str) -> Option<DayRule> {
        if dom == "?" || dom == "*" && dow != "?" && dow != "*" {
            let day = |s: &str| values(s, 1, 7, &DAYS).and_then(|v| v.first().copied());
            return Some(if dow == "*" || dow == "?" {
                DayRule::Any
            } else if dow == "L" {
                DayRule::Dow(vec![7])
            } else if let Some(d) = dow.strip_suffix('L') {
                DayRule::LastDow(day(d)?)
            } else if let Some((d, n)) = dow.split_once('#') {
                DayRule::NthDow(day(d)?, n.parse().ok().filter(|n| (1..=5).contains(n))?)
            } else {
                DayRule::Dow(values(dow, 1, 7, &DAYS)?)
            });
        }
        Some(match dom {
            "*" => DayRule::Any,
            "L" => DayRule::Last,
            "LW" => DayRule::LastWeekday,
            d if d.ends_with('W') => DayRule::NearestWeekday(
                d.trim_end_matches('W')
                    .parse()
                    .ok()
                    .filter(|n| (1..=31).contains(n))?,
            ),
            d => DayRule::Dom(values(d, 1, 31, &[])?),
        })
    }

    fn matches(&self, d: NaiveDate) -> bool {
        let last = last_of_month(d);
        let weekday = |day: u32| d.with_day(day).map(|x| x.weekday());
        match self {
            DayRule::Any => true,
            DayRule::Dom(days) => days.contains(&d.day()),
            DayRule::Last => d.day() == last,
            DayRule::LastWeekday => {
                let mut day = last;
                while matches!(weekday(day), Some(Weekday::Sat | Weekday::Sun)) {
                    day -= 1;
                }
                d.day() == day
            }
            DayRule::NearestWeekday(n) => {
                let n = (*n).min(last);
                let target = match weekday(n) {
                    Some(Weekday::Sat) if n > 1 => n - 1,
                    Some(Weekday::Sat) => n + 2,
                    Some(Weekday::Sun) if n < last => n + 1,
                    Some(Weekday::Sun) => n - 2,
                    _ => n,
                };
                d.day() == target
            }
            DayRule::Dow(days) => days.contains(&sunday_based(d.weekday())),
            DayRule::LastDow(w) => sunday_based(d.weekday()) == *w && d.day() + 7 > last,
            DayRule::NthDow(w, n) => sunday_based(d.weekday()) == *w && (d.day() - 1) / 7 + 1 == *n,
        }
    }
}

/// The schedules' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.scheduler.prices;
    cx.plan
        .schedules
        .iter()
        .map(|s| {
            Line::new(
                "EventBridge Scheduler",
                "Scheduler::Schedule",
                &s.name,
                "invocations",
                cx.flow
                    .schedule_runs
                    .get(&s.logical)
                    .copied()
                    .unwrap_or(0.0),
                &p.invocations,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(e: &str) -> f64 {
        (runs_per_month(e).expect(e) * 1000.0).round() / 1000.0
    }

    /// `per_day` runs a day, a month of 730 / 24 days, as [`runs`] rounds.
    fn month(per_day: f64) -> f64 {
        (per_day * 730.0 / 24.0 * 1000.0).round() / 1000.0
    }

    #[test]
    fn rates_divide_a_730_hour_month() {
        assert_eq!(runs("rate(5 minutes)"), 8760.0); // 730 * 60 / 5
        assert_eq!(runs("rate(1 hour)"), 730.0);
        assert_eq!(runs("rate(2 hours)"), 365.0);
        assert_eq!(runs("rate(1 day)"), 30.417); // 730 / 24
    }

    #[test]
    fn at_is_once() {
        assert_eq!(runs("at(2027-01-01T00:00:00)"), 1.0);
    }

    #[test]
    fn cron_counts_times_of_day_and_days() {
        // Daily at 01:00: one a day.
        assert_eq!(runs("cron(0 1 * * ? *)"), 30.417);
        // Every 15 minutes (a step) during hours 9-17 (a range): 4 * 9 a day.
        assert_eq!(runs("cron(0/15 9-17 * * ? *)"), month(36.0));
        // A list of minutes, every hour: 3 * 24 a day.
        assert_eq!(runs("cron(0,20,40 * * * ? *)"), month(72.0));
        // Weekdays only (a named range): 5 days in 7 over the cycle.
        let weekdays = runs("cron(0 8 ? * MON-FRI *)");
        assert!((weekdays - 30.4167 * 5.0 / 7.0).abs() < 0.01, "{weekdays}");
        // The 1st and 15th (a list of days): 24 a year.
        assert!((runs("cron(0 0 1,15 * ? *)") - 2.0 * 30.4167 * 12.0 / 365.2425).abs() < 0.01);
        // The last day of each month: 12 a year.
        assert!((runs("cron(0 0 L * ? *)") - 30.4167 * 12.0 / 365.2425).abs() < 0.001);
        // The second Monday of each month: 12 a year.
        assert!((runs("cron(0 0 ? * 2#2 *)") - 30.4167 * 12.0 / 365.2425).abs() < 0.001);
        // January only (a named month), every day: 31 days in 365.2425.
        assert!((runs("cron(0 0 * JAN ? *)") - 30.4167 * 31.0 / 365.2425).abs() < 0.001);
        // Every other month by step: 6 first days a year.
        assert!((runs("cron(0 0 1 1/2 ? *)") - 30.4167 * 6.0 / 365.2425).abs() < 0.001);
        // A listed year: averaged over that year's days.
        assert!((runs("cron(0 12 * * ? 2027)") - 30.417).abs() < 0.001);
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(runs_per_month("cron(0 1 * *)").is_err());
        assert!(runs_per_month("cron(61 1 * * ? *)").is_err());
        assert!(runs_per_month("every day").is_err());
    }
}
