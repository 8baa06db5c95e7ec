"""Is a location open for the whole of a time window? From OCPI `opening_times` (pure).

OCPI 2.2.1 §8.4.14 Hours: `twentyfourseven`, or `regular_hours` (weekday 1 = Monday ..
7, `period_begin` / `period_end` "hh:mm" in the location's local time; a period that ends
at or before it begins runs past midnight, "24:00" is the end of the day), plus
`exceptional_openings` and `exceptional_closings` (absolute periods). A location without
`opening_times` is taken as always open (discover lists it with no availabilityWindow).

The compact form kept in the catalog (`compact`) is what discover reads per location.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.ocpi.models import Hours

Interval = tuple[datetime, datetime]


def compact(hours: Hours | None, time_zone: str | None) -> dict[str, Any]:
    """What the window check needs: the zone (a time of day is read in it) and the
    hours (`247` alone when always open)."""
    tz = time_zone or "UTC"
    closings = [[p.period_begin.isoformat(), p.period_end.isoformat()]
                for p in (hours.exceptional_closings if hours else None) or []]
    if hours is None or (hours.twentyfourseven and not closings):
        return {"tz": tz, "247": True}
    return {"tz": tz, "247": bool(hours.twentyfourseven),
            "reg": [[h.weekday, h.period_begin, h.period_end] for h in hours.regular_hours or []],
            "open": [[p.period_begin.isoformat(), p.period_end.isoformat()]
                     for p in hours.exceptional_openings or []],
            "closed": closings}


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _hhmm(value: str) -> time | None:
    if value == "24:00":
        return None  # the end of the day
    h, m = value.split(":")
    return time(int(h), int(m))


def _regular(day: date, begin: str, end: str, tz: ZoneInfo) -> Interval:
    b = _hhmm(begin) or time(0)
    start = datetime.combine(day, b, tz)
    e = _hhmm(end)
    if e is None:
        stop = datetime.combine(day + timedelta(days=1), time(0), tz)
    else:
        stop = datetime.combine(day, e, tz)
        if stop <= start:  # runs past midnight
            stop = datetime.combine(day + timedelta(days=1), e, tz)
    return start.astimezone(UTC), stop.astimezone(UTC)


def _parse(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def open_throughout(h: dict[str, Any] | None, start: datetime, end: datetime) -> bool:
    """True if the location is open from `start` to `end` (aware datetimes)."""
    if h is None:
        return True
    for b, e in h.get("closed", []):
        if _parse(b) < end and _parse(e) > start:
            return False
    if h.get("247"):
        return True
    tz = zone(h.get("tz"))
    periods: list[Interval] = [(_parse(b), _parse(e)) for b, e in h.get("open", [])]
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    while day <= last:
        for weekday, b, e in h.get("reg", []):
            if int(weekday) == day.isoweekday():
                periods.append(_regular(day, b, e, tz))
        day += timedelta(days=1)
    # walk from `start`: each step must be inside some period
    at = start
    for b, e in sorted(periods):
        if b <= at < e:
            at = e
            if at >= end:
                return True
    return at >= end


def resolve(value: datetime | time, tz: ZoneInfo, now: datetime) -> datetime:
    """A window bound: an absolute time as it is, a time of day as today's, local time."""
    if isinstance(value, datetime):
        return value
    local_today = now.astimezone(tz).date()
    if value.tzinfo is not None:
        return datetime.combine(local_today, value.replace(tzinfo=None), value.tzinfo)
    return datetime.combine(local_today, value, tz)
