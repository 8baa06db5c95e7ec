"""A Beckn request is taken once per (bap_id, action, message_id), and its record is
written together with the work it queues.

    receive (transport)       one Lua call: the record exists? same digest: a duplicate,
                              else a reuse of the message id; none: take a short lock
                              (a copy still being handled) and go
    the action's handler      queues its work; the first queued step (an answer callback,
                              `bridge.beckn.callbacks.enqueue_callback`, or a worker job,
                              `bridge.journey.queue.enqueue`) writes the record in the
                              same MULTI (`take`)
    after the handler         the record, if no step wrote it (nothing was queued); the
                              lock goes with the record (or alone, if the handler failed)

So a serve killed between the check and the work leaves no record: the BAP's retry is
handled, not taken for a duplicate (the lock expires after `LOCK_MS`). A duplicate (the
same body, `context.timestamp` aside: a BAP's retry may stamp it anew) gets its
original answer again; the same key with another body is refused (NACK 30020).
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.store import beckn_keys

LOCK_MS = 30_000  # longer than any handler; a killed serve's lock frees the retry after it


@dataclass
class Intake:
    """The request being handled in this task, and whether its record is written."""

    bap_id: str
    action: str
    message_id: str
    digest: str
    ttl: int
    written: bool = False
    txn: str = ""  # its transaction: the records are in its shard (docs/scaling.md)

    @property
    def key(self) -> str:
        return beckn_keys.seen(self.bap_id, self.action, self.message_id, self.txn)

    @property
    def lock(self) -> str:
        return beckn_keys.seen_lock(self.bap_id, self.action, self.message_id, self.txn)

    def record(self, cb_id: str | None = None) -> dict[str, str]:
        return {"d": self.digest, **({"cb": cb_id} if cb_id else {})}


CURRENT: ContextVar[Intake | None] = ContextVar("beckn_intake", default=None)


def digest(body: dict[str, Any]) -> str:
    """The request's identity for duplicate checks: its body, keys sorted, without
    `context.timestamp`."""
    ctx = body.get("context")
    if isinstance(ctx, dict) and "timestamp" in ctx:
        body = {**body, "context": {k: v for k, v in ctx.items() if k != "timestamp"}}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def take(pipe: Any, bap_id: str, action: str, message_id: str, cb_id: str | None = None,
         ttl: int = 86400, txn: str = "") -> None:
    """Add to `pipe` (a MULTI queuing work) the record of the request this work is for:
    the request being handled writes its digest (once); a later answer (e.g. on_update
    ACTIVE to a start-charging update) notes its callback id on the record."""
    intake = CURRENT.get()
    if (intake is not None and not intake.written and intake.bap_id == bap_id
            and intake.action == action and intake.message_id == message_id):
        pipe.hset(intake.key, mapping=intake.record(cb_id))
        pipe.expire(intake.key, intake.ttl)
        # the in-flight lock goes in the same step (no round trip of its own)
        if hasattr(pipe, "call"):
            pipe.call("DEL", intake.lock)
        else:
            pipe.delete(intake.lock)
        # Written with an order's change (bridge/store/effects.py): only once that step is
        # made, which may be tried again (the effects are then built again).
        later = getattr(pipe, "on_commit", None)
        if later is not None:
            later(lambda: setattr(intake, "written", True))
        else:
            intake.written = True
    elif cb_id is not None:
        key = beckn_keys.seen(bap_id, action, message_id, txn)
        pipe.hset(key, "cb", cb_id)
        pipe.expire(key, ttl)


def pending() -> Intake | None:
    """The current request if its record is still to be written."""
    intake = CURRENT.get()
    return intake if intake is not None and not intake.written else None
