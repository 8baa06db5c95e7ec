"""Connections to Redis: the one factory every process uses (docs/scaling.md).

    data(settings)       the data: one Redis (`redis_url`), the primary a Sentinel set
                         names (`redis_sentinels`), or a Redis Cluster
                         (`redis_cluster_nodes`); also sets the process's key layout
                         (bridge/store/shards.py)
    queue(settings)      arq's client: the data's Redis, or the queues' own single
                         primary (`queue_redis_url` / `queue_redis_sentinels`), which a
                         Cluster needs (arq needs one primary)
    arq_on(redis)        an arq client on the connections of a data client
    transaction(r, key)  a MULTI pipeline on the node that holds `key` (a Cluster
                         pipeline has no transactions)
    describe(settings)   where the data is, for logs and errors (no password)

The WAIT barrier (`redis_wait_replicas` = n > 0). Replication is asynchronous: a primary
acknowledges a write before its replicas have it, and a failover loses what they did not
get. The bridge acts on a write outside Redis (answers a CPO, ACKs a BAP, sends a
command, moves money) only once it is stored, so with replicas every write command,
script and pipeline is followed on the same connection by `WAIT n timeout` (WAIT counts
the writes of the connection it is sent on), in the same packet: no extra round trip.
It is done in the connection class (`_Barrier`), so every client (single, Sentinel,
Cluster, arq's) and every pipeline gets it. Fewer than n acknowledgements raise
`NotReplicated`, a `RedisError`: the caller treats it as Redis being away and tries the
step again (every step is idempotent, docs/operations.md).
"""

from __future__ import annotations

import collections
import contextlib
import random
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any

import redis.asyncio as aioredis
from arq.connections import ArqRedis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from bridge.config import Settings, parse_nodes
from bridge.store import shards

# Commands after which no WAIT is needed: they write nothing (or are connection state).
NO_WAIT = frozenset("""
    GET MGET HGET HMGET HGETALL HEXISTS HLEN HKEYS HVALS HSCAN STRLEN GETRANGE EXISTS TYPE
    TTL PTTL SCAN KEYS DBSIZE RANDOMKEY OBJECT MEMORY DUMP
    ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZSCORE
    ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK ZREVRANK ZSCAN SMEMBERS SISMEMBER SMISMEMBER SCARD
    SINTER SUNION SDIFF SSCAN SRANDMEMBER LLEN LINDEX LRANGE LPOS GEOSEARCH GEOPOS GEODIST
    GEOHASH GEORADIUS_RO GEORADIUSBYMEMBER_RO XRANGE XREVRANGE XREAD XLEN XINFO XPENDING
    EVALSHA_RO EVAL_RO FCALL_RO PFCOUNT BITCOUNT GETBIT
    PING ECHO INFO CONFIG CLIENT COMMAND TIME ROLE LASTSAVE SLOWLOG LATENCY SCRIPT
    WATCH UNWATCH MULTI DISCARD WAIT WAITAOF SELECT AUTH HELLO READONLY READWRITE QUIT RESET
    ASKING SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBSUB MONITOR SENTINEL CLUSTER
    PUBLISH
""".split())


class NotReplicated(RedisError):  # type: ignore[misc]
    """A write was not acknowledged by `redis_wait_replicas` replicas in time. Not a
    ConnectionError: the connection is fine and in step, and redis-py would turn a
    ConnectionError during a WATCHed transaction into a WatchError (the caller would then
    read its own unreplicated write back as done)."""


def _name(command: Any) -> str:
    """The command's first word: redis-py passes some names as one argument of two words
    ("CLUSTER SLOTS", which its Cluster client sends to replicas too)."""
    text = (command.decode() if isinstance(command, bytes) else str(command)).upper()
    return text.split(" ", 1)[0]


