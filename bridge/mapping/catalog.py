"""OCPI Location/EVSE/Connector/Tariff -> Beckn 2.0 (RC2) catalog items and offers.

Pure functions; `now` is an argument. One Beckn item per OCPI connector (a
connector is what a driver plugs in and what a tariff is attached to); the
item carries its EVSE and location. One offer per item, from the connector's
first tariff.

    CPO party (CC, PID)   -> provider  beckn:id "CC-PID"
    Location              -> beckn:availableAt (GeoJSON Point + address), opening hours
                             -> beckn:availabilityWindow, itemAttributes.chargingStation
    EVSE + Connector      -> beckn:Item, itemAttributes @type ChargingService
                             (connectorType, maxPowerKW, powerType, connectorFormat,
                             chargingSpeed, evseId, stationStatus, parkingType,
                             amenityFeature, reservationSupported)
    Tariff                -> beckn:Offer: beckn:price = the plain ENERGY price per kWh
                             (VAT included); every ENERGY element with its restrictions
                             (e.g. the peak window) in beckn:price.components;
                             FLAT / TIME / PARKING_TIME as FEE components

Not listed (render returns None / skips): a location with `publish: false`
(also when `publish_allowed_to` names who may see it: discover is anonymous on
a Beckn network, so we cannot tell whether the asker is one of them), and
EVSEs whose status is REMOVED. A location with `publish: true` that still
carries `publish_allowed_to` (the spec says it must not) is treated as
restricted, i.e. not listed: the safe reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.mapping.hours import compact as compact_hours
from bridge.ocpi.models import (
    EVSE,
    Capability,
    Connector,
    ConnectorType,
    Location,
    PowerType,
    Status,
    Tariff,
    TariffDimensionType,
    TariffElement,
)

CTX_ITEM = "https://becknprotocol.io/schemas/core/v2/Item/schema-context.jsonld"
CTX_OFFER = "https://becknprotocol.io/schemas/core/v2/Offer/schema-context.jsonld"
CTX_CATALOG = "https://becknprotocol.io/schemas/core/v2/Catalog/schema-context.jsonld"
CTX_SERVICE = ("https://raw.githubusercontent.com/beckn/protocol-specifications-v2/refs/heads/"
               "core-v2.0.0-rc2/schema/EvChargingService/v1/context.jsonld")
CTX_OFFER_ATTRS = ("https://raw.githubusercontent.com/beckn/protocol-specifications-v2/refs/heads/"
                   "core-v2.0.0-rc2/schema/EvChargingOffer/v1/context.jsonld")

# OCPI connector standard -> a readable connector type: for the standards that fit the
# EvChargingService enum (CCS2, Type2, CHAdeMO, GB_T) the enum's value; the others keep
# a readable name outside the enum, which only the guide profile lists (protocol notes).
CONNECTOR_TYPES: dict[ConnectorType, str] = {
    ConnectorType.IEC_62196_T2_COMBO: "CCS2",
    ConnectorType.IEC_62196_T2: "Type2",
    ConnectorType.CHADEMO: "CHAdeMO",
    ConnectorType.GBT_AC: "GB_T",
    ConnectorType.GBT_DC: "GB_T",
    ConnectorType.IEC_62196_T1_COMBO: "CCS1",
    ConnectorType.IEC_62196_T1: "Type1",
    ConnectorType.CHAOJI: "ChaoJi",
}
# The EvChargingService pack's connectorType enum (rc2): an item whose connector is none of
# these cannot be written valid in the rc2 profile (the field is required).
PACK_CONNECTOR_TYPES = frozenset({"CCS2", "Type2", "CHAdeMO", "GB_T"})
# The exact OCPI standard rides in the item's descriptor under this key (rc2 profile; the
# ChargingService bag admits no extra field): "GB_T" may be GBT_AC or GBT_DC (Bharat DC-001).
OCPI_STANDARD = "ocpi:standard"
POWER_TYPES = {PowerType.AC_1_PHASE: "AC_SINGLE_PHASE", PowerType.AC_2_PHASE: "AC_SINGLE_PHASE",
               PowerType.AC_2_PHASE_SPLIT: "AC_SINGLE_PHASE", PowerType.AC_3_PHASE: "AC_3_PHASE",
               PowerType.DC: "DC"}
PARKING = {"ON_STREET": "OnStreet", "UNDERGROUND_GARAGE": "Basement", "PARKING_GARAGE": "OffStreet",
           "PARKING_LOT": "OffStreet", "ON_DRIVEWAY": "OffStreet", "ALONG_MOTORWAY": "OffStreet"}
AMENITIES = {"RESTAURANT": "RESTAURANT", "CAFE": "RESTAURANT", "WIFI": "WI-FI",
             "PARKING_LOT": "PARKING", "CARPOOL_PARKING": "PARKING"}
STATION_STATUS = {Status.AVAILABLE: "Available", Status.CHARGING: "Occupied",
                  Status.BLOCKED: "Occupied", Status.RESERVED: "Reserved",
                  Status.INOPERATIVE: "OutOfService", Status.OUTOFORDER: "OutOfService",
                  Status.PLANNED: "Planned", Status.UNKNOWN: "Unknown"}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Power bands of the discover index: a location is in band b if it has an item of >= b kW.
POWER_BANDS = (0, 3, 7, 11, 22, 50, 100, 150, 350)

STOPWORDS = frozenset({"ev", "charger", "chargers", "charging", "station", "stations", "point",
                       "connector", "connectors", "near", "me", "the", "a", "an", "and", "of",
                       "in", "at", "for", "with", "to", "plug", "electric", "vehicle"})
_TOKEN = re.compile(r"[a-z0-9]+")
CENT = Decimal("0.01")


def tokens(*texts: str | None) -> set[str]:
    out: set[str] = set()
    for text in texts:
        if text:
            out.update(t for t in _TOKEN.findall(text.lower()) if len(t) > 1 and t not in STOPWORDS)
    return out


def location_ref(cc: str, pid: str, lid: str) -> str:
    return f"{cc.upper()}:{pid.upper()}:{lid.lower()}"


def provider_id(cc: str, pid: str) -> str:
    return f"{cc.upper()}-{pid.upper()}"


def _q(part: str) -> str:
    return quote(part.lower(), safe="-_.~*")


def item_id(cc: str, pid: str, lid: str, evse_uid: str, connector_id: str) -> str:
    """Stable Beckn item id of one connector: `CC:PID:location:evse:connector`,
    each OCPI id lower-cased and percent-encoded so it can be split again."""
    return f"{cc.upper()}:{pid.upper()}:{_q(lid)}:{_q(evse_uid)}:{_q(connector_id)}"


@dataclass(frozen=True)
class ItemRef:
    cc: str
    pid: str
    location_id: str
    evse_uid: str
    connector_id: str

    @property
    def location_ref(self) -> str:
        return location_ref(self.cc, self.pid, self.location_id)


def parse_item_id(value: str) -> ItemRef | None:
    """The OCPI references of a Beckn item id (None if it is not one of ours)."""
    parts = value.split(":")
    if len(parts) != 5 or len(parts[0]) != 2 or len(parts[1]) != 3:
        return None
    return ItemRef(parts[0], parts[1], unquote(parts[2]), unquote(parts[3]), unquote(parts[4]))


def offer_id(item: str) -> str:
    return f"offer:{item}"


def normalise_evse_id(value: str) -> str:
    """EVSE ids are written with or without separators (IN*TPC*E1, INTPCE1, IN-TPC-E1)."""
    return re.sub(r"[^A-Z0-9]", "", value.upper())


def connector_type(c: Connector) -> str:
    return CONNECTOR_TYPES.get(c.standard, c.standard.value)


def power_kw(c: Connector) -> float:
    if c.max_electric_power:
        watts = Decimal(c.max_electric_power)
    else:
        phases = 3 if c.power_type == PowerType.AC_3_PHASE else 1
        watts = Decimal(c.max_voltage) * Decimal(c.max_amperage) * phases
    return float((watts / 1000).quantize(Decimal("0.1"), ROUND_HALF_UP))


def charging_speed(kw: float) -> str:
    if kw < 7.5:
        return "SLOW"
    if kw < 25:
        return "NORMAL"
    if kw < 150:
        return "FAST"
    return "ULTRAFAST"


def power_band(kw: float) -> int:
    return max(b for b in POWER_BANDS if kw >= b)


def _num(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


def _address(loc: Location) -> dict[str, Any]:
    addr: dict[str, Any] = {"streetAddress": loc.address, "addressLocality": loc.city,
                            "addressCountry": loc.country}
    if loc.state:
        addr["addressRegion"] = loc.state
    if loc.postal_code:
        addr["postalCode"] = loc.postal_code
    return addr


def _place(loc: Location, evse: EVSE | None = None) -> dict[str, Any]:
    coords = (evse.coordinates if evse and evse.coordinates else loc.coordinates)
    return {"@type": "beckn:Location",
            "geo": {"type": "Point",
                    "coordinates": [float(coords.longitude), float(coords.latitude)]},
            "address": _address(loc)}


def utc_offset(time_zone: str | None, now: datetime) -> str:
    """`+05:30`: the zone's offset from UTC at `now` (`Z` for UTC or an unknown zone)."""
    try:
        offset = now.astimezone(ZoneInfo(time_zone or "UTC")).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        offset = None
    if not offset:
        return "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _windows(loc: Location, now: datetime) -> list[dict[str, Any]] | None:
    """Opening hours as TimePeriods. `format: time` (RFC 3339) needs a UTC offset: the
    local times carry the location's offset at `now` (the catalog is re-rendered when
    the location changes; a zone with daylight saving shifts at the next render)."""
    hours = loc.opening_times
    if hours is None or hours.twentyfourseven:
        return None
    off = utc_offset(loc.time_zone, now)
    return [{"@type": "beckn:TimePeriod",
             "schema:startTime": f"{h.period_begin}:00{off}",
             "schema:endTime": f"{'23:59:59' if h.period_end == '24:00' else h.period_end + ':00'}{off}",
             "schema:dayOfWeek": f"https://schema.org/{WEEKDAYS[h.weekday - 1]}"}
            for h in hours.regular_hours or []]


