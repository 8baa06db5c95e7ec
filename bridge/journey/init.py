"""Beckn `init` -> `on_init` (guide examples 06, 07).

Takes the billing details and the driver's phone, applies loyalty (by phone)
and a fleet rate (fleet id, verified by a one-time code sent to the driver),
re-quotes with the BAP's finder fee, opens the payment (a link to pay or to
authorise a hold; nothing for postpaid), sends the driver a start code (OTP),
and issues the order's OCPI Token (not yet allowed to charge: confirm does that).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey import wire
from bridge.journey.common import (
    NotApplicableNow,
    apply,
    deps_of,
    load,
    new_otp,
    otp_hash,
    reply_effect,
    tell_effect,
)
from bridge.journey.select import price_request, tariff_of
from bridge.ocpi.models import AllowedType, LocationReferences, Token, TokenType, WhitelistType
from bridge.orders import Event
from bridge.store.effects import Effects
from bridge.store.orders import Order


def token_uid(order: Order) -> str:
    return f"BKN{order.id[:24].upper()}"


def order_token(order: Order, cc: str, pid: str, issuer: str, now: datetime,
                valid: bool = True) -> Token:
    """The OCPI Token of an order: an app user, always authorised in real time (§12.4.4)."""
    return Token(country_code=cc, party_id=pid, uid=token_uid(order), type=TokenType.APP_USER,
                 contract_id=f"{cc}-{pid}-C{order.id[:12].upper()}", issuer=issuer[:64],
                 valid=valid, whitelist=WhitelistType.NEVER, last_updated=now)


async def handle_init(req: BecknRequest) -> None:
    deps = deps_of(req)
    now = req.received_at
    s = deps.settings
    # init may come before the BAP knows our order id (the guide's examples name their own)
    order = await load(deps, req, NotApplicableNow, named=False)
    data = wire.parse_init(req.body)
    assert order.item is not None
    tariff = await tariff_of(deps, order.item)
    start_otp = new_otp(s.journey_otp_digits)
    fleet_otp: str | None = None

    def change(o: Order) -> Order:
        nonlocal fleet_otp
        o = apply(o, Event.INIT, now, NotApplicableNow)
        c = o.customer
        c.update(billing=data["billing"], phone=data["phone"], name=data["name"],
                 email=data["email"], buyer=data["buyer"] or c.get("buyer"),
                 tax_id=data["tax_id"], buyer_attributes=data["buyer_attributes"],
                 vpa=data["vpa"], contact=data["contact"])
        if data["fleet_id"]:
            if data["fleet_id"] != c.get("fleet_id"):
                c.update(fleet_id=data["fleet_id"], fleet_verified=False, fleet_otp_hash=None)
            fleet = deps.policy.fleet(data["fleet_id"])
            if fleet and not c.get("fleet_verified"):
                if data["fleet_otp"] and c.get("fleet_otp_hash") == otp_hash(
                        f"fleet:{o.id}", str(data["fleet_otp"])):
                    c["fleet_verified"] = True
                elif not c.get("fleet_otp_hash"):
                    fleet_otp = new_otp(6)
                    c["fleet_otp_hash"] = otp_hash(f"fleet:{o.id}", fleet_otp)
        if data["bff"]:
            o.buyer_finder_fee = data["bff"]
        o.payment.setdefault("mode", data["payment_mode"] or s.journey_payment_mode)
        if data["payment_mode"]:
            o.payment["mode"] = data["payment_mode"]
        q = price_request(deps, o, tariff, now)
        o.quote = q.to_json()
        amount = q.total if o.payment["mode"] != "POSTPAID" else q.estimate
        o.payment.update(amount=str(amount), currency=q.currency)
        o.otp_hash = otp_hash(o.id, start_otp)
        o.otp_attempts = 0
        o.token_uid = token_uid(o)
        return o

    _, order = await deps.orders.update(req.context.transaction_id, change)

    # A payment link for what must be collected or held now (a new one if the amount changed).
    p = order.payment
    link = None
    if p["mode"] != "POSTPAID" and p.get("status") not in ("PAID", "HELD") and (
            not p.get("id") or p.get("linked_amount") != p["amount"]):
        mode = "HOLD" if p["mode"] == "HOLD" else "PREPAID"
        # keyed by what it is for: an init retried after a crash gets the same link
        link = await deps.gateway.create_link(order.id, Decimal(p["amount"]), p["currency"], mode,
                                              key=f"init:{order.id}:{p['amount']}:{mode}",
                                              payer_vpa=order.customer.get("vpa"))
    item = order.item
    assert item is not None
    token = order_token(order, s.ocpi_country_code, s.ocpi_party_id, s.ocpi_business_name, now)
    await deps.ocpi.tokens.put(token, allowed=AllowedType.NOT_ALLOWED,
                               location=LocationReferences(location_id=item.location_id,
                                                           evse_uids=[item.evse_uid]),
                               authorization_reference=order.id, order_id=order.id)

    def linked(o: Order) -> Order:
        if link is not None:
            o.payment.update(id=link.payment_id, url=link.url, status="NOT-PAID",
                             linked_amount=o.payment["amount"], linked_at=now.isoformat())
        return o

    def told(_before: Order, after: Order) -> Effects:
        """The start code (and a fleet code) by SMS and on_init, written with the link:
        exactly once for this init, and only with the code the order keeps."""
        fx = Effects()
        phone = after.customer["phone"]
        tell_effect(fx, after, "otp", f"Your start code for order ORD-{after.id[:8]} is "
                                      f"{start_otp}. Give it only at the charger.")
        if fleet_otp:
            tell_effect(fx, after, "otp", f"Fleet verification code {fleet_otp} for "
                                          f"{after.customer['fleet_id']}: send it in init as "
                                          "fleet-details.otp")
        extra = {"start-authorization": {"type": "OTP", "sent-to": _mask(phone)}}
        if after.customer.get("fleet_id") and not after.customer.get("fleet_verified"):
            extra["fleet-verification"] = {"status": "OTP-SENT", "sent-to": _mask(phone)}
        reply_effect(fx, deps, req, after, now, extra=extra)
        return fx

    await deps.orders.update(req.context.transaction_id, linked, effects=told)


def _mask(phone: str) -> str:
    digits = [c for c in phone if c.isdigit()]
    return "*" * max(len(digits) - 4, 0) + "".join(digits[-4:])


register_action("init", handle_init)
