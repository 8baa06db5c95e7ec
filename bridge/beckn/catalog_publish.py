"""`catalog_publish`: the catalog, pushed to the network's Catalog Discovery Service (CDS).

Beckn 2.0 core rc2, `api/beckn.yaml`, tag "Catalog Publish": `POST /beckn/catalog/publish`
with a `CatalogPublishRequest` (`{context, message: {catalogs: [Catalog, ...]}}`, context
action `catalog_publish`) is answered with an ACK; the per-catalog results come later to
`/beckn/catalog/on_publish` (`bridge/beckn/on_catalog_publish.py`). How the bridge fills
what rc2 leaves open is in docs/protocol-notes.md, "Catalog publish".

What goes out: per CPO one catalog, `catalog:{CC-PID}` with the header discover writes,
carrying its items and offers exactly as discover renders them in the rc2 profile (read
from the pre-rendered catalog, `bridge/store/catalog.py`; an item whose connector the EV
pack cannot name is left out there too). A withdrawn item (its EVSE removed, its location
unpublished or gone) is sent again as a stub with `beckn:isActive: false` in a catalog of
its own whose `beckn:isActive` is false: rc2 has no withdraw verb, and an item that is
merely out of order is itself `isActive: false` in an active catalog.

When:
- full (every item of the CPO, and a withdrawal of every item published before that is
  gone): `bridge catalog publish [--cpo]`, the worker's start when `beckn.cds_url` is set,
  and after a change-stream gap (the catalog consumer rebuilt: `request_full`);
- incremental: every catalog render marks its location dirty for its CPO, in the render's
  own MULTI (`CatalogStore(publish_delay=...)`); a CPO is due `beckn.publish_delay` s
  after its first unpublished change (a burst of status PATCHes makes one publish, and no
  change waits longer than the delay); then only the items whose JSON changed since they
  were last published (a digest per item) and the withdrawals.

Batches: at most `publish_batch_items` items and `publish_batch_bytes` bytes of body per
request (an item larger than that goes alone). Each request is signed (the key ring's key
of the moment; behind an adapter the key the bridge is given, as for tracking PATCHes)
and retried on a network error, a 5xx or a 429 (`publish_retries` tries, backoff doubled
from `publish_backoff`, Retry-After honoured); after that the CPO's changes go back to
dirty and are tried again later (backoff per CPO up to `publish_max_backoff`). A NACK
(another 4xx, or an error in the answer) is not retried, nor is a REJECTED result: the
locations go to the CPO's `rejected` set and are sent again with its next change (the CPO
fixing its data) or the next full publish, never in a loop.

Several workers share the work: a CPO is claimed with a lease (its dirty locations move to
an in-flight set in the same script); the changes of a worker killed mid-publish go back
to dirty when its lease expires (`recover`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
import structlog

from bridge import redisconn
from bridge.beckn.models import format_timestamp
from bridge.beckn.signing import BodySigner
from bridge.config import Settings
from bridge.mapping.catalog import (
    CTX_ITEM,
    CTX_SERVICE,
    PACK_CONNECTOR_TYPES,
    ROW_CT,
    ROW_ITEM,
    ROW_KW,
    ROW_STATUS,
    catalog_header,
)
from bridge.store import beckn_keys as bk
from bridge.store.catalog import CatalogStore

log = structlog.get_logger("bridge.beckn.publish")

ACTION = "catalog_publish"
PATH = "/catalog/publish"  # appended to beckn.cds_url (the CDS's /beckn base)
REQUEST_TTL = 7 * 86400  # how long a publish request's record waits for its result
LEASE_MS = 60_000  # a CPO's claim; renewed with every request
POLL = 0.25  # seconds between looks at the due list when nothing is due sooner
CHUNK = 64  # locations read per round trip
PARALLEL = 4  # CPOs published at once by one worker


class PublishError(Exception):
    """A publish that did not get through; the message is one line (CLI, logs)."""

    provider = ""  # the CPO whose publish it was, when there is one


class CdsUnavailable(PublishError):
    """Network error, timeout, 5xx or 429 after every retry: tried again later."""


class CdsRefused(PublishError):
    """A NACK (4xx, an `error`): not retried until something changes."""


# --- the wire (pure)


def item_digest(item: bytes, offer: bytes | None) -> str:
    """What the published-state hash remembers of an item: a digest of its JSON and its
    offer's (8 bytes of BLAKE2b: a change is noticed, the state stays small)."""
    h = hashlib.blake2b(item, digest_size=8)
    h.update(b"\0")
    h.update(offer or b"")
    return h.hexdigest()


