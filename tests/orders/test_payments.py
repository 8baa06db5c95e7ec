"""The sandbox payment gateway on a real Redis: links, pay, hold, idempotent operations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.notify import Outbox
from bridge.payments import EVENTS, PaymentError, SandboxGateway

D = Decimal


async def test_prepaid_pay_refund_idempotent(redis_client) -> None:
    gw = SandboxGateway(redis_client, "http://127.0.0.1:8080/")
    link = await gw.create_link("ord1", D("100.00"), "INR", "PREPAID", key="l1")
    assert link.url == f"http://127.0.0.1:8080/pay/{link.payment_id}"
    state = await gw.pay(link.payment_id)
    assert (state.status, state.paid) == ("PAID", D("100.00"))
    assert (await gw.pay(link.payment_id)).paid == D("100.00")  # twice: once
    events = await redis_client.xrange(EVENTS)
    assert len(events) == 1 and events[0][1][b"order"] == b"ord1"
    op1 = await gw.refund(link.payment_id, D("22.00"), key="cdr-1")
    op2 = await gw.refund(link.payment_id, D("22.00"), key="cdr-1")
    assert op1 == op2
    assert (await gw.get(link.payment_id)).refunded == D("22.00")
    with pytest.raises(PaymentError):
        await gw.refund(link.payment_id, D("80.00"), key="cdr-2")


async def test_hold_capture_release(redis_client) -> None:
    gw = SandboxGateway(redis_client, "http://h")
    link = await gw.create_link("ord2", D("550"), "INR", "HOLD", key="l2")
    assert (await gw.pay(link.payment_id)).status == "HELD"
    await gw.capture(link.payment_id, D("520"), key="c")
    await gw.release(link.payment_id, D("30"), key="r")
    s = await gw.get(link.payment_id)
    assert (s.held, s.captured, s.released) == (D("550"), D("520"), D("30"))
    with pytest.raises(PaymentError):
        await gw.capture(link.payment_id, D("0.01"), key="c2")


async def test_unknown_payment(redis_client) -> None:
    gw = SandboxGateway(redis_client, "http://h")
    with pytest.raises(PaymentError):
        await gw.pay("pay_nope")
    with pytest.raises(PaymentError):
        await gw.refund("pay_nope", D(1), key="k")
    assert await gw.get("pay_nope") is None


async def test_outbox(redis_client) -> None:
    box = Outbox(redis_client)
    await box.send("+919800000001", "otp", "Your start code is 4821", "ord1")
    await box.send("+919800000002", "info", "Charging started", "ord2")
    msgs = await box.messages("+919800000001")
    assert [m.text for m in msgs] == ["Your start code is 4821"]
    assert len(await box.messages()) == 2


# --------------------------------------------------------------------------- crash safety
# Issue 12, findings 1 and 4: an operation killed at any point and asked again under the
# same key happens exactly once; a payment link asked twice under one key is one link.

OPS = [("refund", "PREPAID", D("40.00")), ("capture", "HOLD", D("30.00")),
       ("release", "HOLD", D("20.00"))]


@pytest.mark.parametrize(("kind", "mode", "amount"), OPS)
async def test_operation_killed_at_any_point_happens_once(redis_client, kind, mode, amount) -> None:
    from bridge import crashpoints

    field = {"refund": "refunded", "capture": "captured", "release": "released"}[kind]
    gw = SandboxGateway(redis_client, "http://h")

    async def fresh(n: int) -> str:
        link = await gw.create_link(f"ord-{kind}-{n}", D("100.00"), "INR", mode, key=f"l{n}")
        await gw.pay(link.payment_id)
        return link.payment_id

    pid = await fresh(0)
    with crashpoints.tracing() as reached:
        await getattr(gw, kind)(pid, amount, key="k0")
    points = list(dict.fromkeys(reached))
    assert points, "the gateway marks its steps"
    for n, point in enumerate(points, start=1):
        pid = await fresh(n)
        crashpoints.arm(point)
        try:
            with pytest.raises(crashpoints.Crashed):
                await getattr(gw, kind)(pid, amount, key=f"k{n}")
        finally:
            crashpoints.disarm()
        op = await getattr(gw, kind)(pid, amount, key=f"k{n}")  # the retry after a restart
        again = await getattr(gw, kind)(pid, amount, key=f"k{n}")
        assert op == again and op.amount == amount
        state = await gw.get(pid)
        assert getattr(state, field) == amount, (point, state)


async def test_link_under_one_key_is_one_link(redis_client) -> None:
    from bridge import crashpoints

    gw = SandboxGateway(redis_client, "http://h")
    crashpoints.arm("payments.link_created")
    try:
        with pytest.raises(crashpoints.Crashed):
            await gw.create_link("ord9", D("830.79"), "INR", "PREPAID", key="cdr:x:top-up")
    finally:
        crashpoints.disarm()
    first = await gw.create_link("ord9", D("830.79"), "INR", "PREPAID", key="cdr:x:top-up")
    second = await gw.create_link("ord9", D("830.79"), "INR", "PREPAID", key="cdr:x:top-up")
    assert first == second
    payments = [k async for k in redis_client.scan_iter("obb:pay:pay_*")]
    assert len(payments) == 1  # one payable link, not two
    with pytest.raises(PaymentError, match="key"):  # a key reused for another amount is a bug
        await gw.create_link("ord9", D("1.00"), "INR", "PREPAID", key="cdr:x:top-up")


async def test_key_reused_for_another_amount_is_refused(redis_client) -> None:
    gw = SandboxGateway(redis_client, "http://h")
    link = await gw.create_link("ord8", D("100.00"), "INR", "PREPAID", key="l8")
    await gw.pay(link.payment_id)
    await gw.refund(link.payment_id, D("10.00"), key="r")
    with pytest.raises(PaymentError, match="key"):
        await gw.refund(link.payment_id, D("11.00"), key="r")
    assert (await gw.get(link.payment_id)).refunded == D("10.00")
