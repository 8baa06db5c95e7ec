"""The catalog in the guide profile's words, and the item as discover's filters see it.

Pure functions over the pre-rendered rc2 item (bridge/mapping/catalog.py) and its
facet row; no second catalog is stored: the guide profile is a rendering at the edge.

    beckn:availableAt[].geo (GeoJSON)   -> beckn:gps {schema:latitude, schema:longitude}
    address (PostalAddress, plain keys) -> beckn:address {schema:streetAddress, ...}
    ChargingService bag                 -> ev:EVChargingAttributes (example 02):
        connectorType -> ev:connectorType, powerType -> ev:currentType (AC | DC),
        maxPowerKW -> ev:maxPowerKW, the EVSE status (facet) -> ev:availability,
        reservationSupported -> ev:providerTags [SPOT, RESERVATION], the offer's price
        per kWh -> ev:tariff {schema:price, schema:priceCurrency, ev:pricingUnit}
"""

from __future__ import annotations

from typing import Any

CTX_ITEM_V1 = "https://becknprotocol.io/schemas/core/v1/Item/schema-context.jsonld"
CTX_CATALOG_V1 = "https://becknprotocol.io/schemas/core/v1/Catalog/schema-context.jsonld"
CTX_EV_ATTRS = "https://example.org/schema/items/v1/EVCharging/item-attributes.schema.json"

# facet stationStatus -> the guide's ev:availability
AVAILABILITY = {"Available": "AVAILABLE", "Occupied": "OCCUPIED", "Reserved": "RESERVED",
                "OutOfService": "OUT-OF-SERVICE", "Planned": "UNAVAILABLE", "Unknown": "UNKNOWN"}
ADDRESS = {"streetAddress": "schema:streetAddress", "addressLocality": "schema:addressLocality",
           "addressRegion": "schema:addressRegion", "postalCode": "schema:postalCode",
           "addressCountry": "schema:addressCountry"}


def current_type(power_type: Any) -> str:
    return "DC" if power_type == "DC" else "AC"


def ev_attributes(attrs: dict[str, Any], status: str, offer: dict[str, Any] | None
                  ) -> dict[str, Any]:
    out: dict[str, Any] = {"@context": CTX_EV_ATTRS, "@type": "ev:EVChargingAttributes",
                           "ev:connectorType": attrs.get("connectorType"),
                           "ev:currentType": current_type(attrs.get("powerType")),
                           "ev:maxPowerKW": attrs.get("maxPowerKW"),
                           "ev:availability": AVAILABILITY.get(status, "UNKNOWN"),
                           "ev:evseId": attrs.get("evseId"),
                           "ev:providerTags": ["SPOT", *(["RESERVATION"] if attrs.get(
                               "reservationSupported") else [])]}
    price = (offer or {}).get("beckn:price") or {}
    if price.get("value") is not None:
        out["ev:tariff"] = {"schema:price": price["value"],
                            "schema:priceCurrency": price.get("currency", "INR"),
                            "ev:pricingUnit": "PER_KWH"}
    for key in ("powerType", "chargingSpeed", "connectorFormat", "parkingType",
                "amenityFeature"):
        if key in attrs:
            out[f"ev:{key}"] = attrs[key]
    return out


def place(loc: dict[str, Any]) -> dict[str, Any]:
    coords = (loc.get("geo") or {}).get("coordinates") or [None, None]
    out: dict[str, Any] = {"@type": "beckn:Location",
                           "beckn:gps": {"schema:latitude": coords[1],
                                         "schema:longitude": coords[0]}}
    addr = loc.get("address")
    if isinstance(addr, dict):
        out["beckn:address"] = {ADDRESS[k]: v for k, v in addr.items() if k in ADDRESS}
    return out


def guide_item(item: dict[str, Any], status: str, offer: dict[str, Any] | None
               ) -> dict[str, Any]:
    """The guide's item (example 02) from the pre-rendered rc2 item, its facet's status
    and its offer."""
    out = {k: v for k, v in item.items() if k not in ("@context", "beckn:availableAt",
                                                     "beckn:itemAttributes")}
    out["@context"] = CTX_ITEM_V1
    out["beckn:availableAt"] = [place(loc) for loc in item.get("beckn:availableAt") or []]
    out["beckn:itemAttributes"] = ev_attributes(item.get("beckn:itemAttributes") or {}, status,
                                                offer)
    return out


def filter_view(item: dict[str, Any], status: str) -> dict[str, Any]:
    """The item as a discover filter sees it, in every profile: the rc2 names, the EVSE
    status as `stationStatus` (the pack has no such field, filters use it), and the
    guide's names for the same values (`ev:connectorType`, `ev:maxPowerKW`,
    `ev:availability`, `ev:currentType`, `connector-type`), so a filter written in either
    vocabulary finds the same chargers."""
    attrs = dict(item.get("beckn:itemAttributes") or {})
    attrs["stationStatus"] = status
    attrs.update({"ev:connectorType": attrs.get("connectorType"),
                  "connector-type": attrs.get("connectorType"),
                  "ev:maxPowerKW": attrs.get("maxPowerKW"),
                  "ev:currentType": current_type(attrs.get("powerType")),
                  "ev:availability": AVAILABILITY.get(status, "UNKNOWN"),
                  "ev:evseId": attrs.get("evseId")})
    view = {**item, "beckn:itemAttributes": attrs, "itemAttributes": attrs}
    return view
