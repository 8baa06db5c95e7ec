"""The guide profile's order: the vocabulary of our implementation guide's examples
05-17 (`beckn:state`, `beckn:totals`, `fulfillment-details`, `payment-details`, `ev:`
item attributes, ...), for BAPs built from the guide. Pure; `now` is an argument.
Where the guide's examples disagree with each other, the choice is in
docs/protocol-notes.md ("The guide profile").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bridge.journey.codes import FULFILLMENT
from bridge.orders import State
from bridge.store.orders import Order

CTX_ORDER = "https://becknprotocol.io/schemas/core/v2/Order/schema-context.jsonld"
CTX_SESSION = "https://becknprotocol.io/schemas/energy/v1/ev-charging-session.jsonld"

def money(amount: str | Decimal, currency: str = "INR") -> dict[str, Any]:
    return {"currency": currency, "value": float(Decimal(str(amount)))}


def _num(value: Any) -> float | int:
    d = Decimal(str(value))
    return int(d) if d == d.to_integral_value() else float(d)


# OCPI EVSE status -> the guide's ev:availability
AVAILABILITY = {"AVAILABLE": "AVAILABLE", "CHARGING": "OCCUPIED", "BLOCKED": "OCCUPIED",
                "RESERVED": "RESERVED", "INOPERATIVE": "OUT-OF-SERVICE",
                "OUTOFORDER": "OUT-OF-SERVICE", "PLANNED": "UNAVAILABLE", "REMOVED": "UNAVAILABLE",
                "UNKNOWN": "UNKNOWN"}
CTX_EV_ATTRS = "https://example.org/schema/items/v1/EVCharging/item-attributes.schema.json"


def state_code(order: Order) -> str:
    """`fulfillment-details.state.code`: the fulfilment status, except a charge in
    progress, which the guide calls CHARGING-IN-PROGRESS (example 15)."""
    code = FULFILLMENT[order.state][1]
    return "CHARGING-IN-PROGRESS" if order.state is State.ACTIVE else code


def beckn_state(order: Order) -> str:
    """`beckn:state`: as FULFILLMENT says, except an order paid but not yet confirmed,
    which the guide shows as PENDING (example 08)."""
    if order.state in (State.INITIALIZED, State.PAYMENT_PENDING) and order.payment.get(
            "status") in ("PAID", "HELD"):
        return "PENDING"
    return FULFILLMENT[order.state][0]


def _location(order: Order) -> dict[str, Any]:
    item = order.item
    if item is None:
        return {}
    loc: dict[str, Any] = {"schema:name": item.location_name or item.location_id}
    if item.latitude and item.longitude:
        loc["schema:geo"] = {"@type": "schema:GeoCoordinates",
                             "schema:latitude": item.latitude, "schema:longitude": item.longitude}
    address: dict[str, Any] = {"@type": "schema:PostalAddress"}
    if item.address:
        address["schema:streetAddress"] = item.address
    if item.city:
        address["schema:addressLocality"] = item.city
    loc["schema:address"] = address
    return loc


def _instructions(order: Order) -> dict[str, str] | None:
    item = order.item
    if item is None or not item.evse_id:
        return None
    return {"short_desc": f"Charger {item.evse_id}, connector {item.connector_id}"}


def totals(order: Order) -> dict[str, Any] | None:
    """`beckn:totals` from the final bill when settled, else the quote."""
    source = order.settlement if order.settlement and "final_amount" in order.settlement \
        else order.quote
    if not source:
        return None
    currency = source.get("currency", "INR")
    lines = source.get("lines", [])
    total = source.get("final_amount") if source is order.settlement else source.get("total")
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


def fulfillment(order: Order, now: datetime, updated_by: str, car_max_kw: float = 50.0
                ) -> dict[str, Any]:
    _, code, name = FULFILLMENT[order.state]
    start = order.request.get("start")
    end = order.request.get("end")
    place = _location(order)
    how = _instructions(order)
    stops_out: list[dict[str, Any]] = []
    if start:
        first: dict[str, Any] = {"type": "START", "time": {"timestamp": start}, "location": place}
        if how:
            first["instructions"] = how
        if order.otp_hash:  # the start code was sent to the driver (example 07)
            first["authorization"] = {"type": "OTP"}
        stops_out.append(first)
    if end:
        last: dict[str, Any] = {"type": "END", "time": {"timestamp": end}, "location": place}
        if how:
            last["instructions"] = how
        stops_out.append(last)
    fd: dict[str, Any] = {
        "beckn:id": f"fulfillment-{order.id}",
        "beckn:mode": "RESERVATION" if order.request.get("reservation") else "WALK-IN",
        "beckn:status": code,
        "state": {"code": state_code(order), "name": name, "updated-at": now.isoformat(),
                  "updated-by": updated_by},
        "stops": stops_out,
    }
    if order.request.get("vehicle"):
        fd["vehicle"] = order.request["vehicle"]
    contact = order.customer.get("contact") or {}
    if contact or order.customer.get("name"):
        fd["customer"] = {"schema:name": contact.get("schema:name") or order.customer.get("name"),
                          "schema:telephone": contact.get("schema:telephone")
                          or order.customer.get("phone")}
    if order.state in (State.ACTIVE, State.INTERRUPTED) and order.session:
        fd["real-time-data"] = real_time_data(order, now, car_max_kw)
    return fd


def real_time_data(order: Order, now: datetime, car_max_kw: float = 50.0) -> dict[str, Any]:
    """The charge now (example 15): speed band, the car's state of charge when the CPO
    reports it, when the target is reached at the present power, and the car's link."""
    from bridge.mapping.catalog import charging_speed

    s = order.session
    out: dict[str, Any] = {}
    if order.item and order.item.max_power_kw:
        out["charging-speed"] = charging_speed(order.item.max_power_kw)
    if s.get("soc") is not None:
        out["battery-level"] = f"{_num(s['soc'])}%"
    eta = remaining(order, car_max_kw)
    if eta is not None:
        out["estimated-full-charge"] = (now + eta).isoformat()
    out["vehicle-status"] = "CONNECTED" if order.state is State.ACTIVE else "CONNECTION-LOST"
    return out


