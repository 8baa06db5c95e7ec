"""CDRs module, eMSP receiver interface (OCPI 2.2.1 part "cdrs", §10.2.2).

    POST /cdrs                           store a new CDR; 201 + Location header
    GET  /cdrs/{cc}/{pid}/{cdr_id}       the URL handed out in Location

CDRs are immutable (§10.2.2: "CDRs cannot be changed"): a second POST with the
same id is refused (OCPI 2000, HTTP 200: the request reached the OCPI layer)
and the stored one stays. A credit
CDR (`credit: true`, `credit_reference_id`) is a CDR of its own with its own
id, stored beside the original.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import AlreadyExists, InvalidParameters, NotYourParty
from bridge.ocpi.models import CDR
from bridge.ocpi.objects import get_handler
from bridge.ocpi.transport import Principal, ocpi_response, read_json, validate
from bridge.store.ocpi_store import Outcome

log = structlog.get_logger("bridge.ocpi.cdrs")


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    base = f"{VERSION_PATH}/cdrs"

    async def post(request: web.Request) -> web.Response:
        cdr = validate(CDR, await read_json(request))
        principal: Principal = request["principal"]
        if not principal.owns(cdr.country_code, cdr.party_id):
            raise NotYourParty(f"party {cdr.country_code}-{cdr.party_id} does not belong to this token")
        if cdr.credit and not cdr.credit_reference_id:
            raise InvalidParameters("credit_reference_id: required when credit is true")
        outcome = await deps.store.put("cdrs", cdr, create_only=True)
        if outcome is Outcome.EXISTS:
            raise AlreadyExists(f"CDR {cdr.id} already exists; CDRs are immutable "
                                "(send a credit CDR to correct it)")
        url = f"{deps.module_url('cdrs')}/{cdr.country_code.upper()}/{cdr.party_id.upper()}/{cdr.id}"
        log.info("ocpi.cdr.stored", cdr_id=cdr.id, credit=bool(cdr.credit),
                 total_cost=str(cdr.total_cost.excl_vat))
        return ocpi_response(None, http_status=201, headers={"Location": url})

    return [
        web.post(base, post),
        web.get(f"{base}/{{cc}}/{{pid}}/{{oid}}", get_handler(deps.store, "cdrs", "CDR")),
    ]
