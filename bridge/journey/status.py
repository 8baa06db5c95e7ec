"""Beckn `status` -> `on_status`: the order as it is now."""

from __future__ import annotations

from bridge.beckn.errors import ItemNotFound
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey import wire
from bridge.journey.common import NotApplicableNow, deps_of, load, reply


async def handle_status(req: BecknRequest) -> None:
    deps = deps_of(req)
    order = await load(deps, req, NotApplicableNow)
    ref = wire.order_ref(req.body)
    if ref and ref != order.id:
        raise ItemNotFound(f"order {ref} is not the order of this transaction", {"order": ref})
    await reply(deps, req, order, req.received_at)


register_action("status", handle_status)
