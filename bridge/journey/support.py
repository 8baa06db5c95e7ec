"""Beckn `support` -> `on_support`: the eMSP's support contacts (config [journey]).

Requests: rc2 `message {refId, refType}` or the guide's (an order in the transaction).
The answer per profile:
    rc2     `message.support`, a beckn:SupportInfo (name, phone, email, url, channels)
    guide   `message.support {phone, email, url, order_id}`
    lts     `message.support` {orderId, descriptor, channels: schema.org ContactPoints}
An order id is only mentioned to the BAP whose order it is.
"""

from __future__ import annotations

from typing import Any

from bridge.beckn.callbacks import callback_context, enqueue_callback
from bridge.beckn.profiles import GUIDE, LTS, RC2
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.config import Settings
from bridge.journey import lts
from bridge.journey.common import deps_of, find, profile_of
from bridge.journey.rc2 import CTX_CORE
from bridge.store.orders import Order


def _url(s: Settings, order: Order | None) -> str:
    return f"{s.journey_support_url}?order={order.id}" if order else s.journey_support_url


def render_rc2(s: Settings, order: Order | None) -> dict[str, Any]:
    return {"support": {"@context": CTX_CORE, "@type": "beckn:SupportInfo",
                        "name": s.ocpi_business_name, "phone": s.journey_support_phone,
                        "email": s.journey_support_email, "url": _url(s, order),
                        "channels": ["PHONE", "EMAIL", "WEB"]}}


def render_guide(s: Settings, order: Order | None) -> dict[str, Any]:
    support: dict[str, Any] = {"phone": s.journey_support_phone,
                               "email": s.journey_support_email, "url": _url(s, order)}
    if order is not None:
        support["order_id"] = order.id
    return {"support": support}


def render_lts(s: Settings, order: Order | None) -> dict[str, Any]:
    return lts.render_support(s.ocpi_business_name, s.journey_support_phone,
                              s.journey_support_email, _url(s, order), order)


RENDER = {RC2: render_rc2, GUIDE: render_guide,  # on_support's message, per wire profile
          LTS: render_lts}


def render(profile: str, s: Settings, order: Order | None) -> dict[str, Any]:
    return RENDER[profile](s, order)


async def handle_support(req: BecknRequest) -> None:
    deps = deps_of(req)
    s = deps.settings
    order = await find(deps, req)
    profile = profile_of(deps, order) if order else req.profile
    ctx = callback_context(req.context, "support", s, req.received_at)
    await enqueue_callback(deps.redis, s, ctx, message=render(profile, s, order),
                           answers="support", keep=True)


register_action("support", handle_support)
