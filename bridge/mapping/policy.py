"""The eMSP's commercial policy (`config/pricing.toml`) as frozen pydantic models.

The policy is data: per CPO party (`"IN-TPC"`) and per location
(`"IN-TPC/LOC-1"`) it sets the service fee, surcharges such as a congestion
fee, the overage provision for prepaid sessions, the buyer-finder fee cap,
refund terms, the grace period and the idle fee; offers, loyalty discounts
(by phone number) and fleet (B2B) rates are lists at the top level. Terms are
merged field by field: `[default]`, then the party's table, then the
location's table. Amounts are written as strings ("16.50") or integers; a
TOML float is read through its decimal text, never used as a float.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from bridge.ocpi.models import DayOfWeek, Tariff

__all__ = [
    "DiscrepancyWinner",
    "Fleet",
    "Loyalty",
    "Offer",
    "PolicyError",
    "PricingPolicy",
    "RefundTerm",
    "Surcharge",
    "Terms",
    "load_policy",
    "parse_policy",
]


class PolicyError(ValueError):
    """`config/pricing.toml` is missing, not TOML, or not a valid policy."""


def _decimal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))  # the literal's shortest decimal text, no binary noise
    return value


Amount = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0)]
Percent = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0, le=100)]
HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DiscrepancyWinner(StrEnum):
    CDR = "CDR"  # the CPO's CDR is the legal record
    ENGINE = "ENGINE"


class Surcharge(_Frozen):
    """An eMSP fee per kWh delivered inside a local time window (the seed's congestion fee)."""

    id: str
    title: str
    per_kwh: Amount
    start_time: HHMM | None = None
    end_time: HHMM | None = None
    day_of_week: tuple[DayOfWeek, ...] | None = None

    def as_tariff(self, currency: str) -> Tariff:
        """The surcharge as an OCPI tariff, so the tariff engine prices it (same splits, same DST)."""
        restrictions: dict[str, Any] = {}
        if self.start_time:
            restrictions["start_time"] = self.start_time
        if self.end_time:
            restrictions["end_time"] = self.end_time
        if self.day_of_week:
            restrictions["day_of_week"] = list(self.day_of_week)
        element: dict[str, Any] = {
            "price_components": [{"type": "ENERGY", "price": self.per_kwh, "step_size": 1}]
        }
        if restrictions:
            element["restrictions"] = restrictions
        return Tariff.model_validate(
            {
                "country_code": "XX", "party_id": "EMS", "id": f"surcharge-{self.id}"[:36],
                "currency": currency, "elements": [element], "last_updated": "2000-01-01T00:00:00Z",
            }
        )


class RefundTerm(_Frozen):
    """`percent` of what was paid is refunded when cancelled at least `min_hours_before` the slot."""

    min_hours_before: Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0)]
    percent: Percent


class Terms(_Frozen):
    """The commercial terms that apply at one CPO / location (after merging)."""

    service_fee: Amount = Decimal(0)  # flat, per session
    service_fee_percent: Percent = Decimal(0)  # of the CPO's charging cost
    surcharges: tuple[Surcharge, ...] = ()
    overage_percent: Percent = Decimal(0)  # prepaid provision over the estimate
    buyer_finder_fee_cap_percent: Percent = Decimal(0)
    refund_terms: tuple[RefundTerm, ...] = ()
    grace_minutes: int = Field(0, ge=0)  # late arrival before the slot is released; idle time before the fee
    idle_fee_per_minute: Amount = Decimal(0)  # after charging ends and the grace period


class TermsOverride(_Frozen):
    """A `[parties."..."]` or `[locations."..."]` table: only the fields it sets change."""

    service_fee: Amount | None = None
    service_fee_percent: Percent | None = None
    surcharges: tuple[Surcharge, ...] | None = None
    overage_percent: Percent | None = None
    buyer_finder_fee_cap_percent: Percent | None = None
    refund_terms: tuple[RefundTerm, ...] | None = None
    grace_minutes: int | None = Field(None, ge=0)
    idle_fee_per_minute: Amount | None = None


