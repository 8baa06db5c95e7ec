"""What every order flow shares: its dependencies, errors, callbacks and order lookups.

The journey package is the mapping layer between the two protocols
(DESIGN principle 2): it imports `bridge.ocpi` and `bridge.beckn`; neither of
them imports it.

Beckn error codes used by the order flows (all NACK with HTTP 400 unless said):

    30004  item not found (unknown charger, connector or tariff)
    40001  action not applicable in the order's current state (e.g. start before confirm)
    40003  quote unavailable (no tariff, or the budget does not cover a session)
    40004  payment pending or not supported (confirm before the payment)
    40006  fulfilment unavailable (charger not available, slot taken)
    40010  invalid or expired authorization (wrong start OTP, too many tries)
    50001  cancellation not possible (charging already started, order finished)
    50002  update not possible in this state
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis
import structlog

from bridge.beckn.callbacks import callback_context, callback_effects
from bridge.beckn.errors import BecknError, OrderNotFound
from bridge.beckn.models import Context
from bridge.beckn.profiles import family, profile_for
from bridge.beckn.transport import BecknRequest
from bridge.config import Settings
from bridge.journey.wire import Edge, order_ref, render_message
from bridge.mapping.policy import PricingPolicy, load_policy
from bridge.notify import Outbox, message_effect
from bridge.ocpi.deps import OcpiDeps
from bridge.orders import Event, TransitionError, transition
from bridge.payments import SandboxGateway
from bridge.store.beckn_keys import txn_shard
from bridge.store.credentials import CredentialsStore
from bridge.store.effects import Effects
from bridge.store.ocpi_store import OcpiStore
from bridge.store.orders import Order, OrderStore

log = structlog.get_logger("bridge.journey")


class JourneyError(BecknError):
    pass


class NotApplicableNow(JourneyError):
    code = "40001"
    default_message = "not applicable in the order's current state"


class QuoteUnavailable(JourneyError):
    code = "40003"
    default_message = "quote unavailable"


class PaymentPending(JourneyError):
    code = "40004"
    default_message = "payment pending"


class Unavailable(JourneyError):
    code = "40006"
    default_message = "charger not available"


class BadAuthorization(JourneyError):
    code = "40010"
    default_message = "invalid or expired authorization"


class CancelNotPossible(JourneyError):
    code = "50001"
    default_message = "cancellation not possible"


class UpdateNotPossible(JourneyError):
    code = "50002"
    default_message = "update not possible"


@dataclass
class JourneyDeps:
    settings: Settings
    redis: aioredis.Redis
    ocpi: OcpiDeps
    orders: OrderStore
    policy: PricingPolicy
    gateway: SandboxGateway
    outbox: Outbox

    @classmethod
    def build(cls, settings: Settings, redis: aioredis.Redis) -> JourneyDeps:
        ocpi = OcpiDeps(settings=settings, store=OcpiStore(redis, settings.ocpi_events_maxlen),
                        creds=CredentialsStore(redis))
        return cls(settings=settings, redis=redis, ocpi=ocpi, orders=OrderStore(redis),
                   policy=_policy(settings.journey_pricing_policy),
                   gateway=SandboxGateway(redis, settings.public_url), outbox=Outbox(redis))

    _signer: Any = None

    def signer(self) -> Any:
        """Our Beckn signer of what we send the BAP directly (the key ring's key of the
        moment; behind an adapter the configured key, or None), made once."""
        if self._signer is None:
            from bridge.beckn.callbacks import direct_signer

            self._signer = direct_signer(self.settings) or False
        return self._signer or None

    async def close(self) -> None:
        await self.ocpi.close()


@lru_cache(maxsize=4)
def _policy(path: str) -> PricingPolicy:
    return load_policy(path)


def deps_of(req: BecknRequest) -> JourneyDeps:
    deps = req.services.extra.get("journey")
    if deps is None:
        deps = JourneyDeps.build(req.services.settings, req.services.redis)
        req.services.extra["journey"] = deps
    assert isinstance(deps, JourneyDeps)
    return deps


def apply(order: Order, event: Event, now: datetime, error: type[JourneyError],
          **note: Any) -> Order:
    """Move `order` by `event`, or raise the action's Beckn error (nothing changes)."""
    try:
        new_state = transition(order.state, event)
    except TransitionError as exc:
        raise error(str(exc), {"state": order.state.value, "event": event.value}) from exc
    order.history.append({"at": now.isoformat(), "event": event.value,
                          "from": order.state.value, "to": new_state.value, **note})
    order.state = new_state
    order.updated = now
    return order


