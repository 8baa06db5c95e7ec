"""`on_catalog_publish`: the CDS's per-catalog results of our publishes.

Beckn 2.0 core rc2, `api/beckn.yaml`, `POST /beckn/catalog/on_publish`: a
`CatalogPublishResponse` (`{context, message: {results: [CatalogProcessingResult]}}`,
context action `on_catalog_publish`, the transaction id of our publish request) answered
with an AckResponse. Served at `/beckn/catalog/on_publish` and, for CDS clients that
post to `{bpp_uri}/{action}`, `/beckn/on_catalog_publish`.

Checked like any Beckn request, before anything is stored: the signature (the signer's
key from the registry or `static_keys`; only `beckn.cds_subscriber_id` when set), or the
adapter's address behind an adapter; the body size and time limits; then the shape, and
that the transaction is one of our publishes and each `catalog_id` one we sent in it.
Each result is stored on its catalog (`bridge catalog status`) and logged. A REJECTED
or PARTIAL catalog's locations go to the CPO's `rejected` set and their published state
is dropped, so they are sent again with the CPO's next change or the next full publish
(bridge/beckn/catalog_publish.py), not in a loop.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bridge import redisconn
from bridge.beckn import signing
from bridge.beckn.errors import AuthError, InvalidJson, SchemaError
from bridge.beckn.transport import BecknServices, authenticate, rate_limit, read_body, validate
from bridge.store import beckn_keys as bk

log = structlog.get_logger("bridge.beckn.publish")

ACTION = "on_catalog_publish"
PATHS = ("/beckn/catalog/on_publish", "/beckn/on_catalog_publish")


class Notice(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class ResultError(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class CatalogResult(BaseModel):
    """rc2 `CatalogProcessingResult`."""

    model_config = ConfigDict(extra="allow")
    catalog_id: str = Field(min_length=1)
    status: Literal["ACCEPTED", "REJECTED", "PARTIAL"]
    item_count: int | None = Field(default=None, ge=0)
    warnings: list[Notice] | None = None
    error: ResultError | None = None


class ResultContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    action: Literal["on_catalog_publish"]
    transaction_id: str = Field(min_length=1, max_length=200)
    message_id: str | None = None


class ResultMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    results: list[CatalogResult] = Field(min_length=1)


class CatalogPublishResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    context: ResultContext
    message: ResultMessage


async def receive(request: web.Request, services: BecknServices) -> web.Response:
    """Verify, check, store; the ACK (refusals are NACKs from the middleware)."""
    from bridge.beckn.transport import _ack_ok

    settings = services.settings
    header, _sub, key = await authenticate(request, services)
    if header is not None:
        expected = settings.beckn_cds_subscriber_id
        if expected and header.subscriber_id != expected:
            raise AuthError(f"on_catalog_publish must be signed by the CDS {expected}",
                            {"reason": "not_cds"})
    raw = await read_body(request, settings)
    if header is not None:
        signing.verify(header, raw, key, time.time(), skew=settings.beckn_max_clock_skew)
        await rate_limit(services, header.subscriber_id)
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidJson()
    if isinstance(body.get("context"), dict):
        request["beckn_txn"] = str(body["context"].get("transaction_id", ""))
    resp = validate(CatalogPublishResponse, body)
    txn = resp.context.transaction_id
    sent = await results_of(services, txn, [r.catalog_id for r in resp.message.results])
    signer = header.subscriber_id if header is not None else "adapter"
    for result in resp.message.results:
        await store(services, txn, sent, result, signer)
    return _ack_ok(txn)


async def results_of(services: BecknServices, txn: str, catalog_ids: list[str],
                     field: str = "message.results.{i}.catalog_id") -> dict[str, str]:
    """The record of our publish request `txn`, the one these results are about (each
    catalog one it carried); SchemaError otherwise. (The LTS's results use it too:
    bridge/beckn/catalog_publish_lts.py.)"""
    sent = {k.decode(): v.decode()
            for k, v in (await services.redis.hgetall(bk.pub_request(txn))).items()}
    if not sent:
        raise SchemaError(f"transaction {txn} is not a catalog publish of ours (or its "
                          "record has expired)", {"field": "context.transaction_id"})
    for i, catalog_id in enumerate(catalog_ids):
        if catalog_id != sent["catalog"]:
            raise SchemaError(f"catalog {catalog_id!r} was not published in "
                              f"transaction {txn} (it carried {sent['catalog']})",
                              {"field": field.format(i=i)})
    return sent


async def store(services: BecknServices, txn: str, sent: dict[str, str],
                result: CatalogResult, signer: str) -> None:
    redis = services.redis
    prov = sent["provider"]
    now = repr(time.time())
    error = f"{result.error.code} {result.error.message}" if result.error else ""
    warnings = [w.model_dump(mode="json") for w in result.warnings or []]
    async with redisconn.transaction(redis, bk.pub_catalog(result.catalog_id)) as pipe:
        pipe.hset(bk.pub_catalog(result.catalog_id), mapping={
            "result": result.status, "result_at": now, "result_txn": txn,
            "item_count": "" if result.item_count is None else str(result.item_count),
            "warnings": orjson.dumps(warnings).decode(), "result_error": error,
            "cds": signer})
        pipe.hset(bk.pub_request(txn), mapping={"result": result.status, "result_at": now})
        if result.status != "ACCEPTED":
            refs = orjson.loads(sent.get("refs", "[]"))
            items = orjson.loads(sent.get("items", "[]"))
            if refs:
                pipe.sadd(bk.pub_rejected(prov), *refs)
            # not what the CDS has: dropped, so the next publish of these sends them again
            by_ref: dict[str, list[str]] = {}
            for ref, iid in items:
                by_ref.setdefault(ref, []).append(iid)
            if sent.get("kind") == "publish":
                for ref, ids in by_ref.items():
                    pipe.hdel(bk.pub_loc(ref), *ids)
        await pipe.execute()
    if result.status == "ACCEPTED":
        log.info("catalog.publish.result", catalog=result.catalog_id, status=result.status,
                 item_count=result.item_count, warnings=len(warnings), transaction_id=txn)
    else:
        log.warning("catalog.publish.result", catalog=result.catalog_id, status=result.status,
                    item_count=result.item_count, error=error, warnings=len(warnings),
                    transaction_id=txn)


def add_routes(app: web.Application, services: BecknServices) -> None:
    async def post(request: web.Request) -> web.Response:
        return await receive(request, services)

    for path in PATHS:  # before /beckn/{action}
        app.router.add_post(path, post)
