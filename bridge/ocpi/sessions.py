"""Sessions module, eMSP receiver interface (OCPI 2.2.1 part "sessions", §9.2.2).

    GET / PUT / PATCH  /sessions/{cc}/{pid}/{session_id}

A PATCH that carries `charging_periods` appends them to the stored list
(§9.2.2.3: "the charging periods are added"); every other field replaces.
"""

from __future__ import annotations

from aiohttp import web

from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.locations import answer_object, check_ids, patch_error, read_patch
from bridge.ocpi.models import Session
from bridge.ocpi.objects import get_handler, object_ids, put_handler
from bridge.store.ocpi_store import PatchInvalid


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    path = f"{VERSION_PATH}/sessions/{{cc}}/{{pid}}/{{oid}}"

    async def patch(request: web.Request) -> web.Response:
        cc, pid, oid = object_ids(request)
        body = await read_patch(request)
        check_ids(body, {"country_code": cc, "party_id": pid, "id": oid})
        try:
            outcome = await deps.store.patch("sessions", cc, pid, oid, body, Session,
                                             append=("charging_periods",))
        except PatchInvalid as exc:
            raise patch_error(exc, "session") from exc
        return answer_object(outcome, f"session {cc}/{pid}/{oid}")

    return [
        web.get(path, get_handler(deps.store, "sessions", "session")),
        web.put(path, put_handler(deps.store, "sessions", Session, "session")),
        web.patch(path, patch),
    ]
