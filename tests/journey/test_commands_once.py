"""One OCPI command per order step (issue 12, finding 6).

- A START_SESSION retried after a time-out goes with the same command uid: the CPO
  (here the mock, which does not de-duplicate) sees one command repeated, not two.
- A START result FAILED / TIMEOUT while a Session for the order's token exists is not
  a failure: the order follows the Session and is not refunded while it charges.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bridge.config import Settings
from bridge.journey import actions, events
from bridge.journey.common import JourneyDeps
from bridge.ocpi.models import Session, Token, TokenType, WhitelistType
from bridge.orders import State
from bridge.store.orders import Order, OrderItem, OrderStore
from bridge.store.tokens import command_key
from bridge.worker import QUEUE
from tests.conftest import ROOT
from tests.journey.conftest import WALK_IN, World, state_of
from tests.journey.test_journeys import book


@pytest.fixture
def bridge_overrides() -> dict[str, Any]:
    return {"ocpi_request_timeout": 0.5}


async def command_uids(world: World, order_id: str, command: str) -> set[str]:
    uids = set()
    async for key in world.redis.scan_iter(command_key("*")):
        h = await world.redis.hgetall(key)
        if h.get(b"order", b"").decode() == order_id and h[b"command"].decode() == command:
            uids.add(key.decode().rsplit(":", 1)[1])
    return uids


async def test_start_retried_after_a_timeout_is_one_command(world: World) -> None:
    txn, phone = "txn-start-retry-1", "+919800002101"
    await book(world, txn, phone, kwh=2)
    # The CPO answers 3 s late, after the bridge's 0.5 s time-out, but carries the command
    # out: the bridge sends START again while the first one is still being carried out.
    # With a new uid per try (finding 6) the second START met a busy charger, its
    # EVSE_OCCUPIED result failed the order and refunded it while the first one charged.
    await world.mock("POST", "/admin/faults/slow-mock", {"delay": 3.0})
    status, ack = await world.post("update", txn, start_message := {"order": {
        "@type": "beckn:Order", "beckn:orderAttributes": {"fulfillment-update": {
            "state": {"code": "start-charging"},
            "authorization": {"type": "OTP", "token": await world.otp(phone)}}}}})
    assert ack["ack_status"] == "ACK", start_message
    await asyncio.sleep(4)
    await world.mock("POST", "/admin/faults/slow-mock", {"delay": 0})
    active = await world.bap.wait_for("on_update", txn, timeout=30,
                                      where=lambda m: state_of(m)[0] != "CONFIRMED")
    assert state_of(active)[0] == "ACTIVE", active
    order = await world.order(txn)
    uids = await command_uids(world, order.id, "START_SESSION")
    assert len(uids) == 1, uids  # every try the same command
    assert uids == {order.commands["start"]["uid"]}
    done = await world.bap.wait_for("on_update", txn, count=2, timeout=60)
    assert state_of(done)[0] == "COMPLETED"
    state = await world.mock("GET", "/admin/state")
    assert state["sessions"] == 1, state  # one charge at the CPO, not two


# --------------------------------------------------------------------------- result vs session


def _context(txn: str) -> dict[str, Any]:
    return {"domain": "beckn.one:deg:ev-charging", "action": "update", "version": "2.0.0",
            "bap_id": "bap.test", "bap_uri": "http://127.0.0.1:9/bap", "bpp_id": "bpp.test",
            "bpp_uri": "http://127.0.0.1/beckn", "transaction_id": txn,
            "message_id": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(),
            "ttl": "PT30S"}


async def test_failed_start_result_with_a_session_for_the_token_is_not_a_failure(
        redis_client, redis_url) -> None:
    settings = Settings(redis_url=redis_url, beckn_subscriber_id="bpp.test",
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"))
    deps = JourneyDeps.build(settings, redis_client)
    now = datetime.now(UTC)
    cc, pid, loc, evse, conn = WALK_IN
    order = Order(id=uuid.uuid4().hex, transaction_id="txn-late-1", bap_id="bap.test",
                  bap_uri="http://127.0.0.1:9/bap", state=State.CONFIRMED, created=now,
                  updated=now, item=OrderItem(item_id="x", cc=cc, pid=pid, location_id=loc,
                                              evse_uid=evse, connector_id=conn),
                  token_uid="BKNTOKEN1", payment={"mode": "PREPAID", "status": "PAID",
                                                  "amount": "100.00", "id": "pay_x"},
                  request={"context": _context("txn-late-1"),
                           "update_context": _context("txn-late-1")},
                  commands={"start_requested": (now - timedelta(seconds=20)).isoformat()})
    assert await OrderStore(redis_client).create(order)
    await deps.ocpi.tokens.put(Token(country_code="IN", party_id="BKN", uid="BKNTOKEN1",
                                     type=TokenType.APP_USER, contract_id="IN-BKN-C1",
                                     issuer="test", valid=True, whitelist=WhitelistType.NEVER,
                                     last_updated=now), order_id=order.id)
    # The CPO started the charge (its Session is in the store, not yet handled) ...
    session = Session.model_validate({
        "country_code": cc, "party_id": pid, "id": "TPC-LATE-1",
        "start_date_time": (now - timedelta(seconds=10)).isoformat(), "kwh": 0.4,
        "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": "BKNTOKEN1",
                      "type": "APP_USER", "contract_id": "IN-BKN-C1"},
        "auth_method": "COMMAND", "location_id": loc, "evse_uid": evse, "connector_id": conn,
        "currency": "INR", "status": "ACTIVE", "last_updated": now.isoformat()})
    await deps.ocpi.store.put("sessions", session)
    try:
        # ... and the START's result says FAILED (e.g. the result of a retried START).
        outcome = await events.on_command_result(
            deps, {"order": order.id, "command": "START_SESSION", "result": "FAILED",
                   "id": "uid-late-1"}, now)
        current = await deps.orders.get("txn-late-1")
        assert current is not None and current.state is State.CONFIRMED, outcome
        assert await redis_client.zscore(QUEUE, "start-failed:uid-late-1") is not None
        # the deferred check finds the Session: the order follows it, nothing is refunded
        assert await actions.start_failed(deps, "txn-late-1", "x", now) == "session exists"
        current = await deps.orders.get("txn-late-1")
        assert current is not None and current.state is State.ACTIVE
        assert current.settlement is None
        assert Decimal(current.session["kwh"]) == Decimal("0.4")
    finally:
        await deps.close()


async def test_a_failed_start_is_tried_once_more_as_a_new_command(redis_client, redis_url) -> None:
    """No Session anywhere after a refused START: more attempts (each its own uid, its own
    job), up to journey.start_attempts (3), before the order fails and is refunded."""
    settings = Settings(redis_url=redis_url, beckn_subscriber_id="bpp.test",
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"))
    deps = JourneyDeps.build(settings, redis_client)
    now = datetime.now(UTC)
    cc, pid, loc, evse, conn = WALK_IN
    order = Order(id=uuid.uuid4().hex, transaction_id="txn-again-1", bap_id="bap.test",
                  bap_uri="http://127.0.0.1:9/bap", state=State.CONFIRMED, created=now,
                  updated=now, item=OrderItem(item_id="x", cc=cc, pid=pid, location_id=loc,
                                              evse_uid=evse, connector_id=conn),
                  token_uid="BKNTOKEN2", request={"context": _context("txn-again-1")},
                  commands={"start_requested": now.isoformat(),
                            "start": {"uid": "uid-1", "result": "ACCEPTED"}})
    assert await OrderStore(redis_client).create(order)
    try:
        assert await actions.start_failed(deps, "txn-again-1", "refused", now) == "trying again"
        current = await deps.orders.get("txn-again-1")
        assert current is not None and current.state is State.CONFIRMED
        assert current.commands["start"] == {"attempt": 2}
        assert [a["uid"] for a in current.commands["start_attempts"]] == ["uid-1"]
        assert await redis_client.zscore(QUEUE, f"start:{order.id}:2") is not None
        # a late result of the first attempt is not this attempt's
        assert await actions.journey_start_failed({"journey": deps}, "txn-again-1", "uid-1",
                                                  "REJECTED") == "an earlier attempt"

        def sent(o: Order) -> Order:
            o.commands["start"]["uid"] = "uid-2"
            return o

        await deps.orders.update("txn-again-1", sent)
        assert await actions.start_failed(deps, "txn-again-1", "refused", now) == "trying again"

        def sent3(o: Order) -> Order:
            o.commands["start"]["uid"] = "uid-3"
            return o

        await deps.orders.update("txn-again-1", sent3)
        assert await actions.start_failed(deps, "txn-again-1", "refused", now) == "failed"
        current = await deps.orders.get("txn-again-1")
        assert current is not None and current.state is State.FAILED
    finally:
        await deps.close()


async def test_a_worker_behind_on_pushes_does_not_call_it_an_interruption(
        redis_client, redis_url) -> None:
    """Found by the chaos suite: a worker restarted (or behind on the change stream) saw
    an order's last handled push older than journey.interrupt_after and told the driver
    the charge was interrupted, then, reading the pushes it had missed, that it resumed.
    The CPO had not been silent: the stored Session is newer than the one the order
    followed. The watchdog follows that Session instead."""
    settings = Settings(redis_url=redis_url, beckn_subscriber_id="bpp.test",
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"),
                        journey_interrupt_after=20)
    deps = JourneyDeps.build(settings, redis_client)
    now = datetime.now(UTC)
    cc, pid, loc, evse, conn = WALK_IN
    old = now - timedelta(seconds=60)

    def session(kwh: float, at: datetime) -> Session:
        return Session.model_validate({
            "country_code": cc, "party_id": pid, "id": "TPC-BEHIND-1",
            "start_date_time": (old - timedelta(seconds=30)).isoformat(), "kwh": kwh,
            "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": "BKNTOKEN3",
                          "type": "APP_USER", "contract_id": "IN-BKN-C3"},
            "auth_method": "COMMAND", "authorization_reference": "order-behind-1",
            "location_id": loc, "evse_uid": evse, "connector_id": conn,
            "currency": "INR", "status": "ACTIVE", "last_updated": at.isoformat()})

    order = Order(id="order-behind-1", transaction_id="txn-behind-1", bap_id="bap.test",
                  bap_uri="http://127.0.0.1:9/bap", state=State.ACTIVE, created=old,
                  updated=old, item=OrderItem(item_id="x", cc=cc, pid=pid, location_id=loc,
                                              evse_uid=evse, connector_id=conn),
                  token_uid="BKNTOKEN3", request={"context": _context("txn-behind-1")},
                  session={**events.session_snapshot(session(1.0, old)), "seen": old.isoformat()})
    assert await OrderStore(redis_client).create(order)
    await deps.orders.mark_active("txn-behind-1", old)  # last handled a minute ago ...
    await deps.ocpi.store.put("sessions", session(3.5, now - timedelta(seconds=1)))  # ... not so
    try:
        assert await events.watchdog_once(deps, now) != ["interrupted"]
        current = await deps.orders.get("txn-behind-1")
        assert current is not None and current.state is State.ACTIVE
        assert Decimal(current.session["kwh"]) == Decimal("3.5")  # followed, not interrupted
        # silence for real (nothing newer stored) is still an interruption
        later = now + timedelta(seconds=30)
        assert await events.watchdog_once(deps, later) == ["interrupted"]
    finally:
        await deps.close()
