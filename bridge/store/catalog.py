"""The pre-rendered Beckn catalog in Redis, and its discover indexes.

Written when OCPI data changes (the worker's catalog consumer), read by
discover; discover never renders. Key layout: `bridge.store.beckn_keys`.

A location is re-rendered as a whole (its hash holds all its items), under
WATCH on its catalog key: a render that read older OCPI data cannot overwrite
a newer one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import WatchError

from bridge.mapping.catalog import POWER_BANDS, Facet, RenderedLocation, location_ref, render_location
from bridge.ocpi.models import Location, Tariff
from bridge.store import beckn_keys as bk
from bridge.store import keys
from bridge.store.ocpi_store import OcpiStore

log = structlog.get_logger("bridge.store.catalog")


class CatalogStore:
    def __init__(self, redis: aioredis.Redis, ocpi: OcpiStore | None = None,
                 network_ids: Sequence[str] = (),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.redis = redis
        self.ocpi = ocpi or OcpiStore(redis)
        self.network_ids = list(network_ids)
        self.clock = clock

    # ------------------------------------------------------------------ writing

    async def _tariffs(self, cc: str, pid: str, loc: Location) -> dict[str, Tariff]:
        ids = {t.lower() for e in loc.evses or [] for c in e.connectors for t in c.tariff_ids or []}
        out: dict[str, Tariff] = {}
        for tid in ids:
            stored = await self.ocpi.get("tariffs", cc, pid, tid)
            if stored is None:
                continue
            try:
                out[tid] = Tariff.model_validate(stored.data)
            except ValidationError:
                log.warning("catalog.bad_tariff", cc=cc, pid=pid, tariff=tid)
        return out

    async def render(self, cc: str, pid: str, lid: str, retries: int = 5) -> bool:
        """Re-render one location from the OCPI store. True if it is listed."""
        ref = location_ref(cc, pid, lid)
        key = bk.cat(ref)
        for _ in range(retries):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await self.ocpi.get_location(cc, pid, lid)
                    rendered: RenderedLocation | None = None
                    if raw is not None:
                        loc = Location.model_validate(raw)
                        rendered = render_location(loc, await self._tariffs(cc, pid, loc),
                                                   self.clock(), self.network_ids)
                    old = await pipe.hget(key, "k")
                    pipe.multi()
                    self._unindex(pipe, ref, old)
                    if rendered is not None:
                        self._write(pipe, rendered)
                    await pipe.execute()
                    return rendered is not None
                except WatchError:
                    continue
        raise RuntimeError(f"catalog render {ref}: too many concurrent writers")

    @staticmethod
    def _unindex(pipe: Any, ref: str, old: bytes | None) -> None:
        pipe.delete(bk.cat(ref))
        pipe.zrem(bk.GEO, ref)
        pipe.zrem(bk.ALL, ref)
        pipe.srem(bk.AVAIL, ref)
        if old is None:
            return
        k = orjson.loads(old)
        for ct in k.get("ct", []):
            pipe.zrem(bk.geo_ct(ct), ref)
        for band in k.get("pw", []):
            pipe.srem(bk.power(band), ref)
        if k.get("prov"):
            pipe.srem(bk.prov_idx(k["prov"]), ref)
        for tok in k.get("tok", []):
            pipe.srem(bk.token(tok), ref)
        if k.get("evse"):
            pipe.hdel(bk.EVSE, *k["evse"])
        cc, pid, _ = ref.split(":", 2)
        for tid in k.get("tar", []):
            pipe.srem(bk.tariff(cc, pid, tid), ref)

    def _write(self, pipe: Any, r: RenderedLocation) -> None:
        cc, pid, _ = r.ref.split(":", 2)
        cts = sorted({i.facet.connector_type for i in r.items})
        max_kw = max((i.facet.kw for i in r.items), default=0.0)
        bands = [b for b in POWER_BANDS if max_kw >= b] if r.items else []
        evse_ids = sorted({i.facet.evse_id for i in r.items if i.facet.evse_id})
        k = {"ct": cts, "pw": bands, "prov": r.provider_id, "tok": sorted(r.tokens),
             "evse": evse_ids, "tar": sorted(r.tariff_ids)}
        fields: dict[str, bytes | str] = {
            "k": orjson.dumps(k), "p": r.provider_id,
            "f": orjson.dumps([i.facet.row() for i in r.items]),
        }
        for it in r.items:
            fields[f"i:{it.facet.item_id}"] = orjson.dumps(it.item)
            if it.offer is not None:
                fields[f"o:{it.facet.item_id}"] = orjson.dumps(it.offer)
        key = bk.cat(r.ref)
        pipe.hset(key, mapping=fields)
        pipe.set(bk.provider(r.provider_id), orjson.dumps(r.provider))
        pipe.zadd(bk.ALL, {r.ref: 0})
        pipe.sadd(bk.prov_idx(r.provider_id), r.ref)
        for tid in r.tariff_ids:
            pipe.sadd(bk.tariff(cc, pid, tid), r.ref)
        if not r.items:
            return
        pipe.geoadd(bk.GEO, (r.lon, r.lat, r.ref))
        for ct in cts:
            pipe.geoadd(bk.geo_ct(ct), (r.lon, r.lat, r.ref))
        for band in bands:
            pipe.sadd(bk.power(band), r.ref)
        if any(i.facet.status == "Available" for i in r.items):
            pipe.sadd(bk.AVAIL, r.ref)
        for tok in r.tokens:
            pipe.sadd(bk.token(tok), r.ref)
        for eid in evse_ids:
            uid = next(i.facet.evse_uid for i in r.items if i.facet.evse_id == eid)
            pipe.hset(bk.EVSE, eid, f"{r.ref}\t{uid}")

    async def locations_of_tariff(self, cc: str, pid: str, tid: str) -> list[str]:
        members = await self.redis.smembers(bk.tariff(cc, pid, tid))
        return sorted(m.decode() for m in members)

    async def rebuild_all(self, batch: int = 500) -> int:
        """Render every stored location (first start of the consumer, `bench`)."""
        n = 0
        start = 0
        idx = keys.module_index("locations")
        while True:
            members = await self.redis.zrange(idx, start, start + batch - 1)
            if not members:
                return n
            for m in members:
                cc, pid, lid = m.decode().split(":", 2)
                await self.render(cc, pid, lid)
                n += 1
            start += batch

    # ------------------------------------------------------------------ reading

    async def geo_radius(self, lon: float, lat: float, meters: float,
                         connector_type: str | None = None) -> list[tuple[str, float]]:
        key = bk.geo_ct(connector_type) if connector_type else bk.GEO
        res = await self.redis.geosearch(key, longitude=lon, latitude=lat, radius=meters,
                                         unit="m", sort="ASC", withdist=True)
        return [(m.decode(), float(d)) for m, d in res]

    async def geo_box(self, lon: float, lat: float, width_m: float, height_m: float,
                      connector_type: str | None = None) -> list[tuple[str, float]]:
        key = bk.geo_ct(connector_type) if connector_type else bk.GEO
        res = await self.redis.geosearch(key, longitude=lon, latitude=lat, width=width_m,
                                         height=height_m, unit="m", sort="ASC", withdist=True,
                                         withcoord=True)
        return [(m.decode(), float(d), (float(c[0]), float(c[1]))) for m, d, c in res]  # type: ignore[misc]

    async def positions(self, refs: Sequence[str]) -> list[tuple[float, float] | None]:
        if not refs:
            return []
        res = await self.redis.geopos(bk.GEO, *refs)
        return [(float(p[0]), float(p[1])) if p else None for p in res]

    async def members(self, refs: Sequence[str], set_key: str) -> list[bool]:
        if not refs:
            return []
        res = await self.redis.smismember(set_key, list(refs))
        return [bool(x) for x in res]

    async def inter(self, set_keys: Iterable[str]) -> list[str]:
        ks = list(set_keys)
        res = await self.redis.sinter(ks) if len(ks) > 1 else await self.redis.smembers(ks[0])
        return sorted(m.decode() for m in res)

    async def all_refs(self, start: int, count: int) -> list[str]:
        return [m.decode() for m in await self.redis.zrange(bk.ALL, start, start + count - 1)]

    async def facets(self, refs: Sequence[str]) -> list[list[Facet]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for ref in refs:
                pipe.hget(bk.cat(ref), "f")
            raw = await pipe.execute()
        return [[Facet.from_row(r) for r in orjson.loads(f)] if f else [] for f in raw]

    async def items(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[bytes | None, bytes | None]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for ref, iid in pairs:
                pipe.hmget(bk.cat(ref), f"i:{iid}", f"o:{iid}")
            raw = await pipe.execute()
        return [(r[0], r[1]) for r in raw]

    async def providers(self, ids: Iterable[str]) -> dict[str, bytes]:
        ids = list(ids)
        if not ids:
            return {}
        raw = await self.redis.mget([bk.provider(p) for p in ids])
        return {p: r for p, r in zip(ids, raw, strict=True) if r is not None}

    async def evse(self, normalised_evse_id: str) -> tuple[str, str] | None:
        raw = await self.redis.hget(bk.EVSE, normalised_evse_id)
        if raw is None:
            return None
        ref, uid = raw.decode().split("\t", 1)
        return ref, uid

    async def has_token(self, tok: str) -> bool:
        return bool(await self.redis.exists(bk.token(tok)))
