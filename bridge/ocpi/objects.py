"""Shared handlers for the receivers of whole objects keyed {cc}/{pid}/{id}:
tariffs (§11.2.2), sessions (§9.2.2) and the GET of CDRs (§10.2.2)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bridge.ocpi.errors import UnknownObject
from bridge.ocpi.locations import answer_object, check_ids
from bridge.ocpi.transport import ocpi_response, read_json, require_party, validate
from bridge.store.ocpi_store import OcpiStore


def object_ids(request: web.Request) -> tuple[str, str, str]:
    m = request.match_info
    require_party(request, m["cc"], m["pid"])
    return m["cc"].upper(), m["pid"].upper(), m["oid"]


def get_handler(store: OcpiStore, module: str, what: str) -> Any:
    async def get(request: web.Request) -> web.Response:
        cc, pid, oid = object_ids(request)
        raw = await store.get_raw(module, cc, pid, oid)
        if raw is None:
            raise UnknownObject(f"unknown {what} {cc}/{pid}/{oid}")
        return ocpi_response(raw_data=raw)

    return get


def put_handler(store: OcpiStore, module: str, model: type[BaseModel], what: str) -> Any:
    async def put(request: web.Request) -> web.Response:
        cc, pid, oid = object_ids(request)
        body = await read_json(request)
        if isinstance(body, dict):
            check_ids(body, {"country_code": cc, "party_id": pid, "id": oid})
        obj = validate(model, body)
        return answer_object(await store.put(module, obj), f"{what} {oid}")

    return put
