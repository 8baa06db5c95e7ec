"""What the interoperability suite asks of the bridge that no HTTP endpoint offers:
the operator's and the orders layer's side (seed driver tokens, send an OCPI command,
read a command's result). Runs in the bridge's own venv, against the same Redis as
the running `bridge serve`, like any `bridge` CLI command; prints one JSON document.

    python -m interop.bridge_ops tokens N            seed N driver tokens (APP_USER)
    python -m interop.bridge_ops command PARTY TYPE JSON   send a command, print uid + response
    python -m interop.bridge_ops result UID           the stored CommandResult, or null
    python -m interop.bridge_ops push-token PARTY UID  PUT a token into the CPO's receiver
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bridge.commands.core import _with_deps
from bridge.config import load_settings
from bridge.ocpi.commands import send_command
from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import AllowedType, CommandType, LocationReferences, Token
from bridge.ocpi.tokens import push_token


def driver_token(i: int, now: datetime) -> Token:
    return Token.model_validate({
        "country_code": "IN", "party_id": "BKN", "uid": f"INTEROP{i:04d}", "type": "APP_USER",
        "contract_id": f"IN-BKN-C{i:06d}", "issuer": "ocpi-beckn-bridge interop",
        "valid": True, "whitelist": "NEVER", "last_updated": now + timedelta(seconds=i)})


async def run(argv: list[str]) -> Any:
    settings = load_settings(os.environ)
    op = argv[0]

    async def work(deps: Any) -> Any:
        now = datetime.now(UTC).replace(microsecond=0)
        if op == "tokens":
            for i in range(int(argv[1])):
                ref = f"REF{i:04d}"
                await deps.tokens.put(driver_token(i, now), allowed=AllowedType.ALLOWED,
                                      location=LocationReferences(location_id="EXW-LOC-1")
                                      if i == 0 else None, authorization_reference=ref)
            return {"seeded": int(argv[1])}
        cc, _, pid = argv[1].partition("-") if len(argv) > 1 else ("", "", "")
        if op == "command":
            conn = await deps.creds.connection_for_party(cc, pid)
            body = orjson.loads(argv[3])
            if "token" in body and body["token"] == "DRIVER":
                body["token"] = driver_token(0, now).to_json_dict()
            try:
                uid, response = await send_command(deps, conn, (cc, pid), CommandType(argv[2]),
                                                   body)
            except OcpiClientError as exc:
                return {"error": str(exc)}
            return {"uid": uid, "response": response.to_json_dict()}
        if op == "result":
            sent = await deps.tokens.get_command(argv[1])
            return orjson.loads(sent["result"]) if sent and sent.get("result") else None
        if op == "push-token":
            conn = await deps.creds.connection_for_party(cc, pid)
            try:
                await push_token(deps, conn, driver_token(int(argv[2]), now), (cc, pid))
            except OcpiClientError as exc:
                return {"error": str(exc)}
            return {"pushed": True}
        raise SystemExit(f"unknown op {op!r}")

    return await _with_deps(settings, work)


def main() -> int:
    out = asyncio.run(run(sys.argv[1:]))
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
