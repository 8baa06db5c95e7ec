"""Beckn errors: each exception carries the Beckn error code and the HTTP status
of the NACK it becomes. One middleware (`bridge.beckn.transport`) turns them
into the AckResponse envelope; nothing else builds a NACK.

    BecknError                      (base; code, http_status, message, details)
    +-- RequestError                30000  400  the request is not acceptable
    |   +-- InvalidJson             30000  400  body is not JSON / not an object
    |   +-- SchemaError             30000  400  a field is missing or wrong (details.field)
    |   +-- WrongDomain             30000  400  context.domain / context.version not ours
    |   +-- WrongRecipient          30000  400  context.bpp_id / bpp_uri is not this bridge
    |   +-- StaleRequest            30000  400  ttl elapsed, timestamp too old or in the future
    |   +-- BadFilter               30000  400  filters.expression is not a usable JSONPath
    +-- AuthError                   10001  401  signature missing, malformed, expired or wrong
    |   +-- UnknownSubscriber       10001  401  the registry does not know the key
    +-- NotApplicable               40001  400  action not implemented (yet) by this BPP
    |   +-- UnknownAction           40001  404  no such Beckn action
    +-- ItemNotFound                30004  400  (for the order flows) item id unknown
    +-- OrderNotFound               30010  400  an order id that is not this transaction's
    +-- Duplicate                   (409: the request's message id was seen before)
    |   +-- MessageIdReused         30020  409  same (bap_id, action, message_id), another body
    |   +-- RequestInProgress       30021  409  a copy of it is being handled: retry shortly
    |   +-- AlreadyAnswered         30022  409  answered before, the answer no longer kept
    +-- InternalError               31001  500  a bug or an unavailable dependency
    +-- Refused                     30000  (413 body too large, 408 body too slow,
                                            429 too many requests: `retry_after`)

Codes come from the Beckn error code list (BECKN-005: 30000 invalid request,
30004 item not found, 30010 order not found, 40001 action not applicable) and from
the network-wide v1 list for signatures (10001 "Invalid Signature"); 31001
"Internal error" is the ONDC extension of the same list. 30020-30022 are the
bridge's own (the list has no code for a reused message id). The RC2 Error schema types `code` as a
string, so codes are sent as strings ("30000").

Lower layers (pydantic, cryptography, aiohttp) never leak: the module that
calls them raises one of these `from` the original exception.
"""

from __future__ import annotations

from typing import Any


class BecknError(Exception):
    code = "30000"
    http_status = 400
    default_message = "Invalid request error"

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return err


class RequestError(BecknError):
    pass


class InvalidJson(RequestError):
    default_message = "request body is not a JSON object"


class SchemaError(RequestError):
    default_message = "request does not match the schema"


def optional_object(value: Any, field: str) -> dict[str, Any]:
    """An object the request may leave out ({}), or a SchemaError naming the field (the
    request readers of every profile: bridge/journey/wire.py, bridge/beckn/lts.py)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(f"{field}: must be an object", {"field": field})
    return value


def optional_array(value: Any, field: str) -> list[Any]:
    """An array the request may leave out ([]), or a SchemaError naming the field."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SchemaError(f"{field}: must be an array", {"field": field})
    return value


class WrongDomain(RequestError):
    default_message = "domain or version not served by this BPP"


class WrongRecipient(RequestError):
    default_message = "bpp_id is not this BPP"


class StaleRequest(RequestError):
    default_message = "stale request"


class BadFilter(RequestError):
    default_message = "filters.expression is not a valid JSONPath (RFC 9535)"


class AuthError(BecknError):
    code = "10001"
    http_status = 401
    default_message = "Invalid Signature"


class UnknownSubscriber(AuthError):
    default_message = "subscriber or key not found in the registry"


class NotApplicable(BecknError):
    code = "40001"
    default_message = "Action not applicable"


class UnknownAction(NotApplicable):
    http_status = 404
    default_message = "unknown Beckn action"


class ItemNotFound(BecknError):
    code = "30004"
    default_message = "Item not found"


class OrderNotFound(BecknError):
    code = "30010"
    default_message = "Order not found"


class Duplicate(BecknError):
    http_status = 409


class MessageIdReused(Duplicate):
    code = "30020"
    default_message = "this message_id was used for another request of this action"


class RequestInProgress(Duplicate):
    code = "30021"
    default_message = "a copy of this request is being handled: retry shortly"


class AlreadyAnswered(Duplicate):
    code = "30022"
    default_message = "this request was answered already; its answer is no longer kept"


class Refused(RequestError):
    """Refused at the door, before any work: the HTTP status says why (413, 408, 429).
    Beckn has no code of its own for these; 30000 with the status and a message."""

    def __init__(self, message: str, http_status: int, retry_after: float | None = None) -> None:
        super().__init__(message, {"retry_after": retry_after} if retry_after else None)
        self.http_status = http_status
        self.retry_after = retry_after


class InternalError(BecknError):
    code = "31001"
    http_status = 500
    default_message = "Internal error"


# Every code the bridge sends, for the README table and `bridge` docs.
ERROR_TABLE: tuple[tuple[type[BecknError], str], ...] = (
    (InvalidJson, "body is not a JSON object"),
    (SchemaError, "a field is missing or has a wrong type/value; details.field names it"),
    (WrongDomain, "context.domain/version is not ours"),
    (WrongRecipient, "context.bpp_id (or bpp_uri) is not this bridge"),
    (StaleRequest, "ttl elapsed, timestamp too far in the past or the future"),
    (BadFilter, "filters.expression does not compile"),
    (AuthError, "Authorization signature missing, malformed, expired or wrong"),
    (UnknownSubscriber, "signing key not found in the registry / static keys"),
    (NotApplicable, "action not applicable here, or not in the order's current state"),
    (UnknownAction, "no such action (HTTP 404)"),
    (ItemNotFound, "unknown charger or item"),
    (OrderNotFound, "an order id that is not this transaction's order"),
    (MessageIdReused, "(bap_id, action, message_id) seen before with another body (HTTP 409)"),
    (RequestInProgress, "a copy of the request is still being handled: retry (HTTP 409)"),
    (AlreadyAnswered, "a duplicate whose answer is no longer kept (HTTP 409)"),
    (InternalError, "unexpected failure (HTTP 500)"),
)
