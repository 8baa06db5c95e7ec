"""`bridge cpo invite | list | remove | rotate`: the operator's commands for CPO
connections, run through the real CLI entry point against a real bridge and a CPO
double on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.cli import main
from bridge.ocpi.credentials import register_with
from bridge.ocpi.deps import OcpiDeps
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore
from tests.ocpi.conftest import Bridge, Ocpi, location, register_cpo
from tests.ocpi.cpo_double import CpoDouble

LOC = "/ocpi/2.2.1/locations/IN/TPC/LOC1"


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI runs in this process, beside a live bridge: its logging set-up would
    become that of the bridge's loggers too (structlog caches them on first use)."""
    monkeypatch.setattr("bridge.cli.configure_logging", lambda *_a, **_k: None)


async def cli(bridge: Bridge, tmp_path: Path, capsys: pytest.CaptureFixture[str],
              *args: str) -> tuple[int, str, str]:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(f'[server]\nredis_url = "{bridge.settings.redis_url}"\n'
                   f'public_url = "{bridge.url}"\n[ocpi]\nallow_loopback_urls = true\n')
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, main, ["--config", str(cfg), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


async def bridge_registered_with(bridge: Bridge, double: CpoDouble) -> None:
    deps = OcpiDeps(settings=bridge.settings, store=OcpiStore(bridge.redis),
                    creds=CredentialsStore(bridge.redis))
    try:
        await register_with(deps, f"{double.base_url}/ocpi/versions", double.token_a)
    finally:
        await deps.close()


async def test_invite_names_the_parties(bridge: Bridge, tmp_path: Path, capsys: Any,
                                        http: aiohttp.ClientSession) -> None:
    code, out, err = await cli(bridge, tmp_path, capsys, "cpo", "invite", "IN-TPC", "in-zeo")
    assert code == 0 and "IN-TPC IN-ZEO" in err
    principal = await CredentialsStore(bridge.redis).authenticate(out.split()[-1])
    assert principal is not None and principal.invited == {("IN", "TPC"), ("IN", "ZEO")}
    code, out, _ = await cli(bridge, tmp_path, capsys, "cpo", "invite", "IN", "STK")  # old form
    assert code == 0
    for bad in (["INTPC"], ["IN-TOOLONG"], ["I1-TPC"]):
        code, _, err = await cli(bridge, tmp_path, capsys, "cpo", "invite", *bad)
        assert code == 2 and "write it like IN-TPC" in err


async def test_list_shows_roles_versions_last_push_and_last_error(
        bridge: Bridge, cpo_double: CpoDouble, http: aiohttp.ClientSession, tmp_path: Path,
        capsys: Any) -> None:
    code, _, err = await cli(bridge, tmp_path, capsys, "cpo", "list")
    assert code == 0 and "no CPO platform" in err
    cpo = await register_cpo(bridge, cpo_double, http)
    await cpo.call("PUT", LOC, location())
    await cpo.call("PUT", LOC, location() | {"publish": "yes"})  # a 2001
    code, out, _ = await cli(bridge, tmp_path, capsys, "cpo", "list")
    assert code == 0
    assert f"{cpo_double.base_url}/ocpi/versions  OCPI 2.2.1" in out
    tpc = out[out.index("  IN-TPC  CPO"):out.index("  IN-ZEO  CPO")]
    assert "CPO  CPO TPC" in tpc
    assert "last push: " in tpc and "PUT /locations/IN/TPC/LOC1" in tpc
    assert "2001 publish" in tpc
    assert "last push: never" in out[out.index("  IN-ZEO  CPO"):]


async def test_rotate_changes_both_tokens(bridge: Bridge, cpo_double: CpoDouble,
                                          http: aiohttp.ClientSession, tmp_path: Path,
                                          capsys: Any) -> None:
    await bridge_registered_with(bridge, cpo_double)
    old_ours, old_theirs = cpo_double.bridge_token, cpo_double.token_b
    code, out, err = await cli(bridge, tmp_path, capsys, "cpo", "rotate", "IN-TPC")
    assert code == 0, err
    assert cpo_double.bridge_token != old_ours and cpo_double.token_b != old_theirs
    conn = (await CredentialsStore(bridge.redis).connections())[0]
    assert conn.their_token == cpo_double.token_b
    assert (await Ocpi(bridge.url, old_ours, http).call("GET", "/ocpi/versions"))[0] == 401
    new = Ocpi(bridge.url, cpo_double.bridge_token, http)
    assert (await new.call("PUT", LOC, location()))[1]["status_code"] == 1000


async def test_rotate_refused_by_the_cpo_changes_nothing(
        bridge: Bridge, cpo_double: CpoDouble, http: aiohttp.ClientSession, tmp_path: Path,
        capsys: Any) -> None:
    await bridge_registered_with(bridge, cpo_double)
    ours = cpo_double.bridge_token
    cpo_double.token_b = "changed-behind-our-back"  # the CPO no longer knows our token
    capsys.readouterr()  # the set-up's log lines
    code, _, err = await cli(bridge, tmp_path, capsys, "cpo", "rotate", "IN-TPC")
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("{")]  # JSON logs
    assert code == 1 and len(lines) == 1 and lines[0].startswith("bridge cpo rotate:")
    assert "401" in lines[0]
    assert (await Ocpi(bridge.url, ours, http).call("GET", "/ocpi/versions"))[0] == 200
    store = CredentialsStore(bridge.redis)
    assert len(await store.connections()) == 1
    assert len([k async for k in bridge.redis.scan_iter("obb:cred:token:*")]) == 1


