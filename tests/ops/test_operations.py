"""Operating the bridge: /metrics, the access log, config resolution from any directory,
one-line CLI errors, public_url following the port, and a drain on SIGTERM (a real
`bridge serve` process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from bridge import metrics
from bridge.cli import main as cli_main
from bridge.cli import redact_url
from bridge.config import DEFAULT_CONFIG, PROJECT_DIR, Settings, load_settings
from tests.conftest import ROOT, free_port
from tests.ocpi.conftest import Bridge, Ocpi, location

BRIDGE = [sys.executable, "-m", "bridge.cli"]


def scrape_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` that carry these labels (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, rest = head.partition("{")
        if sample == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


async def test_metrics_count_ocpi_requests_and_rejections(bridge: Bridge, cpo: Ocpi,
                                                          http: aiohttp.ClientSession) -> None:
    before = scrape_value(metrics.render().decode(), "obb_ocpi_requests_total",
                          module="locations", method="PUT", ocpi_status="1000")
    rejected = scrape_value(metrics.render().decode(), "obb_ocpi_pushes_rejected_total",
                            module="locations", reason="2001")
    await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/L1", location("L1"))
    bad = location("L2")
    del bad["coordinates"]
    await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/L2", bad)
    async with http.get(f"{bridge.url}/metrics") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert scrape_value(text, "obb_ocpi_requests_total", module="locations", method="PUT",
                        ocpi_status="1000") == before + 1
    assert scrape_value(text, "obb_ocpi_pushes_rejected_total", module="locations",
                        reason="2001") == rejected + 1
    assert scrape_value(text, "obb_redis_up") == 1
    assert "obb_ocpi_request_seconds_bucket" in text and "obb_queue_depth" in text
    assert "obb_beckn_callbacks_total" in text or "# HELP obb_beckn_callbacks_total" in text


async def test_access_log_one_line_per_request_no_tokens(bridge: Bridge, cpo: Ocpi,
                                                         http: aiohttp.ClientSession) -> None:
    with capture_logs() as logs:
        await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/L1", location("L1"))
        async with http.get(f"{bridge.url}/ocpi/2.2.1/locations/IN/TPC/L1",
                            headers={"Authorization": "Token not-a-real-token",
                                     "X-Forwarded-For": "203.0.113.7"}) as resp:
            assert resp.status == 401
    access = [e for e in logs if e["event"] in ("http.access", "http.auth_failed")]
    assert len(access) == 2, access
    ok, denied = access
    assert ok["log_level"] == "info" and ok["status"] in (200, 201) and ok["method"] == "PUT"
    assert ok["module"] == "locations" and ok["ocpi_status"] == 1000 and ok["caller"]
    assert ok["duration_ms"] >= 0 and ok["request_id"]
    assert denied["event"] == "http.auth_failed" and denied["log_level"] == "warning"
    assert denied["forwarded_for"] == "203.0.113.7" and "forwarded_for" not in ok
    text = repr(logs)
    assert cpo.token not in text and "not-a-real-token" not in text


def test_config_is_found_from_any_directory(tmp_path: Path) -> None:
    proc = subprocess.run([*BRIDGE[:1], "-c", "from bridge.config import load_settings; import os;"
                           "s = load_settings(os.environ); print(s.redis_url, s.journey_pricing_policy)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("BRIDGE_") and k != "REDIS_URL"}, check=True)
    redis_url, policy = proc.stdout.split()
    assert DEFAULT_CONFIG == ROOT / "config" / "bridge.toml"
    assert redis_url == "redis://127.0.0.1:6390/0"  # config/bridge.toml's, not the built-in 6379
    assert policy == str(ROOT / "config" / "pricing.toml") and Path(policy).is_file()


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "bridge.toml"
    cfg.parent.mkdir()
    cfg.write_text('[beckn]\nprivate_key = "keys/k.pem"\n[journey]\npricing_policy = "/abs/p.toml"\n')
    s = load_settings({"BRIDGE_CONFIG": str(cfg)})
    assert s.beckn_private_key == str(tmp_path / "etc" / "keys" / "k.pem")
    assert s.journey_pricing_policy == "/abs/p.toml"
    s = load_settings({"BRIDGE_CONFIG": str(cfg), "BRIDGE_BECKN_PRIVATE_KEY": "x.pem"})
    assert s.beckn_private_key == str(Path.cwd() / "x.pem")  # the environment: the shell's cwd
    s = load_settings({"BRIDGE_CONFIG": str(tmp_path / "etc" / "bridge.toml")})
    assert Path(load_settings({}).beckn_static_keys or "/") and PROJECT_DIR == ROOT


def test_public_url_follows_the_port_unless_set() -> None:
    s = Settings(port=8123)
    assert s.public_url == "http://127.0.0.1:8123"
    assert s.replace(port=9000).public_url == "http://127.0.0.1:9000"
    assert Settings(host="0.0.0.0", port=80).public_url == "http://127.0.0.1:80"
    fixed = Settings(port=8123, public_url="https://emsp.example.org/")
    assert fixed.replace(port=9000).public_url == "https://emsp.example.org"
    assert load_settings({"BRIDGE_PORT": "8555", "BRIDGE_CONFIG": os.devnull}
                         if False else {"BRIDGE_PORT": "8555"}).public_url == "http://127.0.0.1:8555"


@pytest.mark.parametrize("argv", [["cpo", "list"], ["outbox"], ["order", "x"],
                                  ["callbacks", "failed"], ["cpo", "invite", "IN", "TPC"]])
def test_cli_says_redis_is_down_in_one_line(argv: list[str], capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    code = cli_main(argv)
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "cannot reach Redis" in err and "Traceback" not in err
    assert "hunter2" not in err and f":{port}/0" in err


def test_redact_url() -> None:
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("rediss://user:pw@h/0") == "rediss://user:***@h/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


# --------------------------------------------------------------------------- SIGTERM


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"bridge serve did not come up (exit {proc.poll()})")
            await asyncio.sleep(0.1)


async def test_sigterm_drains_in_flight_requests_and_exits_0(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "BRIDGE_PORT": str(port),
           "BRIDGE_LOG_FORMAT": "json", "BRIDGE_SHUTDOWN_TIMEOUT": "10",
           "BRIDGE_BECKN_PRIVATE_KEY": str(tmp_path / "k.pem")}
    subprocess.run([*BRIDGE, "keys", "generate"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([*BRIDGE, "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        # A request in flight when SIGTERM comes: /readyz waits on a Redis paused for 2 s.
        r = aioredis.Redis.from_url(redis_url)
        await r.execute_command("CLIENT", "PAUSE", 2000, "ALL")
        async with aiohttp.ClientSession() as http:
            slow = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/readyz"))
            await asyncio.sleep(0.4)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.4)
            # new connections are refused while the old request is served
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
            resp = await asyncio.wait_for(slow, 10)
            assert resp.status == 200 and (await resp.json())["redis"] == "ok"
        await r.aclose()
        assert await asyncio.to_thread(proc.wait, 20) == 0
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "bridge.draining" in err and "bridge.stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_worker_serves_its_metrics(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    port = free_port()
    try:
        runner = await metrics.start_server(r, "127.0.0.1", port)
        assert runner is not None
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        assert resp.status == 200 and "obb_queue_depth" in text and "obb_jobs_total" in text
        await runner.cleanup()
        assert await metrics.start_server(r, "127.0.0.1", 0) is None
    finally:
        await r.aclose()


@pytest.mark.parametrize(("settlement", "outcome", "moves"), [
    ({"refund_now": "22.00", "refund": "22.00"}, "refund", ["refund"]),
    ({"capture": "520.00", "release": "30.00"}, "capture", ["capture", "release"]),
    ({"top_up_now": "20.00", "top_up": "20.00", "top_up_url": "x"}, "top_up", ["top_up_link"]),
    ({"refund": "0", "final_amount": "100"}, "even", []),
    ({"provisional": True, "refund_now": "5"}, "provisional", ["refund"]),
])
def test_settlement_counters(settlement: dict[str, object], outcome: str, moves: list[str]) -> None:
    assert metrics.settlement_outcome(settlement) == outcome
    text = metrics.render().decode()
    before = {k: scrape_value(text, "obb_money_movements_total", kind=k)
              for k in ("refund", "capture", "release", "top_up_link")}
    settled = scrape_value(text, "obb_settlements_total", outcome=outcome)
    metrics.count_settlement(settlement)
    text = metrics.render().decode()
    assert scrape_value(text, "obb_settlements_total", outcome=outcome) == settled + 1
    for kind, n in before.items():
        assert scrape_value(text, "obb_money_movements_total", kind=kind) == n + (kind in moves)


# --------------------------------------------------------------------------- start-up errors

def test_worker_without_its_signing_key_stops_in_one_line(redis_url: str, tmp_path: Path) -> None:
    # It used to print a traceback from inside arq's start-up and, supervised, start again
    # and again; a worker that cannot sign would only fail every callback.
    env = {**os.environ, "REDIS_URL": redis_url, "BRIDGE_WORKER_METRICS_PORT": "0",
           "BRIDGE_BECKN_PRIVATE_KEY": str(tmp_path / "missing.pem")}
    done = subprocess.run([*BRIDGE, "worker", "--burst"], env=env, capture_output=True,
                          cwd=tmp_path, timeout=60)
    err = done.stderr.decode()
    last = err.strip().splitlines()[-1]
    assert done.returncode == 2, err
    assert "Traceback" not in err and "missing.pem" in last and "bridge keys generate" in last


def test_serve_on_a_taken_port_says_so_in_one_line(redis_url: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "REDIS_URL": redis_url, "BRIDGE_PORT": str(port)}
        done = subprocess.run([*BRIDGE, "serve"], env=env, capture_output=True, cwd=tmp_path,
                              timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port}" in err.strip().splitlines()[-1]


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    # `bridge order X | head -3`, `bridge tariff price ... | head`: the reader is gone
    # when the output comes (a pipe whose read end is already closed).
    fixtures = ROOT / "tests" / "fixtures" / "pricing"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([*BRIDGE, "tariff", "price", str(fixtures / "tariff_energy.json"),
                               str(fixtures / "session_finished.json"), "--offline"],
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60, cwd=tmp_path)
    finally:
        os.close(write_end)
    err = done.stderr.decode()
    assert "Traceback" not in err and done.returncode == 141, err