def new_order_id() -> str:
    return uuid.uuid4().hex


def new_otp(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def otp_hash(order_id: str, otp: str) -> str:
    # Keyed by the order id so equal codes of two orders do not hash alike.
    return hashlib.sha256(f"{order_id}:{otp}".encode()).hexdigest()


def otp_ok(order: Order, otp: str | None) -> bool:
    return bool(otp and order.otp_hash and hmac.compare_digest(order.otp_hash,
                                                                otp_hash(order.id, otp)))


def new_message_id() -> str:
    """A message id the bridge makes (unsolicited callbacks): a uuid, as the Context
    schema's `format: uuid` asks."""
    return str(uuid.uuid4())


def edge(settings: Settings) -> Edge:
    return Edge(bpp_id=settings.beckn_subscriber_id, public_url=settings.public_url,
                refund_within=settings.journey_refund_within,
                track_interval=settings.journey_track_interval,
                car_max_kw=settings.journey_car_max_kw)


def profile_of(deps: JourneyDeps, order: Order) -> str:
    """The order's wire profile: the one it was created with (older orders: the BAP's)."""
    return order.profile or profile_for(deps.settings, order.bap_id)


def order_message(deps: JourneyDeps, order: Order, now: datetime,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return render_message(profile_of(deps, order), order, now, edge(deps.settings), extra=extra)


# Each callback exists twice: `x_effect` adds its writes to an order's change (the
# outbox: sent exactly once, with the change), `x` queues it alone. The record itself
# is always `bridge.beckn.callbacks.callback_effects`.


def reply_effect(fx: Effects, deps: JourneyDeps, req: BecknRequest, order: Order,
                 now: datetime, extra: dict[str, Any] | None = None,
                 message: dict[str, Any] | None = None) -> str:
    """The on_{action} answer to `req`: the order as it is now (or the action's own
    `message`, already rendered in the order's profile)."""
    ctx = callback_context(req.context, req.action, deps.settings, now)
    cb_id, _ = callback_effects(deps.settings, ctx,
                                message=message or order_message(deps, order, now, extra),
                                answers=req.action, keep=True, into=fx)
    return cb_id


def answer_effect(fx: Effects, deps: JourneyDeps, request: dict[str, Any], order: Order,
                  now: datetime, extra: dict[str, Any] | None = None,
                  error: dict[str, Any] | None = None) -> str:
    """A late answer to an earlier request of the BAP (`request`: its stored context),
    e.g. on_update ACTIVE to start-charging: the request's message id, a day to deliver."""
    ctx = callback_context(Context.model_validate(request), request["action"], deps.settings, now,
                           profile=profile_of(deps, order))
    cb_id, _ = callback_effects(deps.settings, ctx, message=order_message(deps, order, now, extra),
                                error=error, deadline=now.timestamp() + 86400,
                                answers=request["action"], keep=True, into=fx)
    return cb_id


def await_answer(o: Order, key: str, context: dict[str, Any]) -> None:
    """Note a request (its context) as one a later step of the order answers:
    `start_context` (on_update ACTIVE, or the start's failure), `stop_context` (the
    bill). A BAP may send the request again with a new message id before that step (a
    retry after a lost ACK): each ACKed request gets its answer, so the later ones wait
    beside the first, in `{key}_more` (issue 10: never ACKed without an answer)."""
    first = o.request.get(key)
    if not first or first.get("message_id") == context.get("message_id"):
        o.request[key] = context
        return
    more = [c for c in o.request.get(f"{key}_more") or []
            if c.get("message_id") != context.get("message_id")]
    o.request[f"{key}_more"] = [*more, context]


def waiting(order: Order, key: str) -> list[dict[str, Any]]:
    """The requests `await_answer` noted under `key`, first to last."""
    first = order.request.get(key)
    return ([first] if first else []) + list(order.request.get(f"{key}_more") or [])


def unsolicited_effect(fx: Effects, deps: JourneyDeps, order: Order, action: str,
                       now: datetime, extra: dict[str, Any] | None = None,
                       error: dict[str, Any] | None = None) -> str:
    """An on_status / on_update the BAP did not ask for (payment, charging, interruption):
    a message id of its own, every time."""
    stored = order.request.get("context")
    if not stored:
        raise RuntimeError(f"order {order.id} has no stored context")
    request = Context.model_validate(stored)
    ctx = callback_context(request, action, deps.settings, now, message_id=new_message_id(),
                           profile=profile_of(deps, order))
    # Unsolicited messages have no request ttl to live within: give them a day.
    cb_id, _ = callback_effects(deps.settings, ctx, message=order_message(deps, order, now, extra),
                                error=error, deadline=now.timestamp() + 86400, into=fx)
    return cb_id


def tell_effect(fx: Effects, order: Order, kind: str, text: str) -> Effects:
    """A message to the order's driver (the outbox), with the order's change."""
    return message_effect(fx, order.customer.get("phone", "-"), kind, text, order.id,
                          txn_shard(order.transaction_id))


async def reply(deps: JourneyDeps, req: BecknRequest, order: Order, now: datetime,
                extra: dict[str, Any] | None = None,
                message: dict[str, Any] | None = None) -> str:
    fx = Effects()
    cb_id = reply_effect(fx, deps, req, order, now, extra, message)
    await fx.run(deps.redis)
    return cb_id


async def answer(deps: JourneyDeps, request: dict[str, Any], order: Order, now: datetime,
                 extra: dict[str, Any] | None = None) -> str:
    fx = Effects()
    cb_id = answer_effect(fx, deps, request, order, now, extra)
    await fx.run(deps.redis)
    return cb_id


async def unsolicited(deps: JourneyDeps, order: Order, action: str, now: datetime,
                      extra: dict[str, Any] | None = None,
                      error: dict[str, Any] | None = None) -> str:
    fx = Effects()
    cb_id = unsolicited_effect(fx, deps, order, action, now, extra, error)
    await fx.run(deps.redis)
    return cb_id


def previewing(req: BecknRequest) -> bool:
    """The request is a preview (LTS `context.try: true`, release branch): answer with
    the outcome, change nothing (bridge/beckn/lts.py says which actions offer one)."""
    return (req.context.model_extra or {}).get("try") is True


def belongs(order: Order, req: BecknRequest) -> bool:
    """An order is its BAP's: the request must come from the bap_id that created it, name
    the same bap_uri (where its callbacks go) and speak its family of the protocol (an
    LTS request never reaches a draft order, nor the reverse: its answers could not be
    written in the dialect the order's BAP reads)."""
    ctx = req.context
    return (order.bap_id == ctx.bap_id and order.bap_uri.rstrip("/") == ctx.bap_uri.rstrip("/")
            and family(order.profile) == family(req.profile))


async def find(deps: JourneyDeps, req: BecknRequest) -> Order | None:
    """The transaction's order if it belongs to the asking BAP, else None: another BAP's
    transaction id is an unknown transaction (nothing said about it, nothing changed)."""
    order = await deps.orders.get(req.context.transaction_id)
    return order if order is not None and belongs(order, req) else None


async def load(deps: JourneyDeps, req: BecknRequest, error: type[JourneyError],
               named: bool = True) -> Order:
    """The request's order. `named`: an order id the request names must be this one."""
    order = await find(deps, req)
    if order is None:
        raise error("no order in this transaction: start with select",
                    {"transaction_id": req.context.transaction_id})
    ref = order_ref(req.body) if named else None
    if ref and ref != order.id:
        raise OrderNotFound(f"order {ref} is not the order of this transaction", {"order": ref})
    return order
