"""Worker side of the catalog: consume the OCPI change stream and re-render.

Reads `obb:ocpi:events` in the consumer group `beckn-catalog` (any number of
workers share the work; an entry is acknowledged after its render is
written). A location event re-renders that location; a tariff event
re-renders every location whose connectors use the tariff. Events of one
batch are merged, so a burst of EVSE status PATCHes renders a location once.

On the group's first start, and whenever the stream was trimmed past what the
group had read (a worker down for longer than the stream keeps entries), the
whole catalog is rebuilt from the OCPI store
(the stream is trimmed, so it cannot be replayed from the beginning); the
group is created at the stream's end *before* the rebuild, so changes made
during it are processed afterwards. Entries left pending by a dead worker
are claimed after `CLAIM_IDLE_MS`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ResponseError

from bridge.store import beckn_keys as bk
from bridge.store import keys, shards
from bridge.store.catalog import CATALOG_VERSION, CatalogStore

log = structlog.get_logger("bridge.beckn.catalog")

CLAIM_IDLE_MS = 60_000
BATCH = 500


def _stream_id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def fell_behind(redis: aioredis.Redis, group_name: str = bk.CATALOG_GROUP,
                      shard: int = 0) -> bool:
    """True when the stream was trimmed past what the group has read: a worker that was
    down longer than the stream keeps entries (`ocpi.events_maxlen`) missed changes."""
    stream = keys.events(shard)
    groups = await redis.xinfo_groups(stream)
    group = next((g for g in groups if g["name"] in (group_name, group_name.encode())), None)
    info = await redis.xinfo_stream(stream)
    if group is None:
        return False
    read, added = group.get("entries-read"), info.get("entries-added")
    if read is not None and added is not None:  # Redis 7 counts what the group read
        return int(added) - int(read) > int(info["length"])
    # Otherwise (Redis 6.2, or a group that has read nothing yet): entries were trimmed
    # and the oldest one left is newer than the last one the group read.
    first = info.get("first-entry")
    trimmed = added is None or int(added) > int(info["length"])
    return bool(first) and trimmed and _stream_id(group["last-delivered-id"]) < _stream_id(
        first[0])


OnRebuild = Callable[[str], Awaitable[None]]


async def ensure_group(redis: aioredis.Redis, store: CatalogStore,
                       on_rebuild: OnRebuild | None = None, shard: int = 0) -> bool:
    """Create the consumer group of a shard's stream (and rebuild that shard's locations)
    if it does not exist, or rebuild if the group fell behind the trimmed stream. True if
    the catalog was rebuilt; `on_rebuild` is told why (the catalog publisher then
    republishes in full)."""
    reason = "catalog-created"
    stream = keys.events(shard)
    try:
        await redis.xgroup_create(stream, bk.CATALOG_GROUP, id="$", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        if await fell_behind(redis, shard=shard):
            log.warning("catalog.fell_behind", shard=shard,
                        note="changes were trimmed unread: full rebuild")
            reason = "change-stream-gap"
        elif (await redis.get(bk.catalog_version(shard)) or b"").decode() != CATALOG_VERSION:
            log.info("catalog.new_layout", note="rendered again in the current layout",
                     version=CATALOG_VERSION, shard=shard)
            reason = "catalog-layout"
        else:
            return False
        # Move the group to the stream's end first, so changes made during the rebuild
        # are processed afterwards, as on creation.
        await redis.xgroup_setid(stream, bk.CATALOG_GROUP, id="$")
    n = await store.rebuild_all(shard=shard)
    await redis.set(bk.catalog_version(shard), CATALOG_VERSION)
    log.info("catalog.rebuilt", locations=n, shard=shard)
    if on_rebuild is not None:
        await on_rebuild(reason)
    return True


def _targets(fields: dict[bytes, bytes]) -> tuple[str, str, str, str] | None:
    module = fields.get(b"module", b"").decode()
    if module not in ("locations", "tariffs"):
        return None
    return (module, fields[b"cc"].decode(), fields[b"pid"].decode(), fields[b"id"].decode())


async def process(store: CatalogStore, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
    """Render what a batch of events touched; returns the number of renders."""
    locations: set[tuple[str, str, str]] = set()
    for _id, fields in entries:
        t = _targets(fields)
        if t is None:
            continue
        module, cc, pid, oid = t
        if module == "locations":
            locations.add((cc, pid, oid))
        else:
            for ref in await store.locations_of_tariff(cc, pid, oid):
                rcc, rpid, rlid = ref.split(":", 2)
                locations.add((rcc, rpid, rlid))
    for cc, pid, lid in locations:
        await store.render(cc, pid, lid)
    return len(locations)


async def consume_all(redis: aioredis.Redis, store: CatalogStore,
                      stop: asyncio.Event | None = None,
                      on_rebuild: OnRebuild | None = None) -> None:
    """`consume` every shard's stream (docs/scaling.md), each started again after any
    error, until cancelled."""
    from bridge.worker import keep_running

    def one(shard: int) -> Any:
        return keep_running(f"beckn-catalog-{shard}",
                            lambda: consume(redis, store, stop=stop, on_rebuild=on_rebuild,
                                            shard=shard))

    await asyncio.gather(*(one(s) for s in shards.current().shards))


async def consume(redis: aioredis.Redis, store: CatalogStore, consumer: str | None = None,
                  stop: asyncio.Event | None = None, block_ms: int = 1000,
                  on_rebuild: OnRebuild | None = None, shard: int = 0) -> None:
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    stream = keys.events(shard)
    await ensure_group(redis, store, on_rebuild, shard)
    claim_from = "0-0"
    pending_first = True
    while stop is None or not stop.is_set():
        try:
            if pending_first:  # our own unacknowledged entries after a restart
                resp: Any = await redis.xreadgroup(bk.CATALOG_GROUP, consumer, {stream: "0"},
                                                   count=BATCH)
                pending_first = bool(resp and resp[0][1])
            else:
                resp = await redis.xreadgroup(bk.CATALOG_GROUP, consumer, {stream: ">"},
                                              count=BATCH, block=block_ms)
            entries = resp[0][1] if resp else []
            if not entries:
                claimed = await redis.xautoclaim(stream, bk.CATALOG_GROUP, consumer,
                                                 CLAIM_IDLE_MS, start_id=claim_from, count=BATCH)
                claim_from = claimed[0].decode() if isinstance(claimed[0], bytes) else claimed[0]
                entries = [e for e in claimed[1] if e and e[1]]
                if not entries:
                    continue
            await process(store, entries)
            await redis.xack(stream, bk.CATALOG_GROUP, *[e[0] for e in entries])
        except asyncio.CancelledError:
            raise
        except Exception:  # keep consuming; the entries stay pending and are retried
            log.exception("catalog.consume_error")
            pending_first = True
            await asyncio.sleep(1.0)


async def drain(redis: aioredis.Redis, store: CatalogStore, consumer: str = "drain") -> int:
    """Process everything currently in the streams for the group, then return (tests, CLI)."""
    total = 0
    for shard in shards.current().shards:
        total += await _drain(redis, store, consumer, shard)
    return total


async def _drain(redis: aioredis.Redis, store: CatalogStore, consumer: str, shard: int) -> int:
    stream = keys.events(shard)
    await ensure_group(redis, store, shard=shard)
    total = 0
    while True:
        resp: Any = await redis.xreadgroup(bk.CATALOG_GROUP, consumer, {stream: ">"},
                                           count=BATCH)
        entries = resp[0][1] if resp else []
        if not entries:
            return total
        total += await process(store, entries)
        await redis.xack(stream, bk.CATALOG_GROUP, *[e[0] for e in entries])