def stamp(digest: str, connector_type: str, kw: float) -> str:
    """The published-state value of an item: its digest and what a withdrawal stub needs
    (the pack's two required fields)."""
    return f"{digest}\t{connector_type}\t{kw:g}"


def parse_stamp(value: str) -> tuple[str, str, float]:
    parts = value.split("\t")
    digest = parts[0]
    ct = parts[1] if len(parts) > 1 else ""
    try:
        power = float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError:
        power = 0.0
    return digest, ct, power


def withdrawal_item(item_id: str, provider: dict[str, Any], connector_type: str,
                    kw: float) -> dict[str, Any]:
    """An rc2-valid stub of a withdrawn item: its id, `beckn:isActive: false`, and the
    pack's required fields as they were published."""
    return {"@context": CTX_ITEM, "@type": "beckn:Item", "beckn:id": item_id,
            "beckn:descriptor": {"@type": "beckn:Descriptor", "schema:name": "withdrawn",
                                 "beckn:shortDesc": "no longer offered"},
            "beckn:isActive": False,
            "beckn:provider": provider,
            "beckn:itemAttributes": {"@context": CTX_SERVICE, "@type": "ChargingService",
                                     "connectorType": connector_type, "maxPowerKW": kw}}


@dataclass(frozen=True)
class Entry:
    """One item to send: its location, id, JSON, offer JSON and published-state value."""

    ref: str
    item_id: str
    item: bytes
    offer: bytes | None
    stamp: str
    status: str = ""  # the EVSE's status (facet; the LTS's Resource says it)

    @property
    def size(self) -> int:
        return len(self.item) + (len(self.offer) + 1 if self.offer else 0) + 1


def split(entries: Sequence[Entry], max_items: int, max_bytes: int, overhead: int = 0
          ) -> list[list[Entry]]:
    """Batches of at most `max_items` entries and `max_bytes` bytes of body (the envelope,
    `overhead`, included); an entry too large on its own goes alone."""
    out: list[list[Entry]] = []
    batch: list[Entry] = []
    size = overhead
    for e in entries:
        if batch and (len(batch) >= max_items or size + e.size > max_bytes):
            out.append(batch)
            batch, size = [], overhead
        batch.append(e)
        size += e.size
    if batch:
        out.append(batch)
    return out


def publish_context(settings: Settings, now: datetime, transaction_id: str,
                    message_id: str) -> dict[str, Any]:
    """The request's context. rc2's example names the publisher as `bap_id` / `bap_uri`
    ("where /on_catalog_publish is exposed"); CDS clients of the EV networks name it as
    `bpp_id` / `bpp_uri`: both are set, to our id and our bpp_uri."""
    uri = settings.bpp_uri
    return {"domain": settings.beckn_domain, "action": ACTION,
            "version": settings.beckn_version, "bap_id": settings.beckn_subscriber_id,
            "bap_uri": uri, "bpp_id": settings.beckn_subscriber_id, "bpp_uri": uri,
            "transaction_id": transaction_id, "message_id": message_id,
            "timestamp": format_timestamp(now), "ttl": "PT30S"}


