"""The driver pages in a real headless Chromium at a phone's viewport, on real journeys.

Through the bridge (serve + worker) and the mock CPO (the journey harness): a prepaid
walk-in paid on its page, followed live and billed with a refund; and a hold that the
bill overran (an offline charger), paid up on the top-up page. The numbers on the pages
are checked against the order, its billed CDR and the last `on_update`. Screenshots:
var/screenshots/. The browser: tests/pages/browser.py.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.journey.pages import duration, energy, money
from bridge.journey.strings import EN, HI
from bridge.ocpi.models import CDR
from bridge.orders import State
from bridge.store.ocpi_store import OcpiStore
from bridge.store.orders import Order
from tests.journey.conftest import (
    WALK_IN,
    World,
    init_message,
    order_message,
    select_message,
    state_of,
    update_message,
)
from tests.pages.browser import (
    amount,
    assert_phone_layout,
    bill,
    dl_rows,
    expect,
    layout,
    live_text,
    phone,
    shot,
    until,
)


def on_update_bill(message: dict[str, Any]) -> tuple[Decimal, list[tuple[str, Decimal]]]:
    """The bill an on_update carried: its total and its (title, amount) lines, in the rc2
    profile (`beckn:orderValue`, the default) or the guide's (`beckn:totals`)."""
    order = message["message"]["order"]
    if "beckn:orderValue" in order:
        value = order["beckn:orderValue"]
        return (Decimal(str(value["value"])),
                [(c["description"], Decimal(str(c["value"]))) for c in value["components"]])
    totals = order["beckn:totals"]
    return (Decimal(str(totals["schema:price"])),
            [(b["schema:name"], Decimal(str(b["schema:price"]))) for b in totals["beckn:breakup"]])


def dec(value: Any) -> Decimal:
    """A stored amount (a JSON number or string) as the Decimal it stands for."""
    return Decimal(str(value))


def duration_of(cdr: CDR, lang: str) -> str:
    return duration(cdr.end_date_time - cdr.start_date_time, lang)


async def billed_cdr(world: World, order: Order) -> CDR:
    assert order.item is not None and order.cdr_id
    stored = await OcpiStore(world.redis).get("cdrs", order.item.cc, order.item.pid, order.cdr_id)
    assert stored is not None
    return CDR.model_validate(stored.data)


@pytest.mark.parametrize("speed", [15])  # slow enough to watch a few meter readings arrive
async def test_walk_in_paid_followed_live_and_billed_on_a_phone(world: World,
                                                                tmp_path: Path) -> None:
    txn, phone_no = "txn-pages-walk-in", "+919800003001"
    await world.call("select", txn, select_message(WALK_IN, kwh=3))
    await world.call("init", txn, init_message(phone_no))
    order = await world.order(txn)
    async with phone(tmp_path / "profile") as ctx:
        # the payment page: the quote, the amount, one button; paid by pressing it
        pay = await ctx.new_page()
        await pay.goto(order.payment["url"])
        assert_phone_layout(await layout(pay), 390)
        to_pay = money(order.payment["amount"])
        assert await pay.locator("p.owed").inner_text() == to_pay
        assert (await dl_rows(pay))[EN["estimated_energy"]] == energy(order.quote["energy_kwh"])
        await shot(pay, "pay-before-en")
        await pay.get_by_role("button", name=f"Pay {to_pay}").click()
        await pay.wait_for_selector("div[role=status]")
        assert f"Paid: {to_pay}" in await pay.locator("div[role=status]").inner_text()
        await world.bap.wait_for("on_status", txn)
        await world.call("confirm", txn, order_message())
        started = await world.call("update", txn, update_message("start-charging",
                                                                 await world.otp(phone_no)))
        assert state_of(started)[0] == "ACTIVE"

        # the tracking page while charging: the figures move by themselves, in place
        track = await ctx.new_page()
        await track.goto(f"{world.bridge_url}/track/{order.id}")
        await track.evaluate("window.sameDocument = true")
        first = await live_text(track, "energy")
        assert first.endswith(" kWh")
        await until(lambda: _moved(track, first), 30, "the energy to move on the page")
        assert await track.evaluate("window.sameDocument === true")  # in place, no reload

        async def agrees() -> bool:  # what the page shows is the order's session
            shown = await live_text(track, "energy")
            o = await world.order(txn)
            return o.state is not State.ACTIVE or shown == energy(o.session.get("kwh", "0"))

        await until(agrees, 15, "the page's energy to equal the order's")
        assert (await live_text(track, "cost")).startswith("₹")
        assert_phone_layout(await layout(track), 390)
        await shot(track, "track-charging-en")

        # the end: the page turns into the final bill by itself
        done = await world.bap.wait_for("on_update", txn, count=2, timeout=60)
        assert state_of(done)[0] == "COMPLETED"
        await track.wait_for_selector("table", timeout=20_000)
        order = await world.order(txn)
        s = order.settlement
        assert s is not None and order.payment["status"] == "PAID"
        lines, total = await bill(track)
        # equal to the order's settlement, line by line, and to the bill of the last on_update
        assert lines == [(ln["title"], money(ln["amount"])) for ln in s["lines"]]
        assert amount(total) == dec(s["final_amount"])
        price, breakup = on_update_bill(done)
        assert amount(total) == price
        assert [(t, amount(a)) for t, a in lines] == breakup
        rows = await dl_rows(track)
        paid, refund = amount(rows[EN["paid"]]), amount(rows[EN["refunded"]])
        assert paid == dec(order.payment["amount"]) == dec(s["paid"])
        assert refund == dec(s["refund"]) and paid == amount(total) + refund
        cdr = await billed_cdr(world, order)
        assert rows[EN["energy"]] == energy(cdr.total_energy)
        assert rows[EN["duration"]] == duration_of(cdr, "en")
        for width in (360, 390, 400):
            await track.set_viewport_size({"width": width, "height": 844})
            assert_phone_layout(await layout(track), width)
        await track.set_viewport_size({"width": 390, "height": 844})
        await shot(track, "track-billed-en")

        # the same bill in Hindi, by the page's own switch
        await track.get_by_role("link", name="हिन्दी").click()
        await expect(track.locator("html")).to_have_attribute("lang", "hi")
        assert await live_text(track, "status") == HI["status_completed"]
        lines_hi, total_hi = await bill(track)
        assert (lines_hi, total_hi) == (lines, total)
        rows_hi = await dl_rows(track)
        assert rows_hi[HI["refunded"]] == rows[EN["refunded"]]
        assert rows_hi[HI["duration"]] == duration_of(cdr, "hi")
        assert_phone_layout(await layout(track), 390)
        await shot(track, "track-billed-hi")
        text = await track.locator("body").inner_text()
        assert phone_no not in text and "Srilekha" not in text


