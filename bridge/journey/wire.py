"""Beckn order messages at the edge: read requests (every dialect), write orders (per profile).

Reading: the parsers accept the rc2 schema's request shapes, the guide's examples
03-17 and the forms networks send, whatever the BAP's wire profile.
Writing: `render_order` hands the order to its profile's renderer
(`bridge.journey.rc2`, `bridge.journey.guide`; profiles in `bridge.beckn.profiles`).

Pure functions over dicts and the stored `Order`; `now` is an argument. The
action modules (`bridge.journey.select`, `init`, ...) call these; nothing here
does I/O. Choices where the guide's examples disagree are in
docs/protocol-notes.md ("Orders").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.beckn.errors import SchemaError
from bridge.beckn.profiles import GUIDE, RC2
from bridge.journey import guide, rc2
from bridge.journey.codes import FULFILLMENT
from bridge.orders import State
from bridge.store.orders import Order

__all__ = ["FULFILLMENT", "Edge", "render_order", "track_patch"]


@dataclass(frozen=True)
class Edge:
    """What rendering needs besides the order: who we are and where our pages are."""

    bpp_id: str
    public_url: str

    def tracking_url(self, order: Order) -> str:
        return f"{self.public_url}/track/{order.id}"


def render_order(profile: str, order: Order, now: datetime, edge: Edge,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`message.order` of an on_* for `order` as it is now, in `profile`. `extra`: the
    action's own notes (start code sent, interruption, tracking) in the guide's words;
    the rc2 schema has no place for them (protocol notes)."""
    code = FULFILLMENT[order.state][1]
    if profile == GUIDE:
        return guide.render_order(order, now, edge.bpp_id, extra=extra)
    if profile == RC2:
        trackable = order.state not in (State.DRAFT, State.QUOTED, State.INITIALIZED,
                                        State.PAYMENT_PENDING)
        return rc2.render_order(order, now, edge.bpp_id, code,
                                edge.tracking_url(order) if trackable else None)
    raise ValueError(f"unknown wire profile {profile!r}")


def track_patch(profile: str, order: Order, session: dict[str, Any], now: datetime
                ) -> dict[str, Any]:
    """The body PATCHed to the BAP's tracking callback from an OCPI Session."""
    if profile == GUIDE:
        return guide.track_patch(order, session, now)
    return rc2.track_patch(order, session, now)

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
    """The order id a request names, if any: `message.order.beckn:id`, `message.order_id`,
    a rating of the ORDER (`ratings[0].id`), a support request about an ORDER (`refId`)."""
    message = body.get("message")
    if not isinstance(message, dict):
        return None
    order = message.get("order")
    ref: Any = None
    if isinstance(order, dict):
        ref = order.get("beckn:id")
    elif message.get("order_id"):
        ref = message["order_id"]
    elif isinstance(message.get("ratings"), list) and message["ratings"]:
        r = message["ratings"][0]
        if isinstance(r, dict) and str(r.get("category") or r.get("rating_category")
                                       or "ORDER").upper() == "ORDER":
            ref = r.get("id")
    elif message.get("refId") and str(message.get("refType", "ORDER")).upper() == "ORDER":
        ref = message["refId"]
    return str(ref) if ref else None
    ref = message.get("order_id") if isinstance(message, dict) else None
    return str(ref) if ref else None


