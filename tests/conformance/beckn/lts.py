"""Beckn 2.0 LTS, as published, as a generic JSON Schema validator.

Reads `api/v2.0.0/beckn.yaml` of both LTS refs in the spec directory (`tests/spec.py`):
`core-v2.0.0-lts` (the tag) and `release-v2.0.0-lts` (the newer branch), and checks a
body against each, with `jsonschema` (draft 2020-12, the dialect of OpenAPI 3.1) and
format checking (`uuid`, `uri`, `date-time` ...). Not our models: a BAP built from the
LTS OpenAPI sees what this sees.

Attribute bags (`resourceAttributes`, `performanceAttributes`, `settlementAttributes`...)
are JSON-LD `Attributes` in the LTS: open objects with `@context` and `@type`. The
bridge fills them with the EV charging vocabulary of the rc2 EV packs and core objects,
so each bag whose `@type` one of those defines is checked against it too (through
tests/conformance/beckn/rc2.py, with its overlay).

Overlay: fixes of the LTS files' own bugs (`OVERLAY`, docs/protocol-notes.md "The LTS
schema's own bugs"); `apply_overlay` reports which it applied, and a conformance test
fails when a newer copy no longer needs one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests import spec
from tests.conformance.beckn import rc2
from tests.conformance.beckn.rc2 import Violation, _message, _pointer, _walk_bags, json_path

REFS = ("core-v2.0.0-lts", "release-v2.0.0-lts")
FILE = "api/v2.0.0/beckn.yaml"
# Core rc2 objects the bridge puts in LTS attribute bags, by `@type`
CORE_BAGS = {"beckn:Payment": "Payment", "beckn:Buyer": "Buyer",
             "beckn:PriceSpecification": "PriceSpecification"}
# The Acks by HTTP status (LTS components.responses); the transport's own statuses (404,
# 408, 413, 429) are NACKs with an error: checked as NackBadRequest, the nearest shape.
ACKS = {200: "Ack", 400: "NackBadRequest", 401: "NackUnauthorized", 409: "AckNoCallback",
        500: "ServerError"}


# (ref, path inside the file, fix, what was wrong): every patch the overlay may make.
OVERLAY: tuple[tuple[str, tuple[str, ...], Callable[[dict[str, Any]], bool], str], ...] = ()


def _uri(ref: str) -> str:
    return f"urn:beckn:{ref}:{FILE}"


@dataclass
class Documents:
    files: dict[str, dict[str, Any]]
    applied: list[str] = field(default_factory=list)


def load_documents() -> Documents:
    files = {ref: yaml.safe_load(spec.require(spec.BECKN_SPEC / ref / FILE).read_text())
             for ref in REFS}
    return Documents(files, apply_overlay(files))


def apply_overlay(files: dict[str, dict[str, Any]]) -> list[str]:
    applied = []
    for ref, path, fix, what in OVERLAY:
        node: Any = files[ref]
        for p in path:
            node = node[p]
        if fix(node):
            applied.append(f"{ref}: {what}")
    return applied


class Lts:
    """Validators for what an LTS BAP receives from a BPP, in both LTS refs."""

    def __init__(self, docs: Documents | None = None, rc2_schema: rc2.Rc2 | None = None) -> None:
        self.docs = docs or load_documents()
        self.registry = Registry().with_resources(
            (_uri(ref), Resource.from_contents(doc, default_specification=DRAFT202012))
            for ref, doc in self.docs.files.items())
        self.rc2 = rc2_schema or rc2.shared()
        self._cache: dict[str, Draft202012Validator] = {}
        self.checker = Draft202012Validator.FORMAT_CHECKER

    def _validator(self, ref: str) -> Draft202012Validator:
        v = self._cache.get(ref)
        if v is None:
            v = self._cache[ref] = Draft202012Validator({"$ref": ref}, registry=self.registry,
                                                        format_checker=self.checker)
        return v

    def _errors(self, ref: str, body: Any, what: str) -> list[Violation]:
        return [Violation(what, json_path(e.absolute_path), _message(e))
                for e in sorted(self._validator(ref).iter_errors(body),
                                key=lambda e: list(map(str, e.absolute_path)))]

    def request_schema(self, ref: str, path: str, method: str = "post") -> str:
        where = _pointer("paths", path, method, "requestBody", "content", "application/json",
                         "schema")
        return f"{_uri(ref)}#/{where}"

    def bags(self, body: Any, what: str) -> list[Violation]:
        """Every attribute bag of a known `@type` against its rc2 pack or core object."""
        out: list[Violation] = []
        for path, bag in _walk_bags(body, ()):
            kind = bag["@type"]
            if kind in CORE_BAGS:
                out += self.rc2.errors(f"{rc2.CORE_URL}#/components/schemas/{CORE_BAGS[kind]}",
                                       bag, what, path)
            elif kind.split(":")[-1] in rc2.PACKS:
                out += self.rc2.errors(self.rc2.pack_schema(kind.split(":")[-1]), bag, what,
                                       path)
        return out

    def message(self, action: str, body: Any) -> list[Violation]:
        """A request or callback body (POST /{action}), in both refs, and its bags."""
        out: list[Violation] = []
        for ref in REFS:
            out += self._errors(self.request_schema(ref, f"/{action}"), body, f"{action}@{ref}")
        return out + self.bags(body, action)

    def ack(self, status: int, body: Any) -> list[Violation]:
        """An Ack as answered with HTTP `status`, in both refs."""
        name = ACKS.get(status, "NackBadRequest")
        out: list[Violation] = []
        for ref in REFS:
            out += self._errors(f"{_uri(ref)}#/components/schemas/{name}", body,
                                f"ack {status} ({name})@{ref}")
        if status != 200 and not (isinstance(body, dict) and body.get("error")):
            out.append(Violation(f"ack {status}", "$.error", "a refusal without its error"))
        if status != 500 and not (isinstance(body, dict) and body.get("signature")):
            out.append(Violation(f"ack {status}", "$.signature", "not counter-signed"))
        return out

    def session_patch(self, body: Any) -> list[Violation]:
        return self.rc2.session_patch(body)


@cache
def shared() -> Lts:
    return Lts()
