"""When a schedule expression is next due: at(), rate() and cron() as
EventBridge Scheduler reads them (cron's six fields: minutes hours
day-of-month month day-of-week year; `?` for one of the day fields;
day-of-week 1-7 = SUN-SAT). L, W and # are not evaluated here: such a
schedule never fires on the clock (it can still be fired on demand)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
NEVER = float("inf")


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """The values a cron field allows; None for `*` or `?`."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/")
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-")
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"unsupported cron value {text!r}")
    return int(text)


def next_time(expression: str, timezone: str | None, after: float) -> float:
    """Epoch seconds of the first time `expression` is due after `after`."""
    m = re.fullmatch(r"rate\((\d+) (\w+)\)", expression)
    if m:
        return after + int(m.group(1)) * _UNITS[m.group(2)]
    zone = ZoneInfo(timezone or "UTC")
    m = re.fullmatch(r"at\((.+)\)", expression)
    if m:
        due = datetime.fromisoformat(m.group(1)).replace(tzinfo=zone).timestamp()
        return due if due > after else NEVER
    m = re.fullmatch(r"cron\((.+)\)", expression)
    if not m:
        return NEVER
    fields = m.group(1).split()
    try:
        minutes = _field(fields[0], 0, 59)
        hours = _field(fields[1], 0, 23)
        doms = _field(fields[2], 1, 31)
        months = _field(fields[3], 1, 12, _MONTHS)
        dows = _field(fields[4], 1, 7, _DAYS)
        years = _field(fields[5], 1970, 2199)
    except ValueError:
        return NEVER
    start = datetime.fromtimestamp(after, zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for _ in range(366 * 5):
        # isoweekday: Monday 1 .. Sunday 7; cron: Sunday 1 .. Saturday 7.
        dow = day.isoweekday() % 7 + 1
        if (
            (years is None or day.year in years)
            and (months is None or day.month in months)
            and (doms is None or day.day in doms)
            and (dows is None or dow in dows)
        ):
            for hour in sorted(hours) if hours is not None else range(24):
                for minute in sorted(minutes) if minutes is not None else range(60):
                    candidate = day.replace(hour=hour, minute=minute)
                    if candidate >= start:
                        return candidate.timestamp()
        day = (day + timedelta(days=1)).replace(hour=0, minute=0)
    return NEVER
