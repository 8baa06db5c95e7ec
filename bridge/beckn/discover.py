"""`discover` -> `on_discover`: search the pre-rendered catalog, answer one catalog per CPO.

Query forms (all may be combined; docs/beckn.md lists them):
- place: `message.spatial[]` s_dwithin a Point + distanceMeters (the fast path: the
  nearest locations straight from the GEO index), a LineString (a route corridor,
  ordered along the route, each item with its distance from the route) or a
  MultiPoint; s_within / s_intersects a Polygon (with holes), a MultiPolygon or a
  geometry `bbox`; the guide's latitude/longitude range filter (bridge/beckn/geo.py);
- connector type, minimum power, availability, provider, station, item, EVSE id:
  answered from indexes when they appear in the JSONPath as top-level `&&` terms (or
  in text search for connector names); the JSONPath itself (RFC 9535,
  python-jsonpath) is then evaluated over each remaining pre-rendered item;
- an availability window and a vehicle, as `&&` terms of the filter taken out of it
  (bridge/beckn/discover_terms.py): the window from the location's opening hours, the
  EVSE's reservation calendar and its status; the vehicle through the table of Indian
  EV models (bridge/mapping/vehicles.py; unknown: no vehicle filter, said in the
  answer's `warnings`).
- text: tokens of name, address, city, operator (AND), stopwords ignored.
- walk-in: an EVSE id or a charger QR payload (URL or text carrying the EVSE
  id) in `text_search`, or `evseId == '...'` in the JSONPath -> that charger.
- pagination: `page`/`limit` (message.pagination or beside context), ordered
  by distance when a point is given, else by location.

The search runs before the ACK (it only reads indexes and pre-rendered JSON,
a few ms), so a bad filter is NACKed at once and an ACK means the on_discover
is durably queued.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpath
import numpy as np
import orjson

from bridge.beckn import geo
from bridge.beckn.callbacks import HOLE, Part, callback_context, enqueue_callback
from bridge.beckn.discover_terms import TermError, Window, extract
from bridge.beckn.errors import BadFilter, SchemaError
from bridge.beckn.models import DiscoverQuery, DiscoverRequest, SpatialConstraint
from bridge.beckn.profiles import GUIDE, LTS, RC2
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest, validate
from bridge.mapping.catalog import (
    PACK_CONNECTOR_TYPES,
    POWER_BANDS,
    ROW_CT,
    ROW_EVSE,
    ROW_ITEM,
    ROW_KW,
    ROW_STATUS,
    ROW_UID,
    catalog_header,
    normalise_evse_id,
    parse_item_id,
)
from bridge.mapping.catalog_guide import CTX_CATALOG_V1, filter_view, guide_item
from bridge.mapping.catalog_lts import lts_catalog, lts_offer, lts_resource
from bridge.mapping.hours import open_throughout, resolve, zone
from bridge.mapping.vehicles import Vehicle, find
from bridge.store import beckn_keys as bk
from bridge.store.catalog import CatalogStore
from bridge.store.orders import slots_key

CONNECTOR_WORDS = {"ccs2": "CCS2", "ccs": "CCS2", "combo2": "CCS2", "type2": "Type2",
                   "t2": "Type2", "mennekes": "Type2", "chademo": "CHAdeMO", "gbt": "GB_T",
                   "ccs1": "CCS1", "type1": "Type1", "chaoji": "ChaoJi",
                   "iec62196t2combo": "CCS2", "iec62196t2": "Type2"}
CHUNK = 64
EARTH_M = 6_371_000.0
SCAN_MAX = 20_000  # candidate locations looked at for one page at most


def canonical_connector(value: str) -> str | None:
    return CONNECTOR_WORDS.get(re.sub(r"[^a-z0-9]", "", value.lower()))


_DOTTED = re.compile(r"(?<=[@$\]\w])\.(?!\.)([A-Za-z_][\w:\-]*)")


@lru_cache(maxsize=512)
def normalise_filter(expression: str) -> str:
    """Networks write member names with a prefix or a hyphen after a dot
    (`@.beckn:itemAttributes.connectorType`, `@.itemAttributes.connector-type`), which
    RFC 9535 does not allow: every `.name` becomes `['name']` (outside string literals),
    so the expression compiles and the indexes recognise its terms."""
    parts = re.split(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", expression)
    return "".join(p if i % 2 else _DOTTED.sub(lambda m: f"['{m.group(1)}']", p)
                   for i, p in enumerate(parts))


@lru_cache(maxsize=512)
def compile_filter(expression: str) -> Any:
    try:
        return jsonpath.compile(expression)
    except jsonpath.JSONPathError as exc:
        raise BadFilter(f"filters.expression: {exc.args[0] if exc.args else exc}",
                        {"field": "message.filters.expression"}) from exc


@dataclass
class Plan:
    """A discover query turned into index look-ups and per-item checks."""

    point: tuple[float, float] | None = None  # lon, lat
    radius: float | None = None  # m
    lat_range: tuple[float, float] | None = None
    lon_range: tuple[float, float] | None = None
    connector_types: set[str] = field(default_factory=set)
    min_kw: float | None = None
    available: bool = False
    provider: str | None = None
    text_tokens: set[str] = field(default_factory=set)
    path: Any = None  # compiled JSONPath
    evse_ids: set[str] = field(default_factory=set)  # normalised
    item_ids: set[str] = field(default_factory=set)
    stations: set[str] = field(default_factory=set)  # location ids, lower-cased
    # rc2 profile: only items whose connector the EV pack can name (connectorType is
    # required and an enum there); the guide profile lists every connector
    pack_only: bool = False
    shapes: list[geo.Shape] = field(default_factory=list)  # spatial forms but the fast one
    # per location ref: (metres from the query's geometry, metres along the route)
    annotations: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    window: Window | None = None
    soon: float = 900.0  # s: a window starting sooner needs the EVSE free now
    vehicle: Vehicle | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def row_checks(self) -> bool:
        return bool(self.connector_types or self.min_kw is not None or self.available
                    or self.evse_ids or self.pack_only or self.item_ids or self.vehicle)

    @property
    def spliceable(self) -> bool:
        """The indexes answer it whole: the worker may splice the stored items in (no
        per-item JSONPath or window check; a route's figures go in at the splice)."""
        return self.path is None and self.window is None


# --- the guide's filter dialect: `$[?(@.a.b == 'x' && @.c[*].d >= 1)]`

_CLAUSE = re.compile(r"^@\.?([\w\-.\[\]*'\":]+?)\s*(==|!=|>=|<=|>|<)\s*"
                     r"('(?:[^']*)'|\"(?:[^\"]*)\"|-?\d+(?:\.\d+)?|true|false)$")


def _literal(text: str) -> Any:
    if text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return float(text)


def _guide_filter(expr: str, plan: Plan) -> bool:
    """Read the guide's example filter, which is not valid RFC 9535 (it compares
    non-singular queries and uses names like `connector-type`). True if every
    `&&` term was understood and put into `plan`."""
    m = re.fullmatch(r"\s*\$\[\?\s*\(?(.*?)\)?\s*\]\s*", expr, re.S)
    if not m or "||" in m.group(1):
        return False
    lat = [-90.0, 90.0]
    lon = [-180.0, 180.0]
    for term in m.group(1).split("&&"):
        c = _CLAUSE.match(term.strip().strip("()").strip())
        if not c:
            return False
        path = re.sub(r"[\[\]'\"*]", ".", c.group(1)).lower()
        path = re.sub(r"\.+", ".", path).strip(".")
        op, value = c.group(2), _literal(c.group(3))
        last = path.rsplit(".", 1)[-1].replace("-", "").replace("_", "").split(":")[-1]
        if last in ("connectortype",) and op == "==" and isinstance(value, str):
            ct = canonical_connector(value) or value
            plan.connector_types.add(ct)
        elif last == "latitude" and isinstance(value, float) and op in (">=", ">", "<=", "<"):
            lat[0 if op[0] == ">" else 1] = value
        elif last == "longitude" and isinstance(value, float) and op in (">=", ">", "<=", "<"):
            lon[0 if op[0] == ">" else 1] = value
        elif last in ("maxpowerkw", "powerrating") and isinstance(value, float) and op in (">=", ">"):
            plan.min_kw = value
        else:
            return False
    if lat != [-90.0, 90.0]:
        plan.lat_range = (lat[0], lat[1])
    if lon != [-180.0, 180.0]:
        plan.lon_range = (lon[0], lon[1])
    return True


# hints of a valid JSONPath that indexes can answer (sound only for top-level `&&`)
_HINT_CT = re.compile(r"(?:connectorType|connector-type)['\"]?\]?\s*==\s*['\"]([^'\"]+)['\"]")
_HINT_KW = re.compile(r"maxPowerKW['\"]?\]?\s*(>=|>)\s*(\d+(?:\.\d+)?)")
_HINT_AV = re.compile(r"(?:stationStatus['\"]?\]?\s*==\s*['\"]Available|"
                      r"ev:availability['\"]?\]?\s*==\s*['\"]AVAILABLE)['\"]")
_HINT_PROV = re.compile(r"beckn:provider['\"]?\]\s*\[\s*['\"]beckn:id['\"]\s*\]\s*==\s*['\"]([^'\"]+)['\"]")
_HINT_EVSE = re.compile(r"evseId['\"]?\]?\s*==\s*['\"]([^'\"]+)['\"]")
_HINT_ITEM = re.compile(r"@\[\s*['\"]beckn:id['\"]\s*\]\s*==\s*['\"]([^'\"]+)['\"]")
_HINT_STATION = re.compile(r"chargingStation['\"]\s*\]\s*\[\s*['\"]id['\"]\s*\]\s*==\s*"
                           r"['\"]([^'\"]+)['\"]")


_ATTR = r"@\[\s*'beckn:itemAttributes'\s*\]\s*\[\s*'(?:{})'\s*\]"
_COVERED = (
    re.compile(_ATTR.format("connectorType|ev:connectorType|connector-type")
               + r"\s*==\s*'[^']+'"),
    re.compile(_ATTR.format("maxPowerKW|ev:maxPowerKW") + r"\s*>=\s*\d+(?:\.\d+)?"),
    re.compile(_ATTR.format("stationStatus") + r"\s*==\s*'Available'"),
    re.compile(_ATTR.format("ev:availability") + r"\s*==\s*'AVAILABLE'"),
    re.compile(r"@\[\s*'beckn:provider'\s*\]\s*\[\s*'beckn:id'\s*\]\s*==\s*'[^']+'"),
    re.compile(r"@\[\s*'beckn:id'\s*\]\s*==\s*'[^']+'"),
    re.compile(_ATTR.format("chargingStation") + r"\s*\[\s*'id'\s*\]\s*==\s*'[^']+'"),
)


def covered(expr: str) -> bool:
    """True if the indexes answer the whole filter (a `&&` of the common terms),
    so it need not be evaluated item by item."""
    m = re.fullmatch(r"\s*\$\[\?\s*\(?(.*?)\)?\s*\]\s*", expr, re.S)
    if not m or "||" in m.group(1):
        return False
    return all(any(t.fullmatch(term.strip()) for t in _COVERED) for term in m.group(1).split("&&"))


def _hints(expr: str, plan: Plan) -> None:
    if "||" in expr or "!" in expr.replace("!=", ""):
        return
    if m := _HINT_CT.search(expr):
        plan.connector_types.add(m.group(1))
    if m := _HINT_KW.search(expr):
        plan.min_kw = float(m.group(2))
    if _HINT_AV.search(expr):
        plan.available = True
    if m := _HINT_PROV.search(expr):
        plan.provider = m.group(1)
    if m := _HINT_EVSE.search(expr):
        plan.evse_ids.add(normalise_evse_id(m.group(1)))
    if m := _HINT_ITEM.search(expr):
        plan.item_ids.add(m.group(1))
    if m := _HINT_STATION.search(expr):
        plan.stations.add(m.group(1).lower())


def _spatial(constraints: list[SpatialConstraint], plan: Plan) -> None:
    """One s_dwithin Point: the fast path (`plan.point`); anything else: shapes
    (bridge/beckn/geo.py), the first giving the order, the others only filtering."""
    try:
        for i, c in enumerate(constraints):
            g = c.geometry
            assert g is not None  # validated
            if (len(constraints) == 1 and c.op == "s_dwithin" and g.type == "Point"
                    and not g.bbox):
                plan.point = geo.position(g.coordinates, "message.spatial.0.geometry.coordinates")
                plan.radius = float(c.distance_meters or 0)
                return
            plan.shapes.append(geo.spatial_shape(c.op, g.type, g.coordinates, g.bbox,
                                                 c.distance_meters, f"message.spatial.{i}"))
    except geo.GeoError as exc:
        raise SchemaError(str(exc), {"field": exc.field}) from exc


def _walk_in_candidates(text: str) -> list[str]:
    """EVSE id candidates in a text search or a QR payload."""
    text = text.strip()
    out = [text]
    if "://" in text:
        parts = urlsplit(text)
        for values in parse_qs(parts.query).values():
            out.extend(values)
        out.extend(s for s in parts.path.split("/") if s)
    out.extend(text.split())
    return [normalise_evse_id(c) for c in out if len(normalise_evse_id(c)) >= 5]


async def plan_query(q: DiscoverQuery, store: CatalogStore) -> Plan:
    plan = Plan()
    if q.spatial:
        _spatial(q.spatial, plan)
    if q.filter:
        try:
            taken = extract(normalise_filter(q.filter))
        except TermError as exc:
            raise BadFilter(f"filters.expression: {exc}",
                            {"field": "message.filters.expression"}) from exc
        plan.window = taken.window
        if taken.vehicle is not None:
            _vehicle(taken.vehicle.make, taken.vehicle.model, plan)
        if taken.rest is not None:
            expression = taken.rest
            try:
                plan.path = compile_filter(expression)
                _hints(expression, plan)
                if covered(expression):
                    plan.path = None
            except BadFilter:
                if taken.window is not None or taken.vehicle is not None or \
                        not _guide_filter(q.filter, plan):
                    raise
    if (plan.lat_range or plan.lon_range) and not plan.shapes and plan.point is None:
        lon_r = plan.lon_range or (-180.0, 180.0)
        lat_r = plan.lat_range or (-85.0, 85.0)
        plan.shapes.append(geo.area("Polygon", None, [lon_r[0], lat_r[0], lon_r[1], lat_r[1]],
                                    False))
    if q.text:
        for cand in _walk_in_candidates(q.text):
            if await store.evse(cand) is not None:
                plan.evse_ids.add(cand)
                return plan
        from bridge.mapping.catalog import tokens

        for tok in tokens(q.text):
            ct = canonical_connector(tok)
            if ct:
                plan.connector_types.add(ct)
            else:
                plan.text_tokens.add(tok)
    return plan


def _vehicle(make: str | None, model: str | None, plan: Plan) -> None:
    """The vehicle's connectors become a per-item check; an unknown one: no filter, and
    the answer says so."""
    found = find(make, model)
    asked = " ".join(p for p in (make, model) if p) or "?"
    if found is None:
        plan.warnings.append({"code": "VEHICLE_UNKNOWN", "message": (
            f"vehicle {asked!r} is not in this BPP's table of EV models: no vehicle filter "
            "was applied"), "details": {"make": make, "model": model}})
        return
    plan.vehicle = found
    plan.warnings.append({"code": "VEHICLE_MATCHED", "message": (
        f"chargers for {found.describe()}"), "details": {
            "make": found.make, "model": found.model, "connectorTypes": list(found.connectors),
            "maxDcKW": found.max_dc_kw, "maxAcKW": found.max_ac_kw}})


def _set_checks(plan: Plan) -> list[str]:
    """Set indexes a location must be in (text tokens, provider, availability, power)."""
    checks: list[str] = [bk.token(t) for t in plan.text_tokens]
    if plan.provider:
        checks.append(bk.prov_idx(plan.provider))
    if plan.available:
        checks.append(bk.AVAIL)
    if plan.min_kw:
        checks.append(bk.power(max(b for b in POWER_BANDS if plan.min_kw >= b)))
    return checks


def _single_ct(plan: Plan) -> str | None:
    return next(iter(plan.connector_types)) if len(plan.connector_types) == 1 else None


async def _candidates(plan: Plan, store: CatalogStore) -> list[str]:
    """Location refs to look at, in answer order, narrowed by the indexes (a point and
    radius without EVSE ids is `_near_chunks`' job)."""
    single_ct = _single_ct(plan)
    refs: list[str]
    if plan.evse_ids or plan.item_ids or plan.stations:
        kinds: list[set[str]] = []
        if plan.evse_ids:
            kinds.append({f[0] for f in [await store.evse(e) for e in plan.evse_ids] if f})
        if plan.item_ids:
            kinds.append({p.location_ref for p in map(parse_item_id, plan.item_ids)
                          if p is not None})
        if plan.stations:
            kinds.append({r for sid in plan.stations for r in await store.station_refs(sid)})
        found = set.intersection(*kinds)  # each kind given must hold
        refs = sorted(found)
        if plan.shapes and refs:  # and in the place asked for
            pos = await store.positions(refs)
            have = [(r, p) for r, p in zip(refs, pos, strict=True) if p is not None]
            m = geo.refine(plan.shapes, np.array([p[0] for _, p in have]),
                           np.array([p[1] for _, p in have]))
            refs = [r for (r, _), k in zip(have, m.keep, strict=True) if k]
    else:
        sets = [bk.token(t) for t in plan.text_tokens]
        if plan.provider:
            sets.append(bk.prov_idx(plan.provider))
        if single_ct:
            sets.append(bk.geo_ct(single_ct))  # a GEO set is a zset: use it below instead
            sets.pop()
        if sets:
            refs = await store.inter(sets)
        elif single_ct:
            refs = await store.geo_members(single_ct)
        else:
            refs = await store.all_refs(0, SCAN_MAX)
        plan.text_tokens = set()
        plan.provider = None
    # narrow by the other set indexes
    for key in _set_checks(plan):
        keep = await store.members(refs, key)
        refs = [r for r, k in zip(refs, keep, strict=True) if k]
    return refs[:SCAN_MAX]


def _row_ok(row: list[Any], plan: Plan) -> bool:
    """The per-item part of the plan, on a stored facet row (`ROW_*` columns)."""
    if plan.connector_types and row[ROW_CT] not in plan.connector_types:
        return False
    if plan.vehicle is not None and row[ROW_CT] not in plan.vehicle.connectors:
        return False
    if plan.item_ids and row[ROW_ITEM] not in plan.item_ids:
        return False
    if plan.min_kw is not None and row[ROW_KW] < plan.min_kw:
        return False
    if plan.available and row[ROW_STATUS] != "Available":
        return False
    if plan.pack_only and row[ROW_CT] not in PACK_CONNECTOR_TYPES:
        return False
    return not (plan.evse_ids and row[ROW_EVSE] not in plan.evse_ids)


Rows = list[tuple[str, bytes]]  # (location ref, its facet rows as JSON), in answer order


async def _near_chunks(plan: Plan, store: CatalogStore, want: int) -> AsyncIterator[Rows]:
    """Locations by distance from the point, a growing window at a time: the first
    window holds enough locations for `want` items when every item of a location in
    the index matches, which is the common case (connector type, no other filter)."""
    assert plan.point is not None and plan.radius is not None
    within = _set_checks(plan)
    count, done = max(8, want), 0
    while done < SCAN_MAX:
        rows, more = await store.near(plan.point[0], plan.point[1], plan.radius, count, done,
                                      _single_ct(plan), within)
        yield rows
        if not more:
            return
        done, count = count, min(count * 4, SCAN_MAX)


async def _shape_chunks(plan: Plan, store: CatalogStore, want: int) -> AsyncIterator[Rows]:
    """Locations in a shape's order (along a route, or by distance), a round of GEOSEARCH
    covers at a time (bridge/beckn/geo.py): what a round found is measured exactly, and
    the locations whose order key is below the round's horizon (none can come later) are
    passed on, their facet rows read a chunk at a time."""
    shape = plan.shapes[0]
    within = _set_checks(plan)
    ct = _single_ct(plan)
    seen: set[str] = set()
    # order key in 10 m steps (one route position: the nearer to the route first), distance
    pending: list[tuple[float, float, str]] = []
    for covers, horizon in geo.rounds(shape):
        found = await store.geo_multi(covers, ct, within)
        new = [(r, x, y) for r, x, y in found if r not in seen]
        seen.update(r for r, _, _ in new)
        if new:
            m = geo.refine(plan.shapes, np.array([x for _, x, _ in new]),
                           np.array([y for _, _, y in new]))
            for n, (ref, _x, _y) in enumerate(new):
                if m.keep[n]:
                    pending.append((round(float(m.key[n]), -1), 0.0 if m.distance is None
                                    else float(m.distance[n]), ref))
                    if m.distance is not None and shape.annotate:
                        plan.annotations[ref] = (float(m.distance[n]), None if m.along is None
                                                 else float(m.along[n]))
        pending.sort()
        # a step wholly below the horizon is complete: a later round finds only farther
        cut = len(pending) if horizon == math.inf else next(
            (i for i, (k, _d, _r) in enumerate(pending) if k + 10 > horizon), len(pending))
        ready, pending = [r for _k, _d, r in pending[:cut]], pending[cut:]
        async for rows in _ref_chunks(ready, store, want):
            yield rows
        if len(seen) >= SCAN_MAX:
            return


async def _ref_chunks(refs: list[str], store: CatalogStore, want: int) -> AsyncIterator[Rows]:
    start, size = 0, max(16, want)
    while start < len(refs):
        chunk = refs[start:start + size]
        yield list(zip(chunk, await store.facets_raw(chunk), strict=True))
        start += size
        size = min(size * 2, CHUNK)


def _prov(ref: str) -> str:
    cc, pid, _ = ref.split(":", 2)
    return f"{cc}-{pid}"


async def _chunks(q: DiscoverQuery, plan: Plan, store: CatalogStore) -> AsyncIterator[Rows]:
    want = q.page * q.limit
    by_id = plan.evse_ids or plan.item_ids or plan.stations
    if plan.shapes and not by_id:
        return _shape_chunks(plan, store, want)
    if plan.point is not None and plan.radius is not None and not by_id:
        return _near_chunks(plan, store, want)
    return _ref_chunks(await _candidates(plan, store), store, want)


async def _window_ok(pairs: list[tuple[str, list[Any]]], plan: Plan, store: CatalogStore,
                     now: datetime) -> list[tuple[str, list[Any]]]:
    """The items free for the whole of `plan.window`: the location open throughout (its
    opening hours), no reservation of the EVSE overlapping it (the slot calendar), the
    EVSE in service, and free now if the window starts within `plan.soon` s."""
    assert plan.window is not None
    refs = sorted({ref for ref, _ in pairs})
    hours = dict(zip(refs, await store.hours(refs), strict=True))
    spans: dict[str, tuple[datetime, datetime]] = {}
    for ref in refs:
        h = hours[ref]
        tz = zone(h.get("tz") if h else None)  # (a catalog without: UTC)
        start = resolve(plan.window.start, tz, now)
        end = resolve(plan.window.end, tz, now)
        if end <= start:
            end = end + timedelta(days=1)  # 22:00 to 02:00
        spans[ref] = (start, end)
    async with store.redis.pipeline(transaction=False) as pipe:
        for ref, row in pairs:
            cc, pid, _ = ref.split(":", 2)
            hi = int(spans[ref][1].timestamp() * 1000)
            pipe.zrangebyscore(slots_key(cc, pid, row[ROW_UID]), "-inf", f"({hi}")
        booked = await pipe.execute()
    out = []
    for (ref, row), slots in zip(pairs, booked, strict=True):
        start, end = spans[ref]
        if row[ROW_STATUS] in ("OutOfService", "Planned"):
            continue
        if (start - now).total_seconds() < plan.soon and row[ROW_STATUS] != "Available":
            continue
        if not open_throughout(hours[ref], start, end):
            continue
        lo = int(start.timestamp() * 1000)
        if any(int(m.decode().rpartition("|")[2]) > lo for m in slots):
            continue
        out.append((ref, row))
    return out


async def select_page(q: DiscoverQuery, plan: Plan, store: CatalogStore
                      ) -> list[tuple[str, list[Any]]]:
    """The page as (location ref, facet row) pairs, when the indexes answer the whole
    query (no JSONPath left to evaluate): no item is read."""
    assert plan.spliceable
    skip = (q.page - 1) * q.limit
    check = plan.row_checks
    out: list[tuple[str, list[Any]]] = []
    async for chunk in await _chunks(q, plan, store):
        need = skip + q.limit - len(out)
        pairs: list[tuple[str, list[Any]]] = []
        for ref, facets in chunk:
            if facets:
                pairs += [(ref, row) for row in orjson.loads(facets)
                          if not check or _row_ok(row, plan)]
                if len(pairs) >= need:
                    break
        if skip >= len(pairs):
            skip -= len(pairs)
            continue
        out += pairs[skip:need]
        skip = 0
        if len(out) >= q.limit:
            break
    return out


# provider, item JSON, offer JSON, facet row, location ref
Found = tuple[str, bytes, bytes | None, list[Any], str]


async def search(q: DiscoverQuery, store: CatalogStore, headers: dict[str, bytes] | None = None
                 ) -> list[Found]:
    """The page of matching items: (provider id, item JSON, offer JSON or None); the
    catalog headers of their providers are put into `headers` (fetched along).

    Candidates are walked in answer order, a window of locations at a time (for a
    point: nearest first, straight from the GEO index); the JSONPath (when the indexes
    do not answer it fully) is evaluated on small batches of items, stopping as soon
    as the page is full. Round trips for the usual query: one for the window, one
    for the page's items, offers and provider headers."""
    return await _search(q, await plan_query(q, store), store, headers)


async def _search(q: DiscoverQuery, plan: Plan, store: CatalogStore,
                  headers: dict[str, bytes] | None = None) -> list[Found]:
    skip = (q.page - 1) * q.limit
    chunks = await _chunks(q, plan, store)
    heads = headers if headers is not None else {}
    asked: set[str] = set()
    out: list[Found] = []
    batch = max(q.limit, 16)
    check = plan.row_checks
    now = datetime.now(UTC)
    async for chunk in chunks:
        # decode facet rows only as far as the page needs them
        exact = plan.path is None and plan.window is None
        need = skip + q.limit - len(out) if exact else SCAN_MAX
        pairs: list[tuple[str, list[Any]]] = []
        for ref, facets in chunk:
            if facets:
                pairs += [(ref, row) for row in orjson.loads(facets)
                          if not check or _row_ok(row, plan)]
                if len(pairs) >= need:
                    break
        if plan.window is not None and pairs:
            pairs = await _window_ok(pairs, plan, store, now)
        if exact:
            if skip >= len(pairs):
                skip -= len(pairs)
                continue
            pairs = pairs[skip:skip + q.limit - len(out)]
            skip = 0
        for b in range(0, len(pairs), batch):
            part = pairs[b:b + batch]
            provs = sorted({_prov(ref) for ref, _ in part} - asked)
            asked.update(provs)
            got, found = await store.page(part, provs)
            heads.update(found)
            for (ref, row), (item, offer) in zip(part, got, strict=True):
                if item is None:
                    continue
                if not exact:
                    # both profiles' names, and the EVSE's status (bridge/mapping/catalog_guide.py)
                    if plan.path is not None and not plan.path.findall(
                            [filter_view(orjson.loads(item), row[ROW_STATUS])]):
                        continue
                    if skip:
                        skip -= 1
                        continue
                out.append((_prov(ref), item, offer, row, ref))
                if len(out) >= q.limit:
                    return out
    return out


def _catalog(prov: str, headers: dict[str, bytes], bpp_id: str, bpp_uri: str) -> dict[str, Any]:
    p = orjson.loads(headers[prov]) if prov in headers else {
        "beckn:id": prov, "beckn:descriptor": {"@type": "beckn:Descriptor",
                                               "schema:name": prov}}
    return catalog_header(p, bpp_id, bpp_uri)


_HOLE = orjson.Fragment(b"[" + HOLE + b"]")


async def on_discover_recipe(q: DiscoverQuery, plan: Plan, store: CatalogStore, bpp_id: str,
                             bpp_uri: str) -> tuple[dict[str, Any], list[list[Part]]]:
    """`message` of on_discover with a hole for each list of items and offers, and the
    pre-rendered fields that fill them (see `enqueue_callback`): for queries that the
    indexes answer whole."""
    by_prov: dict[str, list[tuple[str, list[Any]]]] = {}
    for ref, row in await select_page(q, plan, store):
        by_prov.setdefault(_prov(ref), []).append((ref, row))
    headers = await store.provider_headers(by_prov)
    catalogs = []
    holes: list[list[Part]] = []
    for prov, rows in by_prov.items():
        cat = _catalog(prov, headers, bpp_id, bpp_uri)
        cat["beckn:items"] = _HOLE
        holes.append([_item_part(ref, row[ROW_ITEM], plan.annotations.get(ref))
                      for ref, row in rows])
        offers: list[Part] = [(bk.cat(ref), f, row[ROW_ITEM]) for ref, row in rows
                              if (f := store.offer_field(row))]
        if offers:
            cat["beckn:offers"] = _HOLE
            holes.append(offers)
        catalogs.append(cat)
    return {"catalogs": catalogs}, holes


def annotate(item: dict[str, Any], figures: tuple[float, float | None]) -> dict[str, Any]:
    """An item of a route or multi-point answer, with its distance from the route (or the
    nearest point) and along the route, in its descriptor (the one part of an rc2 item
    that admits fields of our own)."""
    desc = dict(item.get("beckn:descriptor") or {"@type": "beckn:Descriptor"})
    desc["geo:distanceMeters"] = round(figures[0])
    if figures[1] is not None:
        desc["geo:alongRouteMeters"] = round(figures[1])
    return {**item, "beckn:descriptor": desc}


_DESC = b'"beckn:descriptor":{'


def _figures(figures: tuple[float, float | None]) -> bytes:
    extra = b'"geo:distanceMeters":%d,' % round(figures[0])
    if figures[1] is not None:
        extra += b'"geo:alongRouteMeters":%d,' % round(figures[1])
    return extra


def _item_part(ref: str, item: str, figures: tuple[float, float | None] | None) -> Part:
    """The hole of one item; with a route's figures, inserted by the worker's claim."""
    if figures is None:
        return (bk.cat(ref), f"i:{item}", item)
    return (bk.cat(ref), f"i:{item}", item, _figures(figures).decode())


def annotate_raw(item: bytes, figures: tuple[float, float | None]) -> bytes:
    """`annotate` on the stored JSON without decoding it: the figures go first in the
    item's descriptor (the first `"beckn:descriptor":{` of a rendered item is its own:
    the renderer writes it before any nested object)."""
    at = item.find(_DESC)
    if at < 0:
        return orjson.dumps(annotate(orjson.loads(item), figures))
    at += len(_DESC)
    return item[:at] + _figures(figures) + item[at:]


async def on_discover_message(q: DiscoverQuery, store: CatalogStore, bpp_id: str,
                              bpp_uri: str, plan: Plan | None = None) -> dict[str, Any]:
    """`message` of on_discover: one catalog per CPO, items and offers as stored
    (inserted as pre-serialised JSON, never decoded)."""
    headers: dict[str, bytes] = {}
    plan = plan or await plan_query(q, store)
    page = await _search(q, plan, store, headers)
    by_prov: dict[str, list[tuple[bytes, bytes | None]]] = {}
    for prov, item, offer, _row, ref in page:
        if ref in plan.annotations:
            item = annotate_raw(item, plan.annotations[ref])
        by_prov.setdefault(prov, []).append((item, offer))
    catalogs = []
    for prov, rows in by_prov.items():
        cat = _catalog(prov, headers, bpp_id, bpp_uri)
        cat["beckn:items"] = [orjson.Fragment(i) for i, _ in rows]
        offers = [orjson.Fragment(o) for _, o in rows if o is not None]
        if offers:
            cat["beckn:offers"] = offers
        catalogs.append(cat)
    return {"catalogs": catalogs}


async def on_discover_guide(q: DiscoverQuery, plan: Plan, store: CatalogStore, bpp_id: str,
                            bpp_uri: str) -> list[dict[str, Any]]:
    """The guide profile's catalogs (example 02): the same page, each item written in
    the guide's vocabulary (`ev:` attributes, `beckn:gps`), offers as the catalog has
    them (the guide's are a subset)."""
    headers: dict[str, bytes] = {}
    page = await _search(q, plan, store, headers)
    by_prov: dict[str, list[tuple[dict[str, Any], dict[str, Any] | None]]] = {}
    for prov, item, offer, row, ref in page:
        o = orjson.loads(offer) if offer is not None else None
        gi = guide_item(orjson.loads(item), row[ROW_STATUS], o)
        if ref in plan.annotations:
            gi = annotate(gi, plan.annotations[ref])
        by_prov.setdefault(prov, []).append((gi, o))
    catalogs = []
    for prov, rows in by_prov.items():
        cat = _catalog(prov, headers, bpp_id, bpp_uri)
        cat["@context"] = CTX_CATALOG_V1
        cat["beckn:items"] = [i for i, _ in rows]
        offers = [o for _, o in rows if o is not None]
        if offers:
            cat["beckn:offers"] = offers
        catalogs.append(cat)
    return catalogs


async def on_discover_lts(q: DiscoverQuery, plan: Plan, store: CatalogStore, bpp_id: str,
                          bpp_uri: str) -> list[dict[str, Any]]:
    """The LTS profile's catalogs: the same page, each item a Resource and its offer an
    Offer (bridge/mapping/catalog_lts.py)."""
    headers: dict[str, bytes] = {}
    page = await _search(q, plan, store, headers)
    by_prov: dict[str, tuple[list[Any], list[Any], list[Any]]] = {}
    for prov, item, offer, row, ref in page:
        i = orjson.loads(item)
        if ref in plan.annotations:
            i = annotate(i, plan.annotations[ref])
        resources, offers, places = by_prov.setdefault(prov, ([], [], []))
        resources.append(lts_resource(i, row[ROW_STATUS]))
        places.extend(i.get("beckn:availableAt") or [])
        if offer is not None:
            offers.append(lts_offer(orjson.loads(offer)))
    return [lts_catalog(_catalog(prov, headers, bpp_id, bpp_uri), *parts)
            for prov, parts in by_prov.items()]


async def handle_discover(req: BecknRequest) -> None:
    services = req.services
    settings = services.settings
    # the context is validated already: passed as the model, pydantic keeps it as is
    dreq = validate(DiscoverRequest, {**req.body, "context": req.context})
    q = dreq.query()
    q.limit = min(q.limit, settings.beckn_discover_max_limit)
    store = services.extra.get("catalog")
    if not isinstance(store, CatalogStore):
        store = CatalogStore(services.redis)
        services.extra["catalog"] = store
    plan = await plan_query(q, store)
    plan.pack_only = req.profile in (RC2, LTS)
    plan.soon = settings.journey_walk_in_minutes * 60.0
    bpp_uri = settings.bpp_uri
    ctx = callback_context(req.context, "discover", settings, datetime.now(UTC))
    if req.profile == LTS:  # Resources and Offers, in the LTS's message.catalogs
        catalogs = await on_discover_lts(q, plan, store, settings.beckn_subscriber_id,
                                         settings.lts_bpp_uri)
        await enqueue_callback(services.redis, settings, ctx, {"catalogs": catalogs},
                               answers="discover")
        return
    if req.profile == GUIDE:  # the guide puts `catalogs` beside `context` (example 02)
        catalogs = await on_discover_guide(q, plan, store, settings.beckn_subscriber_id, bpp_uri)
        beside: dict[str, Any] = {"catalogs": catalogs}
        if plan.warnings:
            beside["warnings"] = plan.warnings
        await enqueue_callback(services.redis, settings, ctx, beside=beside,
                               answers="discover")
        return
    holes: list[list[Part]] | None = None
    if plan.spliceable:  # the indexes answer it: the worker splices the items in
        message, holes = await on_discover_recipe(q, plan, store, settings.beckn_subscriber_id,
                                                  bpp_uri)
    else:
        message = await on_discover_message(q, store, settings.beckn_subscriber_id, bpp_uri,
                                            plan)
    if plan.warnings:  # what was not applied (an unknown vehicle), what was
        message["warnings"] = plan.warnings
    # a duplicate discover is searched again (nothing changes by it), so its answer is
    # not kept: the record holds the request's digest only (bridge/beckn/intake.py)
    await enqueue_callback(services.redis, settings, ctx, message, holes=holes,
                           answers="discover")


register_action("discover", handle_discover)
