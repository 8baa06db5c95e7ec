"""The catalog in the LTS profile's words: Resources and Offers.

Pure functions over the pre-rendered rc2 item and offer (bridge/mapping/catalog.py) and
the item's facet row; no second catalog is stored: the LTS is a rendering at the edge,
like the guide's (bridge/mapping/catalog_guide.py).

    beckn:Item (one per connector)        Resource {id, descriptor, resourceAttributes}
      beckn:itemAttributes                  resourceAttributes: the same ChargingService
                                            bag, its chargingStation.serviceLocation the
                                            item's place (a Resource has no availableAt)
      beckn:descriptor, the EVSE status     descriptor {name, shortDesc, code: the status,
      (facet), opening hours, the OCPI      longDesc: the hours and the exact standard,
      standard                              thumbnailImage}
    beckn:Offer (one per connector)       Offer {id, descriptor, resourceIds, validity,
      beckn:price                           considerations [a PriceSpecification bag],
      beckn:offerAttributes                 offerAttributes: the same ChargingOffer bag}
    catalog header (one per CPO)          Catalog {id, descriptor, provider {id,
                                            descriptor, availableAt: the page's places}}
The LTS Catalog of release-v2.0.0-lts has no `bppId`/`bppUri` (the core tag's optional
ones are left out so one catalog is valid against both).
"""

from __future__ import annotations

from typing import Any

from bridge.mapping.catalog import OCPI_STANDARD

CTX_CORE = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
            "schema/core/v2/context.jsonld")
PRICE_TYPE = "beckn:PriceSpecification"
_DAYS = {"Monday": "Mon", "Tuesday": "Tue", "Wednesday": "Wed", "Thursday": "Thu",
         "Friday": "Fri", "Saturday": "Sat", "Sunday": "Sun"}


def descriptor(rc2: dict[str, Any] | None) -> dict[str, Any]:
    """An rc2 `beckn:Descriptor` as the LTS Descriptor (its own fields only)."""
    d = rc2 or {}
    out: dict[str, Any] = {}
    if d.get("schema:name"):
        out["name"] = str(d["schema:name"])
    if d.get("beckn:shortDesc"):
        out["shortDesc"] = str(d["beckn:shortDesc"])
    if d.get("beckn:longDesc"):
        out["longDesc"] = str(d["beckn:longDesc"])
    images = d.get("schema:image")
    if isinstance(images, list) and images:
        out["thumbnailImage"] = str(images[0])
    elif isinstance(images, str) and images:
        out["thumbnailImage"] = images
    return out


def place(loc: dict[str, Any]) -> dict[str, Any]:
    """An rc2 Location as the LTS Location `{geo, address}` (no `@type`: closed schema)."""
    out: dict[str, Any] = {"geo": loc["geo"]}
    if loc.get("address"):
        out["address"] = loc["address"]
    return out


def _hours(windows: Any) -> str | None:
    if not isinstance(windows, list) or not windows:
        return None
    parts = []
    for w in windows:
        day = str(w.get("schema:dayOfWeek", "")).rsplit("/", 1)[-1]
        start = str(w.get("schema:startTime", ""))[:5]
        end = str(w.get("schema:endTime", ""))[:5]
        parts.append(f"{_DAYS.get(day, day)} {start}-{end}")
    return "Open " + ", ".join(parts)


def lts_resource(item: dict[str, Any], status: str) -> dict[str, Any]:
    """One rc2 catalog item as an LTS Resource; `status` is its EVSE status (facet)."""
    desc = descriptor(item.get("beckn:descriptor"))
    desc["code"] = status
    notes = [n for n in (_hours(item.get("beckn:availabilityWindow")),
                         f"OCPI connector {item['beckn:descriptor'][OCPI_STANDARD]}"
                         if OCPI_STANDARD in (item.get("beckn:descriptor") or {}) else None)
             if n]
    if notes:
        desc["longDesc"] = ". ".join(notes)
    out: dict[str, Any] = {"id": item["beckn:id"], "descriptor": desc}
    attrs = item.get("beckn:itemAttributes")
    if isinstance(attrs, dict):
        attrs = dict(attrs)
        where = (item.get("beckn:availableAt") or [None])[0]
        if isinstance(where, dict):
            attrs["chargingStation"] = {**(attrs.get("chargingStation") or {}),
                                        "serviceLocation": where}
        out["resourceAttributes"] = attrs
    return out


def lts_offer(offer: dict[str, Any]) -> dict[str, Any]:
    """An rc2 `beckn:Offer` as the LTS Offer: its price as a consideration."""
    out: dict[str, Any] = {"id": offer["beckn:id"], "descriptor": descriptor(
        offer.get("beckn:descriptor")), "resourceIds": list(offer.get("beckn:items") or [])}
    price = offer.get("beckn:price")
    if isinstance(price, dict):
        out["considerations"] = [{
            "id": f"price:{offer['beckn:id']}", "status": {"code": "OFFERED"},
            "considerationAttributes": {"@context": CTX_CORE, "@type": PRICE_TYPE, **price}}]
    validity = offer.get("beckn:validity")
    if isinstance(validity, dict):
        v = {k: validity[f"schema:{k}"] for k in ("startDate", "endDate")
             if validity.get(f"schema:{k}")}
        if v:
            out["validity"] = v
    if isinstance(offer.get("beckn:offerAttributes"), dict):
        out["offerAttributes"] = offer["beckn:offerAttributes"]
    return out


def lts_catalog(header: dict[str, Any], resources: list[dict[str, Any]],
                offers: list[dict[str, Any]], places: list[dict[str, Any]]) -> dict[str, Any]:
    """One CPO's catalog of a page: `header` is the rc2 catalog header
    (`bridge.mapping.catalog.catalog_header`), `places` the rc2 Locations of its items."""
    pid = header["beckn:providerId"]
    provider: dict[str, Any] = {"id": pid, "descriptor": descriptor(header["beckn:descriptor"])}
    seen: set[str] = set()
    where = []
    for p in places:
        key = repr(p.get("geo"))
        if key not in seen:
            seen.add(key)
            where.append(place(p))
    if where:
        provider["availableAt"] = where
    out: dict[str, Any] = {"id": header["beckn:id"],
                           "descriptor": descriptor(header["beckn:descriptor"]),
                           "provider": provider, "resources": resources}
    if offers:
        out["offers"] = offers
    return out
