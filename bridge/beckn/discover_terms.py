"""Filter terms discover answers itself, taken out of the JSONPath before it is compiled
(pure).

Networks ask in the filter for things an item's JSON does not hold:

- an availability window, on the item's `beckn:availabilityWindow`:
  `@['beckn:availabilityWindow'][*]['schema:startDate'] <= '2025-11-27T12:30:00+05:30'
  && @['beckn:availabilityWindow'][*]['schema:endDate'] >= '2025-11-27T14:30:00+05:30'`
  (or `schema:startTime` / `schema:endTime` with a time of day, "today" in each
  location's time zone): "free from 12:30 to 14:30" -- answered from the location's
  opening hours and the EVSE's reservation calendar;
- a vehicle, on the fulfilment's vehicle: `@['beckn:fulfillment']['vehicle']['make'] ==
  'Tata' && ...['model'] == 'Nexon EV'` (also `vehicleMake` / `vehicleModel`, the EV
  pack's ChargingSession names) -- resolved through bridge/mapping/vehicles.py.

Such terms must be top-level `&&` terms of the filter (so that leaving them out of the
JSONPath and applying them apart means the same); the rest of the filter is compiled and
evaluated as before. Non-singular paths (`[*]`) are allowed here, since these terms are
never evaluated as RFC 9535.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time

_LIT = r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\""
_PATH = r"@(?:\s*\[\s*(?:'[^']*'|\"[^\"]*\"|\*|\d+)\s*\]|\.[\w:\-]+|\.\*)+"
_TERM = re.compile(rf"^\(*\s*({_PATH})\s*(==|<=|>=|<|>)\s*(?:{_LIT})\s*\)*$", re.S)
_NAMES = re.compile(r"\[\s*['\"]([^'\"]*)['\"]\s*\]|\.([\w:\-]+)")


class TermError(ValueError):
    """A window or vehicle term discover cannot use (a NACK naming the filter)."""


@dataclass
class Window:
    start: datetime | time
    end: datetime | time


@dataclass
class VehicleAsk:
    make: str | None = None
    model: str | None = None


@dataclass
class Extracted:
    rest: str | None  # the filter without the terms (None: nothing left)
    window: Window | None = None
    vehicle: VehicleAsk | None = None


def _conjuncts(body: str) -> list[str] | None:
    """The top-level `&&` terms of a filter body, or None if it has `||` / `!` outside
    string literals (then nothing is taken out)."""
    out, depth, cur, i, quote = [], 0, "", 0, ""
    while i < len(body):
        ch = body[i]
        if quote:
            cur += ch
            if ch == "\\" and i + 1 < len(body):
                cur += body[i + 1]
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif body.startswith("&&", i) and depth == 0:
            out.append(cur.strip())
            cur = ""
            i += 1
        elif body.startswith("||", i) or (ch == "!" and not body.startswith("!=", i)):
            return None
        else:
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            cur += ch
        i += 1
    out.append(cur.strip())
    return out


def _wrapped(body: str) -> bool:
    """`( ... )` around the whole body (the guide's `$[?( ... )]`)."""
    if not (body.startswith("(") and body.endswith(")")):
        return False
    depth, quote = 0, ""
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i < len(body) - 1:
                return False
    return True


def _parse_bound(value: str) -> datetime | time:
    text = value.strip()
    try:
        if "T" in text or len(text) > 12:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        return time.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TermError(f"availabilityWindow: {value!r} is not a date-time or a time") from exc


_MENTIONS = re.compile(r"availabilityWindow|vehicle", re.I)


def extract(expression: str) -> Extracted:
    if not _MENTIONS.search(expression):  # the usual filter: nothing to take out
        return Extracted(expression)
    m = re.fullmatch(r"\s*\$\[\?\s*(.*?)\s*\]\s*", expression, re.S)
    if not m:
        return Extracted(expression)
    body = m.group(1)
    terms = _conjuncts(body[1:-1] if _wrapped(body) else body)
    if terms is None:
        if _MENTIONS.search(body):
            raise TermError("availabilityWindow and vehicle terms are answered only as "
                            "top-level && terms of the filter (no || or ! around them)")
        return Extracted(expression)
    keep: list[str] = []
    window: dict[str, datetime | time] = {}
    vehicle = VehicleAsk()
    asked_vehicle = False
    for term in terms:
        t = _TERM.match(term)
        names = [a or b for a, b in _NAMES.findall(t.group(1))] if t else []
        lowered = [n.lower() for n in names]
        if t and any("availabilitywindow" in n for n in lowered):
            last = lowered[-1].split(":")[-1]
            value = t.group(3) if t.group(3) is not None else t.group(4)
            if last in ("startdate", "starttime"):
                window["start"] = _parse_bound(value)
            elif last in ("enddate", "endtime"):
                window["end"] = _parse_bound(value)
            else:
                raise TermError(f"availabilityWindow: {names[-1]} is not a start or an end "
                                "(schema:startDate/endDate, schema:startTime/endTime)")
            continue
        if t and any("vehicle" in n for n in lowered) and t.group(2) == "==":
            last = lowered[-1].split(":")[-1].replace("vehicle", "")
            value = t.group(3) if t.group(3) is not None else t.group(4)
            if last == "make":
                vehicle.make, asked_vehicle = value, True
                continue
            if last == "model":
                vehicle.model, asked_vehicle = value, True
                continue
        if re.search(r"availabilityWindow", term, re.I):
            raise TermError(f"availabilityWindow: cannot read the term {term[:80]!r}")
        keep.append(term)
    if not window and not asked_vehicle:
        return Extracted(expression)  # nothing taken: the filter as it was written
    win = None
    if window:
        if "start" not in window or "end" not in window:
            raise TermError("availabilityWindow: both a start and an end are needed")
        start, end = window["start"], window["end"]
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise TermError("availabilityWindow: give both bounds as date-times or both as "
                            "times of day")
        if isinstance(start, datetime) and isinstance(end, datetime) and end <= start:
            raise TermError("availabilityWindow: the end is not after the start")
        win = Window(start, end)
    rest = f"$[?{' && '.join(keep)}]" if keep else None
    return Extracted(rest, win, vehicle if asked_vehicle else None)