def provider(loc: Location) -> dict[str, Any]:
    name = (loc.operator.name if loc.operator else None) or provider_id(loc.country_code,
                                                                       loc.party_id)
    desc: dict[str, Any] = {"@type": "beckn:Descriptor", "schema:name": name,
                            "beckn:shortDesc": f"EV charging by {name}"}
    if loc.operator and loc.operator.logo:
        desc["schema:image"] = [loc.operator.logo.url]
    return {"beckn:id": provider_id(loc.country_code, loc.party_id), "beckn:descriptor": desc}


# --- tariffs


@dataclass(frozen=True)
class EnergyRate:
    """One ENERGY price of a tariff, per kWh, with the restrictions it applies under."""

    price: Decimal  # excl. VAT
    vat: Decimal | None
    restrictions: dict[str, Any]

    @property
    def incl_vat(self) -> Decimal:
        gross = self.price * (1 + (self.vat or Decimal(0)) / 100)
        return gross.quantize(CENT, ROUND_HALF_UP)


def _restrictions(el: TariffElement) -> dict[str, Any]:
    if el.restrictions is None:
        return {}
    return el.restrictions.model_dump(mode="json", exclude_none=True)


def energy_rates(tariff: Tariff) -> list[EnergyRate]:
    """The plain ENERGY prices of a tariff, in element order (OCPI: the first
    element whose restrictions hold applies)."""
    return [EnergyRate(pc.price, pc.vat, _restrictions(el))
            for el in tariff.elements for pc in el.price_components
            if pc.type == TariffDimensionType.ENERGY]


