"""What the OCPI route modules need, handed to them once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from bridge.config import Settings
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore
from bridge.store.tokens import TokenStore
from bridge.urlguard import UrlPolicy, guarded_session

VERSION_PATH = "/ocpi/2.2.1"


@dataclass
class OcpiDeps:
    settings: Settings
    store: OcpiStore
    creds: CredentialsStore
    _http: aiohttp.ClientSession | None = field(default=None, repr=False)

    @property
    def own_party(self) -> tuple[str, str]:
        return (self.settings.ocpi_country_code, self.settings.ocpi_party_id)

    @property
    def versions_url(self) -> str:
        return f"{self.settings.public_url}/ocpi/versions"

    @property
    def version_url(self) -> str:
        return f"{self.settings.public_url}{VERSION_PATH}"

    @property
    def tokens(self) -> TokenStore:
        return TokenStore(self.store.redis, self.settings.ocpi_events_maxlen)

    def module_url(self, module: str) -> str:
        return f"{self.version_url}/{module}"

    @property
    def url_policy(self) -> UrlPolicy:
        return UrlPolicy(allow_loopback=self.settings.ocpi_allow_loopback_urls,
                         allow_private=self.settings.ocpi_allow_private_urls)

    def http(self) -> aiohttp.ClientSession:
        """One shared client session for outbound OCPI calls (connection reuse). Every
        URL it calls passes the URL guard: peers choose these URLs (bridge.urlguard)."""
        if self._http is None or self._http.closed:
            self._http = guarded_session(self.url_policy)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
