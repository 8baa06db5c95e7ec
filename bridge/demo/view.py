"""Reading the bridge's order messages as a BAP does: only the wire (guide examples
03-17, `bridge/journey/wire.py`), never the bridge's store."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.demo.render import PAISA, inr


def money(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else 0)).quantize(PAISA)


def order(msg: dict[str, Any]) -> dict[str, Any]:
    o = (msg.get("message") or {}).get("order") or {}
    return o if isinstance(o, dict) else {}


def attrs(msg: dict[str, Any]) -> dict[str, Any]:
    a = order(msg).get("beckn:orderAttributes") or {}
    return a if isinstance(a, dict) else {}


def state(msg: dict[str, Any]) -> str:
    return str(order(msg).get("beckn:state", ""))


def fulfillment(msg: dict[str, Any]) -> tuple[str, str]:
    """(status code, what the driver is told) of the fulfilment."""
    fd = attrs(msg).get("fulfillment-details") or {}
    st = fd.get("state") or {}
    return str(fd.get("beckn:status", "")), str(st.get("name", ""))


def error(msg: dict[str, Any]) -> str | None:
    err = msg.get("error")
    if not err:
        return None
    return f"{err.get('code')}: {err.get('message')}"


def breakup(msg: dict[str, Any]) -> tuple[list[tuple[str, Decimal]], Decimal]:
    """The quote's or the bill's lines and their total."""
    totals = order(msg).get("beckn:totals") or {}
    lines = [(str(b.get("schema:name", "")), money(b.get("schema:price")))
             for b in totals.get("beckn:breakup") or []]
    return lines, money(totals.get("schema:price"))


def payments(msg: dict[str, Any]) -> list[dict[str, Any]]:
    pd = attrs(msg).get("payment-details")
    if pd is None:
        return []
    return pd if isinstance(pd, list) else [pd]


def metrics(o: dict[str, Any]) -> dict[str, Any]:
    """`real-time-metrics` of the order's line (energy, cost so far, session status)."""
    for line in o.get("beckn:orderItems") or []:
        m = (line.get("beckn:orderItemAttributes") or {}).get("real-time-metrics")
        if isinstance(m, dict):
            return m
    return {}


def patch_reading(body: dict[str, Any]) -> tuple[Decimal, Decimal | None, str]:
    """(kWh, ₹ incl. GST so far, status) of a tracking PATCH (guide example 14)."""
    kwh = Decimal(str((body.get("ev:energyDelivered") or {}).get("schema:value", 0)))
    cost = ((body.get("beckn:totalCost") or {}).get("beckn:includingTax") or {}).get(
        "schema:price")
    return kwh, money(cost) if cost is not None else None, str(body.get("beckn:status", ""))


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
