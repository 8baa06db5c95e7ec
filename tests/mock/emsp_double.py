"""A minimal eMSP for the mock CPO's tests: it serves versions, details and
credentials, receivers for locations, tariffs, sessions and CDRs that record
everything they get, the tokens sender's real-time authorization, and a
command response_url endpoint. Run on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bridge.ocpi.transport import envelope, token_header


@dataclass
class Received:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class EmspDouble:
    base_url: str = ""
    token_a: str = field(default_factory=lambda: secrets.token_hex(8))
    token_c: str = field(default_factory=lambda: secrets.token_hex(8))  # the mock uses it
    token_b: str | None = None  # we call the mock with it
    mock_versions_url: str | None = None
    log: list[Received] = field(default_factory=list)
    locations: dict[str, Any] = field(default_factory=dict)
    evse_patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    tariffs: dict[str, Any] = field(default_factory=dict)
    sessions: dict[str, Any] = field(default_factory=dict)
    session_patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    cdrs: list[dict[str, Any]] = field(default_factory=list)
    command_results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    authorize: dict[str, str] = field(default_factory=dict)  # uid -> AllowedType
    authorize_ref: str | None = "AUTH-REF-RT"
    authorize_calls: list[str] = field(default_factory=list)
    fail_next: int = 0  # answer HTTP 503 to the next N receiver calls
    omit_modules: set[str] = field(default_factory=set)
    mock_seen_versions: bool = False

    # ---------------------------------------------------------------- helpers

    def versions_url(self) -> str:
        return f"{self.base_url}/emsp/versions"

    def response_url(self, ref: str) -> str:
        return f"{self.base_url}/emsp/2.2.1/commands/results/{ref}"

    def evse_statuses(self, evse_uid: str) -> list[str]:
        return [b["status"] for _, uid, b in self.evse_patches if uid == evse_uid and "status" in b]

    async def wait(self, predicate: Any, limit: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + limit
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("timed out waiting for the mock")
            await asyncio.sleep(0.02)

    def _token(self, request: web.Request) -> str | None:
        value = request.headers.get("Authorization", "")
        if not value.startswith("Token "):
            return None
        raw = value[6:]
        try:
            return base64.b64decode(raw, validate=True).decode()
        except ValueError:
            return raw

    @staticmethod
    def ok(data: Any = None, status: int = 200, code: int = 1000, msg: str = "Success"
           ) -> web.Response:
        return web.Response(body=orjson.dumps(envelope(data, code, msg)), status=status,
                            content_type="application/json")

    # ---------------------------------------------------------------- app

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._mw])
        r = app.router
        v = "/emsp/2.2.1"
        r.add_get("/emsp/versions", self.versions)
        r.add_get(v, self.details)
        r.add_post(f"{v}/credentials", self.credentials)
        r.add_put(f"{v}/locations/{{cc}}/{{pid}}/{{lid}}", self.put_location)
        r.add_patch(f"{v}/locations/{{cc}}/{{pid}}/{{lid}}/{{evse}}", self.patch_evse)
        r.add_put(f"{v}/tariffs/{{cc}}/{{pid}}/{{tid}}", self.put_tariff)
        r.add_put(f"{v}/sessions/{{cc}}/{{pid}}/{{sid}}", self.put_session)
        r.add_patch(f"{v}/sessions/{{cc}}/{{pid}}/{{sid}}", self.patch_session)
        r.add_post(f"{v}/cdrs", self.post_cdr)
        r.add_post(f"{v}/tokens/{{uid}}/authorize", self.authorize_token)
        r.add_post(f"{v}/commands/results/{{ref}}", self.command_result)
        return app

    @web.middleware
    async def _mw(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            raw = await request.read()
            body = orjson.loads(raw) if raw else None
        self.log.append(Received(request.method, request.path, body, dict(request.headers)))
        request["body"] = body
        token = self._token(request)
        registration = request.path in ("/emsp/versions", "/emsp/2.2.1",
                                        "/emsp/2.2.1/credentials")
        allowed = {self.token_c} | ({self.token_a} if registration else set())
        if token not in allowed:
            return self.ok(None, 401, 2000, "unknown token")
        if self.fail_next > 0 and not registration:
            self.fail_next -= 1
            return self.ok(None, 503, 3000, "try again later")
        return await handler(request)

    async def versions(self, request: web.Request) -> web.Response:
        return self.ok([{"version": "2.2.1", "url": f"{self.base_url}/emsp/2.2.1"}])

    async def details(self, request: web.Request) -> web.Response:
        mods = [("credentials", "RECEIVER"), ("locations", "RECEIVER"), ("tariffs", "RECEIVER"),
                ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"), ("tokens", "SENDER"),
                ("commands", "SENDER")]
        return self.ok({"version": "2.2.1", "endpoints": [
            {"identifier": m, "role": r, "url": f"{self.base_url}/emsp/2.2.1/{m}"}
            for m, r in mods if m not in self.omit_modules]})

    async def credentials(self, request: web.Request) -> web.Response:
        body = request["body"]
        self.token_b = body["token"]
        self.mock_versions_url = body["url"]
        # a real eMSP checks the CPO's versions with token B before answering
        async with aiohttp.ClientSession() as http, http.get(
                body["url"], headers={"Authorization": token_header(body["token"])}) as resp:
            self.mock_seen_versions = resp.status == 200
        return self.ok({"token": self.token_c, "url": self.versions_url(), "roles": [
            {"role": "EMSP", "country_code": "IN", "party_id": "EMS",
             "business_details": {"name": "Double eMSP"}}]})

    async def put_location(self, request: web.Request) -> web.Response:
        self.locations[request.match_info["lid"]] = request["body"]
        return self.ok()

    async def patch_evse(self, request: web.Request) -> web.Response:
        self.evse_patches.append((request.match_info["lid"], request.match_info["evse"],
                                  request["body"]))
        return self.ok()

    async def put_tariff(self, request: web.Request) -> web.Response:
        self.tariffs[request.match_info["tid"]] = request["body"]
        return self.ok()

    async def put_session(self, request: web.Request) -> web.Response:
        self.sessions[request.match_info["sid"]] = request["body"]
        return self.ok()

    async def patch_session(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        self.session_patches.append((sid, request["body"]))
        if sid not in self.sessions:
            return self.ok(None, 404, 2000, "unknown session")
        self.sessions[sid] = {**self.sessions[sid], **{
            k: v for k, v in request["body"].items() if k != "charging_periods"}}
        return self.ok()

    async def post_cdr(self, request: web.Request) -> web.Response:
        self.cdrs.append(request["body"])
        return self.ok()

    async def authorize_token(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        self.authorize_calls.append(uid)
        allowed = self.authorize.get(uid)
        if allowed is None:
            return self.ok(None, 404, 2004, "unknown token")
        info = {"allowed": allowed, "token": {
            "country_code": "IN", "party_id": "EMS", "uid": uid,
            "type": request.query.get("type", "RFID"), "contract_id": f"IN-EMS-{uid}",
            "issuer": "Double eMSP", "valid": True, "whitelist": "ALLOWED",
            "last_updated": "2024-01-01T00:00:00Z"}}
        if self.authorize_ref:
            info["authorization_reference"] = self.authorize_ref
        return self.ok(info)

    async def command_result(self, request: web.Request) -> web.Response:
        self.command_results.setdefault(request.match_info["ref"], []).append(request["body"])
        return self.ok()


def token(uid: str, *, valid: bool = True, whitelist: str = "ALLOWED") -> dict[str, Any]:
    return {"country_code": "IN", "party_id": "EMS", "uid": uid, "type": "APP_USER",
            "contract_id": f"IN-EMS-{uid}", "issuer": "Double eMSP", "valid": valid,
            "whitelist": whitelist, "last_updated": "2024-01-01T00:00:00Z"}
