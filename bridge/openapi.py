"""OpenAPI 3.1 documents of the bridge's two surfaces, built from the models the handlers use.

    GET /openapi/ocpi.json     the OCPI 2.2.1 eMSP surface (receivers and senders)
    GET /openapi/beckn.json    the Beckn 2.0 BPP surface (rc2 paths, ACK/NACK)

The request and response bodies are the JSON Schemas of the same pydantic
models the handlers validate with (`bridge.ocpi.models`, `bridge.beckn.models`),
so the documents cannot drift from the code; the operations are the tables
below, and a test checks that they and the app's routes are the same set.
Each operation cites its spec section.

Pure: building a document does no I/O; the app serves the bytes built once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bridge import __version__
from bridge.beckn import models as beckn
from bridge.ocpi import models as ocpi

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    section: str
    request: type[BaseModel] | None = None
    patch: bool = False  # the body is a partial object (last_updated required)
    data: type[BaseModel] | None = None  # the envelope's `data`
    data_list: bool = False
    created: bool = False  # a new object answers 201


_CC = {"name": "cc", "in": "path", "required": True, "description": "country_code of the CPO party",
       "schema": {"type": "string", "pattern": "^[A-Za-z]{2}$"}}
_PID = {"name": "pid", "in": "path", "required": True, "description": "party_id of the CPO party",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{3}$"}}


def _id(name: str, what: str, size: int = 36) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": what,
            "schema": {"type": "string", "minLength": 1, "maxLength": size}}


_LOC = "/ocpi/2.2.1/locations/{cc}/{pid}/{lid}"
OCPI_OPS: tuple[Op, ...] = (
    Op("GET", "/ocpi/versions", "Versions this eMSP supports", "§6.2.1"),
    Op("GET", "/ocpi/2.2.1", "Version details: the endpoints of 2.2.1", "§6.2.2"),
    Op("GET", "/ocpi/2.2.1/credentials", "Our credentials for the caller", "§7.2.1",
       data=ocpi.Credentials),
    Op("POST", "/ocpi/2.2.1/credentials", "Register (token A): your credentials, ours back",
       "§7.2.1", request=ocpi.Credentials, data=ocpi.Credentials),
    Op("PUT", "/ocpi/2.2.1/credentials", "Update or rotate a registration", "§7.2.1",
       request=ocpi.Credentials, data=ocpi.Credentials),
    Op("DELETE", "/ocpi/2.2.1/credentials", "Unregister", "§7.2.1"),
    Op("GET", _LOC, "A Location as stored", "§8.2.2.1", data=ocpi.Location),
    Op("PUT", _LOC, "Push a whole Location", "§8.2.2.2", request=ocpi.Location, created=True),
    Op("PATCH", _LOC, "Update part of a Location", "§8.2.2.3", request=ocpi.Location, patch=True),
    Op("GET", _LOC + "/{uid}", "An EVSE as stored", "§8.2.2.1", data=ocpi.EVSE),
    Op("PUT", _LOC + "/{uid}", "Push a whole EVSE", "§8.2.2.2", request=ocpi.EVSE, created=True),
    Op("PATCH", _LOC + "/{uid}", "Update part of an EVSE (status)", "§8.2.2.3",
       request=ocpi.EVSE, patch=True),
    Op("GET", _LOC + "/{uid}/{cid}", "A Connector as stored", "§8.2.2.1", data=ocpi.Connector),
    Op("PUT", _LOC + "/{uid}/{cid}", "Push a whole Connector", "§8.2.2.2",
       request=ocpi.Connector, created=True),
    Op("PATCH", _LOC + "/{uid}/{cid}", "Update part of a Connector", "§8.2.2.3",
       request=ocpi.Connector, patch=True),
    Op("GET", "/ocpi/2.2.1/tariffs/{cc}/{pid}/{oid}", "A Tariff as stored", "§11.2.2.1",
       data=ocpi.Tariff),
    Op("PUT", "/ocpi/2.2.1/tariffs/{cc}/{pid}/{oid}", "Push a Tariff", "§11.2.2.2",
       request=ocpi.Tariff, created=True),
    Op("DELETE", "/ocpi/2.2.1/tariffs/{cc}/{pid}/{oid}", "Delete a Tariff", "§11.2.2.3"),
    Op("GET", "/ocpi/2.2.1/sessions/{cc}/{pid}/{oid}", "A Session as stored", "§9.2.2.1",
       data=ocpi.Session),
    Op("PUT", "/ocpi/2.2.1/sessions/{cc}/{pid}/{oid}", "Push a whole Session", "§9.2.2.2",
       request=ocpi.Session, created=True),
    Op("PATCH", "/ocpi/2.2.1/sessions/{cc}/{pid}/{oid}", "Update part of a Session (meter)",
       "§9.2.2.3", request=ocpi.Session, patch=True),
    Op("POST", "/ocpi/2.2.1/cdrs", "Push a CDR (immutable)", "§10.2.2.2", request=ocpi.CDR,
       created=True),
    Op("GET", "/ocpi/2.2.1/cdrs/{cc}/{pid}/{oid}", "A CDR, at the URL handed out in Location",
       "§10.2.2.1", data=ocpi.CDR),
    Op("GET", "/ocpi/2.2.1/tokens", "Our tokens, paginated", "§12.2.1.1", data=ocpi.Token,
       data_list=True),
    Op("POST", "/ocpi/2.2.1/tokens/{uid}/authorize", "Real-time authorization of a token",
       "§12.2.1.2", request=ocpi.LocationReferences, data=ocpi.AuthorizationInfo),
    Op("POST", "/ocpi/2.2.1/commands/{command}/{uid}", "The CPO's asynchronous CommandResult",
       "§13.2.2", request=ocpi.CommandResult),
)

_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "cc": _CC, "pid": _PID, "lid": _id("lid", "Location id"), "uid": _id("uid", "EVSE uid or "
                                                                        "token uid"),
    "cid": _id("cid", "Connector id"), "oid": _id("oid", "object id"),
    "command": {"name": "command", "in": "path", "required": True,
                "schema": {"type": "string", "enum": [c.value for c in ocpi.CommandType]}},
}
_QUERY: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "/ocpi/2.2.1/tokens"): [
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "date_from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "date_to", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
    ("POST", "/ocpi/2.2.1/tokens/{uid}/authorize"): [
        {"name": "type", "in": "query",
         "schema": {"type": "string", "enum": [t.value for t in ocpi.TokenType]}}],
}

BECKN_ACTIONS = ("discover", "select", "init", "confirm", "status", "track", "update", "cancel",
                 "rating", "support")


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def _partial(schema: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body: any of the object's fields, `last_updated` required (§8.2.2.3)."""
    out = copy.deepcopy(schema)
    out["required"] = ["last_updated"]
    out["title"] = f"{schema.get('title', 'Object')} (partial)"
    return out


