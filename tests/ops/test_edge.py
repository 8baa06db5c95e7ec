"""The HTTP edge of a real `bridge serve` process: a request aiohttp cannot read (a 100 KB
query string, a 100 KB header) is answered in the protocol's own shape, and a connection
that dribbles its headers is closed after `header_timeout`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from bridge.beckn import countersign, signing
from bridge.edge import error_body
from tests.conftest import free_port
from tests.ops.test_operations import _wait_ready

BRIDGE = [sys.executable, "-m", "bridge.cli"]


@pytest.fixture
async def serve(redis_url: str, tmp_path: Path) -> AsyncIterator[int]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "BRIDGE_PORT": str(port), "BRIDGE_LOG_FORMAT": "json",
           "BRIDGE_HEADER_TIMEOUT": "1", "BRIDGE_BECKN_PRIVATE_KEY": str(tmp_path / "k.pem")}
    subprocess.run([*BRIDGE, "keys", "generate"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([*BRIDGE, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


async def exchange(port: int, raw: bytes, wait: float = 5) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), wait)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(("raw", "kind"), [
    (b"GET /ocpi/2.2.1/tokens?x=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "ocpi"),
    (b"GET /ocpi/2.2.1/tokens HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", "ocpi"),
    (b"POST /beckn/discover HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", "beckn"),
    (b"POST /beckn/discover?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "beckn"),
    (b"POST /select?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "lts"),
    (b"POST /discover HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", "lts"),
])
async def test_unreadable_requests_get_the_protocols_answer(serve: int, raw: bytes, kind: str,
                                                            tmp_path: Path) -> None:
    status, body = await exchange(serve, raw)
    assert 400 <= status < 500
    doc = orjson.loads(body)
    if kind == "ocpi":
        assert doc["status_code"] == 2000 and "could not be read" in doc["status_message"]
    elif kind == "beckn":
        assert doc["ack_status"] == "NACK" and doc["error"]["code"] == "30000"
    else:  # the LTS's NACK, counter-signed by the bridge's key over no body, no message id
        assert doc["status"] == "NACK" and doc["error"]["errorCode"] == "30000", doc
        public = signing.load_private_key(tmp_path / "k.pem").public_key()
        countersign.verify(doc, b"", "", public, time.time())


async def test_dribbled_headers_are_cut_off(serve: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", serve)
    t0 = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, unanswered
    assert 0.8 < time.monotonic() - t0 < 3
    writer.close()
    # an honest client on a fresh connection is served
    status, _ = await exchange(serve, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200


def test_error_body_by_target() -> None:
    assert b'"status_code":2000' in (error_body(b"GET /ocpi/x HTTP/1.1", 400, "x") or b"")
    assert b'"ack_status":"NACK"' in (error_body(b"POST /beckn/x HTTP/1.1", 400, "x") or b"")
    assert error_body(b"GET /track/x HTTP/1.1", 400, "x") is None
    # the LTS paths: the LTS's NACK, counter-signed when the bridge has a key of its own
    lts = orjson.loads(error_body(b"POST /select?x=" + b"y" * 40, 400, "too long") or b"{}")
    assert lts == {"status": "NACK", "error": {
        "errorCode": "30000", "errorMessage": "the HTTP request could not be read: too long"}}
    signed = orjson.loads(error_body(b"POST /select?x=" + b"y" * 40, 400, "too long",
                                     lambda ack: f"sig of {sorted(ack)}") or b"{}")
    assert signed == {**lts, "signature": "sig of ['error', 'status']"}
    assert error_body(b"POST /catalog/on_publish HTTP/1.1", 400, "x") is not None
    assert error_body(b"POST /selection HTTP/1.1", 400, "x") is None
    assert error_body(b"\x16\x03\x01garbage", 400, "x") is None
