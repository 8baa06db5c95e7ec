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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.beckn.errors import SchemaError
from bridge.beckn.errors import optional_object as _obj
from bridge.beckn.profiles import GUIDE, LTS, RC2
from bridge.journey import guide, lts, rc2
from bridge.journey.codes import FULFILLMENT
from bridge.orders import State
from bridge.store.orders import Order

__all__ = ["FULFILLMENT", "Edge", "render_order", "track_patch"]


@dataclass(frozen=True)
class Edge:
    """What rendering needs besides the order: who we are and where our pages are."""

    bpp_id: str
    public_url: str
    refund_within: str = "P3D"  # journey.refund_within
    track_interval: float = 5.0  # journey.track_interval
    car_max_kw: float = 50.0  # journey.car_max_kw (the power reckoned before a reading)

    def tracking_url(self, order: Order) -> str:
        return f"{self.public_url}/track/{order.id}"


def _order_guide(order: Order, now: datetime, edge: Edge, extra: dict[str, Any] | None
                 ) -> dict[str, Any]:
    return guide.render_order(order, now, edge.bpp_id, extra=extra,
                              refund_within=edge.refund_within, car_max_kw=edge.car_max_kw)


def _order_rc2(order: Order, now: datetime, edge: Edge, extra: dict[str, Any] | None
               ) -> dict[str, Any]:
    trackable = order.state not in (State.DRAFT, State.QUOTED, State.INITIALIZED,
                                    State.PAYMENT_PENDING)
    return rc2.render_order(order, now, edge.bpp_id, FULFILLMENT[order.state][1],
                            edge.tracking_url(order) if trackable else None)


def _contract_lts(order: Order, now: datetime, edge: Edge, extra: dict[str, Any] | None
                  ) -> dict[str, Any]:
    return lts.render_contract(order, now, edge.bpp_id)


OrderRender = Callable[[Order, datetime, Edge, dict[str, Any] | None], dict[str, Any]]
PatchRender = Callable[[Order, dict[str, Any], datetime], dict[str, Any]]
# Each profile's renderers (the seam a further profile plugs into: its functions here,
# and its entries in the action modules' tables).
ORDER: dict[str, OrderRender] = {RC2: _order_rc2, GUIDE: _order_guide, LTS: _contract_lts}
PATCH: dict[str, PatchRender] = {RC2: rc2.track_patch, GUIDE: guide.track_patch,
                                 LTS: lts.track_patch}
# the member of `message` the order is in: the draft's Order, the LTS's Contract
MESSAGE_KEY: dict[str, str] = {RC2: "order", GUIDE: "order", LTS: "contract"}


