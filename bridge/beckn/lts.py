"""Beckn 2.0 LTS at the edge: its requests read into the draft's form, its context and
errors written back. Pure functions; no I/O.

The LTS (`core-v2.0.0-lts`, and the newer `release-v2.0.0-lts` branch, whose Context
adds `senderId`, `receiverId`, `try`) differs from the draft (rc2) the engine speaks
in its envelope and its model, not in what a charge is. So an LTS request is rewritten
here into the draft's form that the action handlers read (`inbound`), and everything
the bridge sends an LTS BAP is written in the LTS's own words: the context
(`context_out`), the errors (`error_out`), the Contract (`bridge.journey.lts`), the
catalog (`bridge.mapping.catalog_lts`). The mapping, field by field, and every choice
are in docs/protocol-notes.md ("The LTS profile").

    LTS                                   draft (what the handlers read)
    POST /{action}, /rate                 action, `rating`
    context.bapId, transactionId, ...     context.bap_id, transaction_id, ...
    context.networkId, schemaContext,     kept as they came (extra fields), written back
      senderId, receiverId, try, key        (sender and receiver swapped in answers)
    message.intent {textSearch, filters,  message.{text_search, filters, spatial,
      spatial, mediaSearch}                 media_search}; LTS member names in the
                                            filter rewritten to the catalog's
    message.contract                      message.order (`contract_to_order`)
    message.tracking {contract.id, url,   message.tracking {id, callbackUrl} + the order id
      status}
    message.ratingInputs[]                message.ratings[]
    message.support {orderId}             message {refId, refType ORDER}
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.beckn.errors import (
    AlreadyAnswered,
    AuthError,
    BecknError,
    InternalError,
    MessageIdReused,
    NotApplicable,
    Refused,
    RequestError,
    SchemaError,
    UnknownAction,
)
from bridge.beckn.errors import optional_array as _list
from bridge.beckn.errors import optional_object as _obj
from bridge.beckn.models import Context, format_timestamp

# LTS path (and context.action) -> the handler's action
ACTIONS: Final[dict[str, str]] = {
    "discover": "discover", "select": "select", "init": "init", "confirm": "confirm",
    "status": "status", "track": "track", "update": "update", "cancel": "cancel",
    "rate": "rating", "support": "support"}
_WIRE: Final[dict[str, str]] = {v: k for k, v in ACTIONS.items()}
# The paths of the LTS a BPP does not serve: its callbacks (a BAP's endpoints) and the
# catalog service's (a CDS / catalog indexer hosts them). (method, path)
CALLBACK_PATHS: Final = tuple(("POST", f"/on_{a}") for a in ACTIONS)
CATALOG_PATHS: Final = (
    ("POST", "/catalog/publish"), ("POST", "/catalog/on_publish"),
    ("POST", "/catalog/subscription"), ("GET", "/catalog/subscriptions"),
    ("GET", "/catalog/subscription/{subscriptionId}"),
    ("DELETE", "/catalog/subscription/{subscriptionId}"),
    ("POST", "/catalog/pull"), ("GET", "/catalog/pull/result/{requestId}/{filename}"),
    ("POST", "/catalog/master/search"), ("GET", "/catalog/master/schemaTypes"),
    ("GET", "/catalog/master/{masterItemId}"))
VERSION: Final = "2.0.0"  # the LTS Context's `version` const
REQUEST_DIGEST: Final = "obb_request_digest"  # = bridge.beckn.callbacks.REQUEST_DIGEST


def wire_action(action: str) -> str:
    """The LTS name of an action: `rating` -> `rate`, `on_rating` -> `on_rate`."""
    if action.startswith("on_"):
        return "on_" + _WIRE.get(action[3:], action[3:])
    return _WIRE.get(action, action)


# --------------------------------------------------------------------------- context


class LtsContext(BaseModel):
    """The LTS Context as read from a request: camelCase, `version` 2.0.0, every other
    field kept. Its errors name the LTS fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    action: str = Field(min_length=1)
    version: str = Field(min_length=1)
    bapId: str = Field(min_length=1)
    bapUri: str = Field(pattern=r"^https?://")
    bppId: str | None = None
    bppUri: str | None = None
    transactionId: str = Field(min_length=1, max_length=200)
    messageId: str = Field(min_length=1, max_length=200)
    timestamp: str = Field(min_length=1)
    ttl: str | None = None
    key: str | None = None
    domain: str | None = None
    location: dict[str, Any] | None = None
    networkId: str | None = None
    schemaContext: list[str] | None = None
    senderId: str | None = None
    receiverId: str | None = None
    try_: bool | None = Field(None, alias="try")
    requestDigest: dict[str, Any] | None = None