def base_rate(rates: list[EnergyRate]) -> EnergyRate | None:
    """The rate shown as the offer price: the unrestricted one, else the first."""
    for r in rates:
        if not r.restrictions:
            return r
    return rates[0] if rates else None


def describe_restrictions(r: Mapping[str, Any]) -> str:
    parts = []
    if "start_time" in r or "end_time" in r:
        parts.append(f"{r.get('start_time', '00:00')}-{r.get('end_time', '24:00')}")
    if "day_of_week" in r:
        parts.append(",".join(d[:3] for d in r["day_of_week"]))
    if "start_date" in r or "end_date" in r:
        parts.append(f"{r.get('start_date', '')}..{r.get('end_date', '')}")
    for key, unit in (("min_kwh", "kWh"), ("max_kwh", "kWh"), ("min_power", "kW"),
                      ("max_power", "kW"), ("min_duration", "s"), ("max_duration", "s")):
        if key in r:
            parts.append(f"{key.split('_')[0]} {r[key]} {unit}")
    return " ".join(parts) or "always"


def _component(rate: EnergyRate, currency: str) -> dict[str, Any]:
    comp: dict[str, Any] = {"type": "UNIT", "value": _num(rate.incl_vat), "currency": currency,
                            "description": f"energy per kWh, {describe_restrictions(rate.restrictions)}",
                            "unitCode": "KWH"}
    r = rate.restrictions
    if "start_time" in r:
        comp["startTime"] = r["start_time"]
    if "end_time" in r:
        comp["endTime"] = r["end_time"]
    if "day_of_week" in r:
        comp["daysOfWeek"] = r["day_of_week"]
    if rate.vat is not None:
        comp["vatPercent"] = _num(rate.vat)
    return comp


