"""Counter-signed Acks both ways: the bridge checks the counter-signature on the Ack an
LTS BAP answers each callback with; a missing, forged or NACK Ack is a failed delivery
(retried while the request's ttl allows, then dead-lettered, `bridge callbacks replay`
sends it again)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bridge.beckn.callbacks import dead_letters, replay
from bridge.store import beckn_keys
from tests.journey.conftest import WALK_IN, World
from tests.lts.conftest import LtsBap, select_contract


async def _records(world: World, action: str) -> list[dict[bytes, bytes]]:
    out = []
    async for key in world.redis.scan_iter(match=beckn_keys.callback("*"), _type="hash"):
        rec = await world.redis.hgetall(key)
        if rec.get(b"url", b"").endswith(f"/lts/{action}".encode()):
            out.append(rec)
    return out


async def _dead(world: World, within: float = 15) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        dead = await dead_letters(world.redis)
        if dead:
            return dead[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no callback was dead-lettered")


async def test_a_counter_signed_ack_is_one_delivery(world: World, lts: LtsBap) -> None:
    await lts.call("select", "lts-ack-1", select_contract(WALK_IN, budget=100))
    for _ in range(50):  # the BAP has it; the bridge marks it once the Ack is checked
        recs = await _records(world, "on_select")
        if recs and recs[0][b"state"] != b"pending":
            break
        await asyncio.sleep(0.1)
    assert len(recs) == 1 and recs[0][b"state"] == b"done" and recs[0][b"attempts"] == b"1"
    assert len(lts.of("on_select", "lts-ack-1")) == 1


async def _refused(world: World, lts: LtsBap, answer: str, reason: str) -> None:
    txn = f"lts-ack-{answer}"
    lts.answer = answer
    status, ack = await lts.post("select", txn, select_contract(WALK_IN, budget=100),
                                 context={"ttl": "PT2S"})
    assert (status, ack["status"]) == (200, "ACK")
    dead = await _dead(world)
    assert dead.url.endswith("/lts/on_select") and reason in dead.last_error, dead
    assert dead.attempts >= 2 and len(lts.of("on_select", txn)) == dead.attempts
    # the BAP mends its Acks: the dead letter sent again is delivered, once
    lts.answer = "ack"
    assert await replay(world.redis, world.settings, dead.id)
    await lts.wait_for("on_select", txn, count=dead.attempts + 1)
    for _ in range(50):
        rec = await world.redis.hgetall(beckn_keys.callback(dead.id))
        if rec[b"state"] == b"done":
            break
        await asyncio.sleep(0.1)
    assert rec[b"state"] == b"done", rec
    assert not await dead_letters(world.redis)


async def test_an_ack_without_counter_signature_is_a_failed_delivery(world: World,
                                                                    lts: LtsBap) -> None:
    await _refused(world, lts, "unsigned", "the Ack has no signature")


async def test_a_forged_counter_signature_is_a_failed_delivery(world: World,
                                                               lts: LtsBap) -> None:
    await _refused(world, lts, "forged", "does not verify")


async def test_a_counter_signed_nack_is_a_failed_delivery(world: World, lts: LtsBap) -> None:
    await _refused(world, lts, "nack", "status is 'NACK'")


async def test_a_counter_signature_by_another_subscriber_is_refused(world: World,
                                                                    lts: LtsBap) -> None:
    await _refused(world, lts, "other", "not bap.lts.test")
