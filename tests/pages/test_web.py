"""The driver pages as served (bridge.journey.web): language, headers, the live form, paying."""

from __future__ import annotations

import orjson

from bridge.journey.strings import EN, HI
from bridge.orders import State
from bridge.store.ocpi_store import OcpiStore
from tests.pages import samples as S
from tests.pages.conftest import Site
from tests.pages.dom import parse, rows
from tests.pages.test_pages import a_cdr

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def get(site: Site, path: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with site.http.get(site.url + path, headers=headers, allow_redirects=False) as r:
        return r.status, await r.text(), dict(r.headers)


async def test_tracking_page_language_headers_and_forms(site: Site) -> None:
    order = await site.store(S.charging())
    path = f"/track/{order.id}"
    status, body, headers = await get(site, path, **HTML, **{"Accept-Language": "hi-IN,hi;q=0.9"})
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    d = parse(body)
    assert d.one("html").attrs["lang"] == "hi" and HI["now_heading"] in d.text()
    assert "script-src 'sha256-" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    # ?lang= wins over the header
    status, body, _ = await get(site, path + "?lang=en", **HTML, **{"Accept-Language": "hi"})
    assert parse(body).one("html").attrs["lang"] == "en"
    # the live form the page's script polls
    status, body, headers = await get(site, path + "?live=1&lang=hi", Accept="application/json")
    live = orjson.loads(body)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert live["poll"] == 5000 and live["live"]["energy"] == "3.120 kWh"
    assert live["live"]["status"] == HI["status_charging"]
    # the Beckn order as JSON, as before; no billing details
    status, body, _ = await get(site, path, Accept="application/json")
    beckn = orjson.loads(body)
    assert beckn["beckn:id"] == order.id and "billing-details" not in beckn[
        "beckn:orderAttributes"]
    status, body, _ = await get(site, path + "?json", **HTML)
    assert orjson.loads(body)["beckn:id"] == order.id
    for secret in (S.SECRET_NAME, S.SECRET_PHONE, S.SECRET_EMAIL):
        assert secret not in body


async def test_unknown_order_or_payment_is_404(site: Site) -> None:
    assert (await get(site, "/track/nope", **HTML))[0] == 404
    assert (await get(site, "/track/nope?live=1"))[0] == 404
    assert (await get(site, "/pay/pay_nope", **HTML))[0] == 404
    async with site.http.post(f"{site.url}/pay/pay_nope", allow_redirects=False) as r:
        assert r.status == 404


async def test_billed_page_reads_what_was_delivered_from_the_billed_cdr(site: Site) -> None:
    order = await site.store(S.billed())
    cdr = a_cdr("CDR-1").model_copy(update={"country_code": "IN", "party_id": "TPC"})
    await OcpiStore(site.redis).put("cdrs", cdr, create_only=True)
    _, body, _ = await get(site, f"/track/{order.id}", **HTML)
    r = rows(parse(body))
    assert (r[EN["energy"]], r[EN["duration"]]) == ("6.500 kWh", "31 min 7 s")


async def test_top_up_is_paid_from_its_page(site: Site) -> None:
    base = S.topped_up_order()
    pay_id = await site.link(base.id, "91.63", key="cdr:top-up")
    assert base.settlement is not None
    order = await site.store(base.model_copy(update={
        "settlement": {**base.settlement, "top_up_payment_id": pay_id}}))
    status, body, _ = await get(site, f"/pay/{pay_id}", **HTML, **{"Accept-Language": "hi"})
    d = parse(body)
    assert status == 200 and d.one("html").attrs["lang"] == "hi"
    assert rows(d)[HI["energy"]] == "6.123 kWh" and rows(d)[HI["top_up_due"]] == "₹91.63"
    # the form posts to itself; the answer sends the browser back to the page (303)
    async with site.http.post(f"{site.url}/pay/{pay_id}?lang=hi", allow_redirects=False,
                              headers=HTML) as r:
        assert r.status == 303 and r.headers["Location"] == "?lang=hi"
    after = await site.order(order.transaction_id)
    assert after.settlement is not None and after.settlement["top_up_status"] == "PAID"
    assert after.state is State.COMPLETED
    d = parse((await get(site, f"/pay/{pay_id}?lang=en", **HTML))[1])
    assert not d.all("form") and "Paid: ₹91.63" in d.one("div", role="status").text()
    d = parse((await get(site, f"/track/{order.id}", **HTML))[1])
    assert rows(d)[EN["top_up_paid"]] == "₹91.63"
    # paying twice changes nothing and still answers
    async with site.http.post(f"{site.url}/pay/{pay_id}", allow_redirects=False,
                              headers={"Accept": "application/json"}) as r:
        assert r.status == 200 and (await r.json())["status"] == "PAID"
