"""The steps every journey shares: ask for a quote, give details, pay, confirm, start
with the SMS code, follow the charge, and read the final bill.

Each step prints what the driver sees, then (indented) the calls behind it, and fails
with `DemoFailure` when the bridge does not answer as the Beckn flow says it should.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from bridge.demo import view
from bridge.demo.client import Client, DemoFailure, Live
from bridge.demo.render import inr, kwh


@dataclass(frozen=True)
class Driver:
    name: str
    phone: str
    make: str = "Tata"
    model: str = "Nexon EV"


@dataclass
class Booking:
    """One order as the BAP knows it."""

    txn: str
    driver: Driver
    item_id: str
    evse_id: str
    order_id: str = ""
    mode: str = "PRE-FULFILLMENT"
    session: dict[str, Any] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return f"ORD-{self.order_id[:8]}"


# --------------------------------------------------------------------------- messages


def select_message(b: Booking, *, budget: Decimal | None = None, energy: Decimal | None = None,
                   start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"beckn:lineId": "line-001", "beckn:orderedItem": b.item_id,
                            "beckn:quantity": 1}
    if budget is not None:  # "charge for up to ₹100" (guide example 03)
        line["beckn:price"] = {"currency": "INR", "value": float(budget)}
    if energy is not None:  # "charge 10 kWh" (guide example 04)
        line["beckn:orderItemAttributes"] = {"quantity-measure": {
            "type": "CONSTANT", "value": str(energy), "unit": "KWH"}}
    fd: dict[str, Any] = {"vehicle": {"make": b.driver.make, "model": b.driver.model}}
    if start and end:
        fd["stops"] = [{"type": "START", "time": {"timestamp": start.isoformat()}},
                       {"type": "END", "time": {"timestamp": end.isoformat()}}]
    return {"order": {"@type": "beckn:Order", "beckn:orderItems": [line],
                      "beckn:orderAttributes": {"fulfillment-details": fd}}}


def init_message(b: Booking) -> dict[str, Any]:
    return {"order": {"@type": "beckn:Order", "beckn:id": b.order_id, "beckn:orderAttributes": {
        "billing-details": {"beckn:payer": b.driver.phone, "schema:name": b.driver.name,
                            "schema:telephone": b.driver.phone},
        "payment-details": {"payment-type": b.mode}}}}


def order_message(b: Booking) -> dict[str, Any]:
    return {"order": {"@type": "beckn:Order", "beckn:id": b.order_id}}


def update_message(b: Booking, code: str, otp: str | None = None) -> dict[str, Any]:
    fu: dict[str, Any] = {"state": {"code": code}}
    if otp is not None:
        fu["authorization"] = {"type": "OTP", "token": otp}
    return {"order": {"@type": "beckn:Order", "beckn:id": b.order_id,
                      "beckn:orderAttributes": {"fulfillment-update": fu}}}


# --------------------------------------------------------------------------- steps


async def quote(c: Client, b: Booking, message: dict[str, Any], retry_for: float = 0) -> None:
    """select -> on_select; prints the quote. `retry_for` seconds: a charger that is
    still coming back (after a power cut) is asked again rather than failing."""
    waited = 0.0
    while True:
        status, ack = await c.post("select", b.txn, message)
        if ack.get("ack_status") == "ACK":
            c.out.wire(f"→ POST {c.path('select')} (signed)  ← ACK{c.ack_note()}")
            break
        err = ack.get("error") or {}
        if err.get("code") == "40006" and waited < retry_for:
            await c.idle(1.0)
            waited += 1.0
            continue
        c.out.wire(f"→ POST {c.path('select')} (signed)  ← HTTP {status} NACK {err.get('code')}: "
                   f"{err.get('message')}")
        raise DemoFailure(f"select was refused: {err.get('message')}")
    msg = await c.expect("on_select", b.txn)
    b.order_id = view.order_id(msg)
    lines, total = view.breakup(msg)
    c.out.driver("🧾", f"Quote ({view.state(msg)}):")
    for name, price in lines:
        c.out.amount(name, price)
    c.out.amount("Total to pay now", total)


async def init(c: Client, b: Booking) -> str:
    """init -> on_init; returns the payment link."""
    msg = await c.call("init", b.txn, init_message(b))
    a = view.attrs(msg)
    pay = view.payment(msg)
    if pay is None:
        raise DemoFailure("on_init carries no payment")
    kind = "hold" if b.mode == "AUTHORIZATION-HOLD" else "payment"
    c.out.driver("💳", f"{b.driver.name} is asked for a {kind} of {inr(pay.amount)} "
                      f"({pay.mode or b.mode}, {pay.status})")
    reservation = (a.get("fulfillment-details") or {}).get("beckn:mode") == "RESERVATION"
    for term in (a.get("refund-terms") or []) if reservation else []:
        c.out.detail(f"refund terms: {term['fulfillment-state']['description']}")
    sa = a.get("start-authorization") or {}
    if sa:
        c.out.detail(f"start code: {sa.get('type', 'OTP')} sent to {sa.get('sent-to', '?')}")
    if not pay.url:
        raise DemoFailure("on_init carries no payment link")
    return pay.url


async def pay(c: Client, b: Booking, url: str) -> None:
    result = await c.pay(url)
    c.out.driver("💳", f"{b.driver.name} pays on the payment page: {inr(view.money(result['amount']))}"
                      f" → {result['status']}")
    c.out.wire(f"→ POST {urlsplit(url).path} (payment page)  ← 200 {result['status']}")
    want = "HELD" if b.mode == "AUTHORIZATION-HOLD" else "PAID"
    await c.expect("on_status", b.txn, note=f"payment {want}",
                   where=lambda m: (p := view.payment(m)) is not None and p.status == want)


async def confirm(c: Client, b: Booking) -> dict[str, Any]:
    msg = await c.call("confirm", b.txn, order_message(b))
    code, name = view.fulfillment(msg)
    c.out.driver("✅", f"Booking {b.short} {view.state(msg)}: {name} [{code}]")
    return msg


async def start_code(c: Client, b: Booking) -> str:
    for m in reversed(await c.sms(b.driver.phone, b.order_id, "otp")):
        if "start code" in m.text:
            c.out.driver("📱", f"SMS to {b.driver.phone}: {m.text}")
            return m.text.split(" is ", 1)[1].split(".", 1)[0]
    raise DemoFailure(f"no start code was sent to {b.driver.phone}")


async def start(c: Client, b: Booking, otp: str) -> None:
    c.out.driver("🔌", f"{b.driver.name} plugs in at {b.evse_id} and enters the code {otp}")
    msg = await c.call("update", b.txn, update_message(b, "start-charging", otp), within=30,
                       note="ACTIVE")
    code, name = view.fulfillment(msg)
    if code != "ACTIVE":
        raise DemoFailure(f"start-charging answered {view.state(msg)}/{code}")
    b.session = await ocpi_session(c, b)
    s = b.session
    if s:
        c.out.wire(f"OCPI: START_SESSION → ACCEPTED · Session {s.get('id')} "
                   f"{s.get('status')} ({s.get('auth_method')})")
    c.out.driver("⚡", f"{name}")


async def follow(c: Client, b: Booking) -> None:
    """track -> on_track, subscribing to the live PATCHes."""
    callback = f"{c.bap.url}/track/{b.order_id}"
    msg = await c.call("track", b.txn, {"order": {
        "@type": "beckn:Order", "beckn:id": b.order_id,
        "beckn:orderAttributes": {"callback-url": callback}}})
    url, every = view.tracking(msg)
    c.out.driver("📍", f"Live tracking: {url}" + (f" (updates every {every})" if every else ""))
    c.live = Live(b.order_id)


async def until_kwh(c: Client, b: Booking, target: Decimal, within: float = 40) -> Decimal:
    """Wait until the session has delivered `target` kWh (tracking PATCHes, or the
    tracking URL when PATCHes are slow)."""
    deadline = time.monotonic() + within
    while True:
        await c.idle(0.3)
        seen = c.live.kwh if c.live else Decimal(0)
        if seen < target:
            m = view.metrics(await c.tracking(b.order_id))
            seen = max(seen, Decimal(str(m.get("energy-delivered") or 0)))
        if seen >= target:
            return seen
        if time.monotonic() > deadline:
            raise DemoFailure(f"only {kwh(seen)} delivered after {within:g} s")


async def ocpi_session(c: Client, b: Booking) -> dict[str, Any]:
    """The CPO's Session of this order, read from the mock's admin API (matched by our
    authorization reference, which is the order id)."""
    state = await c.mock("GET", "/admin/state")
    for sid in state.get("active_sessions") or []:
        s = (await c.mock("GET", f"/admin/sessions/{sid}")).get("session") or {}
        if s.get("authorization_reference") == b.order_id:
            return dict(s)
    return {}


async def final(c: Client, b: Booking, within: float = 60) -> dict[str, Any]:
    """The final bill: on_update COMPLETED (guide example 17)."""
    msg = await c.expect("on_update", b.txn, note="COMPLETED", within=within,
                         where=lambda m: view.state(m) == "COMPLETED")
    c.live = None
    if b.session.get("id"):
        got = await c.mock("GET", f"/admin/sessions/{b.session['id']}")
        s, cdr = got.get("session") or {}, got.get("cdr") or {}
        c.out.wire(f"OCPI: Session {s.get('id')} {s.get('status')} · {s.get('kwh')} kWh")
        if cdr:
            cost = (cdr.get("total_cost") or {})
            c.out.wire(f"OCPI: CDR {cdr.get('id')} {cdr.get('total_energy')} kWh "
                       f"{inr(view.money(cost.get('incl_vat', cost.get('excl_vat'))))} "
                       f"→ POST /ocpi/2.2.1/cdrs → settled once")
    m = view.metrics(view.order(msg))
    lines, total = view.breakup(msg)
    c.out.driver("🧾", f"Final bill for {b.short}: {m.get('energy-delivered', '?')} kWh")
    for name, price in lines:
        c.out.amount(name, price)
    c.out.amount("Billed", total)
    return msg


async def settle_up(c: Client, b: Booking, msg: dict[str, Any]) -> bool:
    """Show the money lines, pay a top-up if one is asked for, and check the books."""
    bill = view.bill(msg)
    for label, amount in (("Refunded to you", bill.refund), ("Hold captured", bill.capture),
                          ("Hold released", bill.release), ("Top-up to pay", bill.top_up)):
        if amount:
            c.out.amount(label, amount)
    explanation = (view.attrs(msg).get("settlement-details") or {}).get("explanation") or []
    if explanation:
        c.out.detail(f"settlement: {'; '.join(str(t) for t in explanation)}")
    for sms in await c.sms(b.driver.phone, b.order_id, "bill"):
        c.out.driver("📱", f"SMS to {b.driver.phone}: {sms.text}")
    if bill.top_up and bill.top_up_url:
        result = await c.pay(bill.top_up_url)
        c.out.driver("💳", f"{b.driver.name} pays the top-up: {inr(view.money(result['amount']))}"
                          f" → {result['status']}")
        c.out.wire(f"→ POST {urlsplit(bill.top_up_url).path} (payment page)  "
                   f"← 200 {result['status']}")
    ok, text = bill.balanced()
    bad = [m for m in c.bap.received if not m.verified and (m.ref in (b.txn, b.order_id))]
    c.out.verdict(ok, text)
    c.out.verdict(not bad, f"every callback and PATCH of {b.short} signed by the bridge"
                  + (f" ({len(bad)} not: {bad[0].why})" if bad else ""))
    if c.lts:
        c.out.verdict(not c.bad_acks, "every Ack of the bridge counter-signed (LTS)"
                      + (f" ({len(c.bad_acks)} not: {c.bad_acks[0]})" if c.bad_acks else ""))
    return ok and not bad and not c.bad_acks
