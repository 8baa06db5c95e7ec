"""The LTS profile's Contract: an order as Beckn 2.0 LTS writes it (`components.schemas.
Contract` of core-v2.0.0-lts, valid against release-v2.0.0-lts too). Pure; `now` is an
argument. The attribute bags inside are the EV charging vocabulary the draft's profile
already writes (the rc2 EV packs and core objects, `bridge.journey.rc2`): one order,
one set of figures, two envelopes. Choices are in docs/protocol-notes.md ("The LTS
profile").

    Contract.id                 the order id as a uuid
    status.code                 CONTRACT_STATUS[state]: DRAFT -> ACTIVE -> COMPLETE | CANCELLED
    commitments[0]              the charging line: status DRAFT | ACTIVE | CLOSED, the
                                connector as a Resource (quantity asked for, its
                                ChargingService bag), the tariff's Offer
    consideration[0]            the quote, then the final bill: a PriceSpecification with
                                typed components (code QUOTED, AGREED, FINAL)
    participants                the seller (this BPP), the CPO (PROVIDER), the buyer
                                (its beckn:Buyer)
    performance[0]              the charging session: the fulfilment status code, the
                                ChargingSession bag (energy, cost, times, vehicle, fee)
    settlements                 the payment asked for at init, then the refund, the
                                capture and release of a hold, a top-up: each a
                                beckn:Payment with its amount and status
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from bridge.beckn.lts import contract_id
from bridge.journey import rc2
from bridge.journey.codes import FULFILLMENT
from bridge.mapping.catalog_lts import lts_offer
from bridge.orders import State
from bridge.store.orders import Order

S = State
CONTRACT_STATUS: dict[State, str] = {
    S.DRAFT: "DRAFT", S.QUOTED: "DRAFT", S.INITIALIZED: "DRAFT", S.PAYMENT_PENDING: "DRAFT",
    S.CONFIRMED: "ACTIVE", S.RESERVED: "ACTIVE", S.ACTIVE: "ACTIVE", S.INTERRUPTED: "ACTIVE",
    S.COMPLETED: "COMPLETE", S.CANCELLED: "CANCELLED", S.EXPIRED: "CANCELLED",
    S.FAILED: "CANCELLED"}
COMMITMENT_STATUS: dict[State, str] = {
    S.DRAFT: "DRAFT", S.QUOTED: "DRAFT", S.INITIALIZED: "DRAFT", S.PAYMENT_PENDING: "DRAFT",
    S.CONFIRMED: "ACTIVE", S.RESERVED: "ACTIVE", S.ACTIVE: "ACTIVE", S.INTERRUPTED: "ACTIVE",
    S.COMPLETED: "CLOSED", S.CANCELLED: "CLOSED", S.EXPIRED: "CLOSED", S.FAILED: "CLOSED"}
STATUS_NAME = {"DRAFT": "Not confirmed yet", "ACTIVE": "Confirmed", "COMPLETE": "Completed",
               "CANCELLED": "Cancelled"}
LINE = "commitment-001"
CONSIDERATION = "consideration-001"
PRICE_TYPE = "beckn:PriceSpecification"  # the rc2 core PriceSpecification, as a bag


def _final(order: Order) -> bool:
    return bool(order.settlement and "final_amount" in order.settlement)


def resource(order: Order) -> dict[str, Any]:
    """The connector as the commitment's Resource, with the quantity asked for."""
    item = order.item
    out: dict[str, Any] = {"id": item.item_id if item else "unknown",
                           "quantity": rc2.quantity(order)}
    if item:
        kind = item.connector_type or item.standard or "connector"
        kw = f" {item.max_power_kw:g} kW" if item.max_power_kw else ""
        out["descriptor"] = {
            "name": f"{item.location_name or item.address or item.location_id} - "
                    f"{item.evse_id or item.evse_uid}",
            "shortDesc": f"{kind}{kw}"}
    bag = rc2.service_bag(order)
    if bag:
        out["resourceAttributes"] = bag
    return out


def offer(order: Order) -> dict[str, Any]:
    """The Offer accepted with the line: the catalog's, as it was at select."""
    item = order.item
    rid = item.item_id if item else "unknown"
    if item and item.offer:
        return lts_offer(item.offer)
    return {"id": f"offer:{rid}", "resourceIds": [rid]}


