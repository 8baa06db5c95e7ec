"""Fixtures of the scale-out tests: real Redis topologies on loopback
(tests/scale/redis_topologies.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import redis_binary
from tests.scale.redis_topologies import Cluster, Node, SentinelSet, wait_replicas_online


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    """A primary, one replica, three sentinels (service "obb"), min-replicas-to-write 1."""
    s = SentinelSet(redis_binary(), tmp_path).start()
    yield s
    s.stop()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """A primary and its replica, no sentinels."""
    primary = Node(redis_binary(), tmp_path, "primary").start()
    replica = Node(redis_binary(), tmp_path, "replica").start(replica_of=primary.port)
    wait_replicas_online(primary, 1)
    yield primary, replica
    replica.stop()
    primary.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A Redis Cluster: 3 primaries, 3 replicas (redis-cli --cluster create)."""
    c = Cluster(redis_binary(), tmp_path).start()
    yield c
    c.stop()


@pytest.fixture
def queue_redis(tmp_path: Path) -> Iterator[Node]:
    """A single Redis for arq's queues beside a Cluster."""
    node = Node(redis_binary(), tmp_path, "queue").start()
    yield node
    node.stop()
