"""Pure parts of the discover forms: the corridor's GEOSEARCH cover, the shapes' measures,
opening hours, the vehicle table, the filter terms taken out of a JSONPath."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, time, timedelta

import numpy as np
import pytest

from bridge.beckn import geo
from bridge.beckn.discover_terms import TermError, extract
from bridge.mapping.hours import compact, open_throughout, resolve, zone
from bridge.mapping.vehicles import VEHICLES, find
from bridge.ocpi.models import Hours

ROUTE = [[77.5946, 12.9716], [77.3890, 12.7970], [77.2810, 12.7230], [77.2090, 12.6510],
         [77.0440, 12.5840], [76.8950, 12.5220], [76.6930, 12.4140], [76.6394, 12.2958]]


def _offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (lon + east_m / (111_320 * math.cos(math.radians(lat))), lat + north_m / 110_574)


@pytest.mark.parametrize("distance", [300.0, 2000.0, 15_000.0])
def test_every_point_of_the_corridor_is_in_a_cover(distance: float) -> None:
    shape = geo.corridor(ROUTE, distance)
    covers = [c for g in shape.groups for c in g]
    rnd = random.Random(1)
    lons, lats = [], []
    for _ in range(3000):
        i = rnd.randrange(len(ROUTE) - 1)
        t = rnd.random()
        lon = ROUTE[i][0] + t * (ROUTE[i + 1][0] - ROUTE[i][0])
        lat = ROUTE[i][1] + t * (ROUTE[i + 1][1] - ROUTE[i][1])
        ang = rnd.uniform(0, 2 * math.pi)
        r = rnd.uniform(0, distance * 0.99)
        lo, la = _offset(lon, lat, r * math.cos(ang), r * math.sin(ang))
        lons.append(lo)
        lats.append(la)
    m = shape.measure(np.array(lons), np.array(lats))
    inside = np.array(lons)[m.keep], np.array(lats)[m.keep]
    assert m.keep.mean() > 0.98  # the projection's error is small
    centers = np.array([[c.lon, c.lat] for c in covers])
    d = geo.haversine_matrix(inside[0], inside[1], centers)
    radius = covers[0].radius
    assert (d.min(axis=1) <= radius * 1.01).all()  # found by some GEOSEARCH


def test_corridor_measures_along_the_route() -> None:
    shape = geo.corridor(ROUTE, 1000)
    start, end = ROUTE[0], ROUTE[-1]
    m = shape.measure(np.array([start[0], end[0], 77.5]), np.array([start[1], end[1], 13.5]))
    assert list(m.keep) == [True, True, False]
    assert m.along is not None and m.distance is not None
    assert m.along[0] == 0 and 125_000 < m.along[1] < 150_000
    assert m.distance[0] == 0 and m.distance[2] > 50_000
    # the horizons grow with the rounds and end unbounded
    assert shape.horizons == sorted(shape.horizons) and shape.horizons[-1] == math.inf
    assert len(shape.groups[0]) == geo.FIRST_GROUP


def test_a_long_route_is_covered_by_a_bounded_number_of_circles() -> None:
    route = [[72.8777, 19.0760], [77.2090, 28.6139]]  # Mumbai - Delhi, ~1150 km
    shape = geo.corridor(route, 100.0)
    assert sum(len(g) for g in shape.groups) <= geo.MAX_COVERS


def test_area_with_hole_and_multipolygon() -> None:
    shell = [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]
    hole = [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]
    shape = geo.area("Polygon", [shell, hole], None, False)
    m = shape.measure(np.array([0.5, 1.5, 3.0, 5.0, 4.0]), np.array([0.5, 1.5, 3.0, 5.0, 2.0]))
    assert list(m.keep) == [True, False, True, False, False]  # the edge is not within
    edge = geo.area("Polygon", [shell, hole], None, True)  # s_intersects: the edge is
    assert list(edge.measure(np.array([4.0]), np.array([2.0])).keep) == [True]
    multi = geo.area("MultiPolygon", [[shell], [[[10, 10], [11, 10], [11, 11], [10, 10]]]],
                     None, False)
    assert len(multi.groups[0]) == 2
    assert list(multi.measure(np.array([10.8, 9.0]), np.array([10.2, 9.0])).keep) == [True, False]


@pytest.mark.parametrize(("coords", "says"), [
    ([[1, 1], [1, 1]], "at least 4"),
    ("x", "a polygon is a list"),
])
def test_bad_polygons(coords: object, says: str) -> None:
    with pytest.raises(geo.GeoError, match=says):
        geo.area("Polygon", coords if coords == "x" else [coords], None, False)


def test_hours() -> None:
    h = compact(Hours.model_validate({"twentyfourseven": False, "regular_hours": [
        {"weekday": d, "period_begin": "08:00", "period_end": "20:00"} for d in range(1, 6)] + [
        {"weekday": 6, "period_begin": "22:00", "period_end": "02:00"}],
        "exceptional_closings": [{"period_begin": "2030-01-07T10:00:00Z",
                                  "period_end": "2030-01-07T11:00:00Z"}]}), "Asia/Kolkata")
    ist = zone("Asia/Kolkata")

    def at(day: int, hhmm: str) -> datetime:  # January 2030: the 7th is a Monday
        return datetime.combine(datetime(2030, 1, day).date(), time.fromisoformat(hhmm), ist)

    assert open_throughout(h, at(8, "12:30"), at(8, "14:30"))  # Tuesday
    assert not open_throughout(h, at(8, "19:00"), at(8, "21:00"))  # closes at 20:00
    assert not open_throughout(h, at(13, "12:00"), at(13, "13:00"))  # Sunday: closed
    assert open_throughout(h, at(12, "23:00"), at(13, "01:30"))  # Saturday night, past 00:00
    assert not open_throughout(h, at(7, "15:00"), at(7, "16:00"))  # the exceptional closing
    assert open_throughout(None, at(13, "03:00"), at(13, "04:00"))  # no hours: always open
    assert compact(Hours.model_validate({"twentyfourseven": True}), "UTC") == {
        "tz": "UTC", "247": True}
    assert open_throughout(compact(None, "Asia/Kolkata"), at(13, "03:00"), at(13, "04:00"))
    now = datetime(2030, 1, 8, 6, 0, tzinfo=UTC)
    assert resolve(time(12, 30), ist, now) == at(8, "12:30")


def test_vehicle_table() -> None:
    nexon = find("Tata", "Nexon EV")
    assert nexon is not None and nexon.connectors == ("CCS2", "Type2") and nexon.max_dc_kw == 50
    assert find("tata motors", "nexon.ev") is nexon
    assert find(None, "Tata Nexon EV") is nexon
    assert find("Tata", "Tata Nexon EV") is nexon
    comet = find("MG", "Comet")
    assert comet is not None and comet.connectors == ("Type2",) and comet.max_dc_kw is None
    assert find("Ather", "450X") is not None and find("Ather", "450X").wheels == 2  # type: ignore[union-attr]
    assert find("Hindustan", "Ambassador") is None
    assert find("Tata", "") is None
    assert len({v.name for v in VEHICLES}) == len(VEHICLES)


def test_terms_are_taken_out_of_the_filter() -> None:
    aw = "@['beckn:availabilityWindow'][*]"
    got = extract(f"$[?({aw}['schema:startDate'] <= '2030-01-08T12:30:00+05:30' && "
                  f"@['beckn:itemAttributes']['connectorType'] == 'CCS2' && "
                  f"{aw}['schema:endDate'] >= '2030-01-08T14:30:00+05:30')]")
    assert got.rest == "$[?@['beckn:itemAttributes']['connectorType'] == 'CCS2']"
    assert got.window is not None and got.vehicle is None
    assert isinstance(got.window.start, datetime)
    assert got.window.end - got.window.start == timedelta(hours=2)  # type: ignore[operator]
    got = extract("$[?@['beckn:fulfillment']['vehicle']['make'] == 'Tata' && "
                  "@['beckn:fulfillment']['vehicle']['model'] == 'Nexon EV']")
    assert got.rest is None and got.vehicle is not None
    assert (got.vehicle.make, got.vehicle.model) == ("Tata", "Nexon EV")
    # a filter without such terms is left as it is
    plain = "$[?(@.a == 1) && (@.b == 'x && y')]"
    assert extract(plain).rest == plain
    with pytest.raises(TermError, match="top-level"):
        extract(f"$[?{aw}['schema:startTime'] <= '10:00' || @.a == 1]")
