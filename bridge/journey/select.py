"""Beckn `select` -> `on_select` (guide examples 03, 04, 05).

Checks the charger (exists, AVAILABLE now, or RESERVABLE for a future slot
that is free in the slot calendar), prices the request ("up to ₹100", "5 kWh",
"1 hour") with the tariff engine and the eMSP's policy, and answers with the
quote's lines and totals. A new select in the same transaction re-quotes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bridge.beckn.errors import ItemNotFound
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey import wire
from bridge.journey.common import (
    JourneyDeps,
    NotApplicableNow,
    QuoteUnavailable,
    Unavailable,
    apply,
    belongs,
    deps_of,
    new_order_id,
    reply_effect,
)
from bridge.mapping.catalog import connector_type, parse_item_id, power_kw, render_offer
from bridge.mapping.projection import ChargingModel, ProjectionError
from bridge.mapping.quote import BuyerFinderFee, Customer, Quote, quote_request
from bridge.mapping.tariff import TariffError
from bridge.ocpi.models import EVSE, Capability, Connector, Location, Status, Tariff
from bridge.orders import Event
from bridge.store.effects import Effects
from bridge.store.orders import Order, OrderItem

NOW_OK = {Status.AVAILABLE}
NEVER_OK = {Status.REMOVED, Status.OUTOFORDER, Status.INOPERATIVE, Status.PLANNED, Status.UNKNOWN}


async def find_charger(deps: JourneyDeps, item_id: str
                       ) -> tuple[Location, EVSE, Connector, OrderItem]:
    ref = parse_item_id(item_id)
    if ref is None:
        raise ItemNotFound(f"unknown item {item_id!r}", {"item": item_id})
    raw = await deps.ocpi.store.get_location(ref.cc, ref.pid, ref.location_id)
    if raw is None:
        raise ItemNotFound(f"unknown charger {item_id!r}", {"item": item_id})
    loc = Location.model_validate(raw)
    evse = next((e for e in loc.evses or [] if e.uid.lower() == ref.evse_uid.lower()), None)
    conn = next((c for c in (evse.connectors if evse else [])
                 if c.id.lower() == ref.connector_id.lower()), None)
    if evse is None or conn is None:
        raise ItemNotFound(f"unknown charger {item_id!r}", {"item": item_id})
    item = OrderItem(
        item_id=item_id, cc=ref.cc, pid=ref.pid, location_id=loc.id, evse_uid=evse.uid,
        evse_id=evse.evse_id, connector_id=conn.id,
        tariff_id=(conn.tariff_ids or [None])[0], time_zone=loc.time_zone,
        max_power_kw=power_kw(conn), connector_type=connector_type(conn),
        location_name=loc.name, address=f"{loc.address}, {loc.city}",
        latitude=loc.coordinates.latitude, longitude=loc.coordinates.longitude,
        provider_name=loc.operator.name if loc.operator else None,
        provider_logo=loc.operator.logo.url if loc.operator and loc.operator.logo else None,
        standard=conn.standard.value, power_type=conn.power_type.value, city=loc.city,
        status=evse.status.value)
    return loc, evse, conn, item


async def tariff_of(deps: JourneyDeps, item: OrderItem) -> Tariff:
    if not item.tariff_id:
        raise QuoteUnavailable("the charger has no tariff", {"item": item.item_id})
    stored = await deps.ocpi.store.get("tariffs", item.cc, item.pid, item.tariff_id)
    if stored is None:
        raise QuoteUnavailable(f"tariff {item.tariff_id} is not known", {"item": item.item_id})
    return Tariff.model_validate(stored.data)


def bff_of(order: Order) -> BuyerFinderFee | None:
    bff = order.buyer_finder_fee
    if not bff:
        return None
    value = Decimal(bff["value"])
    return BuyerFinderFee(percent=value) if bff["type"] == "PERCENTAGE" else BuyerFinderFee(
        amount=value)


def customer_of(order: Order) -> Customer:
    c = order.customer
    return Customer(phone=c.get("phone"), fleet_id=c.get("fleet_id"),
                    fleet_verified=bool(c.get("fleet_verified")))


def price_request(deps: JourneyDeps, order: Order, tariff: Tariff, now: datetime) -> Quote:
    """Quote the order's request with its customer and finder fee as they are now."""
    assert order.item is not None
    r = order.request
    start = datetime.fromisoformat(r["start"])
    model = ChargingModel(power_kw=Decimal(str(order.item.max_power_kw or 7.4)),
                          car_max_kw=Decimal(str(deps.settings.journey_car_max_kw)))
    kwargs: dict[str, Any] = {}
    if r.get("budget"):
        kwargs["budget"] = Decimal(r["budget"])
    elif r.get("energy_kwh"):
        kwargs["energy_kwh"] = Decimal(r["energy_kwh"])
    else:
        kwargs["duration"] = timedelta(minutes=float(r["minutes"]))
    try:
        q = quote_request(tariff, deps.policy, start=start, model=model,
                          party=f"{order.item.cc}-{order.item.pid}",
                          time_zone=order.item.time_zone, location_id=order.item.location_id,
                          customer=customer_of(order), buyer_finder_fee=bff_of(order),
                          prepaid=order.payment.get("mode", deps.settings.journey_payment_mode)
                          != "POSTPAID", **kwargs)
    except (ProjectionError, TariffError) as exc:
        raise QuoteUnavailable(str(exc)) from exc
    if q.projection is not None and not q.projection.affordable:
        raise QuoteUnavailable(f"a budget of ₹{r.get('budget')} does not cover a session here")
    return q


