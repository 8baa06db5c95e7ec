"""OCPI 2.2.1 data objects as pydantic v2 models.

One class per object of the specification, named as the specification names
it, with the section that defines it. Strict where the spec is strict (string
lengths, enum values, required fields, JSON types), lenient where it allows
(unknown extra fields are ignored, `DateTime` without a zone is read as UTC).

Types (spec part "types", §16). What comes from another platform is validated
with `context=WIRE`, and then no JSON type is coerced into another (a wrong
type is 2001 naming the field); objects the bridge builds itself keep
pydantic's conversions:
- `CiString(n)`: case-insensitive ASCII printable, at most n characters.
- `String(n)`: UTF-8 string, at most n characters.
- `Int`: a JSON integer (not `"400"`, not `400.0`, not `true`), at most 2^53 - 1
  in magnitude (what every JSON implementation holds exactly).
- `Bool`: `true` / `false` only (not `"true"`, not `1`).
- `DateTime`: an RFC 3339 date-time *string* (not an epoch number, not a date
  alone). No zone: UTC (the spec says so); an explicit offset is accepted and
  normalised to UTC. Kept to the microsecond and written back with `Z` and as
  many fraction digits as it has (none, 3 or 6): never truncated. More than 6
  fraction digits (.NET's 7) are cut to microseconds, the finest Python holds.
- `Number`: a JSON number (not `"18.5"`), finite and below 10^12 in magnitude,
  kept as `Decimal` (money and energy are never float) and written as a JSON number.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

# --- types


def CiString(n: int) -> Any:
    return Annotated[str, StringConstraints(max_length=n, pattern=r"^[\x20-\x7E]*$")]


def String(n: int) -> Any:
    return Annotated[str, StringConstraints(max_length=n)]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """OCPI DateTime on the wire: UTC with `Z`; milliseconds when the value has
    them, microseconds when it has those (what a CPO sent comes back unchanged)."""
    value = _utc(value)
    if value.microsecond % 1000:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")


def parse_datetime(value: str) -> datetime:
    """An OCPI DateTime string (RFC 3339; no zone = UTC) as an aware UTC datetime.
    Raises ValueError with a message fit for a 2001."""
    m = _RFC3339.match(value)
    if m is None:
        raise ValueError(f"expected an RFC 3339 date-time such as 2026-01-31T12:00:00Z, "
                         f"got {value[:40]!r}")
    date, time, frac, zone = m.groups()
    frac = (frac or "")[:7]  # '.' + at most 6 digits: Python keeps microseconds
    zone = "+00:00" if not zone or zone in "Zz" else zone
    try:
        return _utc(datetime.fromisoformat(f"{date}T{time}{frac}{zone}"))
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {value[:40]!r} ({exc})") from exc


# Validation context of data that came over the wire from another platform: there,
# no JSON type is coerced into another. Objects the bridge builds itself (pricing,
# journeys, tests) keep pydantic's usual conversions ("20" for a Decimal price).
WIRE: dict[str, Any] = {"ocpi_wire": True}


def _wire(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("ocpi_wire"))


def _datetime_in(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, datetime):
        return value
    if not _wire(info):
        try:
            return parse_datetime(value) if isinstance(value, str) else value
        except ValueError:
            return value  # pydantic's own parser has the last word
    if not isinstance(value, str):
        raise PydanticCustomError(
            "datetime_type", "Input should be an RFC 3339 date-time string, got {kind}",
            {"kind": _json_kind(value)})
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise PydanticCustomError("datetime_format", "{reason}", {"reason": str(exc)}) from exc


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


NUMBER_MAX = Decimal(10) ** 12
INT_MAX = 2**53 - 1


def _number_in(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        if not _wire(info):
            return value
        raise PydanticCustomError("number_type", "Input should be a JSON number, got {kind}",
                                  {"kind": _json_kind(value)})
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("number_finite", "Input should be a finite number")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite() or abs(number) >= NUMBER_MAX:
        raise PydanticCustomError("number_range",
                                  "Input should be less than 10^12 in magnitude")
    return number


def _number_json(value: Decimal) -> int | float:
    # JSON has one number type; float's shortest repr round-trips any decimal
    # with up to 15 significant digits, which covers every OCPI quantity.
    return int(value) if value == value.to_integral_value() else float(value)


DateTime = Annotated[
    datetime,
    BeforeValidator(_datetime_in),
    AfterValidator(_utc),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
]
Number = Annotated[Decimal, BeforeValidator(_number_in),
                   PlainSerializer(_number_json, when_used="json")]
def _int_in(value: Any, info: ValidationInfo) -> Any:
    if _wire(info) and (isinstance(value, bool) or not isinstance(value, int)):
        raise PydanticCustomError("int_type", "Input should be a JSON integer, got {kind}",
                                  {"kind": _json_kind(value)})
    return value


def _bool_in(value: Any, info: ValidationInfo) -> Any:
    if _wire(info) and not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "Input should be true or false, got {kind}",
                                  {"kind": _json_kind(value)})
    return value


# JSON integers only: no "400", no 400.0, no true; bounded so every peer reads them exactly.
Int = Annotated[int, BeforeValidator(_int_in), Ge(-INT_MAX), Le(INT_MAX)]
Bool = Annotated[bool, BeforeValidator(_bool_in)]
URL = Annotated[str, StringConstraints(max_length=255)]
CountryCode = Annotated[
    str, StringConstraints(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")
]
PartyId = Annotated[
    str, StringConstraints(min_length=3, max_length=3, pattern=r"^[A-Za-z0-9]{3}$")
]
Time5 = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Date10 = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-1][0-9]-[0-3][0-9]$")]


class OcpiModel(BaseModel):
    """Base of every OCPI object: extra fields ignored, enums kept as values."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False, populate_by_name=True)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# --- enums


