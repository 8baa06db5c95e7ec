"""Opening hours in the catalog (bridge/mapping/catalog.py: `_windows`): rc2's TimePeriod
writes `schema:startTime` / `schema:endTime` with `format: time`, RFC 3339's full-time,
which needs a UTC offset. The local times carry the location's offset at render time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bridge.mapping.catalog import provider, render_item
from tests.beckn.conftest import connector, evse, location

FULL_TIME = re.compile(r"^\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def hours(*regular: tuple[int, str, str]) -> dict[str, object]:
    return {"twentyfourseven": False, "regular_hours": [
        {"weekday": d, "period_begin": b, "period_end": e} for d, b, e in regular]}


def windows(zone: str, now: datetime, *regular: tuple[int, str, str]) -> list[dict[str, str]]:
    loc = location("LOC-H", 77.6, 12.97, [
        evse("E1", "IN*TPC*E0801", "AVAILABLE", connector("1", "IEC_62196_T2", "AC_3_PHASE", 22))],
        time_zone=zone, opening_times=hours(*regular))
    item = render_item(loc, loc.evses[0], loc.evses[0].connectors[0], {}, provider(loc), [],
                       now).item
    return [{k: v for k, v in w.items() if k.startswith("schema:")}
            for w in item["beckn:availabilityWindow"]]


def test_opening_hours_carry_the_locations_utc_offset() -> None:
    got = windows("Asia/Kolkata", datetime(2025, 6, 2, 6, 0, tzinfo=UTC),
                  (1, "10:00", "22:00"), (7, "08:30", "23:59"))
    assert got == [
        {"schema:startTime": "10:00:00+05:30", "schema:endTime": "22:00:00+05:30",
         "schema:dayOfWeek": "https://schema.org/Monday"},
        {"schema:startTime": "08:30:00+05:30", "schema:endTime": "23:59:00+05:30",
         "schema:dayOfWeek": "https://schema.org/Sunday"},
    ]
    assert all(FULL_TIME.match(w[k]) for w in got for k in ("schema:startTime",
                                                             "schema:endTime"))


def test_the_offset_is_the_one_in_force_when_rendered() -> None:
    """A zone with daylight saving: winter and summer renders differ by the hour."""
    winter = windows("Europe/Berlin", datetime(2025, 1, 15, 12, tzinfo=UTC), (1, "07:00", "19:00"))
    summer = windows("Europe/Berlin", datetime(2025, 7, 15, 12, tzinfo=UTC), (1, "07:00", "19:00"))
    assert (winter[0]["schema:startTime"], summer[0]["schema:startTime"]) == (
        "07:00:00+01:00", "07:00:00+02:00")
    # UTC itself: Z
    assert windows("UTC", datetime(2025, 1, 15, tzinfo=UTC), (2, "07:00", "19:00"))[0][
        "schema:endTime"] == "19:00:00Z"