def publish_body(context: dict[str, Any], header: dict[str, Any], entries: Sequence[Entry],
                 active: bool) -> bytes:
    """The CatalogPublishRequest of one batch: one catalog, its items and offers as
    pre-serialised JSON (never decoded and written again)."""
    catalog = dict(header)
    if not active:
        catalog["beckn:isActive"] = False
    catalog["beckn:items"] = [orjson.Fragment(e.item) for e in entries]
    offers = [orjson.Fragment(e.offer) for e in entries if e.offer is not None]
    if offers:
        catalog["beckn:offers"] = offers
    return orjson.dumps({"context": context, "message": {"catalogs": [catalog]}})


def answer_refusal(status: int, text: str) -> str:
    """Why the CDS's answer is not an ACK ("" if it is one): an HTTP error, an `error`
    object, a NACK (rc2's AckResponse `ack_status`, or v1's `message.ack.status`)."""
    from bridge.beckn.onboarding import refusal

    try:
        answer = orjson.loads(text) if text.strip() else None
    except orjson.JSONDecodeError:
        answer = None
    return refusal(status, answer, text)


def catalog_id(prov: str) -> str:
    return f"catalog:{prov}"


def provider_of(ref: str) -> str:
    cc, pid, _ = ref.split(":", 2)
    return f"{cc}-{pid}"


# --- the state in Redis (bridge/store/beckn_keys.py, "Catalog publish")

# KEYS due, dirty, inflight, lease, inflight set; ARGV prov, now ms, lease ms, owner, force
# -> the CPO's locations to publish (its dirty ones join the in-flight ones), or nil when
# it is not due (unless forced) or another worker holds it.
_CLAIM = """
if not redis.call('SET', KEYS[4], ARGV[4], 'NX', 'PX', ARGV[3]) then return false end
if ARGV[5] ~= '1' then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not s or tonumber(s) > tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[4])
    return false
  end
end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('ZUNIONSTORE', KEYS[3], 2, KEYS[3], KEYS[2], 'AGGREGATE', 'MIN')
  redis.call('DEL', KEYS[2])
end
redis.call('SADD', KEYS[5], ARGV[1])
return redis.call('ZRANGE', KEYS[3], 0, -1)
"""
# KEYS inflight, lease, inflight set, failures; ARGV prov, owner: published
_DONE = """
redis.call('DEL', KEYS[1], KEYS[4])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""
# KEYS inflight, dirty, due, lease, inflight set, failures; ARGV prov, owner, now ms,
# first delay ms, max delay ms: not published; tried again after a backoff per CPO
_FAILED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'MIN')
  redis.call('DEL', KEYS[1])
end
local n = redis.call('INCR', KEYS[6])
redis.call('EXPIRE', KEYS[6], 86400)
local d = tonumber(ARGV[4]) * 2 ^ math.min(n - 1, 20)
if d > tonumber(ARGV[5]) then d = tonumber(ARGV[5]) end
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]) + d, ARGV[1])
if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
redis.call('SREM', KEYS[5], ARGV[1])
return d
"""
# KEYS inflight, dirty, due, lease, inflight set; ARGV prov, now ms: the in-flight changes
# of a worker that died (its lease expired) go back to dirty, due now
_RECOVER = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'MIN')
  redis.call('DEL', KEYS[1])
  redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[1])
