"""The rc2 profile's order: `beckn:Order` exactly as the Beckn 2.0 core draft rc2 schema
(schema/core/v2/attributes.yaml) and the EV attribute packs say. Pure; `now` is an
argument. The choices (which status, where each number goes) are in
docs/protocol-notes.md, "The rc2 profile".

    beckn:orderStatus           ORDER_STATUS[state]
    beckn:buyer                 beckn:Buyer: id, name, phone, email, the buyer's bag (UPI)
    beckn:orderItems[0]         the connector: beckn:quantity (what was asked for: KWH,
                                INR or MIN), beckn:acceptedOffer (the catalog's offer),
                                beckn:price (the charge), a ChargingService bag
    beckn:orderValue            the quote, or the final bill: typed components
    beckn:payment               the payment asked for up front and what became of it
    beckn:fulfillment           RESERVATION, its status code, tracking, the session bag
    beckn:orderAttributes       ChargingSession bag (energy, cost, times, vehicle, fee)
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from bridge.journey.metering import session_duration
from bridge.mapping.catalog import CTX_SERVICE, PACK_CONNECTOR_TYPES, POWER_TYPES
from bridge.ocpi.models import PowerType
from bridge.orders import State
from bridge.store.orders import Order

CTX_CORE = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
            "schema/core/v2/context.jsonld")
_PACKS = ("https://raw.githubusercontent.com/beckn/protocol-specifications-v2/refs/heads/"
          "core-v2.0.0-rc2/schema/")
CTX_SESSION = _PACKS + "EvChargingSession/v1/context.jsonld"
CTX_SETTLEMENT = _PACKS + "PaymentSettlement/v1/context.jsonld"

ORDER_STATUS: dict[State, str] = {
    State.DRAFT: "CREATED", State.QUOTED: "CREATED", State.INITIALIZED: "PENDING",
    State.PAYMENT_PENDING: "PENDING", State.CONFIRMED: "CONFIRMED", State.RESERVED: "CONFIRMED",
    State.ACTIVE: "INPROGRESS", State.INTERRUPTED: "INPROGRESS", State.COMPLETED: "COMPLETED",
    State.CANCELLED: "CANCELLED", State.EXPIRED: "CANCELLED", State.FAILED: "FAILED",
}
# ChargingSession.sessionStatus (PENDING, ACTIVE, STOP, COMPLETED, INTERRUPTED); an order
# that ended before any charge has no session to describe.
SESSION_STATUS: dict[State, str] = {
    State.DRAFT: "PENDING", State.QUOTED: "PENDING", State.INITIALIZED: "PENDING",
    State.PAYMENT_PENDING: "PENDING", State.CONFIRMED: "PENDING", State.RESERVED: "PENDING",
    State.ACTIVE: "ACTIVE", State.INTERRUPTED: "INTERRUPTED", State.COMPLETED: "COMPLETED",
}
# quote line kind -> PriceSpecification component type
COMPONENT = {"charge": "UNIT", "surcharge": "SURCHARGE", "fee": "FEE", "discount": "DISCOUNT",
             "overage": "FEE"}
QUANTITY_UNIT = {"energy_kwh": ("KWH", "kWh"), "budget": ("INR", "INR"), "minutes": ("MIN", "minute")}


def num(value: Any) -> float | int:
    d = Decimal(str(value))
    return int(d) if d == d.to_integral_value() else float(d)


def price(amount: Any, currency: str) -> dict[str, Any]:
    return {"currency": currency, "value": num(amount)}


def _email(value: Any) -> str | None:
    # `format: email`: an address the BAP sent that is not one is left out, not passed on
    text = str(value or "")
    return text if "@" in text and " " not in text and len(text) <= 254 else None


def buyer(order: Order) -> dict[str, Any]:
    c = order.customer
    out: dict[str, Any] = {"@context": CTX_CORE, "@type": "beckn:Buyer",
                           "beckn:id": str(c.get("buyer") or f"buyer-{order.id}"),
                           "beckn:role": "BUYER"}
    if c.get("name"):
        out["beckn:displayName"] = str(c["name"])
    if c.get("phone"):
        out["beckn:telephone"] = str(c["phone"])
    email = _email(c.get("email"))
    if email:
        out["beckn:email"] = email
    if c.get("tax_id"):
        out["beckn:taxID"] = str(c["tax_id"])
    bag = c.get("buyer_attributes")
    if isinstance(bag, dict) and bag.get("@context") and bag.get("@type"):
        out["beckn:buyerAttributes"] = bag
    return out


def service_bag(order: Order) -> dict[str, Any] | None:
    """The line's ChargingService bag; None when the connector has no pack connectorType."""
    item = order.item
    if item is None or item.connector_type not in PACK_CONNECTOR_TYPES:
        return None
    bag: dict[str, Any] = {"@context": CTX_SERVICE, "@type": "ChargingService",
                           "connectorType": item.connector_type}
    if item.max_power_kw and 1 <= item.max_power_kw <= 500:
        bag["maxPowerKW"] = item.max_power_kw
    else:  # required by the pack: the offer's charger without a usable rating is not sold
        return None
    if item.evse_id:
        bag["evseId"] = item.evse_id
    if item.power_type:
        bag["powerType"] = POWER_TYPES[PowerType(item.power_type)]
    bag["chargingStation"] = {"id": item.location_id}
    return bag


