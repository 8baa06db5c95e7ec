"""The driver pages in a real headless Chromium at a phone's viewport, on stored orders.

Every state of an order written to a real Redis, at 360, 390 and 400 px, in English and
Hindi; the live figures moving in place; the reload into the bill; the meta refresh
without JavaScript. The real journeys: tests/journey/test_driver_pages.py. Screenshots:
var/screenshots/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bridge.orders import State
from bridge.store.orders import Order, OrderStore
from tests.pages import samples as S
from tests.pages.browser import assert_phone_layout, bill, expect, layout, live_text, phone, shot
from tests.pages.conftest import Site


def stored(name: str) -> Order:
    o = S.ALL[name]()
    return o.model_copy(update={"id": f"{name}-{S.ORDER_ID}", "transaction_id": f"txn-{name}"})


async def test_every_state_fits_a_phone(site: Site, tmp_path: Path) -> None:
    for name in S.ALL:
        await site.store(stored(name))
    async with phone(tmp_path / "profile") as ctx:
        page = await ctx.new_page()
        for name in S.ALL:
            for lang in ("en", "hi"):
                await page.goto(f"{site.url}/track/{name}-{S.ORDER_ID}?lang={lang}")
                for width in (360, 400, 390):
                    await page.set_viewport_size({"width": width, "height": 844})
                    m = await layout(page)
                    assert m["lang"] == lang
                    try:
                        assert_phone_layout(m, width)
                    except AssertionError as exc:
                        raise AssertionError(f"{name} {lang} at {width} px: {exc}") from exc
                await shot(page, f"state-{name}-{lang}")
        pay_id = await site.link(S.ORDER_ID, "300.52")
        await page.goto(f"{site.url}/pay/{pay_id}")
        assert_phone_layout(await layout(page), 390)


async def test_live_figures_move_in_place_and_the_bill_reloads(site: Site,
                                                               tmp_path: Path) -> None:
    order = await site.store(stored("charging"))
    store = OrderStore(site.redis)
    async with phone(tmp_path / "profile") as ctx:
        page = await ctx.new_page()
        await page.goto(f"{site.url}/track/{order.id}")
        await page.evaluate("window.sameDocument = true")
        assert await live_text(page, "energy") == "3.120 kWh"

        def more(o: Order) -> Order:
            o.session.update(kwh="4.25", cost="150.5",
                             last_updated=datetime.now(UTC).isoformat())
            return o

        await store.update(order.transaction_id, more)
        await expect(page.locator("[data-live='energy']")).to_have_text("4.250 kWh", timeout=15_000)
        assert await live_text(page, "cost") == "₹150.50"
        assert await page.evaluate("window.sameDocument === true")  # no reload for figures

        billed = S.billed()

        def finish(o: Order) -> Order:
            return o.model_copy(update={"state": State.COMPLETED, "session": billed.session,
                                        "settlement": billed.settlement})

        await store.update(order.transaction_id, finish)
        await page.wait_for_selector("table", timeout=15_000)  # a new page: the bill
        assert await page.evaluate("window.sameDocument === undefined")
        _, total = await bill(page)
        assert total == "₹177.13"
        assert await page.locator("script").count() == 0  # final: nothing polls any more


async def test_without_javascript_the_page_refreshes_itself(site: Site, tmp_path: Path) -> None:
    order = await site.store(stored("charging"))
    async with phone(tmp_path / "profile", javascript=False) as ctx:
        page = await ctx.new_page()
        await page.goto(f"{site.url}/track/{order.id}")
        assert await live_text(page, "energy") == "3.120 kWh"

        def more(o: Order) -> Order:
            o.session.update(kwh="5.5")
            return o

        await OrderStore(site.redis).update(order.transaction_id, more)
        await expect(page.locator("[data-live='energy']")).to_have_text("5.500 kWh", timeout=15_000)