end
redis.call('SREM', KEYS[5], ARGV[1])
return 1
"""


@dataclass
class Report:
    """What one publish of one CPO sent."""

    provider: str
    items: int = 0
    withdrawn: int = 0
    requests: int = 0
    transactions: list[str] = field(default_factory=list)

    @property
    def catalog_id(self) -> str:
        return catalog_id(self.provider)


class Publisher:
    """Publishes the pre-rendered catalog to `beckn.cds_url` (see the module docstring)."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, store: CatalogStore,
                 http: aiohttp.ClientSession, signer: BodySigner | None,
                 clock: Any = time.time) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.http = http
        self.signer = signer
        self.clock = clock
        self.url = settings.beckn_cds_url.rstrip("/") + PATH
        # the wire: the draft's Catalog Publish, or the LTS's (catalog_publish_lts.py)
        self.lts = settings.beckn_publish_profile == "lts"
        if self.lts:
            from bridge.beckn import catalog_publish_lts as wire

            self._context, self._body = wire.publish_context, wire.publish_body
            self._refusal = wire.answer_refusal
        else:
            self._context, self._body, self._refusal = (publish_context, publish_body,
                                                        answer_refusal)
        self._claim = redis.register_script(_CLAIM)
        self._done = redis.register_script(_DONE)
        self._failed = redis.register_script(_FAILED)
        self._recover = redis.register_script(_RECOVER)

    # ------------------------------------------------------------ the worker's loop

    async def run(self, stop: asyncio.Event | None = None, full_on_start: bool = True) -> None:
        """Publish what is due, forever: the full publish when asked for (start, a gap
        in the change stream), each CPO when its delay has passed."""
        if full_on_start:
            await request_full(self.redis, "start")
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.step()
            nxt = await self.redis.zrange(bk.PUB_DUE, 0, 0, withscores=True)
            wait = POLL
            if nxt:
                wait = min(POLL, max(0.01, float(nxt[0][1]) / 1000 - self.clock()))
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass

    async def step(self) -> list[Report]:
        """One look: recover dead workers' claims, a full publish if one is asked for,
        then every CPO that is due."""
        await self.recover()
        # with shards, renders mark their locations in their own shard: hand them over
        await self.store.move_marks(self.settings.beckn_publish_delay)
        done: list[Report] = []
        reason = await self.redis.get(bk.PUB_FULL)
        if reason is not None:
            owner = uuid.uuid4().hex
            if await self.redis.set(bk.PUB_FULL_LEASE, owner, nx=True, px=LEASE_MS * 10):
                try:
                    done += await self.publish_all(reason.decode(), wait=True)
                    # a request made meanwhile (another gap) is kept for the next look
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.get(bk.PUB_FULL)
                        got = (await pipe.execute())[0]
                    if got == reason:
                        await self.redis.delete(bk.PUB_FULL)
                except PublishError as exc:
                    log.warning("catalog.publish.full_failed", reason=reason.decode(),
                                error=str(exc))
                finally:
                    await self.redis.delete(bk.PUB_FULL_LEASE)
        now_ms = int(self.clock() * 1000)
        due = await self.redis.zrangebyscore(bk.PUB_DUE, "-inf", now_ms, start=0, num=32)
        # CPOs due together are published side by side: one's Redis and HTTP round trips
        # overlap another's, so the last of them is not late by the sum of the others
        sem = asyncio.Semaphore(PARALLEL)

        async def one(prov: str) -> Report | None:
            async with sem:
                try:
                    return await self.publish_provider(prov)
                except PublishError as exc:
                    log.warning("catalog.publish.failed", provider=prov, error=str(exc))
                    return None

        for report in await asyncio.gather(*(one(raw.decode()) for raw in due)):
            if report is not None:
                done.append(report)
        return done

    async def recover(self) -> int:
        """Changes claimed by a worker whose lease expired go back to dirty."""
        n = 0
        for raw in await self.redis.smembers(bk.PUB_INFLIGHT_SET):
            prov = raw.decode()
            n += int(await self._recover(
                keys=[bk.pub_inflight(prov), bk.pub_dirty(prov), bk.PUB_DUE, bk.pub_lease(prov),
                      bk.PUB_INFLIGHT_SET], args=[prov, int(self.clock() * 1000)]))
        return n

    # ------------------------------------------------------------ publishing

    async def providers(self) -> list[str]:
        """Every CPO with a catalog header or published items."""
        found: set[str] = set(await self.store.provider_ids())
        async for key in self.redis.scan_iter(match=bk.pub_refs("*"), count=500):
            found.add(key.decode()[len(bk.pub_refs("")):])
        return sorted(found)

    async def publish_all(self, reason: str, only: str | None = None, wait: bool = False
                          ) -> list[Report]:
        """The full publish of every CPO (or `only` one). `wait`: a CPO another worker is
        publishing right now is waited for (up to its lease), not skipped."""
        provs = [only] if only else await self.providers()
        log.info("catalog.publish.full", reason=reason, providers=len(provs))
        reports = []
        for prov in provs:
            deadline = time.monotonic() + (LEASE_MS / 1000 if wait else 0)
            while True:
                report = await self.publish_provider(prov, full=True)
                if report is not None or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            if report is None:
                raise PublishError(f"{prov}: another process is publishing it; try again")
            reports.append(report)
        await self.redis.hset(bk.PUB_STATS, mapping={"full_at": repr(self.clock()),
                                                     "full_reason": reason})
        return reports

    async def publish_provider(self, prov: str, full: bool = False) -> Report | None:
        """Publish one CPO if it is due (or `full`: everything, now). None when it is not
        due or another worker holds it. Raises CdsUnavailable (its changes go back to
        dirty, tried again later) or CdsRefused (its locations go to `rejected`)."""
        owner = uuid.uuid4().hex
        claimed = await self._claim(
            keys=[bk.PUB_DUE, bk.pub_dirty(prov), bk.pub_inflight(prov), bk.pub_lease(prov),
                  bk.PUB_INFLIGHT_SET],
            args=[prov, int(self.clock() * 1000), LEASE_MS, owner, "1" if full else "0"])
        if claimed is None:
            return None
        refs = {r.decode() for r in claimed}
        refs |= {r.decode() for r in await self.redis.smembers(bk.pub_rejected(prov))}
        if full:
            refs |= await self.store.provider_refs(prov)
            refs |= {r.decode() for r in await self.redis.smembers(bk.pub_refs(prov))}
        try:
            report = await self._publish(prov, sorted(refs), full, owner)
        except CdsRefused as exc:
            exc.provider = prov
            await self._done(keys=[bk.pub_inflight(prov), bk.pub_lease(prov),
                                   bk.PUB_INFLIGHT_SET, bk.pub_failures(prov)],
                             args=[prov, owner])
            if refs:
                await self.redis.sadd(bk.pub_rejected(prov), *refs)
            log.warning("catalog.publish.refused", provider=prov, error=str(exc))
            raise
        except BaseException as exc:
            delay = await self._failed(
                keys=[bk.pub_inflight(prov), bk.pub_dirty(prov), bk.PUB_DUE, bk.pub_lease(prov),
                      bk.PUB_INFLIGHT_SET, bk.pub_failures(prov)],
                args=[prov, owner, int(self.clock() * 1000),
                      int(self.settings.beckn_publish_backoff * 1000),
                      int(self.settings.beckn_publish_max_backoff * 1000)])
            if isinstance(exc, PublishError):
                exc.provider = prov
                log.warning("catalog.publish.retry_later", provider=prov, error=str(exc),
                            retry_in=float(delay) / 1000)
            raise
        await self._done(keys=[bk.pub_inflight(prov), bk.pub_lease(prov), bk.PUB_INFLIGHT_SET,
                               bk.pub_failures(prov)], args=[prov, owner])
        if report.requests:
            log.info("catalog.published", provider=prov, items=report.items,
                     withdrawn=report.withdrawn, requests=report.requests, full=full)
        return report

    async def _entries(self, prov: str, refs: Sequence[str], full: bool
                       ) -> tuple[list[Entry], list[Entry], dict[str, Any]]:
        """(items to send, withdrawals, the catalog header) of these locations: the items
        as discover has them now against what was last published."""
        header: dict[str, Any] | None = None
        send: list[Entry] = []
        gone: list[Entry] = []
        withdrawn_rows: list[tuple[str, str, str]] = []
        for start in range(0, len(refs), CHUNK):
            chunk = list(refs[start:start + CHUNK])
            facets = await self.store.facets_raw(chunk)
            pairs = [(ref, row) for ref, f in zip(chunk, facets, strict=True) if f
                     for row in orjson.loads(f) if row[ROW_CT] in PACK_CONNECTOR_TYPES]
            got, heads = await self.store.page(pairs, [prov] if header is None else [])
            if prov in heads:
                header = orjson.loads(heads[prov])
            async with self.redis.pipeline(transaction=False) as pipe:
                for ref in chunk:
                    pipe.hgetall(bk.pub_loc(ref))
                published = {ref: {k.decode(): v.decode() for k, v in h.items()}
                             for ref, h in zip(chunk, await pipe.execute(), strict=True)}
            for (ref, row), (item, offer) in zip(pairs, got, strict=True):
                if item is None:
                    continue
                digest = item_digest(item, offer)
                old = published[ref].pop(row[ROW_ITEM], None)
                if full or old is None or parse_stamp(old)[0] != digest:
                    send.append(Entry(ref, row[ROW_ITEM], item, offer,
                                      stamp(digest, row[ROW_CT], float(row[ROW_KW])),
                                      row[ROW_STATUS]))
            for ref, rest in published.items():
                withdrawn_rows += [(ref, iid, value) for iid, value in rest.items()]
        if header is None:
            stored = await self.store.providers([prov])
            header = orjson.loads(stored[prov]) if prov in stored else {
                "beckn:id": prov, "beckn:descriptor": {"@type": "beckn:Descriptor",
                                                       "schema:name": prov}}
        short = {"beckn:id": header["beckn:id"], "beckn:descriptor": header["beckn:descriptor"]}
        for ref, iid, value in withdrawn_rows:
            _d, ct, kw = parse_stamp(value)
            gone.append(Entry(ref, iid, orjson.dumps(withdrawal_item(iid, short, ct, kw)),
                              None, value))
        return send, gone, header

    async def _publish(self, prov: str, refs: Sequence[str], full: bool, owner: str) -> Report:
        settings = self.settings
        send, gone, header = await self._entries(prov, refs, full)
        report = Report(prov)
        head = catalog_header(header, settings.beckn_subscriber_id, settings.bpp_uri)
        overhead = len(self._body(self._context(settings, datetime.now(UTC), "x" * 36,
                                                "x" * 36), head, [], False)) + 64
        for active, entries in ((True, send), (False, gone)):
            for batch in split(entries, settings.beckn_publish_batch_items,
                               settings.beckn_publish_batch_bytes, overhead):
                await self.redis.pexpire(bk.pub_lease(prov), LEASE_MS)
                txn = str(uuid.uuid4())
                ctx = self._context(settings, datetime.now(UTC), txn, str(uuid.uuid4()))
                body = self._body(ctx, head, batch, active)
                await self._record_request(prov, txn, batch, active)
                try:
                    await self._send(body)
                except PublishError as exc:
                    await self._record_outcome(prov, txn, "refused" if isinstance(
                        exc, CdsRefused) else "unavailable", str(exc))
                    raise
                await self._apply(prov, txn, batch, active)
                report.requests += 1
                report.transactions.append(txn)
                if active:
                    report.items += len(batch)
                else:
                    report.withdrawn += len(batch)
        rejected = bk.pub_rejected(prov)
        if refs and await self.redis.exists(rejected):
            await self.redis.srem(rejected, *refs)
        return report

    async def _send(self, body: bytes) -> None:
        """POST one publish request; retried on what may pass (network, 5xx, 429)."""
        settings = self.settings
        tries = settings.beckn_publish_retries
        reason = ""
        for attempt in range(tries):
            headers = {"Content-Type": "application/json"}
            if self.signer is not None:
                headers["Authorization"] = self.signer.header(body, time.time())
            retry_after: float | None = None
            try:
                async with self.http.post(self.url, data=body, headers=headers) as resp:
                    text = await resp.text()
                    refusal = self._refusal(resp.status, text)
                    if not refusal:
                        return
                    if resp.status != 429 and resp.status < 500:
                        raise CdsRefused(f"the CDS refused the publish: {refusal}")
                    reason = refusal
                    try:
                        retry_after = float(resp.headers.get("Retry-After", ""))
                    except ValueError:
                        retry_after = None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = f"cannot reach the CDS at {self.url}: {str(exc) or type(exc).__name__}"
            if attempt + 1 < tries:
                delay = min(settings.beckn_publish_backoff * 2 ** attempt,
                            settings.beckn_publish_max_backoff)
                await asyncio.sleep(max(delay, min(retry_after or 0.0,
                                                   settings.beckn_publish_max_backoff)))
        raise CdsUnavailable(f"{reason} ({tries} tries)")

    async def _record_request(self, prov: str, txn: str, batch: Sequence[Entry],
                              active: bool) -> None:
        """Before sending: the CDS may answer before our POST returns."""
        key = bk.pub_request(txn)
        async with redisconn.transaction(self.redis, key) as pipe:
            pipe.hset(key, mapping={
                "provider": prov, "catalog": catalog_id(prov),
                "kind": "publish" if active else "withdraw",
                "items": orjson.dumps([[e.ref, e.item_id] for e in batch]),
                "refs": orjson.dumps(sorted({e.ref for e in batch})),
                "sent_at": repr(self.clock()), "state": "sending"})
            pipe.expire(key, REQUEST_TTL)
            await pipe.execute()

    async def _record_outcome(self, prov: str, txn: str, state: str, error: str) -> None:
        async with redisconn.transaction(self.redis, bk.pub_request(txn)) as pipe:
            pipe.hset(bk.pub_request(txn), mapping={"state": state, "error": error})
            pipe.hset(bk.pub_catalog(catalog_id(prov)), mapping={
                "error": error, "error_at": repr(self.clock())})
            await pipe.execute()

    async def _apply(self, prov: str, txn: str, batch: Sequence[Entry], active: bool) -> None:
        """The CDS ACKed a batch: it is what the CDS has from us now."""
        by_ref: dict[str, list[Entry]] = {}
        for e in batch:
            by_ref.setdefault(e.ref, []).append(e)
        cat = bk.pub_catalog(catalog_id(prov))
        async with redisconn.transaction(self.redis, cat) as pipe:  # one slot (beckn_keys)
            for ref, entries in by_ref.items():
                if active:
                    pipe.hset(bk.pub_loc(ref), mapping={e.item_id: e.stamp for e in entries})
                    pipe.sadd(bk.pub_refs(prov), ref)
                else:
                    pipe.hdel(bk.pub_loc(ref), *[e.item_id for e in entries])
            pipe.hset(bk.pub_request(txn), "state", "acked")
            pipe.hset(cat, mapping={"sent_at": repr(self.clock()), "sent_txn": txn,
                                    "error": ""})
            pipe.hincrby(cat, "sent_items" if active else "sent_withdrawn", len(batch))
            await pipe.execute()
        if not active:  # a location with nothing published left leaves the CPO's set
            refs = list(by_ref)
            async with self.redis.pipeline(transaction=False) as pipe:
                for ref in refs:
                    pipe.exists(bk.pub_loc(ref))
                left = await pipe.execute()
            empty = [r for r, n in zip(refs, left, strict=True) if not n]
            if empty:
                await self.redis.srem(bk.pub_refs(prov), *empty)


