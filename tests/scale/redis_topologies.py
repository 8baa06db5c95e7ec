"""Real Redis topologies on loopback for the scale-out tests (docs/scaling.md): a
Sentinel set (a primary, its replicas, three sentinels) and a Redis Cluster (3 primaries,
3 replicas, made by `redis-cli --cluster create`). Every process is a real
`redis-server` on a free 127.0.0.1 port with its own directory; everything stops when
the fixture ends."""

from __future__ import annotations

import random
import signal
import socket
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


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    rnd = random.Random()
    for _ in range(200):
        port = rnd.randrange(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class Node:
    """One redis-server (data node): AOF on, `min-replicas-to-write` as asked."""

    def __init__(self, binary: str, root: Path, name: str, min_replicas: int = 0,
                 extra: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.extra = list(extra)
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_cluster_port() if "--cluster-enabled" in self.extra else free_port()
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
        args += self.extra
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


class Cluster:
    """A Redis Cluster of `primaries` primaries with one replica each: `redis-server
    --cluster-enabled yes` per node and `redis-cli --cluster create ... --cluster-replicas 1
    --cluster-yes`; node timeout `node_timeout_ms` (a dead primary's replica takes over
    after about that)."""

    def __init__(self, binary: str, root: Path, primaries: int = 3,
                 node_timeout_ms: int = 2000, min_replicas: int = 1) -> None:
        self.binary = binary
        self.cli = str(Path(binary).with_name("redis-cli"))
        self.nodes = [Node(binary, root, f"cnode{i}", min_replicas, extra=(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-replica-validity-factor", "0",
            # a primary that loses its replica keeps its slots; writes wait for the
            # replica only where the bridge asks (the WAIT barrier)
            "--cluster-require-full-coverage", "yes")) for i in range(primaries * 2)]
        self.primaries = primaries

    @property
    def nodes_setting(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:self.primaries])

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        subprocess.run([self.cli, "--cluster", "create",
                        *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        until(self.healthy, 60, "the cluster to be ok on every node")
        return self

    def healthy(self) -> bool:
        """Every running node says cluster_state:ok and knows its replicas are online."""
        for node in self.nodes:
            if node.proc is None:
                continue
            c = node.client()
            try:
                if c.cluster("info").get("cluster_state") != "ok":
                    return False
                if node.role() == "master":
                    info = c.info("replication")
                    if int(info.get("connected_slaves", 0)) < 1:
                        return False
            except redis.RedisError:
                return False
            finally:
                c.close()
        return True

    def primary_of_slot(self, slot: int) -> Node:
        for node in self.nodes:
            if node.proc is None:
                continue
            c = node.client()
            try:
                for lo, hi, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                    if lo <= slot <= hi:
                        port = int(primary[1])
                        return next(n for n in self.nodes if n.port == port)
            except redis.RedisError:
                continue
            finally:
                c.close()
        raise AssertionError(f"no node serves slot {slot}")

    def replica_of(self, primary: Node) -> Node:
        for node in self.nodes:
            if node.proc is None or node is primary:
                continue
            c = node.client()
            try:
                role = c.execute_command("ROLE")
                if role[0] == b"slave" and int(role[2]) == primary.port:
                    return node
            except redis.RedisError:
                continue
            finally:
                c.close()
        raise AssertionError(f"no replica of {primary.port}")

    def read_on_replica(self, slot: int, key: str) -> bytes | None:
        """GET on the replica of the slot's primary (READONLY: no redirection)."""
        replica = self.replica_of(self.primary_of_slot(slot))
        c = replica.client()
        try:
            c.execute_command("READONLY")
            value: bytes | None = c.get(key)
            return value
        finally:
            c.close()

    def wait_new_primary(self, slot: int, old: Node, seconds: float = 60) -> Node:
        def moved() -> bool:
            try:
                node = self.primary_of_slot(slot)
                return node is not old and node.role() == "master"
            except (AssertionError, redis.RedisError):
                return False
        until(moved, seconds, f"a new primary for slot {slot}")
        return self.primary_of_slot(slot)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
