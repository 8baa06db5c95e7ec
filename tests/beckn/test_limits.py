"""The BPP's door: the signature header is checked before a byte of the body is read (its
lifetime capped), bodies are bounded in size and time, each BAP has a request budget, and
made-up key ids do not turn into registry lookups. Each answered with the NACK envelope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from bridge.config import Settings
from bridge.ratelimit import Limit, RateLimiter, parse_limit
from tests.beckn.conftest import BAP_ID, BAP_KEY, Bridge, LoopbackBap


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[tuple[Bridge, str, int]]:
    """The bridge with small limits; also its host and port for raw connections."""
    import aiohttp

    from bridge.app import build_app
    from bridge.extensions import app_extensions

    tight = settings.replace(beckn_max_body=4096, body_timeout=1.0, beckn_rate_limit="3/s burst 3",
                             beckn_max_signature_lifetime=600,
                             beckn_registry_lookup_limit="5/min burst 5")
    server = TestServer(build_app(tight, extensions=app_extensions()), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield Bridge(str(server.make_url("")).rstrip("/"), http, tight), "127.0.0.1", server.port
    await server.close()


def discover(bap: LoopbackBap) -> dict[str, Any]:
    return {"context": bap.context("discover", bpp_id=None), "message": {"text_search": "CCS2"}}


async def raw_request(host: str, port: int, head: bytes, body: bytes, wait: float = 5
                      ) -> tuple[int, dict[str, Any], float]:
    """Send `head` + `body` (possibly less than Content-Length says); the answer and how
    long it took."""
    reader, writer = await asyncio.open_connection(host, port)
    t0 = time.monotonic()
    writer.write(head + body)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), wait)
    headers: dict[str, str] = {}
    while (line := await asyncio.wait_for(reader.readline(), wait)) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    data = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), wait)
    elapsed = time.monotonic() - t0
    writer.close()
    return int(status_line.split()[1]), orjson.loads(data) if data else {}, elapsed


def head(length: int, auth: str, extra: str = "") -> bytes:
    return (f"POST /beckn/discover HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nAuthorization: {auth}\r\n{extra}\r\n").encode()


async def test_a_lifetime_over_the_cap_is_refused_before_the_body(
        strict: tuple[Bridge, str, int], bap: LoopbackBap) -> None:
    _, host, port = strict
    body = orjson.dumps(discover(bap))
    forever = bap.sign(body, expires_in=10**9)
    # Only half the body is sent: an answer means the body was never waited for.
    status, ack, took = await raw_request(host, port, head(len(body), forever), body[:10])
    assert status == 401 and ack["ack_status"] == "NACK" and ack["error"]["code"] == "10001"
    assert ack["error"]["details"]["reason"] == "lifetime" and took < 1.0


async def test_an_unknown_signer_is_refused_before_the_body(
        strict: tuple[Bridge, str, int], bap: LoopbackBap) -> None:
    _, host, port = strict
    body = orjson.dumps(discover(bap))
    stranger = bap.sign(body, key_id="nobody-knows")
    status, ack, took = await raw_request(host, port, head(len(body), stranger), body[:10])
    assert status == 401 and ack["error"]["code"] == "10001" and took < 1.0


async def test_a_body_over_the_limit_is_413(strict: tuple[Bridge, str, int], bap: LoopbackBap
                                           ) -> None:
    bridge, host, port = strict
    body = orjson.dumps(discover(bap) | {"padding": "x" * 5000})
    # said up front: refused from the header
    status, ack, took = await raw_request(host, port, head(len(body), bap.sign(body)), b"")
    assert status == 413 and ack["ack_status"] == "NACK" and ack["error"]["code"] == "30000"
    # not said (chunked): refused once more than the limit has arrived
    status, ack = await bridge.post("discover", body, bap)
    assert status == 413 and ack["error"]["code"] == "30000"


async def test_chunked_body_over_the_limit(strict: tuple[Bridge, str, int], bap: LoopbackBap) -> None:
    bridge, _, _ = strict
    body = orjson.dumps(discover(bap) | {"padding": "x" * 5000})

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    async with bridge.http.post(f"{bridge.url}/beckn/discover", data=chunks(),
                                headers={"Authorization": bap.sign(body),
                                         "Content-Type": "application/json"}) as resp:
        ack = await resp.json()
    assert resp.status == 413 and ack["error"]["code"] == "30000"


async def test_a_body_that_trickles_is_408(strict: tuple[Bridge, str, int], bap: LoopbackBap) -> None:
    _, host, port = strict
    body = orjson.dumps(discover(bap))
    status, ack, took = await raw_request(host, port, head(len(body), bap.sign(body)), body[:20])
    assert status == 408 and ack["error"]["code"] == "30000" and 0.9 < took < 3


async def test_each_bap_has_a_budget(strict: tuple[Bridge, str, int], bap: LoopbackBap) -> None:
    bridge, _, _ = strict
    answers = [await bridge.post("discover", discover(bap), bap) for _ in range(5)]
    assert [s for s, _ in answers[:3]] == [200, 200, 200]
    status, ack = answers[3]
    assert status == 429 and ack["ack_status"] == "NACK" and ack["error"]["code"] == "30000"
    assert ack["error"]["details"]["retry_after"] > 0
    async with bridge.http.post(f"{bridge.url}/beckn/discover", data=orjson.dumps(discover(bap)),
                                headers={"Authorization": bap.sign(orjson.dumps(discover(bap)))}
                                ) as resp:
        assert resp.status in (401, 429)  # (the body signed is not the body sent: 401)


async def test_made_up_key_ids_do_not_become_registry_lookups(strict: tuple[Bridge, str, int],
                                                              bap: LoopbackBap) -> None:
    bridge, _, _ = strict
    body = orjson.dumps(discover(bap))
    status, _ = await bridge.post("discover", body, auth=bap.sign(body, key_id=BAP_KEY))
    assert status == 200  # the BAP's real key: looked up once, then cached in Redis
    before = bap.lookups
    for i in range(20):
        body = orjson.dumps(discover(bap))
        status, ack = await bridge.post("discover", body, auth=bap.sign(body, key_id=f"k{i}"))
        assert status == 401 and ack["error"]["code"] == "10001"
    assert bap.lookups - before == 4  # the burst of 5 (one spent on the real key), then none
    body = orjson.dumps(discover(bap))
    status, _ = await bridge.post("discover", body, auth=bap.sign(body, key_id=BAP_KEY))
    assert status == 200  # the real key is cached: the flood did not lock the BAP out


async def test_a_known_bap_s_first_requests_at_once_are_one_lookup(settings: Settings,
                                                                     bap: LoopbackBap) -> None:
    # A BAP that opens with many requests at once (nothing cached yet): they wait for one
    # registry lookup, rather than each asking the registry and spending the lookup
    # budget meant for made-up key ids (they were NACKed "too many lookups of unknown
    # keys" though the key is the BAP's own).
    import aiohttp

    from bridge.app import build_app
    from bridge.extensions import app_extensions

    tight = settings.replace(beckn_registry_lookup_limit="5/min burst 5", beckn_rate_limit="off")
    server = TestServer(build_app(tight, extensions=app_extensions()), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            bridge = Bridge(str(server.make_url("")).rstrip("/"), http, tight)
            before = bap.lookups

            async def one() -> int:
                body = orjson.dumps(discover(bap))
                status, _ = await bridge.post("discover", body, auth=bap.sign(body, key_id=BAP_KEY))
                return status

            assert await asyncio.gather(*(one() for _ in range(20))) == [200] * 20
            assert bap.lookups - before == 1
    finally:
        await server.close()


@pytest.mark.parametrize(("text", "limit"), [
    ("50/s burst 100", Limit(50.0, 100)), ("600/min", Limit(10.0, 600)), ("off", Limit(0.0, 0)),
    ("2/s", Limit(2.0, 2)), ("1/h burst 3", Limit(1 / 3600, 3)),
])
def test_parse_limit(text: str, limit: Limit) -> None:
    assert parse_limit(text) == limit


@pytest.mark.parametrize("bad", ["fast", "10/fortnight", "-1/s", "5/s burst 0", "x/s"])
def test_parse_limit_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="not a rate limit"):
        parse_limit(bad)


def test_a_bad_limit_is_a_config_error() -> None:
    from bridge.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="not a rate limit"):
        load_settings({"BRIDGE_BECKN_RATE_LIMIT": "lots"}, path="/dev/null")


async def test_bucket_refills(redis_client: Any) -> None:
    rl = RateLimiter(redis_client)
    limit = Limit(10.0, 2)
    t = 1_000_000
    assert [(await rl.take("t", "a", limit, t)).allowed for _ in range(3)] == [True, True, False]
    later = await rl.take("t", "a", limit, t + 50)
    assert not later.allowed and 0.04 <= later.retry_after <= 0.06
    assert (await rl.take("t", "a", limit, t + 100)).allowed
    assert (await rl.take("t", "b", limit, t)).allowed  # another caller, another bucket
    assert BAP_ID and (await rl.take("t", "a", Limit(0, 0), t)).allowed


# --------------------------------------------------------------------------- recipients

from bridge.beckn.recipients import bap_uri_refusal, tracking_refusal, under  # noqa: E402
from bridge.beckn.registry import Subscriber  # noqa: E402

REG = Subscriber("bap.example", "k1", "pk", "https://bap.example/beckn")


@pytest.mark.parametrize(("url", "base", "ok"), [
    ("https://bap.example/beckn", "https://bap.example/beckn", True),
    ("https://bap.example/beckn/", "https://bap.example/beckn", True),
    ("https://bap.example/beckn/v2", "https://bap.example/beckn", True),
    ("https://bap.example/becknx", "https://bap.example/beckn", False),
    ("http://bap.example/beckn", "https://bap.example/beckn", False),
    ("https://bap.example:8443/beckn", "https://bap.example/beckn", False),
    ("https://BAP.example:443/beckn", "https://bap.example/beckn", True),
    ("https://evil.example/beckn", "https://bap.example/beckn", False),
    ("ftp://bap.example/beckn", "https://bap.example/beckn", False),
    ("https://bap.example@evil.example/beckn", "https://bap.example/beckn", False),
])
def test_under(url: str, base: str, ok: bool) -> None:
    assert under(url, base) is ok


def test_bap_uri_must_be_the_registered_url() -> None:
    assert bap_uri_refusal("https://bap.example/beckn", REG, "") is None
    assert "not under the subscriber_url" in (bap_uri_refusal("http://10.0.0.5/x", REG, "") or "")
    assert bap_uri_refusal("http://anything.example/x", None, "") is None  # nothing to compare
    allow = "https://bap.example/beckn, https://other.example"
    assert bap_uri_refusal("https://other.example/bap", None, allow) is None
    assert "not among the allowed" in (bap_uri_refusal("https://evil.example", None, allow) or "")


def test_tracking_url_on_the_bap_host() -> None:
    assert tracking_refusal("https://bap.example/track/1", "x", REG, "") is None
    assert tracking_refusal("http://169.254.169.254/x", "x", REG, "")
    assert tracking_refusal("http://bap2.example/t", "http://bap2.example/bap", None, "") is None
    assert tracking_refusal("http://victim.example/t", "http://bap2.example/bap", None, "")


async def test_a_bap_uri_outside_the_registered_url_is_refused(bridge: Bridge, bap: LoopbackBap) -> None:
    bap.registry[(BAP_ID, BAP_KEY)]["subscriber_url"] = bap.bap_uri
    ctx = bap.context("discover", bpp_id=None)
    body = {"context": ctx | {"bap_uri": "http://victim.example/hook"},
            "message": {"text_search": "CCS2"}}
    status, ack = await bridge.post("discover", body, bap)
    assert status == 401 and ack["error"]["code"] == "10001"
    assert ack["error"]["details"]["field"] == "context.bap_uri"
    status, ack = await bridge.post("discover", {"context": bap.context("discover", bpp_id=None),
                                                 "message": {"text_search": "CCS2"}}, bap)
    assert status == 200


async def test_callbacks_are_not_sent_to_a_private_address(settings: Settings, bap: LoopbackBap
                                                           ) -> None:
    from bridge.beckn.callbacks import _post, make_deps

    deps = make_deps(settings.replace(ocpi_allow_loopback_urls=False), None)  # type: ignore[arg-type]
    try:
        assert await _post(deps, f"{bap.bap_uri}/on_discover", b"{}") == "BlockedUrl"
        assert await _post(deps, "http://169.254.169.254/latest", b"{}") == "BlockedUrl"
    finally:
        await deps.close()
    assert not bap.received
