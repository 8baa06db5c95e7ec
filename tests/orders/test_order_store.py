"""Order store on a real Redis: optimistic updates, the slot race, lookups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bridge.orders import Event, State, TransitionError, transition
from bridge.store.orders import Order, OrderItem, OrderNotFound, OrderStore

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
ITEM = OrderItem(item_id="IN*TPC*E1", cc="IN", pid="TPC", location_id="L1", evse_uid="E1",
                 connector_id="1")


def order(txn: str = "t1", oid: str = "o1") -> Order:
    return Order(id=oid, transaction_id=txn, bap_id="bap", bap_uri="http://bap", created=NOW,
                 updated=NOW)


async def test_create_get_update(redis_client) -> None:
    store = OrderStore(redis_client)
    assert await store.create(order())
    assert not await store.create(order())  # one order per transaction

    def select(o: Order) -> Order:
        o.state = transition(o.state, Event.SELECT)
        o.item = ITEM
        return o

    before, after = await store.update("t1", select)
    assert (before.state, after.state, after.version) == (State.DRAFT, State.QUOTED, 1)
    assert (await store.by_order_id("o1")).state is State.QUOTED


async def test_refused_change_changes_nothing(redis_client) -> None:
    store = OrderStore(redis_client)
    await store.create(order())

    def start(o: Order) -> Order:
        o.state = transition(o.state, Event.START)
        return o

    with pytest.raises(TransitionError):
        await store.update("t1", start)
    assert (await store.get("t1")).version == 0
    with pytest.raises(OrderNotFound):
        await store.update("nope", start)


async def test_concurrent_updates_are_not_lost(redis_client) -> None:
    store = OrderStore(redis_client)
    await store.create(order())

    async def bump(i: int) -> None:
        def change(o: Order) -> Order:
            o.history.append({"i": i})
            return o
        await store.update("t1", change)

    await asyncio.gather(*(bump(i) for i in range(20)))
    o = await store.get("t1")
    assert len(o.history) == 20 and o.version == 20


async def test_slot_race_exactly_one_wins(redis_client) -> None:
    store = OrderStore(redis_client)
    start = NOW + timedelta(hours=2)
    results = await asyncio.gather(*(store.reserve_slot(ITEM, f"o{i}", start,
                                                        start + timedelta(hours=1))
                                     for i in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    # adjacent slot is free, overlapping is not; the winner may re-reserve its own
    assert await store.slot_free(ITEM, start + timedelta(hours=1), start + timedelta(hours=2))
    assert not await store.slot_free(ITEM, start + timedelta(minutes=30),
                                     start + timedelta(hours=2))
    winner = f"o{results.index(True)}"
    assert await store.reserve_slot(ITEM, winner, start, start + timedelta(hours=1))
    await store.release_slot(ITEM, winner)
    assert await store.slot_free(ITEM, start, start + timedelta(hours=1))


async def test_session_index_and_watchdog_set(redis_client) -> None:
    store = OrderStore(redis_client)
    await store.create(order())

    def with_session(o: Order) -> Order:
        o.item = ITEM
        o.session = {"id": "S1"}
        return o

    await store.update("t1", with_session)
    assert (await store.by_session("in", "tpc", "s1")).transaction_id == "t1"
    await store.mark_active("t1", NOW)
    assert await store.silent_since(NOW + timedelta(minutes=5)) == ["t1"]
    assert await store.silent_since(NOW - timedelta(minutes=5)) == []
    await store.unmark_active("t1")
    assert await store.silent_since(NOW + timedelta(minutes=5)) == []
