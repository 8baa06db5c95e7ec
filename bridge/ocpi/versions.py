"""Versions module (OCPI 2.2.1 part "version_information_endpoint", §6).

`GET /ocpi/versions` lists the versions we speak; `GET /ocpi/2.2.1` lists the
modules we implement with our role in each. Both need a valid token A or C.
"""

from __future__ import annotations

from aiohttp import web

from bridge.ocpi import VERSION
from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.transport import ocpi_response

# (module identifier, our interface role); the URL is {version_url}/{module}.
# Credentials is served once and used in both directions.
MODULES: list[tuple[str, str]] = [
    ("credentials", "SENDER"),
    ("credentials", "RECEIVER"),
    ("locations", "RECEIVER"),
    ("tariffs", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
    ("commands", "SENDER"),
]


def version_details(deps: OcpiDeps) -> dict[str, object]:
    return {
        "version": VERSION,
        "endpoints": [
            {"identifier": module, "role": role, "url": deps.module_url(module)}
            for module, role in MODULES
        ],
    }


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    async def versions(_request: web.Request) -> web.Response:
        return ocpi_response([{"version": VERSION, "url": deps.version_url}])

    async def details(_request: web.Request) -> web.Response:
        return ocpi_response(version_details(deps))

    return [web.get("/ocpi/versions", versions), web.get(VERSION_PATH, details)]