def power_now(order: Order, car_max_kw: float) -> Decimal | None:
    """The charge's power: the CPO's last reading, else (before the first one) the
    charger's power as the car caps it, as the quote reckoned."""
    s = order.session
    if s.get("power_kw") is not None:
        return Decimal(str(s["power_kw"]))
    if order.item and order.item.max_power_kw:
        return Decimal(str(min(order.item.max_power_kw, car_max_kw)))
    return None


def remaining(order: Order, car_max_kw: float = 50.0) -> timedelta | None:
    """Time to the quote's energy at the present power (None when unknown)."""
    s = order.session
    target = (order.quote or {}).get("energy_kwh")
    power = power_now(order, car_max_kw)
    if power is None or target is None or power <= 0:
        return None
    left = Decimal(str(target)) - Decimal(str(s.get("kwh") or 0))
    return timedelta(hours=float(max(left, Decimal(0)) / power))


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
    if p.get("status") in ("PAID", "HELD") and p.get("id"):
        main["beckn:txnRef"] = p["id"]  # the gateway's reference of the payment
    if p.get("url"):
        main["payment-url"] = p["url"]
    if p.get("paid_at") or p.get("linked_at"):
        main["timestamp"] = p.get("paid_at") or p["linked_at"]
    if p.get("status") not in ("PAID", "HELD") and p.get("mode") != "POSTPAID":
        main["beckn:paymentAttributes"] = {"payment-methods": [
            {"code": "PAYMENT-LINK", "description": "Pay (or authorise the hold) on the page "
                                                    "at payment-url: UPI, card or wallet"}]}
    if not order.settlement or "final_amount" not in order.settlement:
        return main
    s = order.settlement
    out = [main]
    for kind, label, attr in (("refund", "REFUND", "OVERCHARGE_REFUND"),
                              ("capture", "CAPTURE", "HOLD_CAPTURE"),
                              ("release", "RELEASE", "HOLD_RELEASE"),
                              ("top_up", "TOP-UP", "UNDERCHARGE_TOP_UP")):
        amount = Decimal(str(s.get(kind, "0")))
        if amount:
            currency = s.get("currency", "INR")
            # the guide's refund entry (example 17): refund-type and refund-amount
            entry: dict[str, Any] = {
                "beckn:id": f"{kind.replace('_', '-')}-{order.id}",
                "beckn:method": label,
                "beckn:status": "PAID" if kind != "top_up" or s.get("top_up_status") == "PAID"
                else "NOT-PAID",
                "beckn:amount": money(amount, currency),
                "payment-type": "POST-FULFILLMENT",
                "beckn:paymentAttributes": {"type": attr, "amount": f"{amount}{currency}",
                                            **({"refund-type": attr,
                                                "refund-amount": f"{amount}{currency}"}
                                               if kind in ("refund", "release") else {})},
            }
            if kind == "top_up" and s.get("top_up_url"):
                entry["payment-url"] = s["top_up_url"]
            out.append(entry)
    return out


