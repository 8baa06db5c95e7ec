"""The driver pages, rendered: the tracking page and the payment / top-up page.

Pure: a page is a function of the order (and the payment), `now` and the
language; no I/O (bridge.journey.web loads and calls). Every value taken from
the order is escaped.

What they show, and from where, so that a page never disagrees with the Beckn
messages the BAP got:

- while charging: energy, the CPO's cost so far and the duration from the
  order's session snapshot (the same figures as `real-time-metrics`, duration
  by bridge.journey.metering), refreshed by a small inline script that polls the
  page's live JSON form (`?live=1`), or by a meta refresh without JavaScript;
- after the end: every line of the final bill, its total, and what was paid,
  held, captured, released, refunded or is still to pay, all from the order's
  `settlement` (the bill of the last `on_update`), with the energy and duration
  actually delivered;
- the payment page: the quote for the first payment; for a top-up, what was
  delivered, the bill, what was collected and what is still owed.

The tracking URL is a capability a driver may share: nothing here reads the
order's `customer` (billing details, phone, name), and the top-up link is not
shown there (it was sent to the driver by SMS and in the `on_update`).

Everything a page needs is in the response: one inline stylesheet and one
inline script, allowed by their hashes in the Content-Security-Policy
(`HEADERS`); no CDN, no fonts or images fetched.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bridge.journey.metering import delivered, session_duration, session_over
from bridge.journey.strings import NAMES, TABLES, text
from bridge.mapping.money import minor_unit
from bridge.ocpi.models import CDR
from bridge.orders import State
from bridge.payments import PaymentState
from bridge.store.orders import Order

__all__ = ["HEADERS", "Phase", "payment_page", "phase", "track_live", "track_page"]


class Phase(StrEnum):
    """What the tracking page shows; a change of phase reloads the page."""

    BOOKING = "booking"  # quoted, awaiting payment / confirmation
    WAITING = "waiting"  # booked or reserved, not charging yet
    CHARGING = "charging"
    INTERRUPTED = "interrupted"
    FINISHING = "finishing"  # the session ended, the CDR (and so the bill) not here yet
    BILLED = "billed"
    ENDED = "ended"  # cancelled, no-show, failed


# How often the page asks again (ms); 0 = the page is final. A provisional bill
# (settled on the session data after an outage) may still be corrected by a late CDR.
POLL_MS: dict[Phase, int] = {
    Phase.BOOKING: 15_000, Phase.WAITING: 10_000, Phase.CHARGING: 5_000,
    Phase.INTERRUPTED: 5_000, Phase.FINISHING: 5_000, Phase.BILLED: 0, Phase.ENDED: 0,
}
PROVISIONAL_POLL_MS = 60_000

STATUS: dict[State, str] = {
    State.DRAFT: "status_quoted", State.QUOTED: "status_quoted",
    State.INITIALIZED: "status_initialized", State.PAYMENT_PENDING: "status_payment",
    State.CONFIRMED: "status_confirmed", State.RESERVED: "status_reserved",
    State.ACTIVE: "status_charging", State.INTERRUPTED: "status_interrupted",
    State.COMPLETED: "status_completed", State.CANCELLED: "status_cancelled",
    State.EXPIRED: "status_expired", State.FAILED: "status_failed",
}

# Phase -> (symbol, tone). The symbol and the words carry the meaning; the tone's
# colour only repeats it (WCAG 1.4.1).
LOOK: dict[Phase, tuple[str, str]] = {
    Phase.BOOKING: ("…", "wait"), Phase.WAITING: ("◔", "wait"), Phase.CHARGING: ("⚡", "live"),
    Phase.INTERRUPTED: ("⚠", "warn"), Phase.FINISHING: ("◔", "wait"), Phase.BILLED: ("✓", "ok"),
    Phase.ENDED: ("✕", "bad"),
}

_SYMBOLS = {"INR": "₹", "EUR": "€", "USD": "$", "GBP": "£"}
_KWH = Decimal("0.001")

# Contrast (WCAG AA, 4.5:1 for text): #1b1b1b and #464646 on white 16.9:1 and 9.5:1;
# links and the button #0b5394 / white 7.8:1; each tone's text stays #1b1b1b.
STYLE = """
:root{color-scheme:light;--fg:#1b1b1b;--muted:#464646;--bg:#fff;--line:#bdbdbd;--accent:#0b5394}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:1.0625rem/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,"Noto Sans","Noto Sans Devanagari","Lohit Devanagari",sans-serif}
header,main,footer{max-width:36rem;margin:0 auto;padding:0 1rem}
header{display:flex;justify-content:flex-end}
nav ul{list-style:none;display:flex;gap:1.25rem;margin:.75rem 0 0;padding:0}
nav a{display:inline-block;padding:.25rem 0;min-height:2.75rem;line-height:2.25rem}
a{color:var(--accent)}
a[aria-current]{color:var(--fg);font-weight:700;text-decoration:none}
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem;overflow-wrap:break-word}
.nowrap{white-space:nowrap}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);
white-space:nowrap}
h2{font-size:1.125rem;margin:1.75rem 0 .5rem}
.status{display:flex;gap:.75rem;align-items:flex-start;border:2px solid;border-radius:.5rem;
padding:.75rem 1rem;font-weight:600}
.status .icon{font-size:1.5rem;line-height:1.1}
.tone-ok{border-color:#1e7b34;background:#eaf6ec}
.tone-live{border-color:#0b5394;background:#e8f0fa}
.tone-warn{border-color:#8a5a00;background:#fff4d6;border-style:dashed}
.tone-wait{border-color:#5c5c5c;background:#f2f2f2}
.tone-bad{border-color:#a4262c;background:#fbeaea}
.tiles{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:.75rem}
dl{margin:0}
dl div{display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 1rem;padding:.4rem 0;
border-bottom:1px solid var(--line)}
dl div.wide{display:block}
dl div.wide dd{text-align:left}
dt{color:var(--muted)}
dd{margin:0 0 0 auto;font-weight:600;text-align:right;font-variant-numeric:tabular-nums;
overflow-wrap:anywhere}
.tiles div.tile{display:block;min-width:0;border:1px solid var(--line);border-radius:.5rem;
padding:.5rem .75rem}
.tiles div.tile:last-child{grid-column:1/-1}
.tiles dt{font-size:.9375rem}
.tiles dd.big{margin:0;text-align:left;font-size:1.375rem;font-weight:700}
table{width:100%;border-collapse:collapse}
caption{text-align:left}
th,td{text-align:left;vertical-align:top;padding:.4rem 0;border-bottom:1px solid var(--line);
overflow-wrap:anywhere}
tbody th{font-weight:400}
.amount{text-align:right;white-space:nowrap;padding-left:1rem;font-variant-numeric:tabular-nums}
tfoot th,tfoot td{font-weight:700;border-top:2px solid var(--fg);border-bottom:0}
.owed{font-size:2rem;font-weight:700;margin:.25rem 0}
.note{color:var(--muted);font-size:.9375rem}
button{font:inherit;font-weight:700;width:100%;min-height:3rem;margin:1rem 0;padding:.75rem 1rem;
border:0;border-radius:.5rem;background:var(--accent);color:#fff;cursor:pointer}
a:focus-visible,button:focus-visible{outline:3px solid #b36b00;outline-offset:2px}
footer{margin-top:2rem;padding-bottom:2rem}
"""

# Polls the live JSON form; a change of phase (or of the bill) reloads the page, which
# the server renders anew. Backs off while the server cannot be reached.
SCRIPT = """
(function () {
  var main = document.getElementById("main");
  var url = main.getAttribute("data-live-url");
  var poll = parseInt(main.getAttribute("data-poll") || "0", 10);
  var key = main.getAttribute("data-key");
  var offline = main.getAttribute("data-offline") || "";
  var failures = 0;
  if (!url || !poll) { return; }
  function set(name, value) {
    var nodes = document.querySelectorAll("[data-live='" + name + "']");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].textContent !== value) { nodes[i].textContent = value; }
    }
  }
  function tick() {
    fetch(url, {cache: "no-store", credentials: "omit", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (v) {
        failures = 0;
        set("connection", "");
        if (v.key !== key) { window.location.reload(); return; }
        for (var name in v.live) { set(name, v.live[name]); }
        if (v.poll) { poll = v.poll; setTimeout(tick, poll); }
      })
      .catch(function () {
        failures += 1;
        set("connection", offline);
        setTimeout(tick, Math.min(poll * Math.pow(2, failures), 60000));
      });
  }
  setTimeout(tick, poll);
})();
"""


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Only our own inline style and script run; the page may call back only its own origin
# and post its form only to itself; it sends no Referer (its URL is a capability).
HEADERS: dict[str, str] = {
    "Content-Security-Policy": (f"default-src 'none'; style-src {_sha256(STYLE)}; "
                                f"script-src {_sha256(SCRIPT)}; connect-src 'self'; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Vary": "Accept, Accept-Language",
}


# --------------------------------------------------------------------------- values


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _dec(value: Any) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return d if d.is_finite() else Decimal(0)


def money(value: Any, currency: str = "INR") -> str:
    """₹1,234.50; a negative amount (a discount) with a real minus sign: −₹20.00."""
    cur = (currency or "INR").upper()
    d = _dec(value).quantize(minor_unit(cur), ROUND_HALF_UP)
    sign = "−" if d < 0 else ""
    body = f"{abs(d):,}"
    sym = _SYMBOLS.get(cur)
    return f"{sign}{sym}{body}" if sym else f"{sign}{body} {cur}"


def energy(value: Any) -> str:
    return f"{_dec(value).quantize(_KWH, ROUND_HALF_UP)} kWh"


def duration(d: timedelta, lang: str) -> str:
    secs = max(int(d.total_seconds()), 0)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    if h:
        return text(lang, "dur_hm", h=str(h), m=str(m))
    if m:
        return text(lang, "dur_ms", m=str(m), s=str(s))
    return text(lang, "dur_s", s=str(s))


def _zone(order: Order | None) -> ZoneInfo | None:
    name = order.item.time_zone if order and order.item else "Asia/Kolkata"
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return None


def local_time(dt: datetime, order: Order | None, *, date: bool = False) -> str:
    """In the charger's time zone, with the zone's abbreviation (14:03:21 IST)."""
    zone = _zone(order)
    at = dt.astimezone(zone) if zone else dt.astimezone(UTC)
    return at.strftime(("%Y-%m-%d %H:%M" if date else "%H:%M:%S") + " %Z")


def slot_text(start: datetime, end: datetime | None, order: Order | None) -> str:
    """2025-03-01 15:40 – 16:40 IST (the date once when the slot ends the same day)."""
    first = local_time(start, order, date=True)
    if end is None:
        return first
    last = local_time(end, order, date=True)
    if first[:10] == last[:10]:
        return f"{first[:16]} – {last[11:]}"
    return f"{first} – {last}"


def _when(value: Any) -> datetime | None:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else None


def order_number(order_id: str) -> str:
    return f"ORD-{order_id[:8]}"


# --------------------------------------------------------------------------- state


def phase(order: Order) -> Phase:
    s = order.state
    if s in (State.DRAFT, State.QUOTED, State.INITIALIZED, State.PAYMENT_PENDING):
        return Phase.BOOKING
    if s in (State.CONFIRMED, State.RESERVED):
        return Phase.WAITING
    if s is State.ACTIVE:
        return Phase.FINISHING if session_over(order) else Phase.CHARGING
    if s is State.INTERRUPTED:
        return Phase.INTERRUPTED
    if s is State.COMPLETED:
        return Phase.BILLED
    return Phase.ENDED


def poll_ms(order: Order) -> int:
    p = phase(order)
    if p is Phase.BILLED and (order.settlement or {}).get("provisional"):
        return PROVISIONAL_POLL_MS
    return POLL_MS[p]


def reload_key(order: Order) -> str:
    """Changes whenever the page's structure would: the phase, or the bill behind it."""
    s = order.settlement or {}
    return "|".join((phase(order).value, str(s.get("key", "")), str(bool(s.get("provisional"))),
                     str(s.get("top_up_status", "")), str(len(s.get("credits") or []))))


def status_text(order: Order, lang: str) -> str:
    if phase(order) is Phase.FINISHING:
        return text(lang, "status_finishing")
    return text(lang, STATUS[order.state])


def live_values(order: Order, now: datetime, lang: str) -> dict[str, str]:
    """The figures the script refreshes, by their `data-live` names."""
    s = order.session
    out = {"status": status_text(order, lang),
           "updated": text(lang, "updated", time=local_time(now, order))}
    if s:
        out["energy"] = energy(s.get("kwh", "0"))
        out["cost"] = money(s.get("cost", "0"), s.get("currency", "INR"))
        d = session_duration(order, now)
        out["duration"] = duration(d, lang) if d is not None else "—"
    return out


def track_live(order: Order, now: datetime, lang: str) -> dict[str, Any]:
    """The tracking page's live JSON form (`?live=1`), what its script polls."""
    return {"key": reload_key(order), "poll": poll_ms(order), "live": live_values(order, now, lang)}


# --------------------------------------------------------------------------- pieces


def _rows(rows: Sequence[tuple[str, str, str | None]]) -> str:
    """A definition list of (label, value, data-live name or None); values escaped here.
    A long value (an address) goes under its label rather than beside it."""
    out = []
    for label, value, live in rows:
        attr = f' data-live="{_e(live)}"' if live else ""
        wide = ' class="wide"' if len(value) > 28 else ""
        out.append(f"<div{wide}><dt>{_e(label)}</dt><dd{attr}>{_e(value)}</dd></div>")
    return f"<dl>{''.join(out)}</dl>"


def _title_span(title: str, lang: str) -> str:
    """A bill line title: the pricing engine's English words, marked so on a Hindi page."""
    return f'<span lang="en">{_e(title)}</span>' if lang != "en" else _e(title)


def _lines_table(lines: Sequence[dict[str, Any]], total: Any, currency: str, lang: str,
                 caption: str) -> str:
    body = "".join(
        f'<tr><th scope="row">{_title_span(str(ln.get("title", "")), lang)}</th>'
        f'<td class="amount">{_e(money(ln.get("amount", "0"), ln.get("currency", currency)))}'
        f"</td></tr>" for ln in lines)
    return (f'<table><caption class="sr-only">{_e(caption)}</caption><thead><tr>'
            f'<th scope="col">{_e(text(lang, "item"))}</th>'
            f'<th scope="col" class="amount">{_e(text(lang, "amount"))}</th></tr></thead>'
            f"<tbody>{body}</tbody><tfoot><tr>"
            f'<th scope="row">{_e(text(lang, "total"))}</th>'
            f'<td class="amount">{_e(money(total, currency))}</td></tr></tfoot></table>')


def _status_box(order: Order, lang: str) -> str:
    icon, tone = LOOK[phase(order)]
    return (f'<div class="status tone-{tone}" role="status" aria-live="polite">'
            f'<span class="icon" aria-hidden="true">{icon}</span>'
            f'<span data-live="status">{_e(status_text(order, lang))}</span></div>')


def _charger(order: Order, lang: str) -> str:
    item = order.item
    if item is None:
        return ""
    rows: list[tuple[str, str, str | None]] = [(text(lang, "charger"),
                                                item.evse_id or item.evse_uid, None)]
    kind = " · ".join(x for x in (item.connector_type or "",
                                  f"{item.max_power_kw:g} kW" if item.max_power_kw else "") if x)
    if kind:
        rows.append((text(lang, "connector"), kind, None))
    place = ", ".join(x for x in (item.location_name, item.address) if x)
    if place:
        rows.append((text(lang, "location"), place, None))
    start, end = _when(order.request.get("start")), _when(order.request.get("end"))
    if order.request.get("reservation") and start:
        rows.append((text(lang, "slot"), slot_text(start, end, order), None))
    return f"<section><h2>{_e(text(lang, 'charger_heading'))}</h2>{_rows(rows)}</section>"


def _collected(order: Order) -> tuple[str, Decimal] | None:
    """("paid" | "held", amount) collected before charging, if anything was."""
    p = order.payment
    if p.get("status") == "PAID":
        return "paid", _dec(p.get("amount", "0"))
    if p.get("status") == "HELD":
        return "held", _dec(p.get("amount", "0"))
    return None


def _delivered(order: Order, now: datetime, lang: str, cdr: CDR | None) -> str:
    d = delivered(order, now, cdr)
    if d is None:
        return ""
    rows: list[tuple[str, str, str | None]] = [
        (text(lang, "energy"), energy(d.kwh), None),
        (text(lang, "duration"), duration(d.duration, lang) if d.duration is not None else "—",
         None)]
    return f"<section><h2>{_e(text(lang, 'delivered_heading'))}</h2>{_rows(rows)}</section>"


def _charging_now(order: Order, now: datetime, lang: str) -> str:
    v = live_values(order, now, lang)
    tiles = "".join(
        f'<div class="tile"><dt>{_e(text(lang, key))}</dt>'
        f'<dd class="big" data-live="{name}">{_e(v.get(name, "—"))}</dd></div>'
        for name, key in (("energy", "energy"), ("cost", "cost_so_far"), ("duration", "duration")))
    out = (f"<section><h2>{_e(text(lang, 'now_heading'))}</h2><dl class=\"tiles\">{tiles}</dl>"
           f'<p class="note">{_e(text(lang, "cost_note"))}</p>')
    got = _collected(order)
    if got:
        out += _rows([(text(lang, got[0]), money(got[1], order.payment.get("currency", "INR")),
                       None)])
        out += f'<p class="note">{_e(text(lang, "unused_back"))}</p>'
    return out + "</section>"


def _quote(order: Order, lang: str) -> str:
    q = order.quote
    if not q:
        return ""
    cur = q.get("currency", "INR")
    rows: list[tuple[str, str, str | None]] = []
    if q.get("energy_kwh") is not None:
        rows.append((text(lang, "estimated_energy"), energy(q["energy_kwh"]), None))
    out = f"<section><h2>{_e(text(lang, 'quote_heading'))}</h2>{_rows(rows)}"
    out += _lines_table(q.get("lines") or [], q.get("total", "0"), cur, lang,
                        text(lang, "quote_heading"))
    got = _collected(order)
    if got:
        out += _rows([(text(lang, got[0]), money(got[1], order.payment.get("currency", cur)),
                       None)])
    return out + "</section>"


def _payments(order: Order, lang: str, *, hint: bool = True) -> str:
    """What was collected and what moved after the bill, from the settlement."""
    s = order.settlement or {}
    cur = s.get("currency", "INR")
    held = order.payment.get("status") == "HELD" or (
        order.payment.get("mode") == "HOLD" and _dec(s.get("release", 0)) > 0)
    rows: list[tuple[str, str, str | None]] = []
    paid = _dec(s.get("paid", "0"))
    if paid:
        rows.append((text(lang, "held" if held else "paid"), money(paid, cur), None))
    for field, key in (("capture", "captured"), ("release", "released"),
                       ("refund", "refunded")):
        amount = _dec(s.get(field, "0"))
        if amount:
            rows.append((text(lang, key), money(amount, cur), None))
    top_up = _dec(s.get("top_up", "0"))
    note = ""
    if top_up:
        paid_up = s.get("top_up_status") == "PAID"
        rows.append((text(lang, "top_up_paid" if paid_up else "top_up_due"), money(top_up, cur),
                     None))
        if not paid_up and hint:
            note = f'<p class="note">{_e(text(lang, "top_up_hint"))}</p>'
    for c in s.get("credits") or []:
        rows.append((text(lang, "credit"), money(c.get("amount", "0"), cur), None))
    if not rows:
        return ""
    return f"<section><h2>{_e(text(lang, 'payments_heading'))}</h2>{_rows(rows)}{note}</section>"


def _bill(order: Order, lang: str) -> str:
    s = order.settlement
    if not s or "final_amount" not in s:
        return ""
    lines = s.get("lines") or []
    out = f"<section><h2>{_e(text(lang, 'bill_heading'))}</h2>"
    if s.get("provisional"):
        out += f'<p class="note"><strong>{_e(text(lang, "provisional"))}</strong></p>'
    if lines:
        out += _lines_table(lines, s["final_amount"], s.get("currency", "INR"), lang,
                            text(lang, "bill_caption"))
    else:
        out += f"<p>{_e(text(lang, 'nothing_charged'))}</p>"
    return out + "</section>"


def _h1(lang: str, key: str, number: str) -> str:
    """The page's heading, the order number kept on one line."""
    mark = "\x00"
    words = _e(text(lang, key, number=mark))
    return "<h1>" + words.replace(mark, f'<span class="nowrap">{_e(number)}</span>') + "</h1>"


def _nav(lang: str) -> str:
    current = ' aria-current="true"'
    links = "".join(
        f'<li><a href="?lang={code}" hreflang="{code}" lang="{code}"'
        f'{current if code == lang else ""}>{_e(name)}</a></li>'
        for code, name in NAMES.items())
    return f'<header><nav aria-label="{_e(text(lang, "language"))}"><ul>{links}</ul></nav></header>'


def _document(lang: str, title: str, main: str, *, main_attrs: str = "", refresh_s: int = 0,
              script: bool = False) -> str:
    lang = lang if lang in TABLES else "en"
    refresh = (f'<noscript><meta http-equiv="refresh" content="{refresh_s}"></noscript>'
               if refresh_s else "")
    js = f"<script>{SCRIPT}</script>" if script else ""
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="referrer" content="no-referrer">'
            f"<title>{_e(title)}</title><style>{STYLE}</style>{refresh}</head><body>"
            f"{_nav(lang)}<main id=\"main\"{main_attrs}>{main}</main>{js}</body></html>")


# --------------------------------------------------------------------------- pages


def track_page(order: Order, now: datetime, lang: str, *, cdr: CDR | None = None) -> str:
    """The tracking page (`GET /track/{order_id}`) for a browser; `cdr`: the order's billed
    CDR, if any (what was delivered is read from it)."""
    number = order_number(order.id)
    title = text(lang, "title_track", number=number)
    p = phase(order)
    body = [_h1(lang, "title_track", number), _status_box(order, lang)]
    if p in (Phase.CHARGING, Phase.INTERRUPTED, Phase.FINISHING):
        body.append(_charging_now(order, now, lang))
    elif p in (Phase.BILLED, Phase.ENDED):
        body += [_delivered(order, now, lang, cdr), _bill(order, lang), _payments(order, lang)]
    else:
        body.append(_quote(order, lang))
    body.append(_charger(order, lang))
    every = poll_ms(order)
    body.append(f'<p class="note" data-live="updated">'
                f'{_e(text(lang, "updated", time=local_time(now, order)))}</p>')
    attrs = ""
    if every:
        body.append(f'<p class="note">{_e(text(lang, "auto_update", seconds=str(every // 1000)))}'
                    f'</p><p class="note" data-live="connection" role="status"></p>')
        attrs = (f' data-live-url="?live=1&amp;lang={_e(lang)}" data-poll="{every}"'
                 f' data-key="{_e(reload_key(order))}" data-offline="{_e(text(lang, "offline"))}"')
    return _document(lang, title, "".join(body), main_attrs=attrs, refresh_s=every // 1000,
                     script=bool(every))


def payment_page(state: PaymentState, order: Order | None, now: datetime, lang: str, *,
                 cdr: CDR | None = None) -> str:
    """The sandbox gateway's page (`GET /pay/{payment_id}`): what is paid for, and one button.

    A top-up (the settlement's `top_up_payment_id`) shows what was delivered, the bill,
    what was collected and what is still owed; the first payment shows the quote.
    """
    number = order_number(state.order_id)
    s = (order.settlement or {}) if order else {}
    top_up = bool(order and s.get("top_up_payment_id") == state.payment_id)
    key = "title_top_up" if top_up else "title_pay"
    title = text(lang, key, number=number)
    hold = state.mode == "HOLD"
    amount = money(state.amount, state.currency)
    heading = text(lang, "owed_heading") if top_up else text(lang, "to_hold" if hold else "to_pay")
    box = f'<section><h2>{_e(heading)}</h2><p class="owed">{_e(amount)}</p>'
    if top_up:
        box += f'<p class="note">{_e(text(lang, "top_up_owed"))}</p>'
    elif hold:
        box += f'<p class="note">{_e(text(lang, "hold_note"))}</p>'
    if state.status == "CREATED":
        label = text(lang, "hold_button" if hold else "pay_button", amount=amount)
        box += (f'<form method="post" action="?lang={_e(lang)}">'
                f'<button type="submit">{_e(label)}</button></form>')
    else:
        done = {"PAID": "done_paid", "HELD": "done_held"}.get(state.status)
        words = text(lang, done, amount=amount) if done else text(lang, "done_closed")
        box += (f'<div class="status tone-ok" role="status"><span class="icon" aria-hidden="true">'
                f"✓</span><span>{_e(words)}</span></div>")
    body = [_h1(lang, key, number), f'<p class="note">{_e(text(lang, "sandbox"))}</p>',
            box + "</section>"]
    if order is not None:
        if top_up:
            body += [_delivered(order, now, lang, cdr), _bill(order, lang),
                     _payments(order, lang, hint=False)]
        elif order.session:
            body.append(_delivered(order, now, lang, cdr))
        else:
            body.append(_quote(order, lang))
        body.append(_charger(order, lang))
    return _document(lang, title, "".join(body))