async def handle_select(req: BecknRequest) -> None:
    deps = deps_of(req)
    now = req.received_at
    sel = wire.parse_select(req.body)
    _loc, evse, _conn, item = await find_charger(deps, sel.item_id)
    start = sel.start if sel.start and sel.start > now else now
    reservation = start > now + timedelta(minutes=deps.settings.journey_walk_in_minutes)
    if evse.status in NEVER_OK or (not reservation and evse.status not in NOW_OK):
        raise Unavailable(f"charger {item.evse_id or item.evse_uid} is {evse.status.value}",
                          {"status": evse.status.value})
    if reservation and Capability.RESERVABLE not in (evse.capabilities or []):
        raise Unavailable("this charger cannot be reserved for a later slot: come now (walk-in)")
    tariff = await tariff_of(deps, item)
    # the offer accepted with this line (rc2 beckn:acceptedOffer), as the catalog shows it
    item.offer = render_offer(tariff, item.item_id, f"{item.cc}-{item.pid}", now)

    txn = req.context.transaction_id
    existing = await deps.orders.get(txn)
    if existing is not None and not belongs(existing, req):
        # Another BAP's transaction: nothing about it is told or changed.
        raise NotApplicableNow("this transaction id is in use: start a new transaction",
                               {"transaction_id": txn})
    base = existing or Order(id=new_order_id(), transaction_id=txn, bap_id=req.context.bap_id,
                             bap_uri=req.context.bap_uri, profile=req.profile, created=now,
                             updated=now)

    def change(order: Order) -> Order:
        order = apply(order, Event.SELECT, now, NotApplicableNow)
        order.item = item
        order.buyer_finder_fee = sel.bff
        if sel.buyer:
            order.customer["buyer"] = sel.buyer
        order.request = {**sel.to_json(), "start": start.isoformat(),
                         "reservation": reservation,
                         "context": req.context.model_dump(mode="json", exclude_none=True)}
        q = price_request(deps, order, tariff, now)
        end = sel.end or q.end or start + timedelta(hours=1)
        order.request["end"] = end.isoformat()
        order.quote = q.to_json()
        return order

    # Price and check the slot before storing anything: a refused select changes nothing.
    probe = change(base.model_copy(deep=True))
    if reservation and not await deps.orders.slot_free(
            item, start, datetime.fromisoformat(probe.request["end"]), probe.id):
        raise Unavailable("the slot is taken: choose another time", {"start": start.isoformat()})
    if existing is None:
        await deps.orders.create(base)
    # the quote and its on_select in one step
    await deps.orders.update(txn, change,
                             effects=lambda _b, after: _replied(deps, req, after, now))


def _replied(deps: JourneyDeps, req: BecknRequest, order: Order, now: datetime) -> Effects:
    fx = Effects()
    reply_effect(fx, deps, req, order, now)
    return fx


register_action("select", handle_select)
