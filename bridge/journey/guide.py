"""The guide profile's order: the vocabulary of our implementation guide's examples
05-17 (`beckn:state`, `beckn:totals`, `fulfillment-details`, `payment-details`, `ev:`
item attributes, ...), for BAPs built from the guide. Pure; `now` is an argument.
Where the guide's examples disagree with each other, the choice is in
docs/protocol-notes.md ("The guide profile").
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from bridge.journey.codes import FULFILLMENT
from bridge.store.orders import Order

CTX_ORDER = "https://becknprotocol.io/schemas/core/v2/Order/schema-context.jsonld"
CTX_SESSION = "https://becknprotocol.io/schemas/energy/v1/ev-charging-session.jsonld"

def money(amount: str | Decimal, currency: str = "INR") -> dict[str, Any]:
    return {"currency": currency, "value": float(Decimal(str(amount)))}


def _location(order: Order) -> dict[str, Any]:
    item = order.item
    if item is None:
        return {}
    loc: dict[str, Any] = {"schema:name": item.location_name or item.location_id}
    if item.latitude and item.longitude:
        loc["schema:geo"] = {"@type": "schema:GeoCoordinates",
                             "schema:latitude": item.latitude, "schema:longitude": item.longitude}
    if item.address:
        loc["schema:address"] = {"@type": "schema:PostalAddress",
                                 "schema:streetAddress": item.address}
    return loc


def totals(order: Order) -> dict[str, Any] | None:
    """`beckn:totals` from the final bill when settled, else the quote."""
    source = order.settlement or order.quote
    if not source:
        return None
    currency = source.get("currency", "INR")
    lines = source.get("lines", [])
    total = source.get("final_amount") if order.settlement else source.get("total")
    return {
        "@type": "schema:PriceSpecification",
        "schema:priceCurrency": currency,
        "schema:price": float(Decimal(str(total))),
        "beckn:breakup": [
            {"schema:name": ln["title"], "schema:price": float(Decimal(str(ln["amount"]))),
             "schema:priceCurrency": ln.get("currency", currency), "beckn:breakupType": ln["kind"],
             **({"beckn:itemId": order.item.item_id} if ln["kind"] == "charge" and order.item
                else {})}
            for ln in lines
        ],
    }


def fulfillment(order: Order, now: datetime, updated_by: str) -> dict[str, Any]:
    _, code, name = FULFILLMENT[order.state]
    start = order.request.get("start")
    end = order.request.get("end")
    stops_out: list[dict[str, Any]] = []
    if start:
        stops_out.append({"type": "START", "time": {"timestamp": start}, "location": _location(order)})
    if end:
        stops_out.append({"type": "END", "time": {"timestamp": end}})
    fd: dict[str, Any] = {
        "beckn:id": f"fulfillment-{order.id}",
        "beckn:mode": "RESERVATION" if order.request.get("reservation") else "WALK-IN",
        "beckn:status": code,
        "state": {"code": code, "name": name, "updated-at": now.isoformat(),
                  "updated-by": updated_by},
        "stops": stops_out,
    }
    if order.request.get("vehicle"):
        fd["vehicle"] = order.request["vehicle"]
    if order.item and order.item.evse_id:
        fd["instructions"] = {"short_desc": f"Charger {order.item.evse_id}, connector "
                                            f"{order.item.connector_id}"}
    return fd


def payment_details(order: Order) -> dict[str, Any] | list[dict[str, Any]] | None:
    p = order.payment
    if not p:
        return None
    main: dict[str, Any] = {
        "beckn:id": p.get("id") or f"payment-{order.id}",
        "beckn:method": "PAYMENT-LINK" if p.get("mode") != "POSTPAID" else "POST-PAID",
        "beckn:status": p.get("status", "NOT-PAID"),
        "beckn:amount": money(p.get("amount", "0"), p.get("currency", "INR")),
        "collected-by": "BPP",
        "payment-type": {"PREPAID": "PRE-FULFILLMENT", "HOLD": "AUTHORIZATION-HOLD",
                         "POSTPAID": "POST-FULFILLMENT"}.get(p.get("mode", "PREPAID")),
    }
    if p.get("url"):
        main["payment-url"] = p["url"]
    if p.get("paid_at"):
        main["timestamp"] = p["paid_at"]
    if not order.settlement:
        return main
    s = order.settlement
    out = [main]
    for kind, label, attr in (("refund", "REFUND", "OVERCHARGE_REFUND"),
                              ("capture", "CAPTURE", "HOLD_CAPTURE"),
                              ("release", "RELEASE", "HOLD_RELEASE"),
                              ("top_up", "TOP-UP", "UNDERCHARGE_TOP_UP")):
        amount = Decimal(str(s.get(kind, "0")))
        if amount:
            entry: dict[str, Any] = {
                "beckn:id": f"{kind.replace('_', '-')}-{order.id}",
                "beckn:method": label,
                "beckn:status": "PAID" if kind != "top_up" else "NOT-PAID",
                "beckn:amount": money(amount, s.get("currency", "INR")),
                "payment-type": "POST-FULFILLMENT",
                "beckn:paymentAttributes": {"type": attr, "amount": f"{amount}INR"},
            }
            if kind == "top_up" and s.get("top_up_url"):
                entry["payment-url"] = s["top_up_url"]
            out.append(entry)
    return out


def refund_terms(order: Order) -> list[dict[str, Any]] | None:
    terms = (order.quote or {}).get("refund_terms")
    if not terms:
        return None
    return [{
        "fulfillment-state": {"code": "CONFIRMED", "name": "Order Confirmed",
                              "description": f"{t['percent']}% refund if cancelled at least "
                                             f"{t['min_hours_before']} hours before the slot"},
        "refund-eligible": True,
        "refund-percent": t["percent"],
        "cancel-before": f"PT{t['min_hours_before']}H",
    } for t in terms]


def render_order(order: Order, now: datetime, bpp_id: str, *,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `beckn:Order` of an on_* message for `order` as it is now."""
    beckn_state = FULFILLMENT[order.state][0]
    item = order.item
    a: dict[str, Any] = {"fulfillment-type": "CHARGING"}
    if item:
        a["provider-details"] = {"beckn:id": f"{item.cc}-{item.pid}",
                                 "schema:name": item.provider_name or f"{item.cc}-{item.pid}"}
    if order.customer.get("billing"):
        a["billing-details"] = order.customer["billing"]
    pd = payment_details(order)
    if pd is not None:
        a["payment-details"] = pd
    a["fulfillment-details"] = fulfillment(order, now, bpp_id)
    rt = refund_terms(order)
    if rt:
        a["refund-terms"] = rt
    if order.buyer_finder_fee:
        a["buyer-finder-fee"] = order.buyer_finder_fee
    if order.settlement and order.settlement.get("explanation"):
        a["settlement-details"] = {"explanation": order.settlement["explanation"],
                                   "final-amount": money(order.settlement["final_amount"])}
        if order.settlement.get("discrepancy"):
            a["settlement-details"]["discrepancy"] = order.settlement["discrepancy"]
    if extra:
        a.update(extra)
    out: dict[str, Any] = {
        "@context": CTX_ORDER,
        "@type": "beckn:Order",
        "beckn:id": order.id,
        "beckn:state": beckn_state,
        "beckn:orderNumber": f"ORD-{order.id[:8]}",
        "beckn:seller": f"{item.cc}-{item.pid}" if item else None,
        "beckn:buyer": order.customer.get("buyer") or order.bap_id,
        "beckn:orderItems": [],
        "beckn:fulfillment": f"fulfillment-{order.id}",
        "beckn:orderAttributes": a,
    }
    if item:
        line: dict[str, Any] = {"beckn:lineId": "line-001", "beckn:orderedItem": item.item_id,
                                "beckn:quantity": 1}
        q = order.settlement or order.quote
        if q:
            charge = sum((Decimal(str(ln["amount"])) for ln in q.get("lines", [])
                          if ln["kind"] == "charge"), Decimal(0))
            line["beckn:price"] = money(charge, q.get("currency", "INR"))
        attrs_out: dict[str, Any] = {"@type": "ev:EVChargingAttributes",
                                     "ev:connectorType": item.connector_type,
                                     "ev:maxPowerKW": item.max_power_kw, "ev:evseId": item.evse_id}
        if order.quote and order.quote.get("energy_kwh") is not None:
            attrs_out["ev:estimatedEnergyKWh"] = float(Decimal(str(order.quote["energy_kwh"])))
        if order.session:
            attrs_out["real-time-metrics"] = session_metrics(order, now)
        line["beckn:orderItemAttributes"] = attrs_out
        out["beckn:orderItems"] = [line]
    if out["beckn:seller"] is None:
        del out["beckn:seller"]
    t = totals(order)
    if t:
        out["beckn:totals"] = t
    return out


