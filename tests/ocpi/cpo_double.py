"""A minimal CPO platform for tests: versions, credentials and sender lists.

It is what "a CPO that no one here wrote" looks like from the bridge: it speaks
OCPI 2.2.1 over real HTTP on 127.0.0.1 and checks the tokens it is sent.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def env(data: Any = None, code: int = 1000, msg: str = "Success") -> dict[str, Any]:
    out: dict[str, Any] = {"status_code": code, "status_message": msg,
                           "timestamp": "2026-11-25T10:00:00Z"}
    if data is not None:
        out["data"] = data
    return out


@dataclass
class CpoDouble:
    base_url: str = ""
    token_a: str = field(default_factory=lambda: secrets.token_hex(8))
    token_b: str = field(default_factory=lambda: secrets.token_hex(8))  # what the bridge uses
    parties: list[tuple[str, str]] = field(default_factory=lambda: [("IN", "TPC"), ("IN", "ZEO")])
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    received_credentials: list[dict[str, Any]] = field(default_factory=list)
    bridge_token: str | None = None  # token the bridge gave us (for calling the bridge)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    offer_versions: tuple[str, ...] = ("2.2.1",)
    # Like many CPOs, read the eMSP's versions with the token it sent, during its POST.
    verify_during_post: bool = False
    verified: list[int] = field(default_factory=list)  # HTTP statuses of those reads
    deleted: int = 0  # DELETE credentials received (unregistrations)
    endpoint_tail: str = ""  # "/": endpoint URLs end in a slash

    def _auth(self, request: web.Request) -> str | None:
        h = request.headers.get("Authorization", "")
        if not h.startswith("Token "):
            return None
        try:
            return base64.b64decode(h[6:], validate=True).decode()
        except Exception:
            return h[6:]

    def app(self) -> web.Application:
        app = web.Application()

        async def versions(request: web.Request) -> web.Response:
            self.requests.append(("GET", request.path, str(self._auth(request))))
            if self._auth(request) not in (self.token_a, self.token_b):
                return web.json_response(env(None, 2000, "unauthorized"), status=401)
            return web.json_response(env([{"version": v, "url": f"{self.base_url}/ocpi/{v}"}
                                          for v in self.offer_versions]))

        async def details(request: web.Request) -> web.Response:
            if self._auth(request) not in (self.token_a, self.token_b):
                return web.json_response(env(None, 2000, "unauthorized"), status=401)
            eps = [{"identifier": "credentials", "role": "SENDER",
                    "url": f"{self.base_url}/ocpi/2.2.1/credentials{self.endpoint_tail}"}]
            for module in ("locations", "tariffs", "sessions", "cdrs"):
                eps.append({"identifier": module, "role": "SENDER",
                            "url": f"{self.base_url}/ocpi/2.2.1/{module}{self.endpoint_tail}"})
            return web.json_response(env({"version": "2.2.1", "endpoints": eps}))

        async def credentials(request: web.Request) -> web.Response:
            if self._auth(request) != self.token_a:
                return web.json_response(env(None, 2000, "unauthorized"), status=401)
            body = await request.json()
            self.received_credentials.append(body)
            self.bridge_token = body["token"]
            if self.verify_during_post:
                import aiohttp

                header = "Token " + base64.b64encode(body["token"].encode()).decode()
                async with aiohttp.ClientSession() as http, http.get(
                        body["url"], headers={"Authorization": header}) as resp:
                    self.verified.append(resp.status)
            return web.json_response(env({
                "token": self.token_b, "url": f"{self.base_url}/ocpi/versions",
                "roles": [{"role": "CPO", "country_code": cc, "party_id": pid,
                           "business_details": {"name": f"CPO {pid}"}} for cc, pid in self.parties],
            }))

        async def sender(request: web.Request) -> web.Response:
            module = request.match_info["module"]
            self.requests.append(("GET", request.path_qs, str(self._auth(request))))
            if self._auth(request) != self.token_b:
                return web.json_response(env(None, 2000, "unauthorized"), status=401)
            items = self.lists.get(module, [])
            date_from = request.query.get("date_from")
            if date_from:
                items = [i for i in items if i["last_updated"] >= date_from]
            offset = int(request.query.get("offset", 0))
            limit = min(int(request.query.get("limit", 2)), 2)  # tiny pages: exercise Link
            page = items[offset:offset + limit]
            headers = {"X-Total-Count": str(len(items)), "X-Limit": str(limit)}
            if offset + limit < len(items):
                nxt = f"{self.base_url}/ocpi/2.2.1/{module}?offset={offset + limit}&limit={limit}"
                if date_from:
                    nxt += f"&date_from={date_from}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            return web.json_response(env(page), headers=headers)

        async def credentials_put(request: web.Request) -> web.Response:
            if self._auth(request) != self.token_b:
                return web.json_response(env(None, 2000, "unauthorized"), status=401)
            body = await request.json()
            self.received_credentials.append(body)
            self.bridge_token = body["token"]
            self.token_b = secrets.token_hex(8)  # rotated: the bridge must use the new one
            return web.json_response(env({
                "token": self.token_b, "url": f"{self.base_url}/ocpi/versions",
                "roles": [{"role": "CPO", "country_code": cc, "party_id": pid,
                           "business_details": {"name": f"CPO {pid}"}} for cc, pid in self.parties],
            }))

        async def credentials_delete(request: web.Request) -> web.Response:
            if self._auth(request) != self.token_b:
                return web.json_response(env(None, 2000, "unauthorized"), status=401)
            self.deleted += 1
            return web.json_response(env())

        app.router.add_get("/ocpi/versions", versions)
        app.router.add_get("/ocpi/2.2.1", details)
        for path in ("/ocpi/2.2.1/credentials", "/ocpi/2.2.1/credentials/"):
            app.router.add_post(path, credentials)
            app.router.add_put(path, credentials_put)
            app.router.add_delete(path, credentials_delete)
        app.router.add_get("/ocpi/2.2.1/{module}", sender)
        return app
