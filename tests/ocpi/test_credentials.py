"""Credentials handshake both ways (OCPI 2.2.1 §7) against real HTTP servers."""

from __future__ import annotations

import aiohttp
import pytest
from structlog.testing import capture_logs

from bridge.ocpi.credentials import register_with
from bridge.ocpi.deps import OcpiDeps
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore
from tests.conftest import free_port
from tests.ocpi.conftest import Bridge, Ocpi, location, register_cpo
from tests.ocpi.cpo_double import CpoDouble


def creds_body(double: CpoDouble, roles: list[tuple[str, str, str]] | None = None) -> dict:
    roles = roles or [("CPO", cc, pid) for cc, pid in double.parties]
    return {"token": double.token_b, "url": f"{double.base_url}/ocpi/versions",
            "roles": [{"role": r, "country_code": cc, "party_id": pid,
                       "business_details": {"name": "x"}} for r, cc, pid in roles]}


async def test_handshake_with_token_a(bridge: Bridge, cpo_double: CpoDouble,
                                      http: aiohttp.ClientSession) -> None:
    token_a = await bridge.invite("IN", "TPC", ("IN", "ZEO"))
    cpo_a = Ocpi(bridge.url, token_a, http)
    # versions are readable with token A
    status, body, _ = await cpo_a.call("GET", "/ocpi/versions")
    assert status == 200 and body["data"][0]["version"] == "2.2.1"
    status, body, _ = await cpo_a.call("GET", "/ocpi/2.2.1")
    modules = {(e["identifier"], e["role"]) for e in body["data"]["endpoints"]}
    assert {("locations", "RECEIVER"), ("cdrs", "RECEIVER"), ("credentials", "SENDER")} <= modules
    # but the receivers are not
    status, body, _ = await cpo_a.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/LOC1", location())
    assert (status, body["status_code"]) == (401, 2000)  # the spec's answer to token A here
    status, body, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials", creds_body(cpo_double))
    assert status == 200, body
    token_c = body["data"]["token"]
    assert body["data"]["url"] == f"{bridge.url}/ocpi/versions"
    assert body["data"]["roles"][0]["role"] == "EMSP"
    # the bridge fetched the CPO's versions and details with token B
    assert ("GET", "/ocpi/versions", cpo_double.token_b) in cpo_double.requests
    # token A is dead now, token C works for both parties
    status, _, _ = await cpo_a.call("GET", "/ocpi/versions")
    assert status == 401
    cpo_c = Ocpi(bridge.url, token_c, http)
    for pid in ("TPC", "ZEO"):
        status, body, _ = await cpo_c.call("PUT", f"/ocpi/2.2.1/locations/IN/{pid}/L",
                                           location("L", pid=pid))
        assert body["status_code"] == 1000, body
    # GET credentials returns ours with the caller's token
    status, body, _ = await cpo_c.call("GET", "/ocpi/2.2.1/credentials")
    assert body["data"]["token"] == token_c


async def test_post_again_when_registered_is_405(cpo: Ocpi, cpo_double: CpoDouble) -> None:
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/credentials", creds_body(cpo_double))
    assert (status, body["status_code"]) == (405, 2000)


async def test_put_rotates_token(cpo: Ocpi, cpo_double: CpoDouble,
                                 http: aiohttp.ClientSession) -> None:
    status, body, _ = await cpo.call("PUT", "/ocpi/2.2.1/credentials", creds_body(cpo_double))
    assert status == 200, body
    new = Ocpi(cpo.base, body["data"]["token"], http)
    assert (await cpo.call("GET", "/ocpi/versions"))[0] == 401
    assert (await new.call("GET", "/ocpi/versions"))[0] == 200