def quantity(order: Order) -> dict[str, Any]:
    r = order.request
    for key, (code, text) in QUANTITY_UNIT.items():
        if r.get(key):
            return {"unitCode": code, "unitText": text, "unitQuantity": num(r[key])}
    energy = (order.quote or {}).get("energy_kwh")
    return {"unitCode": "KWH", "unitText": "kWh", "unitQuantity": num(energy or 0)}


def order_value(order: Order) -> dict[str, Any] | None:
    """The quote, or the final bill once settled: lines as typed components."""
    source = order.settlement if order.settlement and "final_amount" in order.settlement \
        else order.quote
    if not source:
        return None
    currency = source.get("currency", "INR")
    total = source["final_amount"] if source is order.settlement else source.get("total")
    return {"currency": currency, "value": num(total), "components": [
        {"type": COMPONENT.get(ln["kind"], "FEE"), "value": num(ln["amount"]),
         "currency": ln.get("currency", currency), "description": ln["title"]}
        for ln in source.get("lines", [])]}


def line_price(order: Order) -> dict[str, Any] | None:
    source = order.settlement if order.settlement and order.settlement.get("lines") \
        else order.quote
    if not source:
        return None
    charge = sum((Decimal(str(ln["amount"])) for ln in source.get("lines", [])
                  if ln["kind"] == "charge"), Decimal(0))
    return price(charge, source.get("currency", "INR"))


def top_up_due(order: Order) -> bool:
    s = order.settlement or {}
    return bool("final_amount" in s and Decimal(str(s.get("top_up", "0")))
                and s.get("top_up_status") != "PAID")


def payment_status(order: Order) -> str:
    """Payment.beckn:paymentStatus: what became of the payment asked for at init.

    before the bill: PENDING (to pay), AUTHORIZED (held), CAPTURED (paid).
    the bill: a hold is CAPTURED (VOIDED if nothing was), the rest released; a payment
    is COMPLETED, PARTIALLY_REFUNDED or REFUNDED; less collected than billed is
    ADJUSTED (a top-up at beckn:paymentURL); nothing collected (postpaid) is PENDING
    until the bill is paid at the URL, then COMPLETED."""
    p, s = order.payment, order.settlement
    if s and "final_amount" in s:
        if p.get("status") == "HELD":
            return "CAPTURED" if Decimal(str(s.get("capture", "0"))) else "VOIDED"
        if p.get("status") != "PAID":
            return "PENDING" if top_up_due(order) else "COMPLETED"
        if top_up_due(order):
            return "ADJUSTED"
        refund = Decimal(str(s.get("refund", "0")))
        if refund and refund >= Decimal(str(s.get("paid") or p.get("amount", "0"))):
            return "REFUNDED"
        return "PARTIALLY_REFUNDED" if refund else "COMPLETED"
    if p.get("status") == "PAID":
        return "CAPTURED"
    if p.get("status") == "HELD":
        return "AUTHORIZED"
    return "PENDING"


