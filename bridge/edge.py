"""The HTTP edge of `bridge serve`: what happens before a request reaches the app.

aiohttp parses the request line and headers itself. Two things it does are
wrong for an OCPI/Beckn server on the internet, and are changed here:

- A request line or header too long (a 100 KB query string, a 100 KB header) or
  otherwise unparseable is answered by aiohttp with a plain-text 400. Here it is
  answered in the protocol's own shape, told from the first bytes of the
  request: the OCPI envelope (status 2000) under `/ocpi`, a Beckn NACK (30000)
  under `/beckn`, the LTS's NACK `{status, signature, error}` on the LTS paths
  (counter-signed like every LTS Ack, its schema requires it; nothing of the request
  was read, so it binds an empty body and no message id); aiohttp's own answer
  elsewhere.
- A client may take as long as it likes to send its headers (slowloris: 4,000
  connections held open for 60 s). Here a connection that has not delivered a
  complete request head within `server.header_timeout` seconds is closed. (The
  body's own time limit is the protocols' business: Beckn `body_timeout`.)

`EdgeRunner` is `web.AppRunner` with this request handler; the app is unchanged
and the tests' in-process servers do without it (the edge is tested on a real
`bridge serve` process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web, web_protocol, web_server
from aiohttp.web_request import BaseRequest

log = structlog.get_logger("bridge.edge")

PEEK = 64  # bytes of a connection's first request kept to tell the protocol

# The `signature` of an LTS Ack answering a request of which nothing was read (or None
# when the bridge has no key of its own: behind an adapter)
CounterSign = Callable[[dict[str, Any]], str | None]


def error_body(first: bytes, status: int, reason: str,
               counter: CounterSign | None = None) -> bytes | None:
    """The protocol-shaped answer to an HTTP request aiohttp could not parse; None for
    neither protocol. Pure: `first` is the start of the raw request; `counter` signs
    the LTS's NACK."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    line = first.split(b"\r\n", 1)[0]
    target = line.split(b" ", 2)[1] if line.count(b" ") >= 1 else b""
    message = f"the HTTP request could not be read: {reason}"
    if target.startswith(b"/ocpi"):
        return orjson.dumps({"status_code": 2000, "status_message": message, "timestamp": stamp})
    if target.startswith(b"/beckn"):
        return orjson.dumps({"transaction_id": "", "timestamp": stamp, "ack_status": "NACK",
                             "error": {"code": "30000", "message": message}})
    path = target.split(b"?", 1)[0].decode("latin-1")
    from bridge.beckn.lts_routes import is_lts_path

    if is_lts_path(path):  # the LTS's NACK
        ack: dict[str, Any] = {"status": "NACK", "error": {"errorCode": "30000",
                                                           "errorMessage": message}}
        signature = counter(ack) if counter is not None else None
        if signature:
            ack["signature"] = signature
        return orjson.dumps(ack)
    return None


class EdgeHandler(web_protocol.RequestHandler):
    header_timeout = 10.0
    counter: CounterSign | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._edge_first = b""
        self._edge_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self.header_timeout, self._edge_too_slow)

    def data_received(self, data: bytes) -> None:
        if len(self._edge_first) < PEEK:
            self._edge_first += data[:PEEK - len(self._edge_first)]
        super().data_received(data)
        if self._edge_timer is not None and self._request_count:
            self._edge_timer.cancel()  # a whole request head has arrived
            self._edge_timer = None

    def _edge_too_slow(self) -> None:
        self._edge_timer = None
        if not self._request_count and self.transport is not None:
            log.warning("http.headers_too_slow", timeout=self.header_timeout)
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._edge_timer is not None:
            self._edge_timer.cancel()
            self._edge_timer = None
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        body = (error_body(self._edge_first, status, message or "malformed", self.counter)
                if status < 500 else None)
        if body is None:
            return super().handle_error(request, status, exc, message)
        log.info("http.unreadable_request", status=status, reason=(message or "")[:200])
        resp = web.Response(status=status, body=body, content_type="application/json")
        resp.force_close()
        return resp


class EdgeServer(web_server.Server):
    header_timeout = 10.0
    counter: CounterSign | None = None

    def __call__(self) -> web_protocol.RequestHandler:
        handler = EdgeHandler(self, loop=self._loop, **self._kwargs)
        handler.header_timeout = self.header_timeout
        handler.counter = self.counter
        return handler


class EdgeRunner(web.AppRunner):
    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web_server.Server:
        server = await super()._make_server()
        server.__class__ = EdgeServer  # the same object, our request handler
        assert isinstance(server, EdgeServer)
        server.header_timeout = self._header_timeout
        from bridge.beckn.lts_routes import edge_counter

        server.counter = edge_counter(self.app)
        return server
