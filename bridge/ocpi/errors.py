"""Exceptions of the OCPI side, each carrying its OCPI status code and HTTP status.

The transport middleware turns any `OcpiError` into the response envelope
(spec "transport_and_format" §4.1.7, "status_codes" §5), so route handlers
only raise.

    OcpiError                       2000  HTTP 200  generic client error
     +-- InvalidParameters          2001  HTTP 200  invalid or missing parameters, wrong types
     |    +-- NotJson               2001  HTTP 400  the body is not JSON (transport layer)
     |    +-- TooLarge              2001  HTTP 413  the body is over the size limit (transport)
     +-- NotEnoughInformation       2002  HTTP 200  e.g. not enough information to authorize
     +-- UnknownLocation            2003  HTTP 404  the location / EVSE / connector addressed
     +-- UnknownToken               2004  HTTP 200  token not known (authorize)
     +-- UnknownObject              2000  HTTP 404  the object addressed by the URL is not known
     +-- Unauthorized               2000  HTTP 401  no or unknown token, or token A on a module
     +-- Forbidden                  2000  HTTP 200  the token's party may not touch this object
     +-- MethodNotAllowed           2000  HTTP 405  method not supported (with `Allow`)
     +-- AlreadyExists              2000  HTTP 200  immutable object already stored (CDR)
     +-- ServerError                3000  HTTP 200  generic server error (the catch-all: 500)
          +-- UnableToUseClientApi  3001  HTTP 200  our calls to the other party failed
          +-- UnsupportedVersion    3002  HTTP 200  no mutual version
          +-- MissingEndpoints      3003  HTTP 200  the other party lacks a module we need

HTTP statuses follow the spec's status-code chapter ("status_codes" §5): a
request that is authenticated, is valid JSON and addresses an existing
endpoint has reached the OCPI layer, so no HTTP error is returned: HTTP 200
with the OCPI status code. HTTP errors are for the transport layer only: 401
(credentials), 400 (not JSON), 413 (too large), 404 (no such endpoint, or the
object the URL addresses does not exist: "as is customary for RESTful APIs"),
405 (method). A bug of ours (an exception no handler expected) is 500/3000.

`OcpiClientError` is raised by `bridge.ocpi.client` when the *other* platform
answers an error or cannot be reached; it carries what it answered.
"""

from __future__ import annotations


class OcpiError(Exception):
    status_code: int = 2000
    http_status: int = 200

    def __init__(self, message: str, *, status_code: int | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if http_status is not None:
            self.http_status = http_status


class InvalidParameters(OcpiError):
    status_code = 2001


class NotJson(InvalidParameters):
    http_status = 400


class TooLarge(InvalidParameters):
    http_status = 413


class NotEnoughInformation(OcpiError):
    status_code = 2002


class UnknownLocation(OcpiError):
    status_code = 2003
    http_status = 404


class UnknownToken(OcpiError):
    status_code = 2004


class UnknownObject(OcpiError):
    http_status = 404


class Unauthorized(OcpiError):
    http_status = 401


class Forbidden(OcpiError):
    pass


class NotYourParty(Forbidden):
    """The object's party is not one of the caller's. Raised before any write, so the
    middleware may re-check the token against Redis and run the handler again."""


class MethodNotAllowed(OcpiError):
    http_status = 405

    def __init__(self, message: str, *, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allow = allow


class AlreadyExists(OcpiError):
    pass


class TooSlow(InvalidParameters):
    """The body did not arrive within `server.body_timeout` seconds: HTTP 408."""

    http_status = 408


class TooManyRequests(OcpiError):
    """The platform's request budget is spent (`ocpi.rate_limit`): HTTP 429, Retry-After."""

    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(OcpiError):
    status_code = 3000


class UnableToUseClientApi(ServerError):
    status_code = 3001


class UnsupportedVersion(ServerError):
    status_code = 3002


class MissingEndpoints(ServerError):
    status_code = 3003


class OcpiClientError(Exception):
    """A call to another OCPI platform failed: transport error, HTTP error or OCPI status >= 2000."""

    def __init__(self, message: str, *, url: str, http_status: int | None = None,
                 ocpi_status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.http_status = http_status
        self.ocpi_status = ocpi_status