def render_offer(tariff: Tariff, item: str, prov: str, now: datetime) -> dict[str, Any] | None:
    """The offer of one item from its tariff; None if the tariff has no energy price
    or is not valid at `now`."""
    if tariff.end_date_time is not None and tariff.end_date_time <= now:
        return None
    rates = energy_rates(tariff)
    base = base_rate(rates)
    if base is None:
        return None
    cur = tariff.currency
    components = [_component(r, cur) for r in rates]
    for el in tariff.elements:
        for pc in el.price_components:
            if pc.type == TariffDimensionType.ENERGY:
                continue
            unit = {"FLAT": "per session", "TIME": "per hour charging",
                    "PARKING_TIME": "per hour parked"}[pc.type.value]
            components.append({"type": "FEE", "value": _num(pc.price), "currency": cur,
                               "description": f"{pc.type.value.lower()} {unit}, "
                                              f"{describe_restrictions(_restrictions(el))}"})
    timed = any("start_time" in r.restrictions or "day_of_week" in r.restrictions for r in rates)
    name = next((t.text for t in tariff.tariff_alt_text or [] if t.language.lower() == "en"),
                None) or f"{_num(base.incl_vat)} {cur}/kWh"
    offer: dict[str, Any] = {
        "@context": CTX_OFFER, "@type": "beckn:Offer", "beckn:id": offer_id(item),
        "beckn:descriptor": {"@type": "beckn:Descriptor", "schema:name": name,
                             "beckn:shortDesc": "; ".join(
                                 f"{_num(r.incl_vat)} {cur}/kWh {describe_restrictions(r.restrictions)}"
                                 for r in rates)},
        "beckn:provider": prov, "beckn:items": [item],
        "beckn:price": {"currency": cur, "value": _num(base.incl_vat),
                        "applicableQuantity": {"unitText": "kWh", "unitCode": "KWH",
                                               "unitQuantity": 1},
                        "components": components},
        "beckn:offerAttributes": {"@context": CTX_OFFER_ATTRS, "@type": "ChargingOffer",
                                  "tariffModel": "TIME_OF_DAY" if timed else "PER_KWH"},
    }
    if tariff.start_date_time or tariff.end_date_time:
        validity: dict[str, Any] = {"@type": "beckn:TimePeriod"}
        if tariff.start_date_time:
            validity["schema:startDate"] = tariff.start_date_time.isoformat().replace("+00:00", "Z")
        if tariff.end_date_time:
            validity["schema:endDate"] = tariff.end_date_time.isoformat().replace("+00:00", "Z")
        offer["beckn:validity"] = validity
    return offer


