"""`discover` -> `on_discover`: search the pre-rendered catalog, answer one catalog per CPO.

Query forms (all may be combined; docs/beckn.md lists them):
- place: `message.spatial[]` s_dwithin (Point + distanceMeters) or s_within
  (Polygon, or a geometry `bbox`); the guide's latitude/longitude range filter.
- connector type, minimum power, availability, provider: answered from indexes
  when they appear in the JSONPath as top-level `&&` terms (or in text search
  for connector names); the JSONPath itself (RFC 9535, python-jsonpath) is then
  evaluated over each remaining pre-rendered item.
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
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpath
import orjson

from bridge.beckn.callbacks import HOLE, Part, callback_context, enqueue_callback
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
    catalog_header,
    normalise_evse_id,
)
from bridge.mapping.catalog_guide import CTX_CATALOG_V1, filter_view, guide_item
from bridge.mapping.catalog_lts import lts_catalog, lts_offer, lts_resource
from bridge.store import beckn_keys as bk
from bridge.store.catalog import CatalogStore

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
    polygon: list[tuple[float, float]] | None = None
    lat_range: tuple[float, float] | None = None
    lon_range: tuple[float, float] | None = None
    connector_types: set[str] = field(default_factory=set)
    min_kw: float | None = None
    available: bool = False
    provider: str | None = None
    text_tokens: set[str] = field(default_factory=set)
    path: Any = None  # compiled JSONPath
    evse_ids: set[str] = field(default_factory=set)  # normalised
    # rc2 profile: only items whose connector the EV pack can name (connectorType is
    # required and an enum there); the guide profile lists every connector
    pack_only: bool = False

    @property
    def row_checks(self) -> bool:
        return bool(self.connector_types or self.min_kw is not None or self.available
                    or self.evse_ids or self.pack_only)


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


_ATTR = r"@\[\s*'beckn:itemAttributes'\s*\]\s*\[\s*'(?:{})'\s*\]"
_COVERED = (
    re.compile(_ATTR.format("connectorType|ev:connectorType|connector-type")
               + r"\s*==\s*'[^']+'"),
    re.compile(_ATTR.format("maxPowerKW|ev:maxPowerKW") + r"\s*>=\s*\d+(?:\.\d+)?"),
    re.compile(_ATTR.format("stationStatus") + r"\s*==\s*'Available'"),
    re.compile(_ATTR.format("ev:availability") + r"\s*==\s*'AVAILABLE'"),
    re.compile(r"@\[\s*'beckn:provider'\s*\]\s*\[\s*'beckn:id'\s*\]\s*==\s*'[^']+'"),
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


def _spatial(c: SpatialConstraint, plan: Plan) -> None:
    g = c.geometry
    assert g is not None  # validated
    if c.op == "s_dwithin":
        if g.type != "Point" or not g.coordinates or len(g.coordinates) < 2:
            raise SchemaError("s_dwithin needs a Point geometry", {"field": "message.spatial"})
        plan.point = (float(g.coordinates[0]), float(g.coordinates[1]))
        plan.radius = float(c.distance_meters or 0)
    elif c.op in ("s_within", "s_intersects"):
        if g.bbox:
            w, s, e, n = (float(x) for x in g.bbox)
            plan.polygon = [(w, s), (e, s), (e, n), (w, n), (w, s)]
        elif g.type == "Polygon" and g.coordinates:
            plan.polygon = [(float(p[0]), float(p[1])) for p in g.coordinates[0]]
        else:
            raise SchemaError(f"{c.op} needs a Polygon or a bbox", {"field": "message.spatial"})
    else:
        raise SchemaError(f"spatial op {c.op} is not supported (s_dwithin, s_within)",
                          {"field": "message.spatial.op"})


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
    for c in q.spatial:
        _spatial(c, plan)
    if q.filter:
        expression = normalise_filter(q.filter)
        try:
            plan.path = compile_filter(expression)
            _hints(expression, plan)
            if covered(expression):
                plan.path = None
        except BadFilter:
            if not _guide_filter(q.filter, plan):
                raise
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


def _inside(pt: tuple[float, float], poly: list[tuple[float, float]]) -> bool:
    x, y = pt
    inside = False
    j = len(poly) - 1
    for i in range(len(poly)):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / ((yj - yi) or 1e-12) + xi:
            inside = not inside
        j = i
    return inside


def _haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(
        (lon2 - lon1) / 2) ** 2
    return 2 * EARTH_M * math.asin(math.sqrt(h))


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
    if plan.evse_ids:
        found = [await store.evse(e) for e in plan.evse_ids]
        refs = sorted({f[0] for f in found if f})
    elif plan.polygon or plan.lat_range or plan.lon_range:
        if plan.polygon:
            xs = [p[0] for p in plan.polygon]
            ys = [p[1] for p in plan.polygon]
            lon_r, lat_r = (min(xs), max(xs)), (min(ys), max(ys))
        else:
            lon_r = plan.lon_range or (-180.0, 180.0)
            lat_r = plan.lat_range or (-85.0, 85.0)
        center = ((lon_r[0] + lon_r[1]) / 2, (lat_r[0] + lat_r[1]) / 2)
        # box size along the parallel / meridian (haversine would wrap at 180 degrees)
        widest = max(abs(lat_r[0]), abs(lat_r[1]))
        width = max(math.radians(lon_r[1] - lon_r[0]) * EARTH_M * math.cos(math.radians(
            min(widest, 89.0))), 1.0) * 1.02
        height = max(math.radians(lat_r[1] - lat_r[0]) * EARTH_M, 1.0) * 1.02
        rows = await store.geo_box(center[0], center[1], width, height, single_ct)
        refs = []
        for row in rows:
            ref, _d, pos = row  # type: ignore[misc]
            if plan.polygon and not _inside(pos, plan.polygon):
                continue
            if not (lon_r[0] <= pos[0] <= lon_r[1] and lat_r[0] <= pos[1] <= lat_r[1]):
                continue
            refs.append(ref)
        if plan.point is None:
            plan.point = center
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
            refs = sorted(m.decode() for m in await store.redis.zrange(bk.geo_ct(single_ct), 0, -1))
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
    if plan.point is not None and plan.radius is not None and not plan.evse_ids:
        return _near_chunks(plan, store, want)
    return _ref_chunks(await _candidates(plan, store), store, want)


async def select_page(q: DiscoverQuery, plan: Plan, store: CatalogStore
                      ) -> list[tuple[str, list[Any]]]:
    """The page as (location ref, facet row) pairs, when the indexes answer the whole
    query (no JSONPath left to evaluate): no item is read."""
    assert plan.path is None
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


Found = tuple[str, bytes, bytes | None, list[Any]]  # provider, item JSON, offer JSON, facet row


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
    async for chunk in chunks:
        # decode facet rows only as far as the page needs them
        need = skip + q.limit - len(out) if plan.path is None else SCAN_MAX
        pairs: list[tuple[str, list[Any]]] = []
        for ref, facets in chunk:
            if facets:
                pairs += [(ref, row) for row in orjson.loads(facets)
                          if not check or _row_ok(row, plan)]
                if len(pairs) >= need:
                    break
        if plan.path is None:
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
                if plan.path is not None:
                    # both profiles' names, and the EVSE's status (bridge/mapping/catalog_guide.py)
                    if not plan.path.findall([filter_view(orjson.loads(item), row[ROW_STATUS])]):
                        continue
                    if skip:
                        skip -= 1
                        continue
                out.append((_prov(ref), item, offer, row))
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
        holes.append([(bk.cat(ref), f"i:{row[ROW_ITEM]}", row[ROW_ITEM]) for ref, row in rows])
        offers = [(bk.cat(ref), f, row[ROW_ITEM]) for ref, row in rows
                  if (f := store.offer_field(row))]
        if offers:
            cat["beckn:offers"] = _HOLE
            holes.append(offers)
        catalogs.append(cat)
    return {"catalogs": catalogs}, holes


async def on_discover_message(q: DiscoverQuery, store: CatalogStore, bpp_id: str,
                              bpp_uri: str, plan: Plan | None = None) -> dict[str, Any]:
    """`message` of on_discover: one catalog per CPO, items and offers as stored
    (inserted as pre-serialised JSON, never decoded)."""
    headers: dict[str, bytes] = {}
    page = await _search(q, plan or await plan_query(q, store), store, headers)
    by_prov: dict[str, list[tuple[bytes, bytes | None]]] = {}
    for prov, item, offer, _row in page:
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
    for prov, item, offer, row in page:
        o = orjson.loads(offer) if offer is not None else None
        by_prov.setdefault(prov, []).append((guide_item(orjson.loads(item), row[ROW_STATUS], o),
                                            o))
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
    for prov, item, offer, row in page:
        i = orjson.loads(item)
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
        await enqueue_callback(services.redis, settings, ctx, beside={"catalogs": catalogs},
                               answers="discover")
        return
    holes: list[list[Part]] | None = None
    if plan.path is None:  # the indexes answer it: the worker splices the items in
        message, holes = await on_discover_recipe(q, plan, store, settings.beckn_subscriber_id,
                                                  bpp_uri)
    else:
        message = await on_discover_message(q, store, settings.beckn_subscriber_id, bpp_uri,
                                            plan)
    # a duplicate discover is searched again (nothing changes by it), so its answer is
    # not kept: the record holds the request's digest only (bridge/beckn/intake.py)
    await enqueue_callback(services.redis, settings, ctx, message, holes=holes,
                           answers="discover")


register_action("discover", handle_discover)
