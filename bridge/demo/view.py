"""Reading the bridge's order messages as a BAP does: only the wire, never the bridge's
store. Both wire profiles (bridge/beckn/profiles.py) are read:

    rc2     the core draft's schema: `beckn:orderStatus`, `beckn:orderValue` components,
            one `beckn:payment`, `beckn:fulfillment` status, ChargingSession bags
    guide   the implementation guide's examples 03-17: `beckn:state`, `beckn:totals`,
            `payment-details`, `fulfillment-details`, `real-time-metrics`

A message says which it is by its order (`beckn:orderStatus` is rc2's).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.demo.render import PAISA, inr

# What a BAP shows for a fulfilment status code (rc2 sends only the code).
NAMES = {"PENDING": "Charging Pending", "RESERVED": "Charger reserved for your slot",
         "ACTIVE": "Charging in progress",
         "CONNECTION-INTERRUPTED": "Charging connection lost: retrying automatically",
         "COMPLETED": "Charging completed", "CANCELLED": "Booking cancelled",
         "NO-SHOW": "Slot released: the car did not arrive in time",
         "FAILED": "The charger could not start the session"}
# rc2 orderStatus -> the guide's beckn:state a driver would be shown (the finer states
# are in the fulfilment's status code)
STATES = {"CREATED": "QUOTED", "PENDING": "INITIALIZED", "INPROGRESS": "ACTIVE"}


def money(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else 0)).quantize(PAISA)


def order(msg: dict[str, Any]) -> dict[str, Any]:
    """The order of a message: the draft's `message.order`, or the LTS's contract
    (`message.contract`, or the one an on_track's Tracking carries)."""
    m = msg.get("message") or {}
    o = m.get("order") or m.get("contract") or (m.get("tracking") or {}).get("contract") or {}
    return o if isinstance(o, dict) else {}


def is_rc2(o: dict[str, Any]) -> bool:
    return "beckn:orderStatus" in o


def is_lts(o: dict[str, Any]) -> bool:
    """An LTS Contract (bridge/journey/lts.py), not an Order."""
    return "commitments" in o


def order_id(msg: dict[str, Any]) -> str:
    """The order id a message names (an LTS contract's uuid is the same id)."""
    o = order(msg)
    if is_lts(o):
        from bridge.beckn.lts import order_id as from_contract

        return from_contract(o.get("id")) or ""
    return str(o.get("beckn:id", ""))


def _perf(o: dict[str, Any]) -> dict[str, Any]:
    p = (o.get("performance") or [{}])[0]
    return p if isinstance(p, dict) else {}


# LTS contract status (+ its performance's code) -> the guide's state words
LTS_STATES = {"COMPLETE": "COMPLETED", "CANCELLED": "CANCELLED"}


def attrs(msg: dict[str, Any]) -> dict[str, Any]:
    a = order(msg).get("beckn:orderAttributes") or {}
    return a if isinstance(a, dict) else {}


def state(msg: dict[str, Any]) -> str:
    """The order's state in the guide's words (rc2's orderStatus mapped by `STATES`)."""
    o = order(msg)
    if is_rc2(o):
        status = str(o.get("beckn:orderStatus", ""))
        return STATES.get(status, status)
    if is_lts(o):
        status = str((o.get("status") or {}).get("code", ""))
        if status == "DRAFT":
            return "INITIALIZED" if o.get("settlements") else "QUOTED"
        if status == "ACTIVE":
            code = str((_perf(o).get("status") or {}).get("code", ""))
            return "ACTIVE" if code in ("ACTIVE", "CONNECTION-INTERRUPTED") else "CONFIRMED"
        return LTS_STATES.get(status, status)
    return str(o.get("beckn:state", ""))


def fulfillment(msg: dict[str, Any]) -> tuple[str, str]:
    """(status code, what the driver is told) of the fulfilment."""
    o = order(msg)
    if is_rc2(o):
        code = str((o.get("beckn:fulfillment") or {}).get("beckn:fulfillmentStatus", ""))
        return code, NAMES.get(code, code)
    if is_lts(o):
        st = _perf(o).get("status") or {}
        code = str(st.get("code", ""))
        return code, str(st.get("name") or NAMES.get(code, code))
    fd = attrs(msg).get("fulfillment-details") or {}
    st = fd.get("state") or {}
    return str(fd.get("beckn:status", "")), str(st.get("name", ""))


def error(msg: dict[str, Any]) -> str | None:
    err = msg.get("error")
    if not err:
        return None
    return (f"{err.get('code', err.get('errorCode'))}: "
            f"{err.get('message', err.get('errorMessage'))}")


def breakup(msg: dict[str, Any]) -> tuple[list[tuple[str, Decimal]], Decimal]:
    """The quote's or the bill's lines and their total."""
    o = order(msg)
    if is_rc2(o) or is_lts(o):
        value = _value(o)
        return ([(str(c.get("description", c.get("type", ""))), money(c.get("value")))
                 for c in value.get("components") or []], money(value.get("value")))
    totals = o.get("beckn:totals") or {}
    lines = [(str(b.get("schema:name", "")), money(b.get("schema:price")))
             for b in totals.get("beckn:breakup") or []]
    return lines, money(totals.get("schema:price"))


def _value(o: dict[str, Any]) -> dict[str, Any]:
    """rc2's orderValue, or the LTS contract's consideration (the same PriceSpecification)."""
    if is_lts(o):
        cons = (o.get("consideration") or [{}])[0]
        return dict(cons.get("considerationAttributes") or {})
    return dict(o.get("beckn:orderValue") or {})


def _payment_object(o: dict[str, Any]) -> Any:
    """rc2's beckn:payment, or the LTS contract's first settlement's (the same object)."""
    if is_lts(o):
        return ((o.get("settlements") or [{}])[0]).get("settlementAttributes")
    return o.get("beckn:payment")


def payments(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The guide's payment-details entries (the first is the payment asked for at init)."""
    pd = attrs(msg).get("payment-details")
    if pd is None:
        return []
    return pd if isinstance(pd, list) else [pd]


@dataclass(frozen=True)
class Pay:
    """The payment asked for at init, however the profile writes it."""

    status: str  # NOT-PAID | PAID | HELD (the guide's words; rc2's mapped)
    amount: Decimal
    url: str | None
    mode: str  # PRE-FULFILLMENT | AUTHORIZATION-HOLD | POST-FULFILLMENT | "" (rc2: unsaid)


RC2_PAY = {"AUTHORIZED": "HELD", "CAPTURED": "PAID", "COMPLETED": "PAID",
           "PARTIALLY_REFUNDED": "PAID", "REFUNDED": "PAID", "ADJUSTED": "PAID"}


def payment(msg: dict[str, Any]) -> Pay | None:
    o = order(msg)
    if is_rc2(o) or is_lts(o):
        p = _payment_object(o)
        if not isinstance(p, dict):
            return None
        status = str(p.get("beckn:paymentStatus", ""))
        url = p.get("beckn:paymentURL")
        return Pay(RC2_PAY.get(status, "NOT-PAID"), money((p.get("beckn:amount") or {}).get(
            "value")), str(url) if url else None,
            "AUTHORIZATION-HOLD" if status == "AUTHORIZED" else "")
    entries = payments(msg)
    if not entries:
        return None
    main = entries[0]
    url = main.get("payment-url")
    return Pay(str(main.get("beckn:status", "")), money((main.get("beckn:amount") or {}).get(
        "value")), str(url) if url else None, str(main.get("payment-type", "")))


def metrics(o: dict[str, Any]) -> dict[str, Any]:
    """The session now, in the guide's `real-time-metrics` words (energy-delivered,
    cost-so-far, session-status) whichever profile sent it."""
    if is_rc2(o) or is_lts(o):
        bag = (_perf(o).get("performanceAttributes") if is_lts(o)
               else o.get("beckn:orderAttributes")) or {}
        out: dict[str, Any] = {}
        if "meteredEnergyKWh" in bag:
            out["energy-delivered"] = str(bag["meteredEnergyKWh"])
        if (bag.get("totalCost") or {}).get("inclVat") is not None:
            out["cost-so-far"] = str(bag["totalCost"]["inclVat"])
        if bag.get("sessionStatus"):
            out["session-status"] = bag["sessionStatus"]
        return out
    for line in o.get("beckn:orderItems") or []:
        m = (line.get("beckn:orderItemAttributes") or {}).get("real-time-metrics")
        if isinstance(m, dict):
            return m
    return {}


def patch_reading(body: dict[str, Any]) -> tuple[Decimal, Decimal | None, str]:
    """(kWh, ₹ incl. GST so far, status) of a tracking PATCH: rc2's ChargingSession bag,
    or the guide's example 14."""
    if body.get("@type") == "ChargingSession":
        cost = (body.get("totalCost") or {}).get("inclVat")
        return (Decimal(str(body.get("meteredEnergyKWh", 0))),
                money(cost) if cost is not None else None, str(body.get("sessionStatus", "")))
    kwh = Decimal(str((body.get("ev:energyDelivered") or {}).get("schema:value", 0)))
    cost = ((body.get("beckn:totalCost") or {}).get("beckn:includingTax") or {}).get(
        "schema:price")
    return kwh, money(cost) if cost is not None else None, str(body.get("beckn:status", ""))


def interruption(msg: dict[str, Any]) -> tuple[str, Decimal, str]:
    """(why, estimated refund, note) of an interrupted charge. The guide says it; rc2 has
    no field for it, so the BAP works it out: what was collected less the cost so far."""
    o = order(msg)
    if is_rc2(o) or is_lts(o):
        pay = payment(msg)
        collected = pay.amount if pay and pay.status in ("PAID", "HELD") else Decimal(0)
        cost = money(metrics(o).get("cost-so-far"))
        return "charging interrupted", max(collected - cost, Decimal(0)).quantize(PAISA), ""
    info = attrs(msg).get("interruption") or {}
    return (str(info.get("reason", "")), money((info.get("estimated-refund") or {}).get("value")),
            str(info.get("note") or ""))


def tracking(msg: dict[str, Any]) -> tuple[str | None, str | None]:
    """(tracking URL, update frequency) of an on_track."""
    t = (msg.get("message") or {}).get("tracking")
    if isinstance(t, dict):
        return t.get("url"), None
    td = attrs(msg).get("tracking-details") or {}
    return td.get("beckn:url"), (td.get("live-updates") or {}).get("update-frequency")


def item_evse(item: dict[str, Any]) -> str | None:
    a = item.get("beckn:itemAttributes") or item.get("resourceAttributes") or {}
    return a.get("evseId") or a.get("ev:evseId")


def catalog_items(msg: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    """(item id, EVSE id, name, short description) of every item of an on_discover: the
    draft's items or the LTS's resources."""
    out = []
    for cat in (msg.get("message") or {}).get("catalogs") or msg.get("catalogs") or []:
        for i in cat.get("beckn:items") or []:
            d = i.get("beckn:descriptor") or {}
            out.append((str(i["beckn:id"]), item_evse(i), str(d.get("schema:name", "")),
                        str(d.get("beckn:shortDesc", ""))))
        for r in cat.get("resources") or []:
            d = r.get("descriptor") or {}
            out.append((str(r["id"]), item_evse(r), str(d.get("name", "")),
                        str(d.get("shortDesc", ""))))
    return out


@dataclass(frozen=True)
class Bill:
    """The money of a completed order, from its final on_update (example 17)."""

    mode: str  # PRE-FULFILLMENT | AUTHORIZATION-HOLD | POST-FULFILLMENT
    collected: Decimal  # paid up front, or held
    billed: Decimal
    refund: Decimal
    capture: Decimal
    release: Decimal
    top_up: Decimal
    top_up_url: str | None

    @property
    def hold(self) -> bool:
        return self.mode == "AUTHORIZATION-HOLD"

    def balanced(self) -> tuple[bool, str]:
        """paid + top-up = billed + refunded, to the paisa (for a hold, what was captured
        is what was paid, and captured + released = held)."""
        if self.hold:
            ok = (self.capture + self.top_up == self.billed
                  and self.capture + self.release == self.collected)
            return ok, (f"paid (captured) {_m(self.capture)} + top-up {_m(self.top_up)} = "
                        f"billed {_m(self.billed)} + refunded ₹0.00; captured "
                        f"{_m(self.capture)} + released {_m(self.release)} = held "
                        f"{_m(self.collected)}")
        ok = self.collected + self.top_up == self.billed + self.refund
        return ok, (f"paid {_m(self.collected)} + top-up {_m(self.top_up)} = billed "
                    f"{_m(self.billed)} + refunded {_m(self.refund)}")


def _m(d: Decimal) -> str:
    return inr(d)


def bill(msg: dict[str, Any]) -> Bill:
    o = order(msg)
    if is_rc2(o):
        return _bill_rc2(o)
    if is_lts(o):
        return _bill_lts(o)
    entries = payments(msg)
    main = entries[0] if entries else {}
    by_method: dict[str, Decimal] = {}
    top_up_url = None
    for e in entries[1:]:
        method = str(e.get("beckn:method", ""))
        by_method[method] = by_method.get(method, Decimal(0)) + money(
            (e.get("beckn:amount") or {}).get("value"))
        if method == "TOP-UP":
            top_up_url = e.get("payment-url")
    collected = money((main.get("beckn:amount") or {}).get("value")) if main.get(
        "beckn:status") in ("PAID", "HELD") else Decimal("0.00")
    settled = attrs(msg).get("settlement-details") or {}
    billed = money((settled.get("final-amount") or {}).get("value")) if settled.get(
        "final-amount") else breakup(msg)[1]
    z = Decimal("0.00")
    return Bill(mode=str(main.get("payment-type", "")), collected=collected, billed=billed,
                refund=by_method.get("REFUND", z), capture=by_method.get("CAPTURE", z),
                release=by_method.get("RELEASE", z), top_up=by_method.get("TOP-UP", z),
                top_up_url=str(top_up_url) if top_up_url else None)


def _bill_rc2(o: dict[str, Any]) -> Bill:
    """rc2 states the bill (orderValue) and the payment (amount and status); the money
    moved follows from them (docs/protocol-notes.md, "The rc2 profile": payment status)."""
    p = o.get("beckn:payment") or {}
    status = str(p.get("beckn:paymentStatus", ""))
    amount = money((p.get("beckn:amount") or {}).get("value"))
    billed = money((o.get("beckn:orderValue") or {}).get("value"))
    url = p.get("beckn:paymentURL")
    z = Decimal("0.00")
    if status in ("CAPTURED", "VOIDED"):  # a hold: the bill captured, the rest released,
        capture = min(billed, amount)  # and what the hold did not cover asked at the URL
        return Bill("AUTHORIZATION-HOLD", amount, billed, z, capture, amount - capture,
                    billed - capture, str(url) if url and billed > capture else None)
    if status == "PENDING":  # nothing collected: the bill is asked for at the URL
        return Bill("POST-FULFILLMENT", z, billed, z, z, z, amount, str(url) if url else None)
    collected = amount
    if status == "ADJUSTED":  # collected less than the bill: a top-up at the URL
        return Bill("PRE-FULFILLMENT", collected, billed, z, z, z, billed - collected,
                    str(url) if url else None)
    return Bill("PRE-FULFILLMENT", collected, billed, max(collected - billed, z), z, z, z, None)


def _bill_lts(o: dict[str, Any]) -> Bill:
    """The LTS contract says each money movement as a settlement (bridge/journey/lts.py):
    the payment asked for at init, then refund, capture, release, top-up."""
    z = Decimal("0.00")
    moved: dict[str, Decimal] = {}
    main: dict[str, Any] = {}
    top_up_url = None
    for i, s in enumerate(o.get("settlements") or []):
        pay = s.get("settlementAttributes") or {}
        if i == 0:
            main = pay
            continue
        kind = str(s.get("id", "")).split("-")[0]
        moved[kind] = moved.get(kind, z) + money((pay.get("beckn:amount") or {}).get("value"))
        if kind == "top" and s.get("status") == "DRAFT":
            top_up_url = pay.get("beckn:paymentURL")
    status = str(main.get("beckn:paymentStatus", ""))
    amount = money((main.get("beckn:amount") or {}).get("value"))
    billed = money(_value(o).get("value"))
    if status == "PENDING":  # postpaid: the payment is the bill, asked at its URL
        url = main.get("beckn:paymentURL")
        return Bill("POST-FULFILLMENT", z, billed, z, z, z, amount, str(url) if url else None)
    hold = "capture" in moved or "release" in moved or status in ("AUTHORIZED", "CAPTURED",
                                                                   "VOIDED")
    return Bill("AUTHORIZATION-HOLD" if hold else "PRE-FULFILLMENT", amount, billed,
                moved.get("refund", z), moved.get("capture", z), moved.get("release", z),
                moved.get("top", z), str(top_up_url) if top_up_url else None)
