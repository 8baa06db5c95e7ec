"""Orders in every state, as the journey stores them, for the page renderers' tests.

Amounts are the shapes `quote().to_json()` and `settle().to_json()` write (strings of
Decimals); every bill adds up. The customer carries a name, phone and email that no
page may show.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.orders import State
from bridge.payments import PaymentState
from bridge.store.orders import Order, OrderItem

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)  # 15:00 IST
START = NOW - timedelta(minutes=20)
ORDER_ID = "62216ee5-0c4b-4f7e-9d1a-7f3c2b1a0e99"

SECRET_NAME = "Srilekha Venkataraman"
SECRET_PHONE = "+919800000201"
SECRET_EMAIL = "srilekha@example.org"

ITEM = OrderItem(item_id="IN*TPC*E1301*1", cc="IN", pid="TPC", location_id="TPC-HWY-MDR",
                 evse_uid="TPC-MDR-1", evse_id="IN*TPC*E1301", connector_id="1",
                 tariff_id="T1", time_zone="Asia/Kolkata", max_power_kw=120,
                 connector_type="CCS2", location_name="TezPower Highway Plaza, Maddur",
                 address="NH 275, Maddur, Karnataka", latitude="12.58", longitude="77.04",
                 provider_name="TezPower")


def line(title: str, amount: str, kind: str, code: str) -> dict[str, str]:
    return {"title": title, "amount": amount, "currency": "INR", "kind": kind, "code": code}


QUOTE: dict[str, Any] = {
    "currency": "INR", "total": "300.52", "estimate": "273.20", "energy_kwh": "10.000",
    "lines": [line("Charging session cost (10 kWh @ ₹24.78/kWh)", "247.80", "charge", "energy"),
              line("Session fee", "35.40", "charge", "fixed"),
              line("Service fee", "10.00", "fee", "service-fee"),
              line("Offer: ₹20 off above 5 kWh", "-20.00", "discount", "offer:charge-5-save-20"),
              line("Overage provision (10%, unused portion refunded)", "27.32", "overage",
                   "overage")],
    "offers_applied": ["charge-5-save-20"], "notes": [], "refund_terms": [],
}

# 6.123 kWh delivered: more than the 2 kWh quoted for the hold in `topped_up_order`.
BILL_LINES = [line("Charging session cost (6.123 kWh @ ₹24.78/kWh)", "151.73", "charge", "energy"),
              line("Session fee", "35.40", "charge", "fixed"),
              line("Service fee", "10.00", "fee", "service-fee"),
              line("Offer: ₹20 off above 5 kWh", "-20.00", "discount", "offer:charge-5-save-20")]
BILL_TOTAL = "177.13"


def session(status: str, kwh: str, cost: str, minutes: float) -> dict[str, Any]:
    return {"id": "TPC-3365ED11856A", "status": status, "kwh": kwh, "cost": cost,
            "start": START.isoformat(), "currency": "INR",
            "last_updated": (START + timedelta(minutes=minutes)).isoformat(), "periods": 4}


def order(state: State, **fields: Any) -> Order:
    base: dict[str, Any] = {
        "id": ORDER_ID, "transaction_id": "txn-1", "bap_id": "bap.example", "bap_uri": "http://bap",
        "state": state, "created": START - timedelta(minutes=10), "updated": NOW, "item": ITEM,
        "request": {"energy_kwh": "10"}, "quote": QUOTE,
        "customer": {"phone": SECRET_PHONE, "name": SECRET_NAME,
                     "billing": {"schema:name": SECRET_NAME, "schema:telephone": SECRET_PHONE,
                                 "schema:email": SECRET_EMAIL}},
        "payment": {"id": "pay_0123456789abcdef", "mode": "PREPAID", "amount": "300.52",
                    "currency": "INR", "status": "PAID", "url": "http://bridge/pay/pay_0123"},
    }
    base.update(fields)
    return Order(**base)


def quoted() -> Order:
    return order(State.QUOTED, payment={})


def initialized() -> Order:
    return order(State.INITIALIZED, payment={"id": "pay_0123456789abcdef", "mode": "PREPAID",
                                             "amount": "300.52", "currency": "INR",
                                             "status": "NOT-PAID"})


def confirmed() -> Order:
    return order(State.CONFIRMED)


def reserved() -> Order:
    slot = NOW + timedelta(minutes=40)
    return order(State.RESERVED, request={"reservation": True, "start": slot.isoformat(),
                                          "end": (slot + timedelta(hours=1)).isoformat()})


def charging() -> Order:
    return order(State.ACTIVE, session=session("ACTIVE", "3.12", "114.7", 19.5))


def interrupted() -> Order:
    return order(State.INTERRUPTED, session=session("ACTIVE", "3.5", "121.33", 15),
                 interrupted_since=NOW - timedelta(minutes=2))


def finishing() -> Order:
    return order(State.ACTIVE, session=session("COMPLETED", "6.123", "187.13", 25))


def billed() -> Order:
    """PREPAID ₹300.52, bill ₹177.13: ₹123.39 refunded."""
    return order(State.COMPLETED, session=session("COMPLETED", "6.123", "187.13", 25),
                 cdr_id="CDR-1", settlement={
                     "key": "CDR:IN:TPC:CDR-1", "currency": "INR", "final_amount": BILL_TOTAL,
                     "paid": "300.52", "refund": "123.39", "capture": "0", "release": "0",
                     "top_up": "0", "lines": BILL_LINES, "provisional": False,
                     "explanation": ["final bill ₹177.13", "prepaid ₹300.52", "refund ₹123.39"],
                     "discrepancy": None, "notified": True})


TOP_UP_ID = "pay_fedcba9876543210"


def topped_up_order(top_up_status: str | None = None) -> Order:
    """A hold of ₹85.50 for 2 kWh; 6.123 kWh delivered: ₹85.50 captured, ₹91.63 to top up."""
    hold_quote = {**QUOTE, "total": "85.50", "energy_kwh": "2.000"}
    s: dict[str, Any] = {
        "key": "CDR:IN:TPC:CDR-2", "currency": "INR", "final_amount": BILL_TOTAL, "paid": "85.50",
        "refund": "0", "capture": "85.50", "release": "0", "top_up": "91.63",
        "lines": BILL_LINES, "provisional": False, "explanation": [], "discrepancy": None,
        "top_up_url": f"http://bridge/pay/{TOP_UP_ID}", "top_up_payment_id": TOP_UP_ID,
        "notified": True}
    if top_up_status:
        s["top_up_status"] = top_up_status
    return order(State.COMPLETED, quote=hold_quote, session=session("COMPLETED", "6.123",
                                                                   "187.13", 25),
                 payment={"id": "pay_0123456789abcdef", "mode": "HOLD", "amount": "85.50",
                          "currency": "INR", "status": "HELD"},
                 settlement=s, cdr_id="CDR-2")


def provisional() -> Order:
    o = billed()
    assert o.settlement is not None
    return o.model_copy(update={"settlement": {**o.settlement, "provisional": True,
                                               "key": "SESSION:IN:TPC:TPC-3365ED11856A"},
                                "session": session("ACTIVE", "6.123", "187.13", 25)})


def cancelled() -> Order:
    return order(State.CANCELLED, settlement={
        "key": f"cancel:{ORDER_ID}", "currency": "INR", "final_amount": "45.08", "paid": "300.52",
        "refund": "255.44", "release": "0", "capture": "0", "top_up": "0",
        "lines": [line("Cancellation charge", "45.08", "fee", "cancel")], "explanation": []})


def failed() -> Order:
    return order(State.FAILED, settlement={
        "key": f"fail:{ORDER_ID}", "currency": "INR", "final_amount": "0", "paid": "300.52",
        "refund": "300.52", "release": "0", "capture": "0", "top_up": "0", "lines": [],
        "explanation": []})


def expired() -> Order:
    return order(State.EXPIRED, payment={}, settlement=None)


ALL = {"quoted": quoted, "initialized": initialized, "confirmed": confirmed,
       "reserved": reserved, "charging": charging, "interrupted": interrupted,
       "finishing": finishing, "billed": billed, "topped_up": topped_up_order,
       "provisional": provisional, "cancelled": cancelled, "failed": failed, "expired": expired}


def payment(payment_id: str = "pay_0123456789abcdef", *, amount: str = "300.52",
            mode: str = "PREPAID", status: str = "CREATED",
            order_id: str = ORDER_ID) -> PaymentState:
    from decimal import Decimal

    z = Decimal(0)
    return PaymentState(payment_id=payment_id, order_id=order_id, mode=mode, currency="INR",
                        amount=Decimal(amount), status=status, paid=z, held=z, captured=z,
                        refunded=z, released=z)
