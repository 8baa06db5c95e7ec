"""Beckn 2.0 (core-v2.0.0-rc2) wire shapes the transport and discover need.

The context is the v1 snake_case Context plus `network_id[]` and
`schema_context[]`. Unknown fields are kept (networks add their own), known
ones are typed. Order-flow message shapes belong to their action modules.

Discover comes in two shapes (see docs/beckn.md, "Protocol notes"):
- the schema's: `message.{text_search, filters{type,expression}, spatial[], media_search}`
- the guide's: `text_search`, `filters` (a bare JSONPath string) and `pagination`
  beside `context`.
Both are read into one `DiscoverQuery`; answers always use the schema's shape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(value: str) -> timedelta:
    """ISO 8601 duration as Beckn uses it for ttl (PT30S, PT10M, P1D); ValueError otherwise."""
    m = _DURATION.match(value.strip().upper())
    if not m or value.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {value!r}")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{value.microsecond // 1000:03d}Z"


class Context(BaseModel):
    """The draft's context, and the form every profile's context is read into (the LTS
    camelCase one by `bridge.beckn.lts.context_in`). `domain` is required on /beckn only:
    the LTS makes it optional and its release branch drops it."""

    model_config = ConfigDict(extra="allow")

    domain: str | None = Field(None, min_length=1)
    action: str = Field(min_length=1)
    version: str = Field(min_length=1)
    bap_id: str = Field(min_length=1)
    bap_uri: str = Field(pattern=r"^https?://")
    bpp_id: str | None = None
    bpp_uri: str | None = None
    transaction_id: str = Field(min_length=1, max_length=200)
    message_id: str = Field(min_length=1, max_length=200)
    timestamp: datetime
    ttl: str | None = None
    key: str | None = None
    location: dict[str, Any] | None = None
    network_id: list[str] | None = None
    schema_context: list[str] | None = None
    # The wire profile this context is written in (set by the edge that read the request
    # or by `callback_context`, never by a peer: not a field, so not in dumps).
    _profile: str | None = PrivateAttr(default=None)

    @property
    def profile(self) -> str | None:
        return self._profile

    def in_profile(self, profile: str | None) -> Context:
        self._profile = profile
        return self

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @property
    def ttl_delta(self) -> timedelta | None:
        return parse_duration(self.ttl) if self.ttl else None

    def wire(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        data["timestamp"] = format_timestamp(self.timestamp)
        return data


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class AckResponse(BaseModel):
    """RC2 AckResponse: `{transaction_id, timestamp, ack_status, error?}`."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: str
    timestamp: str
    ack_status: Literal["ACK", "NACK"]
    error: ErrorBody | None = None

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Envelope(BaseModel):
    """Any request: a context and a message object (the message is checked per action)."""

    model_config = ConfigDict(extra="allow")

    context: Context
    message: dict[str, Any] | None = None


# --- discover


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["jsonpath"] = "jsonpath"
    expression: str = Field(min_length=1, max_length=4000)


class Geometry(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["Point", "Polygon", "MultiPoint", "LineString", "MultiPolygon",
                  "MultiLineString", "GeometryCollection"]
    coordinates: list[Any] | None = None
    bbox: list[float] | None = Field(None, min_length=4, max_length=4)


class SpatialConstraint(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    op: str
    targets: str | list[str]
    geometry: Geometry | None = None
    distance_meters: float | None = Field(None, ge=0, alias="distanceMeters")
    quantifier: Literal["any", "all", "none"] = "any"
    srid: str | None = None

    @field_validator("op")
    @classmethod
    def _op(cls, v: str) -> str:
        op = v.lower()
        if op not in ("s_within", "s_contains", "s_intersects", "s_disjoint", "s_overlaps",
                      "s_crosses", "s_touches", "s_equals", "s_dwithin"):
            raise ValueError(f"unknown spatial op {v!r}")
        return op

    @model_validator(mode="after")
    def _geometry(self) -> SpatialConstraint:
        if self.geometry is None:
            raise ValueError("geometry is required")
        if self.op == "s_dwithin" and self.distance_meters is None:
            raise ValueError("s_dwithin needs distanceMeters")
        if self.srid not in (None, "EPSG:4326"):
            raise ValueError("only EPSG:4326 is supported")
        return self


class Pagination(BaseModel):
    page: int = Field(1, ge=1, le=10_000)
    limit: int = Field(20, ge=1, le=1000)


def _bare_filter(v: Any) -> Any:
    # The guide sends filters as a bare JSONPath string.
    return {"type": "jsonpath", "expression": v} if isinstance(v, str) else v


class DiscoverMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    text_search: str | None = Field(None, max_length=500)
    filters: Filters | None = None
    spatial: list[SpatialConstraint] | None = Field(None, max_length=8)
    media_search: dict[str, Any] | None = None
    pagination: Pagination | None = None

    @field_validator("filters", mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        return _bare_filter(v)


class DiscoverRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    context: Context
    message: DiscoverMessage | None = None
    # the guide's variant: beside context
    text_search: str | None = Field(None, max_length=500)
    filters: Filters | None = None
    spatial: list[SpatialConstraint] | None = Field(None, max_length=8)
    pagination: Pagination | None = None

    @field_validator("filters", mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        return _bare_filter(v)

    @model_validator(mode="after")
    def _something(self) -> DiscoverRequest:
        q = self.query()
        if q.text is None and q.filter is None and not q.spatial:
            raise ValueError("message needs one of text_search, filters, spatial")
        return self

    def query(self) -> DiscoverQuery:
        m = self.message or DiscoverMessage()
        pag = m.pagination or self.pagination or Pagination()
        filt = m.filters or self.filters
        return DiscoverQuery(text=m.text_search or self.text_search,
                             filter=filt.expression if filt else None,
                             spatial=list(m.spatial or self.spatial or []),
                             page=pag.page, limit=pag.limit)


class DiscoverQuery(BaseModel):
    """What discover searches for, whichever shape it came in."""

    text: str | None = None
    filter: str | None = None
    spatial: list[SpatialConstraint] = Field(default_factory=list)
    page: int = 1
    limit: int = 20