# --- items


@dataclass(frozen=True)
class Facet:
    """What the discover indexes need to know about one item, without parsing it."""

    item_id: str
    connector_type: str
    kw: float
    status: str  # stationStatus
    evse_uid: str
    evse_id: str  # normalised, "" if none
    offer: str | None = None  # key of the location's offer template (a tariff id), if any

    def row(self) -> list[Any]:
        return [self.item_id, self.connector_type, self.kw, self.status, self.evse_uid,
                self.evse_id, self.offer]

    @classmethod
    def from_row(cls, row: list[Any]) -> Facet:
        return cls(row[0], row[1], float(row[2]), row[3], row[4], row[5],
                   row[6] if len(row) > 6 else None)


# Facet rows as stored (lists, read without building a Facet on the discover path)
ROW_ITEM, ROW_CT, ROW_KW, ROW_STATUS, ROW_UID, ROW_EVSE, ROW_OFFER = range(7)

# An item's offer differs from its neighbours' (same tariff) only by the item id, so a
# location stores one offer *template* per tariff, rendered with this placeholder as the
# item id; discover substitutes the real id in the serialised bytes. The placeholder has
# NULs, which JSON always escapes, so it cannot occur in rendered text.
OFFER_ITEM = "\x00item\x00"


@dataclass
class RenderedItem:
    facet: Facet
    item: dict[str, Any]
    offer: dict[str, Any] | None  # the offer template (see OFFER_ITEM), shared by the location


@dataclass
class RenderedLocation:
    ref: str
    provider_id: str
    provider: dict[str, Any]
    lon: float
    lat: float
    items: list[RenderedItem] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    tariff_ids: set[str] = field(default_factory=set)
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)  # templates by tariff id
    hours: dict[str, Any] | None = None  # zone and opening hours: discover's window check


def listed(loc: Location) -> bool:
    return loc.publish and not loc.publish_allowed_to


