"""Issue 10's "done when": a BAP built from the rc2 schema and a BAP built from our
implementation guide each run the whole journey (discover, select by ₹ and by kWh, init,
pay, confirm, start with the OTP, track, power cut, stop, final bill) in their own
dialect. Each sends only its dialect's requests and reads only its dialect's fields,
never the bridge's store and never `bridge.demo.view` (which reads both): a field one
of them looks for and does not find fails the test, naming it.

The conformance suite runs this scenario again with every body checked
(tests/conformance/beckn/test_scenarios.py): in rc2 by a generic JSON Schema validator,
in guide against the guide's examples of each step.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from bridge.payments import SandboxGateway
from tests.journey.conftest import WALK_IN, World

PHONE = "+919800009001"
VPA = "meera@okbank"
EVSE_ID = "IN*TPC*E1301*2"  # WALK_IN's charger: a CCS2 60 kW and a CHAdeMO 50 kW
PLACE = [77.043720, 12.585310]  # the highway plaza at Maddur (config/networks/india.toml)
CORE = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
        "schema/core/v2/context.jsonld")
SESSION = ("https://raw.githubusercontent.com/beckn/protocol-specifications-v2/refs/heads/"
           "core-v2.0.0-rc2/schema/EvChargingSession/v1/context.jsonld")


def get(node: Any, *path: str | int) -> Any:
    """node[path...], failing with the path a BAP looked for and did not find."""
    at: Any = node
    for i, p in enumerate(path):
        try:
            at = at[p]
        except (KeyError, IndexError, TypeError):
            raise AssertionError(f"no {'.'.join(map(str, path[:i + 1]))} in {node!r:.600}"
                                 ) from None
    return at


def inr(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


class Rc2Bap:
    """Built from core-v2.0.0-rc2 (api/beckn.yaml, core attributes, the EV packs)."""

    profile = "rc2"

    # --- requests
    def discover(self) -> dict[str, Any]:
        ccs2 = ("$[?@['beckn:itemAttributes']['connectorType'] == 'CCS2' && "
                f"@['beckn:itemAttributes']['evseId'] == '{EVSE_ID}']")
        return {"message": {
            "spatial": [{"op": "s_dwithin", "targets": "$['beckn:availableAt'][*]['geo']",
                         "geometry": {"type": "Point", "coordinates": PLACE},
                         "distanceMeters": 2000}],
            "filters": {"type": "jsonpath", "expression": ccs2}}}

    def _order(self, **fields: Any) -> dict[str, Any]:
        return {"order": {"@context": CORE, "@type": "beckn:Order",
                          "beckn:orderStatus": "CREATED", "beckn:seller": "IN-TPC", **fields}}

    def _buyer(self) -> dict[str, Any]:
        return {"@context": CORE, "@type": "beckn:Buyer", "beckn:id": "driver-7",
                "beckn:displayName": "Meera", "beckn:telephone": PHONE}

    def _line(self, item: str, unit: str, amount: float) -> dict[str, Any]:
        return {"beckn:lineId": "line-001", "beckn:orderedItem": item,
                "beckn:quantity": {"unitCode": unit, "unitQuantity": amount}}

    def select(self, item: str, *, inr: float | None = None, kwh: float | None = None
               ) -> dict[str, Any]:
        line = self._line(item, "INR", inr) if inr is not None else self._line(item, "KWH",
                                                                               kwh or 0)
        self.line = line
        return self._order(**{"beckn:buyer": self._buyer(), "beckn:orderItems": [line]})

    def init(self, order_id: str) -> dict[str, Any]:
        buyer = {**self._buyer(), "beckn:buyerAttributes": {  # the driver's UPI id
            "@context": "https://example.org/upi.jsonld", "@type": "BuyerUPI", "vpa": VPA}}
        return self._order(**{"beckn:id": order_id, "beckn:buyer": buyer,
                              "beckn:orderItems": [self.line]})

    def confirm(self, order_id: str) -> dict[str, Any]:
        return self._order(**{"beckn:id": order_id, "beckn:buyer": self._buyer(),
                              "beckn:orderItems": [self.line]})

    def _session(self, order_id: str, status: str, otp: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "beckn:id": order_id, "beckn:buyer": self._buyer(), "beckn:orderItems": [self.line],
            "beckn:orderAttributes": {"@context": SESSION, "@type": "ChargingSession",
                                      "sessionStatus": status}}
        if otp is not None:  # rc2 has no field for the start code: a bag of its own
            fields["beckn:fulfillment"] = {
                "@context": CORE, "@type": "beckn:Fulfillment", "beckn:mode": "RESERVATION",
                "beckn:deliveryAttributes": {
                    "@context": "https://example.org/authorization.jsonld",
                    "@type": "ChargingAuthorization",
                    "authorization": {"type": "OTP", "token": otp}}}
        return self._order(**fields)

    def start(self, order_id: str, otp: str) -> dict[str, Any]:
        return self._session(order_id, "ACTIVE", otp)

    def stop(self, order_id: str) -> dict[str, Any]:
        return self._session(order_id, "STOP")

    def track(self, order_id: str, callback: str) -> dict[str, Any]:
        return {"tracking": {"id": order_id, "callbackUrl": callback}}

    # --- reading what comes back
    def found(self, cb: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(item id, what the driver is shown) of the CCS2 charger found."""
        catalogs = get(cb, "message", "catalogs")
        items = [i for c in catalogs for i in get(c, "beckn:items")]
        assert len(items) == 1, items
        item = items[0]
        attrs = get(item, "beckn:itemAttributes")
        offers = [o for c in catalogs for o in get(c, "beckn:offers")
                  if get(item, "beckn:id") in get(o, "beckn:items")]
        assert len(offers) == 1, offers
        lon, lat = get(item, "beckn:availableAt", 0, "geo", "coordinates")
        return get(item, "beckn:id"), {
            "connector": get(attrs, "connectorType"), "kw": get(attrs, "maxPowerKW"),
            "evse": get(attrs, "evseId"), "per_kwh": inr(get(offers[0], "beckn:price", "value")),
            "where": (round(lon, 4), round(lat, 4)), "active": get(item, "beckn:isActive")}

    def order_id(self, m: dict[str, Any]) -> str:
        return str(get(m, "message", "order", "beckn:id"))

    def state(self, m: dict[str, Any]) -> tuple[str, str]:
        o = get(m, "message", "order")
        return get(o, "beckn:orderStatus"), get(o, "beckn:fulfillment", "beckn:fulfillmentStatus")

    def total(self, m: dict[str, Any]) -> Decimal:
        value = get(m, "message", "order", "beckn:orderValue")
        parts = sum((inr(get(c, "value")) for c in get(value, "components")), Decimal(0))
        assert parts == inr(get(value, "value")), value  # the components add up
        return inr(get(value, "value"))

    def asked(self, m: dict[str, Any]) -> tuple[str, Decimal, str | None]:
        """(status, amount, where to pay) of the payment."""
        p = get(m, "message", "order", "beckn:payment")
        return (get(p, "beckn:paymentStatus"), inr(get(p, "beckn:amount", "value")),
                p.get("beckn:paymentURL"))

    def paid(self, m: dict[str, Any]) -> bool:
        return self.asked(m)[0] == "CAPTURED"

    def tracking_url(self, m: dict[str, Any]) -> str:
        return str(get(m, "message", "tracking", "url"))

    def patch_kwh(self, body: dict[str, Any]) -> Decimal:
        assert get(body, "@type") == "ChargingSession"
        return Decimal(str(get(body, "meteredEnergyKWh")))

    def interrupted(self, m: dict[str, Any]) -> bool:
        o = get(m, "message", "order")
        return (get(o, "beckn:fulfillment", "beckn:fulfillmentStatus") == "CONNECTION-INTERRUPTED"
                and get(o, "beckn:orderAttributes", "sessionStatus") == "INTERRUPTED")

    def charging(self, m: dict[str, Any]) -> bool:
        return get(m, "message", "order", "beckn:fulfillment",
                   "beckn:fulfillmentStatus") == "ACTIVE"

    def bill(self, m: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(billed, paid, refunded, kWh): rc2 states the bill and what became of the
        payment; the refund is what was paid less the bill (docs/protocol-notes.md)."""
        o = get(m, "message", "order")
        status, paid, _ = self.asked(m)
        assert status == "PARTIALLY_REFUNDED", status
        billed = self.total(m)
        kwh = Decimal(str(get(o, "beckn:orderAttributes", "meteredEnergyKWh")))
        return billed, paid, paid - billed, kwh


class GuideBap:
    """Built from our implementation guide's examples 01-17."""

    profile = "guide"

    # --- requests
    def discover(self) -> dict[str, Any]:
        # example 01: the query beside context, the filter a bare (non RFC 9535) string
        return {"text_search": EVSE_ID,
                "filters": "$[?(@.itemAttributes.connector-type == 'CCS2' && "
                           "@.availableAt[*].gps.latitude >= 12.0 && "
                           "@.availableAt[*].gps.latitude <= 13.0)]",
                "pagination": {"page": 1, "limit": 20}}

    def _order(self, order_id: str | None, attrs: dict[str, Any],
               items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        o: dict[str, Any] = {"@type": "beckn:Order", "beckn:orderAttributes": attrs}
        if order_id:
            o["beckn:id"] = order_id
        if items is not None:
            o["beckn:orderItems"] = items
        return {"order": o}

    def select(self, item: str, *, inr: float | None = None, kwh: float | None = None
               ) -> dict[str, Any]:
        line: dict[str, Any] = {"beckn:lineId": "line-001", "beckn:orderedItem": item,
                                "beckn:quantity": 1}
        if inr is not None:  # example 03: a budget as the line's price
            line["beckn:price"] = {"currency": "INR", "value": inr}
        else:  # example 04: quantity-measure
            line["beckn:orderItemAttributes"] = {"quantity-measure": {
                "type": "CONSTANT", "value": str(kwh), "unit": "KWH"}}
        return self._order(None, {"fulfillment-details": {
            "vehicle": {"make": "Tata", "model": "Nexon EV"}}}, [line])

    def init(self, order_id: str) -> dict[str, Any]:
        return self._order(order_id, {
            "billing-details": {"beckn:payer": "driver-7", "schema:name": "Meera",
                                "schema:telephone": PHONE},
            "payment-details": {"payment-type": "PRE-FULFILLMENT", "beckn:paymentAttributes": {
                "source-vpa": VPA}}})  # example 09: the driver's UPI id

    def confirm(self, order_id: str) -> dict[str, Any]:
        return self._order(order_id, {})

    def start(self, order_id: str, otp: str) -> dict[str, Any]:
        return self._order(order_id, {"fulfillment-update": {
            "state": {"code": "start-charging"}, "authorization": {"type": "OTP", "token": otp}}})

    def stop(self, order_id: str) -> dict[str, Any]:
        return self._order(order_id, {"fulfillment-update": {"state": {"code": "stop-charging"}}})

    def track(self, order_id: str, callback: str) -> dict[str, Any]:
        return self._order(order_id, {"callback-url": callback, "track-fulfillment": True})

    # --- reading what comes back
    def found(self, cb: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        catalogs = get(cb, "catalogs")  # example 02: beside context
        items = [i for c in catalogs for i in get(c, "beckn:items")
                 if get(i, "beckn:itemAttributes", "ev:connectorType") == "CCS2"]
        assert len(items) == 1, items
        item = items[0]
        attrs = get(item, "beckn:itemAttributes")
        gps = get(item, "beckn:availableAt", 0, "beckn:gps")
        return get(item, "beckn:id"), {
            "connector": get(attrs, "ev:connectorType"), "kw": get(attrs, "ev:maxPowerKW"),
            "evse": get(attrs, "ev:evseId"), "per_kwh": inr(get(attrs, "ev:tariff",
                                                                   "schema:price")),
            "where": (round(get(gps, "schema:longitude"), 4),
                      round(get(gps, "schema:latitude"), 4)),
            "active": get(attrs, "ev:availability") == "AVAILABLE"}

    def order_id(self, m: dict[str, Any]) -> str:
        return str(get(m, "message", "order", "beckn:id"))

    def state(self, m: dict[str, Any]) -> tuple[str, str]:
        o = get(m, "message", "order")
        return (get(o, "beckn:state"),
                get(o, "beckn:orderAttributes", "fulfillment-details", "beckn:status"))

    def total(self, m: dict[str, Any]) -> Decimal:
        totals = get(m, "message", "order", "beckn:totals")
        parts = sum((inr(get(b, "schema:price")) for b in get(totals, "beckn:breakup")),
                    Decimal(0))
        assert parts == inr(get(totals, "schema:price")), totals
        return inr(get(totals, "schema:price"))

    def _payments(self, m: dict[str, Any]) -> list[dict[str, Any]]:
        pd = get(m, "message", "order", "beckn:orderAttributes", "payment-details")
        return pd if isinstance(pd, list) else [pd]

    def asked(self, m: dict[str, Any]) -> tuple[str, Decimal, str | None]:
        p = self._payments(m)[0]
        return (get(p, "beckn:status"), inr(get(p, "beckn:amount", "value")),
                p.get("payment-url"))

    def paid(self, m: dict[str, Any]) -> bool:
        return self.asked(m)[0] == "PAID" and bool(get(self._payments(m)[0], "beckn:txnRef"))

    def tracking_url(self, m: dict[str, Any]) -> str:
        return str(get(m, "message", "order", "beckn:orderAttributes", "tracking-details",
                       "beckn:url"))

    def patch_kwh(self, body: dict[str, Any]) -> Decimal:
        return Decimal(str(get(body, "ev:energyDelivered", "schema:value")))

    def interrupted(self, m: dict[str, Any]) -> bool:
        attrs = get(m, "message", "order", "beckn:orderAttributes")
        if get(attrs, "fulfillment-details", "beckn:status") != "CONNECTION-INTERRUPTED":
            return False
        assert inr(get(attrs, "interruption", "estimated-refund", "value")) > 0
        return True

    def charging(self, m: dict[str, Any]) -> bool:
        return get(m, "message", "order", "beckn:orderAttributes", "fulfillment-details",
                   "beckn:status") == "ACTIVE"

    def bill(self, m: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """Example 17: the payment, then its REFUND lines; the settlement's final amount."""
        attrs = get(m, "message", "order", "beckn:orderAttributes")
        payments = self._payments(m)
        status, paid, _ = self.asked(m)
        assert status == "PAID", status
        refunds = [p for p in payments[1:] if get(p, "beckn:method") == "REFUND"]
        refunded = sum((inr(get(p, "beckn:amount", "value")) for p in refunds), Decimal(0))
        for p in refunds:  # example 17's wording of the same number ("22INR")
            worded = str(get(p, "beckn:paymentAttributes", "refund-amount"))
            assert worded.endswith("INR") and inr(worded[:-3]) == inr(get(p, "beckn:amount",
                                                                          "value")), p
        billed = inr(get(attrs, "settlement-details", "final-amount", "value"))
        kwh = Decimal(str(get(m, "message", "order", "beckn:orderItems", 0,
                              "beckn:orderItemAttributes", "real-time-metrics",
                              "energy-delivered")))
        return billed, paid, refunded, kwh


@pytest.fixture(params=["rc2", "guide"])
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.slow
async def test_a_bap_of_each_dialect_runs_the_whole_journey(world: World, profile: str) -> None:
    bap = Rc2Bap() if profile == "rc2" else GuideBap()
    txn = f"txn-whole-{profile}-{uuid.uuid4().hex[:6]}"

    # discover the CCS2 connector of the highway charger (the catalog may still be
    # building from the mock CPO's pushes)
    for _ in range(100):
        seen = len(world.bap.of("on_discover", txn))
        body = bap.discover()
        status, ack = await world.post("discover", txn, body.pop("message", None), top=body)
        assert ack["ack_status"] == "ACK", ack
        found = await world.bap.wait_for("on_discover", txn, count=seen + 1)
        if "catalogs" in found or found.get("message", {}).get("catalogs"):
            try:
                item, shown = bap.found(found)
                break
            except AssertionError:
                pass
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"the charger was never found: {found}")
    assert shown == {"connector": "CCS2", "kw": 60, "evse": EVSE_ID,
                     "per_kwh": shown["per_kwh"], "where": (77.0437, 12.5853), "active": True}
    assert shown["per_kwh"] > 0

    # select by ₹, then (same transaction: a re-quote) by kWh
    by_budget = await world.call("select", txn, bap.select(item, inr=150))
    assert bap.state(by_budget)[0] == ("CREATED" if profile == "rc2" else "QUOTED")
    assert Decimal(150) <= bap.total(by_budget) <= Decimal(165)  # ₹150 + overage provision
    by_energy = await world.call("select", txn, bap.select(item, kwh=20))
    order_id = bap.order_id(by_energy)
    assert bap.order_id(by_budget) == order_id
    quote = bap.total(by_energy)
    assert quote >= 20 * shown["per_kwh"]

    on_init = await world.call("init", txn, bap.init(order_id))
    status, amount, url = bap.asked(on_init)
    assert (status, amount) == ("PENDING" if profile == "rc2" else "NOT-PAID", quote)
    assert url and url.startswith(world.bridge_url)
    # the UPI id reached the payment gateway with the link (a UPI PSP collects there)
    order = await world.order(txn)
    assert (await SandboxGateway(world.redis, world.bridge_url).get(
        order.payment["id"])).payer_vpa == VPA
    async with world.http.post(url, headers={"Accept": "application/json"}) as r:
        assert r.status == 200, await r.text()
    paid = await world.bap.wait_for("on_status", txn)
    assert bap.paid(paid), paid

    on_confirm = await world.call("confirm", txn, bap.confirm(order_id))
    assert bap.state(on_confirm) == ("CONFIRMED", "PENDING"), bap.state(on_confirm)

    otp = await world.otp(PHONE)
    started = await world.call("update", txn, bap.start(order_id, otp))
    assert bap.charging(started), started

    callback = f"{world.bap.url}/track/{order_id}"
    on_track = await world.call("track", txn, bap.track(order_id, callback))
    assert bap.tracking_url(on_track) == f"{world.bridge_url}/track/{order_id}"
    for _ in range(200):
        readings = [bap.patch_kwh(p) for p in world.bap.patches]
        if readings and max(readings) > 0:
            break
        await asyncio.sleep(0.1)
    assert readings and max(readings) > 0, world.bap.patches

    # the plaza loses power for a (simulated) minute; the charge resumes
    await world.mock("POST", "/admin/faults/power-cut", {"location_id": WALK_IN[2],
                                                         "duration": 60, "outcome": "resume"})
    await world.bap.wait_for("on_status", txn, where=bap.interrupted)
    await world.bap.wait_for("on_status", txn, timeout=30, where=bap.charging)

    # the driver stops: the answer is the final bill
    done = await world.call("update", txn, bap.stop(order_id))
    if not bap.state(done)[0] == "COMPLETED":  # stop asked; the bill follows the CDR
        done = await world.bap.wait_for("on_update", txn, timeout=40,
                                        where=lambda m: bap.state(m)[0] == "COMPLETED")
    assert bap.state(done) == ("COMPLETED", "COMPLETED"), bap.state(done)
    billed, collected, refunded, kwh = bap.bill(done)
    assert collected == quote and refunded > 0 and collected == billed + refunded
    assert 0 < kwh < 20
    # what the BAP read is what the bridge settled
    order = await world.order(txn)
    assert order.settlement is not None
    assert (billed, refunded) == (inr(order.settlement["final_amount"]),
                                  inr(order.settlement["refund"]))
    assert world.bap.unverified == 0