def session_metrics(order: Order, now: datetime) -> dict[str, Any]:
    from bridge.journey.metering import iso_minutes, session_duration

    s = order.session
    # The session's own start to its end or last update (not now - start: that read
    # PT0M0S when the CPO's clock runs ahead, and kept growing after the end).
    d = session_duration(order, now)
    duration = "" if d is None else iso_minutes(d)
    return {"energy-delivered": str(s.get("kwh", "0")), "energy-unit": "kWh",
            "cost-so-far": str(s.get("cost", "0")), "session-duration": duration,
            "session-status": s.get("status")}


def track_patch(order: Order, session: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The body streamed to the BAP's callback-url (guide example 14) from an OCPI Session."""
    periods = []
    for p in (session.get("charging_periods") or [])[-5:]:
        metrics = []
        for d in p.get("dimensions", []):
            unit = {"ENERGY": "KWH", "POWER": "KW", "CURRENT": "AMP", "STATE_OF_CHARGE": "P1",
                    "TIME": "HUR", "PARKING_TIME": "HUR"}.get(d["type"], "")
            metrics.append({"@type": "ev:ChargingMetric", "ev:metricType": d["type"],
                            "schema:value": d["volume"], "schema:unitCode": unit})
        periods.append({"@type": "ev:ChargingPeriod", "schema:startTime": p["start_date_time"],
                        "ev:metrics": metrics})
    cost = session.get("total_cost") or {}
    body: dict[str, Any] = {
        "@context": CTX_SESSION,
        "@type": "ev:ChargingSessionUpdate",
        "beckn:orderId": order.id,
        "ev:energyDelivered": {"@type": "schema:QuantitativeValue",
                               "schema:value": session.get("kwh", 0), "schema:unitCode": "KWH"},
        "beckn:status": FULFILLMENT[order.state][1],
        "schema:priceCurrency": session.get("currency", "INR"),
        "ev:chargingPeriods": periods,
        "schema:dateModified": session.get("last_updated") or now.isoformat(),
    }
    if cost:
        body["beckn:totalCost"] = {
            "@type": "schema:PriceSpecification",
            "beckn:excludingTax": {"schema:price": cost.get("excl_vat"),
                                   "schema:priceCurrency": session.get("currency", "INR")},
            "beckn:includingTax": {"schema:price": cost.get("incl_vat", cost.get("excl_vat")),
                                   "schema:priceCurrency": session.get("currency", "INR")},
        }
    return body
