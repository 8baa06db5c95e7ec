"""An order's Session and CDR found without waiting for the CPO's push (issue 12, 8).

The CPO pushes (OCPI receiver interfaces) and the journey follows the change
stream. A push can be lost: the CPO gives up after its retries while `bridge
serve` is down, or Redis restarts after acknowledging it. Then an order would
never go ACTIVE, never be stopped at its target and never be settled. So:

- `find_session` / `find_cdr` look for the order's Session / CDR by the order's
  token uid or authorization reference (the order id, which every START_SESSION
  and real-time authorization carries): first in the store (pushed, perhaps not
  yet handled), then, with `pull=True`, at the CPO's SENDER interface
  (`GET {sessions|cdrs}?date_from=...`, OCPI 2.2.1 mod_sessions §9.2.1 /
  mod_cdrs §10.2.1). What a pull finds is written to the store exactly as a push
  is (newer wins; a CDR once), so the change stream drives the order as usual.
- `reconcile_order` does both for one order whose push is overdue (the arq job
  `journey_reconcile`), and `reconcile_once` (the worker's watchdog, every
  `journey.watchdog_every` s) queues it for every order in flight
  (`obb:order:inflight`: from START requested, or a Session seen, until the order
  ends) whose last push is older than `journey.reconcile_after` s.

Pulls are bounded: one paginated GET per module per order per
`reconcile_after`, from a little before the order's start request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from bridge.journey.common import JourneyDeps
from bridge.ocpi.client import OcpiClient
from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import CDR, Session, format_datetime
from bridge.orders import TERMINAL, State
from bridge.store import keys, shards
from bridge.store.ocpi_store import Outcome
from bridge.store.orders import Order, inflight_key, inflight_keys

log = structlog.get_logger("bridge.journey.reconcile")

SCAN_LIMIT = 2000  # stored objects of a party looked at per lookup (newest first)
MAX_PAGES = 20  # pages of a CPO sender list read per pull
MARGIN = timedelta(minutes=5)  # start the pull this long before the order's start request


def belongs(data: dict[str, Any], order: Order) -> bool:
    """Whether an OCPI Session / CDR (as JSON) is this order's: our authorization
    reference (the order id) or the order's token."""
    if order.item is None:
        return False
    if (str(data.get("country_code", "")).upper(), str(data.get("party_id", "")).upper()) != (
            order.item.cc.upper(), order.item.pid.upper()):
        return False
    if data.get("authorization_reference") and data["authorization_reference"] == order.id:
        return True
    token = data.get("cdr_token") or {}
    uid = str(token.get("uid") or "").lower()
    return bool(order.token_uid and uid == order.token_uid.lower())


def since_of(order: Order) -> datetime:
    """From when the order's Session or CDR can have been changed at the CPO."""
    requested = order.commands.get("start_requested")
    at = datetime.fromisoformat(requested) if requested else order.updated
    return at - MARGIN


async def _stored(deps: JourneyDeps, module: str, order: Order, since: datetime
                  ) -> list[dict[str, Any]]:
    assert order.item is not None
    redis = deps.redis
    ids = [oid for shard in shards.current().shards
           for oid in await redis.zrevrangebyscore(
               keys.party_index(module, order.item.cc, order.item.pid, shard),
               "+inf", int(since.timestamp() * 1000), start=0, num=SCAN_LIMIT)]
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for oid in ids:
            pipe.hget(keys.obj(module, order.item.cc, order.item.pid, oid.decode()), "d")
        raws = await pipe.execute()
    out = []
    for raw in raws:
        if raw:
            data = orjson.loads(raw)
            if belongs(data, order):
                out.append(data)
    return out


async def pull(deps: JourneyDeps, module: str, order: Order, since: datetime) -> list[Any]:
    """GET the CPO's `module` SENDER list from `since`; store and return this order's
    objects. Raises OcpiClientError when the CPO cannot be reached."""
    assert order.item is not None
    cc, pid = order.item.cc, order.item.pid
    conn = await deps.ocpi.creds.connection_for_party(cc, pid)
    url = conn.endpoint(module, "SENDER") if conn else None
    if conn is None or url is None:
        return []
    client = OcpiClient(deps.ocpi.http(), conn.their_token,
                        timeout=deps.settings.ocpi_request_timeout,
                        from_party=deps.ocpi.own_party, to_party=(cc, pid))
    model = Session if module == "sessions" else CDR
    found: list[Any] = []
    async for item in client.get_all(url, params={"date_from": format_datetime(since)},
                                     max_pages=MAX_PAGES):
        if not isinstance(item, dict) or not belongs(item, order):
            continue
        try:
            obj: Any = model.model_validate(item)
        except ValidationError as exc:
            log.warning("journey.pull_invalid", module=module, id=item.get("id"), error=str(exc))
            continue
        # A Session as the CPO has it now wins over ours unless ours is newer: with the
        # same last_updated ours may be PATCHes merged onto a PUT we never got.
        outcome = await deps.ocpi.store.put(module, obj, create_only=module == "cdrs")
        if outcome is Outcome.WRITTEN:
            log.info("journey.pulled", module=module, id=obj.id, order=order.id)
        found.append(obj)
    return found