class Offer(_Frozen):
    """A promotion: `amount_off` or `percent_off` when at least `min_kwh` is delivered."""

    id: str
    title: str
    amount_off: Amount | None = None
    percent_off: Percent | None = None
    min_kwh: Amount = Decimal(0)
    valid_from: date | None = None
    valid_until: date | None = None  # inclusive, local date of the session's start
    parties: tuple[str, ...] = ()  # empty: every CPO
    locations: tuple[str, ...] = ()  # "IN-TPC/LOC-1"; empty: every location of those parties

    @model_validator(mode="after")
    def _one_discount(self) -> Offer:
        if (self.amount_off is None) == (self.percent_off is None):
            raise ValueError("an offer needs exactly one of amount_off and percent_off")
        return self

    def applies(self, party: str, location_id: str | None, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        if self.valid_until is not None and day > self.valid_until:
            return False
        if self.parties and party.upper() not in {p.upper() for p in self.parties}:
            return False
        return not self.locations or f"{party}/{location_id}".upper() in {x.upper() for x in self.locations}


def phone_key(phone: str) -> str:
    """Compare phone numbers by their last ten digits ("+91-98877 66554" == "9887766554")."""
    return re.sub(r"\D", "", phone)[-10:]


class Loyalty(_Frozen):
    """A loyalty programme membership, found by the phone number in the billing details."""

    phone: str
    program: str
    percent_off: Percent | None = None
    amount_off: Amount | None = None

    @model_validator(mode="after")
    def _one_discount(self) -> Loyalty:
        if (self.amount_off is None) == (self.percent_off is None):
            raise ValueError("a loyalty entry needs exactly one of amount_off and percent_off")
        return self


class Fleet(_Frozen):
    """A B2B fleet rate, applied only once the fleet id is OTP-verified."""

    id: str
    name: str
    percent_off: Percent = Decimal(0)  # of the CPO's charging cost
    service_fee_waived: bool = False


class PricingPolicy(_Frozen):
    """The whole policy file."""

    currency: str = Field("INR", min_length=3, max_length=3)
    discrepancy_winner: DiscrepancyWinner = DiscrepancyWinner.CDR
    discrepancy_tolerance_minor_units: int = Field(1, ge=0)
    default: Terms = Terms()
    parties: dict[str, TermsOverride] = {}
    locations: dict[str, TermsOverride] = {}
    offers: tuple[Offer, ...] = ()
    loyalty: tuple[Loyalty, ...] = ()
    fleets: tuple[Fleet, ...] = ()

    @model_validator(mode="after")
    def _keys(self) -> PricingPolicy:
        for key in self.parties:
            if not re.fullmatch(r"[A-Za-z]{2}-[A-Za-z0-9]{3}", key):
                raise ValueError(f"parties: key {key!r} is not COUNTRY-PARTY like 'IN-TPC'")
        for key in self.locations:
            if not re.fullmatch(r"[A-Za-z]{2}-[A-Za-z0-9]{3}/.+", key):
                raise ValueError(f"locations: key {key!r} is not 'COUNTRY-PARTY/LOCATION_ID'")
        return self

    def terms(self, party: str, location_id: str | None = None) -> Terms:
        """Default terms, overridden by the party's and then the location's tables."""
        merged = self.default.model_dump()
        for table, key in ((self.parties, party), (self.locations, f"{party}/{location_id}")):
            override = _lookup(table, key)
            if override is not None:
                merged.update(override.model_dump(exclude_none=True))
        return Terms.model_validate(merged)

    def loyalty_for(self, phone: str | None) -> Loyalty | None:
        if not phone:
            return None
        key = phone_key(phone)
        return next((entry for entry in self.loyalty if phone_key(entry.phone) == key), None)

    def fleet(self, fleet_id: str | None) -> Fleet | None:
        if not fleet_id:
            return None
        return next((f for f in self.fleets if f.id == fleet_id), None)


def _lookup(table: dict[str, TermsOverride], key: str) -> TermsOverride | None:
    hit = table.get(key)
    if hit is None:
        folded = key.upper()
        hit = next((v for k, v in table.items() if k.upper() == folded), None)
    return hit


def parse_policy(text: str, source: str = "pricing.toml") -> PricingPolicy:
    """Parse and validate policy TOML; PolicyError names the file and the field."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return PricingPolicy.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"{source}: {problems}") from exc


def load_policy(path: str | Path) -> PricingPolicy:
    """Load `config/pricing.toml` (or another file)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    return parse_policy(text, str(p))
