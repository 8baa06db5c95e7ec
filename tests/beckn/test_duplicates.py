"""Duplicates are keyed by (bap_id, action, message_id); a duplicate is answered again,
a reused message id with another body is refused, and the duplicate-check record is
written with the request's queued work, so a serve killed in between never turns the
BAP's retry into a silent duplicate (bridge/beckn/intake.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp

from bridge.store import beckn_keys
from tests.beckn.conftest import BAP_ID, BPP_ID, Bridge, LoopbackBap, run_worker
from tests.beckn.test_transport import discover_body, nack
from tests.conftest import free_port


def txq(body: dict[str, Any]) -> str:
    return beckn_keys.txn_queue(BAP_ID, body["context"]["transaction_id"])


async def test_a_duplicate_discover_is_answered_again(bridge: Bridge, bap: LoopbackBap,
                                                      redis_client: Any) -> None:
    body = discover_body(bap)
    for _ in range(2):
        status, ack = await bridge.post("discover", body, bap)
        assert (status, ack["ack_status"]) == (200, "ACK")
    # the BAP's retry may stamp a new timestamp: still the same request
    body["context"]["timestamp"] = bap.context("discover")["timestamp"]
    assert (await bridge.post("discover", body, bap))[1]["ack_status"] == "ACK"
    await run_worker(bridge.settings)
    answers = [c for c in bap.callbacks() if c["context"]["message_id"] == body["context"][
        "message_id"]]
    assert len(answers) == 3 and await redis_client.zcard("obb:beckn:dead") == 0


async def test_a_reused_message_id_with_another_body_is_refused(bridge: Bridge, bap: LoopbackBap,
                                                                redis_client: Any) -> None:
    body = discover_body(bap)
    assert (await bridge.post("discover", body, bap))[1]["ack_status"] == "ACK"
    other = {**body, "message": {"text_search": "Indiranagar"}}
    nack(*await bridge.post("discover", other, bap), 409, "30020")
    assert await redis_client.llen(txq(body)) == 1  # only the first is answered
    # the same message id for another action is another request (the guide reuses ids)
    status, ack = await bridge.post("status", {"context": bap.context(
        "status", message_id=body["context"]["message_id"]), "message": {"order_id": "x"}}, bap)
    assert ack.get("error", {}).get("code") != "30020", ack


async def test_a_copy_still_being_handled_is_told_to_retry(bridge: Bridge, bap: LoopbackBap,
                                                           redis_client: Any) -> None:
    from bridge.beckn.intake import digest

    body = discover_body(bap)
    ctx = body["context"]
    lock = beckn_keys.seen_lock(BAP_ID, "discover", ctx["message_id"])
    await redis_client.set(lock, digest(body), px=5000)  # another serve is handling it
    nack(*await bridge.post("discover", body, bap), 409, "30021")
    await redis_client.delete(lock)
    assert (await bridge.post("discover", body, bap))[1]["ack_status"] == "ACK"


async def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            await asyncio.sleep(0.1)


async def test_serve_killed_before_the_work_is_queued_retry_is_handled(
        redis_url: str, bap: LoopbackBap, bridge_key: Any, redis_client: Any) -> None:
    """kill -9 between the duplicate check and the queued work (crash point
    beckn.checked): the BAP's retry of the same request is handled and answered. (When
    the check wrote its key first, the retry was ACKed as a duplicate and never answered.)"""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "BRIDGE_PORT": str(port),
           "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}", "BRIDGE_LOG_FORMAT": "json",
           "BRIDGE_BECKN_SUBSCRIBER_ID": BPP_ID, "BRIDGE_BECKN_PRIVATE_KEY": str(bridge_key[1]),
           "BRIDGE_BECKN_REGISTRY_URL": bap.url}
    body = discover_body(bap)
    http = aiohttp.ClientSession()
    bridge = Bridge(f"http://127.0.0.1:{port}", http, None)  # type: ignore[arg-type]
    proc = await _serve({**env, "BRIDGE_TEST_CRASH_POINT": "beckn.checked"}, port)
    try:
        try:
            await bridge.post("discover", body, bap)
            raise AssertionError("serve answered although it was to die")
        except aiohttp.ClientError:
            pass
        assert await asyncio.to_thread(proc.wait, 20) == -9
        assert await redis_client.llen(txq(body)) == 0  # nothing was queued
        proc = await _serve(env, port)
        # the BAP retries at once: the dead serve's short lock says "retry", never an ACK
        nack(*await bridge.post("discover", body, bap), 409, "30021")
        # ... and again once the lock has lapsed (LOCK_MS; here: expired by hand)
        lock = beckn_keys.seen_lock(BAP_ID, "discover", body["context"]["message_id"])
        assert await redis_client.pexpire(lock, 1)
        await asyncio.sleep(0.05)
        status, ack = await bridge.post("discover", body, bap)
        assert (status, ack["ack_status"]) == (200, "ACK"), ack
        assert await redis_client.llen(txq(body)) == 1  # handled: its answer is queued
    finally:
        await http.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
