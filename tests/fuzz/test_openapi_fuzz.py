"""Fuzz both surfaces from their own OpenAPI documents (schemathesis, bounded, loopback only).

A real `bridge serve` process on 127.0.0.1 over a real redis-server. For every operation
of `/openapi/ocpi.json` and `/openapi/beckn.json`, schemathesis generates requests that
fit the schema (positive) and requests that do not (negative), with our CPO's token or
a wrong one, aimed at our CPO's party or another. For each: no 5xx, an answer within
the client time-out, and a refused request (HTTP >= 400, an OCPI status >= 2000, a Beckn
NACK) leaves Redis as it was (the digest of every key but the per-party statistics,
which record the last error on purpose). Beckn signatures are off in this process
(`BRIDGE_BECKN_VERIFY=off`) so that the bodies themselves are fuzzed, not the signature
check.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from bridge.openapi import beckn_document, ocpi_document
from bridge.store.credentials import Connection, CredentialsStore
from tests.conftest import free_port, redis_binary

EXAMPLES = int(os.environ.get("OBB_FUZZ_EXAMPLES", "15"))  # per operation and mode
TOKEN_C = "fuzz-token-c-0123456789"
# Bookkeeping a refused request legitimately changes: per-party statistics (the last error)
# and the rate limiters' buckets (a refused request still spends its caller's budget).
BOOKKEEPING = (b"obb:cred:stats:", b"obb:rl:")


@dataclass
class Target:
    url: str
    redis: redis.Redis
    http: requests.Session


def _digest(r: redis.Redis) -> dict[bytes, bytes]:
    out = {}
    for key in r.scan_iter(count=1000):
        if key.startswith(BOOKKEEPING):
            continue
        out[key] = r.execute_command("DEBUG", "DIGEST-VALUE", key)[0]
    return out


async def _register(url: str) -> None:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    try:
        conn = Connection(id="", their_token="their-token", versions_url="http://127.0.0.1:9/v",
                          roles=[{"role": "CPO", "country_code": "IN", "party_id": "TPC",
                                  "business_details": {"name": "Fuzz CPO"}}])
        await CredentialsStore(r).save_connection(conn, TOKEN_C)
    finally:
        await r.aclose()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    rport, port = free_port(), free_port()
    rproc = subprocess.Popen([redis_binary(), "--port", str(rport), "--bind", "127.0.0.1",
                              "--dir", str(tmp), "--save", "", "--appendonly", "yes",
                              "--enable-debug-command", "yes"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=rport)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    redis_url = f"redis://127.0.0.1:{rport}/0"
    env = {**os.environ, "REDIS_URL": redis_url, "BRIDGE_PORT": str(port),
           "BRIDGE_LOG_LEVEL": "warning", "BRIDGE_LOG_FORMAT": "json", "BRIDGE_BECKN_VERIFY": "off",
           "BRIDGE_BECKN_PRIVATE_KEY": str(tmp / "k.pem"), "BRIDGE_WORKER_METRICS_PORT": "0"}
    subprocess.run([sys.executable, "-m", "bridge.cli", "keys", "generate"], env=env, check=True,
                   capture_output=True, timeout=60)
    asyncio.run(_register(redis_url))
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"], env=env,
                            stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    http = requests.Session()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "bridge serve did not start"
            time.sleep(0.1)
        yield Target(url, client, http)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        rproc.terminate()
        rproc.wait(10)
        http.close()
        log.close()


def _refused(resp: requests.Response) -> bool:
    if resp.status_code >= 400:
        return True
    try:
        doc = resp.json()
    except ValueError:
        return False
    if isinstance(doc, dict):
        if isinstance(doc.get("status_code"), int) and doc["status_code"] >= 2000:
            return True
        if doc.get("ack_status") == "NACK":
            return True
    return False


def _operations(doc: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(doc)
    return [op.ok() for op in schema.get_all_operations()]


OCPI_OPS = _operations(ocpi_document())
BECKN_OPS = _operations(beckn_document())

_AUTH = st.sampled_from([
    "Token " + base64.b64encode(TOKEN_C.encode()).decode(),  # ours, 2.2.1 style
    "Token " + TOKEN_C,  # ours, raw
    "Token " + base64.b64encode(b"someone-else").decode(),
])
_PARTY = st.sampled_from([{"cc": "IN", "pid": "TPC"}, {"cc": "IN", "pid": "TPC"},
                          {"cc": "IN", "pid": "ZEO"}, {}])
_ID = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9\-]{0,11}\Z")


def _path_parameters(data: st.DataObject, path: str) -> dict[str, str] | None:
    """Most of the time our CPO's party and plain ids, so that requests get past the
    party and id checks; else whatever the schema allows."""
    if "{cc}" not in path or not data.draw(st.integers(0, 3)):
        return None
    params: dict[str, str] = dict(data.draw(_PARTY))
    for name in ("lid", "uid", "cid", "oid"):
        if "{" + name + "}" in path:
            params[name] = data.draw(_ID)
    return params


def _check(target: Target, case: Any, headers: dict[str, str]) -> None:
    before = _digest(target.redis)
    kwargs = case.as_transport_kwargs(base_url=target.url, headers=headers)
    kwargs["timeout"] = 15
    try:
        resp = target.http.request(**kwargs)
    except requests.Timeout as exc:  # a hang is a failure
        raise AssertionError(f"no answer in 15 s: {case.method} {case.formatted_path}") from exc
    assert resp.status_code < 500, (resp.status_code, case.method, case.formatted_path,
                                    resp.text[:500])
    if _refused(resp):
        assert _digest(target.redis) == before, (
            f"refused {case.method} {case.formatted_path} ({resp.status_code} {resp.text[:200]}) "
            "changed Redis")


# No shrinking: a failure is reported as found (shrinking a failure against a live server
# can take many minutes); derandomized, so a failure reproduces.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
@pytest.mark.parametrize("op", OCPI_OPS, ids=lambda op: op.label)
def test_ocpi_surface(target: Target, op: Any, mode: GenerationMode) -> None:
    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        params = _path_parameters(data, op.path)
        case = data.draw(op.as_strategy(generation_mode=mode, path_parameters=params))
        if isinstance(case.body, dict) and data.draw(st.integers(0, 3)):
            _align_ids(case)  # half the time: ids as the URL has them, to get past that check
        _check(target, case, {"Authorization": data.draw(_AUTH)})

    run()


def _align_ids(case: Any) -> None:
    """Make the body's country_code / party_id / id those of the URL (or our CPO's), so the
    generated objects reach validation and the store, not only the id checks."""
    params = case.path_parameters or {}
    body = case.body
    body["country_code"] = params.get("cc", "IN")
    body["party_id"] = params.get("pid", "TPC")
    for name, key in (("lid", "id"), ("oid", "id"), ("uid", "uid"), ("cid", "id")):
        if name in params and "{" + name + "}" == case.path.rsplit("/", 1)[-1]:
            body[key] = params[name]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
@pytest.mark.parametrize("op", BECKN_OPS, ids=lambda op: op.label)
def test_beckn_surface(target: Target, op: Any, mode: GenerationMode) -> None:
    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(op.as_strategy(generation_mode=mode))
        if isinstance(case.body, dict) and data.draw(st.integers(0, 3)):
            _fresh_context(case)  # half the time: a context this BPP accepts
        _check(target, case, {})

    run()


def _fresh_context(case: Any) -> None:
    ctx = case.body.get("context")
    if not isinstance(ctx, dict):
        ctx = case.body["context"] = {}
    action = case.path.rsplit("/", 1)[-1]
    ctx.update(domain="beckn.one:deg:ev-charging", action=action, version="2.0.0",
               bap_id=str(ctx.get("bap_id") or "bap.fuzz"), bap_uri="http://127.0.0.1:9/bap",
               bpp_id="bridge.example.org", transaction_id=str(ctx.get("transaction_id") or "t1"),
               message_id=str(ctx.get("message_id") or "m1"),
               timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z"), ttl="PT30S")


def test_documents_are_served(target: Target) -> None:
    for name, doc in (("ocpi", ocpi_document()), ("beckn", beckn_document())):
        resp = target.http.get(f"{target.url}/openapi/{name}.json", timeout=5)
        assert resp.status_code == 200 and resp.json() == doc
    assert Path(__file__).name  # the documents load in schemathesis at import (above)
