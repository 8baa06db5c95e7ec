"""Catalog publish in Beckn 2.0 LTS (`beckn.publish_profile = "lts"`): the same publisher
(bridge/beckn/catalog_publish.py: what, when, batches, retries, the published state),
its requests and the CDS's results in the LTS's words.

    POST {cds_url}/catalog/publish   LTS `CatalogPublishAction`: the camelCase context
                                     (action `catalog/publish`), `message.catalogs` of
                                     Resources and Offers (bridge/mapping/catalog_lts.py);
                                     a withdrawal is a catalog with `isActive: false`
                                     holding the withdrawn items' stubs
    the CDS's answer                 an LTS Ack: `status` NACK or an `error` is a refusal
    POST /catalog/on_publish         the CDS's `CatalogOnPublishAction` results
                                     (`{catalogId, status, errors[], stats}`), checked and
                                     stored as the draft's (bridge/beckn/on_catalog_publish.py),
                                     answered with a counter-signed Ack

Choices are in docs/protocol-notes.md ("The LTS profile": catalog publish).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bridge.beckn import signing
from bridge.beckn.errors import AuthError, InvalidJson
from bridge.beckn.lts import VERSION
from bridge.beckn.models import format_timestamp
from bridge.beckn.transport import BecknServices, authenticate, rate_limit, read_body, validate
from bridge.config import Settings
from bridge.mapping.catalog_lts import lts_catalog, lts_offer, lts_resource

ACTION = "catalog/publish"
ON_ACTIONS = ("on_catalog_publish", "catalog/on_publish")
WITHDRAWN = "withdrawn"  # the status code of a withdrawn item's Resource


def publish_context(settings: Settings, now: datetime, transaction_id: str,
                    message_id: str) -> dict[str, Any]:
    """The LTS context of a publish request: we are the publisher, named as the BPP (and,
    as in the draft's, as the one the results go back to: `bapId`/`bapUri`)."""
    uri = settings.lts_bpp_uri
    return {"action": ACTION, "version": VERSION, "bapId": settings.beckn_subscriber_id,
            "bapUri": uri, "bppId": settings.beckn_subscriber_id, "bppUri": uri,
            "transactionId": transaction_id, "messageId": message_id,
            "timestamp": format_timestamp(now), "ttl": "PT30S"}


def publish_body(context: dict[str, Any], header: dict[str, Any], entries: Sequence[Any],
                 active: bool) -> bytes:
    """The LTS publish request of one batch (`entries`: `catalog_publish.Entry`): one
    catalog, its items as Resources and their offers as Offers."""
    resources: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []
    places: list[dict[str, Any]] = []
    for e in entries:
        item = orjson.loads(e.item)
        resources.append(lts_resource(item, e.status or (WITHDRAWN if not active else "")))
        places.extend(item.get("beckn:availableAt") or [])
        if e.offer is not None:
            offers.append(lts_offer(orjson.loads(e.offer)))
    catalog = lts_catalog(header, resources, offers, places)
    if not active:
        catalog["isActive"] = False
    return orjson.dumps({"context": context, "message": {"catalogs": [catalog]}})


def answer_refusal(status: int, text: str) -> str:
    """Why the CDS's LTS Ack is a refusal ("" if it is an ACK)."""
    from bridge.beckn.onboarding import refusal

    try:
        answer = orjson.loads(text) if text.strip() else None
    except orjson.JSONDecodeError:
        answer = None
    why = refusal(status, answer, text)
    if why or not (isinstance(answer, dict) and answer.get("status") == "NACK"):
        return why
    return f"HTTP {status}: NACK"


# --- the CDS's results


class LtsResultError(BaseModel):
    model_config = ConfigDict(extra="allow")
    errorCode: str = ""
    errorMessage: str = ""


class LtsResult(BaseModel):
    """LTS `CatalogProcessingResult`."""

    model_config = ConfigDict(extra="allow")
    catalogId: str = Field(min_length=1)
    status: Literal["ACCEPTED", "REJECTED", "PARTIAL"]
    errors: list[LtsResultError] | None = None
    stats: dict[str, Any] | None = None


class LtsResultContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    action: Literal["on_catalog_publish", "catalog/on_publish"]
    transactionId: str = Field(min_length=1, max_length=200)
    messageId: str = ""


class LtsResultMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    results: list[LtsResult] = Field(min_length=1)


class LtsOnPublish(BaseModel):
    model_config = ConfigDict(extra="allow")
    context: LtsResultContext
    message: LtsResultMessage


async def receive(request: web.Request, services: BecknServices) -> web.Response:
    """`POST /catalog/on_publish`: verify, check, store as the draft's results are; a
    counter-signed Ack (refusals: the LTS middleware's NACKs)."""
    from bridge.beckn.lts_routes import ack_response
    from bridge.beckn.on_catalog_publish import CatalogResult, ResultError, results_of, store

    settings = services.settings
    header, _sub, key = await authenticate(request, services)
    if header is not None:
        expected = settings.beckn_cds_subscriber_id
        if expected and header.subscriber_id != expected:
            raise AuthError(f"catalog/on_publish must be signed by the CDS {expected}",
                            {"reason": "not_cds"})
    raw = await read_body(request, settings)
    request["beckn_raw"] = raw
    if header is not None:
        signing.verify(header, raw, key, time.time(), skew=settings.beckn_max_clock_skew)
        await rate_limit(services, header.subscriber_id)
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidJson()
    got = validate(LtsOnPublish, body)
    results = [CatalogResult(
        catalog_id=r.catalogId, status=r.status,
        item_count=(r.stats or {}).get("itemCount") if isinstance(
            (r.stats or {}).get("itemCount"), int) else None,
        error=ResultError(code=r.errors[0].errorCode, message=r.errors[0].errorMessage)
        if r.errors else None) for r in got.message.results]
    txn = got.context.transactionId
    sent = await results_of(services, txn, [r.catalog_id for r in results],
                            field="message.results.{i}.catalogId")
    signer = header.subscriber_id if header is not None else "adapter"
    for result in results:
        await store(services, txn, sent, result, signer)
    return ack_response(services, 200, "ACK", raw, got.context.messageId)