async def request_full(redis: aioredis.Redis, reason: str) -> None:
    """Ask the publisher (any worker) for a full publish of every CPO."""
    await redis.set(bk.PUB_FULL, f"{reason} {time.time():.3f}")


def make_publisher(settings: Settings, redis: aioredis.Redis, store: CatalogStore,
                   http: aiohttp.ClientSession) -> Publisher:
    """The publisher with our signer: the key ring's key of the moment in signed mode,
    the key the bridge is given behind an adapter (PublishError without one: a CDS
    takes no unsigned publish)."""
    from bridge.beckn.callbacks import direct_signer
    from bridge.beckn.signing import KeyFileError

    if not settings.beckn_cds_url:
        raise PublishError("no CDS: set beckn.cds_url (BRIDGE_BECKN_CDS_URL)")
    try:
        signer = direct_signer(settings)
    except KeyFileError as exc:
        raise PublishError(f"{exc} (bridge keys generate)") from exc
    if signer is None:
        raise PublishError("adapter mode without a signing key: publishes go to the CDS "
                           "directly and must be signed; set beckn.private_key / key_id to "
                           "the adapter's key")
    return Publisher(settings, redis, store, http, signer)


def http_session(settings: Settings) -> aiohttp.ClientSession:
    # beckn.cds_url is an address the operator configured, not one a peer gave us: no
    # URL guard (bridge/urlguard.py), as for the adapter's.
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
        total=settings.beckn_callback_timeout * 3))


