"""bridge.urlguard as pure functions: which addresses an outbound OCPI call may reach.
No traffic: the addresses are classified, never connected to."""

from __future__ import annotations

import ipaddress

import pytest

from bridge.urlguard import BlockedUrl, UrlPolicy, address_refusal, check_url

SAFE = UrlPolicy()
DEV = UrlPolicy(allow_loopback=True)
CLOSED = UrlPolicy(allow_private=True)


@pytest.mark.parametrize(("ip", "policy", "refused"), [
    ("93.184.216.34", SAFE, None),
    ("2606:2800:220:1:248:1893:25c8:1946", SAFE, None),
    ("127.0.0.1", SAFE, "a loopback address"),
    ("127.8.9.10", SAFE, "a loopback address"),
    ("::1", SAFE, "a loopback address"),
    ("127.0.0.1", DEV, None),
    ("10.0.0.5", SAFE, "a private address"),
    ("172.16.3.4", SAFE, "a private address"),
    ("192.168.1.1", SAFE, "a private address"),
    ("100.64.0.1", SAFE, "a private address"),
    ("fd00::1", SAFE, "a private address"),
    ("10.0.0.5", CLOSED, None),
    ("10.0.0.5", DEV, "a private address"),
    ("169.254.169.254", SAFE, "a link-local address"),
    ("169.254.169.254", CLOSED, "a link-local address"),  # never: cloud metadata
    ("169.254.169.254", DEV, "a link-local address"),
    ("fe80::1", SAFE, "a link-local address"),
    ("::ffff:169.254.169.254", SAFE, "a link-local address"),
    ("::ffff:127.0.0.1", SAFE, "a loopback address"),
    ("224.0.0.1", SAFE, "a multicast address"),
    ("ff02::1", SAFE, "a multicast address"),
    ("0.0.0.0", DEV, "an unspecified address"),
    ("::", DEV, "an unspecified address"),
    ("240.0.0.1", SAFE, "a reserved address"),
])
def test_address_refusal(ip: str, policy: UrlPolicy, refused: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(ip), policy) == refused


@pytest.mark.parametrize(("url", "policy", "ok"), [
    ("https://cpo.example/ocpi/versions", SAFE, True),  # a name: judged on what it resolves to
    ("http://127.0.0.1:8080/ocpi/versions", DEV, True),
    ("http://127.0.0.1:8080/ocpi/versions", SAFE, False),
    ("http://[::1]/", SAFE, False),
    ("http://169.254.169.254/latest/meta-data/", CLOSED, False),
    ("http://10.1.2.3/", SAFE, False),
    ("ftp://cpo.example/", SAFE, False),
    ("file:///etc/passwd", DEV, False),
    ("http:///nohost", SAFE, False),
    ("not a url", SAFE, False),
])
def test_check_url(url: str, policy: UrlPolicy, ok: bool) -> None:
    if ok:
        check_url(url, policy)
    else:
        with pytest.raises(BlockedUrl):
            check_url(url, policy)
