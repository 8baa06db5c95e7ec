"""Logical shards and their hash tags: how keys that one atomic step touches share a
Redis Cluster slot (docs/scaling.md, "Atomic steps and slots").

The data is cut into `count` logical shards. An entity (an OCPI object, a Beckn
transaction with its order and callbacks, a payment) belongs to the shard of a hash of
its identity (`of`); keys shared by many entities (the change stream, indexes, the
callbacks' wake list) are one per shard. On a Cluster each shard's keys carry its hash
tag (`key`), so every script and MULTI of one entity touches one slot. The tag of shard
k is chosen so that its slot lies in the k-th of `count` equal slot ranges: a cluster
made with M primaries, each given a contiguous range, holds count / M shards on each
(when M divides count).

One Redis (or Sentinel) with one shard keeps the untagged names the bridge always had:
`key(0, "ocpi:events")` is "obb:ocpi:events".

The layout is the process's (set once at start from the settings by
`bridge.redisconn`), like the logging configuration: key names are computed in many
places that get no settings.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property

from redis.crc import key_slot

SLOTS = 16384
PREFIX = "obb:"


def _tag_for(k: int, count: int) -> str:
    """The shortest tag "k" or "k.n" whose slot is in the k-th of `count` slot ranges."""
    lo, hi = k * SLOTS // count, (k + 1) * SLOTS // count
    n = 0
    while True:
        tag = str(k) if n == 0 else f"{k}.{n}"
        if lo <= key_slot(tag.encode()) < hi:
            return tag
        n += 1


@dataclass(frozen=True)
class Layout:
    count: int = 1
    tagged: bool = False
    # The queues (arq) are not on the data's Redis: jobs written with a state change go to
    # the shard's relay stream (bridge/relay.py), not into arq's keys.
    relay: bool = False
    _tags: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("the number of shards must be at least 1")
        if self.count > 1 and not self.tagged:
            raise ValueError("more than one shard needs tagged keys")

    @cached_property
    def tags(self) -> tuple[str, ...]:
        return tuple(_tag_for(k, self.count) for k in range(self.count)) if self.tagged else ()

    def of(self, identity: str) -> int:
        """The shard of an entity, from its identity (stable across processes)."""
        if self.count == 1:
            return 0
        return zlib.crc32(identity.encode()) % self.count

    def key(self, shard: int, rest: str) -> str:
        """`obb:{tag}:rest` (tagged) or `obb:rest`."""
        if not self.tagged:
            return PREFIX + rest
        return f"{PREFIX}{{{self.tags[shard]}}}:{rest}"

    def entity_key(self, identity: str, rest: str) -> str:
        """The key `rest` of the entity `identity`, in that entity's shard."""
        return self.key(self.of(identity), rest)

    def shard_of_key(self, key: str) -> int | None:
        """The shard whose tag `key` carries (0 untagged), None if it carries none."""
        if not self.tagged:
            return 0
        start = key.find("{")
        end = key.find("}", start + 1)
        if start < 0 or end < 0:
            return None
        try:
            return self._tag_index[key[start + 1:end]]
        except KeyError:
            return None

    @cached_property
    def _tag_index(self) -> dict[str, int]:
        return {tag: k for k, tag in enumerate(self.tags)}

    def relay_stream(self, shard: int) -> str:
        """The shard's job relay stream (bridge/relay.py)."""
        return self.key(shard, "jobs")

    @property
    def shards(self) -> range:
        return range(self.count)

    def slot(self, shard: int) -> int:
        slot: int = key_slot(self.key(shard, "x").encode())
        return slot


_current = Layout()


def configure(count: int, tagged: bool, relay: bool = False) -> Layout:
    """Set the process's layout (at start, from the settings)."""
    global _current
    if (count, tagged, relay) != (_current.count, _current.tagged, _current.relay):
        _current = Layout(count, tagged, relay)
    return _current


def current() -> Layout:
    return _current
