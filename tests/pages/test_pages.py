"""The driver pages' pure renderers (bridge.journey.pages), over orders in every state."""

from __future__ import annotations

import base64
import hashlib
import string
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest

from bridge.journey import pages
from bridge.journey.pages import Phase, money, payment_page, phase, track_live, track_page
from bridge.journey.strings import EN, HI, TABLES, choose, text
from bridge.ocpi.models import CDR
from bridge.orders import State
from bridge.store.orders import Order
from tests.conftest import FIXTURES
from tests.pages import samples as S
from tests.pages.dom import Node, parse, rows, table

LANGS = ("en", "hi")


def doc(order: Order, lang: str = "en") -> Node:
    return parse(track_page(order, S.NOW, lang))


# --------------------------------------------------------------------------- every page


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", list(S.ALL))
def test_every_state_renders_a_phone_page(name: str, lang: str) -> None:
    order = S.ALL[name]()
    raw = track_page(order, S.NOW, lang)
    d = parse(raw)  # well formed: every tag closed in order
    html_el = d.one("html")
    assert html_el.attrs["lang"] == lang
    viewport = [m for m in d.all("meta") if m.attrs.get("name") == "viewport"]
    assert viewport and "width=device-width" in (viewport[0].attrs["content"] or "")
    assert d.one("title").text().strip()
    h1 = d.one("h1").text()
    assert "ORD-62216ee5" in h1
    # the status is said in words (not only by colour), in the page's language
    status = d.one(data_live="status").text()
    assert status == text(lang, pages.STATUS[order.state]) or status == text(
        lang, "status_finishing")
    # the language switch names both languages, the current one marked
    nav = d.one("nav")
    assert [a.attrs["hreflang"] for a in nav.all("a")] == ["en", "hi"]
    assert [a.attrs["hreflang"] for a in nav.all("a", aria_current="true")] == [lang]
    # nothing fetched from elsewhere
    for el in d.all():
        for attr in ("src", "href"):
            value = el.attrs.get(attr) or ""
            assert not value.startswith(("http:", "https:", "//")), (el.tag, value)
    assert not d.all("img") and not d.all("link")


@pytest.mark.parametrize("name", list(S.ALL))
def test_never_shows_who_the_driver_is_or_payment_links(name: str) -> None:
    """The tracking URL is a capability a driver may share."""
    order = S.ALL[name]()
    for lang in LANGS:
        out = track_page(order, S.NOW, lang) + str(track_live(order, S.NOW, lang))
        for secret in (S.SECRET_NAME, S.SECRET_PHONE, S.SECRET_EMAIL, "Srilekha", "9800000201",
                       "pay_0123", S.TOP_UP_ID, "http://bridge/pay", "bap.example", "txn-1"):
            assert secret not in out, (name, secret)


# --------------------------------------------------------------------------- phases


