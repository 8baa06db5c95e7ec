"""Real Redis topologies on loopback for the scale-out tests (docs/scaling.md): a
Sentinel set (a primary, its replicas, three sentinels). Every process is a real
`redis-server` on a free 127.0.0.1 port with its own directory; everything stops when
the fixture ends."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.conftest import free_port


def _wait_ping(port: int, proc: subprocess.Popen[bytes], seconds: float = 10) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
    finally:
        client.close()


def until(check, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def wait_replicas_online(primary: Node, n: int, seconds: float = 30) -> None:
    def ok() -> bool:
        c = primary.client()
        try:
            info = c.info("replication")
            online = [v for k, v in info.items()
                      if k.startswith("slave") and isinstance(v, dict)
                      and v.get("state") == "online"]
            return len(online) >= n
        except redis.RedisError:
            return False
        finally:
            c.close()
    until(ok, seconds, f"{n} replicas online at port {primary.port}")


class Node:
    """One redis-server (data node): AOF on, `min-replicas-to-write` as asked."""

    def __init__(self, binary: str, root: Path, name: str, min_replicas: int = 0) -> None:
        self.binary = binary
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.min_replicas = min_replicas
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, replica_of: int | None = None) -> Node:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--appendonly", "yes",
                "--appendfsync", "everysec", "--protected-mode", "no", "--daemonize", "no",
                "--min-replicas-to-write", str(self.min_replicas),
                "--min-replicas-max-lag", "10", "--repl-diskless-sync", "yes",
                "--repl-diskless-sync-delay", "0"]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        with open(self.dir / "redis.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        _wait_ping(self.port, self.proc)
        return self

    def kill(self) -> None:
        """kill -9: what the machine's loss looks like to everyone else."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: a node that is there but does not answer (a stalled machine)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def role(self) -> str:
        c = self.client()
        try:
            return str(c.execute_command("ROLE")[0].decode())
        finally:
            c.close()


class SentinelSet:
    """A primary, `replicas` replicas and three sentinels watching service `service`
    (quorum 2, down after `down_after_ms`)."""

    def __init__(self, binary: str, root: Path, service: str = "obb", replicas: int = 1,
                 down_after_ms: int = 1000, min_replicas: int = 1) -> None:
        self.binary = binary
        self.root = root
        self.service = service
        self.down_after_ms = down_after_ms
        self.nodes = [Node(binary, root, f"node{i}", min_replicas) for i in range(replicas + 1)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def sentinels_setting(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def start(self) -> SentinelSet:
        primary = self.nodes[0].start()
        for node in self.nodes[1:]:
            node.start(replica_of=primary.port)
        wait_replicas_online(primary, len(self.nodes) - 1)
        for i, port in enumerate(self.sentinel_ports):
            d = self.root / f"sentinel{i}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"  # sentinel rewrites its file: one each, writable
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {d}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} 10000\n"
                f"sentinel parallel-syncs {self.service} 1\n")
            with open(d / "sentinel.log", "ab") as log:
                proc = subprocess.Popen([self.binary, str(conf), "--sentinel"], stdout=log,
                                        stderr=subprocess.STDOUT)
            self.sentinels.append(proc)
            _wait_ping(port, proc)
        # every sentinel has found the replicas and the other sentinels
        until(lambda: all(self._sentinel_sees_all(p) for p in self.sentinel_ports), 30,
                    "sentinels to discover the replicas and each other")
        return self

    def _sentinel_sees_all(self, port: int) -> bool:
        c = redis.Redis(port=port, socket_timeout=2)
        try:
            m = c.execute_command("SENTINEL", "MASTER", self.service)
            info = dict(zip(m[::2], m[1::2], strict=True))
            return (int(info[b"num-slaves"]) >= len(self.nodes) - 1
                    and int(info[b"num-other-sentinels"]) >= 2)
        except redis.RedisError:
            return False
        finally:
            c.close()


    def primary_port(self) -> int:
        """The primary as the sentinels name it now."""
        c = redis.Redis(port=self.sentinel_ports[0], socket_timeout=2)
        try:
            host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            return int(port)
        finally:
            c.close()

    def primary(self) -> Node:
        port = self.primary_port()
        return next(n for n in self.nodes if n.port == port)

    def wait_new_primary(self, old_port: int, seconds: float = 60) -> Node:
        """Until the sentinels name another primary and it answers as one."""
        def moved() -> bool:
            try:
                port = self.primary_port()
            except redis.RedisError:
                return False
            if port == old_port:
                return False
            node = next(n for n in self.nodes if n.port == port)
            try:
                return node.role() == "master"
            except redis.RedisError:
                return False
        until(moved, seconds, f"a new primary instead of port {old_port}")
        return self.primary()

    def failover(self) -> None:
        """SENTINEL FAILOVER: the primary hands over to a replica (no agreement needed)."""
        c = redis.Redis(port=self.sentinel_ports[0], socket_timeout=5)
        try:
            c.execute_command("SENTINEL", "FAILOVER", self.service)
        finally:
            c.close()

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.sentinels:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for node in self.nodes:
            node.stop()
