"""Exceptions of the OCPI side, each carrying its OCPI status code and HTTP status.

The transport middleware turns any `OcpiError` into the response envelope
(spec "transport_and_format" §4.1.7, "status_codes" §5), so route handlers
only raise.

    OcpiError                       2000  HTTP 400  generic client error
     +-- InvalidParameters          2001  HTTP 400  invalid or missing parameters, bad JSON, schema
     +-- NotEnoughInformation       2002  HTTP 400  e.g. not enough information to authorize
     +-- UnknownLocation            2003  HTTP 404  location / EVSE / connector not known
     +-- UnknownToken               2004  HTTP 404  token not known
     +-- UnknownObject              2000  HTTP 404  other object not known
     +-- Unauthorized               2000  HTTP 401  no or unknown token
     +-- Forbidden                  2000  HTTP 403  the token's party may not touch this object
     +-- MethodNotAllowed           2000  HTTP 405  method not supported by this module
     +-- AlreadyExists              2000  HTTP 409  immutable object already stored (CDR)
     +-- ServerError                3000  HTTP 500  generic server error
          +-- UnableToUseClientApi  3001  HTTP 500  our calls to the other party failed
          +-- UnsupportedVersion    3002  HTTP 500  no mutual version
          +-- MissingEndpoints      3003  HTTP 500  the other party lacks a module we need

`OcpiClientError` is raised by `bridge.ocpi.client` when the *other* platform
answers an error or cannot be reached; it carries what it answered.
"""

from __future__ import annotations


class OcpiError(Exception):
    status_code: int = 2000
    http_status: int = 400

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


class NotEnoughInformation(OcpiError):
    status_code = 2002


class UnknownLocation(OcpiError):
    status_code = 2003
    http_status = 404


class UnknownToken(OcpiError):
    status_code = 2004
    http_status = 404


class UnknownObject(OcpiError):
    http_status = 404


class Unauthorized(OcpiError):
    http_status = 401


class Forbidden(OcpiError):
    http_status = 403


class MethodNotAllowed(OcpiError):
    http_status = 405


class AlreadyExists(OcpiError):
    http_status = 409


class ServerError(OcpiError):
    status_code = 3000
    http_status = 500


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