@pytest.mark.parametrize(("name", "expected", "poll"), [
    ("quoted", Phase.BOOKING, 15_000), ("initialized", Phase.BOOKING, 15_000),
    ("confirmed", Phase.WAITING, 10_000), ("reserved", Phase.WAITING, 10_000),
    ("charging", Phase.CHARGING, 5_000), ("interrupted", Phase.INTERRUPTED, 5_000),
    ("finishing", Phase.FINISHING, 5_000), ("billed", Phase.BILLED, 0),
    ("topped_up", Phase.BILLED, 0), ("provisional", Phase.BILLED, 60_000),
    ("cancelled", Phase.ENDED, 0), ("failed", Phase.ENDED, 0), ("expired", Phase.ENDED, 0),
])
def test_phase_and_refresh(name: str, expected: Phase, poll: int) -> None:
    order = S.ALL[name]()
    assert phase(order) is expected
    d = doc(order)
    main = d.one("main")
    scripts = d.all("script")
    refresh = [m for m in d.all("meta") if m.attrs.get("http-equiv") == "refresh"]
    if poll:
        # refreshes by itself: the script polls the live form; without JavaScript, a meta refresh
        assert main.attrs["data-poll"] == str(poll)
        assert main.attrs["data-live-url"] == "?live=1&lang=en"
        assert main.attrs["data-key"] == track_live(order, S.NOW, "en")["key"]
        assert len(scripts) == 1
        assert [m.attrs["content"] for m in refresh] == [str(poll // 1000)]
    else:
        assert "data-poll" not in main.attrs and not scripts and not refresh
    assert track_live(order, S.NOW, "en")["poll"] == poll


def test_the_reload_key_changes_with_the_phase_and_the_bill() -> None:
    keys = {name: track_live(make(), S.NOW, "en")["key"] for name, make in S.ALL.items()}
    assert keys["charging"] != keys["finishing"] != keys["billed"]
    assert keys["charging"] != keys["interrupted"]
    assert keys["billed"] != keys["provisional"]
    assert track_live(S.topped_up_order(), S.NOW, "en")["key"] != track_live(
        S.topped_up_order("PAID"), S.NOW, "en")["key"]
    # the figures move, the key does not: no reload while charging
    later = S.charging()
    later.session["kwh"] = "4.5"
    assert track_live(later, S.NOW, "en")["key"] == keys["charging"]


# --------------------------------------------------------------------------- while charging


@pytest.mark.parametrize(("lang", "duration"), [("en", "20 min 0 s"), ("hi", "20 मिनट 0 सेकंड")])
def test_charging_shows_live_energy_cost_and_duration(lang: str, duration: str) -> None:
    order = S.charging()
    d = doc(order, lang)
    live = {n.attrs["data-live"]: n.text() for n in d.all(data_live="*")}
    assert live["energy"] == "3.120 kWh"
    assert live["cost"] == "₹114.70"
    assert live["duration"] == duration  # now - start (the CPO's last update is earlier)
    assert live["updated"] == text(lang, "updated", time="15:00:00 IST")
    assert track_live(order, S.NOW, lang)["live"] == {k: v for k, v in live.items()
                                                      if k != "connection"}
    r = rows(d)
    assert r[text(lang, "paid")] == "₹300.52"
    # the CPO's cost is labelled as such: it is not the bill
    assert text(lang, "cost_note") in d.text()
    assert not d.all("table")


def test_a_minute_later_the_live_form_moves() -> None:
    order = S.charging()
    later = track_live(order, S.NOW + timedelta(minutes=1, seconds=5), "en")["live"]
    assert later["duration"] == "21 min 5 s"
    assert later["updated"] == "Updated 15:01:05 IST"


def test_interrupted_says_so_in_words_and_keeps_the_last_figures() -> None:
    d = doc(S.interrupted())
    assert "Connection to the charger lost" in d.one(data_live="status").text()
    assert d.one("div", role="status").one("span", aria_hidden="true").text() == "⚠"
    assert d.one(data_live="energy").text() == "3.500 kWh"


def test_finishing_waits_for_the_bill() -> None:
    d = doc(S.finishing())
    assert d.one(data_live="status").text() == EN["status_finishing"]
    assert d.one(data_live="energy").text() == "6.123 kWh"
    assert d.one(data_live="duration").text() == "25 min 0 s"  # the session's own end


# --------------------------------------------------------------------------- after the end


def bill_of(d: Node) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    return table(d.one("table"))


@pytest.mark.parametrize("lang", LANGS)
def test_billed_shows_every_line_the_total_and_the_refund(lang: str) -> None:
    order = S.billed()
    s = order.settlement
    assert s is not None
    d = doc(order, lang)
    lines, total = bill_of(d)
    assert lines == [(ln["title"], money(ln["amount"])) for ln in s["lines"]]
    assert total == (text(lang, "total"), "₹177.13")
    assert sum(Decimal(ln["amount"]) for ln in s["lines"]) == Decimal(s["final_amount"])
    r = rows(d)
    assert r[text(lang, "energy")] == "6.123 kWh"
    assert r[text(lang, "duration")] == text(lang, "dur_ms", m="25", s="0")
    assert r[text(lang, "paid")] == "₹300.52"
    assert r[text(lang, "refunded")] == "₹123.39"
    assert text(lang, "top_up_due") not in r
    # a discount is written with a minus sign, not only in a colour
    assert ("Offer: ₹20 off above 5 kWh", "−₹20.00") in lines
    # the live CPO cost (₹187.13) is not presented as the bill
    assert "₹187.13" not in d.text()


def test_bill_titles_are_marked_english_on_a_hindi_page() -> None:
    d = doc(S.billed(), "hi")
    spans = d.one("tbody").all("span", lang="en")
    assert [s.text() for s in spans] == [ln["title"] for ln in S.BILL_LINES]


@pytest.mark.parametrize(("status", "label"), [(None, "top_up_due"), ("PAID", "top_up_paid")])
def test_top_up_after_a_hold(status: str | None, label: str) -> None:
    d = doc(S.topped_up_order(status))
    r = rows(d)
    assert r[EN["held"]] == "₹85.50"
    assert r[EN["captured"]] == "₹85.50"
    assert r[EN[label]] == "₹91.63"
    assert (EN["top_up_hint"] in d.text()) is (status is None)
    assert bill_of(d)[1] == ("Total", "₹177.13")
    assert r[EN["energy"]] == "6.123 kWh"  # delivered, not the 2 kWh estimate


def test_provisional_bill_says_it_may_change() -> None:
    d = doc(S.provisional())
    assert EN["provisional"] in d.text()
    assert bill_of(d)[1] == ("Total", "₹177.13")


def test_cancelled_shows_the_charge_and_the_refund() -> None:
    d = doc(S.cancelled())
    assert bill_of(d) == ([("Cancellation charge", "₹45.08")], ("Total", "₹45.08"))
    r = rows(d)
    assert r[EN["paid"]] == "₹300.52" and r[EN["refunded"]] == "₹255.44"
    assert d.one("div", role="status").one("span", aria_hidden="true").text() == "✕"


def test_failed_refunds_everything_and_charges_nothing() -> None:
    d = doc(S.failed())
    assert not d.all("table")
    assert EN["nothing_charged"] in d.text()
    assert rows(d)[EN["refunded"]] == "₹300.52"


def test_before_charging_shows_the_quote_and_the_slot() -> None:
    d = doc(S.reserved())
    r = rows(d)
    assert r[EN["estimated_energy"]] == "10.000 kWh"
    assert r[EN["slot"]] == "2025-03-01 15:40 – 16:40 IST"
    assert bill_of(d)[1] == ("Total", "₹300.52")
    assert r[EN["charger"]] == "IN*TPC*E1301"
    assert r[EN["connector"]] == "CCS2 · 120 kW"


# --------------------------------------------------------------------------- payment page


def pay_doc(state_kw: dict[str, str], order: Order | None, lang: str = "en") -> Node:
    return parse(payment_page(S.payment(**state_kw), order, S.NOW, lang))


def test_first_payment_shows_the_quote_and_one_button() -> None:
    d = pay_doc({}, S.initialized())
    assert d.one("h1").text() == "Payment for order ORD-62216ee5"
    assert d.one("p", **{"class": "owed"}).text() == "₹300.52"
    form = d.one("form")
    assert form.attrs["method"] == "post" and form.attrs["action"] == "?lang=en"
    assert form.one("button").text() == "Pay ₹300.52"
    assert rows(d)[EN["estimated_energy"]] == "10.000 kWh"
    assert bill_of(d)[1] == ("Total", "₹300.52")


def test_hold_says_what_happens_to_the_rest() -> None:
    d = pay_doc({"mode": "HOLD", "amount": "85.50"}, S.initialized(), "hi")
    assert d.one("button").text() == text("hi", "hold_button", amount="₹85.50")
    assert text("hi", "hold_note") in d.text()


@pytest.mark.parametrize("lang", LANGS)
def test_top_up_page_shows_what_was_delivered_and_what_is_owed(lang: str) -> None:
    """It showed the estimate (2.0 kWh) after 6 kWh were delivered."""
    order = S.topped_up_order()
    d = pay_doc({"payment_id": S.TOP_UP_ID, "amount": "91.63"}, order, lang)
    assert d.one("h1").text() == text(lang, "title_top_up", number="ORD-62216ee5")
    r = rows(d)
    assert r[text(lang, "energy")] == "6.123 kWh"
    assert r[text(lang, "duration")] == text(lang, "dur_ms", m="25", s="0")
    assert text(lang, "estimated_energy") not in r and "2.000 kWh" not in d.text()
    lines, total = bill_of(d)
    assert total == (text(lang, "total"), "₹177.13")
    assert len(lines) == len(S.BILL_LINES)
    assert r[text(lang, "held")] == "₹85.50" and r[text(lang, "captured")] == "₹85.50"
    assert r[text(lang, "top_up_due")] == "₹91.63"
    assert d.one("p", **{"class": "owed"}).text() == "₹91.63"
    assert d.one("button").text() == text(lang, "pay_button", amount="₹91.63")
    assert text(lang, "top_up_hint") not in d.text()  # this page is the link


def test_paid_shows_done_not_a_button() -> None:
    d = pay_doc({"status": "PAID"}, S.confirmed())
    assert not d.all("form")
    assert d.one("div", role="status").text().endswith("Paid: ₹300.52")
    d = pay_doc({"status": "HELD", "mode": "HOLD"}, S.confirmed())
    assert "Hold placed: ₹300.52" in d.one("div", role="status").text()


def test_payment_without_its_order_still_shows_the_amount() -> None:
    d = pay_doc({}, None)
    assert d.one("button").text() == "Pay ₹300.52"
    assert not d.all("table")


def test_payment_page_hides_the_driver_too() -> None:
    for order in (S.initialized(), S.topped_up_order()):
        out = payment_page(S.payment(), order, S.NOW, "en")
        for secret in (S.SECRET_NAME, S.SECRET_PHONE, S.SECRET_EMAIL, S.ORDER_ID):
            assert secret not in out


# --------------------------------------------------------------------------- escaping


EVIL = '<script>alert("x")</script>&"\'><img src=x onerror=alert(1)>'


def evil_order() -> Order:
    o = S.billed()
    assert o.item is not None and o.settlement is not None
    item = o.item.model_copy(update={"location_name": EVIL, "evse_id": EVIL, "address": EVIL,
                                     "connector_type": EVIL})
    settlement = {**o.settlement, "lines": [{**S.BILL_LINES[0], "title": EVIL}],
                  "currency": "INR"}
    return o.model_copy(update={"item": item, "settlement": settlement, "id": EVIL})


@pytest.mark.parametrize("render", [
    lambda o, lang: track_page(o, S.NOW, lang),
    lambda o, lang: payment_page(S.payment(order_id=o.id), o, S.NOW, lang),
    lambda o, lang: track_page(o.model_copy(update={"state": State.ACTIVE, "settlement": None}),
                               S.NOW, lang),
])
def test_everything_is_escaped(render: Callable[[Order, str], str]) -> None:
    out = render(evil_order(), "hi")
    assert "<script>alert" not in out and "<img" not in out and "onerror=alert(1)>" not in out
    d = parse(out)
    assert len(d.all("script")) <= 1 and not d.all("img")
    assert EVIL[:20] in d.text()  # shown, as text


def test_unknown_language_falls_back_to_english() -> None:
    assert doc(S.billed(), "xx").one("html").attrs["lang"] == "en"


# --------------------------------------------------------------------------- the document


def test_csp_allows_exactly_the_inline_style_and_script() -> None:
    raw = track_page(S.charging(), S.NOW, "en")
    csp = pages.HEADERS["Content-Security-Policy"]

    def sha(s: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"

    style = raw.split("<style>")[1].split("</style>")[0]
    script = raw.split("<script>")[1].split("</script>")[0]
    assert f"style-src {sha(style)};" in csp and f"script-src {sha(script)};" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert pages.HEADERS["Referrer-Policy"] == "no-referrer"


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(("value", "currency", "expected"), [
    ("1234.5", "INR", "₹1,234.50"), ("-20", "INR", "−₹20.00"), ("0", "INR", "₹0.00"),
    ("0.005", "INR", "₹0.01"), ("12.5", "EUR", "€12.50"), ("1500", "JPY", "1,500 JPY"),
    ("not a number", "INR", "₹0.00"), ("NaN", "INR", "₹0.00"),
])
def test_money(value: str, currency: str, expected: str) -> None:
    assert money(value, currency) == expected


@pytest.mark.parametrize(("seconds", "en", "hi"), [
    (45, "45 s", "45 सेकंड"), (125, "2 min 5 s", "2 मिनट 5 सेकंड"),
    (3900, "1 h 5 min", "1 घंटा 5 मिनट"), (-5, "0 s", "0 सेकंड"),
])
def test_duration_text(seconds: int, en: str, hi: str) -> None:
    d = timedelta(seconds=seconds)
    assert (pages.duration(d, "en"), pages.duration(d, "hi")) == (en, hi)


# --------------------------------------------------------------------------- strings


@pytest.mark.parametrize(("query", "header", "expected"), [
    (None, None, "en"), (None, "", "en"), (None, "hi-IN,hi;q=0.9,en-US;q=0.8,en;q=0.7", "hi"),
    (None, "en-IN,en;q=0.9,hi;q=0.8", "en"), (None, "fr-FR,fr;q=0.9", "en"),
    (None, "fr;q=1, hi;q=0.5", "hi"), (None, "hi;q=0", "en"), (None, "hi;q=abc,en;q=0.1", "en"),
    (None, "HI", "hi"), (None, "*", "en"), (None, "en;q=0.4,hi;q=0.6", "hi"),
    ("hi", "en", "hi"), ("en", "hi", "en"), ("HI-in", None, "hi"), ("xx", "hi", "hi"),
    ("", "hi", "hi"), (None, ",,;;q=,", "en"), (None, "hi," * 5000, "hi"),
])
def test_choose_language(query: str | None, header: str | None, expected: str) -> None:
    assert choose(query, header) == expected


def _fields(s: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(s) if f}


def test_both_languages_have_every_string_with_the_same_placeholders() -> None:
    assert set(EN) == set(HI)
    for key in EN:
        assert _fields(EN[key]) == _fields(HI[key]), key
        assert HI[key].strip(), key
    assert set(TABLES) == {"en", "hi"}


def test_every_state_has_its_words() -> None:
    for state in State:
        assert pages.STATUS[state] in EN


# --------------------------------------------------------------------------- delivered, from the CDR


def a_cdr(cdr_id: str) -> CDR:
    data = orjson.loads((FIXTURES / "pricing" / "cdr_time.json").read_bytes())
    data.update(id=cdr_id, total_energy=6.5, start_date_time=S.START.isoformat(),
                end_date_time=(S.START + timedelta(minutes=31, seconds=7)).isoformat())
    return CDR.model_validate(data)


def test_what_was_delivered_is_the_billed_cdrs() -> None:
    """The CDR the bill was made on may be newer than the last session update (an offline
    charger reports late): the page shows the CDR's energy and its own start to end."""
    order = S.billed()
    for render in (lambda c: track_page(order, S.NOW, "en", cdr=c),
                   lambda c: payment_page(S.payment(S.TOP_UP_ID), S.topped_up_order()
                                          .model_copy(update={"cdr_id": "CDR-1"}), S.NOW, "en",
                                          cdr=c)):
        r = rows(parse(render(a_cdr("CDR-1"))))
        assert (r[EN["energy"]], r[EN["duration"]]) == ("6.500 kWh", "31 min 7 s")
        # another CDR than the one billed is not what was delivered
        r = rows(parse(render(a_cdr("CDR-9"))))
        assert (r[EN["energy"]], r[EN["duration"]]) == ("6.123 kWh", "25 min 0 s")
