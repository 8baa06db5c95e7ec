"""`ocpi-mock`: run the mock CPO and drive it.

    ocpi-mock serve [--network FILE] [--speed N] [--generate N] [--seed S] [--epoch T]
                    [--trailing-slash]
    ocpi-mock connect EMSP_VERSIONS_URL TOKEN_A [--mock-url URL]
    ocpi-mock invite [--mock-url URL]          (prints token A as the last word)
    ocpi-mock fault KIND [key=value ...] [--mock-url URL]
    ocpi-mock start EVSE TOKEN_UID [--type RFID] [--mock-url URL]
    ocpi-mock state [--mock-url URL]

This is the only module that reads the environment: MOCK_CPO_HOST,
MOCK_CPO_PORT, MOCK_CPO_PUBLIC_URL. `connect`, `invite` and `fault` talk to
the running server through its admin API.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ocpi_mock.config import DEFAULT_NETWORK, MockConfig, resolve_network
from ocpi_mock.faults import KINDS


def _default_mock_url() -> str:
    if os.environ.get("MOCK_CPO_PUBLIC_URL"):
        return os.environ["MOCK_CPO_PUBLIC_URL"].rstrip("/")
    port = os.environ.get("MOCK_CPO_PORT", "9090")
    return f"http://127.0.0.1:{port}"


def build_config(args: argparse.Namespace) -> MockConfig:
    host = os.environ.get("MOCK_CPO_HOST", "127.0.0.1")
    port = int(os.environ.get("MOCK_CPO_PORT", "9090"))
    public = os.environ.get("MOCK_CPO_PUBLIC_URL") or f"http://{host}:{port}"
    return MockConfig(host=host, port=port, public_url=public.rstrip("/"),
                      network=resolve_network(Path(args.network)), speed=args.speed, generate=args.generate,
                      seed=args.seed, tick_seconds=args.tick,
                      trailing_slash=args.trailing_slash, epoch=_epoch(args.epoch))


def _epoch(value: str | None) -> datetime | None:
    if not value:
        return None
    from bridge.ocpi.models import parse_datetime

    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise SystemExit(f"ocpi-mock: --epoch: {exc}") from exc


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bridge.logs import configure_logging
    from ocpi_mock.app import create_app
    from ocpi_mock.network import NetworkError

    configure_logging(os.environ.get("MOCK_CPO_LOG_LEVEL", "info"))
    cfg = build_config(args)
    try:
        app = create_app(cfg)
    except NetworkError as exc:
        print(f"ocpi-mock: {exc}", file=sys.stderr)
        return 2
    print(f"ocpi-mock: CPO platform on {cfg.base_url}/ocpi/versions (speed x{cfg.speed})",
          file=sys.stderr)
    web.run_app(app, host=cfg.host, port=cfg.port, print=None)
    return 0


ADMIN_TIMEOUT = 300.0  # pushing 20,000 locations takes a while


async def _admin(mock_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.request(method, f"{mock_url.rstrip('/')}{path}",
                                    data=orjson.dumps(body) if body is not None else None,
                                    headers={"Content-Type": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT)) as resp:
                raw = await resp.read()
                try:
                    return resp.status, orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    return resp.status, {"error": raw.decode(errors="replace")}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SystemExit(f"ocpi-mock: the mock is not reachable at {mock_url} "
                             f"({type(exc).__name__}: {exc}); start it with `ocpi-mock serve`"
                             ) from exc


def cmd_connect(args: argparse.Namespace) -> int:
    print(f"connecting the mock CPO at {args.mock_url} to the eMSP at {args.versions_url} ...")
    status, data = asyncio.run(_admin(args.mock_url, "POST", "/admin/connect",
                                      {"versions_url": args.versions_url, "token": args.token}))
    if status != 200:
        print(f"ocpi-mock connect failed: {(data or {}).get('error', status)}", file=sys.stderr)
        return 1
    print(f"registered with eMSP {', '.join(data.get('emsp_roles', []))} "
          f"as {', '.join(data.get('parties', []))}")
    pushed = data.get("pushed", {})
    print(f"pushed {pushed.get('tariffs', 0)} tariffs and {pushed.get('locations', 0)} locations")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    status, data = asyncio.run(_admin(args.mock_url, "POST", "/admin/invite"))
    if status != 200:
        print(f"ocpi-mock invite failed: {data}", file=sys.stderr)
        return 1
    print(f"register your eMSP with versions URL {data['versions_url']} and token A:")
    print(data["token"])
    return 0


def _parse_value(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def cmd_fault(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"ocpi-mock fault: parameters are key=value, got {item!r}", file=sys.stderr)
            return 2
        body[key.replace("-", "_")] = _parse_value(value)
    if args.kind == "clear":
        status, data = asyncio.run(_admin(args.mock_url, "DELETE", "/admin/faults"))
    else:
        status, data = asyncio.run(_admin(args.mock_url, "POST", f"/admin/faults/{args.kind}",
                                          body))
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    return 0 if status == 200 else 1


def cmd_start(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"evse": args.evse, "token_uid": args.token_uid,
                            "token_type": args.type}
    status, data = asyncio.run(_admin(args.mock_url, "POST", "/admin/sessions/start", body))
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    return 0 if status == 200 else 1


def cmd_state(args: argparse.Namespace) -> int:
    status, data = asyncio.run(_admin(args.mock_url, "GET", "/admin/state"))
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    return 0 if status == 200 else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocpi-mock", description="Mock OCPI 2.2.1 CPO (test double)")
    sub = p.add_subparsers(dest="command", required=True)
    mock_url = _default_mock_url()

    s = sub.add_parser("serve", help="run the mock CPO platform")
    s.add_argument("--network", default=str(DEFAULT_NETWORK))
    s.add_argument("--speed", type=float, default=1.0, help="simulated time runs N times faster")
    s.add_argument("--generate", type=int, default=0, help="add N synthetic locations")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--tick", type=int, default=180, help="simulated seconds per meter tick")
    s.add_argument("--epoch", default=None,
                   help="simulated time at start (RFC 3339); default: now")
    s.add_argument("--trailing-slash", action="store_true",
                   help="publish endpoint URLs ending in '/' (as many CPO platforms do)")
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("connect", help="register with an eMSP and push the network")
    c.add_argument("versions_url")
    c.add_argument("token")
    c.add_argument("--mock-url", default=mock_url)
    c.set_defaults(func=cmd_connect)

    i = sub.add_parser("invite", help="print a token A for an eMSP to register with the mock")
    i.add_argument("--mock-url", default=mock_url)
    i.set_defaults(func=cmd_invite)

    f = sub.add_parser("fault", help=f"inject a fault: {', '.join(KINDS)}, or clear")
    f.add_argument("kind", choices=[*KINDS, "clear"])
    f.add_argument("params", nargs="*", help="key=value (values may be JSON)")
    f.add_argument("--mock-url", default=mock_url)
    f.set_defaults(func=cmd_fault)

    st = sub.add_parser("start", help="a driver starts charging at an EVSE (RFID / QR)")
    st.add_argument("evse", help="EVSE uid or evse_id, e.g. IN*TPC*E1001*1")
    st.add_argument("token_uid")
    st.add_argument("--type", default="RFID")
    st.add_argument("--mock-url", default=mock_url)
    st.set_defaults(func=cmd_start)

    sa = sub.add_parser("state", help="show the mock's state")
    sa.add_argument("--mock-url", default=mock_url)
    sa.set_defaults(func=cmd_state)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
