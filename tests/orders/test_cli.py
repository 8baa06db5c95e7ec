"""`bridge outbox` and `bridge order` against a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.cli import main
from bridge.notify import Outbox
from bridge.store.orders import Order, OrderStore


async def test_outbox_and_order_commands(redis_client, redis_url, monkeypatch, capsys) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    await Outbox(redis_client).send("+919811111111", "otp", "Your start code is 1234", "abcdef12")
    await Outbox(redis_client).send("+919822222222", "info", "hello", "ffff0000")
    now = datetime.now(UTC)
    await OrderStore(redis_client).create(Order(id="ord42", transaction_id="t42", bap_id="b",
                                                bap_uri="http://b", created=now, updated=now,
                                                otp_hash="secret"))

    loop_main = main  # the commands run their own event loop: call them from a thread
    import asyncio

    code = await asyncio.to_thread(loop_main, ["outbox", "--phone", "+919811111111"])
    out = capsys.readouterr().out
    assert code == 0 and "start code is 1234" in out and "hello" not in out
    code = await asyncio.to_thread(loop_main, ["order", "ord42"])
    out = capsys.readouterr().out
    assert code == 0 and '"transaction_id": "t42"' in out and "secret" not in out
    assert await asyncio.to_thread(loop_main, ["order", "nope"]) == 1


def test_bad_config_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("BRIDGE_PORT", "not-a-port")
    assert main(["outbox"]) == 2
    assert "configuration error" in capsys.readouterr().err
    _ = pytest
