"""Every effect exactly once across a crash at any point (issue 12, findings 1, 3, 4).

Each step that moves money or tells someone something is run once to learn the
crash points it passes (bridge/crashpoints.py); then, for each point, on a fresh
order: the step is killed there and run again, as a restarted worker would. After
it: the order's books and the gateway agree to the paisa, one callback and one SMS
per thing told, one payment link per top-up.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from bridge import crashpoints
from bridge.config import Settings
from bridge.journey.common import JourneyDeps
from bridge.notify import OUTBOX
from bridge.ocpi.models import CDR
from bridge.orders import State
from bridge.store.orders import Order, OrderItem
from tests.conftest import ROOT

D = Decimal
CC, PID, LOC, EVSE = "IN", "TPC", "LOC1", "EVSE1"


def context(txn: str, action: str) -> dict[str, Any]:
    return {"domain": "beckn.one:deg:ev-charging", "action": action, "version": "2.0.0",
            "bap_id": "bap.test", "bap_uri": "http://127.0.0.1:9/bap", "bpp_id": "bpp.test",
            "bpp_uri": "http://127.0.0.1/beckn", "transaction_id": txn,
            "message_id": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(),
            "ttl": "PT30S"}


@dataclass
class Case:
    deps: JourneyDeps
    redis: aioredis.Redis

    async def order(self, *, mode: str = "PREPAID", paid: str = "150.00",
                    state: State = State.ACTIVE, reservation: bool = False) -> Order:
        txn = f"txn-{uuid.uuid4().hex[:10]}"
        oid = uuid.uuid4().hex
        now = datetime.now(UTC)
        payment: dict[str, Any] = {"mode": mode, "amount": paid, "currency": "INR"}
        if mode != "POSTPAID":
            link = await self.deps.gateway.create_link(oid, D(paid), "INR", mode,
                                                       key=f"init:{oid}")
            await self.deps.gateway.pay(link.payment_id)
            payment.update(id=link.payment_id, status="HELD" if mode == "HOLD" else "PAID")
        order = Order(
            id=oid, transaction_id=txn, bap_id="bap.test", bap_uri="http://127.0.0.1:9/bap",
            state=state, created=now, updated=now, token_uid=f"BKN{oid[:20].upper()}",
            item=OrderItem(item_id="x", cc=CC, pid=PID, location_id=LOC, evse_uid=EVSE,
                           connector_id="1"),
            customer={"phone": f"+91{uuid.uuid4().int % 10**10:010d}"}, payment=payment,
            request={"context": context(txn, "select"),
                     "start": (now + timedelta(hours=6 if reservation else 0)).isoformat(),
                     "end": (now + timedelta(hours=7)).isoformat()},
            commands={"start_requested": now.isoformat()},
            reservation_id=f"R{oid[:20].upper()}" if reservation else None)
        assert await self.deps.orders.create(order)
        return order

    async def cdr(self, order: Order, total: str) -> CDR:
        cdr = CDR.model_validate({
            "country_code": CC, "party_id": PID, "id": f"CDR-{order.id[:12]}",
            "start_date_time": "2026-11-25T10:00:00Z", "end_date_time": "2026-11-25T10:30:00Z",
            "session_id": f"S-{order.id[:12]}", "authorization_reference": order.id,
            "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": order.token_uid,
                          "type": "APP_USER", "contract_id": "IN-BKN-C1"},
            "auth_method": "COMMAND",
            "cdr_location": {"id": LOC, "address": "80 Feet Rd", "city": "Bengaluru",
                             "country": "IND",
                             "coordinates": {"latitude": "12.93520", "longitude": "77.62450"},
                             "evse_uid": EVSE, "evse_id": "IN*TPC*E1", "connector_id": "1",
                             "connector_standard": "IEC_62196_T2_COMBO",
                             "connector_format": "CABLE", "connector_power_type": "DC"},
            "currency": "INR",
            "charging_periods": [{"start_date_time": "2026-11-25T10:00:00Z",
                                  "dimensions": [{"type": "ENERGY", "volume": 5}]}],
            "total_cost": {"excl_vat": total, "incl_vat": total}, "total_energy": 5,
            "total_time": 0.5, "last_updated": "2026-11-25T10:30:00Z"})
        await self.deps.ocpi.store.put("cdrs", cdr, create_only=True)
        return cdr

    async def callbacks(self, order: Order) -> list[dict[bytes, bytes]]:
        out = []
        async for key in self.redis.scan_iter("obb:beckn:cb:*"):
            if key.count(b":") != 3 or await self.redis.type(key) != b"hash":
                continue
            rec = await self.redis.hgetall(key)
            if rec.get(b"txn", b"").decode() == order.transaction_id:
                out.append(rec)
        return out

    async def messages(self, order: Order) -> list[str]:
        return [f[b"kind"].decode() for _id, f in await self.redis.xrange(OUTBOX)
                if f[b"order"].decode() == order.id]

    async def links(self, order: Order) -> list[Any]:
        out = []
        async for key in self.redis.scan_iter("obb:pay:pay_*"):
            state = await self.deps.gateway.get(key.decode().split(":", 2)[2])
            if state and state.order_id == order.id and state.payment_id != order.payment.get("id"):
                out.append(state)
        return out

    async def books_agree(self, order: Order) -> None:
        """The order's settlement and the gateway to the paisa."""
        current = await self.deps.orders.get(order.transaction_id)
        assert current is not None and current.settlement is not None, current
        s = current.settlement
        if order.payment.get("id"):
            gw = await self.deps.gateway.get(order.payment["id"])
            assert gw is not None
            assert gw.refunded == D(str(s.get("refund", "0"))), (gw, s)
            assert gw.captured == D(str(s.get("capture", "0"))), (gw, s)
            assert gw.released == D(str(s.get("release", "0"))), (gw, s)
        links = await self.links(order)
        top_up = D(str(s.get("top_up", "0")))
        assert [x.amount for x in links] == ([top_up] if top_up else []), (links, s)


