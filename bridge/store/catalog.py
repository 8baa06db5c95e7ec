"""The pre-rendered Beckn catalog in Redis, and its discover indexes.

Written when OCPI data changes (the worker's catalog consumer), read by
discover; discover never renders. Key layout: `bridge.store.beckn_keys`.

A location is re-rendered as a whole (its hash holds all its items), under
WATCH on its catalog key: a render that read older OCPI data cannot overwrite
a newer one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import WatchError

from bridge import redisconn
from bridge.mapping.catalog import (
    OFFER_ITEM,
    POWER_BANDS,
    ROW_ITEM,
    ROW_OFFER,
    Facet,
    RenderedLocation,
    location_ref,
    render_location,
)
from bridge.ocpi.models import Location, Tariff
from bridge.store import beckn_keys as bk
from bridge.store import keys, shards
from bridge.store.ocpi_store import OcpiStore

log = structlog.get_logger("bridge.store.catalog")


# The discover reads are Lua scripts so that one discover costs one round trip per step
# (not one per location), and redis-py parses flat lists of bytes, not GEO tuples.
# They address the catalog hashes by prefix + ref: one Redis, not a cluster.

# KEYS[1] GEO index, KEYS[2..] sets to be a member of; ARGV lon, lat, meters, count,
# skip, catalog key prefix -> [number of refs in the radius (<= count), ref, f, ref, f...]
# GEOSEARCH costs in proportion to the area it scans (0.8 ms for 5 km in the bench's
# 20,000 locations), so it first tries a quarter of the radius: when the smaller circle
# holds `count` locations, they are the `count` nearest of the big one. When it holds
# fewer (k), the next circle is sized for `count` at the density just seen (area grows
# with r squared), with a margin, rather than doubled: one more search, about as small
# as it can be (a doubled radius scans four times the area).
_NEAR = """
local want = tonumber(ARGV[4])
local full = tonumber(ARGV[3])
local r = full / 4
local refs
while true do
  if r > full then r = full end
  refs = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
                    'BYRADIUS', r, 'm', 'ASC', 'COUNT', want)
  if #refs >= want or r >= full then break end
  if #refs == 0 then
    r = r * 2
  else
    r = math.max(r * 1.2, r * math.sqrt(want / #refs) * 1.2)
  end
end
local out = {#refs}
for i = tonumber(ARGV[5]) + 1, #refs do
  local ref = refs[i]
  local ok = true
  for k = 2, #KEYS do
    if redis.call('SISMEMBER', KEYS[k], ref) == 0 then ok = false; break end
  end
  if ok then
    out[#out + 1] = ref
    out[#out + 1] = redis.call('HGET', ARGV[6] .. ref, 'f') or ''
  end
end
return out
"""
# KEYS[1] GEO index, KEYS[2..] sets to be a member of; ARGV n, then per cover: kind (r|b),
# lon, lat, radius or width, height -> [ref, lon, lat, ...] for the refs found in any cover
# (each once), members of every set. A route corridor's or an area's GEOSEARCHes in one
# round trip (bridge/beckn/geo.py).
_MULTI = """
local seen = {}
local out = {}
local i = 2
for c = 1, tonumber(ARGV[1]) do
  local res
  if ARGV[i] == 'r' then
    res = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[i + 1], ARGV[i + 2],
                     'BYRADIUS', ARGV[i + 3], 'm', 'WITHCOORD')
  else
    res = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[i + 1], ARGV[i + 2],
                     'BYBOX', ARGV[i + 3], ARGV[i + 4], 'm', 'WITHCOORD')
  end
  i = i + 5
  for _, r in ipairs(res) do
    local ref = r[1]
    if not seen[ref] then
      seen[ref] = true
      local ok = true
      for k = 2, #KEYS do
        if redis.call('SISMEMBER', KEYS[k], ref) == 0 then ok = false; break end
      end
      if ok then
        out[#out + 1] = ref
        out[#out + 1] = r[2][1]
        out[#out + 1] = r[2][2]
      end
    end
  end
end
return out
"""
# With shards, a nearby search is two steps over every shard at once (docs/scaling.md):
# each shard's `count` nearest with their distances (the same shrinking circle as _NEAR),
# merged by (distance, ref) into the global `count` nearest; then, for the window after
# `skip`, each shard's set checks and facet rows.
# KEYS[1] GEO index; ARGV lon, lat, meters, count -> [ref, distance, ref, distance ...]
_NEAR_IDS = """
local want = tonumber(ARGV[4])
local full = tonumber(ARGV[3])
local r = full / 4
local got
while true do
  if r > full then r = full end
  got = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
                   'BYRADIUS', r, 'm', 'ASC', 'COUNT', want, 'WITHDIST')
  if #got >= want or r >= full then break end
  if #got == 0 then
    r = r * 2
  else
    r = math.max(r * 1.2, r * math.sqrt(want / #got) * 1.2)
  end
end
local out = {}
for i = 1, #got do
  out[#out + 1] = got[i][1]
  out[#out + 1] = got[i][2]
end
return out
"""
# KEYS sets to be a member of; ARGV catalog key prefix, refs -> per ref its facet rows,
# or false when it is not in every set
_CHECKED_FACETS = """
local out = {}
for i = 2, #ARGV do
  local ref = ARGV[i]
  local ok = true
  for k = 1, #KEYS do
    if redis.call('SISMEMBER', KEYS[k], ref) == 0 then ok = false; break end
  end
  if ok then out[#out + 1] = redis.call('HGET', ARGV[1] .. ref, 'f') or '' else out[#out + 1] = false end
end
return out
"""
# KEYS catalog hashes -> their `f` fields ('' if none)
_FACETS = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], 'f') or '' end
return out
"""
# KEYS n catalog hashes, then provider keys; ARGV n, then (item field suffix, offer field)
# per hash -> [item, offer, ..., provider header, ...] ('' if missing; offer '=' when the
# same template was sent earlier in the answer)
_PAGE = """
local n = tonumber(ARGV[1])
local out = {}
local seen = {}
for i = 1, n do
  local item = redis.call('HGET', KEYS[i], 'i:' .. ARGV[2 * i]) or ''
  local offer = ''
  local f = ARGV[2 * i + 1]
  if f ~= '' then
    local k = KEYS[i] .. '\0' .. f
    if seen[k] then offer = '=' else offer = redis.call('HGET', KEYS[i], f) or ''; seen[k] = 1 end
  end
  out[#out + 1] = item
  out[#out + 1] = offer
end
for i = n + 1, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) or '' end
return out
"""
_OFFER_ITEM = orjson.dumps(OFFER_ITEM)[1:-1]  # the placeholder as it appears in JSON
PROVIDER_TTL = 5.0  # seconds discover may show a CPO's previous name after it changed
# The layout of the rendered catalog; a catalog in an older one is rendered again when the
# catalog consumer starts (2: opening hours `h` and the station index, for discover's
# availability windows and station filter).
CATALOG_VERSION = "2"


class _Shard:
    """A MULTI pipeline that writes the catalog's indexes of one shard: each index name
    (bridge/store/beckn_keys.py) is made that shard's."""

    def __init__(self, pipe: Any, shard: int) -> None:
        self.pipe = pipe
        self.shard = shard

    def __getattr__(self, command: str) -> Callable[..., Any]:
        method = getattr(self.pipe, command)

        def call(key: str, *args: Any, **kwargs: Any) -> Any:
            return method(bk.shard_key(key, self.shard), *args, **kwargs)

        return call


class CatalogStore:
    def __init__(self, redis: aioredis.Redis, ocpi: OcpiStore | None = None,
                 network_ids: Sequence[str] = (),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 publish_delay: float | None = None) -> None:
        self.redis = redis
        # With a CDS (beckn.cds_url): every render marks its location for the publisher,
        # due `publish_delay` s after the CPO's first unpublished change.
        self.publish_delay = publish_delay
        self.ocpi = ocpi or OcpiStore(redis)
        self.network_ids = list(network_ids)
        self.clock = clock
        self._prov_cache: dict[str, tuple[float, bytes | None]] = {}
        self._near_lua = redis.register_script(_NEAR)
        self._near_ids_lua = redis.register_script(_NEAR_IDS)
        self._checked_facets_lua = redis.register_script(_CHECKED_FACETS)
        self._facets_lua = redis.register_script(_FACETS)
        self._page_lua = redis.register_script(_PAGE)
        self._multi_lua = redis.register_script(_MULTI)

    # ------------------------------------------------------------------ shards

    @staticmethod
    def _sharded() -> bool:
        return shards.current().count > 1

    @staticmethod
    def _by_shard(refs: Sequence[str]) -> dict[int, list[int]]:
        """Positions of `refs` per shard."""
        out: dict[int, list[int]] = {}
        for i, ref in enumerate(refs):
            out.setdefault(bk.ref_shard(ref), []).append(i)
        return out

    async def _each_shard(self, call: Callable[[int], Any]) -> list[Any]:
        """`call(shard)` for every shard at once (one round trip each, in parallel)."""
        return list(await asyncio.gather(*(call(s) for s in shards.current().shards)))

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
        """Re-render one location from the OCPI store. True if it is listed. Its hash,
        every index entry and the publisher's mark are in its shard: one MULTI."""
        ref = location_ref(cc, pid, lid)
        key = bk.cat(ref)
        shard = bk.ref_shard(ref)
        for _ in range(retries):
            async with redisconn.transaction(self.redis, key) as pipe:
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
                    at = _Shard(pipe, shard)
                    self._unindex(at, ref, old)
                    if rendered is not None:
                        self._write(at, rendered)
                    if self.publish_delay is not None:
                        self._mark(pipe, ref, shard)
                    await pipe.execute()
                    return rendered is not None
                except WatchError:
                    continue
        raise RuntimeError(f"catalog render {ref}: too many concurrent writers")

    def _mark(self, pipe: Any, ref: str, shard: int = 0) -> None:
        """For the publisher (bridge/beckn/catalog_publish.py), in the render's MULTI: the
        location changed; its CPO is due `publish_delay` s after its first change (NX:
        later changes do not push the deadline back). With shards the mark is made in the
        location's shard (`pub_marks`) and the publisher moves it (`move_marks`)."""
        assert self.publish_delay is not None
        now_ms = int(time.time() * 1000)
        cc, pid, _ = ref.split(":", 2)
        prov = f"{cc}-{pid}"
        if self._sharded():
            pipe.zadd(bk.pub_marks(shard), {f"{prov}\t{ref}": now_ms}, nx=True)
            return
        pipe.zadd(bk.pub_dirty(prov), {ref: now_ms}, nx=True)
        pipe.zadd(bk.PUB_DUE, {prov: now_ms + int(self.publish_delay * 1000)}, nx=True)

    async def move_marks(self, publish_delay: float) -> int:
        """With shards: the renders' marks of every shard, to the publisher's keys (as
        `_mark` writes them on one Redis); each is added (NX) before it is removed, so a
        process killed between the two moves it again, harmlessly."""
        if not self._sharded():
            return 0
        moved = 0
        for shard in shards.current().shards:
            key = bk.pub_marks(shard)
            for member, score in await self.redis.zrange(key, 0, 999, withscores=True):
                prov, ref = member.decode().split("\t", 1)
                first = int(score)
                await self.redis.zadd(bk.pub_dirty(prov), {ref: first}, nx=True)
                await self.redis.zadd(bk.PUB_DUE, {prov: first + int(publish_delay * 1000)},
                                      nx=True)
                await self.redis.zrem(key, member)
                moved += 1
        return moved

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
        pipe.srem(bk.station(ref.split(":", 2)[2]), ref)
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
        for tid, offer in r.offers.items():
            fields[f"t:{tid}"] = orjson.dumps(offer)
        if r.hours is not None:
            fields["h"] = orjson.dumps(r.hours)
        key = bk.cat(r.ref)
        pipe.hset(key, mapping=fields)
        pipe.set(bk.provider(r.provider_id), orjson.dumps(r.provider))
        pipe.zadd(bk.ALL, {r.ref: 0})
        pipe.sadd(bk.prov_idx(r.provider_id), r.ref)
        pipe.sadd(bk.station(r.ref.split(":", 2)[2]), r.ref)
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
        name = bk.tariff(cc, pid, tid)
        found = await self._each_shard(lambda s: self.redis.smembers(bk.shard_key(name, s)))
        return sorted({m.decode() for members in found for m in members})

    async def rebuild_all(self, batch: int = 500, shard: int | None = None) -> int:
        """Render every stored location (first start of the consumer, after a gap in the
        change stream, `bench`), or those of one shard; a rendered location no longer
        stored is dropped."""
        if shard is None:
            return sum([await self.rebuild_all(batch, s) for s in shards.current().shards])
        n = 0
        start = 0
        idx = keys.module_index("locations", shard)
        done: set[str] = set()
        while True:
            members = await self.redis.zrange(idx, start, start + batch - 1)
            if not members:
                break
            for m in members:
                cc, pid, lid = m.decode().split(":", 2)
                await self.render(cc, pid, lid)
                done.add(location_ref(cc, pid, lid))
                n += 1
            start += batch
        for ref in [r.decode() for r in await self.redis.zrange(bk.shard_key(bk.ALL, shard),
                                                                   0, -1)]:
            cc, pid, lid = ref.split(":", 2)
            if ref not in done:
                await self.render(cc, pid, lid)  # removed while nobody read the stream
        return n

    # ------------------------------------------------------------------ reading

    async def geo_radius(self, lon: float, lat: float, meters: float,
                         connector_type: str | None = None) -> list[tuple[str, float]]:
        name = bk.geo_ct(connector_type) if connector_type else bk.GEO
        found = await self._each_shard(lambda s: self.redis.geosearch(
            bk.shard_key(name, s), longitude=lon, latitude=lat, radius=meters, unit="m",
            sort="ASC", withdist=True))
        return sorted(((m.decode(), float(d)) for res in found for m, d in res),
                      key=lambda x: (x[1], x[0]))

    async def geo_box(self, lon: float, lat: float, width_m: float, height_m: float,
                      connector_type: str | None = None) -> list[tuple[str, float]]:
        name = bk.geo_ct(connector_type) if connector_type else bk.GEO
        found = await self._each_shard(lambda s: self.redis.geosearch(
            bk.shard_key(name, s), longitude=lon, latitude=lat, width=width_m,
            height=height_m, unit="m", sort="ASC", withdist=True, withcoord=True))
        rows = [(m.decode(), float(d), (float(c[0]), float(c[1])))
                for res in found for m, d, c in res]
        if self._sharded():  # merged nearest first (one shard: as GEOSEARCH ordered them)
            rows.sort(key=lambda x: (x[1], x[0]))
        return rows  # type: ignore[return-value]

    async def positions(self, refs: Sequence[str]) -> list[tuple[float, float] | None]:
        if not refs:
            return []
        out: list[tuple[float, float] | None] = [None] * len(refs)
        for shard, at in self._by_shard(refs).items():
            res = await self.redis.geopos(bk.shard_key(bk.GEO, shard), *[refs[i] for i in at])
            for i, p in zip(at, res, strict=True):
                out[i] = (float(p[0]), float(p[1])) if p else None
        return out

    async def members(self, refs: Sequence[str], set_key: str) -> list[bool]:
        """Is each ref in the set index `set_key` (of its own shard)?"""
        if not refs:
            return []
        out = [False] * len(refs)
        for shard, at in self._by_shard(refs).items():
            res = await self.redis.smismember(bk.shard_key(set_key, shard),
                                              [refs[i] for i in at])
            for i, x in zip(at, res, strict=True):
                out[i] = bool(x)
        return out

    async def inter(self, set_keys: Iterable[str]) -> list[str]:
        """Refs in every one of the set indexes (each shard's intersection, together)."""
        ks = list(set_keys)

        async def one(s: int) -> Any:
            names = [bk.shard_key(k, s) for k in ks]
            return await (self.redis.sinter(names) if len(names) > 1
                          else self.redis.smembers(names[0]))

        return sorted({m.decode() for res in await self._each_shard(one) for m in res})

    async def geo_members(self, connector_type: str) -> list[str]:
        """Every ref having that connector type (its GEO set), in ref order."""
        name = bk.geo_ct(connector_type)
        found = await self._each_shard(
            lambda s: self.redis.zrange(bk.shard_key(name, s), 0, -1))
        return sorted(m.decode() for res in found for m in res)

    async def all_refs(self, start: int, count: int) -> list[str]:
        """Refs in lexicographic order (each shard's first start + count, merged)."""
        found = await self._each_shard(lambda s: self.redis.zrange(
            bk.shard_key(bk.ALL, s), 0 if self._sharded() else start, start + count - 1))
        if not self._sharded():
            return [m.decode() for m in found[0]]
        merged = sorted(m.decode() for res in found for m in res)
        return merged[start:start + count]

    async def facets(self, refs: Sequence[str]) -> list[list[Facet]]:
        return [[Facet.from_row(r) for r in rows] for rows in await self.facet_rows(refs)]

    async def facet_rows(self, refs: Sequence[str]) -> list[list[list[Any]]]:
        """The stored facet rows (`ROW_*` columns) of each location, one round trip."""
        return [orjson.loads(f) if f else [] for f in await self.facets_raw(refs)]

    async def facets_raw(self, refs: Sequence[str]) -> list[bytes]:
        """The facet rows of each location as stored (JSON; b"" if none): one round trip
        (per shard, in parallel)."""
        if not refs:
            return []
        if not self._sharded():
            return list(await self._facets_lua(keys=[bk.cat(r) for r in refs]))
        groups = self._by_shard(refs)
        got = await asyncio.gather(*(self._facets_lua(keys=[bk.cat(refs[i]) for i in at])
                                     for at in groups.values()))
        out: list[bytes] = [b""] * len(refs)
        for at, res in zip(groups.values(), got, strict=True):
            for i, f in zip(at, res, strict=True):
                out[i] = f
        return out

    async def near(self, lon: float, lat: float, meters: float, count: int, skip: int = 0,
                   connector_type: str | None = None, within: Sequence[str] = ()
                   ) -> tuple[list[tuple[str, bytes]], bool]:
        """The `count` nearest locations within `meters` (by distance), less the first
        `skip`, that are members of every set in `within`, with their facet rows (JSON,
        decoded by the caller as far as it needs); and whether there may be more (the
        radius held at least `count`). One round trip."""
        geo = bk.geo_ct(connector_type) if connector_type else bk.GEO
        if self._sharded():
            return await self._near_sharded(geo, lon, lat, meters, count, skip, within)
        raw = await self._near_lua(keys=[bk.shard_key(k, 0) for k in (geo, *within)],
                                   args=[repr(lon), repr(lat), repr(meters), count, skip,
                                         bk.cat("")])
        more = int(raw[0]) >= count
        out = [(raw[i].decode(), raw[i + 1]) for i in range(1, len(raw), 2)]
        return out, more

    async def _near_sharded(self, geo: str, lon: float, lat: float, meters: float,
                            count: int, skip: int, within: Sequence[str]
                            ) -> tuple[list[tuple[str, bytes]], bool]:
        """`near` over every shard (two round trips, each to every shard at once): each
        shard's `count` nearest, merged by (distance, ref) into the global `count` nearest;
        then the window after `skip`, checked and read in the shards that hold it. The
        same answer as one index holding every location (ties in distance, which one
        index orders as it finds them, are ordered by ref)."""
        args = [repr(lon), repr(lat), repr(meters), count]
        found = await self._each_shard(
            lambda s: self._near_ids_lua(keys=[bk.shard_key(geo, s)], args=args))
        near = sorted(((float(res[i + 1]), res[i].decode()) for res in found
                       for i in range(0, len(res), 2)), key=lambda x: (x[0], x[1]))[:count]
        more = len(near) >= count
        window = [ref for _d, ref in near[skip:]]
        if not window:
            return [], more
        groups = self._by_shard(window)

        async def check(shard: int, at: list[int]) -> Any:
            refs = [window[i] for i in at]
            if not within:
                return await self._facets_lua(keys=[bk.cat(r) for r in refs])
            prefix = bk.cat(refs[0])[:-len(refs[0])]  # this shard's catalog hash prefix
            return await self._checked_facets_lua(
                keys=[bk.shard_key(k, shard) for k in within], args=[prefix, *refs])

        got = await asyncio.gather(*(check(s, at) for s, at in groups.items()))
        rows: list[bytes | None] = [None] * len(window)
        for at, res in zip(groups.values(), got, strict=True):
            for i, f in zip(at, res, strict=True):
                rows[i] = f
        return [(ref, f) for ref, f in zip(window, rows, strict=True) if f is not None], more

    @staticmethod
    def offer_field(row: list[Any]) -> str:
        """The catalog hash field holding a facet row's offer ("" if none): its
        location's template `t:{tariff}`, or (rows rendered before templates) `o:{item}`."""
        if len(row) > ROW_OFFER:
            return f"t:{row[ROW_OFFER]}" if row[ROW_OFFER] else ""
        return f"o:{row[ROW_ITEM]}"

    async def page(self, pairs: Sequence[tuple[str, list[Any]]], providers: Sequence[str] = ()
                   ) -> tuple[list[tuple[bytes | None, bytes | None]], dict[str, bytes]]:
        """Items and offers of (location ref, facet row) pairs, and the catalog headers
        of `providers`, in one round trip. Offers are expanded from their location's
        template without decoding them."""
        if not pairs and not providers:
            return [], {}
        if self._sharded():
            return await self._page_sharded(pairs, providers)
        args: list[str] = [str(len(pairs))]
        for _ref, row in pairs:
            args += [row[ROW_ITEM], self.offer_field(row)]
        raw = await self._page_lua(keys=[*(bk.cat(ref) for ref, _ in pairs),
                                         *(bk.shard_key(bk.provider(p), 0) for p in providers)],
                                   args=args)
        return self._page_rows(pairs, args, raw), {
            p: h for p, h in zip(providers, raw[2 * len(pairs):], strict=True) if h}

    async def _page_sharded(self, pairs: Sequence[tuple[str, list[Any]]],
                            providers: Sequence[str]
                            ) -> tuple[list[tuple[bytes | None, bytes | None]], dict[str, bytes]]:
        """`page` over the shards that hold the pairs (one call each, in parallel), the
        provider headers alongside."""
        groups = self._by_shard([ref for ref, _ in pairs])

        async def one(at: list[int]) -> list[tuple[bytes | None, bytes | None]]:
            part = [pairs[i] for i in at]
            args: list[str] = [str(len(part))]
            for _ref, row in part:
                args += [row[ROW_ITEM], self.offer_field(row)]
            raw = await self._page_lua(keys=[bk.cat(ref) for ref, _ in part], args=args)
            return self._page_rows(part, args, raw)

        got, heads = await asyncio.gather(asyncio.gather(*(one(at) for at in groups.values())),
                                          self.providers(providers))
        rows: list[tuple[bytes | None, bytes | None]] = [(None, None)] * len(pairs)
        for at, part_rows in zip(groups.values(), got, strict=True):
            for i, r in zip(at, part_rows, strict=True):
                rows[i] = r
        return rows, heads

    @staticmethod
    def _page_rows(pairs: Sequence[tuple[str, list[Any]]], args: list[str], raw: list[Any]
                   ) -> list[tuple[bytes | None, bytes | None]]:
        rows: list[tuple[bytes | None, bytes | None]] = []
        templates: dict[tuple[str, str], bytes] = {}
        for n, (ref, row) in enumerate(pairs):
            item, offer = raw[2 * n] or None, raw[2 * n + 1] or None
            if offer is not None and len(row) > ROW_OFFER:
                tkey = (ref, args[2 * n + 2])
                if offer == b"=":
                    offer = templates[tkey]
                else:
                    templates[tkey] = offer
                offer = offer.replace(_OFFER_ITEM, row[ROW_ITEM].encode())
            rows.append((item, offer))
        return rows

    async def items(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[bytes | None, bytes | None]]:
        """Item and offer JSON of (location ref, item id) pairs."""
        rows = await self.facet_rows(sorted({ref for ref, _ in pairs}))
        by_item = {row[ROW_ITEM]: row for locs in rows for row in locs}
        found = [(ref, by_item.get(iid, [iid])) for ref, iid in pairs]
        got, _ = await self.page(found)
        return [g if iid in by_item else (None, None)
                for g, (_ref, iid) in zip(got, pairs, strict=True)]

    async def providers(self, ids: Iterable[str]) -> dict[str, bytes]:
        ids = list(ids)
        if not ids:
            return {}
        if not self._sharded():
            raw = await self.redis.mget([bk.shard_key(bk.provider(p), 0) for p in ids])
            return {p: r for p, r in zip(ids, raw, strict=True) if r is not None}
        # each shard holding one of a CPO's locations keeps its header: the first found
        found = await self._each_shard(lambda s: self.redis.mget(
            [bk.shard_key(bk.provider(p), s) for p in ids]))
        out: dict[str, bytes] = {}
        for raw in found:
            for p, r in zip(ids, raw, strict=True):
                if r is not None and p not in out:
                    out[p] = r
        return out

    async def provider_headers(self, ids: Iterable[str]) -> dict[str, bytes]:
        """Like `providers`, from a copy kept in the process for `PROVIDER_TTL` seconds
        (a handful of CPOs, read by every discover)."""
        now = time.monotonic()
        want = list(ids)
        missing = [p for p in want if self._prov_cache.get(p, (0.0, None))[0] <= now]
        if missing:
            found = await self.providers(missing)
            if len(self._prov_cache) > 4096:
                self._prov_cache.clear()
            for p in missing:
                self._prov_cache[p] = (now + PROVIDER_TTL, found.get(p))
        out: dict[str, bytes] = {}
        for p in want:
            head = self._prov_cache[p][1]
            if head is not None:
                out[p] = head
        return out

    async def geo_multi(self, covers: Sequence[Any], connector_type: str | None = None,
                        within: Sequence[str] = ()) -> list[tuple[str, float, float]]:
        """(ref, lon, lat) of the locations in any of the covers (circles or boxes,
        bridge/beckn/geo.py), members of every set in `within`. One round trip."""
        args: list[Any] = [len(covers)]
        for c in covers:
            if c.radius:
                args += ["r", repr(c.lon), repr(c.lat), repr(c.radius), "0"]
            else:
                args += ["b", repr(c.lon), repr(c.lat), repr(c.width), repr(c.height)]
        geo = bk.geo_ct(connector_type) if connector_type else bk.GEO
        if not self._sharded():
            raw = await self._multi_lua(keys=[geo, *within], args=args)
        else:  # every shard's covers at once; a location is in one shard: no repeats
            found = await self._each_shard(lambda s: self._multi_lua(
                keys=[bk.shard_key(geo, s), *(bk.shard_key(w, s) for w in within)],
                args=args))
            raw = [v for part in found for v in part]
        return [(raw[i].decode(), float(raw[i + 1]), float(raw[i + 2]))
                for i in range(0, len(raw), 3)]

    async def station_refs(self, location_id: str) -> list[str]:
        name = bk.station(location_id)
        found = await self._each_shard(lambda s: self.redis.smembers(bk.shard_key(name, s)))
        return sorted({m.decode() for part in found for m in part})

    async def hours(self, refs: Sequence[str]) -> list[dict[str, Any] | None]:
        """The opening hours kept with each location (None: always open)."""
        if not refs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for ref in refs:
                pipe.hget(bk.cat(ref), "h")
            raw = await pipe.execute()
        return [orjson.loads(h) if h else None for h in raw]

    async def evse(self, normalised_evse_id: str) -> tuple[str, str] | None:
        found = await self._each_shard(
            lambda s: self.redis.hget(bk.shard_key(bk.EVSE, s), normalised_evse_id))
        raw = next((r for r in found if r is not None), None)
        if raw is None:
            return None
        ref, uid = raw.decode().split("\t", 1)
        return ref, uid

    async def has_token(self, tok: str) -> bool:
        name = bk.token(tok)
        return any(await self._each_shard(lambda s: self.redis.exists(bk.shard_key(name, s))))

    async def provider_ids(self) -> list[str]:
        """Every CPO with a catalog header (in any shard)."""
        found: set[str] = set()
        async for key in self.redis.scan_iter(match="*beckn:prov:*", count=500):
            found.add(key.decode().split("beckn:prov:", 1)[1])
        return sorted(found)

    async def provider_refs(self, prov: str) -> set[str]:
        """The refs of a CPO's listed locations (its provider index, every shard)."""
        name = bk.prov_idx(prov)
        found = await self._each_shard(lambda s: self.redis.smembers(bk.shard_key(name, s)))
        return {m.decode() for res in found for m in res}
