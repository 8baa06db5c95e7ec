"""Callbacks: retries, dead letter, replay through the CLI, order per transaction, any 2xx."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.beckn.callbacks import callback_context, dead_letters, enqueue_callback
from bridge.beckn.models import Context
from bridge.commands.callbacks import cmd_failed, cmd_replay
from tests.beckn.conftest import Bridge, LoopbackBap, run_worker


def request_context(bap: LoopbackBap, **over: Any) -> Context:
    return Context.model_validate(bap.context("select", **over))


async def test_bap_down_retries_then_dead_letter_then_replay(
        bridge: Bridge, bap: LoopbackBap, redis_client: Any, capsys: Any) -> None:
    bap.fail = True
    body = {"context": bap.context("discover"), "message": {"text_search": "anything"}}
    status, ack = await bridge.post("discover", body, bap)
    assert (status, ack["ack_status"]) == (200, "ACK")
    t0 = time.monotonic()
    await run_worker(bridge.settings)
    assert time.monotonic() - t0 < 10
    (dead,) = await dead_letters(redis_client)
    assert dead.attempts == bridge.settings.beckn_callback_max_attempts == 3
    assert dead.last_error == "HTTP 503"
    assert dead.action == "on_discover"
    assert bap.received == []

    await asyncio.to_thread(cmd_failed, argparse.Namespace(limit=10), bridge.settings)
    assert dead.id in capsys.readouterr().out

    bap.fail = False
    code = await asyncio.to_thread(cmd_replay, argparse.Namespace(id=dead.id), bridge.settings)
    assert code == 0
    await run_worker(bridge.settings)
    (cb,) = bap.callbacks()
    assert cb["context"]["message_id"] == body["context"]["message_id"]
    assert await dead_letters(redis_client) == []
    # replaying something that is not dead is refused
    assert await asyncio.to_thread(cmd_replay, argparse.Namespace(id=dead.id),
                                   bridge.settings) == 1


async def test_retry_stops_at_ttl(bridge: Bridge, bap: LoopbackBap, redis_client: Any) -> None:
    bap.fail = True
    settings = bridge.settings.replace(beckn_callback_max_attempts=50, beckn_callback_backoff=0.2)
    ctx = callback_context(request_context(bap, ttl="PT1S"), "select", settings,
                           datetime.now(UTC))
    await enqueue_callback(redis_client, settings, ctx, {"order": {}})
    t0 = time.monotonic()
    await run_worker(settings)
    (dead,) = await dead_letters(redis_client)
    assert dead.attempts < 5  # 0.2 + 0.4 + 0.8 > the 1 s ttl
    assert time.monotonic() - t0 < 5


async def test_order_per_transaction_and_any_2xx(bridge: Bridge, bap: LoopbackBap,
                                                 redis_client: Any) -> None:
    settings = bridge.settings
    bap.fail_times = 1  # the first one needs a retry; the others must wait for it
    bap.status = 202  # no Beckn ACK body at all: still success
    req = request_context(bap)
    for n in range(4):
        ctx = callback_context(req, ["select", "init", "confirm", "status"][n], settings,
                               datetime.now(UTC), message_id=f"m{n}")
        await enqueue_callback(redis_client, settings, ctx, {"n": n})
    await run_worker(settings)
    got = [p.rsplit("/", 1)[-1] for p, _h, _b in bap.received]
    assert got == ["on_select", "on_init", "on_confirm", "on_status"]
    assert await dead_letters(redis_client) == []


async def test_a_recipe_is_joined_with_each_offer_naming_its_item(bridge: Bridge, bap: LoopbackBap,
                                                                  redis_client: Any) -> None:
    # discover's callbacks keep a recipe: the worker's claim joins the pre-rendered items
    # and offers, writing each item's id into its offer template wherever the template
    # names it (twice here), whatever characters the id has ('%' is special to Lua's
    # gsub replacement, '-' to its patterns).
    from bridge.beckn.callbacks import HOLE
    from bridge.mapping.catalog import OFFER_ITEM

    settings = bridge.settings
    template = orjson.dumps({"beckn:id": OFFER_ITEM, "beckn:items": [OFFER_ITEM], "x": "%1"})
    await redis_client.hset("test:cat:a", mapping={"i:A-1%2": b'{"beckn:id":"A-1%2"}',
                                                   "t:T1": template})
    await redis_client.hset("test:cat:b", mapping={"i:B.2": b'{"beckn:id":"B.2"}', "t:T1": template})
    ctx = callback_context(request_context(bap), "on_discover", settings, datetime.now(UTC),
                           message_id="m-recipe")
    holes = [[("test:cat:a", "i:A-1%2", "A-1%2"), ("test:cat:b", "i:B.2", "B.2"),
              ("test:cat:a", "i:gone", "gone")],
             [("test:cat:a", "t:T1", "A-1%2"), ("test:cat:b", "t:T1", "B.2")]]
    hole = orjson.Fragment(b"[" + HOLE + b"]")
    await enqueue_callback(redis_client, settings, ctx, {"items": hole, "offers": hole},
                           holes=holes)
    await run_worker(settings)
    (body,) = bap.callbacks("on_discover")
    assert body["message"]["items"] == [{"beckn:id": "A-1%2"}, {"beckn:id": "B.2"}]
    assert body["message"]["offers"] == [
        {"beckn:id": "A-1%2", "beckn:items": ["A-1%2"], "x": "%1"},
        {"beckn:id": "B.2", "beckn:items": ["B.2"], "x": "%1"}]


async def test_bap_down_for_minutes_still_gets_an_unsolicited_callback(
        bridge: Bridge, bap: LoopbackBap, redis_client: Any) -> None:
    """Issue 12, finding 10, time scaled by 0.02: a BAP down for 350 first-backoffs (7 s
    here; 6 minutes with the 1 s default) gets the day-long on_update when it is back.
    With the default tries it used to be dead-lettered after about two minutes."""
    from bridge.config import Settings

    over: dict[str, Any] = {"beckn_callback_backoff": 0.02,
                            "beckn_callback_max_attempts": Settings().beckn_callback_max_attempts}
    if "beckn_callback_max_backoff" in Settings.model_fields:
        over["beckn_callback_max_backoff"] = 0.5  # one hour, scaled down further
    settings = bridge.settings.replace(**over)
    bap.fail = True
    ctx = callback_context(request_context(bap), "update", settings, datetime.now(UTC),
                           message_id="unsolicited-1")
    await enqueue_callback(redis_client, settings, ctx, {"order": {}},
                           deadline=time.time() + 86400)
    worker = asyncio.create_task(run_worker(settings))
    await asyncio.sleep(7)
    assert bap.received == []
    bap.fail = False
    await asyncio.wait_for(worker, 30)
    (cb,) = bap.callbacks("on_update")
    assert cb["context"]["message_id"] == "unsolicited-1"
    assert await dead_letters(redis_client) == []


def test_retry_schedule_minutes_then_hours_until_the_deadline() -> None:
    from bridge.beckn.callbacks import retry_delay
    from bridge.config import Settings

    s = Settings()
    now, deadline = 0.0, 86400.0
    delays = []
    attempts = 1
    while (d := retry_delay(s, attempts, now, deadline)) is not None:
        delays.append(d)
        now += d
        attempts += 1
    assert delays[:4] == [1, 2, 4, 8]
    assert max(delays) == s.beckn_callback_max_backoff  # hourly at most
    assert now == deadline  # the last try is at the deadline, then the dead letter
    assert attempts < s.beckn_callback_max_attempts
    assert sum(1 for d in delays if d < 60) < 8  # seconds first, then minutes, then hours
