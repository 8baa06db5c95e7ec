"""Shared fixtures: a real redis-server on a free port, real HTTP servers on 127.0.0.1.

`make test` finds or installs redis-server (scripts/ensure-redis.sh) and passes
its path in REDIS_SERVER; a bare `pytest` uses the one on PATH. There is no
stand-in: if no redis-server can be started the tests that need it error out.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import structlog

from tests import spec

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: reads published spec files (tests/spec.py)")
    if spec.REQUIRED and not spec.available():
        raise pytest.UsageError(spec.missing_reason() + " and OBB_REQUIRE_SPEC=1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/conformance/" in item.nodeid:
            item.add_marker(pytest.mark.conformance)


# Whether a test's own body failed: fixtures that check invariants at teardown (the
# journey world: tests/journey/conftest.py) leave a failed test's wreckage alone.
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.stash[CALL_FAILED] = rep.failed
    return rep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line on the conformance suite: run against which files, or why not."""
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            if "tests/conformance/" in getattr(rep, "nodeid", ""):
                counts[outcome] = counts.get(outcome, 0) + 1
    if not counts:
        return
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    if spec.available():
        terminalreporter.write_line(f"conformance suite: {summary} (spec files: {spec.SPEC_DIR})")
    else:
        terminalreporter.write_line(f"conformance suite NOT RUN: {summary}; "
                                    + spec.missing_reason(), yellow=True, bold=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server child process with its own data directory."""

    def __init__(self, binary: str, data_dir: Path, port: int | None = None,
                 appendonly: bool = True) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec", "--protected-mode", "no", "--daemonize", "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def redis_binary() -> str:
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise RuntimeError("no redis-server: run the tests with `make test`, which installs one")
    return binary


# The shard layout the suite runs with (docs/scaling.md). BRIDGE_REDIS_SHARDS=N (N > 1)
# runs everything with N tagged shards on the one redis-server: every key of an entity in
# its shard's slot, the change streams and indexes per shard, the catalog sharded and
# merged, as on a Cluster (the bridge processes tests start read the same variable).
SHARDS = int(os.environ.get("BRIDGE_REDIS_SHARDS") or 0)


@pytest.fixture(autouse=True)
def _shard_layout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from bridge import redisconn
    from bridge.store import shards

    if SHARDS > 1:  # the settings tests build in-process say nothing of it
        monkeypatch.setattr(redisconn, "shard_count", lambda _settings: SHARDS)
    shards.configure(SHARDS or 1, SHARDS > 1)
    yield
    shards.configure(SHARDS or 1, SHARDS > 1)


@pytest.fixture(autouse=True)
def _plain_structlog() -> Iterator[None]:
    """Commands under test configure structlog for the process; undo it after each test
    so no logger keeps writing to a capture file pytest has closed."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="obb-redis-") as tmp:
        server = RedisServer(redis_binary(), Path(tmp)).start()
        yield server
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the session's redis-server."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (for restart tests), AOF on."""
    server = RedisServer(redis_binary(), tmp_path).start()
    yield server
    server.stop()
