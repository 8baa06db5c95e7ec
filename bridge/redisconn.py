"""Connections to Redis: the one factory every process uses (docs/scaling.md).

    data(settings)       the data: one Redis (`redis_url`) or the primary a Sentinel set
                         names (`redis_sentinels`, `redis_sentinel_service`)
    queue(settings)      arq's connection for enqueueing and for the worker: the same
                         Redis as the data (arq needs one primary; jobs are written in
                         the same atomic step as the order change that causes them)
    describe(settings)   where that is, for logs and errors (no password)

The WAIT barrier (`redis_wait_replicas` = n > 0). Replication is asynchronous: a primary
acknowledges a write before its replicas have it, and a failover loses what they did not
get. The bridge acts on a write outside Redis (answers a CPO, ACKs a BAP, sends a
command, moves money) only once it is stored, so with replicas every write command,
script and MULTI is followed on the same connection by `WAIT n timeout` (WAIT counts the
writes of the connection it is sent on); for a single command it is sent in the same
packet, so it costs no extra round trip. Fewer than n acknowledgements raise
`NotReplicated`, a `redis.ConnectionError`: the caller treats it as Redis being away and
tries the step again (every step is idempotent, docs/operations.md).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from arq.connections import ArqRedis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, WatchError

from bridge.config import Settings, parse_nodes

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
    SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBSUB MONITOR SENTINEL CLUSTER
""".split())


class NotReplicated(RedisConnectionError):  # type: ignore[misc]
    """A write was not acknowledged by `redis_wait_replicas` replicas in time."""


async def _wait_reply(conn: Connection, replicas: int) -> None:
    acked = await conn.read_response()
    if int(acked) < replicas:
        raise NotReplicated(f"write acknowledged by {acked} of {replicas} replicas")


class _Barrier:
    """WAIT after writes (the mixin of both client classes below)."""

    wait_replicas: int = 0
    wait_timeout_ms: int = 2000

    def _needs_wait(self, command: Any) -> bool:
        name = command.decode() if isinstance(command, bytes) else str(command)
        return self.wait_replicas > 0 and name.upper() not in NO_WAIT

    async def _send_command_parse_response(self, conn: Connection, command_name: Any,
                                           *args: Any, **options: Any) -> Any:
        if not self._needs_wait(command_name):
            return await super()._send_command_parse_response(  # type: ignore[misc]
                conn, command_name, *args, **options)
        # the command and its WAIT in one packet: one round trip
        await conn.send_packed_command(conn.pack_commands(
            [args, ("WAIT", self.wait_replicas, self.wait_timeout_ms)]))
        try:
            response = await self.parse_response(conn, command_name, **options)  # type: ignore[attr-defined]
        except ResponseError:
            await conn.read_response()  # WAIT's reply: keep the connection in step
            raise
        await _wait_reply(conn, self.wait_replicas)
        return response

    def _barrier_from(self, other: _Barrier) -> None:
        self.wait_replicas = other.wait_replicas
        self.wait_timeout_ms = other.wait_timeout_ms


class _BarrierPipeline(_Barrier, Pipeline):  # type: ignore[misc]
    """A pipeline (MULTI or not) followed by one WAIT when it wrote anything."""

    async def _execute_transaction(self, connection: Connection, commands: Any,
                                   raise_on_error: bool) -> Any:
        try:
            return await super()._execute_transaction(connection, commands, raise_on_error)
        except WatchError:
            raise  # nothing was written
        finally:
            if any(self._needs_wait(args[0]) for args, _ in commands):
                await self._wait(connection)

    async def _execute_pipeline(self, connection: Connection, commands: Any,
                                raise_on_error: bool) -> Any:
        try:
            return await super()._execute_pipeline(connection, commands, raise_on_error)
        finally:
            if any(self._needs_wait(args[0]) for args, _ in commands):
                await self._wait(connection)

    async def _wait(self, connection: Connection) -> None:
        await connection.send_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        await _wait_reply(connection, self.wait_replicas)


def _pipeline(client: Any, transaction: bool, shard_hint: str | None) -> Pipeline:
    pipe = _BarrierPipeline(client.connection_pool, client.response_callbacks, transaction,
                            shard_hint)
    pipe._barrier_from(client)
    return pipe


class BarrierRedis(_Barrier, aioredis.Redis):  # type: ignore[misc]
    """redis-py's client with the WAIT barrier."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if not self.wait_replicas:
            return super().pipeline(transaction, shard_hint)
        return _pipeline(self, transaction, shard_hint)


class BarrierArqRedis(_Barrier, ArqRedis):
    """arq's client with the WAIT barrier (arq's own writes: enqueue, marks, results)."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if not self.wait_replicas:
            return super().pipeline(transaction, shard_hint)
        return _pipeline(self, transaction, shard_hint)


def sentinel_mode(settings: Settings) -> bool:
    return bool(settings.redis_sentinels.strip())


def _sentinel(settings: Settings) -> Sentinel:
    return Sentinel(parse_nodes(settings.redis_sentinels),
                    sentinel_kwargs={"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
                    socket_connect_timeout=5.0)


def _connect(settings: Settings, cls: type[Any], **kwargs: Any) -> Any:
    if sentinel_mode(settings):
        client = _sentinel(settings).master_for(
            settings.redis_sentinel_service, redis_class=cls,
            password=settings.redis_password or None, **kwargs)
    else:
        client = cls.from_url(settings.redis_url, **kwargs)
    client.wait_replicas = settings.redis_wait_replicas
    client.wait_timeout_ms = int(settings.redis_wait_timeout * 1000)
    return client


def data(settings: Settings, **kwargs: Any) -> aioredis.Redis:
    """The data's client (a connection pool; connects on first use)."""
    client: aioredis.Redis = _connect(settings, BarrierRedis, **kwargs)
    return client


def queue(settings: Settings, **kwargs: Any) -> ArqRedis:
    """arq's client for the queues: the data's Redis (see the module docstring)."""
    from bridge.worker import QUEUE

    client: ArqRedis = _connect(settings, BarrierArqRedis, **kwargs)
    client.default_queue_name = QUEUE
    return client


def arq_on(redis: aioredis.Redis) -> ArqRedis:
    """An arq client sharing `redis`'s connections (to enqueue from code holding the data's
    client), with the same barrier."""
    from bridge.worker import QUEUE

    client = BarrierArqRedis(connection_pool=redis.connection_pool, default_queue_name=QUEUE)
    if isinstance(redis, _Barrier):
        client._barrier_from(redis)
    return client


def describe(settings: Settings) -> str:
    """Where the data is, for a log line or an error message (no password)."""
    if sentinel_mode(settings):
        nodes = ",".join(f"{h}:{p}" for h, p in parse_nodes(settings.redis_sentinels))
        return f"the primary of Sentinel service {settings.redis_sentinel_service!r} ({nodes})"
    from bridge.cli import redact_url

    return redact_url(settings.redis_url)
