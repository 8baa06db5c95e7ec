"""The transport's refusals on the LTS paths: a body over `beckn.max_body` (413), a BAP over
its rate (429, with Retry-After) and a body that does not arrive in time (408) are LTS
NACKs `{status, signature, error}` like every other refusal, counter-signed by the bridge
(over the body it read: none when it refused before reading) and changing nothing. The
conformance suite runs these again under the LTS validator
(tests/conformance/beckn/test_lts_schema.py, with this module's `BRIDGE_OVERRIDES`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from bridge.beckn import signing
from tests.journey.conftest import BAP_KEY, LTS_BAP, WALK_IN, World
from tests.lts.conftest import LtsBap, check_counter, select_contract
from tests.lts.test_lts_errors import refused

# small limits, so that each refusal takes a handful of requests
BRIDGE_OVERRIDES: dict[str, Any] = {"beckn_max_body": 4096, "beckn_rate_limit": "1/min burst 2",
                                    "body_timeout": 1.0}


@pytest.fixture
def bridge_overrides() -> dict[str, Any]:
    return dict(BRIDGE_OVERRIDES)


def signed(world: World, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "Authorization": signing.Signer(LTS_BAP, BAP_KEY, world.bap.lts_key, 300).header(
                body, time.time())}


async def test_transport_refusals_are_counter_signed_lts_nacks(world: World,
                                                              lts: LtsBap) -> None:
    txn = "lts-limits-1"
    # 413: more than beckn.max_body, refused from its Content-Length before it is read
    # (the counter-signature binds an empty body and no message id: none was read)
    message = select_contract(WALK_IN, budget=100)
    message["contract"]["padding"] = "x" * 5000
    body = orjson.dumps({"context": lts.context("select", txn), "message": message})
    async with world.http.post(f"{world.bridge_url}/select", data=body,
                               headers=signed(world, body)) as r:
        status, ack = r.status, orjson.loads(await r.read())
    if lts.inspect is not None:
        lts.inspect(f"ack:{status}", ack)
    refused(status, ack, 413, "30000", "at most 4096")
    check_counter(ack, b"", "", world.bap.bridge_public, world.settings.beckn_subscriber_id)

    # 408: a body that stops arriving (the declared length never comes)
    async def dribble() -> AsyncIterator[bytes]:
        yield body[:100]
        await asyncio.sleep(3)  # past body_timeout (1 s): the bridge answers first
        yield body[100:200]

    headers = signed(world, body) | {"Content-Length": "200"}
    async with world.http.post(f"{world.bridge_url}/select", data=dribble(),
                               headers=headers) as r:
        status, ack = r.status, orjson.loads(await r.read())
    if lts.inspect is not None:
        lts.inspect(f"ack:{status}", ack)
    refused(status, ack, 408, "30000", "did not arrive within 1 s")
    check_counter(ack, b"", "", world.bap.bridge_public, world.settings.beckn_subscriber_id)

    # 429: the third request within the minute, after its signature (the 413 and 408 were
    # refused before it, and cost nothing); Retry-After says when
    ref = {"contract": {"id": str(uuid.uuid4()), "commitments": message["contract"][
        "commitments"]}}
    for _ in range(2):
        status, ack = await lts.post("status", txn, ref)
        refused(status, ack, 409, "40001")
    ctx = lts.context("status", txn)
    body = orjson.dumps({"context": ctx, "message": ref})
    async with world.http.post(f"{world.bridge_url}/status", data=body,
                               headers=signed(world, body)) as r:
        status, ack = r.status, orjson.loads(await r.read())
        retry_after = r.headers.get("Retry-After")
    if lts.inspect is not None:
        lts.inspect(f"ack:{status}", ack)
    refused(status, ack, 429, "30000", f"too many requests from {LTS_BAP}")
    assert retry_after is not None and int(retry_after) >= 1, retry_after
    # the request was read: its counter-signature binds its body and message id
    check_counter(ack, body, ctx["messageId"], world.bap.bridge_public,
                  world.settings.beckn_subscriber_id)
    assert await world.orders.get(world.txn(txn)) is None
