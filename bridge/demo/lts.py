"""The demo BAP speaking Beckn 2.0 LTS (`bridge demo --profile lts`).

The journeys are written once (`bridge.demo.steps`, in the draft's words); an LTS BAP
sends the same requests as the LTS writes them (`request`: the camelCase context,
`message.contract`, `message.intent`), checks the counter-signature of every Ack the
bridge answers (`read_ack`) and counter-signs its own Acks to the bridge's callbacks
(`callback_ack`). Reading the callbacks is `bridge.demo.view`'s (it knows the Contract).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bridge.beckn import countersign
from bridge.beckn.lts import order_id
from bridge.demo.bap import Identity

PATH = {"rating": "rate"}  # the LTS path of an action, where the names differ
SESSION_CTX = ("https://raw.githubusercontent.com/beckn/protocol-specifications-v2/refs/heads/"
               "core-v2.0.0-rc2/schema/EvChargingSession/v1/context.jsonld")
CORE_CTX = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
            "schema/core/v2/context.jsonld")
START_CODE_CTX = "https://example.org/schema/ChargeAuthorization/v1/context.jsonld"


def path(action: str) -> str:
    return "/" + PATH.get(action, action)


def context(action: str, txn: str, bap_id: str, bap_uri: str, bpp_id: str,
            bridge_url: str) -> dict[str, Any]:
    return {"action": PATH.get(action, action), "version": "2.0.0", "bapId": bap_id,
            "bapUri": bap_uri, "bppId": bpp_id, "bppUri": bridge_url, "transactionId": txn,
            "messageId": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "ttl": "PT30S"}


def _ref(contract: dict[str, Any] | None) -> dict[str, Any]:
    """The contract named as the LTS asks of a request about it: its id and commitments."""
    if not contract:
        return {}
    return {k: contract[k] for k in ("id", "commitments") if k in contract}


def _select(order: dict[str, Any]) -> dict[str, Any]:
    line = (order.get("beckn:orderItems") or [{}])[0]
    item = str(line.get("beckn:orderedItem"))
    measure = (line.get("beckn:orderItemAttributes") or {}).get("quantity-measure")
    if isinstance(measure, dict):
        quantity = {"unitCode": str(measure.get("unit", "KWH")).upper(),
                    "unitQuantity": float(measure["value"])}
    else:
        quantity = {"unitCode": "INR", "unitQuantity": float(
            (line.get("beckn:price") or {}).get("value", 0))}
    fd = (order.get("beckn:orderAttributes") or {}).get("fulfillment-details") or {}
    session: dict[str, Any] = {"@context": SESSION_CTX, "@type": "ChargingSession"}
    vehicle = fd.get("vehicle") or {}
    if vehicle.get("make"):
        session["vehicleMake"] = vehicle["make"]
    if vehicle.get("model"):
        session["vehicleModel"] = vehicle["model"]
    times = {("startTime" if s.get("type") == "START" else "endTime"): s["time"]["timestamp"]
             for s in fd.get("stops") or [] if (s.get("time") or {}).get("timestamp")}
    if times:
        session["preferences"] = times
    return {"contract": {
        "commitments": [{"id": "commitment-001", "status": {"descriptor": {"code": "DRAFT"}},
                         "resources": [{"id": item, "quantity": quantity}],
                         "offer": {"id": f"offer:{item}", "resourceIds": [item]}}],
        "performance": [{"id": "performance-1", "performanceAttributes": session}]}}


def _init(order: dict[str, Any], contract: dict[str, Any] | None) -> dict[str, Any]:
    attrs = order.get("beckn:orderAttributes") or {}
    billing = attrs.get("billing-details") or {}
    payer = str(billing.get("beckn:payer") or billing.get("schema:telephone"))
    buyer = {"@context": CORE_CTX, "@type": "beckn:Buyer", "beckn:id": payer,
             "beckn:role": "BUYER"}
    if billing.get("schema:name"):
        buyer["beckn:displayName"] = billing["schema:name"]
    if billing.get("schema:telephone"):
        buyer["beckn:telephone"] = billing["schema:telephone"]
    out: dict[str, Any] = {**_ref(contract), "participants": [{
        "id": payer, "descriptor": {"code": "BUYER", **({"name": billing["schema:name"]}
                                                        if billing.get("schema:name") else {})},
        "participantAttributes": buyer}]}
    if (attrs.get("payment-details") or {}).get("payment-type") == "AUTHORIZATION-HOLD":
        out["settlements"] = [{"id": "payment-1", "status": "DRAFT", "settlementAttributes": {
            "@context": CORE_CTX, "@type": "beckn:Payment", "beckn:paymentStatus": "AUTHORIZED"}}]
    return {"contract": out}


def _update(order: dict[str, Any], contract: dict[str, Any] | None) -> dict[str, Any]:
    fu = (order.get("beckn:orderAttributes") or {}).get("fulfillment-update") or {}
    code = (fu.get("state") or {}).get("code")
    perf = ((contract or {}).get("performance") or [{"id": "performance-1"}])[0]
    out: dict[str, Any] = {**_ref(contract), "performance": [{
        "id": perf.get("id", "performance-1"), "performanceAttributes": {
            "@context": SESSION_CTX, "@type": "ChargingSession",
            "sessionStatus": "ACTIVE" if code == "start-charging" else "STOP"}}]}
    token = (fu.get("authorization") or {}).get("token")
    if token:
        out["contractAttributes"] = {"@context": START_CODE_CTX, "@type": "ChargeAuthorization",
                                     "authorization": {"type": "OTP", "token": token}}
    return {"contract": out}


def request(action: str, message: dict[str, Any], contract: dict[str, Any] | None
            ) -> dict[str, Any]:
    """`message` of a demo request (the draft's words, `bridge.demo.steps`) as an LTS BAP
    writes it; `contract` is the transaction's contract as last received."""
    order = message.get("order") or {}
    if action == "discover":
        return {"intent": {"textSearch": str(message.get("text_search", ""))}}
    if action == "select":
        return _select(order)
    if action == "init":
        return _init(order, contract)
    if action == "update":
        return _update(order, contract)
    if action == "track":
        callback = (order.get("beckn:orderAttributes") or {}).get("callback-url")
        return {"tracking": {"contract": _ref(contract), "status": "ACTIVE",
                             "url": callback or ""}}
    return {"contract": _ref(contract)}  # confirm, status, cancel


def read_ack(status: int, raw: bytes, request_body: bytes, message_id: str,
             bridge_key: Ed25519PublicKey | None, bpp_id: str) -> tuple[dict[str, Any], str]:
    """The bridge's Ack as the demo's steps read Acks (`ack_status`, `error {code, message}`)
    and why its counter-signature does not hold ("" when it does)."""
    try:
        ack = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"ack_status": "NACK", "error": {"code": str(status), "message": raw[:200].decode(
            errors="replace")}}, "not JSON"
    if not isinstance(ack, dict):
        return {"ack_status": "NACK", "error": {"code": str(status), "message": "not an Ack"}}, \
            "not an object"
    why = ""
    try:
        header = countersign.parse(ack.get("signature"))
        if header.subscriber_id != bpp_id:
            why = f"counter-signed by {header.subscriber_id}, not {bpp_id}"
        elif bridge_key is None:
            why = "the bridge's public key is unknown"
        else:
            countersign.verify(ack, request_body, message_id, bridge_key, time.time(), skew=5)
    except Exception as exc:  # a verdict to show, not a crash
        why = str(exc) or type(exc).__name__
    err = ack.get("error") or {}
    out: dict[str, Any] = {"ack_status": ack.get("status", "NACK")}
    if err:
        out["error"] = {"code": err.get("errorCode"), "message": err.get("errorMessage")}
    return out, why


def callback_ack(identity: Identity, raw: bytes, message_id: str) -> dict[str, Any]:
    """Our Ack to a callback of the bridge, counter-signed with the demo BAP's key."""
    ack: dict[str, Any] = {"status": "ACK"}
    ack["signature"] = countersign.counter_sign(
        identity.key.sign, identity.subscriber_id, identity.key_id, ack, raw, message_id,
        time.time(), 300)
    return ack


def contract_of(body: dict[str, Any]) -> dict[str, Any] | None:
    msg = body.get("message") or {}
    c = msg.get("contract") or (msg.get("tracking") or {}).get("contract")
    return c if isinstance(c, dict) else None


__all__ = ["callback_ack", "context", "contract_of", "order_id", "path", "read_ack", "request"]
