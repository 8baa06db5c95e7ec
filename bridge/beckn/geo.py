"""The spatial forms of discover, as plans for the Redis GEO index (pure).

Beckn 2.0 rc2 `SpatialConstraint` (api/beckn.yaml): an OGC CQL2 predicate `op` against a
GeoJSON `geometry` (EPSG:4326, [lon, lat]). Besides `s_dwithin` a Point (discover's own
fast path, `bridge/beckn/discover.py`), the forms EV networks send:

    s_dwithin   LineString + distanceMeters   a route corridor: every point within the
                                              distance of any segment; ordered by position
                                              along the route, each with its distance from
                                              the route and along it
                MultiPoint + distanceMeters   near any of the points; ordered by the
                                              distance to the nearest
                Point (with another constraint) as a MultiPoint of one
    s_within    Polygon (holes too), MultiPolygon, or a geometry `bbox`; ordered by the
    s_intersects                              distance from the area's centre

The Redis GEO index is the first cut: a `Shape` is covered by a few GEOSEARCH circles or
boxes (`groups`), and each location found is measured exactly here with shapely (GEOS).
A corridor is covered by circles along the route, so its candidates come in the route's
order: `horizons[i]` is the position along the route below which every location has been
found once the circles of groups 0..i have been searched, so a page near the start of a
150 km route reads only the first circles.

Distances: a corridor is measured in a local equirectangular projection around the
route's mid-point (metres; off by less than 0.5 % across 150 km at India's latitudes,
where cos(latitude) changes by that much per degree); points by the haversine formula;
areas (inside or not) in degrees, as GeoJSON's planar rule wants.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon

EARTH_M = 6_371_000.0
MAX_DISTANCE_M = 100_000.0  # a corridor or a set of points: at most this far from them
MAX_ROUTE_M = 3_000_000.0
MAX_VERTICES = 10_000
MAX_POINTS = 100
MAX_PARTS = 100
MAX_COVERS = 400  # GEOSEARCH circles along a route at most
FIRST_GROUP = 2  # circles searched in the first round trip of a corridor (then 4, 8...)


class GeoError(ValueError):
    """A geometry discover cannot use; `field` names where (a Beckn NACK 30000)."""

    def __init__(self, message: str, field: str = "message.spatial") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Cover:
    """One GEOSEARCH: a circle (`radius` m) or a box (`width` x `height` m)."""

    lon: float
    lat: float
    radius: float = 0.0
    width: float = 0.0
    height: float = 0.0


@dataclass
class Measured:
    """Locations kept by a shape, with the order key and what the answer carries."""

    keep: np.ndarray  # bool per location
    key: np.ndarray  # order (along the route, or distance)
    distance: np.ndarray | None = None  # m from the route / nearest point
    along: np.ndarray | None = None  # m along the route


@dataclass
class Shape:
    kind: str  # corridor | points | area
    groups: list[list[Cover]]
    horizons: list[float]
    annotate: bool = False
    _line: Any = None
    _origin: tuple[float, float] = (0.0, 0.0)
    _scale: tuple[float, float] = (1.0, 1.0)
    _points: np.ndarray | None = None  # (n, 2) lon, lat
    _radius: float = 0.0
    _area: Any = None
    _intersects: bool = False
    _center: tuple[float, float] = (0.0, 0.0)
    parts: int = field(default=1)

    def measure(self, lons: np.ndarray, lats: np.ndarray) -> Measured:
        if self.kind == "corridor":
            x = (lons - self._origin[0]) * self._scale[0]
            y = (lats - self._origin[1]) * self._scale[1]
            pts = shapely.points(x, y)
            dist = shapely.distance(self._line, pts)
            along = shapely.line_locate_point(self._line, pts)
            return Measured(dist <= self._radius, along, dist, along)
        if self.kind == "points":
            assert self._points is not None
            d = haversine_matrix(lons, lats, self._points)
            nearest = d.min(axis=1) if d.size else np.zeros(len(lons))
            return Measured(nearest <= self._radius, nearest, nearest)
        inside = (shapely.intersects_xy if self._intersects else shapely.contains_xy)(
            self._area, lons, lats)
        key = haversine_matrix(lons, lats, np.array([self._center]))[:, 0] \
            if len(lons) else np.zeros(0)
        return Measured(np.asarray(inside, dtype=bool), key)


def haversine_matrix(lons: np.ndarray, lats: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Metres from each (lon, lat) to each of `points` ((n, 2) lon, lat): (len, n)."""
    lon1 = np.radians(np.asarray(lons, dtype=float))[:, None]
    lat1 = np.radians(np.asarray(lats, dtype=float))[:, None]
    lon2 = np.radians(points[:, 0])[None, :]
    lat2 = np.radians(points[:, 1])[None, :]
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(
        (lon2 - lon1) / 2) ** 2
    result: np.ndarray = 2 * EARTH_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return result