class _Barrier:
    """A connection that follows every write with WAIT (see the module docstring):
    `pack_command(s)` appends the WAIT and notes after how many replies its reply comes;
    `read_response` reads and checks it there. A reply that is an error still counts, so
    the connection stays in step."""

    wait_replicas: int = 0
    wait_timeout_ms: int = 2000

    def _waits(self) -> collections.deque[int]:
        q: collections.deque[int] | None = getattr(self, "_barrier_q", None)
        if q is None:
            q = collections.deque()
            self._barrier_q = q
        return q

    _in_pack_commands = False

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        if (self.wait_replicas and not self._in_pack_commands and args
                and _name(args[0]) not in NO_WAIT):
            packed += super().pack_command(  # type: ignore[misc]
                "WAIT", self.wait_replicas, self.wait_timeout_ms)
            self._staged().append(1)
        return packed

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        cmds = [tuple(c) for c in commands]
        self._in_pack_commands = True  # redis-py packs each with pack_command: no WAIT each
        try:
            packed: list[bytes] = super().pack_commands(cmds)  # type: ignore[misc]
        finally:
            self._in_pack_commands = False
        if self.wait_replicas and any(c and _name(c[0]) not in NO_WAIT for c in cmds):
            packed += super().pack_command(  # type: ignore[misc]
                "WAIT", self.wait_replicas, self.wait_timeout_ms)
            self._staged().append(len(cmds))
        return packed

    def _staged(self) -> list[int]:
        staged: list[int] | None = getattr(self, "_barrier_staged", None)
        if staged is None:
            staged = []
            self._barrier_staged = staged
        return staged

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        # A connection connects when it first sends, and reads the replies of its own
        # hand-shake then: the packed command's WAIT counts only once it is sent.
        staged = list(self._staged())
        self._staged().clear()
        await super().send_packed_command(command, check_health)  # type: ignore[misc]
        self._waits().extend(staged)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ResponseError:
            await self._replied()
            raise
        await self._replied()
        return response

    async def _replied(self) -> None:
        q = self._waits()
        if not q:
            return
        q[0] -= 1
        if q[0] > 0:
            return
        q.popleft()
        acked = await super().read_response()  # type: ignore[misc]
        if int(acked) < self.wait_replicas:
            raise NotReplicated(f"write acknowledged by {acked} of {self.wait_replicas} "
                                "replicas")

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._waits().clear()  # replies in flight are gone with the socket
        self._staged().clear()
        await super().disconnect(*args, **kwargs)  # type: ignore[misc]


def _connection_class(base: type[Connection], settings: Settings) -> type[Connection]:
    if not settings.redis_wait_replicas:
        return base
    return type(f"Barrier{base.__name__}", (_Barrier, base), {
        "wait_replicas": settings.redis_wait_replicas,
        "wait_timeout_ms": int(settings.redis_wait_timeout * 1000)})


def cluster_mode(settings: Settings) -> bool:
    return bool(settings.redis_cluster_nodes.strip())


def sentinel_mode(settings: Settings) -> bool:
    return bool(settings.redis_sentinels.strip())


def shard_count(settings: Settings) -> int:
    """`redis_shards`, or its default: 1 on one Redis, `CLUSTER_SHARDS` on a Cluster."""
    if settings.redis_shards:
        return settings.redis_shards
    return CLUSTER_SHARDS if cluster_mode(settings) else 1


CLUSTER_SHARDS = 12


def configure_layout(settings: Settings) -> shards.Layout:
    count = shard_count(settings)
    return shards.configure(count, tagged=cluster_mode(settings) or count > 1,
                            relay=separate_queue(settings))