def render_item(loc: Location, evse: EVSE, conn: Connector, tariffs: Mapping[str, Tariff],
                prov: dict[str, Any], network_ids: list[str], now: datetime,
                offers: dict[str, dict[str, Any] | None] | None = None) -> RenderedItem:
    """One item and the template of its offer (`offers` memoises templates by tariff id
    across the items of a location)."""
    memo: dict[str, dict[str, Any] | None] = {} if offers is None else offers
    cc, pid = loc.country_code.upper(), loc.party_id.upper()
    iid = item_id(cc, pid, loc.id, evse.uid, conn.id)
    ct = connector_type(conn)
    kw = power_kw(conn)
    status = STATION_STATUS.get(evse.status, "Unknown")
    current = "DC" if conn.power_type == PowerType.DC else "AC"
    place = _place(loc, evse)
    label = evse.physical_reference or evse.evse_id or evse.uid
    # The pack's fields only (additionalProperties: false): the EVSE status is in the
    # facets (discover's index) and the descriptor; the connector in the item id.
    attrs: dict[str, Any] = {
        "@context": CTX_SERVICE, "@type": "ChargingService",
        "evseId": evse.evse_id or evse.uid,
        "connectorType": ct, "maxPowerKW": kw, "powerType": POWER_TYPES[conn.power_type],
        "connectorFormat": conn.format.value, "chargingSpeed": charging_speed(kw),
        "reservationSupported": Capability.RESERVABLE in (evse.capabilities or []),
        # serviceLocation is left out: it is beckn:availableAt[0] again (memory per EVSE).
        "chargingStation": {"id": loc.id},
    }
    if loc.parking_type:
        attrs["parkingType"] = PARKING[loc.parking_type.value]
    amenities = sorted({AMENITIES[f.value] for f in loc.facilities or [] if f.value in AMENITIES})
    if amenities:
        attrs["amenityFeature"] = amenities
    desc: dict[str, Any] = {
        "@type": "beckn:Descriptor",
        "schema:name": f"{loc.name or loc.address} - {label} ({ct} {kw:g} kW {current})",
        "beckn:shortDesc": f"{ct} {kw:g} kW {current}, {status}",
        OCPI_STANDARD: conn.standard.value,
    }
    images = [i.url for i in (evse.images or []) + (loc.images or [])]
    if images:
        desc["schema:image"] = images[:4]
    item: dict[str, Any] = {
        "@context": CTX_ITEM, "@type": "beckn:Item", "beckn:id": iid,
        "beckn:descriptor": desc,
        "beckn:category": {"@type": "schema:CategoryCode", "schema:codeValue": "ev-charging",
                           "schema:name": "EV Charging"},
        "beckn:availableAt": [place],
        "beckn:rateable": True,
        "beckn:isActive": evse.status not in (Status.INOPERATIVE, Status.OUTOFORDER,
                                              Status.PLANNED),
        "beckn:provider": prov,
        "beckn:itemAttributes": attrs,
    }
    windows = _windows(loc, now)
    if windows:
        item["beckn:availabilityWindow"] = windows
    if network_ids:
        item["beckn:networkId"] = network_ids
    offer = None
    offer_key = None
    for tid in conn.tariff_ids or []:
        key = tid.lower()
        tariff = tariffs.get(key)
        if tariff is not None:
            if key not in memo:
                memo[key] = render_offer(tariff, OFFER_ITEM, prov["beckn:id"], now)
            offer = memo[key]
            if offer is not None:
                offer_key = key
                break
    facet = Facet(iid, ct, kw, status, evse.uid.lower(),
                  normalise_evse_id(evse.evse_id) if evse.evse_id else "", offer_key)
    return RenderedItem(facet, item, offer)



def render_location(loc: Location, tariffs: Mapping[str, Tariff], now: datetime,
                    network_ids: Iterable[str] = ()) -> RenderedLocation | None:
    """Everything discover needs of one location, or None if it is not to be listed.
    `tariffs` maps lower-cased tariff ids of the location's party to tariffs."""
    if not listed(loc):
        return None
    prov = provider(loc)
    rendered = RenderedLocation(
        ref=location_ref(loc.country_code, loc.party_id, loc.id),
        provider_id=prov["beckn:id"], provider=prov,
        lon=float(loc.coordinates.longitude), lat=float(loc.coordinates.latitude),
        hours=compact_hours(loc.opening_times, loc.time_zone))
    nets = list(network_ids)
    offers: dict[str, dict[str, Any] | None] = {}
    for evse in loc.evses or []:
        if evse.status == Status.REMOVED:
            continue
        for conn in evse.connectors:
            rendered.items.append(render_item(loc, evse, conn, tariffs, prov, nets, now, offers))
            rendered.tariff_ids.update(t.lower() for t in conn.tariff_ids or [])
    rendered.offers = {k: v for k, v in offers.items() if v is not None}
    rendered.tokens = tokens(loc.name, loc.address, loc.city, loc.postal_code, loc.state,
                             loc.operator.name if loc.operator else None,
                             loc.suboperator.name if loc.suboperator else None,
                             loc.owner.name if loc.owner else None,
                             prov["beckn:descriptor"]["schema:name"])
    return rendered


def catalog_header(prov: Mapping[str, Any], bpp_id: str, bpp_uri: str) -> dict[str, Any]:
    """`beckn:Catalog` without items/offers: one per CPO provider in on_discover."""
    return {"@context": CTX_CATALOG, "@type": "beckn:Catalog",
            "beckn:id": f"catalog:{prov['beckn:id']}",
            "beckn:descriptor": {**prov["beckn:descriptor"]},
            "beckn:providerId": prov["beckn:id"], "beckn:bppId": bpp_id, "beckn:bppUri": bpp_uri}
