"""The catalog consumer notices when the change stream was trimmed past what it read."""

from __future__ import annotations

from bridge.beckn.catalog_consumer import ensure_group, fell_behind
from bridge.store import beckn_keys as bk
from bridge.store import keys


class CountingStore:
    def __init__(self) -> None:
        self.rebuilds = 0

    async def rebuild_all(self, shard: int | None = None) -> int:
        self.rebuilds += 1
        return 0


async def test_rebuild_when_the_stream_was_trimmed_unread(redis_client) -> None:
    store = CountingStore()
    assert await ensure_group(redis_client, store) is True  # created: first rebuild
    await redis_client.xadd(keys.EVENTS, {"module": "locations"})
    assert not await fell_behind(redis_client)  # unread, but still in the stream
    assert await ensure_group(redis_client, store) is False
    for _ in range(5):
        await redis_client.xadd(keys.EVENTS, {"module": "locations"})
    await redis_client.xtrim(keys.EVENTS, maxlen=2, approximate=False)
    assert await fell_behind(redis_client)
    assert await ensure_group(redis_client, store) is True
    assert store.rebuilds == 2
    # after the rebuild the group reads from the end: no longer behind
    assert not await fell_behind(redis_client)
    groups = await redis_client.xinfo_groups(keys.EVENTS)
    assert any(g["name"] in (bk.CATALOG_GROUP, bk.CATALOG_GROUP.encode()) for g in groups)