def refund_terms(order: Order, refund_within: str) -> list[dict[str, Any]] | None:
    """The policy's refund terms as the guide writes them (example 07): the share of what
    is paid that comes back when cancelled ahead of the slot, how soon, and none once
    charging has started (cancel is refused then: 50001)."""
    terms = (order.quote or {}).get("refund_terms")
    if not terms:
        return None
    p = order.payment
    paid = Decimal(str(p.get("amount") or (order.quote or {}).get("total") or 0))
    currency = p.get("currency") or (order.quote or {}).get("currency", "INR")
    out: list[dict[str, Any]] = [{
        "fulfillment-state": {"code": "CONFIRMED", "name": "Order Confirmed",
                              "description": f"{t['percent']}% refund if cancelled at least "
                                             f"{t['min_hours_before']} hours before the slot"},
        "refund-eligible": True,
        "refund-percent": t["percent"],
        "cancel-before": f"PT{t['min_hours_before']}H",
        "refund-within": refund_within,
        "refund-amount": money((paid * Decimal(str(t["percent"])) / 100).quantize(
            Decimal("0.01")), currency),
    } for t in terms]
    out.append({"fulfillment-state": {"code": "ACTIVE", "name": "Charging Active"},
                "refund-eligible": False})
    return out


def ev_attributes(order: Order) -> dict[str, Any]:
    """The line's `ev:` attributes (examples 05-12, 17), as the catalog listed them."""
    item = order.item
    assert item is not None
    out: dict[str, Any] = {"@context": CTX_EV_ATTRS, "@type": "ev:EVChargingAttributes",
                           "ev:connectorType": item.connector_type,
                           "ev:currentType": "DC" if item.power_type == "DC" else "AC",
                           "ev:maxPowerKW": item.max_power_kw,
                           "ev:availability": AVAILABILITY.get(item.status or "", "UNKNOWN"),
                           "ev:evseId": item.evse_id}
    price = (item.offer or {}).get("beckn:price") or {}
    if price.get("value") is not None:
        out["ev:tariff"] = {"schema:price": price["value"],
                            "schema:priceCurrency": price.get("currency", "INR"),
                            "ev:pricingUnit": "PER_KWH"}
    return out


def order_line(order: Order, now: datetime, car_max_kw: float = 50.0) -> dict[str, Any]:
    """The order's one line. Examples 05-12 and 17 put the `ev:` attributes in
    `beckn:orderItemAttributes`, example 16 nests them in `ev:itemAttributes` beside
    `item-details` and `quantity-measure`: both are written (protocol notes)."""
    item = order.item
    assert item is not None
    r = order.request
    asked = next(((k, r[k]) for k in ("budget", "energy_kwh", "minutes") if r.get(k)), None)
    line: dict[str, Any] = {"beckn:lineId": "line-001", "beckn:orderedItem": item.item_id,
                            "beckn:quantity": _num(asked[1]) if asked else 1}
    q = order.settlement if order.settlement and order.settlement.get("lines") else order.quote
    if q:
        currency = q.get("currency", "INR")
        charge = sum((Decimal(str(ln["amount"])) for ln in q.get("lines", [])
                      if ln["kind"] == "charge"), Decimal(0))
        line["beckn:price"] = {**money(charge, currency), "@type": "schema:PriceSpecification",
                               "schema:priceCurrency": currency,
                               "schema:price": float(charge)}
    ev = ev_attributes(order)
    attrs_out: dict[str, Any] = dict(ev)
    if order.quote and order.quote.get("energy_kwh") is not None:
        attrs_out["ev:estimatedEnergyKWh"] = float(Decimal(str(order.quote["energy_kwh"])))
    attrs_out["item-details"] = {"schema:name": f"{item.location_name or item.location_id} "
                                                f"- {item.evse_id or item.evse_uid}",
                                 "beckn:code": "ev-charger"}
    tariff = ev.get("ev:tariff")
    if tariff:
        attrs_out["item-details"]["unit-price"] = {
            "value": str(tariff["schema:price"]),
            "currency": f"{tariff['schema:priceCurrency']}/kWh"}
    if asked:
        unit = {"budget": "INR", "energy_kwh": "KWH", "minutes": "MIN"}[asked[0]]
        attrs_out["quantity-measure"] = {"type": "CONSTANT", "value": str(asked[1]), "unit": unit}
    attrs_out["ev:itemAttributes"] = ev
    if order.session:
        attrs_out["real-time-metrics"] = session_metrics(order, now, car_max_kw)
    line["beckn:orderItemAttributes"] = attrs_out
    return line


