"""Outbound URL guard: the bridge calls only the public internet unless told otherwise.

URLs that peers hand us (an OCPI credentials `url`, the version and endpoint
URLs in their answers, a command's target) must not make the bridge a proxy
into its own network (SSRF): a token A holder could otherwise have us GET
`http://169.254.169.254/...` or our own Redis. The rule is checked on the
addresses a name *resolves to*, at connect time (a resolver that filters, so
a DNS answer that changes between a check and the connection cannot slip
through), and on IP literals before the request (aiohttp does not resolve
those).

Refused always: link-local (169.254/16, fe80::/10: cloud metadata),
multicast, unspecified (0.0.0.0, ::), reserved and non-http(s) schemes.
Refused unless allowed by a setting: loopback (`allow_loopback`, for local
development, `make run`, tests and the demo) and private ranges
(`allow_private`: RFC 1918, fc00::/7, 100.64/10; for closed networks).

The policy and the checks are pure; `guarded_session` wires them into aiohttp.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedUrl(aiohttp.ClientError):
    """An outbound URL the policy refuses (a ClientError: callers already handle those)."""


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = False
    allow_private: bool = False


def address_refusal(ip: IPAddress, policy: UrlPolicy) -> str | None:
    """Why `ip` may not be called under `policy`, or None if it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if ip.is_reserved:
        return "a reserved address"
    shared = isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10")
    if ip.is_private or shared:
        return None if policy.allow_private else "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def check_url(url: str, policy: UrlPolicy) -> None:
    """The checks that need no DNS: scheme, host present, IP literals. Raises BlockedUrl."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise BlockedUrl(f"{url[:100]!r} is not a URL") from exc
    if parts.scheme not in ("http", "https"):
        raise BlockedUrl(f"{url[:100]!r}: only http and https URLs are called")
    if not host:
        raise BlockedUrl(f"{url[:100]!r} has no host")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked on what it resolves to (GuardedResolver)
    reason = address_refusal(ip, policy)
    if reason:
        raise BlockedUrl(f"{host} is {reason}; the bridge does not call it "
                         "(see ocpi.allow_loopback_urls / ocpi.allow_private_urls)")


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then keeps only the addresses the policy allows."""

    def __init__(self, policy: UrlPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        allowed, reasons = [], []
        for r in results:
            reason = address_refusal(ipaddress.ip_address(r["host"]), self.policy)
            if reason is None:
                allowed.append(r)
            else:
                reasons.append(f"{r['host']} ({reason})")
        if not allowed:
            raise BlockedUrl(f"{host} resolves only to addresses the bridge does not call: "
                             f"{', '.join(reasons) or 'none'}")
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _trace(policy: UrlPolicy) -> aiohttp.TraceConfig:
    async def on_start(_s: aiohttp.ClientSession, _c: SimpleNamespace,
                       params: Any) -> None:
        check_url(str(params.url), policy)

    async def on_redirect(_s: aiohttp.ClientSession, _c: SimpleNamespace,
                          params: Any) -> None:
        location = params.response.headers.get("Location")
        if location:
            check_url(str(params.url.join(URL(location))), policy)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_redirect.append(on_redirect)
    return trace


def guarded_session(policy: UrlPolicy, *, limit: int = 100, limit_per_host: int = 0,
                    **kwargs: Any) -> aiohttp.ClientSession:
    """A client session that refuses what `policy` refuses, names and literals alike."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=limit,
                                     limit_per_host=limit_per_host)
    return aiohttp.ClientSession(connector=connector, trace_configs=[_trace(policy)], **kwargs)