def render_order(profile: str, order: Order, now: datetime, edge: Edge,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`message.order` (LTS: `message.contract`) of an on_* for `order` as it is now, in
    `profile`. `extra`: the action's own notes (start code sent, interruption, tracking)
    in the guide's words; the rc2 and LTS schemas have no place for them (protocol notes)."""
    return ORDER[profile](order, now, edge, extra)


def render_message(profile: str, order: Order, now: datetime, edge: Edge,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `message` of an on_* that carries the order, in `profile`."""
    return {MESSAGE_KEY[profile]: render_order(profile, order, now, edge, extra)}


def track_patch(profile: str, order: Order, session: dict[str, Any], now: datetime
                ) -> dict[str, Any]:
    """The body PATCHed to the BAP's tracking callback from an OCPI Session."""
    return PATCH[profile](order, session, now)


def _dec(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise SchemaError(f"{field}: not a number: {value!r}", {"field": field})
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise SchemaError(f"{field}: not a number: {value!r}", {"field": field}) from exc
    if not d.is_finite() or d < 0 or d > MAX_AMOUNT:
        raise SchemaError(f"{field}: must be a number from 0 to {MAX_AMOUNT}", {"field": field})
    return d


MAX_AMOUNT = Decimal(1_000_000)  # INR, kWh or minutes: more is a typo, never a charge


def _dt(value: Any, field: str) -> datetime:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise SchemaError(f"{field}: not a date-time: {value!r}", {"field": field}) from exc
    if dt.tzinfo is None:
        raise SchemaError(f"{field}: needs a time zone", {"field": field})
    return dt


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) \
        and str(value) else None


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
    return _obj(order.get("beckn:orderAttributes"), "message.order.beckn:orderAttributes")


def session_bag(order: dict[str, Any]) -> dict[str, Any]:
    """The rc2 ChargingSession bag of a request: `beckn:orderAttributes` when it is one,
    else the fulfilment's `beckn:deliveryAttributes` ({} when neither)."""
    a = attrs(order)
    if a.get("@type") == "ChargingSession":
        return a
    f = _obj(order.get("beckn:fulfillment") if isinstance(order.get("beckn:fulfillment"), dict)
             else None, "message.order.beckn:fulfillment")
    return _obj(f.get("beckn:deliveryAttributes"),
                "message.order.beckn:fulfillment.beckn:deliveryAttributes")


def buyer(order: dict[str, Any]) -> dict[str, Any]:
    """rc2's `beckn:buyer` object ({} for the guide's string id)."""
    b = order.get("beckn:buyer")
    return b if isinstance(b, dict) else {}


def buyer_id(order: dict[str, Any]) -> str | None:
    b = order.get("beckn:buyer")
    return _text(b.get("beckn:id")) if isinstance(b, dict) else _text(b)


# --------------------------------------------------------------------------- select


class SelectRequest:
    """What the driver asks for: which charger, how much (INR, kWh or time), when."""

    def __init__(self, item_id: str, budget: Decimal | None, energy_kwh: Decimal | None,
                 minutes: Decimal | None, start: datetime | None, end: datetime | None,
                 vehicle: dict[str, Any] | None, bff: dict[str, Any] | None,
                 buyer: str | None = None) -> None:
        self.item_id = item_id
        self.budget = budget
        self.energy_kwh = energy_kwh
        self.minutes = minutes
        self.start = start
        self.end = end
        self.vehicle = vehicle
        self.bff = bff
        self.buyer = buyer

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


def stops(order: dict[str, Any], where: str) -> tuple[datetime | None, datetime | None]:
    """The slot: the guide's START/STOP (or END) stops, or rc2's ChargingSession
    `preferences {startTime, endTime}`."""
    a = attrs(order)
    fd = _obj(a.get("fulfillment-details"), f"{where}.fulfillment-details")
    start = end = None
    listed = fd.get("stops") or []
    if not isinstance(listed, list):
        raise SchemaError(f"{where}.fulfillment-details.stops: must be a list",
                          {"field": f"{where}.fulfillment-details.stops"})
    for i, stop in enumerate(listed):
        if not isinstance(stop, dict):
            continue
        ts = _obj(stop.get("time"), f"{where}.fulfillment-details.stops[{i}].time").get(
            "timestamp")
        kind = str(stop.get("type", "")).upper()
        if ts is None:
            continue
        field = f"{where}.fulfillment-details.stops[{i}].time.timestamp"
        if kind == "START":
            start = _dt(ts, field)
        elif kind in ("STOP", "END"):  # the guide uses both
            end = _dt(ts, field)
    prefs = _obj(session_bag(order).get("preferences"), f"{where}.preferences")
    if start is None and prefs.get("startTime"):
        start = _dt(prefs["startTime"], f"{where}.preferences.startTime")
    if end is None and prefs.get("endTime"):
        end = _dt(prefs["endTime"], f"{where}.preferences.endTime")
    return start, end


def parse_bff(order: dict[str, Any]) -> dict[str, Any] | None:
    """The BAP's finder fee: the guide's `buyer-finder-fee {type, value}` or rc2's
    ChargingSession `buyerFinderFee {feeType, feeValue}`."""
    a = attrs(order)
    bff = a.get("buyer-finder-fee")
    field = "buyer-finder-fee"
    kind_key, value_key = "type", "value"
    if not bff:
        bff = session_bag(order).get("buyerFinderFee")
        field, kind_key, value_key = "buyerFinderFee", "feeType", "feeValue"
    if not bff:
        return None
    if not isinstance(bff, dict) or value_key not in bff:
        raise SchemaError(f"{field}: needs {kind_key} and {value_key}", {"field": field})
    kind = str(bff.get(kind_key, "PERCENTAGE")).upper()
    if kind not in ("PERCENTAGE", "PERCENT", "AMOUNT", "FLAT"):
        raise SchemaError(f"{field}.{kind_key}: {kind!r} is not PERCENTAGE or AMOUNT",
                          {"field": f"{field}.{kind_key}"})
    return {"type": "PERCENTAGE" if kind.startswith("PERCENT") else "AMOUNT",
            "value": str(_dec(bff[value_key], f"{field}.{value_key}"))}


UNITS = {"INR": "budget", "RS": "budget", "₹": "budget", "KWH": "energy", "MIN": "minutes",
         "MINUTE": "minutes", "MINUTES": "minutes", "HOUR": "hours", "HOURS": "hours",
         "H": "hours", "HUR": "hours"}


def _amount(unit: str, value: Decimal, field: str) -> tuple[str, Decimal]:
    kind = UNITS.get(unit.upper())
    if kind is None:
        raise SchemaError(f"{field}: {unit!r} is not INR, KWH, MIN or HOUR", {"field": field})
    return ("minutes", value * 60) if kind == "hours" else (kind, value)


def parse_select(body: dict[str, Any]) -> SelectRequest:
    """How much to charge, in every dialect: rc2's `beckn:quantity` Quantity
    {unitCode KWH|INR|MIN|HUR, unitQuantity}, the guide's `quantity-measure {value, unit}`
    (example 04), or a budget as the line's `beckn:price.value` (example 03)."""
    order = the_order(body)
    items = order.get("beckn:orderItems")
    where = "message.order"
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise SchemaError(f"{where}.beckn:orderItems: one item is required",
                          {"field": f"{where}.beckn:orderItems"})
    line = items[0]
    lw = f"{where}.beckn:orderItems[0]"
    ordered = line.get("beckn:orderedItem")
    if isinstance(ordered, dict):
        ordered = ordered.get("beckn:id")
    if not isinstance(ordered, str) or not ordered:
        raise SchemaError(f"{lw}.beckn:orderedItem: required item id",
                          {"field": f"{lw}.beckn:orderedItem"})
    asked: dict[str, Decimal] = {}
    measure = _obj(line.get("beckn:orderItemAttributes"), f"{lw}.beckn:orderItemAttributes").get(
        "quantity-measure")
    quantity = line.get("beckn:quantity")
    price = line.get("beckn:price")
    if isinstance(measure, dict):
        kind, value = _amount(str(measure.get("unit", "")), _dec(
            measure.get("value"), "quantity-measure.value"), "quantity-measure.unit")
        asked[kind] = value
    elif isinstance(quantity, dict) and quantity.get("unitCode") is not None:
        kind, value = _amount(str(quantity["unitCode"]), _dec(
            quantity.get("unitQuantity"), f"{lw}.beckn:quantity.unitQuantity"),
            f"{lw}.beckn:quantity.unitCode")
        asked[kind] = value
    elif isinstance(price, dict) and "value" in price:
        asked["budget"] = _dec(price["value"], f"{lw}.beckn:price.value")
    else:
        raise SchemaError("say how much to charge: beckn:quantity {unitCode KWH|INR|MIN, "
                          "unitQuantity}, beckn:price.value (a budget in INR) or "
                          "beckn:orderItemAttributes.quantity-measure {value, unit}",
                          {"field": lw})
    if any(v == 0 for v in asked.values()):
        raise SchemaError("the amount to charge must be more than zero", {"field": lw})
    a = attrs(order)
    start, end = stops(order, f"{where}.beckn:orderAttributes")
    if start and end and end <= start:
        raise SchemaError("the STOP time must be after the START time",
                          {"field": f"{where}.beckn:orderAttributes.fulfillment-details.stops"})
    vehicle = _obj(a.get("fulfillment-details"), "fulfillment-details").get("vehicle")
    bag = session_bag(order)
    if not isinstance(vehicle, dict) and (bag.get("vehicleMake") or bag.get("vehicleModel")):
        vehicle = {k: str(bag[b]) for k, b in (("make", "vehicleMake"), ("model", "vehicleModel"))
                   if bag.get(b)}
    return SelectRequest(ordered, asked.get("budget"), asked.get("energy"), asked.get("minutes"),
                         start, end, vehicle if isinstance(vehicle, dict) else None,
                         parse_bff(order), buyer_id(order))


# --------------------------------------------------------------------------- init


def parse_init(body: dict[str, Any]) -> dict[str, Any]:
    """The buyer and how they pay, in every dialect: rc2's `beckn:buyer` (id, displayName,
    telephone, email, taxID, a `BuyerUPI` bag with `vpa`) and `beckn:payment`, or the
    guide's `billing-details`, `fulfillment-details.customer`, `payment-details`
    (examples 06, 09); fleet id (+ OTP) and the buyer-finder fee."""
    order = the_order(body)
    a = attrs(order)
    b = buyer(order)
    billing = _obj(a.get("billing-details"), "billing-details")
    customer = _obj(_obj(a.get("fulfillment-details"), "fulfillment-details").get("customer"),
                    "fulfillment-details.customer")
    phone = (_text(b.get("beckn:telephone")) or _text(billing.get("schema:telephone"))
             or _text(customer.get("schema:telephone")))
    if not phone:
        raise SchemaError("the driver's phone is required (for the start code): "
                          "beckn:buyer.beckn:telephone or billing-details.schema:telephone",
                          {"field": "message.order.beckn:buyer.beckn:telephone"})
    fleet = _obj(a.get("fleet-details"), "fleet-details")
    payment = a.get("payment-details") or {}
    if isinstance(payment, list):
        payment = payment[0] if payment else {}
    payment = _obj(payment, "payment-details")
    ptype = str(payment.get("payment-type", "") or "").upper()
    method = str(payment.get("beckn:method", "") or "").upper()
    rc2_pay = _obj(order.get("beckn:payment") if isinstance(order.get("beckn:payment"), dict)
                   else None, "beckn:payment")
    mode = None
    if ptype in ("ON-ORDER", "PRE-FULFILLMENT") or method in ("PAYMENT-LINK", "UPI-TRANSFER",
                                                                  "BANK-TRANSFER"):
        mode = "PREPAID"
    if ptype in ("AUTHORIZATION-HOLD", "HOLD") or method in ("UPI-MANDATE", "CARD-HOLD") or (
            rc2_pay.get("beckn:paymentStatus") == "AUTHORIZED"):
        mode = "HOLD"
    if ptype in ("POST-FULFILLMENT", "ON-FULFILLMENT"):
        mode = "POSTPAID"
    bag = _obj(b.get("beckn:buyerAttributes"), "beckn:buyer.beckn:buyerAttributes")
    pay_attrs = _obj(payment.get("beckn:paymentAttributes"), "payment-details.beckn:paymentAttributes")
    vpa = _text(bag.get("vpa")) or _text(pay_attrs.get("source-vpa"))
    email = _text(b.get("beckn:email")) or _text(billing.get("schema:email"))
    return {
        "billing": billing,
        "phone": phone,
        "name": _text(b.get("beckn:displayName")) or _text(billing.get("schema:name"))
        or _text(customer.get("schema:name")),
        "email": email,
        "buyer": buyer_id(order) or _text(billing.get("beckn:payer")),
        "tax_id": _text(b.get("beckn:taxID")) or _text(billing.get("tax-id")),
        "buyer_attributes": bag if bag.get("@context") and bag.get("@type") else None,
        "vpa": vpa,
        "contact": {k: v for k, v in customer.items() if k in ("schema:name", "schema:telephone")},
        "fleet_id": _text(fleet.get("beckn:id")) or _text(fleet.get("id")),
        "fleet_otp": _text(fleet.get("otp")),
        "payment_mode": mode,
        "bff": parse_bff(order),
    }


# --------------------------------------------------------------------------- update / track


# rc2 ChargingSession.sessionStatus asked for by a BAP -> the driver's action
SESSION_ASKS = {"ACTIVE": "start-charging", "STOP": "stop-charging",
                "COMPLETED": "stop-charging"}


def _bags(order: dict[str, Any]) -> list[dict[str, Any]]:
    """The order's attribute bags: `beckn:orderAttributes` and the fulfilment's
    `beckn:deliveryAttributes` (rc2)."""
    f = order.get("beckn:fulfillment")
    bags = [attrs(order)]
    if isinstance(f, dict) and isinstance(f.get("beckn:deliveryAttributes"), dict):
        bags.append(f["beckn:deliveryAttributes"])
    return bags


def parse_update(body: dict[str, Any]) -> tuple[str, str | None]:
    """("start-charging" | "stop-charging", the start code if any): the guide's
    `fulfillment-update {state.code, authorization.token}` (example 11), or rc2's
    ChargingSession `sessionStatus` ACTIVE (start) / STOP (stop) in the order's or the
    fulfilment's attribute bag. rc2 has no field for the start code: it is read from an
    `authorization {type OTP, token}` in either bag (a bag of its own type keeps the
    ChargingSession pack-valid; docs/protocol-notes.md)."""
    order = the_order(body)
    fu = _obj(attrs(order).get("fulfillment-update"), "fulfillment-update")
    state = _obj(fu.get("state"), "fulfillment-update.state")
    code = str(state.get("code") or fu.get("beckn:status") or "").lower()
    auth = _obj(fu.get("authorization"), "fulfillment-update.authorization")
    if not code:
        for bag in _bags(order):
            code = code or SESSION_ASKS.get(str(bag.get("sessionStatus", "")).upper(), "")
            auth = auth or _obj(bag.get("authorization"), "authorization")
    if code not in ("start-charging", "stop-charging"):
        raise SchemaError("say what to do: fulfillment-update.state.code start-charging | "
                          "stop-charging, or a ChargingSession sessionStatus ACTIVE | STOP",
                          {"field": "message.order.beckn:orderAttributes.fulfillment-update."
                                    "state.code"})
    token = auth.get("token")
    return code, _text(token)


def parse_track(body: dict[str, Any]) -> str | None:
    """The BAP's callback URL for live updates, if any: rc2's `message.tracking
    {id, callbackUrl}` or the guide's `callback-url` in the order (example 13)."""
    message = body.get("message")
    tracking = message.get("tracking") if isinstance(message, dict) else None
    if isinstance(tracking, dict):
        url = tracking.get("callbackUrl")
        field = "message.tracking.callbackUrl"
    else:
        url = attrs(the_order(body)).get("callback-url")
        field = "callback-url"
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise SchemaError(f"{field}: must be an http(s) URL", {"field": field})
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