def _sentinel(sentinels: str) -> Sentinel:
    return Sentinel(parse_nodes(sentinels),
                    sentinel_kwargs={"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
                    socket_connect_timeout=5.0)


def _single_or_sentinel(settings: Settings, url: str, sentinels: str, service: str,
                        cls: type[Any], **kwargs: Any) -> Any:
    if sentinels.strip():
        return _sentinel(sentinels).master_for(
            service, redis_class=cls, password=settings.redis_password or None,
            connection_class=_connection_class(SentinelManagedConnection, settings), **kwargs)
    pool = aioredis.ConnectionPool.from_url(
        url, connection_class=_connection_class(Connection, settings), **kwargs)
    return cls.from_pool(pool)


def data(settings: Settings, **kwargs: Any) -> Any:
    """The data's client (connects on first use); sets the process's key layout."""
    configure_layout(settings)
    if cluster_mode(settings):
        kwargs.pop("max_connections", None)  # per node in a Cluster: its default
        client = _Cluster(
            startup_nodes=[ClusterNode(h, p) for h, p in parse_nodes(settings.redis_cluster_nodes)],
            password=settings.redis_password or None,
            # A connection's own retries are off (a lost reply may hide an applied write);
            # a command that meets a failover (connection refused, CLUSTERDOWN) is tried
            # once more on the new topology, as the caller's own retry would (every step
            # is idempotent: docs/operations.md). Redirections (MOVED / ASK) are followed.
            # (One attempt is also the least a Cluster pipeline runs with.)
            cluster_error_retry_attempts=1, connection_error_retry_attempts=0, **kwargs)
        # the nodes it discovers connect with the barrier
        client.connection_kwargs["connection_class"] = _connection_class(Connection, settings)
        client.seeds = parse_nodes(settings.redis_cluster_nodes)
        return client
    return _single_or_sentinel(settings, settings.redis_url, settings.redis_sentinels,
                               settings.redis_sentinel_service, aioredis.Redis, **kwargs)


class _Cluster(RedisCluster):  # type: ignore[misc]
    """redis-py (5.3) drops a node from its start-up nodes on every connection error and
    learns the slots again only from those left: after a failover's errors the list can
    be empty, and the client never reaches the cluster again ("at least one reachable
    node: None"). Before each discovery the configured nodes are put back."""

    seeds: list[tuple[str, int]] = []

    async def initialize(self) -> Any:
        manager = self.nodes_manager
        for host, port in self.seeds:
            if f"{host}:{port}" not in manager.startup_nodes:
                manager.startup_nodes[f"{host}:{port}"] = ClusterNode(
                    host, port, **manager.connection_kwargs)
        return await super().initialize()


def _queue_settings(settings: Settings) -> Settings:
    """The settings the queue's connections use: its own WAIT barrier."""
    return settings.model_copy(update={"redis_wait_replicas": settings.queue_redis_wait_replicas})


def separate_queue(settings: Settings) -> bool:
    """The queues are not on the data's Redis (so jobs travel through the relay)."""
    return bool(settings.queue_redis_url.strip() or settings.queue_redis_sentinels.strip())


def queue(settings: Settings, **kwargs: Any) -> ArqRedis:
    """arq's client for the queues (see the module docstring)."""
    from bridge.worker import QUEUE

    if separate_queue(settings):
        client: ArqRedis = _single_or_sentinel(
            _queue_settings(settings), settings.queue_redis_url, settings.queue_redis_sentinels,
            settings.queue_redis_sentinel_service, ArqRedis, **kwargs)
    else:
        client = _single_or_sentinel(settings, settings.redis_url, settings.redis_sentinels,
                                     settings.redis_sentinel_service, ArqRedis, **kwargs)
    client.default_queue_name = QUEUE
    return client


def arq_on(redis: aioredis.Redis) -> ArqRedis:
    """An arq client sharing `redis`'s connections (to enqueue from code holding the data's
    client when the queues are there)."""
    from bridge.worker import QUEUE

    return ArqRedis(connection_pool=redis.connection_pool, default_queue_name=QUEUE)


# One plain client per Cluster node for transactions (redis-py's Cluster pipelines have
# none): keyed by the Cluster client and the node's address.
_NODE_CLIENTS: weakref.WeakKeyDictionary[Any, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary())


def _node_client(redis: RedisCluster, node: Any) -> aioredis.Redis:
    clients = _NODE_CLIENTS.setdefault(redis, {})
    client = clients.get(node.name)
    if client is None:
        client = clients[node.name] = aioredis.Redis(
            connection_pool=aioredis.ConnectionPool(
                host=node.host, port=node.port,
                password=redis.connection_kwargs.get("password"),
                connection_class=redis.connection_kwargs["connection_class"],
                max_connections=256))
    return client


async def pubsub(redis: Any) -> Any:
    """A pub/sub object: the client's own, or on a Cluster one on a primary (a message
    published anywhere in a Cluster reaches every node's subscribers)."""
    if not isinstance(redis, RedisCluster):
        return redis.pubsub()
    if redis._initialize:
        await redis.initialize()
    nodes = redis.get_primaries()
    if not nodes:
        raise RedisConnectionError("no primary in the cluster")
    return _node_client(redis, random.choice(nodes)).pubsub()


async def publish(redis: Any, channel: str, message: str) -> None:
    """PUBLISH (on a Cluster, on any node: it reaches every node's subscribers)."""
    if isinstance(redis, RedisCluster):
        if redis._initialize:
            await redis.initialize()
        await redis.execute_command("PUBLISH", channel, message,
                                    target_nodes=random.choice(redis.get_primaries()))
    else:
        await redis.publish(channel, message)


@contextlib.asynccontextmanager
async def transaction(redis: Any, key: str) -> AsyncIterator[Pipeline]:
    """`async with transaction(redis, key) as pipe`: a MULTI pipeline (WATCH allowed) for
    keys of `key`'s slot: the client's own, or on a Cluster one on the node that holds the
    slot now. A slot that moves meanwhile makes the transaction fail (MOVED): the caller
    tries again, as after any Redis error, and the next try finds the new node."""
    if not isinstance(redis, RedisCluster):
        async with redis.pipeline(transaction=True) as pipe:
            yield pipe
        return
    if redis._initialize:
        await redis.initialize()
    node = redis.get_node_from_key(key)
    if node is None:
        raise RedisConnectionError(f"no node holds the slot of {key!r} (cluster not ready)")
    async with _node_client(redis, node).pipeline(transaction=True) as pipe:
        yield pipe


def describe(settings: Settings) -> str:
    """Where the data is, for a log line or an error message (no password)."""
    if cluster_mode(settings):
        return f"the Redis Cluster at {settings.redis_cluster_nodes}"
    if sentinel_mode(settings):
        nodes = ",".join(f"{h}:{p}" for h, p in parse_nodes(settings.redis_sentinels))
        return f"the primary of Sentinel service {settings.redis_sentinel_service!r} ({nodes})"
    from bridge.cli import redact_url

    return redact_url(settings.redis_url)