# LTS context field -> the draft's
_CTX: Final = {"action": "action", "version": "version", "bapId": "bap_id", "bapUri": "bap_uri",
               "bppId": "bpp_id", "bppUri": "bpp_uri", "transactionId": "transaction_id",
               "messageId": "message_id", "timestamp": "timestamp", "ttl": "ttl", "key": "key",
               "domain": "domain", "location": "location"}
_CTX_BACK: Final = {v: k for k, v in _CTX.items()}
# draft-only names an LTS context must not smuggle in as extra fields
_DRAFT_ONLY: Final = frozenset(Context.model_fields) | {REQUEST_DIGEST}


def _errors_text(exc: ValidationError, prefix: str) -> SchemaError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    where = where.replace("try_", "try")
    return SchemaError(f"{where}: {first['msg']}", {"field": where})


def context_in(raw: Any, request_digest: str) -> dict[str, Any]:
    """An LTS request context as the draft's context (a dict for `Context`), with the
    LTS-only fields kept beside and the request's digest noted (its answers carry it as
    `requestDigest`). SchemaError naming the LTS field."""
    if not isinstance(raw, dict):
        raise SchemaError("context: required object", {"field": "context"})
    try:
        lts = LtsContext.model_validate(raw)
    except ValidationError as exc:
        raise _errors_text(exc, "context") from exc
    if lts.version != VERSION:
        raise SchemaError(f"context.version: {lts.version!r} is not {VERSION!r}",
                          {"field": "context.version"})
    out: dict[str, Any] = {k: v for k, v in (lts.model_extra or {}).items()
                           if k not in _DRAFT_ONLY}
    for name in ("networkId", "schemaContext", "senderId", "receiverId", "requestDigest"):
        value = getattr(lts, name)
        if value is not None:
            out[name] = value
    if lts.try_ is not None:
        out["try"] = lts.try_
    for camel, snake in _CTX.items():
        value = getattr(lts, camel)
        if value is not None:
            out[snake] = value
    out[REQUEST_DIGEST] = request_digest
    return out


def context_out(ctx: Context) -> dict[str, Any]:
    """Our message's context (always an answer or a message to a BAP, made by
    `callback_context` from the BAP's request context) in the LTS's words: camelCase,
    `version` 2.0.0, `requestDigest` when it answers a request, the release branch's
    sender and receiver swapped (we send, the BAP receives), `try` echoed."""
    extra = dict(ctx.model_extra or {})
    out: dict[str, Any] = {
        "action": wire_action(ctx.action), "version": VERSION, "bapId": ctx.bap_id,
        "bapUri": ctx.bap_uri, "bppId": ctx.bpp_id, "bppUri": ctx.bpp_uri,
        "transactionId": ctx.transaction_id, "messageId": ctx.message_id,
        "timestamp": format_timestamp(ctx.timestamp)}
    for snake in ("ttl", "key", "domain", "location"):
        value = getattr(ctx, snake)
        if value is not None:
            out[_CTX_BACK[snake]] = value
    digest = extra.pop(REQUEST_DIGEST, None)
    extra.pop("requestDigest", None)  # the request's own, if it sent one: not ours to echo
    sender, receiver = extra.pop("senderId", None), extra.pop("receiverId", None)
    if receiver is not None:
        out["senderId"] = receiver
    if sender is not None:
        out["receiverId"] = sender
    for name, value in extra.items():
        if name not in _DRAFT_ONLY and value is not None:
            out[name] = value
    if digest:
        out["requestDigest"] = {"digest": digest}
    return out