def price_spec(order: Order) -> dict[str, Any] | None:
    value = rc2.order_value(order)
    if value is None:
        return None
    return {"@context": rc2.CTX_CORE, "@type": PRICE_TYPE, **value}


def consideration(order: Order) -> list[dict[str, Any]]:
    spec = price_spec(order)
    if spec is None:
        return []
    if _final(order):
        status = {"code": "FINAL", "name": "Final bill"}
    elif CONTRACT_STATUS[order.state] == "DRAFT":
        status = {"code": "QUOTED", "name": "Quote"}
    else:
        status = {"code": "AGREED", "name": "Agreed price (the bill follows the charge)"}
    return [{"id": CONSIDERATION, "status": status, "considerationAttributes": spec}]


def participants(order: Order, bpp_id: str) -> list[dict[str, Any]]:
    item = order.item
    out: list[dict[str, Any]] = [{"id": bpp_id, "descriptor": {"code": "SELLER"}}]
    if item:
        out.append({"id": f"{item.cc}-{item.pid}",
                    "descriptor": {"code": "PROVIDER",
                                   "name": item.provider_name or f"{item.cc}-{item.pid}"}})
    c = order.customer
    if c.get("phone") or c.get("buyer"):
        buyer = rc2.buyer(order)
        desc: dict[str, Any] = {"code": "BUYER"}
        if buyer.get("beckn:displayName"):
            desc["name"] = buyer["beckn:displayName"]
        out.append({"id": buyer["beckn:id"], "descriptor": desc, "participantAttributes": buyer})
    return out


def performance(order: Order, now: datetime) -> list[dict[str, Any]]:
    _state, code, name = FULFILLMENT[order.state]
    return [{"id": f"performance-{order.id}", "status": {"code": code, "name": name},
             "commitmentIds": [LINE], "performanceAttributes": rc2.session_bag(order, now)}]


def _payment_bag(order: Order, pid: str, status: str, amount: Any, beneficiary: str,
                 url: str | None = None, vpa: bool = False) -> dict[str, Any]:
    cur = (order.settlement or {}).get("currency") or order.payment.get("currency", "INR")
    bag: dict[str, Any] = {"@context": rc2.CTX_CORE, "@type": "beckn:Payment", "beckn:id": pid,
                           "beckn:paymentStatus": status, "beckn:amount": rc2.price(amount, cur),
                           "beckn:beneficiary": beneficiary}
    if url:
        bag["beckn:paymentURL"] = url
    if vpa and order.customer.get("vpa"):
        bag["beckn:paymentAttributes"] = {
            "@context": rc2.CTX_SETTLEMENT, "@type": "PaymentSettlement",
            "settlementAccounts": [{"beneficiaryId": str(order.customer.get("buyer")
                                                         or f"buyer-{order.id}"),
                                    "vpa": str(order.customer["vpa"])}]}
    return bag


def settlements(order: Order, bpp_id: str) -> list[dict[str, Any]]:
    """The payment asked for at init, and once billed what moved after it:

        payment   DRAFT until paid (its link in paymentURL), COMMITTED once paid or held,
                  COMPLETE once the bill is settled against it; a postpaid order's
                  payment is the bill (DRAFT until paid at the link)
        refund    COMPLETE, to the buyer (REFUNDED; the buyer's UPI id when given)
        capture   COMPLETE: what the bill took from a hold (CAPTURED)
        release   COMPLETE: the rest of the hold given back (VOIDED)
        top-up    DRAFT with its link until paid, then COMPLETE (less was collected
                  than billed)
    A previewed cancel (`context.try`) shows its refund DRAFT: what the cancel would do.
    So paid + top-up = bill + refund (or held = capture + release), to the paisa."""
    main = rc2.payment(order, bpp_id)
    if main is None:
        return []
    p = order.payment
    collected = p.get("status") in ("PAID", "HELD")
    final = _final(order)
    s = order.settlement or {}
    postpaid = p.get("mode") == "POSTPAID"
    if postpaid:
        status = "COMPLETE" if s.get("top_up_status") == "PAID" else "DRAFT"
    elif not collected:
        status = "DRAFT"
    else:
        status = "COMPLETE" if final else "COMMITTED"
    out = [{"id": main["beckn:id"], "considerationId": CONSIDERATION, "status": status,
            "settlementAttributes": main}]
    if not final:
        return out
    for kind, pay_status, beneficiary in (("refund", "REFUNDED", "BUYER"),
                                          ("capture", "CAPTURED", "BPP"),
                                          ("release", "VOIDED", "BUYER"),
                                          ("top_up", "", "BPP")):
        amount = Decimal(str(s.get(kind, "0") or "0"))
        if not amount or (kind == "top_up" and postpaid):
            continue
        pid = f"{kind.replace('_', '-')}-{order.id}"
        url = None
        state = "DRAFT" if s.get("preview") else "COMPLETE"  # a cancel previewed: not made
        if kind == "top_up":
            paid = s.get("top_up_status") == "PAID"
            pay_status = "COMPLETED" if paid else "PENDING"
            state = "COMPLETE" if paid else "DRAFT"
            url = None if paid else s.get("top_up_url")
        out.append({"id": pid, "considerationId": CONSIDERATION, "status": state,
                    "settlementAttributes": _payment_bag(order, pid, pay_status, amount,
                                                         beneficiary, url,
                                                         vpa=kind == "refund")})
    return out


