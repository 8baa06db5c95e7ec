"""Outbound OCPI 2.2.1 calls: one small interface over aiohttp.

Every error of the lower layers (connection refused, time-out, a URL the
guard refuses, non-2xx HTTP, a body that is not an OCPI envelope, an OCPI
status >= 2000, `data` that is not the object the spec says: `parse`) is
translated here into `OcpiClientError` (`raise ... from exc`), so callers
handle one exception. Endpoint URLs are joined with `join_url`, so a peer's
URL ending in `/` (common) gives no `//`. The token is sent as `Token base64(token)` (§4.1.2) and is never
logged. List GETs follow the `Link: rel="next"` header (§4.1.3).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
import structlog
from pydantic import BaseModel, ValidationError

from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import WIRE
from bridge.ocpi.transport import describe_validation_error, token_header

log = structlog.get_logger("bridge.ocpi.client")

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

M = TypeVar("M", bound=BaseModel)


def join_url(base: str, *parts: str) -> str:
    """`base` + `/part/...`, whether or not the peer's `base` ends in `/`."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def parse(model: type[M], data: Any, url: str) -> M:
    """The `data` of a peer's answer as `model`; anything else is the peer's error."""
    try:
        return model.model_validate(data, context=WIRE)
    except ValidationError as exc:
        raise OcpiClientError(f"{url}: the answer is not a valid {model.__name__}: "
                              f"{describe_validation_error(exc)}", url=url) from exc


@dataclass(frozen=True)
class OcpiReply:
    http_status: int
    status_code: int
    status_message: str
    data: Any
    headers: Mapping[str, str]


def next_link(link_header: str | None) -> str | None:
    if not link_header:
        return None
    match = _LINK_NEXT.search(link_header)
    return match.group(1) if match else None


class OcpiClient:
    """Calls another OCPI platform with one credentials token."""

    def __init__(self, session: aiohttp.ClientSession, token: str, *, timeout: float = 10.0,
                 from_party: tuple[str, str] | None = None,
                 to_party: tuple[str, str] | None = None) -> None:
        self._session = session
        self._auth = token_header(token)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._routing: dict[str, str] = {}
        if from_party:
            self._routing["OCPI-from-country-code"], self._routing["OCPI-from-party-id"] = from_party
        if to_party:
            self._routing["OCPI-to-country-code"], self._routing["OCPI-to-party-id"] = to_party

    async def request(self, method: str, url: str, *, json: Any = None,
                      params: Mapping[str, str] | None = None,
                      accept_status: tuple[int, ...] = ()) -> OcpiReply:
        request_id = str(uuid.uuid4())
        headers = {
            "Authorization": self._auth,
            "X-Request-ID": request_id,
            "X-Correlation-ID": request_id,
            **self._routing,
        }
        body = None
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, url, data=body, params=params,
                                             headers=headers, timeout=self._timeout,
                                             allow_redirects=False) as resp:
                raw = await resp.read()
                http_status = resp.status
                resp_headers = dict(resp.headers)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise OcpiClientError(f"{method} {url}: {type(exc).__name__}: {exc}", url=url) from exc
        try:
            doc = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            raise OcpiClientError(f"{method} {url}: HTTP {http_status}, body is not JSON",
                                  url=url, http_status=http_status) from exc
        if not isinstance(doc, dict) or "status_code" not in doc:
            raise OcpiClientError(f"{method} {url}: HTTP {http_status}, not an OCPI envelope",
                                  url=url, http_status=http_status)
        status_code = doc.get("status_code")
        if isinstance(status_code, bool) or not isinstance(status_code, int):
            raise OcpiClientError(f"{method} {url}: HTTP {http_status}, status_code is not an "
                                  "integer", url=url, http_status=http_status)
        message = str(doc.get("status_message") or "")[:500]
        if http_status >= 300 and http_status not in accept_status:
            raise OcpiClientError(f"{method} {url}: HTTP {http_status}, OCPI {status_code} {message}",
                                  url=url, http_status=http_status, ocpi_status=status_code)
        if status_code >= 2000:
            raise OcpiClientError(f"{method} {url}: OCPI {status_code} {message}",
                                  url=url, http_status=http_status, ocpi_status=status_code)
        log.debug("ocpi.call", method=method, url=url, http_status=http_status,
                  status_code=status_code)
        return OcpiReply(http_status, status_code, message, doc.get("data"), resp_headers)

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        return (await self.request("GET", url, params=params)).data

    async def put(self, url: str, body: Any) -> Any:
        return (await self.request("PUT", url, json=body)).data

    async def patch(self, url: str, body: Any) -> Any:
        return (await self.request("PATCH", url, json=body)).data

    async def post(self, url: str, body: Any) -> Any:
        return (await self.request("POST", url, json=body)).data

    async def delete(self, url: str) -> Any:
        return (await self.request("DELETE", url)).data

    async def get_all(self, url: str, params: Mapping[str, str] | None = None,
                      max_pages: int = 100_000) -> AsyncIterator[Any]:
        """Every object of a paginated list, following `Link: rel="next"`."""
        async for item, _total in self.get_all_counted(url, params, max_pages):
            yield item

    async def get_all_counted(self, url: str, params: Mapping[str, str] | None = None,
                              max_pages: int = 100_000) -> AsyncIterator[tuple[Any, int | None]]:
        """Like `get_all`, with the list's size as the sender announces it (`X-Total-Count`,
        §4.1.3; None when absent) beside each object."""
        next_url: str | None = url
        query = params
        pages = 0
        while next_url and pages < max_pages:
            reply = await self.request("GET", next_url, params=query)
            if not isinstance(reply.data, list):
                raise OcpiClientError(f"GET {next_url}: data is not a list", url=next_url)
            total = _int_header(reply.headers, "X-Total-Count")
            for item in reply.data:
                yield item, total
            pages += 1
            next_url = next_link(reply.headers.get("Link") or reply.headers.get("link"))
            query = None  # the next link carries the query


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name) or headers.get(name.lower())
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def discover_endpoints(client: OcpiClient, versions_url: str,
                             version: str = "2.2.1") -> tuple[str, list[dict[str, Any]]]:
    """GET the versions list, pick `version`, GET its details: (details url, endpoints)."""
    versions = await client.get(versions_url)
    if not isinstance(versions, list):
        raise OcpiClientError(f"GET {versions_url}: versions is not a list", url=versions_url)
    match = next((v for v in versions if isinstance(v, dict) and v.get("version") == version), None)
    if match is None:
        offered = ", ".join(str(v.get("version")) for v in versions if isinstance(v, dict))
        raise OcpiClientError(f"{versions_url} offers no OCPI {version} (offers: {offered or 'none'})",
                              url=versions_url)
    details = await client.get(str(match["url"]))
    if not isinstance(details, dict) or not isinstance(details.get("endpoints"), list):
        raise OcpiClientError(f"GET {match['url']}: no endpoints in version details",
                              url=str(match["url"]))
    return str(match["url"]), list(details["endpoints"])
