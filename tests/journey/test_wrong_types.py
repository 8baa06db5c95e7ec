"""Wrong JSON types in select, init and update (issue 12, finding 15): a NACK 30000
naming the field, and nothing written; never a 500.

The fields are the guide's (`beckn:orderAttributes`): an object where a string is
expected, a number where a list is, a string where an object is. The old parsers
(bridge/journey/wire.py) called `.get` on whatever came, or iterated a number, and
answered 500.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.journey.conftest import WALK_IN, World, init_message, select_message, update_message
from tests.journey.test_journeys import book

ATTRS = ("order", "beckn:orderAttributes")


def _put(message: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of `message` with `value` at `path` (dicts made on the way)."""
    out = copy.deepcopy(message)
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return out


SELECT = [
    ((*ATTRS, "fulfillment-details"), "a string"),
    ((*ATTRS, "fulfillment-details", "stops"), 5),
    ((*ATTRS, "fulfillment-details", "stops"), [{"type": "START", "time": "noon"}]),
    ((*ATTRS, "fulfillment-details", "stops"),
     [{"type": "START", "time": {"timestamp": {"at": "noon"}}}]),
]
INIT = [
    ((*ATTRS, "fulfillment-details"), "a string"),
    ((*ATTRS, "fulfillment-details", "customer"), ["a", "list"]),
    ((*ATTRS, "fleet-details"), "a string"),
]
UPDATE = [
    ((*ATTRS, "fulfillment-update"), "a string"),
    ((*ATTRS, "fulfillment-update", "state"), "start-charging"),
    ((*ATTRS, "fulfillment-update", "authorization"), "1234"),
]


def _refused(status: int, ack: dict[str, Any]) -> None:
    assert status == 400, (status, ack)
    assert ack["ack_status"] == "NACK" and ack["error"]["code"] == "30000", ack


@pytest.mark.parametrize(("path", "value"), SELECT, ids=lambda v: str(v)[:40])
async def test_select_with_a_wrong_type_is_nacked(world: World, path: tuple[str, ...],
                                                  value: Any) -> None:
    txn = "txn-types-select"
    _refused(*await world.post("select", txn, _put(select_message(WALK_IN, budget=100),
                                                   path, value)))
    assert await world.orders.get(world.txn(txn)) is None
    assert world.bap.of("on_select", txn) == []


@pytest.mark.parametrize(("path", "value"), INIT, ids=lambda v: str(v)[:40])
async def test_init_with_a_wrong_type_is_nacked(world: World, path: tuple[str, ...],
                                                value: Any) -> None:
    txn = "txn-types-init"
    await world.call("select", txn, select_message(WALK_IN, budget=100))
    before = await world.order(txn)
    _refused(*await world.post("init", txn, _put(init_message("+919800009901"), path, value)))
    after = await world.order(txn)
    assert after.model_dump() == before.model_dump()  # nothing written
    assert world.bap.of("on_init", txn) == []


@pytest.mark.parametrize(("path", "value"), UPDATE, ids=lambda v: str(v)[:40])
async def test_update_with_a_wrong_type_is_nacked(world: World, path: tuple[str, ...],
                                                  value: Any) -> None:
    txn = "txn-types-update"
    await book(world, txn, "+919800009902", budget=100)
    before = await world.order(txn)
    seen = len(world.bap.of("on_update", txn))
    _refused(*await world.post("update", txn, _put(update_message("start-charging", "1234"),
                                                   path, value)))
    after = await world.order(txn)
    assert after.model_dump() == before.model_dump()  # nothing written, no command
    assert len(world.bap.of("on_update", txn)) == seen