async def test_delete_unregisters(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("DELETE", "/ocpi/2.2.1/credentials")
    assert (status, body["status_code"]) == (200, 1000)
    assert (await cpo.call("GET", "/ocpi/versions"))[0] == 401


async def test_put_with_token_a_is_405(bridge: Bridge, cpo_double: CpoDouble, http) -> None:
    cpo_a = Ocpi(bridge.url, await bridge.invite("IN", "TPC", ("IN", "ZEO")), http)
    status, body, _ = await cpo_a.call("PUT", "/ocpi/2.2.1/credentials", creds_body(cpo_double))
    assert status == 405


@pytest.mark.parametrize("token", [None, "not-a-token", ""])
async def test_missing_or_unknown_token_is_401(bridge: Bridge, http, token) -> None:
    status, body, _ = await Ocpi(bridge.url, token, http).call("GET", "/ocpi/versions")
    assert (status, body["status_code"]) == (401, 2000)


async def test_raw_token_of_older_cpos_is_accepted(bridge: Bridge, cpo_double, http) -> None:
    cpo = await register_cpo(bridge, cpo_double, http)
    raw = Ocpi(bridge.url, cpo.token, http, raw_token=True)
    assert (await raw.call("GET", "/ocpi/versions"))[0] == 200


async def test_unreachable_cpo_versions_is_3001_and_token_a_still_works(
        bridge: Bridge, cpo_double: CpoDouble, http) -> None:
    token_a = await bridge.invite("IN", "TPC", ("IN", "ZEO"))
    cpo_a = Ocpi(bridge.url, token_a, http)
    body = creds_body(cpo_double) | {"url": f"http://127.0.0.1:{free_port()}/ocpi/versions"}
    status, resp, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials", body)
    assert (status, resp["status_code"]) == (200, 3001)
    assert (await cpo_a.call("GET", "/ocpi/versions"))[0] == 200


async def test_cpo_without_221_is_3002(bridge: Bridge, cpo_double: CpoDouble, http) -> None:
    cpo_double.offer_versions = ("2.1.1",)
    cpo_a = Ocpi(bridge.url, await bridge.invite("IN", "TPC", ("IN", "ZEO")), http)
    status, resp, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials", creds_body(cpo_double))
    assert (status, resp["status_code"]) == (200, 3002)


async def test_wrong_token_b_is_3001(bridge: Bridge, cpo_double: CpoDouble, http) -> None:
    cpo_a = Ocpi(bridge.url, await bridge.invite("IN", "TPC", ("IN", "ZEO")), http)
    body = creds_body(cpo_double) | {"token": "wrong"}
    status, resp, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials", body)
    assert (status, resp["status_code"]) == (200, 3001)


@pytest.mark.parametrize("roles, needle", [
    ([("EMSP", "IN", "TPC")], "CPO roles only"),
    ([("CPO", "IN", "STK")], "IN-STK not allowed: token A was issued for IN-TPC"),
])
async def test_bad_roles_are_2001(bridge: Bridge, cpo_double: CpoDouble, http, roles,
                                  needle) -> None:
    cpo_a = Ocpi(bridge.url, await bridge.invite("IN", "TPC", ("IN", "ZEO")), http)
    status, resp, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials",
                                       creds_body(cpo_double, roles))
    assert (status, resp["status_code"]) == (200, 2001)
    assert needle in resp["status_message"]


async def test_invalid_credentials_body_is_2001(bridge: Bridge, http) -> None:
    cpo_a = Ocpi(bridge.url, await bridge.invite("IN", "TPC", ("IN", "ZEO")), http)
    status, resp, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials", {"token": "x"})
    assert (status, resp["status_code"]) == (200, 2001)
    assert "url" in resp["status_message"] and "roles" in resp["status_message"]


def other_platform(double: CpoDouble) -> dict:
    """The same parties claimed from another platform (another versions URL)."""
    return creds_body(double) | {"url": f"http://127.0.0.1:{free_port()}/ocpi/versions"}


async def test_party_taken_by_another_platform_is_2001(bridge: Bridge, cpo_double, http) -> None:
    await register_cpo(bridge, cpo_double, http)
    cpo_a = Ocpi(bridge.url, await bridge.invite("IN", "TPC", ("IN", "ZEO")), http)
    status, resp, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials",
                                       other_platform(cpo_double))
    assert (status, resp["status_code"]) == (200, 2001)
    assert "already registered by another platform" in resp["status_message"]


async def test_tokens_never_appear_in_logs(bridge: Bridge, cpo_double, http) -> None:
    with capture_logs() as logs:
        cpo = await register_cpo(bridge, cpo_double, http)
        await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/L", location("L"))
        await Ocpi(bridge.url, "bogus-token-123", http).call("GET", "/ocpi/versions")
    text = repr(logs)
    assert logs, "expected some log lines"
    for secret in (cpo.token, cpo_double.token_b, "bogus-token-123"):
        assert secret not in text


async def test_bridge_registers_with_a_cpo(bridge: Bridge, cpo_double: CpoDouble, http) -> None:
    deps = OcpiDeps(settings=bridge.settings, store=OcpiStore(bridge.redis),
                    creds=CredentialsStore(bridge.redis))
    try:
        conn = await register_with(deps, f"{cpo_double.base_url}/ocpi/versions",
                                   cpo_double.token_a)
    finally:
        await deps.close()
    assert conn.parties == {("IN", "TPC"), ("IN", "ZEO")}
    assert conn.their_token == cpo_double.token_b
    assert conn.endpoint("locations", "SENDER", ).endswith("/ocpi/2.2.1/locations")
    # the CPO can now push to us with the token we gave it (token B in our terms)
    cpo = Ocpi(bridge.url, cpo_double.bridge_token, http)
    status, body, _ = await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/L", location("L"))
    assert body["status_code"] == 1000, body
    sent = cpo_double.received_credentials[0]
    assert sent["roles"][0]["role"] == "EMSP" and sent["url"] == f"{bridge.url}/ocpi/versions"


async def test_party_taken_leaves_token_a_usable(bridge: Bridge, cpo_double, http) -> None:
    await register_cpo(bridge, cpo_double, http)
    cpo_a = Ocpi(bridge.url, await bridge.invite("IN", "TPC", ("IN", "ZEO")), http)
    status, resp, _ = await cpo_a.call("POST", "/ocpi/2.2.1/credentials",
                                       other_platform(cpo_double))
    assert (status, resp["status_code"]) == (200, 2001)
    assert (await cpo_a.call("GET", "/ocpi/versions"))[0] == 200
