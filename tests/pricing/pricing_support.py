"""Builders shared by the pricing tests (`from tests.pricing.pricing_support import ...`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bridge.ocpi.models import ChargingPeriod, Tariff
from tests import spec

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "pricing"

D = Decimal


def fixture(name: str) -> dict[str, Any]:
    """One of this project's own pricing fixtures (tests/fixtures/pricing)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def example(name: str) -> dict[str, Any]:
    """An OCPI 2.2.1 example file: for the conformance suite only (skips without it)."""
    data: dict[str, Any] = json.loads(spec.require(spec.OCPI_EXAMPLES / name).read_text())
    return data


def tariff(name: str) -> Tariff:
    return Tariff.model_validate(example(name))


def make_tariff(elements: list[dict[str, Any]], **extra: Any) -> Tariff:
    return Tariff.model_validate(
        {
            "country_code": "DE", "party_id": "ALL", "id": "T", "currency": extra.pop("currency", "EUR"),
            "elements": elements, "last_updated": "2024-01-01T00:00:00Z", **extra,
        }
    )


def local(text: str, tz: str = "Europe/Berlin") -> datetime:
    """A local wall-clock time ("2024-01-15 09:30") as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


_KINDS = {
    "energy": "ENERGY", "time": "TIME", "parking": "PARKING_TIME", "reservation": "RESERVATION_TIME",
    "current": "CURRENT", "min_current": "MIN_CURRENT", "max_current": "MAX_CURRENT",
    "power": "POWER", "min_power": "MIN_POWER", "max_power": "MAX_POWER",
}


def period(start: datetime, **dims: Any) -> ChargingPeriod:
    return ChargingPeriod.model_validate(
        {
            "start_date_time": start,
            "dimensions": [{"type": _KINDS[k], "volume": D(str(v))} for k, v in dims.items()],
        }
    )


@dataclass
class Shape:
    periods: list[ChargingPeriod]
    start: datetime
    end: datetime


def session(start: datetime, *steps: tuple[str, float | int | str, dict[str, Any]]) -> Shape:
    """Consecutive periods: ("charge", minutes, {"energy": kWh, ...}), ("park", minutes, {}),
    ("reserve", minutes, {}). TIME / PARKING_TIME / RESERVATION_TIME volumes are the minutes."""
    t = start
    periods = []
    for kind, minutes, dims in steps:
        hours = D(str(minutes)) / 60
        extra = dict(dims)
        if kind == "charge":
            extra.setdefault("time", hours)
        elif kind == "park":
            extra.setdefault("parking", hours)
        elif kind == "reserve":
            extra.setdefault("reservation", hours)
        periods.append(period(t, **extra))
        t = t + timedelta(minutes=float(minutes))
    return Shape(periods, start, t)


def inr_tariff(*elements: dict[str, Any], party: str = "TPC") -> Tariff:
    """An INR tariff of the given elements (default: ENERGY ₹16/kWh, no VAT)."""
    els = list(elements) or [{"price_components": [{"type": "ENERGY", "price": "16", "step_size": 1}]}]
    return Tariff.model_validate(
        {"country_code": "IN", "party_id": party, "id": "T1", "currency": "INR", "elements": els,
         "last_updated": "2025-01-01T00:00:00Z"}
    )


def inr_cdr(periods: list[ChargingPeriod], end: datetime, total: str, *, tariff: Tariff | None = None,
            incl: str | None = None, cdr_id: str = "CDR-1", **extra: Any) -> Any:
    """A CDR of IN-TPC at LOC-1 with these periods and total_cost (incl. VAT = `incl` or `total`)."""
    from bridge.ocpi.models import CDR

    doc = fixture("cdr_time.json")
    energy = sum((d.volume for p in periods for d in p.dimensions if d.type.value == "ENERGY"), Decimal(0))
    doc.update(
        country_code="IN", party_id="TPC", id=cdr_id, currency="INR",
        start_date_time=periods[0].start_date_time, end_date_time=end,
        tariffs=[(tariff or inr_tariff()).model_dump(mode="json", exclude_none=True)],
        charging_periods=[p.model_dump(mode="json", exclude_none=True) for p in periods],
        total_cost={"excl_vat": total, "incl_vat": incl or total},
        total_energy=str(energy), **{"total_time": "1", "total_time_cost": None, **extra},
    )
    doc["cdr_location"]["id"] = "LOC-1"
    for p in doc["charging_periods"]:
        p["tariff_id"] = "T1"
    return CDR.model_validate(doc)
