"""Optional OpenTelemetry tracing: off by default (nothing installed), on it traces each
request with the protocols' correlation ids as span attributes, and Redis commands as
child spans. Run in a child process: instrumentation patches aiohttp and redis globally."""

from __future__ import annotations

import json
import subprocess
import sys

from bridge import tracing
from bridge.config import Settings
from tests.conftest import ROOT

CHILD = r"""
import asyncio, base64, json, sys
import redis.asyncio as aioredis
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from bridge import tracing
from bridge.app import build_app
from bridge.config import Settings
from bridge.store.credentials import Connection, CredentialsStore

async def main(redis_url):
    exporter = InMemorySpanExporter()
    settings = Settings(redis_url=redis_url, tracing="console")
    tracing.setup(settings, exporter=exporter)
    r = aioredis.Redis.from_url(redis_url)
    conn = Connection(id="", their_token="x", versions_url="http://127.0.0.1:9/v",
                      roles=[{"role": "CPO", "country_code": "IN", "party_id": "TPC",
                              "business_details": {"name": "x"}}])
    await CredentialsStore(r).save_connection(conn, "trace-token-c")
    server = TestServer(build_app(settings), host="127.0.0.1")
    await server.start_server()
    auth = "Token " + base64.b64encode(b"trace-token-c").decode()
    async with ClientSession() as http:
        async with http.get(server.make_url("/ocpi/2.2.1/locations/IN/TPC/NOPE"),
                            headers={"Authorization": auth, "X-Request-ID": "req-42",
                                     "X-Correlation-ID": "corr-7"}) as resp:
            await resp.read()
    await server.close()
    await r.aclose()
    spans = [{"name": s.name, "attributes": dict(s.attributes or {}),
              "parent": s.parent.span_id if s.parent else None,
              "id": s.context.span_id} for s in exporter.get_finished_spans()]
    print(json.dumps(spans))

asyncio.run(main(sys.argv[1]))
"""


def test_off_by_default_imports_nothing() -> None:
    assert Settings().tracing == "off"
    assert tracing.setup(Settings()) is False and not tracing.enabled()


def test_request_span_carries_the_ocpi_ids_and_redis_spans_are_children(redis_url: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, redis_url], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    spans = json.loads(proc.stdout.strip().splitlines()[-1])
    request = next(s for s in spans if s["attributes"].get("ocpi.request_id"))
    assert request["attributes"]["ocpi.request_id"] == "req-42"
    assert request["attributes"]["ocpi.correlation_id"] == "corr-7"
    assert request["attributes"]["ocpi.status_code"] == "2003"
    redis_spans = [s for s in spans if s["attributes"].get("db.system") == "redis"
                   and s["parent"] == request["id"]]
    assert redis_spans, spans
