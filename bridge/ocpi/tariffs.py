"""Tariffs module, eMSP receiver interface (OCPI 2.2.1 part "tariffs", §11.2.2).

    GET / PUT / DELETE  /tariffs/{cc}/{pid}/{tariff_id}

2.2.1 has no PATCH for tariffs: a change is a new PUT. A PUT older than the
stored `last_updated` is ignored.
"""

from __future__ import annotations

from aiohttp import web

from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import UnknownObject
from bridge.ocpi.models import Tariff
from bridge.ocpi.objects import get_handler, object_ids, put_handler
from bridge.ocpi.transport import ocpi_response


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    path = f"{VERSION_PATH}/tariffs/{{cc}}/{{pid}}/{{oid}}"

    async def delete(request: web.Request) -> web.Response:
        cc, pid, oid = object_ids(request)
        if not await deps.store.delete("tariffs", cc, pid, oid):
            raise UnknownObject(f"unknown tariff {cc}/{pid}/{oid}")
        return ocpi_response(None)

    return [
        web.get(path, get_handler(deps.store, "tariffs", "tariff")),
        web.put(path, put_handler(deps.store, "tariffs", Tariff, "tariff")),
        web.delete(path, delete),
    ]
