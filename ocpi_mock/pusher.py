"""Everything the mock sends to the eMSP goes through here: `OcpiClient` for
the call, bounded retries with exponential backoff around it, the slow-link
fault, and structured logs (never a token, only its fingerprint)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import structlog

from bridge.logs import fingerprint
from bridge.ocpi.client import OcpiClient
from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import CDR, CommandResult, Location, Session, Tariff
from ocpi_mock.config import MockConfig
from ocpi_mock.faults import Faults
from ocpi_mock.state import State

log = structlog.get_logger("ocpi_mock.pusher")


class NotRegistered(Exception):
    """No eMSP is registered, or it lacks the module needed."""


class Pusher:
    def __init__(self, http: aiohttp.ClientSession, cfg: MockConfig, state: State,
                 faults: Faults) -> None:
        self.http = http
        self.cfg = cfg
        self.state = state
        self.faults = faults
        self.sent: int = 0
        self.failed: int = 0

    def _client(self, party: tuple[str, str] | None) -> OcpiClient:
        peer = self.state.peer
        if peer is None:
            raise NotRegistered("no eMSP is registered")
        return OcpiClient(self.http, peer.token_out, timeout=self.cfg.push_timeout,
                          from_party=party, to_party=peer.party)

    def url(self, module: str, role: str = "RECEIVER") -> str:
        peer = self.state.peer
        if peer is None:
            raise NotRegistered("no eMSP is registered")
        url = peer.url(module, role)
        if url is None:
            raise NotRegistered(f"the eMSP has no {module} {role} endpoint")
        return url.rstrip("/")

    async def call(self, method: str, url: str, body: Any, party: tuple[str, str] | None,
                   *, attempts: int | None = None) -> Any:
        """One OCPI call, retried with backoff when the eMSP errs or does not answer."""
        attempts = attempts or self.cfg.push_attempts
        client = self._client(party)
        delay = self.cfg.push_backoff
        for attempt in range(1, attempts + 1):
            if self.faults.emsp_delay:
                await asyncio.sleep(self.faults.emsp_delay)  # fault: slow eMSP link
            try:
                reply = await client.request(method, url, json=body)
                self.sent += 1
                log.debug("push.ok", method=method, url=url, attempt=attempt)
                return reply.data
            except OcpiClientError as exc:
                # 4xx with an OCPI client error (2xxx) will not get better by retrying
                final = exc.ocpi_status is not None and 2000 <= exc.ocpi_status < 3000 \
                    and exc.http_status is not None and exc.http_status < 500
                log.warning("push.failed", method=method, url=url, attempt=attempt,
                            attempts=attempts, error=str(exc),
                            token_fp=fingerprint(self.state.peer.token_out) if self.state.peer
                            else None)
                if final or attempt == attempts:
                    self.failed += 1
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # ---- the receivers of the eMSP

    async def put_location(self, loc: Location) -> None:
        url = f"{self.url('locations')}/{loc.country_code}/{loc.party_id}/{loc.id}"
        await self.call("PUT", url, loc.to_json_dict(), (loc.country_code, loc.party_id))

    async def patch_evse(self, loc: Location, evse_uid: str, body: dict[str, Any]) -> None:
        url = f"{self.url('locations')}/{loc.country_code}/{loc.party_id}/{loc.id}/{evse_uid}"
        await self.call("PATCH", url, body, (loc.country_code, loc.party_id))

    async def put_tariff(self, tariff: Tariff) -> None:
        url = f"{self.url('tariffs')}/{tariff.country_code}/{tariff.party_id}/{tariff.id}"
        await self.call("PUT", url, tariff.to_json_dict(), (tariff.country_code, tariff.party_id))

    async def put_session(self, session: Session) -> None:
        url = f"{self.url('sessions')}/{session.country_code}/{session.party_id}/{session.id}"
        await self.call("PUT", url, session.to_json_dict(),
                        (session.country_code, session.party_id))

    async def patch_session(self, cc: str, pid: str, session_id: str,
                            body: dict[str, Any]) -> None:
        url = f"{self.url('sessions')}/{cc}/{pid}/{session_id}"
        await self.call("PATCH", url, body, (cc, pid))

    async def post_cdr(self, cdr: CDR) -> None:
        await self.call("POST", self.url("cdrs"), cdr.to_json_dict(),
                        (cdr.country_code, cdr.party_id))

    async def post_command_result(self, response_url: str, result: CommandResult,
                                  party: tuple[str, str] | None) -> None:
        await self.call("POST", response_url, result.to_json_dict(), party)

    async def authorize(self, uid: str, token_type: str, location: dict[str, Any] | None,
                        party: tuple[str, str] | None) -> Any:
        """Real-time authorization at the eMSP's tokens sender (one attempt:
        the driver is waiting at the charger)."""
        url = f"{self.url('tokens', 'SENDER')}/{uid}/authorize?type={token_type}"
        return await self.call("POST", url, location, party, attempts=1)