# --- what `bridge catalog status` shows


@dataclass
class CatalogStatus:
    catalog_id: str
    record: dict[str, str]
    dirty: int
    due_in: float | None
    rejected: int
    inflight: bool


async def status(redis: aioredis.Redis, now: float | None = None) -> tuple[list[CatalogStatus],
                                                                          dict[str, str]]:
    """Per catalog: what was sent, the CDS's last result, what is waiting; and the
    full-publish record."""
    now = time.time() if now is None else now
    provs: set[str] = set()
    for pattern, prefix in ((bk.pub_catalog("catalog:*"), bk.pub_catalog("catalog:")),
                            (bk.pub_dirty("*"), bk.pub_dirty("")),
                            (bk.pub_rejected("*"), bk.pub_rejected(""))):
        async for key in redis.scan_iter(match=pattern, count=500):
            provs.add(key.decode()[len(prefix):])
    out = []
    for prov in sorted(provs):
        rec = {k.decode(): v.decode()
               for k, v in (await redis.hgetall(bk.pub_catalog(catalog_id(prov)))).items()}
        due = await redis.zscore(bk.PUB_DUE, prov)
        out.append(CatalogStatus(
            catalog_id(prov), rec, int(await redis.zcard(bk.pub_dirty(prov))),
            None if due is None else float(due) / 1000 - now,
            int(await redis.scard(bk.pub_rejected(prov))),
            bool(await redis.exists(bk.pub_lease(prov)))))
    stats = {k.decode(): v.decode() for k, v in (await redis.hgetall(bk.PUB_STATS)).items()}
    return out, stats


