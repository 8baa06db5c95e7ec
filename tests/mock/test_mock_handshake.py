"""Credentials handshake both ways, the network pushed in full, sender GETs."""

from __future__ import annotations

import aiohttp
import pytest

from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import Location, Tariff
from ocpi_mock.registration import ConnectError, connect
from tests.conftest import free_port
from tests.mock.conftest import MockServer
from tests.mock.emsp_double import EmspDouble


async def test_connect_registers_and_pushes_whole_network(connected: MockServer,
                                                          emsp: EmspDouble) -> None:
    mock = connected.mock
    peer = mock.state.peer
    assert peer is not None and peer.token_out == emsp.token_c
    assert emsp.token_b == peer.token_in and emsp.mock_seen_versions
    assert emsp.mock_versions_url == f"{connected.url}/ocpi/versions"
    creds = next(r for r in emsp.log if r.path.endswith("/credentials"))
    roles = {(r["country_code"], r["party_id"], r["role"]) for r in creds.body["roles"]}
    assert roles == {("IN", "TPC", "CPO"), ("IN", "ZEO", "CPO"), ("IN", "STK", "CPO")}
    # the whole network arrived and is valid OCPI
    assert set(emsp.locations) == set(mock.state.locations) and len(emsp.locations) >= 12
    assert set(emsp.tariffs) == {t.id for t in mock.state.tariffs.values()}
    for loc in emsp.locations.values():
        parsed = Location.model_validate(loc)
        assert parsed.time_zone == "Asia/Kolkata" and parsed.evses
    for tariff in emsp.tariffs.values():
        assert Tariff.model_validate(tariff).currency == "INR"
    cities = {loc["city"] for loc in emsp.locations.values()}
    assert {"Bengaluru", "Pune", "New Delhi"} <= cities
    # every push after registration used token C and routing headers
    put = next(r for r in emsp.log if r.method == "PUT" and "/locations/" in r.path)
    assert put.headers["OCPI-from-party-id"] in {"TPC", "ZEO", "STK"}
    assert put.headers["OCPI-to-party-id"] == "EMS"


async def test_connect_bad_token(cpo: MockServer, emsp: EmspDouble) -> None:
    status, data = await cpo.admin("POST", "/admin/connect",
                                   {"versions_url": emsp.versions_url(), "token": "wrong"})
    assert status == 502 and "refused token A" in data["error"]
    assert cpo.mock.state.peer is None


async def test_connect_unreachable(cpo: MockServer) -> None:
    url = f"http://127.0.0.1:{free_port()}/ocpi/versions"
    status, data = await cpo.admin("POST", "/admin/connect", {"versions_url": url, "token": "x"})
    assert status == 502 and "cannot reach" in data["error"]


async def test_connect_missing_modules(cpo: MockServer, emsp: EmspDouble) -> None:
    emsp.omit_modules = {"cdrs"}
    with pytest.raises(ConnectError, match=r"lacks modules.*cdrs RECEIVER"):
        await connect(cpo.mock, emsp.versions_url(), emsp.token_a)


async def test_emsp_registers_with_invite(cpo: MockServer, emsp: EmspDouble) -> None:
    status, data = await cpo.admin("POST", "/admin/invite")
    assert status == 200
    token_a = data["token"]
    client = cpo.ocpi(token_a)
    versions = await client.get(f"{cpo.url}/ocpi/versions")
    details = await client.get(versions[0]["url"])
    cred_url = next(e["url"] for e in details["endpoints"] if e["identifier"] == "credentials")
    # token A may not read data
    with pytest.raises(OcpiClientError):
        await client.get(f"{cpo.url}/ocpi/2.2.1/locations")
    ours = await client.post(cred_url, {"token": emsp.token_c, "url": emsp.versions_url(),
                                        "roles": [{"role": "EMSP", "country_code": "IN",
                                                   "party_id": "EMS",
                                                   "business_details": {"name": "Double"}}]})
    assert ours["token"] != token_a and len(ours["roles"]) == 3
    # token A is spent, token B works
    with pytest.raises(OcpiClientError):
        await client.get(f"{cpo.url}/ocpi/2.2.1/credentials")
    client_b = cpo.ocpi(ours["token"])
    assert (await client_b.get(f"{cpo.url}/ocpi/2.2.1/credentials"))["token"] == ours["token"]
    # the mock read our versions with token C and pushes its network
    assert cpo.mock.state.peer is not None
    await emsp.wait(lambda: len(emsp.locations) == len(cpo.mock.state.locations))


async def test_sender_pagination(connected: MockServer, emsp: EmspDouble) -> None:
    client = connected.ocpi(emsp.token_b or "")
    url = f"{connected.url}/ocpi/2.2.1/locations"
    reply = await client.request("GET", url, params={"limit": "5"})
    assert len(reply.data) == 5
    assert reply.headers["X-Total-Count"] == str(len(connected.mock.state.locations))
    assert reply.headers["X-Limit"] == "5" and 'rel="next"' in reply.headers["Link"]
    everything = [loc async for loc in client.get_all(url, params={"limit": "4"})]
    assert [loc["id"] for loc in everything] == list(connected.mock.state.locations)
    one = await client.get(f"{url}/TPC-HWY-MDR/TPC-MDR-1/1")
    assert one["standard"] == "IEC_62196_T2_COMBO"
    tariffs = await client.get(f"{connected.url}/ocpi/2.2.1/tariffs")
    assert len(tariffs) == 6
    future = await client.get(url, params={"date_from": "2999-01-01T00:00:00Z"})
    assert future == []
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 401