# --- reading GeoJSON


def position(p: Any, where: str) -> tuple[float, float]:
    if not isinstance(p, list | tuple) or len(p) < 2 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in p[:2]):
        raise GeoError(f"{where}: a position is [longitude, latitude]", where)
    lon, lat = float(p[0]), float(p[1])
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0) or math.isnan(lon + lat):
        raise GeoError(f"{where}: [{lon}, {lat}] is not a longitude and latitude", where)
    return lon, lat


def _positions(ps: Any, where: str, least: int, most: int) -> list[tuple[float, float]]:
    if not isinstance(ps, list) or len(ps) < least:
        raise GeoError(f"{where}: at least {least} positions are needed", where)
    if len(ps) > most:
        raise GeoError(f"{where}: at most {most} positions are accepted", where)
    return [position(p, f"{where}.{i}") for i, p in enumerate(ps)]


def _polygon(rings: Any, where: str) -> Polygon:
    if not isinstance(rings, list) or not rings:
        raise GeoError(f"{where}: a polygon is a list of linear rings", where)
    parsed = []
    for i, ring in enumerate(rings):
        pts = _positions(ring, f"{where}.{i}", 4, MAX_VERTICES)
        if pts[0] != pts[-1]:
            raise GeoError(f"{where}.{i}: a linear ring ends where it starts", f"{where}.{i}")
        parsed.append(pts)
    poly = Polygon(parsed[0], parsed[1:])
    if not poly.is_valid:
        raise GeoError(f"{where}: not a valid polygon ({shapely.is_valid_reason(poly)})", where)
    return poly


def _meters_scale(lat0: float) -> tuple[float, float]:
    k = math.pi / 180 * EARTH_M
    return k * math.cos(math.radians(lat0)), k


def _box(bounds: Sequence[float]) -> Cover:
    """The GEOSEARCH box around lon/lat bounds (a little larger, as the ground distances
    differ along the box's edges)."""
    w, s, e, n = bounds
    widest = max(abs(s), abs(n))
    width = max(math.radians(e - w) * EARTH_M * math.cos(math.radians(min(widest, 89.0))),
                1.0) * 1.02
    height = max(math.radians(n - s) * EARTH_M, 1.0) * 1.02
    return Cover((w + e) / 2, (s + n) / 2, width=width, height=height)