class Role(StrEnum):  # §16.5.1 (credentials)
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class ModuleID(StrEnum):  # version information §6.1
    CDRS = "cdrs"
    CHARGING_PROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUB_CLIENT_INFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class ImageCategory(StrEnum):
    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class TokenType(StrEnum):  # §12.4.4
    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class Capability(StrEnum):  # §8.4.3
    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorFormat(StrEnum):  # §8.4.4
    SOCKET = "SOCKET"
    CABLE = "CABLE"


class ConnectorType(StrEnum):  # §8.4.5
    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class EnergySourceCategory(StrEnum):
    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class EnvironmentalImpactCategory(StrEnum):
    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class Facility(StrEnum):  # §8.4.12
    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class ParkingRestriction(StrEnum):
    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"


class ParkingType(StrEnum):
    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class PowerType(StrEnum):
    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class Status(StrEnum):  # §8.4.22
    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class ReservationRestrictionType(StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class TariffDimensionType(StrEnum):  # §11.4.5
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class TariffType(StrEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class AuthMethod(StrEnum):  # §10.4.1
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class CdrDimensionType(StrEnum):  # §10.4.3
    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


class SessionStatus(StrEnum):  # §9.4.2
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class AllowedType(StrEnum):  # §12.4.1
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class WhitelistType(StrEnum):
    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class ProfileType(StrEnum):
    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


class CommandType(StrEnum):  # §13.4.3
    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


# --- shared classes


class DisplayText(OcpiModel):  # §16.4
    language: CiString(2)  # type: ignore[valid-type]
    text: String(512)  # type: ignore[valid-type]


class Price(OcpiModel):  # §16.5
    excl_vat: Number
    incl_vat: Number | None = None


class Image(OcpiModel):  # §8.4.15
    url: URL
    thumbnail: URL | None = None
    category: ImageCategory
    type: CiString(4)  # type: ignore[valid-type]
    width: Int | None = Field(None, ge=0, le=99999)
    height: Int | None = Field(None, ge=0, le=99999)


class BusinessDetails(OcpiModel):  # §8.4.2
    name: String(100)  # type: ignore[valid-type]
    website: URL | None = None
    logo: Image | None = None


class GeoLocation(OcpiModel):  # §8.4.13
    latitude: Annotated[str, StringConstraints(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
    longitude: Annotated[
        str, StringConstraints(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")
    ]


class AdditionalGeoLocation(OcpiModel):
    latitude: Annotated[str, StringConstraints(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
    longitude: Annotated[
        str, StringConstraints(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")
    ]
    name: DisplayText | None = None


class RegularHours(OcpiModel):  # §8.4.21
    weekday: Int = Field(ge=1, le=7)
    period_begin: Time5
    period_end: Time5


class ExceptionalPeriod(OcpiModel):
    period_begin: DateTime
    period_end: DateTime


class Hours(OcpiModel):  # §8.4.14
    twentyfourseven: Bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None


class EnergySource(OcpiModel):
    source: EnergySourceCategory
    percentage: Number


class EnvironmentalImpact(OcpiModel):
    category: EnvironmentalImpactCategory
    amount: Number


class EnergyMix(OcpiModel):  # §8.4.7
    is_green_energy: Bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: String(64) | None = None  # type: ignore[valid-type]
    energy_product_name: String(64) | None = None  # type: ignore[valid-type]


class PublishTokenType(OcpiModel):  # §8.4.20
    uid: CiString(36) | None = None  # type: ignore[valid-type]
    type: TokenType | None = None
    visual_number: String(64) | None = None  # type: ignore[valid-type]
    issuer: String(64) | None = None  # type: ignore[valid-type]
    group_id: CiString(36) | None = None  # type: ignore[valid-type]


class StatusSchedule(OcpiModel):
    period_begin: DateTime
    period_end: DateTime | None = None
    status: Status


# --- locations (§8)


class Connector(OcpiModel):  # §8.3.3
    id: CiString(36)  # type: ignore[valid-type]
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: Int = Field(ge=0)
    max_amperage: Int = Field(ge=0)
    max_electric_power: Int | None = Field(None, ge=0)
    tariff_ids: list[CiString(36)] | None = None  # type: ignore[valid-type]
    terms_and_conditions: URL | None = None
    last_updated: DateTime


class EVSE(OcpiModel):  # §8.3.2
    uid: CiString(36)  # type: ignore[valid-type]
    evse_id: CiString(48) | None = None  # type: ignore[valid-type]
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: list[Connector] = Field(min_length=1)
    floor_level: String(4) | None = None  # type: ignore[valid-type]
    coordinates: GeoLocation | None = None
    physical_reference: String(16) | None = None  # type: ignore[valid-type]
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: DateTime


class Location(OcpiModel):  # §8.3.1
    country_code: CountryCode
    party_id: PartyId
    id: CiString(36)  # type: ignore[valid-type]
    publish: Bool
    publish_allowed_to: list[PublishTokenType] | None = None
    name: String(255) | None = None  # type: ignore[valid-type]
    address: String(45)  # type: ignore[valid-type]
    city: String(45)  # type: ignore[valid-type]
    postal_code: String(10) | None = None  # type: ignore[valid-type]
    state: String(20) | None = None  # type: ignore[valid-type]
    country: String(3)  # type: ignore[valid-type]
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String(255)  # type: ignore[valid-type]
    opening_times: Hours | None = None
    charging_when_closed: Bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


# --- tariffs (§11)


class PriceComponent(OcpiModel):  # §11.4.2
    type: TariffDimensionType
    price: Number = Field(ge=0)
    vat: Number | None = Field(None, ge=0)
    step_size: Int = Field(ge=0)


class TariffRestrictions(OcpiModel):  # §11.4.6
    start_time: Time5 | None = None
    end_time: Time5 | None = None
    start_date: Date10 | None = None
    end_date: Date10 | None = None
    min_kwh: Number | None = Field(None, ge=0)
    max_kwh: Number | None = Field(None, ge=0)
    min_current: Number | None = Field(None, ge=0)
    max_current: Number | None = Field(None, ge=0)
    min_power: Number | None = Field(None, ge=0)
    max_power: Number | None = Field(None, ge=0)
    min_duration: Int | None = Field(None, ge=0)
    max_duration: Int | None = Field(None, ge=0)
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None


class TariffElement(OcpiModel):  # §11.4.4
    price_components: list[PriceComponent] = Field(min_length=1)
    restrictions: TariffRestrictions | None = None


class Tariff(OcpiModel):  # §11.3.1
    country_code: CountryCode
    party_id: PartyId
    id: CiString(36)  # type: ignore[valid-type]
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: URL | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: list[TariffElement] = Field(min_length=1)
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


# --- sessions (§9) and CDRs (§10)


class CdrToken(OcpiModel):  # §10.4.5
    country_code: CountryCode
    party_id: PartyId
    uid: CiString(36)  # type: ignore[valid-type]
    type: TokenType
    contract_id: CiString(36)  # type: ignore[valid-type]


class CdrDimension(OcpiModel):  # §10.4.2
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(OcpiModel):  # §10.4.6
    start_date_time: DateTime
    dimensions: list[CdrDimension] = Field(min_length=1)
    tariff_id: CiString(36) | None = None  # type: ignore[valid-type]


class Session(OcpiModel):  # §9.3.1
    country_code: CountryCode
    party_id: PartyId
    id: CiString(36)  # type: ignore[valid-type]
    start_date_time: DateTime
    end_date_time: DateTime | None = None
    kwh: Number = Field(ge=0)
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString(36) | None = None  # type: ignore[valid-type]
    location_id: CiString(36)  # type: ignore[valid-type]
    evse_uid: CiString(36)  # type: ignore[valid-type]
    connector_id: CiString(36)  # type: ignore[valid-type]
    meter_id: String(255) | None = None  # type: ignore[valid-type]
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: DateTime


class CdrLocation(OcpiModel):  # §10.4.4
    id: CiString(36)  # type: ignore[valid-type]
    name: String(255) | None = None  # type: ignore[valid-type]
    address: String(45)  # type: ignore[valid-type]
    city: String(45)  # type: ignore[valid-type]
    postal_code: String(10) | None = None  # type: ignore[valid-type]
    state: String(20) | None = None  # type: ignore[valid-type]
    country: String(3)  # type: ignore[valid-type]
    coordinates: GeoLocation
    evse_uid: CiString(36)  # type: ignore[valid-type]
    evse_id: CiString(48)  # type: ignore[valid-type]
    connector_id: CiString(36)  # type: ignore[valid-type]
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class SignedValue(OcpiModel):
    nature: CiString(32)  # type: ignore[valid-type]
    plain_data: String(512)  # type: ignore[valid-type]
    signed_data: String(5000)  # type: ignore[valid-type]


class SignedData(OcpiModel):  # §10.4.8
    encoding_method: CiString(36)  # type: ignore[valid-type]
    encoding_method_version: Int | None = None
    public_key: String(512) | None = None  # type: ignore[valid-type]
    signed_values: list[SignedValue] = Field(min_length=1)
    url: String(512) | None = None  # type: ignore[valid-type]


class CDR(OcpiModel):  # §10.3.1
    country_code: CountryCode
    party_id: PartyId
    id: CiString(39)  # type: ignore[valid-type]
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: CiString(36) | None = None  # type: ignore[valid-type]
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString(36) | None = None  # type: ignore[valid-type]
    cdr_location: CdrLocation
    meter_id: String(255) | None = None  # type: ignore[valid-type]
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    tariffs: list[Tariff] | None = None
    charging_periods: list[ChargingPeriod] = Field(min_length=1)
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Number
    total_energy_cost: Price | None = None
    total_time: Number
    total_time_cost: Price | None = None
    total_parking_time: Number | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: String(255) | None = None  # type: ignore[valid-type]
    invoice_reference_id: CiString(39) | None = None  # type: ignore[valid-type]
    credit: Bool | None = None
    credit_reference_id: CiString(39) | None = None  # type: ignore[valid-type]
    home_charging_compensation: Bool | None = None
    last_updated: DateTime


# --- tokens (§12)


class EnergyContract(OcpiModel):
    supplier_name: String(64)  # type: ignore[valid-type]
    contract_id: String(64) | None = None  # type: ignore[valid-type]


class Token(OcpiModel):  # §12.3.2
    country_code: CountryCode
    party_id: PartyId
    uid: CiString(36)  # type: ignore[valid-type]
    type: TokenType
    contract_id: CiString(36)  # type: ignore[valid-type]
    visual_number: String(64) | None = None  # type: ignore[valid-type]
    issuer: String(64)  # type: ignore[valid-type]
    group_id: CiString(36) | None = None  # type: ignore[valid-type]
    valid: Bool
    whitelist: WhitelistType
    language: CiString(2) | None = None  # type: ignore[valid-type]
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class LocationReferences(OcpiModel):  # §12.4.3
    location_id: CiString(36)  # type: ignore[valid-type]
    evse_uids: list[CiString(36)] | None = None  # type: ignore[valid-type]


class AuthorizationInfo(OcpiModel):  # §12.4.1
    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString(36) | None = None  # type: ignore[valid-type]
    info: DisplayText | None = None


# --- commands (§13)


class CommandResponse(OcpiModel):  # §13.4.1
    result: CommandResponseType
    timeout: Int = Field(ge=0)
    message: list[DisplayText] | None = None


class CommandResult(OcpiModel):  # §13.4.2
    result: CommandResultType
    message: list[DisplayText] | None = None


class StartSession(OcpiModel):  # §13.3.5
    response_url: URL
    token: Token
    location_id: CiString(36)  # type: ignore[valid-type]
    evse_uid: CiString(36) | None = None  # type: ignore[valid-type]
    connector_id: CiString(36) | None = None  # type: ignore[valid-type]
    authorization_reference: CiString(36) | None = None  # type: ignore[valid-type]


class StopSession(OcpiModel):  # §13.3.6
    response_url: URL
    session_id: CiString(36)  # type: ignore[valid-type]


class ReserveNow(OcpiModel):  # §13.3.4
    response_url: URL
    token: Token
    expiry_date: DateTime
    reservation_id: CiString(36)  # type: ignore[valid-type]
    location_id: CiString(36)  # type: ignore[valid-type]
    evse_uid: CiString(36) | None = None  # type: ignore[valid-type]
    authorization_reference: CiString(36) | None = None  # type: ignore[valid-type]


class CancelReservation(OcpiModel):  # §13.3.1
    response_url: URL
    reservation_id: CiString(36)  # type: ignore[valid-type]


class UnlockConnector(OcpiModel):  # §13.3.7
    response_url: URL
    location_id: CiString(36)  # type: ignore[valid-type]
    evse_uid: CiString(36)  # type: ignore[valid-type]
    connector_id: CiString(36)  # type: ignore[valid-type]


COMMAND_MODELS: dict[CommandType, type[OcpiModel]] = {
    CommandType.START_SESSION: StartSession,
    CommandType.STOP_SESSION: StopSession,
    CommandType.RESERVE_NOW: ReserveNow,
    CommandType.CANCEL_RESERVATION: CancelReservation,
    CommandType.UNLOCK_CONNECTOR: UnlockConnector,
}


# --- versions and credentials (§6, §7)


class Version(OcpiModel):  # §6.1.2
    version: str
    url: URL


class Endpoint(OcpiModel):  # §6.2.2
    identifier: ModuleID | str
    role: InterfaceRole
    url: URL


class VersionDetails(OcpiModel):  # §6.2.1
    version: str
    endpoints: list[Endpoint]


class CredentialsRole(OcpiModel):  # §7.4.1
    role: Role
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode


class Credentials(OcpiModel):  # §7.3.1
    token: CiString(64) = Field(min_length=1)  # type: ignore[valid-type]
    url: URL
    roles: list[CredentialsRole] = Field(min_length=1)