def render_contract(order: Order, now: datetime, bpp_id: str) -> dict[str, Any]:
    """The LTS Contract of an on_* message for `order` as it is now."""
    item = order.item
    status = CONTRACT_STATUS[order.state]
    out: dict[str, Any] = {
        "id": contract_id(order.id),
        "descriptor": {"name": f"EV charging ORD-{order.id[:8]}",
                       "shortDesc": f"{item.location_name or item.address or ''}".strip()
                       or "EV charging" if item else "EV charging"},
        "status": {"code": status, "name": STATUS_NAME[status]},
        "commitments": [{"id": LINE,
                         "status": {"descriptor": {"code": COMMITMENT_STATUS[order.state]}},
                         "resources": [resource(order)], "offer": offer(order)}],
    }
    cons = consideration(order)
    if cons:
        out["consideration"] = cons
    out["participants"] = participants(order, bpp_id)
    out["performance"] = performance(order, now)
    setl = settlements(order, bpp_id)
    if setl:
        out["settlements"] = setl
    return out


def track_patch(order: Order, session: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The live-tracking PATCH body: the LTS defines none either; the same ChargingSession
    bag as the draft's profile sends (what a Performance's attributes are here)."""
    return rc2.track_patch(order, session, now)


# Tracking.status
TRACKING_STATUS = {S.CONFIRMED: "ACTIVE", S.RESERVED: "ACTIVE", S.ACTIVE: "ACTIVE",
                   S.INTERRUPTED: "ACTIVE"}


def render_tracking(order: Order, now: datetime, bpp_id: str, url: str) -> dict[str, Any]:
    """`message` of on_track: a Tracking handle (the page's URL, ACTIVE while there is a
    charge to follow), the contract it tracks, the session as it is now."""
    return {"tracking": {"contract": render_contract(order, now, bpp_id),
                         "status": TRACKING_STATUS.get(order.state, "INACTIVE"), "url": url,
                         "trackingAttributes": rc2.session_bag(order, now)}}


def render_rating(order: Order) -> dict[str, Any]:
    """`message` of on_rate: the rating received, as a RatingInput on the contract."""
    r = order.rating or {}
    rating: dict[str, Any] = {
        "target": {"id": contract_id(order.id), "descriptor": {"code": "ORDER",
                                                               "name": f"ORD-{order.id[:8]}"}},
        "range": {"min": 1, "max": 5, **({"value": r["value"]} if "value" in r else {})}}
    fb = r.get("feedback")
    if isinstance(fb, dict) and fb.get("comments"):
        rating["feedbackFormSubmission"] = {"data": {"comments": str(fb["comments"])}}
    return {"ratings": [rating]}


def render_support(name: str, phone: str, email: str, url: str,
                   order: Order | None) -> dict[str, Any]:
    """`message` of on_support: the eMSP's channels, each a schema.org ContactPoint."""
    ctx = "https://schema.org"
    support: dict[str, Any] = {
        "descriptor": {"name": name, "shortDesc": "EV charging support"},
        "channels": [
            {"@context": ctx, "@type": "ContactPoint", "contactType": "PHONE", "telephone": phone},
            {"@context": ctx, "@type": "ContactPoint", "contactType": "EMAIL", "email": email},
            {"@context": ctx, "@type": "ContactPoint", "contactType": "WEB", "url": url}]}
    if order is not None:
        support["orderId"] = contract_id(order.id)
    return {"support": support}
