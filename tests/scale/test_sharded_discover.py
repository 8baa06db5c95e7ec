"""Discover on a sharded catalog (docs/scaling.md): the same locations rendered into one
Redis (one index) and into a real Redis Cluster (12 shards, each with its own GEO, facet,
text and EVSE-id indexes) answer every discover query form with the same items in the
same order, page after page: nearest first across shards, exact pagination.

The locations are the discover benchmark's (bench/discover.py `make_location`: 4 CPOs,
random sites around Bengaluru, every connector standard), fewer of them. The queries:
points with radii and filters, pages 1-3, a box, a route corridor (with filters, two
pages), a MultiPoint, a Polygon with a hole, text, walk-in by EVSE id, unfiltered pages."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bench.discover import make_location
from bridge import redisconn
from bridge.beckn.discover import search
from bridge.beckn.models import DiscoverQuery, SpatialConstraint
from bridge.config import Settings
from bridge.ocpi.models import Tariff
from bridge.store import shards
from bridge.store.catalog import CatalogStore
from bridge.store.ocpi_store import OcpiStore
from tests.scale.redis_topologies import Cluster, Node

# real Redis topologies on loopback: `make test-cluster` (docs/scaling.md#tests)
pytestmark = pytest.mark.cluster

LOCATIONS = 1500
EVSES = 3
CENTER = (77.5946, 12.9716)
GEO = "$['beckn:availableAt'][*]['geo']"


def _near(lon: float, lat: float, meters: float, flt: str | None = None, page: int = 1,
          limit: int = 20) -> DiscoverQuery:
    return DiscoverQuery(spatial=[SpatialConstraint(
        op="s_dwithin", targets=GEO, geometry={"type": "Point", "coordinates": [lon, lat]},
        distance_meters=meters)], filter=flt, page=page, limit=limit)


def queries() -> list[DiscoverQuery]:
    rnd = random.Random(7)
    filters = [None,
               "$[?@['beckn:itemAttributes']['connectorType'] == 'CCS2']",
               "$[?@['beckn:itemAttributes']['connectorType'] == 'Type2']",
               "$[?@['beckn:itemAttributes']['maxPowerKW'] >= 50]",
               "$[?@['beckn:provider']['beckn:id'] == 'IN-ZAP']",
               "$[?@['beckn:itemAttributes']['connectorType'] == 'CCS2' && "
               "@['beckn:itemAttributes']['maxPowerKW'] >= 50]"]
    out = []
    for _ in range(14):
        lon = CENTER[0] + rnd.uniform(-0.2, 0.2)
        lat = CENTER[1] + rnd.uniform(-0.2, 0.2)
        meters = rnd.choice([1500, 4000, 9000])
        flt = rnd.choice(filters)
        for page in (1, 2, 3):
            out.append(_near(lon, lat, meters, flt, page, rnd.choice([5, 20])))
    box = {"type": "Polygon", "coordinates": [[[77.55, 12.93], [77.65, 12.93], [77.65, 13.02],
                                               [77.55, 13.02], [77.55, 12.93]]]}
    for page in (1, 2):
        out.append(DiscoverQuery(spatial=[SpatialConstraint(op="s_within", targets=GEO,
                                                            geometry=box)], page=page))
    # a route corridor (ordered along the route), a MultiPoint, an area with a hole
    route = [[77.45, 12.85], [77.58, 12.97], [77.62, 13.02], [77.75, 13.10]]
    for meters, flt in ((1500, None), (3000, filters[1]), (800, filters[3])):
        for page in (1, 2):
            out.append(DiscoverQuery(spatial=[SpatialConstraint(
                op="s_dwithin", targets=GEO, geometry={"type": "LineString",
                                                       "coordinates": route},
                distance_meters=meters)], filter=flt, page=page, limit=10))
    out.append(DiscoverQuery(spatial=[SpatialConstraint(
        op="s_dwithin", targets=GEO, geometry={"type": "MultiPoint", "coordinates": [
            [77.55, 12.95], [77.66, 13.01]]}, distance_meters=3000)], limit=30))
    holed = {"type": "Polygon", "coordinates": [
        [[77.50, 12.90], [77.70, 12.90], [77.70, 13.05], [77.50, 13.05], [77.50, 12.90]],
        [[77.57, 12.95], [77.62, 12.95], [77.62, 13.00], [77.57, 13.00], [77.57, 12.95]]]}
    for page in (1, 3):
        out.append(DiscoverQuery(spatial=[SpatialConstraint(op="s_within", targets=GEO,
                                                            geometry=holed)], page=page))
    out += [DiscoverQuery(text="Station 77", limit=10),
            DiscoverQuery(text="Ring Road", page=3),
            DiscoverQuery(text="IN*TPC*E0000400"),
            DiscoverQuery(filter=filters[1], page=2, limit=50),
            DiscoverQuery(page=4, limit=30)]
    return out


async def _load(redis: Any) -> CatalogStore:
    store = OcpiStore(redis)
    for pid in ("TPC", "ZAP", "CHG", "STA"):
        await store.put("tariffs", Tariff.model_validate({
            "country_code": "IN", "party_id": pid, "id": "T1", "currency": "INR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 18, "vat": 18,
                                                "step_size": 1}]}],
            "last_updated": "2025-01-01T00:00:00Z"}))
    catalog = CatalogStore(redis, store)
    rnd = random.Random(42)
    for i in range(LOCATIONS):
        loc = make_location(i, EVSES, rnd)
        await store.put_location(loc)
        await catalog.render("IN", loc.party_id, loc.id)
    return catalog


async def _answers(catalog: CatalogStore) -> list[list[tuple[Any, ...]]]:
    out = []
    for q in queries():
        found = await search(q, catalog)
        out.append([(prov, item, offer, extra) for prov, item, offer, _row, extra in found])
    return out


@pytest.mark.slow
async def test_a_sharded_catalog_answers_as_one_index(redis_url: str, cluster: Cluster,
                                                      queue_redis: Node, tmp_path: Path) -> None:
    try:
        shards.configure(1, False)
        one = redisconn.data(Settings(redis_url=redis_url))
        single = await _answers(await _load(one))
        await one.aclose()

        sharded_settings = Settings(redis_cluster_nodes=cluster.nodes_setting,
                                    queue_redis_url=f"redis://127.0.0.1:{queue_redis.port}/0")
        many = redisconn.data(sharded_settings)
        layout = shards.current()
        assert layout.count == 12 and layout.tagged
        catalog = await _load(many)
        # every shard holds part of the catalog, each on its primary
        sizes = [await many.zcard(catalog_index(s)) for s in layout.shards]
        assert all(sizes) and sum(sizes) == LOCATIONS
        sharded = await _answers(catalog)
        await many.aclose()
    finally:
        shards.configure(1, False)
    assert sum(len(a) for a in single) > 250  # the queries find things
    kinds = {q.spatial[0].geometry.type for q, a in zip(queries(), single, strict=True)
             if q.spatial and a}
    assert {"Point", "LineString", "MultiPoint", "Polygon"} <= kinds, kinds
    assert [len(a) for a in sharded] == [len(a) for a in single]
    for q, a, b in zip(queries(), single, sharded, strict=True):
        assert a == b, q


def catalog_index(shard: int) -> str:
    from bridge.store import beckn_keys as bk

    return bk.shard_key(bk.ALL, shard)