async def find_session(deps: JourneyDeps, order: Order, *, pull_too: bool) -> Session | None:
    """The order's Session: linked, stored, or (`pull_too`) at the CPO. The newest wins."""
    if order.item is None:
        return None
    since = since_of(order)
    candidates = [Session.model_validate(d) for d in await _stored(deps, "sessions", order, since)]
    if not candidates and pull_too:
        candidates = await pull(deps, "sessions", order, since)
    return max(candidates, key=lambda s: s.last_updated) if candidates else None


async def find_cdr(deps: JourneyDeps, order: Order, *, pull_too: bool) -> CDR | None:
    if order.item is None:
        return None
    since = since_of(order)
    candidates = [CDR.model_validate(d) for d in await _stored(deps, "cdrs", order, since)]
    if not candidates and pull_too:
        candidates = await pull(deps, "cdrs", order, since)
    return candidates[0] if candidates else None


# --------------------------------------------------------------------------- reconciliation


def overdue(order: Order, now: datetime, after: float) -> bool:
    """Whether the CPO's next push for this order is late, or the one that matters is:
    an order still waiting to go ACTIVE `after` s after its start request. Its Session's
    PUT ACTIVE may have been lost (serve down while the CPO retried) while the meter
    PATCHes that follow, which carry no status, keep arriving: pushes are not late, but
    the stored Session stays PENDING and the order is never promoted nor stopped."""
    late = timedelta(seconds=after)
    requested = order.commands.get("start_requested")
    if requested and order.state in (State.CONFIRMED, State.RESERVED) and (
            now - datetime.fromisoformat(requested) >= late):
        return True
    last = order.session.get("seen") or requested
    if not last:
        return False
    return now - datetime.fromisoformat(last) >= late


async def reconcile_order(deps: JourneyDeps, order: Order, now: datetime) -> str:
    """Pull the order's Session (and, once it has ended, its CDR) and let the usual
    handlers act on them: promote, stop at target, settle."""
    from bridge.journey.events import on_session
    from bridge.journey.queue import enqueue

    if order.item is None:
        return "no item"
    cc, pid = order.item.cc, order.item.pid
    try:
        since = since_of(order)
        sessions = await pull(deps, "sessions", order, since)
        ended = any(s.status.value in ("COMPLETED", "INVALID") for s in sessions) or (
            order.session.get("status") in ("COMPLETED", "INVALID"))
        cdrs = await pull(deps, "cdrs", order, since) if ended or not sessions else []
    except OcpiClientError as exc:
        log.info("journey.reconcile_unreachable", order=order.id, error=str(exc))
        return "CPO unreachable"
    for s in sorted(sessions, key=lambda s: s.last_updated)[-1:]:
        await on_session(deps, cc, pid, s.id, now)
    for cdr in cdrs:
        await enqueue(deps.redis, "journey_settle", cc, pid, cdr.id,
                      job_id=f"settle:{cc}:{pid}:{cdr.id}".lower())
    return f"pulled {len(sessions)} session(s), {len(cdrs)} CDR(s)"


async def reconcile_once(deps: JourneyDeps, now: datetime) -> list[str]:
    """Queue a pull (`journey_reconcile`) for every in-flight order whose push is overdue;
    drop the orders that have ended. Returns the transaction ids queued."""
    from bridge.journey.queue import enqueue

    after = deps.settings.journey_reconcile_after
    due = [txn for key in inflight_keys()
           for txn in await deps.redis.zrangebyscore(key, "-inf", int(now.timestamp() * 1000),
                                                     start=0, num=500)]
    out = []
    for raw in due:
        txn = raw.decode()
        order = await deps.orders.get(txn)
        if order is None or (order.state in TERMINAL and order.settlement is not None):
            await deps.redis.zrem(inflight_key(txn), txn)
            continue
        if overdue(order, now, after):
            bucket = int(now.timestamp() / after)
            await enqueue(deps.redis, "journey_reconcile", txn, job_id=f"reconcile:{txn}:{bucket}")
            out.append(txn)
        last = order.session.get("seen") or order.commands.get("start_requested") or now.isoformat()
        nxt = max(datetime.fromisoformat(last), now) + timedelta(seconds=after)
        # XX: only while it is still in flight; the step that ended it meanwhile took it
        # out, and an unconditional ZADD put a finished order back
        await deps.redis.zadd(inflight_key(txn), {txn: int(nxt.timestamp() * 1000)}, xx=True)
    return out


async def journey_reconcile(ctx: dict[str, Any], txn: str) -> str:
    """arq job: pull one order's Session and CDR from its CPO (see `reconcile_order`)."""
    from bridge.journey.actions import journey, now_utc

    deps = journey(ctx)
    order = await deps.orders.get(txn)
    if order is None or (order.state in TERMINAL and order.settlement is not None):
        return "ended"
    return await reconcile_order(deps, order, now_utc())


__all__ = ["State", "find_cdr", "find_session", "journey_reconcile", "pull", "reconcile_once",
           "reconcile_order"]
