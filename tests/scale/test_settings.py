"""Settings of where Redis is (docs/scaling.md): one Redis by default, a Sentinel set by
`redis_sentinels`; errors in the protocol of a configuration file, not tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bridge import redisconn
from bridge.config import ConfigError, Settings, load_settings, parse_nodes
from tests.conftest import ROOT, free_port


def test_node_lists() -> None:
    assert parse_nodes("") == []
    assert parse_nodes(" 10.0.0.1:26379 , sentinel-2:26380,[::1]:26381") == [
        ("10.0.0.1", 26379), ("sentinel-2", 26380), ("::1", 26381)]
    for bad in ("10.0.0.1", "host:port", ":26379", "h:0", "h:70000"):
        with pytest.raises(ValueError, match="host:port"):
            parse_nodes(bad)


def test_sentinels_from_the_environment() -> None:
    s = load_settings({"BRIDGE_REDIS_SENTINELS": "127.0.0.1:26379,127.0.0.1:26380",
                       "BRIDGE_REDIS_SENTINEL_SERVICE": "emsp",
                       "BRIDGE_REDIS_WAIT_REPLICAS": "1"}, ROOT / "config" / "bridge.toml")
    assert redisconn.sentinel_mode(s) and s.redis_wait_replicas == 1
    assert redisconn.describe(s) == ("the primary of Sentinel service 'emsp' "
                                     "(127.0.0.1:26379,127.0.0.1:26380)")
    with pytest.raises(ConfigError, match="redis_sentinels"):
        load_settings({"BRIDGE_REDIS_SENTINELS": "127.0.0.1"}, ROOT / "config" / "bridge.toml")


def test_one_redis_is_the_default() -> None:
    s = Settings(redis_url="redis://:secret@127.0.0.1:6390/0")
    assert not redisconn.sentinel_mode(s) and s.redis_wait_replicas == 0
    assert "secret" not in redisconn.describe(s)


def test_no_sentinel_answers_is_one_line_and_exit_1() -> None:
    env = {**os.environ, "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
           "BRIDGE_REDIS_SENTINELS": f"127.0.0.1:{free_port()}", "BRIDGE_LOG_FORMAT": "json"}
    out = subprocess.run([sys.executable, "-m", "bridge.cli", "cpo", "list"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out
    assert "cannot reach Redis at the primary of Sentinel service 'obb'" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_barrier_waits_after_writes_only_whatever_the_name_looks_like() -> None:
    """redis-py sends some commands with a two-word name in one argument ("CLUSTER
    SLOTS", as its Cluster client learns the slots, from a replica too): no WAIT may
    follow them (WAIT on a replica is an error, and the client then never got its slot
    map again after a failover). A write gets its WAIT."""
    from redis.asyncio.connection import Connection

    cls = redisconn._connection_class(Connection, Settings(redis_wait_replicas=1))
    conn = cls()
    for read in ("CLUSTER SLOTS", "CLUSTER SHARDS", "CONFIG GET", "GET"):
        assert b"WAIT" not in b"".join(conn.pack_command(read, *(["x"] if read == "GET" else []))), read
    assert b"WAIT" in b"".join(conn.pack_command("SET", "k", "v"))