def is_try(ctx: Context) -> bool:
    """`context.try: true` (release branch): a preview, nothing to change."""
    return bool((ctx.model_extra or {}).get("try"))


# --------------------------------------------------------------------------- errors

# Draft names in our error texts -> what an LTS BAP sent
_NAMES: Final = tuple((re.compile(a), b) for a, b in (
    (r"context\.bap_id", "context.bapId"), (r"context\.bap_uri", "context.bapUri"),
    (r"context\.bpp_id", "context.bppId"), (r"context\.bpp_uri", "context.bppUri"),
    (r"context\.transaction_id", "context.transactionId"),
    (r"context\.message_id", "context.messageId"),
    (r"message\.order\.beckn:orderItems\[0\]\.beckn:quantity",
     "message.contract.commitments[0].resources[0].quantity"),
    (r"message\.order\.beckn:orderItems\[0\]\.beckn:orderedItem",
     "message.contract.commitments[0].resources[0].id"),
    (r"message\.order\.beckn:orderItems(\[0\])?", "message.contract.commitments[0]"),
    (r"message\.order\.beckn:buyer\.beckn:telephone",
     "message.contract.participants[buyer].participantAttributes.beckn:telephone"),
    (r"message\.order\.beckn:buyer", "message.contract.participants[buyer]"),
    (r"message\.order\.beckn:orderAttributes", "message.contract.contractAttributes"),
    (r"message\.order\.beckn:fulfillment\.beckn:deliveryAttributes",
     "message.contract.performance[0].performanceAttributes"),
    (r"message\.order", "message.contract"),
    (r"message\.ratings\[0\]\.ratingValue", "message.ratingInputs[0].range.value"),
    (r"message\.ratings", "message.ratingInputs"),
    (r"message\.tracking\.callbackUrl", "message.tracking.url"),
    (r"message\.filters", "message.intent.filters"),
    (r"\bbeckn:quantity \{unitCode", "resources[0].quantity {unitCode"),
))


def lts_text(text: str) -> str:
    """An error text of the engine, with the draft's names a request's field has in the
    LTS written as the LTS names them."""
    for pattern, name in _NAMES:
        text = pattern.sub(name, text)
    return text


def error_out(code: str, message: str) -> dict[str, str]:
    """The LTS Error: `{errorCode, errorMessage}`."""
    return {"errorCode": code, "errorMessage": lts_text(message)}


def error_of(err: BecknError) -> dict[str, str]:
    text = err.message
    field = (err.details or {}).get("field")
    if isinstance(field, str) and field and field not in text:  # the LTS Error has no details
        text = f"{field}: {text}"
    return error_out(err.code, text)


def http_status(err: BecknError) -> tuple[int, str]:
    """(HTTP status, Ack status) of a refusal, as the LTS defines its answers:

        400 NackBadRequest    the request cannot be read or validated (RequestError)
        401 NackUnauthorized  the signature (AuthError)
        409 AckNoCallback     received, but no callback will follow: the action is not
                              applicable, the charger is unavailable, the quote cannot be
                              made, a duplicate ... (NACK; ACK for a duplicate answered
                              before whose answer is gone)
        500 ServerError       our failure
    Transport refusals keep their HTTP status (404 no such endpoint, 408, 413, 429)."""
    if isinstance(err, InternalError):
        return 500, "NACK"
    if isinstance(err, AuthError):
        return 401, "NACK"
    if isinstance(err, (Refused, UnknownAction)):
        return err.http_status, "NACK"
    if isinstance(err, MessageIdReused):
        return 400, "NACK"
    if isinstance(err, AlreadyAnswered):
        return 409, "ACK"
    if isinstance(err, RequestError):
        return 400, "NACK"
    return 409, "NACK"


# --------------------------------------------------------------------------- messages