def payment(order: Order, bpp_id: str) -> dict[str, Any] | None:
    """The payment asked for at init: `beckn:amount` is what was asked (collected, or
    held); for a postpaid order after the bill, the bill. A top-up's link, when one is
    due, is the payment URL."""
    p = order.payment
    if not p.get("mode") or "amount" not in p:
        return None
    s = order.settlement or {}
    status = payment_status(order)
    collected = p.get("status") in ("PAID", "HELD")
    amount: Any = p["amount"]
    url: str | None = None
    if top_up_due(order):
        url = s.get("top_up_url")
        if not collected:  # postpaid: the bill is what is asked
            amount = s.get("top_up", amount)
    elif not collected and p.get("mode") != "POSTPAID" and "final_amount" not in s:
        url = p.get("url")
    out: dict[str, Any] = {"@context": CTX_CORE, "@type": "beckn:Payment",
                           "beckn:id": str(p.get("id") or f"payment-{order.id}"),
                           "beckn:paymentStatus": status,
                           "beckn:amount": price(amount, p.get("currency", "INR")),
                           "beckn:beneficiary": "BPP"}
    if url:
        out["beckn:paymentURL"] = url
    if collected and p.get("id"):
        out["beckn:txnRef"] = str(p["id"])
    if p.get("paid_at"):
        out["beckn:paidAt"] = p["paid_at"]
    accounts: list[dict[str, Any]] = []
    if url:
        accounts.append({"beneficiaryId": bpp_id, "paymentURL": url})
    vpa = order.customer.get("vpa")
    if vpa and Decimal(str(s.get("refund", "0") or "0")):
        accounts.append({"beneficiaryId": str(order.customer.get("buyer") or f"buyer-{order.id}"),
                         "vpa": str(vpa)})
    if accounts:
        out["beckn:paymentAttributes"] = {"@context": CTX_SETTLEMENT, "@type": "PaymentSettlement",
                                          "settlementAccounts": accounts}
    return out


def session_bag(order: Order, now: datetime) -> dict[str, Any]:
    """ChargingSession (EvChargingSession pack): the charge as it is now."""
    bag: dict[str, Any] = {"@context": CTX_SESSION, "@type": "ChargingSession"}
    stopping = order.state is State.ACTIVE and order.commands.get("stop_requested")
    status = "STOP" if stopping else SESSION_STATUS.get(order.state)
    if status:
        bag["sessionStatus"] = status
    item = order.item
    if item and item.connector_type in PACK_CONNECTOR_TYPES:
        bag["connectorType"] = item.connector_type
    if item and item.max_power_kw and item.max_power_kw >= 1:
        bag["maxPowerKW"] = item.max_power_kw
    s = order.session
    if s.get("kwh") is not None:
        bag["meteredEnergyKWh"] = num(s["kwh"])
    duration = session_duration(order, now)
    if duration is not None:
        bag["meteredDurationMinutes"] = round(duration.total_seconds() / 60, 2)
    if s.get("cost") is not None:
        bag["totalCost"] = {"inclVat": num(s["cost"])}
    if s.get("last_updated"):
        bag["lastUpdated"] = s["last_updated"]
    if order.reservation_id:
        bag["reservationId"] = order.reservation_id
    vehicle = order.request.get("vehicle") or {}
    if vehicle.get("make"):
        bag["vehicleMake"] = str(vehicle["make"])
    if vehicle.get("model"):
        bag["vehicleModel"] = str(vehicle["model"])
    prefs = {k: order.request[r] for k, r in (("startTime", "start"), ("endTime", "end"))
             if order.request.get(r)}
    if prefs:
        bag["preferences"] = prefs
    bff = order.buyer_finder_fee
    if bff:
        bag["buyerFinderFee"] = {"feeType": bff["type"], "feeValue": num(bff["value"])}
    return bag


