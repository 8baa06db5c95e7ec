"""The demo explains a refusal it can explain: a bridge that cannot find the demo BAP's key
(its registry is not the demo BAP) gets the setting to use, not a false warning up front."""

from __future__ import annotations

import io

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.demo.bap import DemoBap, Identity
from bridge.demo.client import Client, DemoFailure, Endpoints
from bridge.demo.render import Printer


@pytest.mark.parametrize(("error", "hint"), [
    ({"code": "10001", "message": "subscriber or key not found in the registry"}, True),
    ({"code": "30000", "message": "context.bpp_id: Field required"}, False),
])
async def test_unknown_key_nack_names_the_registry_setting(error: dict[str, str], hint: bool) -> None:
    async def nack(_request: web.Request) -> web.Response:
        return web.json_response({"ack_status": "NACK", "error": error}, status=401)

    app = web.Application()
    app.router.add_post("/beckn/{action}", nack)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    bap = DemoBap(identity=Identity.fresh(), bpp_id="bpp", bridge_key=None, port=7070)
    ends = Endpoints(bridge_url=str(server.make_url("")).rstrip("/"), mock_url="http://x",
                     bpp_id="bpp")
    redis = aioredis.Redis()  # send() never uses it
    try:
        async with aiohttp.ClientSession() as http:
            client = Client(http, bap, ends, Printer(io.StringIO()), redis)
            with pytest.raises(DemoFailure) as failure:
                await client.send("select", "txn-1", {})
    finally:
        await server.close()
        await redis.aclose()
    assert ("BRIDGE_BECKN_REGISTRY_URL=http://127.0.0.1:7070" in str(failure.value)) is hint