# LTS member names in a discover filter -> the catalog's (rc2) names the search engine
# indexes and filters: an LTS BAP filters the Resource it sees, the engine the item.
_FILTER_NAMES: Final = (
    ("['resourceAttributes']", "['beckn:itemAttributes']"),
    ("['provider']['id']", "['beckn:provider']['beckn:id']"),
    ("['provider']", "['beckn:provider']"),
    ("['descriptor']['name']", "['beckn:descriptor']['schema:name']"),
    ("['descriptor']['shortDesc']", "['beckn:descriptor']['beckn:shortDesc']"),
    ("['descriptor']", "['beckn:descriptor']"),
    ("@['id']", "@['beckn:id']"),
)


def filter_in(expression: str) -> str:
    """An LTS filter over Resources, in the names of the catalog items it searches."""
    from bridge.beckn.discover import normalise_filter

    out = normalise_filter(expression)
    out = out.replace('["', "['").replace('"]', "']")
    for lts_name, name in _FILTER_NAMES:
        out = out.replace(lts_name, name)
    return out


def order_id(contract_id: Any) -> str | None:
    """The order id a contract id names: the LTS writes it as a uuid (`format: uuid`),
    the engine's orders are the same 128 bits in hex."""
    if not isinstance(contract_id, str) or not contract_id:
        return None
    try:
        return uuid.UUID(contract_id).hex
    except ValueError:
        return contract_id


def contract_id(order_id: str) -> str:
    try:
        return str(uuid.UUID(order_id))
    except ValueError:
        return order_id


def discover_in(message: dict[str, Any]) -> dict[str, Any]:
    """DiscoverAction `{intent {textSearch, filters, spatial, mediaSearch}, textSearch}`."""
    intent = _obj(message.get("intent"), "message.intent")
    out: dict[str, Any] = {}
    text = intent.get("textSearch") or message.get("textSearch") or message.get("text_search")
    if text is not None:
        out["text_search"] = text
    filters = intent.get("filters")
    if filters is not None:
        f = _obj(filters, "message.intent.filters")
        expr = f.get("expression")
        out["filters"] = {"type": f.get("type", "jsonpath"),
                          "expression": filter_in(expr) if isinstance(expr, str) else expr}
    spatial = []
    for i, c in enumerate(_list(intent.get("spatial"), "message.intent.spatial")):
        c = dict(_obj(c, f"message.intent.spatial[{i}]"))
        if isinstance(c.get("quantifier"), str):
            c["quantifier"] = c["quantifier"].lower()
        spatial.append(c)
    if spatial:
        out["spatial"] = spatial
    if intent.get("mediaSearch") is not None:
        out["media_search"] = intent["mediaSearch"]
    return out


def _buyer(participants: list[Any]) -> dict[str, Any] | None:
    """The buyer of a contract: the participant whose descriptor code (or whose
    `beckn:Buyer` attributes' role) says BUYER, else the one with `beckn:Buyer` attributes."""
    found = None
    for i, p in enumerate(participants):
        p = _obj(p, f"message.contract.participants[{i}]")
        code = str(_obj(p.get("descriptor"), "descriptor").get("code", "")).upper()
        attrs = _obj(p.get("participantAttributes"),
                     f"message.contract.participants[{i}].participantAttributes")
        if code == "BUYER" or str(attrs.get("beckn:role", "")).upper() == "BUYER":
            return p
        if found is None and attrs.get("@type") == "beckn:Buyer":
            found = p
    return found


def _buyer_in(p: dict[str, Any]) -> dict[str, Any]:
    """A buyer participant as the draft's `beckn:Buyer`: its attributes when they are one
    (the id the participant's), else the attributes' plain names (telephone, email,
    name, vpa) and the descriptor's name."""
    attrs = dict(_obj(p.get("participantAttributes"), "participantAttributes"))
    desc = _obj(p.get("descriptor"), "descriptor")
    if attrs.get("@type") == "beckn:Buyer":
        if p.get("id") and not attrs.get("beckn:id"):
            attrs["beckn:id"] = p["id"]
        return attrs
    out: dict[str, Any] = {"@type": "beckn:Buyer"}
    for key, name in (("beckn:id", None), ("beckn:displayName", "name"),
                      ("beckn:telephone", "telephone"), ("beckn:email", "email"),
                      ("beckn:taxID", "taxID")):
        value = p.get("id") if key == "beckn:id" else attrs.get(name or "")
        if key == "beckn:displayName" and not value:
            value = desc.get("name")
        if value:
            out[key] = value
    if attrs.get("vpa"):
        out["beckn:buyerAttributes"] = {"@context": attrs.get("@context", ""),
                                        "@type": attrs.get("@type", "BuyerUPI"),
                                        "vpa": attrs["vpa"]}
    return out


