"""Beckn `support` -> `on_support`: the eMSP's support contacts (config [journey])."""

from __future__ import annotations

from bridge.beckn.callbacks import callback_context, enqueue_callback
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey.common import deps_of


async def handle_support(req: BecknRequest) -> None:
    deps = deps_of(req)
    s = deps.settings
    order = await deps.orders.get(req.context.transaction_id)
    support = {"phone": s.journey_support_phone, "email": s.journey_support_email,
               "url": s.journey_support_url}
    if order is not None:
        support["order_id"] = order.id
        support["url"] = f"{s.journey_support_url}?order={order.id}"
    ctx = callback_context(req.context, "support", s, req.received_at)
    await enqueue_callback(deps.redis, s, ctx, message={"support": support})


register_action("support", handle_support)
