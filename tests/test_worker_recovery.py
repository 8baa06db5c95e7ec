"""`bridge worker` and `bridge serve` as real processes against a real redis-server:
a killed worker's job runs again within a lease (issue 12, finding 2), the worker
outlives Redis restarts (finding 7), and neither starts on a Redis that does not
persist acknowledged writes (finding 9)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from arq.connections import ArqRedis

from bridge.beckn import signing
from bridge.store.credentials import Connection, CredentialsStore
from bridge.worker import QUEUE
from tests.conftest import ROOT, RedisServer, free_port, redis_binary

LEASE = 3  # BRIDGE_WORKER_JOB_LEASE for these workers


def bridge_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    key = tmp_path / "bridge.key"
    if not key.exists():
        key.write_bytes(signing.private_key_pem(signing.generate_private_key()))
    return {**os.environ, "REDIS_URL": redis_url, "BRIDGE_REDIS_URL": redis_url,
            "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
            "BRIDGE_BECKN_PRIVATE_KEY": str(key), "BRIDGE_LOG_FORMAT": "json",
            "BRIDGE_JOURNEY_PRICING_POLICY": str(ROOT / "config" / "pricing.toml"),
            "BRIDGE_WORKER_JOB_LEASE": str(LEASE), "BRIDGE_OCPI_REQUEST_TIMEOUT": "120",
            **extra}


class Procs:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{name}.log", "wb")  # closed when the test ends
        proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", *args], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


@pytest.fixture
async def hanging_cpo() -> AsyncIterator[tuple[str, list[float]]]:
    """A CPO whose locations sender never answers (a sync job that runs for minutes)."""
    calls: list[float] = []

    async def hang(_request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        await asyncio.sleep(3600)
        return web.Response()

    app = web.Application()
    app.router.add_get("/ocpi/2.2.1/locations", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", calls
    await runner.cleanup()


async def until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_killed_workers_job_runs_again_within_a_lease(
        own_redis: RedisServer, tmp_path: Path, procs: Procs,
        hanging_cpo: tuple[str, list[float]]) -> None:
    url, calls = hanging_cpo
    redis = aioredis.Redis.from_url(own_redis.url)
    try:
        await CredentialsStore(redis).save_connection(Connection(
            id="hang", their_token="t", versions_url=f"{url}/ocpi/versions",
            endpoints=[{"identifier": "locations", "role": "SENDER",
                        "url": f"{url}/ocpi/2.2.1/locations"}],
            roles=[{"role": "CPO", "country_code": "IN", "party_id": "TPC"}]), None)
        await ArqRedis(connection_pool=redis.connection_pool).enqueue_job(
            "sync", "IN-TPC", ["locations"], _job_id="sync-hang", _queue_name=QUEUE)
        env = bridge_env(own_redis.url, tmp_path)
        a = procs.start("worker", env=env, name="worker-a")

        async def running() -> bool:
            return bool(calls)

        await until(running, 30, "worker A to start the sync job")
        ttl = await redis.pttl("arq:in-progress:sync-hang")
        assert 0 < ttl <= LEASE * 1000, ttl  # arq's own mark lasted 610 s
        procs.start("worker", env=env, name="worker-b")
        await asyncio.sleep(LEASE * 2)  # longer than a lease: A's heartbeat keeps the job A's
        assert len(calls) == 1, procs.log("worker-b")[-2000:]
        a.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()

        async def rerun() -> bool:
            return len(calls) >= 2

        await until(rerun, LEASE + 10, "worker B to run the killed worker's job")
        assert calls[1] - t_kill <= LEASE + 3
    finally:
        await redis.aclose()


async def test_worker_outlives_redis_restarts(own_redis: RedisServer, tmp_path: Path,
                                              procs: Procs) -> None:
    worker = procs.start("worker", env=bridge_env(own_redis.url, tmp_path), name="worker")

    async def job_done(job_id: str) -> None:
        redis = aioredis.Redis.from_url(own_redis.url)
        try:
            await ArqRedis(connection_pool=redis.connection_pool).enqueue_job(
                "sync", "IN-NON", ["tariffs"], _job_id=job_id, _queue_name=QUEUE)

            async def done() -> bool:
                return bool(await redis.exists(f"arq:result:{job_id}"))

            await until(done, 30, f"the worker to run {job_id}")
        finally:
            await redis.aclose()

    await job_done("before")
    own_redis.restart()  # SIGTERM: Redis writes its AOF and stops; started again
    await asyncio.sleep(1)
    assert worker.poll() is None, procs.log("worker")[-3000:]
    await job_done("after-restart")
    assert own_redis.proc is not None
    own_redis.proc.kill()  # SIGKILL, and down for a while
    own_redis.proc.wait()
    await asyncio.sleep(3)
    assert worker.poll() is None, procs.log("worker")[-3000:]
    own_redis.start()
    await job_done("after-kill")
    assert worker.poll() is None
    assert "worker.redis_unavailable" in procs.log("worker")


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_refuses_a_redis_that_does_not_persist(tmp_path: Path, procs: Procs,
                                                     command: str) -> None:
    volatile = RedisServer(redis_binary(), tmp_path, appendonly=False).start()
    try:
        env = bridge_env(volatile.url, tmp_path, BRIDGE_PORT=str(free_port()))
        proc = procs.start(command, env=env, name=command)
        assert proc.wait(30) == 2
        out = procs.log(command)
        line = next(ln for ln in out.splitlines() if "refusing to start" in ln)
        assert "does not persist acknowledged writes" in line and "--allow-volatile-redis" in line
        # told so explicitly (tests, benchmarks), it starts
        proc = procs.start(command, "--allow-volatile-redis", env=env, name=f"{command}-2")

        async def warned() -> bool:  # started (slowly on a loaded machine) and said so
            assert proc.poll() is None, procs.log(f"{command}-2")[-2000:]
            return "REDIS_IS_VOLATILE" in procs.log(f"{command}-2")

        await until(warned, 30, f"{command} to start on a volatile Redis")
        await asyncio.sleep(1)
        assert proc.poll() is None, procs.log(f"{command}-2")[-2000:]
    finally:
        volatile.stop()
