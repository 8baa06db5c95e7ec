"""The CPO network the mock serves: read from a TOML file (data, not code) and
optionally padded with `--generate N` synthetic locations (deterministic for a
given `--seed`, for benchmarks of 20,000 locations).

The file format is documented in docs/mock-cpo.md; connector `kind`s are the
presets below. OCPI 2.2.1 has no connector code for the Indian Bharat
standards: AC-001 uses IEC 60309 industrial sockets (230 V, 15 A), so it maps
to `IEC_60309_2_single_16`; DC-001 uses the GB/T 20234 DC connector, so it
maps to `GBT_DC`.
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bridge.ocpi.models import (
    EVSE,
    BusinessDetails,
    Connector,
    GeoLocation,
    Hours,
    Image,
    ImageCategory,
    Location,
    RegularHours,
    Status,
    Tariff,
)


class NetworkError(Exception):
    """The network file is invalid."""


@dataclass(frozen=True)
class ConnectorKind:
    standard: str
    format: str
    dc: bool
    voltage: int | None = None  # fixed voltage, else from power
    amperage: int | None = None


KINDS: dict[str, ConnectorKind] = {
    "CCS2": ConnectorKind("IEC_62196_T2_COMBO", "CABLE", dc=True, voltage=920),
    "CHADEMO": ConnectorKind("CHADEMO", "CABLE", dc=True, voltage=500),
    "TYPE2": ConnectorKind("IEC_62196_T2", "SOCKET", dc=False),
    "BHARAT_AC001": ConnectorKind("IEC_60309_2_single_16", "SOCKET", dc=False,
                                  voltage=230, amperage=15),
    "BHARAT_DC001": ConnectorKind("GBT_DC", "CABLE", dc=True, voltage=200),
}


@dataclass(frozen=True)
class Party:
    country_code: str
    party_id: str
    name: str
    website: str | None
    dc_tariff: str | None
    ac_tariff: str | None
    logo: str | None = None  # the operator's logo URL (BusinessDetails.logo)

    @property
    def key(self) -> tuple[str, str]:
        return (self.country_code, self.party_id)


@dataclass
class Network:
    platform_name: str
    time_zone: str
    parties: list[Party]
    locations: list[Location] = field(default_factory=list)
    tariffs: list[Tariff] = field(default_factory=list)


def connector_from_spec(spec: dict[str, Any], now: datetime) -> Connector:
    kind = KINDS.get(str(spec.get("kind")))
    if kind is None:
        raise NetworkError(f"unknown connector kind {spec.get('kind')!r} (known: {', '.join(KINDS)})")
    kw = Decimal(str(spec["kw"]))
    watts = int(kw * 1000)
    if kind.dc:
        power_type = "DC"
        voltage = kind.voltage or 500
        amperage = math.ceil(watts / voltage)
    elif kind.voltage and kind.amperage:
        power_type, voltage, amperage = "AC_1_PHASE", kind.voltage, kind.amperage
    elif kw <= Decimal("7.4"):
        power_type, voltage, amperage = "AC_1_PHASE", 230, math.ceil(watts / 230)
    else:  # three phase 400 V line-to-line: P = sqrt(3) * U * I
        power_type, voltage, amperage = "AC_3_PHASE", 400, math.ceil(watts / (400 * math.sqrt(3)))
    tariff = spec.get("tariff")
    return Connector(
        id=str(spec["id"]), standard=kind.standard, format=kind.format, power_type=power_type,
        max_voltage=voltage, max_amperage=amperage, max_electric_power=watts,
        tariff_ids=[tariff] if tariff else None, last_updated=now,
    )


_OPEN = re.compile(r"^([1-7])-([1-7]) (\d\d:\d\d)-(\d\d:\d\d)$")


def hours_from_spec(spec: Any) -> Hours:
    if spec in (None, "24/7"):
        return Hours(twentyfourseven=True)
    regular = []
    for item in spec:
        m = _OPEN.match(str(item))
        if not m:
            raise NetworkError(f"bad opening hours {item!r}: want 'D-D HH:MM-HH:MM'")
        for day in range(int(m.group(1)), int(m.group(2)) + 1):
            regular.append(RegularHours(weekday=day, period_begin=m.group(3), period_end=m.group(4)))
    return Hours(twentyfourseven=False, regular_hours=regular)


def location_from_spec(spec: dict[str, Any], parties: dict[str, Party], time_zone: str,
                       country: str, now: datetime) -> Location:
    party = parties.get(spec["party"])
    if party is None:
        raise NetworkError(f"location {spec.get('id')}: unknown party {spec['party']!r}")
    evses = [
        EVSE(
            uid=e["uid"], evse_id=e.get("evse_id"), status=Status.AVAILABLE,
            capabilities=e.get("capabilities"), physical_reference=e.get("physical_reference"),
            floor_level=e.get("floor_level"),
            connectors=[connector_from_spec(c, now) for c in e["connectors"]],
            last_updated=now,
        )
        for e in spec.get("evses", [])
    ]
    return Location(
        country_code=party.country_code, party_id=party.party_id, id=spec["id"], publish=True,
        name=spec.get("name"), address=spec["address"], city=spec["city"],
        postal_code=spec.get("postal_code"), state=spec.get("state"), country=country,
        coordinates=GeoLocation(latitude=spec["latitude"], longitude=spec["longitude"]),
        parking_type=spec.get("parking_type"), evses=evses or None,
        operator=BusinessDetails(name=party.name, website=party.website,
                                 logo=Image(url=party.logo, category=ImageCategory.OPERATOR,
                                            type="png") if party.logo else None),
        facilities=spec.get("facilities"), time_zone=spec.get("time_zone", time_zone),
        opening_times=hours_from_spec(spec.get("open")), charging_when_closed=False,
        last_updated=now,
    )


def tariff_from_spec(spec: dict[str, Any], parties: dict[str, Party], now: datetime) -> Tariff:
    party = parties.get(spec["party"])
    if party is None:
        raise NetworkError(f"tariff {spec.get('id')}: unknown party {spec['party']!r}")
    data = {k: v for k, v in spec.items() if k not in ("party", "alt_text")}
    data.update(country_code=party.country_code, party_id=party.party_id,
                currency=spec.get("currency", "INR"), last_updated=now)
    if spec.get("alt_text"):
        data["tariff_alt_text"] = [{"language": "en", "text": spec["alt_text"]}]
    return Tariff.model_validate(data)


def load_network(path: Path, now: datetime, generate: int = 0, seed: int = 1) -> Network:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh, parse_float=Decimal)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NetworkError(f"{path}: {exc}") from exc
    meta = doc.get("network", {})
    time_zone = meta.get("time_zone", "Asia/Kolkata")
    country = meta.get("country", "IND")
    parties = {
        p["party_id"]: Party(p["country_code"], p["party_id"], p["name"], p.get("website"),
                             p.get("dc_tariff"), p.get("ac_tariff"), p.get("logo"))
        for p in doc.get("parties", [])
    }
    if not parties:
        raise NetworkError(f"{path}: no [[parties]]")
    try:
        net = Network(
            platform_name=meta.get("platform_name", "ocpi-mock"), time_zone=time_zone,
            parties=list(parties.values()),
            tariffs=[tariff_from_spec(t, parties, now) for t in doc.get("tariffs", [])],
            locations=[location_from_spec(s, parties, time_zone, country, now)
                       for s in doc.get("locations", [])],
        )
    except (KeyError, ValueError) as exc:  # pydantic ValidationError is a ValueError
        raise NetworkError(f"{path}: {exc}") from exc
    tariff_ids = {(t.party_id, t.id) for t in net.tariffs}
    for loc in net.locations:
        for evse in loc.evses or []:
            for conn in evse.connectors:
                for tid in conn.tariff_ids or []:
                    if (loc.party_id, tid) not in tariff_ids:
                        raise NetworkError(f"{loc.id}/{evse.uid}: unknown tariff {tid!r}")
    if generate:
        net.locations.extend(generate_locations(net, generate, seed, now))
    return net


# Synthetic locations: city centre and spread (degrees) for `--generate`.
CITIES: list[tuple[str, str, str, float, float]] = [
    ("Bengaluru", "Karnataka", "560001", 12.9716, 77.5946),
    ("Pune", "Maharashtra", "411001", 18.5204, 73.8567),
    ("New Delhi", "Delhi", "110001", 28.6139, 77.2090),
    ("Gurugram", "Haryana", "122001", 28.4595, 77.0266),
    ("Noida", "Uttar Pradesh", "201301", 28.5355, 77.3910),
    ("Mumbai", "Maharashtra", "400001", 19.0760, 72.8777),
    ("Hyderabad", "Telangana", "500001", 17.3850, 78.4867),
    ("Chennai", "Tamil Nadu", "600001", 13.0827, 80.2707),
    ("Kolkata", "West Bengal", "700001", 22.5726, 88.3639),
    ("Ahmedabad", "Gujarat", "380001", 23.0225, 72.5714),
    ("Jaipur", "Rajasthan", "302001", 26.9124, 75.7873),
    ("Kochi", "Kerala", "682001", 9.9312, 76.2673),
]
_GEN_KINDS = [("CCS2", 60, True), ("CCS2", 30, True), ("CCS2", 120, True), ("CHADEMO", 50, True),
              ("TYPE2", 22, False), ("TYPE2", 7.4, False), ("BHARAT_AC001", 3.3, False),
              ("BHARAT_DC001", 15, True)]
_STREETS = ["MG Road", "Station Road", "Ring Road", "Mall Road", "Link Road", "Main Road",
            "Market Road", "Highway Service Road", "Tech Park Road", "Lake Road"]


def generate_locations(net: Network, n: int, seed: int, now: datetime) -> list[Location]:
    """N synthetic locations spread over Indian cities; same seed, same network."""
    rng = random.Random(seed)
    parties = {p.party_id: p for p in net.parties}
    out = []
    for i in range(n):
        party = net.parties[i % len(net.parties)]
        city, state, pin, lat, lon = CITIES[rng.randrange(len(CITIES))]
        evses = []
        for k in range(rng.randint(1, 4)):
            kind, kw, dc = _GEN_KINDS[rng.randrange(len(_GEN_KINDS))]
            caps = ["REMOTE_START_STOP_CAPABLE", "RFID_READER"]
            if dc and rng.random() < 0.3:
                caps.append("RESERVABLE")
            evses.append({
                "uid": f"GEN-{i:05d}-{k + 1}", "evse_id": f"IN*{party.party_id}*G{i:05d}*{k + 1}",
                "physical_reference": f"G{k + 1}", "capabilities": caps,
                "connectors": [{"id": "1", "kind": kind, "kw": kw,
                                "tariff": party.dc_tariff if dc else party.ac_tariff}],
            })
        spec = {
            "party": party.party_id, "id": f"GEN-{party.party_id}-{i:05d}",
            "name": f"{party.name.split(' (')[0]} {city} #{i}",
            "address": f"{rng.randint(1, 400)} {_STREETS[rng.randrange(len(_STREETS))]}",
            "city": city, "state": state, "postal_code": pin,
            "latitude": f"{lat + rng.uniform(-0.15, 0.15):.6f}",
            "longitude": f"{lon + rng.uniform(-0.15, 0.15):.6f}",
            "parking_type": rng.choice(["PARKING_LOT", "ON_STREET", "PARKING_GARAGE"]),
            "facilities": rng.sample(["CAFE", "RESTAURANT", "MALL", "WIFI", "SUPERMARKET"], 2),
            "open": "24/7" if rng.random() < 0.6 else ["1-7 08:00-22:00"],
            "evses": evses,
        }
        out.append(location_from_spec(spec, parties, net.time_zone, "IND", now))
    return out
