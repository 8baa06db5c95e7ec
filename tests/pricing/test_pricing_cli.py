"""`bridge tariff price`: output and every error path (exit 2 naming the file and field)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.commands import tariff as cmd
from bridge.config import Settings, load_settings
from tests.pricing.pricing_support import FIXTURES, ROOT, fixture

TARIFF = str(FIXTURES / "tariff_time_step60.json")
CDR = str(FIXTURES / "cdr_time.json")
CDR_TARIFF = fixture("cdr_time.json")["tariffs"][0]


def write(tmp_path: Path, name: str, doc: Any) -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str, settings: Settings | None = None
        ) -> tuple[int, str, str]:
    """The command in-process; offline unless `settings` (a store to ask) are given."""
    code = cmd.main(["price", *argv, *(() if settings is not None else ("--offline",))], settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_prices_a_cdr(capsys: pytest.CaptureFixture[str]) -> None:
    # 1.973 h of TIME at ₹120/h, step 300 s: billed 2 h = ₹240, ₹283.20 with 18% VAT
    code, out, err = run(capsys, str(FIXTURES / "tariff_time_step300.json"), CDR,
                         "--time-zone", "Asia/Kolkata")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["total_cost"] == {"excl_vat": 240.0, "incl_vat": 283.2}
    assert doc["total_time_cost"] == {"excl_vat": 240.0, "incl_vat": 283.2}
    assert doc["record"] == {"type": "CDR", "id": "CDR-0001"} and doc["matches_reported"] is True
    assert doc["billed"]["TIME"] == 2 and doc["warnings"] == []
    assert doc["time_zone"] == "Asia/Kolkata" and doc["time_zone_source"] == "--time-zone"
    # total_time is the CDR chapter's: the whole session, end - start (7,103 s), not the
    # TIME volume the periods report (1.973 h)
    assert doc["total_time"] == doc["total_charging_time"] == 1.973056
    assert doc["volumes"]["TIME"] == 1.973 and doc["total_parking_time"] == 0


def test_cdr_without_time_zone_warns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, TARIFF, CDR)
    doc = json.loads(out)
    assert code == 0 and any("UTC" in w for w in doc["warnings"])
    # step 60, not the CDR's 300: 7,140 s billed = ₹238.00
    assert doc["total_cost"]["excl_vat"] == 238.0 and doc["matches_reported"] is False


def test_prices_a_session(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(FIXTURES / "tariff_energy.json"),
                         str(FIXTURES / "session_finished.json"), "--time-zone", "Asia/Kolkata")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["record"]["type"] == "Session" and doc["total_cost"]["excl_vat"] == 231.25  # 12.5 x 18.50


def test_active_session_with_now(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, TARIFF, str(FIXTURES / "session_active.json"),
                         "--now", "2026-01-12T05:17:09Z")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["total_cost"]["excl_vat"] == 120.0 and any("UTC" in w for w in doc["warnings"])


def test_accepts_an_ocpi_envelope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrapped = write(tmp_path, "env.json", {"data": fixture("cdr_time.json"), "status_code": 1000,
                                           "timestamp": "2026-01-12T06:09:00Z"})
    code, _, err = run(capsys, TARIFF, wrapped)
    assert code == 0, err


def _bad_cdr() -> dict[str, Any]:
    doc = fixture("cdr_time.json")
    doc["charging_periods"][0]["dimensions"][0]["type"] = "WATTS"
    return doc


ERRORS = [
    ("tariff not JSON", "{nope", None, None, "t.json: not JSON"),
    ("tariff missing last_updated", {k: v for k, v in fixture("tariff_energy.json").items()
                                     if k != "last_updated"}, None, None,
     "not a valid OCPI Tariff: field last_updated: Field required"),
    ("tariff with a bad step_size", fixture("tariff_time_step60.json")
     | {"elements": [{"price_components": [{"type": "TIME", "price": 1}]}]}, None, None,
     "field elements.0.price_components.0.step_size"),
    ("tariff is a list", [1, 2], None, None, "expected a JSON object, found list"),
    ("record is neither", None, {"hello": "world"}, None, "neither a CDR nor a Session"),
    ("CDR with a bad dimension", None, _bad_cdr(), None,
     "not a valid OCPI CDR: field charging_periods.0.dimensions.0.type"),
    ("Session without kwh", None, {k: v for k, v in fixture("session_finished.json").items()
                                   if k != "kwh"}, None, "not a valid OCPI Session: field kwh"),
    ("unknown time zone", None, None, ["--time-zone", "Mars/Olympus"], "--time-zone: unknown time zone"),
    ("bad --now", None, fixture("session_active.json"), ["--now", "yesterday"],
     "--now: not an RFC 3339 time"),
    ("naive --now", None, fixture("session_active.json"), ["--now", "2026-01-12T05:17:09"],
     "has no time zone offset"),
]


@pytest.mark.parametrize(("name", "tariff", "record", "extra", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, tariff: Any, record: Any,
    extra: list[str] | None, message: str,
) -> None:
    t = write(tmp_path, "t.json", tariff) if tariff is not None else TARIFF
    r = write(tmp_path, "r.json", record) if record is not None else CDR
    code, out, err = run(capsys, t, r, *(extra or []))
    assert code == 2 and out == ""
    assert message in err and err.startswith("bridge tariff price: ")


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "missing.json"), TARIFF)
    assert code == 2 and "missing.json: cannot read" in err


def test_register_with_any_argparse() -> None:
    parser = argparse.ArgumentParser(prog="bridge")
    cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tariff", "price", "a.json", "b.json", "--time-zone", "Asia/Kolkata",
                              "--tariff", "c.json", "--tariff", "d.json"])
    assert args.func is cmd.cmd_price and args.needs_settings is True
    assert (args.files, args.tariffs, args.time_zone) == (["a.json", "b.json"], ["c.json", "d.json"],
                                                          "Asia/Kolkata")


def test_through_the_bridge_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "tariff", "price", TARIFF, str(FIXTURES / "tariff_flat_only.json"),
         "--offline"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )
    assert proc.returncode == 2 and "neither a CDR nor a Session" in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "tariff", "price", TARIFF, CDR, "--time-zone", "Asia/Kolkata",
         "--offline"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["total_cost"]["incl_vat"] == 280.84  # 238.00 + 18%


# ---------------------------------------------------------------- the CDR's own tariffs, the store


def test_uses_the_cdrs_own_tariffs_without_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, CDR, "--time-zone", "Asia/Kolkata")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["total_cost"] == {"excl_vat": 240.0, "incl_vat": 283.2} and doc["matches_reported"] is True
    assert doc["tariff_sources"] == {"T-TIME-300": "CDR tariffs"}


def test_one_file_for_another_tariff_says_it_prices_every_period(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, TARIFF, CDR, "--time-zone", "Asia/Kolkata")
    doc = json.loads(out)
    assert code == 0 and doc["total_cost"]["excl_vat"] == 238.0
    assert doc["tariff_sources"] == {"T-TIME-60": f"file {TARIFF}"}
    assert any("the periods name tariff T-TIME-300; every period priced with tariff T-TIME-60" in w
               for w in doc["warnings"])


def test_no_time_zone_offline_says_utc_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, CDR)
    doc = json.loads(out)
    assert code == 0 and doc["time_zone"] == "UTC" and doc["time_zone_source"] == "default"
    assert any("restrictions evaluated in UTC" in w and "offline" in w for w in doc["warnings"])


def test_a_period_naming_an_unknown_tariff_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = fixture("cdr_time.json")
    doc["charging_periods"][0]["tariff_id"] = "T-NOWHERE"
    code, out, err = run(capsys, write(tmp_path, "c.json", doc))
    assert code == 2 and out == ""
    assert "charging periods name tariff T-NOWHERE, not found in the files given, the CDR's tariffs" in err


def _location(lid: str, tz: str) -> Any:
    from tests.ocpi.conftest import location

    doc = location(lid, cc="IN", pid="TST")
    doc["time_zone"] = tz
    return doc


async def _store_location(redis_url: str, lid: str, tz: str) -> None:
    from redis import asyncio as aioredis

    from bridge.ocpi.models import Location
    from bridge.store.ocpi_store import OcpiStore

    redis = aioredis.Redis.from_url(redis_url)
    try:
        await OcpiStore(redis).put("locations", Location.model_validate(_location(lid, tz)))
    finally:
        await redis.aclose()


def test_time_zone_of_the_stored_location(redis_url: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    asyncio.run(_store_location(redis_url, "LOC-TZ-1", "Asia/Kolkata"))
    doc = fixture("cdr_time.json")
    doc["cdr_location"]["id"] = "LOC-TZ-1"
    code, out, err = run(capsys, write(tmp_path, "c.json", doc), settings=load_settings({"REDIS_URL": redis_url}))
    assert code == 0, err
    got = json.loads(out)
    assert got["time_zone"] == "Asia/Kolkata" and got["time_zone_source"] == "stored location IN/TST/LOC-TZ-1"
    assert got["warnings"] == []


def test_location_not_in_the_store_falls_back_to_utc(redis_url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    doc = fixture("cdr_time.json")
    doc["cdr_location"]["id"] = "LOC-NOT-STORED"
    code, out, _ = run(capsys, write(tmp_path, "c.json", doc), settings=load_settings({"REDIS_URL": redis_url}))
    got = json.loads(out)
    assert code == 0 and got["time_zone"] == "UTC" and got["time_zone_source"] == "default"
    assert any("its location is not in the store" in w for w in got["warnings"])


def test_store_not_reachable_is_a_warning_not_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import free_port

    settings = load_settings({"REDIS_URL": f"redis://:secret@127.0.0.1:{free_port()}/0"})
    code, out, err = run(capsys, CDR, settings=settings)
    got = json.loads(out)
    assert code == 0, err
    assert got["time_zone"] == "UTC"
    problem = [w for w in got["warnings"] if "store not reachable" in w]
    assert problem and "secret" not in " ".join(got["warnings"]) and ":***@" in problem[0]


# ---------------------------------------------------------------- a CDR that switches tariffs


def _switching(tmp_path: Path, inline: bool) -> tuple[str, str, str]:
    """cdr_switching.json: 1 h under T-TIME-300 then 0.5 h under T-TIME-60 (₹120/h each,
    18% VAT), with no tariffs of its own; `inline` gives it T-TIME-300."""
    doc = fixture("cdr_switching.json")
    if inline:
        doc["tariffs"] = [fixture("tariff_time_step300.json")]
    return (write(tmp_path, "switch.json", doc), str(FIXTURES / "tariff_time_step300.json"),
            str(FIXTURES / "tariff_time_step60.json"))


def test_each_period_with_the_tariff_it_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record, t300, t60 = _switching(tmp_path, inline=False)
    code, out, err = run(capsys, record, "--tariff", t300, "--tariff", t60, "--time-zone", "Asia/Kolkata")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tariff_ids"] == ["T-TIME-300", "T-TIME-60"]
    assert doc["tariff_sources"] == {"T-TIME-300": f"file {t300}", "T-TIME-60": f"file {t60}"}
    assert doc["total_cost"]["excl_vat"] == 180.0  # 1.5 h at ₹120/h, no step at the switch
    assert [s["tariff_id"] for s in doc["subtotals"]] == ["T-TIME-300", "T-TIME-60"]
    assert [ln["tariff_id"] for ln in doc["lines"]] == ["T-TIME-300", "T-TIME-60"]


def test_one_file_for_a_cdr_naming_two_tariffs_uses_the_cdrs_own_for_the_other(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record, _t300, t60 = _switching(tmp_path, inline=True)  # the CDR carries T-TIME-300
    code, out, err = run(capsys, t60, record, "--time-zone", "Asia/Kolkata")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tariff_sources"] == {"T-TIME-300": "CDR tariffs", "T-TIME-60": f"file {t60}"}


def test_one_file_cannot_price_a_cdr_naming_two_tariffs_it_lacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: every period silently priced with the one file. Now: exit 2, naming the missing one.
    record, t300, _t60 = _switching(tmp_path, inline=False)
    code, out, err = run(capsys, t300, record)
    assert code == 2 and out == ""
    assert "charging periods name tariff T-TIME-60, not found in the files given" in err


async def _store_tariff(redis_url: str, doc: dict[str, Any]) -> None:
    from redis import asyncio as aioredis

    from bridge.ocpi.models import Tariff
    from bridge.store.ocpi_store import OcpiStore

    redis = aioredis.Redis.from_url(redis_url)
    try:
        await OcpiStore(redis).put("tariffs", Tariff.model_validate(doc))
    finally:
        await redis.aclose()


def test_a_named_tariff_from_the_store(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    record, t300, t60 = _switching(tmp_path, inline=False)
    asyncio.run(_store_tariff(redis_url, json.loads(Path(t60).read_text())))
    code, out, err = run(capsys, record, "--tariff", t300, "--time-zone", "Asia/Kolkata",
                         settings=load_settings({"REDIS_URL": redis_url}))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tariff_sources"] == {"T-TIME-300": f"file {t300}", "T-TIME-60": "store"}
    assert doc["total_cost"]["excl_vat"] == 180.0


def test_stored_location_with_an_unknown_zone_warns(redis_url: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    asyncio.run(_store_location(redis_url, "LOC-TZ-BAD", "Mars/Olympus"))
    doc = fixture("cdr_time.json")
    doc["cdr_location"]["id"] = "LOC-TZ-BAD"
    code, out, _ = run(capsys, write(tmp_path, "c.json", doc), settings=load_settings({"REDIS_URL": redis_url}))
    got = json.loads(out)
    assert code == 0 and got["time_zone"] == "UTC" and got["time_zone_source"] == "default"
    assert any("unknown time_zone 'Mars/Olympus'" in w for w in got["warnings"])


def test_a_bad_configuration_exits_2_and_suggests_offline(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BRIDGE_CONFIG", "/nonexistent/bridge.toml")
    code = cmd.main(["price", CDR])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "configuration error (use --offline" in err


def test_a_session_naming_two_tariffs_is_priced_with_each(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    doc = fixture("session_finished.json")
    doc["charging_periods"][0]["tariff_id"] = "T-TIME-300"
    doc["charging_periods"][1]["tariff_id"] = "T-TIME-60"
    code, out, err = run(capsys, write(tmp_path, "s.json", doc), "--tariff", str(FIXTURES / "tariff_time_step300.json"),
                         "--tariff", str(FIXTURES / "tariff_time_step60.json"), "--time-zone", "Asia/Kolkata")
    assert code == 0, err
    got = json.loads(out)
    assert got["record"]["type"] == "Session" and got["tariff_ids"] == ["T-TIME-300", "T-TIME-60"]


def test_a_session_naming_a_tariff_found_nowhere_exits_2(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    doc = fixture("session_finished.json")
    doc["charging_periods"][0]["tariff_id"] = "T-TIME-300"
    doc["charging_periods"][1]["tariff_id"] = "T-ELSEWHERE"
    code, out, err = run(capsys, write(tmp_path, "s.json", doc), "--tariff", str(FIXTURES / "tariff_time_step300.json"),
                         "--tariff", str(FIXTURES / "tariff_time_step60.json"))
    assert code == 2 and out == "" and "charging periods name tariff T-ELSEWHERE, not found" in err