def _envelope(data: dict[str, Any] | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "status_code": {"type": "integer", "description": "OCPI status code (§5)"},
        "status_message": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
    }
    if data is not None:
        props["data"] = data
    return {"type": "object", "required": ["status_code", "timestamp"], "properties": props}


def _ocpi_operation(op: Op) -> dict[str, Any]:
    params = [_PATH_PARAMS[name] for name in _names(op.path)]
    params += _QUERY.get((op.method, op.path), [])
    data: dict[str, Any] | None = None
    if op.data is not None:
        ref = {"$ref": REF.format(model=op.data.__name__)}
        data = {"type": "array", "items": ref} if op.data_list else ref
    ok = {"description": "OCPI status 1000, or a 2xxx/3xxx status for a refused request "
                         "(§5: an authenticated, well-formed request gets HTTP 200)",
          "content": {"application/json": {"schema": _envelope(data)}}}
    responses: dict[str, Any] = {"200": ok}
    if op.created:
        responses["201"] = {"description": "a new object was stored",
                            "content": {"application/json": {"schema": _envelope(None)}}}
    for code, what in (("400", "the body is not JSON (OCPI 2001)"),
                       ("401", "no or unknown credentials token"),
                       ("403", "the object belongs to another party"),
                       ("404", "unknown object (GET) or endpoint"),
                       ("405", "method not supported"),
                       ("413", "body too large")):
        responses[code] = {"description": what,
                           "content": {"application/json": {"schema": _envelope(None)}}}
    out: dict[str, Any] = {
        "summary": op.summary, "description": f"OCPI 2.2.1 {op.section}",
        "operationId": f"{op.method.lower()}{op.path.replace('/', '_').replace('{', '').replace('}', '')}",
        "parameters": params, "responses": responses,
        "security": [{"ocpiToken": []}],
    }
    if op.request is not None:
        name = op.request.__name__ + ("Patch" if op.patch else "")
        out["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": REF.format(model=name)}}}}
    return out