def status_lines(rows: Iterable[CatalogStatus], stats: dict[str, str], now: float
                 ) -> list[str]:
    def ago(at: str) -> str:
        try:
            return f"{max(0.0, now - float(at)):.0f} s ago"
        except ValueError:
            return "?"

    lines = []
    for r in rows:
        rec = r.record
        parts = [r.catalog_id]
        if rec.get("sent_at"):
            parts.append(f"sent {ago(rec['sent_at'])} ({rec.get('sent_items', '0')} items, "
                         f"{rec.get('sent_withdrawn', '0')} withdrawn in all)")
        else:
            parts.append("never sent")
        if rec.get("result"):
            res = f"CDS: {rec['result']} {ago(rec.get('result_at', ''))}"
            if rec.get("item_count"):
                res += f", {rec['item_count']} items indexed"
            if rec.get("result_error"):
                res += f", error {rec['result_error']}"
            if rec.get("warnings") and rec["warnings"] != "[]":
                res += f", warnings {rec['warnings']}"
            parts.append(res)
        else:
            parts.append("CDS: no result yet")
        if rec.get("error"):
            parts.append(f"last error: {rec['error']}")
        if r.dirty:
            when = "now" if r.due_in is None or r.due_in <= 0 else f"in {r.due_in:.1f} s"
            parts.append(f"{r.dirty} locations changed, due {when}")
        if r.rejected:
            parts.append(f"{r.rejected} locations rejected (sent again with the CPO's next "
                         "change or `bridge catalog publish`)")
        if r.inflight:
            parts.append("publishing now")
        lines.append("; ".join(parts))
    if stats.get("full_at"):
        lines.append(f"last full publish: {ago(stats['full_at'])} "
                     f"({stats.get('full_reason', '').split(' ')[0]})")
    return lines or ["nothing published yet"]