def provider_details(order: Order) -> dict[str, Any] | None:
    item = order.item
    if item is None:
        return None
    name = item.provider_name or f"{item.cc}-{item.pid}"
    out: dict[str, Any] = {"beckn:id": f"{item.cc}-{item.pid}", "schema:name": name,
                           "schema:description": f"EV charging by {name} (OCPI party "
                                                 f"{item.cc}-{item.pid})"}
    if item.provider_logo:
        out["schema:image"] = [{"@type": "schema:ImageObject", "schema:url": item.provider_logo}]
    return out


def render_order(order: Order, now: datetime, bpp_id: str, *,
                 extra: dict[str, Any] | None = None, refund_within: str = "P3D",
                 car_max_kw: float = 50.0) -> dict[str, Any]:
    """The `beckn:Order` of an on_* message for `order` as it is now (examples 05-17)."""
    item = order.item
    a: dict[str, Any] = {"fulfillment-type": "CHARGING"}
    pdet = provider_details(order)
    if pdet:
        a["provider-details"] = pdet
    billing = order.customer.get("billing")
    if billing:
        a["billing-details"] = billing
    pd = payment_details(order)
    if pd is not None:
        a["payment-details"] = pd
    a["fulfillment-details"] = fulfillment(order, now, bpp_id, car_max_kw)
    rt = refund_terms(order, refund_within)
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
        "beckn:state": beckn_state(order),
        "beckn:orderNumber": f"ORD-{order.id[:8]}",
        "beckn:seller": f"{item.cc}-{item.pid}" if item else None,
        "beckn:buyer": order.customer.get("buyer") or order.bap_id,
        "beckn:orderItems": [order_line(order, now, car_max_kw)] if item else [],
        "beckn:fulfillment": f"fulfillment-{order.id}",
        "beckn:orderAttributes": a,
    }
    if billing or order.payment.get("mode"):
        out["beckn:billing"] = str((billing or {}).get("beckn:id") or f"invoice-{order.id[:8]}")
    if order.payment.get("mode"):
        out["beckn:payment"] = str(order.payment.get("id") or f"payment-{order.id}")
    if out["beckn:seller"] is None:
        del out["beckn:seller"]
    t = totals(order)
    if t:
        out["beckn:totals"] = t
    return out


def session_metrics(order: Order, now: datetime, car_max_kw: float = 50.0) -> dict[str, Any]:
    from bridge.journey.metering import iso_minutes, session_duration

    s = order.session
    # The session's own start to its end or last update (not now - start: that read
    # PT0M0S when the CPO's clock runs ahead, and kept growing after the end).
    d = session_duration(order, now)
    duration = "" if d is None else iso_minutes(d)
    out = {"energy-delivered": str(s.get("kwh", "0")), "energy-unit": "kWh",
           "cost-so-far": str(s.get("cost", "0")), "session-duration": duration,
           "session-status": s.get("status")}
    power = power_now(order, car_max_kw) if order.state is State.ACTIVE else None
    if power is not None:
        out.update({"current-power": str(power), "power-unit": "kW"})
    eta = remaining(order, car_max_kw)
    if eta is not None and order.state in (State.ACTIVE, State.INTERRUPTED):
        out["estimated-completion"] = iso_minutes(eta)
    return out


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