def contract_to_order(contract: Any) -> dict[str, Any]:
    """The Contract of an LTS request as the draft's order the handlers read:

        contract.id                               beckn:id (the order id, from its uuid)
        commitments[0].resources[0].id, quantity  the line: beckn:orderedItem, beckn:quantity
        performance[0].performanceAttributes      beckn:fulfillment.beckn:deliveryAttributes
          (a ChargingSession: slot, vehicle, finder fee, start/stop)
        commitments[0].commitmentAttributes       the same, when performance has none
        contractAttributes                        beckn:orderAttributes (e.g. the start code)
        participants[buyer]                       beckn:buyer
        settlements[0].settlementAttributes       beckn:payment (a beckn:Payment: a hold
                                                  is asked with paymentStatus AUTHORIZED)
    """
    c = _obj(contract, "message.contract")
    if contract is None:
        raise SchemaError("message.contract: required object", {"field": "message.contract"})
    order: dict[str, Any] = {"@type": "beckn:Order"}
    oid = order_id(c.get("id"))
    if oid:
        order["beckn:id"] = oid
    commitments = _list(c.get("commitments"), "message.contract.commitments")
    if commitments:
        first = _obj(commitments[0], "message.contract.commitments[0]")
        resources = _list(first.get("resources"), "message.contract.commitments[0].resources")
        line: dict[str, Any] = {"beckn:lineId": str(first.get("id") or "line-001")}
        if resources:
            res = _obj(resources[0], "message.contract.commitments[0].resources[0]")
            if res.get("id") is not None:
                line["beckn:orderedItem"] = res["id"]
            quantity = res.get("quantity")
            if quantity is not None:
                if not isinstance(quantity, dict):
                    raise SchemaError(
                        "message.contract.commitments[0].resources[0].quantity: a Quantity "
                        "{unitCode KWH|INR|MIN|HUR, unitQuantity}",
                        {"field": "message.contract.commitments[0].resources[0].quantity"})
                line["beckn:quantity"] = quantity
        order["beckn:orderItems"] = [line]
        session = first.get("commitmentAttributes")
    else:
        session = None
    performance = _list(c.get("performance"), "message.contract.performance")
    if performance:
        p0 = _obj(performance[0], "message.contract.performance[0]")
        session = p0.get("performanceAttributes") or session
    if session is not None:
        order["beckn:fulfillment"] = {"beckn:deliveryAttributes": _obj(
            session, "message.contract.performance[0].performanceAttributes")}
    if c.get("contractAttributes") is not None:
        order["beckn:orderAttributes"] = _obj(c["contractAttributes"],
                                              "message.contract.contractAttributes")
    buyer = _buyer(_list(c.get("participants"), "message.contract.participants"))
    if buyer is not None:
        order["beckn:buyer"] = _buyer_in(buyer)
    settlements = _list(c.get("settlements"), "message.contract.settlements")
    if settlements:
        s0 = _obj(settlements[0], "message.contract.settlements[0]")
        pay = s0.get("settlementAttributes")
        if pay is not None:
            order["beckn:payment"] = _obj(pay, "message.contract.settlements[0]."
                                               "settlementAttributes")
    return order


def _range_value(r: dict[str, Any], *names: str) -> Any:
    for n in names:
        if r.get(n) is not None:
            return r[n]
    return None


