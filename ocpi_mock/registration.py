"""The OCPI credentials handshake, both ways (spec "credentials" §7).

- `connect`: we register with an eMSP that gave us token A: GET its versions
  and 2.2.1 details with token A, POST our credentials (fresh token B, our
  versions URL, one CPO role per party) to its credentials endpoint, keep the
  token C it answers for every later call.
- `accept_registration`: an eMSP registers with us with a token A we handed
  out (`invite`): we GET its versions with the token C it sent, and answer
  with a fresh token B.
"""

from __future__ import annotations

from typing import Any

import structlog

from bridge.logs import fingerprint
from bridge.ocpi.client import OcpiClient, discover_endpoints
from bridge.ocpi.errors import OcpiClientError, UnableToUseClientApi, UnsupportedVersion
from bridge.ocpi.models import Credentials
from ocpi_mock.runtime import Mock
from ocpi_mock.state import Peer, new_token

log = structlog.get_logger("ocpi_mock.registration")

# What the mock needs from an eMSP: somewhere to push locations, sessions, CDRs.
REQUIRED = (("locations", "RECEIVER"), ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"))


class ConnectError(Exception):
    """The handshake with the eMSP failed; the message says why, for humans."""


def index_endpoints(endpoints: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    out = {}
    for ep in endpoints:
        if isinstance(ep, dict) and ep.get("identifier") and ep.get("url"):
            out[(str(ep["identifier"]), str(ep.get("role", "")).upper())] = str(ep["url"])
    return out


def missing_modules(endpoints: dict[tuple[str, str], str]) -> list[str]:
    return [f"{m} {r}" for m, r in REQUIRED if (m, r) not in endpoints]


async def connect(mock: Mock, versions_url: str, token_a: str) -> dict[str, Any]:
    assert mock.http is not None
    client = OcpiClient(mock.http, token_a, timeout=mock.cfg.push_timeout)
    log.info("connect.start", versions_url=versions_url, token_fp=fingerprint(token_a))
    try:
        _, raw_endpoints = await discover_endpoints(client, versions_url)
    except OcpiClientError as exc:
        if exc.http_status == 401:
            raise ConnectError(f"the eMSP refused token A at {versions_url} (HTTP 401): "
                               "wrong or already used token") from exc
        if exc.http_status is None and exc.ocpi_status is None and "offers no" not in str(exc):
            raise ConnectError(f"cannot reach the eMSP at {versions_url}: {exc}") from exc
        raise ConnectError(f"the eMSP's versions could not be used: {exc}") from exc
    endpoints = index_endpoints(raw_endpoints)
    cred_url = next((u for (m, _), u in endpoints.items() if m == "credentials"), None)
    if cred_url is None:
        raise ConnectError("the eMSP offers no credentials module in OCPI 2.2.1")
    missing = missing_modules(endpoints)
    if missing:
        raise ConnectError(f"the eMSP lacks modules the mock CPO needs: {', '.join(missing)}")

    token_b = new_token()
    mock.state.pending_in.add(token_b)  # the eMSP may call our versions during the POST
    body = Credentials(token=token_b, url=mock.versions_url, roles=mock.state.roles())
    try:
        answer = await client.post(cred_url, body.to_json_dict())
        theirs = Credentials.model_validate(answer)
    except OcpiClientError as exc:
        raise ConnectError(f"the eMSP rejected our credentials: {exc}") from exc
    except ValueError as exc:
        raise ConnectError(f"the eMSP answered credentials we cannot read: {exc}") from exc
    finally:
        mock.state.pending_in.discard(token_b)
    # token C's versions URL may differ from the one we were given: re-read it
    endpoints_c = endpoints
    try:
        client_c = OcpiClient(mock.http, theirs.token, timeout=mock.cfg.push_timeout)
        _, raw = await discover_endpoints(client_c, theirs.url)
        endpoints_c = index_endpoints(raw) or endpoints
    except OcpiClientError as exc:
        log.warning("connect.rediscover_failed", error=str(exc))
    mock.state.peer = Peer(versions_url=theirs.url, token_out=theirs.token, token_in=token_b,
                           endpoints=endpoints_c, roles=theirs.roles)
    log.info("connect.registered", emsp=[f"{r.country_code}-{r.party_id}" for r in theirs.roles],
             token_c_fp=fingerprint(theirs.token), token_b_fp=fingerprint(token_b))
    return {"registered": True,
            "emsp_roles": [f"{r.country_code}-{r.party_id} {r.role}" for r in theirs.roles],
            "parties": [f"{cc}-{pid}" for cc, pid in mock.state.own_parties()],
            "modules": sorted(f"{m} {r}" for m, r in endpoints_c)}


async def accept_registration(mock: Mock, token_a: str, theirs: Credentials) -> Credentials:
    """An eMSP POSTs (or PUTs) its credentials to us."""
    assert mock.http is not None
    client = OcpiClient(mock.http, theirs.token, timeout=mock.cfg.push_timeout)
    try:
        _, raw = await discover_endpoints(client, theirs.url)
    except OcpiClientError as exc:
        if "offers no" in str(exc):
            raise UnsupportedVersion(f"no mutual OCPI version: {exc}") from exc
        raise UnableToUseClientApi(f"cannot read the eMSP's versions: {exc}") from exc
    token_b = new_token()
    mock.state.invites.discard(token_a)
    mock.state.peer = Peer(versions_url=theirs.url, token_out=theirs.token, token_in=token_b,
                           endpoints=index_endpoints(raw), roles=theirs.roles)
    log.info("registration.accepted", emsp=[f"{r.country_code}-{r.party_id}" for r in theirs.roles],
             token_b_fp=fingerprint(token_b))
    if mock.cfg.push_on_register and not missing_modules(mock.state.peer.endpoints):
        mock.spawn(_push_later(mock), "push-network")
    return Credentials(token=token_b, url=mock.versions_url, roles=mock.state.roles())


async def _push_later(mock: Mock) -> None:
    import asyncio

    await asyncio.sleep(0.1)  # after our credentials answer has reached the eMSP
    await mock.push_network()
