"""Beckn 2.0 (RC2, the guide's examples 03-17) order shapes: parse requests, render orders.

Pure functions over dicts and the stored `Order`; `now` is an argument. The
action modules (`bridge.journey.select`, `init`, ...) call these; nothing here
does I/O. Choices where the guide's examples disagree are in
docs/protocol-notes.md ("Orders").
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.beckn.errors import SchemaError
from bridge.orders import State
from bridge.store.orders import Order

CTX_ORDER = "https://becknprotocol.io/schemas/core/v2/Order/schema-context.jsonld"
CTX_SESSION = "https://becknprotocol.io/schemas/energy/v1/ev-charging-session.jsonld"

# Internal state -> (beckn:state, fulfillment status code, human name).
FULFILLMENT: dict[State, tuple[str, str, str]] = {
    State.DRAFT: ("DRAFT", "PENDING", "Not booked yet"),
    State.QUOTED: ("QUOTED", "PENDING", "Quoted"),
    State.INITIALIZED: ("INITIALIZED", "PENDING", "Awaiting payment and confirmation"),
    State.PAYMENT_PENDING: ("PAYMENT-PENDING", "PENDING", "Payment in progress"),
    State.CONFIRMED: ("CONFIRMED", "PENDING", "Charging Pending"),
    State.RESERVED: ("CONFIRMED", "RESERVED", "Charger reserved for your slot"),
    State.ACTIVE: ("ACTIVE", "ACTIVE", "Charging in progress"),
    State.INTERRUPTED: ("ACTIVE", "CONNECTION-INTERRUPTED",
                        "Charging connection lost. Retrying automatically. If this continues, "
                        "please check your cable"),
    State.COMPLETED: ("COMPLETED", "COMPLETED", "Charging completed"),
    State.CANCELLED: ("CANCELLED", "CANCELLED", "Booking cancelled"),
    State.EXPIRED: ("CANCELLED", "NO-SHOW", "Slot released: the car did not arrive in time"),
    State.FAILED: ("CANCELLED", "FAILED", "The charger could not start the session"),
}


def _dec(value: Any, field: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise SchemaError(f"{field}: not a number: {value!r}", {"field": field}) from exc
    if not d.is_finite() or d < 0:
        raise SchemaError(f"{field}: must be a non-negative number", {"field": field})
    return d


def _dt(value: Any, field: str) -> datetime:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise SchemaError(f"{field}: not a date-time: {value!r}", {"field": field}) from exc
    if dt.tzinfo is None:
        raise SchemaError(f"{field}: needs a time zone", {"field": field})
    return dt


def the_order(body: dict[str, Any]) -> dict[str, Any]:
    """`message.order` of a request, or a SchemaError naming what is missing."""
    message = body.get("message")
    if not isinstance(message, dict):
        raise SchemaError("message: required object", {"field": "message"})
    order = message.get("order")
    if not isinstance(order, dict):
        raise SchemaError("message.order: required object", {"field": "message.order"})
    return order


def attrs(order: dict[str, Any]) -> dict[str, Any]:
    a = order.get("beckn:orderAttributes") or {}
    if not isinstance(a, dict):
        raise SchemaError("message.order.beckn:orderAttributes: must be an object",
                          {"field": "message.order.beckn:orderAttributes"})
    return a


# --------------------------------------------------------------------------- select


class SelectRequest:
    """What the driver asks for: which charger, how much (INR, kWh or time), when."""

    def __init__(self, item_id: str, budget: Decimal | None, energy_kwh: Decimal | None,
                 minutes: Decimal | None, start: datetime | None, end: datetime | None,
                 vehicle: dict[str, Any] | None, bff: dict[str, Any] | None) -> None:
        self.item_id = item_id
        self.budget = budget
        self.energy_kwh = energy_kwh
        self.minutes = minutes
        self.start = start
        self.end = end
        self.vehicle = vehicle
        self.bff = bff

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "budget": str(self.budget) if self.budget is not None else None,
            "energy_kwh": str(self.energy_kwh) if self.energy_kwh is not None else None,
            "minutes": str(self.minutes) if self.minutes is not None else None,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "vehicle": self.vehicle,
        }


def stops(a: dict[str, Any], where: str) -> tuple[datetime | None, datetime | None]:
    fd = a.get("fulfillment-details") or {}
    start = end = None
    for i, stop in enumerate(fd.get("stops") or []):
        if not isinstance(stop, dict):
            continue
        ts = (stop.get("time") or {}).get("timestamp")
        kind = str(stop.get("type", "")).upper()
        if ts is None:
            continue
        field = f"{where}.fulfillment-details.stops[{i}].time.timestamp"
        if kind == "START":
            start = _dt(ts, field)
        elif kind in ("STOP", "END"):  # the guide uses both
            end = _dt(ts, field)
    return start, end


def parse_bff(a: dict[str, Any]) -> dict[str, Any] | None:
    bff = a.get("buyer-finder-fee")
    if not bff:
        return None
    if not isinstance(bff, dict) or "value" not in bff:
        raise SchemaError("buyer-finder-fee: needs type and value", {"field": "buyer-finder-fee"})
    kind = str(bff.get("type", "PERCENTAGE")).upper()
    if kind not in ("PERCENTAGE", "PERCENT", "AMOUNT", "FLAT"):
        raise SchemaError(f"buyer-finder-fee.type: {kind!r} is not PERCENTAGE or AMOUNT",
                          {"field": "buyer-finder-fee.type"})
    return {"type": "PERCENTAGE" if kind.startswith("PERCENT") else "AMOUNT",
            "value": str(_dec(bff["value"], "buyer-finder-fee.value"))}


def parse_select(body: dict[str, Any]) -> SelectRequest:
    order = the_order(body)
    items = order.get("beckn:orderItems")
    where = "message.order"
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise SchemaError(f"{where}.beckn:orderItems: one item is required",
                          {"field": f"{where}.beckn:orderItems"})
    line = items[0]
    ordered = line.get("beckn:orderedItem")
    if isinstance(ordered, dict):
        ordered = ordered.get("beckn:id")
    if not isinstance(ordered, str) or not ordered:
        raise SchemaError(f"{where}.beckn:orderItems[0].beckn:orderedItem: required item id",
                          {"field": f"{where}.beckn:orderItems[0].beckn:orderedItem"})
    budget = energy = minutes = None
    measure = (line.get("beckn:orderItemAttributes") or {}).get("quantity-measure")
    if isinstance(measure, dict):
        value = _dec(measure.get("value"), "quantity-measure.value")
        unit = str(measure.get("unit", "")).upper()
        if unit in ("INR", "RS", "₹"):
            budget = value
        elif unit in ("KWH",):
            energy = value
        elif unit in ("MIN", "MINUTE", "MINUTES"):
            minutes = value
        elif unit in ("HOUR", "HOURS", "H"):
            minutes = value * 60
        else:
            raise SchemaError(f"quantity-measure.unit: {unit!r} is not INR, KWH, MIN or HOUR",
                              {"field": "quantity-measure.unit"})
    elif isinstance(line.get("beckn:price"), dict) and "value" in line["beckn:price"]:
        budget = _dec(line["beckn:price"]["value"], f"{where}.beckn:orderItems[0].beckn:price.value")
    else:
        raise SchemaError("say how much to charge: beckn:price.value (a budget in INR) or "
                          "beckn:orderItemAttributes.quantity-measure {value, unit}",
                          {"field": f"{where}.beckn:orderItems[0]"})
    if (budget is not None and budget == 0) or (energy is not None and energy == 0) or (
            minutes is not None and minutes == 0):
        raise SchemaError("the amount to charge must be more than zero",
                          {"field": f"{where}.beckn:orderItems[0]"})
    a = attrs(order)
    start, end = stops(a, f"{where}.beckn:orderAttributes")
    if start and end and end <= start:
        raise SchemaError("the STOP time must be after the START time",
                          {"field": f"{where}.beckn:orderAttributes.fulfillment-details.stops"})
    vehicle = (a.get("fulfillment-details") or {}).get("vehicle")
    return SelectRequest(ordered, budget, energy, minutes, start, end,
                         vehicle if isinstance(vehicle, dict) else None, parse_bff(a))


# --------------------------------------------------------------------------- init


def parse_init(body: dict[str, Any]) -> dict[str, Any]:
    """Billing, phone, fleet id (+ OTP), payment preference, buyer-finder fee."""
    order = the_order(body)
    a = attrs(order)
    billing = a.get("billing-details") or {}
    if not isinstance(billing, dict):
        raise SchemaError("billing-details: must be an object", {"field": "billing-details"})
    customer = (a.get("fulfillment-details") or {}).get("customer") or {}
    phone = billing.get("schema:telephone") or customer.get("schema:telephone")
    if not phone:
        raise SchemaError("billing-details.schema:telephone: the driver's phone is required "
                          "(for the start code)", {"field": "billing-details.schema:telephone"})
    fleet = a.get("fleet-details") or {}
    payment = a.get("payment-details") or {}
    if isinstance(payment, list):
        payment = payment[0] if payment else {}
    ptype = str(payment.get("payment-type", "") or "").upper()
    method = str(payment.get("beckn:method", "") or "").upper()
    mode = None
    if ptype in ("ON-ORDER", "PRE-FULFILLMENT") or method in ("PAYMENT-LINK", "UPI-TRANSFER",
                                                                  "BANK-TRANSFER"):
        mode = "PREPAID"
    if ptype in ("AUTHORIZATION-HOLD", "HOLD") or method in ("UPI-MANDATE", "CARD-HOLD"):
        mode = "HOLD"
    if ptype in ("POST-FULFILLMENT", "ON-FULFILLMENT"):
        mode = "POSTPAID"
    return {
        "billing": billing,
        "phone": str(phone),
        "name": billing.get("schema:name") or customer.get("schema:name"),
        "email": billing.get("schema:email"),
        "fleet_id": fleet.get("beckn:id") or fleet.get("id"),
        "fleet_otp": fleet.get("otp"),
        "payment_mode": mode,
        "bff": parse_bff(a),
    }


# --------------------------------------------------------------------------- update / track / cancel


def parse_update(body: dict[str, Any]) -> tuple[str, str | None]:
    """("start-charging" | "stop-charging", the OTP if any)."""
    order = the_order(body)
    fu = attrs(order).get("fulfillment-update") or {}
    code = ((fu.get("state") or {}).get("code") or fu.get("beckn:status") or "").lower()
    if code not in ("start-charging", "stop-charging"):
        raise SchemaError("fulfillment-update.state.code: start-charging or stop-charging",
                          {"field": "message.order.beckn:orderAttributes.fulfillment-update."
                                    "state.code"})
    auth = fu.get("authorization") or {}
    token = auth.get("token")
    return code, str(token) if token is not None else None


def parse_track(body: dict[str, Any]) -> str | None:
    order = the_order(body)
    url = attrs(order).get("callback-url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise SchemaError("callback-url: must be an http(s) URL", {"field": "callback-url"})
    return url


def order_ref(body: dict[str, Any]) -> str | None:
    """The order id a status/cancel/rating/support request names, if any."""
    message = body.get("message") or {}
    order = message.get("order") if isinstance(message, dict) else None
    if isinstance(order, dict):
        ref = order.get("beckn:id")
        return str(ref) if ref else None
    ref = message.get("order_id") if isinstance(message, dict) else None
    return str(ref) if ref else None


# --------------------------------------------------------------------------- render


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