@pytest.fixture
async def case(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[Case]:
    settings = Settings(redis_url=redis_url, beckn_subscriber_id="bpp.test",
                        public_url="http://127.0.0.1:9",
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"))
    deps = JourneyDeps.build(settings, redis_client)
    yield Case(deps, redis_client)
    crashpoints.disarm()
    await deps.close()


async def sweep(case: Case, make: Callable[[], Awaitable[Any]],
                run: Callable[[Any], Awaitable[Any]],
                check: Callable[[Any], Awaitable[None]]) -> list[str]:
    """Run `run` once to trace its crash points, then for each: a fresh subject (`make`),
    crash there, run again, `check`. Returns the points swept."""
    subject = await make()
    with crashpoints.tracing() as reached:
        await run(subject)
    await check(subject)
    points = list(dict.fromkeys(reached))
    assert points
    for point in points:
        for nth in range(1, reached.count(point) + 1):
            subject = await make()
            crashpoints.arm(f"{point}@{nth}")
            try:
                with pytest.raises(crashpoints.Crashed):
                    await run(subject)
            finally:
                crashpoints.disarm()
            await run(subject)  # the restarted worker's run
            await run(subject)  # and once more: nothing more happens
            try:
                await check(subject)
            except AssertionError as exc:
                raise AssertionError(f"after a crash at {point}@{nth}: {exc}") from exc
    return points


@pytest.mark.parametrize(("mode", "paid", "total"), [
    ("PREPAID", "150.00", "94.40"),  # refund
    ("HOLD", "150.00", "94.40"),  # capture and release
    ("PREPAID", "60.00", "94.40"),  # a top-up link
])
async def test_settlement_killed_anywhere_moves_money_and_tells_once(
        case: Case, mode: str, paid: str, total: str) -> None:
    from bridge.journey.settle import journey_settle

    ctx = {"journey": case.deps}

    async def make() -> Order:
        order = await case.order(mode=mode, paid=paid)
        await case.cdr(order, total)
        return order

    async def run(order: Order) -> None:
        await journey_settle(ctx, CC, PID, f"CDR-{order.id[:12]}")

    async def check(order: Order) -> None:
        current = await case.deps.orders.get(order.transaction_id)
        assert current is not None and current.state is State.COMPLETED
        await case.books_agree(order)
        updates = [c for c in await case.callbacks(order) if c[b"action"] == b"on_update"]
        assert len(updates) == 1, updates  # one on_update COMPLETED
        assert (await case.messages(order)).count("bill") == 1

    points = await sweep(case, make, run, check)
    assert "settle.money_moved" in points


@pytest.mark.parametrize(("end", "mode", "reservation", "callback", "refund"), [
    ("cancel", "PREPAID", True, "on_cancel", "127.50"),  # 85% by the terms, 6 h ahead
    ("cancel", "HOLD", True, "on_cancel", "127.50"),  # released; the rest captured
    ("no-show", "PREPAID", False, "on_status", "150.00"),  # a walk-in: all back
    ("fail", "PREPAID", False, "on_update", "150.00"),
    ("fail", "HOLD", False, "on_update", "150.00"),
])
async def test_end_before_charging_killed_anywhere_refunds_and_tells_once(
        case: Case, end: str, mode: str, reservation: bool, callback: str, refund: str) -> None:
    from bridge.journey.actions import fail_order, journey_no_show
    from bridge.journey.cancel import cancel_order
    from bridge.journey.release import journey_release

    ctx = {"journey": case.deps}
    when = datetime.now(UTC)

    async def make() -> Order:
        return await case.order(mode=mode, state=State.RESERVED if reservation else
                                State.CONFIRMED, reservation=reservation)

    async def run(order: Order) -> None:
        txn = order.transaction_id
        current = await case.deps.orders.get(txn)
        assert current is not None
        if current.state in (State.RESERVED, State.CONFIRMED):  # the end: once
            if end == "cancel":
                await cancel_order(case.deps, txn, context(txn, "cancel"), when)
            elif end == "no-show":
                await journey_no_show(ctx, txn)
            else:
                await fail_order(case.deps, txn, "the charger refused to start (REJECTED)", when)
        await journey_release(ctx, txn)  # the job queued with it

    async def check(order: Order) -> None:
        current = await case.deps.orders.get(order.transaction_id)
        assert current is not None and current.settlement is not None
        assert current.settlement["key"] == f"{end}:{order.id}"
        back = D(current.settlement["refund"]) + D(current.settlement["release"])
        assert back == D(refund), current.settlement
        await case.books_agree(order)
        told = [c for c in await case.callbacks(order) if c[b"action"] == callback.encode()]
        assert len(told) == 1, told
        assert (await case.messages(order)).count("info") == 1

    points = await sweep(case, make, run, check)
    assert {"order.changed", "release.money_moved"} <= set(points)


@pytest.mark.parametrize("step", ["start", "interruption"])
async def test_start_answer_and_interruption_told_once(case: Case, step: str) -> None:
    """The Session's first ACTIVE (on_update ACTIVE + SMS), and an interruption (on_status
    + SMS): killed at any point and handled again (the change stream re-delivers what was
    not acknowledged; the watchdog looks again), each is told once."""
    from bridge.journey.events import interrupt, on_session
    from bridge.ocpi.models import Session

    now = datetime.now(UTC)

    async def make() -> Order:
        order = await case.order(state=State.CONFIRMED)

        def asked(o: Order) -> Order:
            o.request["start_context"] = context(o.transaction_id, "update")
            return o

        await case.deps.orders.update(order.transaction_id, asked)
        await case.deps.ocpi.store.put("sessions", Session.model_validate({
            "country_code": CC, "party_id": PID, "id": f"S-{order.id[:12]}",
            "start_date_time": now.isoformat(), "kwh": 1.5, "authorization_reference": order.id,
            "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": order.token_uid,
                          "type": "APP_USER", "contract_id": "IN-BKN-C1"},
            "auth_method": "COMMAND", "location_id": LOC, "evse_uid": EVSE, "connector_id": "1",
            "currency": "INR", "status": "ACTIVE", "last_updated": now.isoformat()}))
        if step == "interruption":
            await on_session(case.deps, CC, PID, f"S-{order.id[:12]}", now)
        return order

    async def run(order: Order) -> None:
        if step == "start":
            await on_session(case.deps, CC, PID, f"S-{order.id[:12]}", now)
        else:
            await interrupt(case.deps, order.transaction_id, now, "charger status UNKNOWN")

    async def check(order: Order) -> None:
        current = await case.deps.orders.get(order.transaction_id)
        expected = State.ACTIVE if step == "start" else State.INTERRUPTED
        assert current is not None and current.state is expected
        actions = sorted(c[b"action"].decode() for c in await case.callbacks(order))
        assert actions == (["on_update"] if step == "start" else ["on_status", "on_update"])
        assert (await case.messages(order)).count("info") == (1 if step == "start" else 2)

    await sweep(case, make, run, check)