def corridor(coords: Any, distance: float, where: str = "message.spatial.0.geometry"
             ) -> Shape:
    pts = _positions(coords, f"{where}.coordinates", 2, MAX_VERTICES)
    if not 0 < distance <= MAX_DISTANCE_M:
        raise GeoError(f"distanceMeters must be more than 0 and at most {MAX_DISTANCE_M:g}",
                       where.rsplit(".", 1)[0] + ".distanceMeters")
    lons = [p[0] for p in pts]
    lats = [p[1] for p in pts]
    origin = ((min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2)
    scale = _meters_scale(origin[1])
    line = LineString([((lo - origin[0]) * scale[0], (la - origin[1]) * scale[1])
                       for lo, la in pts])
    length = float(line.length)
    if length > MAX_ROUTE_M:
        raise GeoError(f"{where}: the route is {length / 1000:.0f} km; at most "
                       f"{MAX_ROUTE_M / 1000:.0f} km are searched", where)
    # Circles every `step` along the route, radius distance + step / 2: a location within
    # `distance` of the route point at position t is within that of the circle centred
    # nearest t (at most step / 2 away along the route, so at most that far in a line).
    step = max(2 * distance, length / MAX_COVERS)
    n = max(1, math.ceil(length / step))
    centres = shapely.get_coordinates(shapely.line_interpolate_point(
        line, np.minimum((np.arange(n) + 0.5) * step, length)))
    radius = distance + step / 2
    covers = [Cover(float(x) / scale[0] + origin[0], float(y) / scale[1] + origin[1],
                    radius=radius) for x, y in centres]
    groups: list[list[Cover]] = []
    horizons: list[float] = []
    size, start = FIRST_GROUP, 0
    while start < n:
        groups.append(covers[start:start + size])
        start += size
        horizons.append(math.inf if start >= n else start * step)
        size *= 2
    shape = Shape("corridor", groups, horizons, annotate=True)
    shape._line = line
    shape._origin = origin
    shape._scale = scale
    shape._radius = distance
    return shape


def points(coords: Any, distance: float, where: str = "message.spatial.0.geometry") -> Shape:
    pts = _positions(coords, f"{where}.coordinates", 1, MAX_POINTS)
    if not 0 <= distance <= MAX_DISTANCE_M:
        raise GeoError(f"distanceMeters must be at most {MAX_DISTANCE_M:g}",
                       where.rsplit(".", 1)[0] + ".distanceMeters")
    shape = Shape("points", [[Cover(lo, la, radius=max(distance, 1.0)) for lo, la in pts]],
                  [math.inf], annotate=len(pts) > 1)
    shape._points = np.array(pts, dtype=float)
    shape._radius = distance
    return shape


def area(geometry_type: str, coords: Any, bbox: Sequence[float] | None, intersects: bool,
         where: str = "message.spatial.0.geometry") -> Shape:
    if bbox:
        w, s, e, n = (float(v) for v in bbox)
        if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
            raise GeoError(f"{where}.bbox: [west, south, east, north] expected", f"{where}.bbox")
        geom: Any = shapely.box(w, s, e, n)
        parts = [geom]
    elif geometry_type == "Polygon":
        geom = _polygon(coords, f"{where}.coordinates")
        parts = [geom]
    elif geometry_type == "MultiPolygon":
        if not isinstance(coords, list) or not coords or len(coords) > MAX_PARTS:
            raise GeoError(f"{where}.coordinates: 1 to {MAX_PARTS} polygons expected",
                           f"{where}.coordinates")
        parts = [_polygon(p, f"{where}.coordinates.{i}") for i, p in enumerate(coords)]
        geom = MultiPolygon(parts)
    else:
        raise GeoError(f"{where}.type: {geometry_type} has no inside (a Polygon, a "
                       "MultiPolygon or a bbox)", f"{where}.type")
    shapely.prepare(geom)
    minx, miny, maxx, maxy = geom.bounds
    shape = Shape("area", [[_box(p.bounds) for p in parts]], [math.inf])
    shape._area = geom
    shape._intersects = intersects
    shape._center = ((minx + maxx) / 2, (miny + maxy) / 2)
    shape.parts = len(parts)
    return shape


def spatial_shape(op: str, geometry_type: str, coords: Any, bbox: Sequence[float] | None,
                  distance: float | None, where: str = "message.spatial.0") -> Shape:
    """The shape of one spatial constraint (GeoError for what discover cannot use)."""
    g = f"{where}.geometry"
    if op == "s_dwithin":
        if bbox and geometry_type not in ("Point", "MultiPoint", "LineString"):
            raise GeoError(f"{g}: s_dwithin needs a Point, MultiPoint or LineString", f"{g}.type")
        d = float(distance or 0.0)
        if geometry_type == "Point":
            return points([coords], d, g)
        if geometry_type == "MultiPoint":
            return points(coords, d, g)
        if geometry_type == "LineString":
            return corridor(coords, d, g)
        raise GeoError(f"{g}.type: s_dwithin needs a Point, MultiPoint or LineString, not "
                       f"{geometry_type}", f"{g}.type")
    if op in ("s_within", "s_intersects"):
        return area(geometry_type, coords, bbox, op == "s_intersects", g)
    raise GeoError(f"spatial op {op} is not supported (s_dwithin, s_within, s_intersects)",
                   f"{where}.op")


def refine(shapes: Sequence[Shape], lons: np.ndarray, lats: np.ndarray) -> Measured:
    """The first shape's measure, kept only where every other shape keeps it too."""
    first = shapes[0].measure(lons, lats)
    for other in shapes[1:]:
        first.keep = first.keep & other.measure(lons, lats).keep
    return first


def rounds(shape: Shape) -> Iterator[tuple[list[Cover], float]]:
    yield from zip(shape.groups, shape.horizons, strict=True)