def _names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


@cache
def ocpi_document() -> dict[str, Any]:
    models = sorted({m for op in OCPI_OPS for m in (op.request, op.data) if m is not None},
                    key=lambda m: m.__name__)
    schemas = _schemas(models)
    for op in OCPI_OPS:
        if op.patch and op.request is not None:
            schemas[op.request.__name__ + "Patch"] = _partial(schemas[op.request.__name__])
    paths: dict[str, Any] = {}
    for op in OCPI_OPS:
        paths.setdefault(op.path, {})[op.method.lower()] = _ocpi_operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ocpi-beckn-bridge: OCPI 2.2.1 eMSP interface", "version": __version__,
                 "description": "What a CPO calls. Every answer is the OCPI envelope."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"ocpiToken": {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`Token <base64(credentials token)>` (§4.1.2); the raw token is "
                           "accepted too"}}},
    }


def _beckn_operation(action: str) -> dict[str, Any]:
    if action == "discover":
        request: dict[str, Any] = {"$ref": REF.format(model="DiscoverRequest")}
    else:
        request = {"type": "object", "required": ["context", "message"], "properties": {
            "context": {"$ref": REF.format(model="Context")},
            "message": {"type": "object", "description": "the action's message (beckn:Order "
                        "for the order flows; see docs/protocol-notes.md)"}}}
    ack = {"content": {"application/json": {"schema": {"$ref": REF.format(model="AckResponse")}}}}
    return {
        "summary": f"Beckn {action}", "operationId": f"beckn_{action}",
        "description": f"Beckn 2.0 (core-v2.0.0-rc2) `{action}`; the answer `on_{action}` is "
                       "POSTed to the BAP's bap_uri, signed.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {
            "200": {"description": "ACK: the request is taken; the callback follows", **ack},
            "400": {"description": "NACK: invalid request (30000) or a business error code", **ack},
            "401": {"description": "NACK: signature missing or wrong (10001)", **ack},
            "404": {"description": "NACK: unknown action (40001)", **ack},
            "413": {"description": "NACK: body too large", **ack},
            "429": {"description": "NACK: too many requests", **ack},
        },
        "security": [{"becknSignature": []}],
    }


@cache
def beckn_document() -> dict[str, Any]:
    schemas = _schemas([beckn.DiscoverRequest, beckn.Context, beckn.AckResponse])
    return {
        "openapi": "3.1.0",
        "info": {"title": "ocpi-beckn-bridge: Beckn 2.0 BPP", "version": __version__,
                 "description": "What a BAP calls. Requests are signed (ed25519 over BLAKE2b-512)."},
        "paths": {f"/beckn/{action}": {"post": _beckn_operation(action)}
                  for action in BECKN_ACTIONS},
        "components": {"schemas": schemas, "securitySchemes": {"becknSignature": {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": 'Signature keyId="{subscriber_id}|{key_id}|ed25519",algorithm="ed25519",'
                           'created=...,expires=...,headers="(created) (expires) digest",'
                           'signature=...'}}},
    }


@cache
def document_bytes(name: str) -> bytes:
    doc = {"ocpi": ocpi_document, "beckn": beckn_document}[name]()
    return orjson.dumps(doc)
