"""Coalescing session updates in a batch of OCPI change events (pure)."""

from __future__ import annotations

import pytest

from bridge.journey.events import coalesce


def s(sid: str, n: int) -> dict[str, str]:
    return {"module": "sessions", "cc": "IN", "pid": "TPC", "id": sid, "n": str(n)}


def cdr(cid: str) -> dict[str, str]:
    return {"module": "cdrs", "cc": "IN", "pid": "TPC", "id": cid, "op": "put"}


@pytest.mark.parametrize("batch, kept", [
    ([], []),
    ([s("A", 1)], [s("A", 1)]),
    ([s("A", 1), s("A", 2), s("A", 3)], [s("A", 3)]),
    ([s("A", 1), s("B", 1), s("A", 2)], [s("B", 1), s("A", 2)]),
    ([s("A", 1), cdr("C1"), s("A", 2)], [cdr("C1"), s("A", 2)]),
    ([cdr("C1"), cdr("C1")], [cdr("C1"), cdr("C1")]),  # only sessions are coalesced
])
def test_coalesce(batch, kept) -> None:
    assert coalesce(batch) == kept
