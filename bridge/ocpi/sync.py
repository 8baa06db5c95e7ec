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

from collections.abc import Callable
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


# Called after each object of a list: (module, objects read so far, total announced by the
# CPO's X-Total-Count or None). The CLI draws its progress bar from it.
Progress = Callable[[str, int, int | None], None]


async def sync_connection(deps: OcpiDeps, conn: Connection, parties: list[tuple[str, str]],
                          module: str, now: datetime, full: bool = False,
                          progress: Progress | None = None) -> list[SyncReport]:
    """One pass over one SENDER list of one platform for the given parties of it.

    A platform that serves several parties lists all of them in one list (§4.1.5):
    it is read once and each object goes to its party's report. `date_from` is the
    oldest of the parties' last syncs, so nothing changed since any of them is missed."""
    reports = {(cc, pid): SyncReport(party=f"{cc}-{pid}", module=module) for cc, pid in parties}
    url = conn.endpoint(module, "SENDER")
    if url is None:
        for r in reports.values():
            r.errors.append(f"the CPO offers no {module} SENDER interface")
        return list(reports.values())
    model = SYNC_MODULES[module]
    marks = [] if full else await deps.store.redis.mget(
        [keys.sync_mark(cc, pid, module) for cc, pid in parties])
    params: dict[str, str] = {}
    if marks and all(marks):
        params["date_from"] = min(m.decode() for m in marks)  # RFC 3339 UTC sorts as text
    client = OcpiClient(deps.http(), conn.their_token, timeout=deps.settings.ocpi_request_timeout,
                        from_party=deps.own_party,
                        to_party=parties[0] if len(parties) == 1 else None)
    read = 0
    async for item, total in client.get_all_counted(url, params=params):
        read += 1
        if progress is not None:
            progress(module, read, total)
        owner = (str(item.get("country_code", "")).upper(),
                 str(item.get("party_id", "")).upper()) if isinstance(item, dict) else None
        report = reports.get(owner) if owner else None
        if report is None:
            continue  # another party of the platform, not asked for this time
        report.fetched += 1
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
    stamp = format_datetime(now)
    await deps.store.redis.mset({keys.sync_mark(cc, pid, module): stamp for cc, pid in parties})
    for r in reports.values():
        log.info("ocpi.sync.done", party=r.party, module=module, fetched=r.fetched,
                 written=r.written, unchanged=r.unchanged, invalid=r.invalid)
    return list(reports.values())


async def sync(deps: OcpiDeps, now: datetime, party: tuple[str, str] | None = None,
               modules: tuple[str, ...] = tuple(SYNC_MODULES), full: bool = False,
               progress: Progress | None = None,
               skip: frozenset[tuple[str, str]] = frozenset()) -> list[SyncReport]:
    """Sync every registered platform (or the one serving `party`), each list once."""
    reports = []
    for conn in await deps.creds.connections():
        parties = sorted(p for p in conn.parties
                         if (party is None or p == party) and p not in skip)
        if not parties:
            continue
        for module in modules:
            reports.extend(await sync_connection(deps, conn, parties, module, now, full, progress))
    return reports
