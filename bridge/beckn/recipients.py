"""Where the bridge may send a BAP's messages: only to the address the network registered.

A BAP names its own `context.bap_uri` (where our `on_*` go) and, for tracking, a
`callback-url` (where the session PATCHes go). Taken at face value, any signed
BAP could make the bridge POST signed messages to any address (SSRF; a BAP
named victim.example's URL and 1,000 discovers sent it 67 MB). So:

- when the signer's registry record carries a `subscriber_url`, `bap_uri` must be
  that URL or under it (same scheme, host and port, path below), and a tracking
  `callback-url` must be on the same host;
- a closed network without such records lists the allowed prefixes in
  `beckn.callback_allow` (comma-separated URL prefixes);
- with neither (verification off, adapter mode), only the address guard applies.

Whatever passes here still goes through `bridge.urlguard` at connect time: no
private, loopback or link-local address unless the settings allow it. Pure.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bridge.beckn.registry import Subscriber


def _origin(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port or default, parts.path.rstrip("/")


def under(url: str, base: str) -> bool:
    """`url` is `base` or below it: same scheme, host and port, and a path under base's."""
    u, b = _origin(url), _origin(base)
    if u is None or b is None or u[:3] != b[:3]:
        return False
    return u[3] == b[3] or u[3].startswith(b[3] + "/")


def same_host(url: str, base: str) -> bool:
    u, b = _origin(url), _origin(base)
    return u is not None and b is not None and u[:3] == b[:3]


def allowed_prefixes(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def bap_uri_refusal(bap_uri: str, sub: Subscriber | None, allow: str) -> str | None:
    """Why our callbacks may not go to `bap_uri`, or None."""
    if sub is not None and sub.subscriber_url:
        if under(bap_uri, sub.subscriber_url):
            return None
        return (f"context.bap_uri {bap_uri} is not under the subscriber_url registered for "
                f"{sub.subscriber_id} ({sub.subscriber_url})")
    prefixes = allowed_prefixes(allow)
    if prefixes and not any(under(bap_uri, p) for p in prefixes):
        return f"context.bap_uri {bap_uri} is not among the allowed callback addresses"
    return None


def tracking_refusal(callback: str, bap_uri: str, sub: Subscriber | None, allow: str) -> str | None:
    """Why tracking PATCHes may not go to `callback`, or None: the BAP's own host (as
    registered, or its accepted bap_uri), or an allowed prefix."""
    if sub is not None and sub.subscriber_url:
        if same_host(callback, sub.subscriber_url):
            return None
        return (f"callback-url {callback} is not on the host registered for "
                f"{sub.subscriber_id} ({sub.subscriber_url})")
    prefixes = allowed_prefixes(allow)
    if prefixes:
        if any(same_host(callback, p) for p in prefixes):
            return None
        return f"callback-url {callback} is not among the allowed callback addresses"
    if not same_host(callback, bap_uri):
        return f"callback-url {callback} is not on the BAP's own host ({bap_uri})"
    return None