async def _moved(page: Any, first: str) -> bool:
    energy_now = page.locator("[data-live='energy']")
    if not await energy_now.count():
        raise AssertionError("the charge ended before the page showed a second meter reading")
    return str(await energy_now.first.inner_text()).strip() != first


async def test_top_up_after_an_offline_charger_is_paid_on_its_page(world: World,
                                                                   tmp_path: Path) -> None:
    """The top-up page showed the estimate (2.0 kWh) after 6 kWh were delivered."""
    txn, phone_no = "txn-pages-top-up", "+919800003002"
    await world.mock("POST", "/admin/next-car", {"battery_kwh": 30, "soc": 0.7,
                                                 "target_soc": 0.9, "max_kw": 60})
    await world.call("select", txn, select_message(WALK_IN, kwh=2))
    await world.call("init", txn, init_message(phone_no, "AUTHORIZATION-HOLD"))
    order = await world.order(txn)
    async with phone(tmp_path / "profile", locale="hi-IN") as ctx:
        page = await ctx.new_page()
        await page.set_extra_http_headers({"Accept-Language": "hi-IN,hi;q=0.9,en;q=0.5"})
        # the hold, authorised on its page (in Hindi, from Accept-Language)
        await page.goto(order.payment["url"])
        held = money(order.payment["amount"])
        assert await page.evaluate("document.documentElement.lang") == "hi"
        await page.get_by_role("button", name=f"{held} रोकने की अनुमति दें").click()
        await page.wait_for_selector("div[role=status]")
        await world.bap.wait_for("on_status", txn)
        await world.call("confirm", txn, order_message())
        await world.call("update", txn, update_message("start-charging",
                                                       await world.otp(phone_no)))
        await world.mock("POST", "/admin/faults/offline-charger", {"evse": WALK_IN[3],
                                                                   "cdr_delay": 120})

        async def settled() -> Order | None:
            o = await world.order(txn)
            return o if o.cdr_id and o.settlement and o.settlement.get("notified") else None

        order = await until(settled, 60, "the late CDR's settlement")
        s = order.settlement
        assert s is not None and dec(s["top_up"]) > 0, s
        cdr = await billed_cdr(world, order)
        assert cdr.total_energy > dec(order.quote["energy_kwh"])

        # the top-up page: what was delivered (the CDR's, not the 2 kWh estimate), the bill,
        # what was held and taken, and what is still owed
        await page.goto(s["top_up_url"])
        rows = await dl_rows(page)
        assert rows[HI["energy"]] == energy(cdr.total_energy)
        assert rows[HI["duration"]] == duration_of(cdr, "hi")
        assert energy(order.quote["energy_kwh"]) not in await page.locator("body").inner_text()
        lines, total = await bill(page)
        assert amount(total) == dec(s["final_amount"])
        assert sum(amount(a) for _, a in lines) == amount(total)
        assert amount(rows[HI["held"]]) == dec(order.payment["amount"])
        assert amount(rows[HI["captured"]]) == dec(s["capture"])
        owed = money(s["top_up"])
        assert rows[HI["top_up_due"]] == owed
        assert await page.locator("p.owed").inner_text() == owed
        assert amount(rows[HI["captured"]]) + amount(owed) == amount(total)
        assert_phone_layout(await layout(page), 390)
        await shot(page, "pay-top-up-hi")
        await page.get_by_role("button", name=f"{owed} का भुगतान करें").click()
        await page.wait_for_selector("div[role=status]")
        assert f"भुगतान हो गया: {owed}" in await page.locator("div[role=status]").inner_text()
        await shot(page, "pay-top-up-paid-hi")
        after = await world.order(txn)
        assert after.settlement is not None and after.settlement["top_up_status"] == "PAID"

        await page.goto(f"{world.bridge_url}/track/{order.id}")
        rows = await dl_rows(page)
        assert rows[HI["top_up_paid"]] == owed
        assert rows[HI["energy"]] == energy(cdr.total_energy)
        assert_phone_layout(await layout(page), 390)
        await shot(page, "track-top-up-paid-hi")
