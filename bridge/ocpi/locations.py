"""Locations module, eMSP receiver interface (OCPI 2.2.1 part "locations", §8.2.2).

    GET   /locations/{cc}/{pid}/{location_id}[/{evse_uid}[/{connector_id}]]
    PUT   same paths: upsert of the whole object
    PATCH same paths: partial update, must carry `last_updated`

A PUT/PATCH older than the stored `last_updated` is ignored and answered 1000
(the CPO re-sending old data is normal after an outage). A change to an EVSE
or Connector bumps its parents' `last_updated`. An EVSE with status REMOVED is
kept (it is how the CPO deletes one) and the catalog leaves it out. Unknown
objects answer 2003 "unknown location" with HTTP 404.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import InvalidParameters, UnknownLocation, UnknownObject
from bridge.ocpi.models import EVSE, Connector, Location
from bridge.ocpi.transport import (
    describe_validation_error,
    ocpi_response,
    read_json,
    require_party,
    validate,
)
from bridge.store.keys import norm_id
from bridge.store.ocpi_store import Outcome, PatchInvalid

log = structlog.get_logger("bridge.ocpi.locations")


def check_ids(body: dict[str, Any], expected: dict[str, str]) -> None:
    """Ids in the body, when present, must be those of the URL (§8.2.2.2)."""
    for field, value in expected.items():
        if field in body and (not isinstance(body[field], str)
                              or norm_id(body[field]) != norm_id(value)):
            raise InvalidParameters(f"{field}: {body[field]!r} does not match the URL ({value!r})")


async def read_patch(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidParameters("body: expected a JSON object")
    if "last_updated" not in body:
        raise InvalidParameters("last_updated: required in every PATCH")
    return body


def answer(outcome: Outcome, what: str) -> web.Response:
    if outcome is Outcome.MISSING:
        raise UnknownLocation(f"unknown {what}")
    return answer_object(outcome, what)


def answer_object(outcome: Outcome, what: str) -> web.Response:
    """1000 for a write (HTTP 201 when the object is new, as the status-code chapter
    says a server SHOULD), 1000 with a note for a stale one (§8.2.2: ignored)."""
    if outcome is Outcome.MISSING:
        raise UnknownObject(f"unknown {what}")
    if outcome is Outcome.STALE:
        log.info("ocpi.stale_ignored", object=what)
        return ocpi_response(None, status_message="Ignored: older than the stored last_updated")
    return ocpi_response(None, http_status=201 if outcome is Outcome.CREATED else 200)


def patch_error(exc: PatchInvalid, what: str) -> InvalidParameters:
    err = exc.error
    msg = describe_validation_error(err) if not isinstance(err, str) else err
    return InvalidParameters(f"PATCH would make the {what} invalid: {msg}")


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    store = deps.store
    base = f"{VERSION_PATH}/locations/{{cc}}/{{pid}}/{{lid}}"

    def ids(request: web.Request) -> tuple[str, str, str]:
        m = request.match_info
        require_party(request, m["cc"], m["pid"])
        return m["cc"].upper(), m["pid"].upper(), m["lid"]

    async def get_location(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        raw = await store.get_location_raw(cc, pid, lid)
        if raw is None:
            raise UnknownLocation(f"unknown location {cc}/{pid}/{lid}")
        return ocpi_response(raw_data=raw)

    async def put_location(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        body = await read_json(request)
        if isinstance(body, dict):
            check_ids(body, {"country_code": cc, "party_id": pid, "id": lid})
        loc = validate(Location, body)
        rc = await store.put_location(loc)
        outcome = {2: Outcome.CREATED, 1: Outcome.WRITTEN}.get(rc, Outcome.STALE)
        return answer(outcome, f"location {lid}")

    async def patch_location(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        patch = await read_patch(request)
        check_ids(patch, {"country_code": cc, "party_id": pid, "id": lid})
        try:
            outcome = await store.patch_location(cc, pid, lid, patch)
        except PatchInvalid as exc:
            raise patch_error(exc, "location") from exc
        return answer(outcome, f"location {cc}/{pid}/{lid}")

    async def get_evse(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        uid = request.match_info["uid"]
        stored = await store.get_evse(cc, pid, lid, uid)
        if stored is None:
            raise UnknownLocation(f"unknown EVSE {lid}/{uid}")
        return ocpi_response(raw_data=orjson.dumps(stored.data))

    async def put_evse(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        uid = request.match_info["uid"]
        body = await read_json(request)
        if isinstance(body, dict):
            check_ids(body, {"uid": uid})
        evse = validate(EVSE, body)
        return answer(await store.put_evse(cc, pid, lid, evse), f"location {lid}")

    async def patch_evse(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        uid = request.match_info["uid"]
        patch = await read_patch(request)
        check_ids(patch, {"uid": uid})
        try:
            outcome = await store.patch_evse(cc, pid, lid, uid, patch)
        except PatchInvalid as exc:
            raise patch_error(exc, "EVSE") from exc
        return answer(outcome, f"EVSE {lid}/{uid}")

    async def get_connector(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        uid, cid = request.match_info["uid"], request.match_info["cid"]
        stored = await store.get_evse(cc, pid, lid, uid)
        conn = None
        if stored is not None:
            conn = next((c for c in stored.data.get("connectors", [])
                         if norm_id(c["id"]) == norm_id(cid)), None)
        if conn is None:
            raise UnknownLocation(f"unknown connector {lid}/{uid}/{cid}")
        return ocpi_response(conn)

    async def put_connector(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        uid, cid = request.match_info["uid"], request.match_info["cid"]
        body = await read_json(request)
        if isinstance(body, dict):
            check_ids(body, {"id": cid})
        connector = validate(Connector, body)
        return answer(await store.put_connector(cc, pid, lid, uid, connector), f"EVSE {lid}/{uid}")

    async def patch_connector(request: web.Request) -> web.Response:
        cc, pid, lid = ids(request)
        uid, cid = request.match_info["uid"], request.match_info["cid"]
        patch = await read_patch(request)
        check_ids(patch, {"id": cid})
        try:
            outcome = await store.patch_connector(cc, pid, lid, uid, cid, patch)
        except PatchInvalid as exc:
            raise patch_error(exc, "connector") from exc
        return answer(outcome, f"connector {lid}/{uid}/{cid}")

    evse = f"{base}/{{uid}}"
    connector = f"{evse}/{{cid}}"
    return [
        web.get(base, get_location), web.put(base, put_location), web.patch(base, patch_location),
        web.get(evse, get_evse), web.put(evse, put_evse), web.patch(evse, patch_evse),
        web.get(connector, get_connector), web.put(connector, put_connector),
        web.patch(connector, patch_connector),
    ]