def fulfillment(order: Order, now: datetime, code: str, tracking_url: str | None
                ) -> dict[str, Any]:
    out: dict[str, Any] = {"@context": CTX_CORE, "@type": "beckn:Fulfillment",
                           "beckn:id": f"fulfillment-{order.id}", "beckn:mode": "RESERVATION",
                           "beckn:fulfillmentStatus": code}
    if tracking_url:
        out["trackingAction"] = {"id": f"TRACK-{order.id[:12]}", "url": tracking_url}
    out["beckn:deliveryAttributes"] = session_bag(order, now)
    return out


def render_order(order: Order, now: datetime, bpp_id: str, fulfillment_code: str,
                 tracking_url: str | None = None) -> dict[str, Any]:
    """The rc2 `beckn:Order` of an on_* message for `order` as it is now."""
    item = order.item
    out: dict[str, Any] = {
        "@context": CTX_CORE, "@type": "beckn:Order", "beckn:id": order.id,
        "beckn:orderStatus": ORDER_STATUS[order.state],
        "beckn:orderNumber": f"ORD-{order.id[:8]}",
        "beckn:seller": f"{item.cc}-{item.pid}" if item else bpp_id,
        "beckn:buyer": buyer(order),
    }
    line: dict[str, Any] = {"beckn:lineId": "line-001",
                            "beckn:orderedItem": item.item_id if item else "unknown",
                            "beckn:quantity": quantity(order)}
    if item and item.offer:
        line["beckn:acceptedOffer"] = item.offer
    lp = line_price(order)
    if lp:
        line["beckn:price"] = lp
    bag = service_bag(order)
    if bag:
        line["beckn:orderItemAttributes"] = bag
    out["beckn:orderItems"] = [line]
    value = order_value(order)
    if value:
        out["beckn:orderValue"] = value
    pay = payment(order, bpp_id)
    if pay:
        out["beckn:payment"] = pay
    out["beckn:fulfillment"] = fulfillment(order, now, fulfillment_code, tracking_url)
    out["beckn:orderAttributes"] = session_bag(order, now)
    return out


# OCPI CdrDimensionType -> ChargingSession telemetry metric (name, unitCode). The pack's
# description swaps the units of ENERGY and POWER; these are the ones the names mean.
METRICS = {"ENERGY": ("ENERGY", "KWH"), "POWER": ("POWER", "KW"), "CURRENT": ("CURRENT", "AMP"),
           "STATE_OF_CHARGE": ("STATE_OF_CHARGE", "PERCENTAGE")}


def track_patch(order: Order, session: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The live-tracking PATCH body: rc2 defines none for the track callbackUrl, the
    EvChargingSession pack covers what it carries, so it is a ChargingSession bag."""
    bag = session_bag(order, now)
    if session.get("kwh") is not None:
        bag["meteredEnergyKWh"] = num(session["kwh"])
    cost = session.get("total_cost") or {}
    if cost:
        total: dict[str, Any] = {}
        if cost.get("excl_vat") is not None:
            total["exclVat"] = num(cost["excl_vat"])
        if cost.get("incl_vat") is not None:
            total["inclVat"] = num(cost["incl_vat"])
        bag["totalCost"] = total
    bag["lastUpdated"] = session.get("last_updated") or now.isoformat()
    telemetry = []
    for p in (session.get("charging_periods") or [])[-5:]:
        metrics = [{"name": METRICS[d["type"]][0], "value": num(d["volume"]),
                    "unitCode": METRICS[d["type"]][1]}
                   for d in p.get("dimensions", []) if d.get("type") in METRICS]
        telemetry.append({"eventTime": p["start_date_time"], "metrics": metrics})
    if telemetry:
        bag["chargingTelemetry"] = telemetry
    return bag
