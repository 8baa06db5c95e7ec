"""Beckn `status` -> `on_status`: the order as it is now (an order id the request names
must be this transaction's: `load` checks it)."""

from __future__ import annotations

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey.common import NotApplicableNow, deps_of, load, reply


async def handle_status(req: BecknRequest) -> None:
    deps = deps_of(req)
    order = await load(deps, req, NotApplicableNow)
    await reply(deps, req, order, req.received_at)


register_action("status", handle_status)
