"""An OCPI 2.2.1 CPO built on `extrawest-ocpi` (PyPI; import name `py_ocpi`), a library
no one here wrote. The library supplies the FastAPI routes, the pydantic v1 models,
the credentials handshake, the command flow (CommandResponse, then the CommandResult
POSTed to `response_url` from a background task) and the push client; this module
supplies what the library leaves to its users: storage (`MemoryCrud`), the token
lists (`MemoryAuthenticator`) and one workaround for a bug of the library
(`unwrap_command_response`). Runs in its own venv (var/interop-venv), never in the
bridge's.

The library reads its settings from the environment when it is imported, so
`interop/run.py` sets OCPI_HOST, PROTOCOL, COUNTRY_CODE, PARTY_ID... first.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from py_ocpi import get_application
from py_ocpi.core.adapter import BaseAdapter
from py_ocpi.core.authentication.authenticator import Authenticator
from py_ocpi.core.crud import Crud
from py_ocpi.core.enums import Action, ModuleID, RoleEnum
from py_ocpi.modules.versions.enums import VersionNumber

PARTY = ("IN", "EXW")


@dataclass
class Client:
    """A platform registered with this CPO (the bridge): its credentials and endpoints."""

    token_in: str  # the token it presents to us
    credentials: dict[str, Any]  # its credentials (its token: what we present to it)
    endpoints: Any = None


@dataclass
class CpoState:
    base_url: str = ""
    tokens_a: set[str] = field(default_factory=set)
    pending_c: set[str] = field(default_factory=set)  # tokens we hand the bridge when we register
    clients: dict[str, Client] = field(default_factory=dict)
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    tariffs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def our_credentials(self, token: str) -> dict[str, Any]:
        return {"token": token, "url": f"{self.base_url}/ocpi/versions",
                "roles": [{"role": "CPO", "country_code": PARTY[0], "party_id": PARTY[1],
                           "business_details": {"name": "Extrawest-OCPI interop CPO"}}]}


STATE = CpoState()


class MemoryAuthenticator(Authenticator):
    @classmethod
    async def get_valid_token_c(cls) -> list[str]:
        return [*STATE.clients, *STATE.pending_c]

    @classmethod
    async def get_valid_token_a(cls) -> list[str]:
        return list(STATE.tokens_a)


class MemoryCrud(Crud):
    """The storage the library asks its users to write, in memory."""

    @classmethod
    async def get(cls, module: ModuleID, role: RoleEnum, id: Any, *args: Any,
                  **kwargs: Any) -> Any:
        if module == ModuleID.credentials_and_registration:
            client = STATE.clients.get(str(id))
            return STATE.our_credentials(client.token_in) if client else None
        if module == ModuleID.locations:  # ids are CiStrings: the library lower-cases them
            return next((v for k, v in STATE.locations.items() if k.lower() == str(id).lower()),
                        None)
        if module == ModuleID.tariffs:
            return next((v for k, v in STATE.tariffs.items() if k.lower() == str(id).lower()),
                        None)
        if module == ModuleID.tokens:
            return STATE.tokens.get(str(id))
        if module == ModuleID.commands:
            # the charge point's answer to the command: accepted at once
            return {"result": "ACCEPTED"}
        return None

    @classmethod
    async def list(cls, module: ModuleID, role: RoleEnum, filters: dict[str, Any], *args: Any,
                   **kwargs: Any) -> tuple[list[Any], int, bool]:
        items = {ModuleID.locations: STATE.locations, ModuleID.tariffs: STATE.tariffs}.get(
            module, {})
        values = list(items.values())
        offset, limit = filters.get("offset", 0), filters.get("limit", 100)
        page = values[offset:offset + limit]
        return page, len(values), offset + limit >= len(values)

    @classmethod
    async def create(cls, module: ModuleID, role: RoleEnum, data: dict[str, Any], *args: Any,
                     **kwargs: Any) -> Any:
        if module == ModuleID.credentials_and_registration:
            STATE.tokens_a.discard(kwargs.get("auth_token") or "")
            token = secrets.token_urlsafe(24)
            STATE.clients[token] = Client(token, json.loads(json.dumps(data["credentials"])),
                                          data.get("endpoints"))
            return STATE.our_credentials(token)
        if module == ModuleID.tokens:
            STATE.tokens[str(data.get("uid"))] = data
            return data
        return data

    @classmethod
    async def update(cls, module: ModuleID, role: RoleEnum, data: dict[str, Any], id: Any,
                     *args: Any, **kwargs: Any) -> Any:
        if module == ModuleID.credentials_and_registration:
            old = kwargs.get("auth_token") or ""
            STATE.clients.pop(old, None)
            token = secrets.token_urlsafe(24)
            STATE.clients[token] = Client(token, json.loads(json.dumps(data["credentials"])),
                                          data.get("endpoints"))
            return STATE.our_credentials(token)
        if module == ModuleID.tokens:
            STATE.tokens[str(id)] = data
        return data

    @classmethod
    async def delete(cls, module: ModuleID, role: RoleEnum, id: Any, *args: Any,
                     **kwargs: Any) -> None:
        if module == ModuleID.credentials_and_registration:
            STATE.clients.pop(str(id), None)

    @classmethod
    async def do(cls, module: ModuleID, role: RoleEnum | None, action: Action, *args: Any,
                 data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if action == Action.get_client_token:
            client = STATE.clients.get(kwargs.get("auth_token") or "")
            return client.credentials["token"] if client else None
        if action == Action.send_command:
            body = args[0] if args else data
            STATE.commands.append((str(kwargs.get("command")), dict(body or {})))
            return {"result": "ACCEPTED", "timeout": 30}
        return None


def unwrap_command_response(app: Any) -> Any:
    """Workaround, library bug: its commands receiver answers `data: [CommandResponse]`
    (a list) where OCPI 2.2.1 §13.2.2 says `data` is one CommandResponse. The bridge
    rightly refuses the list (OcpiClientError: not a valid CommandResponse), so the
    suite unwraps it here, on the library's side of the wire."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or "/commands/" not in scope[
                "path"]:
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            try:
                doc = json.loads(body)
                if isinstance(doc.get("data"), list) and len(doc["data"]) == 1:
                    doc["data"] = doc["data"][0]
                    body = json.dumps(doc).encode()
            except (ValueError, AttributeError):
                pass
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return asgi


def advertise_commands() -> None:
    """Workaround, library bug: the CPO commands receiver is routed but missing from the
    version details the library publishes (its CPO endpoint list has no `commands`), so
    no eMSP could find it. Add it to that list before the app is built."""
    from py_ocpi.core.endpoints.v_2_2_1 import cpo as endpoints
    from py_ocpi.core.endpoints.v_2_2_1.utils import cpo_generator
    from py_ocpi.modules.versions.v_2_2_1.schemas import InterfaceRole

    endpoints.ENDPOINTS_LIST.setdefault(ModuleID.commands, cpo_generator.generate_endpoint(
        ModuleID.commands, InterfaceRole.receiver))


def create_app(base_url: str) -> Any:
    STATE.base_url = base_url
    advertise_commands()
    app = get_application(
        version_numbers=[VersionNumber.v_2_2_1],
        roles=[RoleEnum.cpo],
        crud=MemoryCrud,
        modules=[ModuleID.credentials_and_registration, ModuleID.locations, ModuleID.tariffs,
                 ModuleID.tokens, ModuleID.commands],
        authenticator=MemoryAuthenticator,
        adapter=BaseAdapter,
    )
    return unwrap_command_response(app)