async def test_remove_tells_the_cpo_and_keeps_the_data_unless_purge(
        bridge: Bridge, cpo_double: CpoDouble, http: aiohttp.ClientSession, tmp_path: Path,
        capsys: Any) -> None:
    await bridge_registered_with(bridge, cpo_double)
    cpo = Ocpi(bridge.url, cpo_double.bridge_token, http)
    await cpo.call("PUT", LOC, location())
    code, out, _ = await cli(bridge, tmp_path, capsys, "cpo", "remove", "IN-ZEO")
    assert code == 0 and "parties IN-TPC IN-ZEO" in out and "are kept" in out
    assert cpo_double.deleted == 1
    assert await CredentialsStore(bridge.redis).connections() == []
    assert (await cpo.call("GET", "/ocpi/versions"))[0] == 401
    assert await OcpiStore(bridge.redis).get_location("IN", "TPC", "LOC1") is not None
    code, _, err = await cli(bridge, tmp_path, capsys, "cpo", "remove", "IN-TPC")
    assert code == 1 and "no registered platform serves IN-TPC" in err
    code, _, err = await cli(bridge, tmp_path, capsys, "cpo", "rotate", "IN-TPC")
    assert code == 1 and "no registered platform" in err


async def test_remove_purge_deletes_the_objects(bridge: Bridge, cpo_double: CpoDouble,
                                                http: aiohttp.ClientSession, tmp_path: Path,
                                                capsys: Any) -> None:
    cpo = await register_cpo(bridge, cpo_double, http)  # the CPO registered with us
    await cpo.call("PUT", LOC, location())
    code, out, _ = await cli(bridge, tmp_path, capsys, "cpo", "remove", "IN-TPC", "--purge")
    assert code == 0 and "purged IN-TPC: 1 locations" in out
    # the double offers no credentials DELETE to a platform that registered with it
    assert await OcpiStore(bridge.redis).get_location("IN", "TPC", "LOC1") is None


def test_mock_cli_options() -> None:
    from ocpi_mock.cli import build_config, parser

    args = parser().parse_args(["serve", "--epoch", "2026-01-01T05:30:00+05:30",
                                "--trailing-slash"])
    cfg = build_config(args)
    assert cfg.trailing_slash and cfg.epoch is not None and cfg.epoch.hour == 0