def rating_in(message: dict[str, Any]) -> dict[str, Any]:
    """RateAction `{ratingInputs[] {target {id, descriptor}, range, feedbackFormSubmission}}`:
    the LTS leaves `range` open; it is read as `{value, min, max}` (or schema.org's
    `ratingValue`, `worstRating`, `bestRating`)."""
    inputs = _list(message.get("ratingInputs"), "message.ratingInputs")
    ratings = []
    for i, r in enumerate(inputs):
        r = _obj(r, f"message.ratingInputs[{i}]")
        target = _obj(r.get("target"), f"message.ratingInputs[{i}].target")
        rng = _obj(r.get("range"), f"message.ratingInputs[{i}].range")
        code = str(_obj(target.get("descriptor"), "descriptor").get("code") or "ORDER").upper()
        out: dict[str, Any] = {"id": order_id(target.get("id")) if code == "ORDER"
                               else target.get("id"),
                               "category": code,
                               "ratingValue": _range_value(rng, "value", "ratingValue"),
                               "bestRating": _range_value(rng, "max", "bestRating") or 5,
                               "worstRating": _range_value(rng, "min", "worstRating") or 1}
        form = _obj(r.get("feedbackFormSubmission"), f"message.ratingInputs[{i}]."
                                                     "feedbackFormSubmission")
        data = _obj(form.get("data"), "feedbackFormSubmission.data")
        if data.get("comments"):
            out["feedback"] = {"comments": data["comments"]}
        ratings.append(out)
    return {"ratings": ratings}


def track_in(message: dict[str, Any]) -> dict[str, Any]:
    """TrackAction `{tracking {contract {id}, status, url}}`: the LTS requires `url` and
    `status` in the request too; `url` is read as where the BAP wants live updates (as
    the draft's `callbackUrl`), and `status` INACTIVE asks for none."""
    t = _obj(message.get("tracking"), "message.tracking")
    contract = _obj(t.get("contract"), "message.tracking.contract")
    tracking: dict[str, Any] = {}
    if t.get("url") is not None and str(t.get("status", "ACTIVE")).upper() != "INACTIVE":
        tracking["callbackUrl"] = t["url"]
    out: dict[str, Any] = {"tracking": tracking}
    oid = order_id(contract.get("id"))
    if oid:
        out["order"] = {"beckn:id": oid}
    return out


def support_in(message: dict[str, Any]) -> dict[str, Any]:
    s = _obj(message.get("support"), "message.support")
    oid = order_id(s.get("orderId"))
    return {"refId": oid, "refType": "ORDER"} if oid else {}


def message_in(action: str, message: Any) -> dict[str, Any]:
    """An LTS request's `message` in the draft's form for `action` (the handler's name)."""
    m = _obj(message, "message")
    if message is None:
        raise SchemaError("message: required object", {"field": "message"})
    if action == "discover":
        return discover_in(m)
    if action == "track":
        return track_in(m)
    if action == "rating":
        return rating_in(m)
    if action == "support":
        return support_in(m)
    if "contract" not in m:
        raise SchemaError("message.contract: required object", {"field": "message.contract"})
    return {"order": contract_to_order(m["contract"])}


# Actions whose `context.try` preview is answered: cancel (the contract as the cancel
# would leave it, with the refund the terms give: bridge.journey.cancel.preview), rate
# (the rating as it would be kept) and support (which changes nothing anyway). An update
# preview (start or stop a charge "without changing state") has no meaning here: 409.
PREVIEWS: Final = frozenset({"cancel", "rating", "support"})


def inbound(body: dict[str, Any], request_digest: str, action: str) -> dict[str, Any]:
    """An LTS request body in the draft's form: its context and its message."""
    ctx = context_in(body.get("context"), request_digest)
    wire = ctx.get("action")
    if wire != wire_action(action):
        raise SchemaError(f"context.action is {wire!r}, the path says {wire_action(action)!r}",
                          {"field": "context.action"})
    if ctx.get("try") is True and action not in PREVIEWS:
        raise NotApplicable(f"context.try: a preview of {wire} is not offered: send it with "
                            "try false (or without try)", {"field": "context.try"})
    ctx["action"] = action
    return {"context": ctx, "message": message_in(action, body.get("message"))}
