"""The Beckn 2.0 core draft rc2 schema, as published, as a generic JSON Schema validator.

Reads `api/beckn.yaml`, `schema/core/v2/attributes.yaml` and the EV attribute packs
from the conformance suite's spec directory (`tests/spec.py`), applies the overlay
below in memory (never an edited copy), and validates with `jsonschema` (draft
2020-12, the dialect of OpenAPI 3.1) with format checking on (`uuid`, `uri`,
`date-time`, `time`, `email` ...). Not our pydantic models: a BAP built from the
schema sees what this sees.

Overlay: only the bugs of rc2 itself (docs/protocol-notes.md, "The rc2 schema's own
bugs"); `OVERLAY` lists them and `apply_overlay` reports which it applied, so a
newer copy of the files that fixed one shows up in the conformance test.

References: the files point at each other (and at the Beckn v1 Context) by their
GitHub raw URLs; those are mapped to the local files, and the v1 Context, which is
not among the rc2 files, to `V1_CONTEXT` (a transcription of core v1.1
`transaction.yaml#/components/schemas/Context`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests import spec

RC2 = spec.BECKN_SPEC / "core-v2.0.0-rc2"
CORE_URL = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
            "schema/core/v2/attributes.yaml")
V1_URL = ("https://raw.githubusercontent.com/beckn/protocol-specifications/refs/heads/master/"
          "api/transaction/build/transaction.yaml")
API_URI = "urn:beckn:rc2:api/beckn.yaml"
PACK_URL = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
            "schema/{pack}/v1/attributes.yaml")
# Attribute bag `@type` -> (pack folder, schema name)
PACKS: dict[str, tuple[str, str]] = {
    "ChargingService": ("EvChargingService", "ChargingService"),
    "ChargingOffer": ("EvChargingOffer", "ChargingOffer"),
    "ChargingSession": ("EvChargingSession", "ChargingSession"),
    "ChargingPointOperator": ("EvChargingPointOperator", "ChargingPointOperator"),
    "PaymentSettlement": ("PaymentSettlement", "PaymentSettlement"),
}

# Beckn core v1.1 Context (beckn/protocol-specifications, api/transaction/build/
# transaction.yaml, components.schemas.Context), which the rc2 TransactionContext and
# DiscoveryContext extend by URL. Same properties, types and formats; `location` is
# the v1 Location object (the bridge only echoes it).
V1_CONTEXT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "domain": {"type": "string"},
        "location": {"type": "object"},
        "action": {"type": "string"},
        "version": {"type": "string"},
        "bap_id": {"type": "string"},
        "bap_uri": {"type": "string", "format": "uri"},
        "bpp_id": {"type": "string"},
        "bpp_uri": {"type": "string", "format": "uri"},
        "transaction_id": {"type": "string", "format": "uuid"},
        "message_id": {"type": "string", "format": "uuid"},
        "timestamp": {"type": "string", "format": "date-time"},
        "key": {"type": "string"},
        "ttl": {"type": "string"},
    },
}

_JSONLD = {"@context": {"type": "string", "format": "uri"}, "@type": {"type": "string"}}


def _examples_as_list(node: dict[str, Any]) -> bool:
    ex = node.get("examples")
    if isinstance(ex, dict):
        node["examples"] = [v.get("value", v) if isinstance(v, dict) else v for v in ex.values()]
        return True
    return False


def _add_jsonld(node: dict[str, Any]) -> bool:
    props = node.setdefault("properties", {})
    if "@context" in props and "@type" in props:
        return False
    props.update(copy.deepcopy(_JSONLD))
    return True


def _amenity_items(node: dict[str, Any]) -> bool:
    props = node.get("properties", {})
    stray = props.get("items")
    if not isinstance(stray, dict) or "items" in props.get("amenityFeature", {}):
        return False
    del props["items"]
    props["amenityFeature"]["items"] = stray
    return True


def _discover_post(node: dict[str, Any]) -> bool:
    if "get" not in node or "post" in node:
        return False
    node["post"] = node.pop("get")
    return True


def _ratings_in_properties(node: dict[str, Any]) -> bool:
    if "ratings" not in node or "ratings" in node.get("properties", {}):
        return False
    node.setdefault("type", "object")
    node.setdefault("properties", {})["ratings"] = node.pop("ratings")
    return True


_RATING_MSG = ("paths", "/beckn/rating", "post", "requestBody", "content", "application/json",
               "schema", "properties", "message")

# (file, path inside it, fix, what was wrong): every patch the overlay may make.
OVERLAY: tuple[tuple[str, tuple[str, ...], Callable[[dict[str, Any]], bool], str], ...] = (
    ("api/beckn.yaml", ("components", "schemas", "SpatialConstraint"), _examples_as_list,
     "SpatialConstraint: `examples` is a map (JSON Schema wants an array)"),
    ("schema/core/v2/attributes.yaml", ("components", "schemas", "Location"), _examples_as_list,
     "Location: `examples` is a map"),
    ("schema/core/v2/attributes.yaml", ("components", "schemas", "GeoJSONGeometry"),
     _examples_as_list, "GeoJSONGeometry: `examples` is a map"),
    *((f"schema/{pack}/v1/attributes.yaml", ("components", "schemas", name), _add_jsonld,
       f"{name}: additionalProperties false without @context/@type, which every attribute bag "
       "must carry (core Attributes)")
      for pack, name in PACKS.values()),
    ("schema/EvChargingService/v1/attributes.yaml", ("components", "schemas", "ChargingService"),
     _amenity_items, "ChargingService: `amenityFeature.items` is indented as a property named "
     "`items`"),
    ("api/beckn.yaml", ("paths", "/beckn/discover"), _discover_post,
     "/beckn/discover is declared `get` (with a request body); every network POSTs it"),
    ("api/beckn.yaml", _RATING_MSG, _ratings_in_properties,
     "rating request: `ratings` sits beside `properties` of message, not inside"),
)


def _at(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = doc
    for p in path:
        node = node[p]
    assert isinstance(node, dict)
    return node


@dataclass
class Documents:
    """The published files, loaded and overlaid, and which overlay fixes applied."""

    files: dict[str, dict[str, Any]]
    applied: list[str] = field(default_factory=list)


def load_documents() -> Documents:
    files: dict[str, dict[str, Any]] = {}
    for rel in ("api/beckn.yaml", "schema/core/v2/attributes.yaml",
                *(f"schema/{p}/v1/attributes.yaml" for p, _ in PACKS.values())):
        files[rel] = yaml.safe_load(spec.require(RC2 / rel).read_text())
    return Documents(files, apply_overlay(files))


def apply_overlay(files: dict[str, dict[str, Any]]) -> list[str]:
    applied = []
    for rel, path, fix, what in OVERLAY:
        if fix(_at(files[rel], path)):
            applied.append(what)
    return applied


def _registry(docs: Documents) -> Registry:
    f = docs.files
    resources = [
        (API_URI, f["api/beckn.yaml"]),
        (CORE_URL, f["schema/core/v2/attributes.yaml"]),
        (V1_URL, {"components": {"schemas": {"Context": V1_CONTEXT}}}),
        *((PACK_URL.format(pack=p), f[f"schema/{p}/v1/attributes.yaml"]) for p, _ in PACKS.values()),
    ]
    return Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT202012))
        for uri, doc in resources)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Violation:
    what: str  # e.g. "on_select", "ack", "track PATCH"
    path: str  # JSON path of the offending value
    message: str

    def __str__(self) -> str:
        return f"{self.what}: {self.path}: {self.message}"


def json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


class Rc2:
    """Validators for every kind of body a BAP receives from a BPP."""

    def __init__(self, docs: Documents | None = None) -> None:
        self.docs = docs or load_documents()
        self.registry = _registry(self.docs)
        self._cache: dict[str, Draft202012Validator] = {}
        # the 2020-12 formats (a bare FormatChecker() mixes in draft 3's "time", no offset)
        self.checker = Draft202012Validator.FORMAT_CHECKER

    def _validator(self, ref: str) -> Draft202012Validator:
        v = self._cache.get(ref)
        if v is None:
            v = self._cache[ref] = Draft202012Validator({"$ref": ref}, registry=self.registry,
                                                        format_checker=self.checker)
        return v

    def request_schema(self, action: str) -> str:
        """The request body schema of POST /beckn/{action} (a callback is a request too)."""
        where = _pointer("paths", "/beckn/" + action, "post", "requestBody", "content",
                         "application/json", "schema")
        return f"{API_URI}#/{where}"

    def ack_schema(self) -> str:
        return f"{CORE_URL}#/components/schemas/AckResponse"

    def pack_schema(self, bag_type: str) -> str:
        pack, name = PACKS[bag_type]
        return f"{PACK_URL.format(pack=pack)}#/components/schemas/{name}"

    def errors(self, ref: str, body: Any, what: str, prefix: tuple[Any, ...] = ()
               ) -> list[Violation]:
        return [Violation(what, json_path((*prefix, *e.absolute_path)), _message(e))
                for e in sorted(self._validator(ref).iter_errors(body),
                                key=lambda e: list(map(str, e.absolute_path)))]

    def bags(self, body: Any, what: str) -> list[Violation]:
        """Every attribute bag of a published pack (by its `@type`), against its pack."""
        out: list[Violation] = []
        for path, bag in _walk_bags(body, ()):
            bag_type = bag["@type"].split(":")[-1]
            if bag_type in PACKS:
                out += self.errors(self.pack_schema(bag_type), bag, what, path)
        return out

    def callback(self, action: str, body: Any) -> list[Violation]:
        """An on_* body as the BAP receives it: the API's schema, then the packs."""
        return self.errors(self.request_schema(action), body, action) + self.bags(body, action)

    def request(self, action: str, body: Any) -> list[Violation]:
        """A request body (what a schema-built BAP sends)."""
        return self.callback(action, body)

    def ack(self, body: Any) -> list[Violation]:
        return self.errors(self.ack_schema(), body, "ack")

    def session_patch(self, body: Any) -> list[Violation]:
        """A live-tracking PATCH: rc2 defines no body for it; the EV pack's
        ChargingSession covers what it carries, so it must be such a bag."""
        if not isinstance(body, dict) or body.get("@type") != "ChargingSession":
            return [Violation("track PATCH", "$.@type", "not a ChargingSession attribute bag")]
        return self.bags(body, "track PATCH")


def _message(e: ValidationError) -> str:
    if e.context:  # oneOf / anyOf: the most relevant branch says most
        best = best_match(e.context)
        return f"{e.message[:200]} (e.g. {json_path(best.absolute_path)}: {best.message[:200]})"
    return e.message[:300]


def _walk_bags(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("@type"), str) and "@context" in node:
            yield path, node
        for k, v in node.items():
            yield from _walk_bags(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk_bags(v, (*path, i))


@cache
def shared() -> Rc2:
    """One loaded schema per test process."""
    return Rc2()


def spec_root() -> Path:
    return RC2
