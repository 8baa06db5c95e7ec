"""Pull from a CPO's SENDER interfaces to fill the store (after start-up or an outage).

`GET {sender}?date_from=...` with pagination (§4.1.3, `Link` followed by the
client); each object is validated and written exactly as a push would be, so
an older object never overwrites a newer push. The next sync starts from the
time the previous successful one started (objects changed during a sync are
fetched again, never missed). An object whose `last_updated` equals the stored
one is left alone (no write, no change event): a sync after a short outage
re-reads mostly what we already have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from bridge.ocpi.client import OcpiClient
from bridge.ocpi.deps import OcpiDeps
from bridge.ocpi.models import CDR, WIRE, Location, Session, Tariff, format_datetime
from bridge.ocpi.transport import describe_validation_error
from bridge.store import keys
from bridge.store.credentials import Connection
from bridge.store.ocpi_store import Outcome

log = structlog.get_logger("bridge.ocpi.sync")

SYNC_MODULES: dict[str, type[BaseModel]] = {
    "locations": Location, "tariffs": Tariff, "sessions": Session, "cdrs": CDR,
}


@dataclass
class SyncReport:
    party: str
    module: str
    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)


async def sync_party(deps: OcpiDeps, conn: Connection, cc: str, pid: str, module: str,
                     now: datetime, full: bool = False) -> SyncReport:
    report = SyncReport(party=f"{cc}-{pid}", module=module)
    url = conn.endpoint(module, "SENDER")
    if url is None:
        report.errors.append(f"the CPO offers no {module} SENDER interface")
        return report
    model = SYNC_MODULES[module]
    mark_key = keys.sync_mark(cc, pid, module)
    params: dict[str, str] = {}
    last = None if full else await deps.store.redis.get(mark_key)
    if last:
        params["date_from"] = last.decode()
    client = OcpiClient(deps.http(), conn.their_token, timeout=deps.settings.ocpi_request_timeout,
                        from_party=deps.own_party, to_party=(cc, pid))
    async for item in client.get_all(url, params=params):
        report.fetched += 1
        if not isinstance(item, dict) or (str(item.get("country_code", "")).upper(),
                                          str(item.get("party_id", "")).upper()) != (cc, pid):
            continue  # a platform serving several parties lists all of them
        try:
            obj: Any = model.model_validate(item, context=WIRE)
        except ValidationError as exc:
            report.invalid += 1
            report.errors.append(f"{item.get('id')}: {describe_validation_error(exc)}")
            continue
        if module == "locations":
            rc = await deps.store.put_location(obj, pre="newer")
            outcome = Outcome.WRITTEN if rc >= 1 else Outcome.STALE
        else:
            outcome = await deps.store.put(module, obj, create_only=module == "cdrs",
                                           only_newer=True)
        if outcome in (Outcome.WRITTEN, Outcome.CREATED):
            report.written += 1
        else:
            report.unchanged += 1
    await deps.store.redis.set(mark_key, format_datetime(now))
    log.info("ocpi.sync.done", party=report.party, module=module, fetched=report.fetched,
             written=report.written, unchanged=report.unchanged, invalid=report.invalid)
    return report


async def sync(deps: OcpiDeps, now: datetime, party: tuple[str, str] | None = None,
               modules: tuple[str, ...] = tuple(SYNC_MODULES), full: bool = False
               ) -> list[SyncReport]:
    reports = []
    for conn in await deps.creds.connections():
        for cc, pid in sorted(conn.parties):
            if party and (cc, pid) != party:
                continue
            for module in modules:
                reports.append(await sync_party(deps, conn, cc, pid, module, now, full))
    return reports
