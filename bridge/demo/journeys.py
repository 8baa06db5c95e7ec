"""The four journeys of issue 7 and the runner that plays them.

The chargers are the mock CPO's demo fixtures (docs/mock-cpo.md, config/networks/india.toml):
the RESERVABLE CCS2 charger IN*TPC*E1301*1 and its neighbour IN*TPC*E1301*2 at TezPower's
highway plaza in Maddur on the Bengaluru–Mysuru expressway (TPC-HWY-MDR), and the QR
charger IN*TPC*E1001*1 at Forum Mall Koramangala, Bengaluru (TPC-BLR-KRM).

Sizes are picked so that at the mock's `--speed 120` every journey takes seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bridge.demo import steps, view
from bridge.demo.bap import DemoBap, Identity, Inspect
from bridge.demo.client import Client, DemoFailure, Endpoints
from bridge.demo.render import Printer, inr, kwh
from bridge.demo.steps import Booking, Driver
from bridge.mapping.catalog import item_id

IST = ZoneInfo("Asia/Kolkata")
HIGHWAY = "TPC-HWY-MDR"
RESERVABLE = (item_id("IN", "TPC", HIGHWAY, "TPC-MDR-1", "1"), "IN*TPC*E1301*1")
HIGHWAY_2 = (item_id("IN", "TPC", HIGHWAY, "TPC-MDR-2", "1"), "IN*TPC*E1301*2")
KORAMANGALA = (item_id("IN", "TPC", "TPC-BLR-KRM", "TPC-KRM-1", "1"), "IN*TPC*E1001*1")
QR_PAYLOAD = "https://qr.tezpower.example/c?evse_id=IN*TPC*E1001*1"

SRILEKHA = Driver("Srilekha", "+919800000201", "MG", "ZS EV")
RAGHAV = Driver("Raghav", "+919800000101", "Tata", "Tiago EV")
ANANYA = Driver("Ananya", "+919800000601", "Mahindra", "XUV400")
VIKRAM = Driver("Vikram", "+919800000901", "Hyundai", "Kona Electric")


@dataclass(frozen=True)
class DemoConfig:
    ends: Endpoints
    redis_url: str
    bridge_key: Ed25519PublicKey | None
    bap_port: int
    journeys: tuple[str, ...]
    timeout: float = 120.0
    identity: Identity | None = None
    # The bridge's watchdog: how long a silent session goes before "interrupted".
    interrupt_after: float = 120.0
    # How long before a slot the bridge sends RESERVE_NOW (None: at once, on confirm).
    reserve_lead_minutes: int | None = None
    notes: list[str] = field(default_factory=list)
    # How to reach the bridge's Redis when `redis_url` is not enough (Sentinel: the
    # settings' factory, bridge.redisconn.data)
    connect: Callable[[], aioredis.Redis] | None = None
    # Sees every body the demo BAP receives (see DemoBap.inspect): tests check them.
    inspect: Inspect | None = None
    profile: str = "draft"  # or "lts": the BAP speaks Beckn 2.0 LTS


Journey = Callable[[Client, DemoConfig], Awaitable[bool]]


def txn_for(name: str) -> str:
    # a uuid, as the Context schema asks of transaction ids
    return str(uuid.uuid4())


async def book(c: Client, b: Booking, message: dict[str, Any], retry_for: float = 0) -> None:
    """select, init, pay, confirm: the order is CONFIRMED (or RESERVED) and paid."""
    await steps.quote(c, b, message, retry_for=retry_for)
    url = await steps.init(c, b)
    await steps.pay(c, b, url)
    await steps.confirm(c, b)


# --------------------------------------------------------------------------- 1. reservation


async def reservation(c: Client, cfg: DemoConfig) -> bool:
    b = Booking(txn_for("reservation"), SRILEKHA, *RESERVABLE)
    now = datetime.now(IST)
    slot = (now + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    end = slot + timedelta(hours=1)
    c.out.driver("🗓", f"Srilekha books {b.evse_id} (CCS2 120 kW) at TezPower Highway Plaza, "
                      f"Maddur, for {slot:%H:%M}–{end:%H:%M} IST: 10 kWh for her {b.driver.make} "
                      f"{b.driver.model}")
    await book(c, b, steps.select_message(b, energy=Decimal(10), start=slot, end=end))
    lead = cfg.reserve_lead_minutes
    if lead is not None and slot - timedelta(minutes=lead) > datetime.now(IST):
        # OCPI has no future reservations: the bridge holds the slot in its own calendar
        # and sends RESERVE_NOW shortly before it.
        c.out.wire(f"OCPI: RESERVE_NOW scheduled for "
                   f"{slot - timedelta(minutes=lead):%H:%M} IST ({lead} min before the slot); "
                   "the slot is held in the bridge's calendar until then")
    else:
        reserved = await _reservation_at_cpo(c, "TPC-MDR-1")
        if reserved is None:
            raise DemoFailure("the CPO shows no reservation on TPC-MDR-1")
        rid, r = reserved
        until = datetime.fromisoformat(str(r.get("expiry"))).astimezone(IST)
        c.out.wire(f"OCPI: RESERVE_NOW → ACCEPTED · reservation {rid} · EVSE TPC-MDR-1 "
                   f"RESERVED until {until:%H:%M} IST (slot + grace)")
    c.out.driver("🚗", "Hours later Srilekha pulls into Maddur, a little early for her slot")
    otp = await steps.start_code(c, b)
    await steps.start(c, b, otp)
    await steps.follow(c, b)
    got = await steps.until_kwh(c, b, Decimal("3.5"))
    c.out.driver("✋", f"At {kwh(got)} Srilekha stops: enough to reach Mysuru")
    await c.send("update", b.txn, steps.update_message(b, "stop-charging"))
    msg = await steps.final(c, b)
    return await steps.settle_up(c, b, msg)


async def _reservation_at_cpo(c: Client, evse_uid: str) -> tuple[str, dict[str, Any]] | None:
    """RESERVE_NOW is sent by the worker after on_confirm: give it a moment."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = await c.mock("GET", "/admin/state")
        for rid, r in (state.get("reservations") or {}).items():
            if r.get("evse_uid") == evse_uid:
                return str(rid), dict(r)
        await c.idle(0.2)
    return None


# --------------------------------------------------------------------------- 2. walk-in


async def walk_in(c: Client, cfg: DemoConfig) -> bool:
    b = Booking(txn_for("walk-in"), RAGHAV, *KORAMANGALA)
    c.out.driver("📷", f"Raghav scans the QR code on the charger at Forum Mall Koramangala: "
                      f"{QR_PAYLOAD}")
    b.item_id = await _walk_in_item(c, b)
    # A car that draws 15 kW: at the mock's 120x speed the bridge's stop (one worker poll,
    # about 0.5 s of real time) then overshoots by less than the 10% prepaid provision.
    await c.mock("POST", "/admin/next-car", {"battery_kwh": 24, "soc": 0.3, "target_soc": 0.9,
                                             "max_kw": 15})
    c.out.wire("mock CPO: next car 24 kWh battery at 30%, draws up to 15 kW")
    c.out.driver("💬", "Raghav: \"charge for ₹100\"")
    await book(c, b, steps.select_message(b, budget=Decimal(100)))
    otp = await steps.start_code(c, b)
    await steps.start(c, b, otp)
    await steps.follow(c, b)
    c.out.driver("⏳", "The bridge watches the cost and stops the charge at the ₹100")
    msg = await steps.final(c, b)
    return await steps.settle_up(c, b, msg)


async def _walk_in_item(c: Client, b: Booking) -> str:
    """Beckn discover's walk-in search (the QR payload as text_search), else the item id
    the QR stands for."""
    try:
        await c.send("discover", b.txn, {"text_search": QR_PAYLOAD})
        msg = await c.expect("on_discover", b.txn, within=10)
    except DemoFailure as exc:
        c.out.wire(f"(walk-in search unavailable: {exc}; selecting the QR's item directly)")
        return b.item_id
    items = view.catalog_items(msg)
    mine = [i for i in items if i[1] == b.evse_id]
    if not mine:
        c.out.wire(f"(on_discover listed {len(items)} items, not {b.evse_id}; selecting the "
                   "QR's item directly)")
        return b.item_id
    item_id, _evse, name, short = mine[0]
    c.out.driver("🔎", f"{name}: {short}")
    return item_id


# --------------------------------------------------------------------------- 3. power cut


async def power_cut(c: Client, cfg: DemoConfig) -> bool:
    b = Booking(txn_for("power-cut"), ANANYA, *HIGHWAY_2)
    c.out.driver("🚗", f"Ananya stops at Maddur and books {b.evse_id} now: 20 kWh")
    await book(c, b, steps.select_message(b, energy=Decimal(20)), retry_for=15)
    otp = await steps.start_code(c, b)
    await steps.start(c, b, otp)
    await steps.follow(c, b)
    await steps.until_kwh(c, b, Decimal(2))
    cut = await c.mock("POST", "/admin/faults/power-cut",
                       {"location_id": HIGHWAY, "duration": 300, "outcome": "end"})
    c.out.driver("🌩", "Power cut at the highway plaza")
    c.out.wire(f"mock CPO fault: power-cut {HIGHWAY} → OCPI: PATCH EVSEs "
               f"{', '.join(cut.get('evses') or [])} status UNKNOWN")
    msg = await c.expect("on_status", b.txn, note="CONNECTION-INTERRUPTED", within=30,
                         where=lambda m: view.fulfillment(m)[0] == "CONNECTION-INTERRUPTED",
                         unless=lambda: _completed(c, b))
    _interruption(c, msg)
    c.out.driver("⏳", "The power stays off; the CPO ends the session on the energy delivered")
    final = await steps.final(c, b)
    return await steps.settle_up(c, b, final)


def _completed(c: Client, b: Booking) -> str | None:
    done = c.seen("on_update", b.txn, lambda m: view.state(m) == "COMPLETED")
    return "the order was completed without telling the driver of the interruption" if (
        done) else None


def _interruption(c: Client, msg: dict[str, Any]) -> None:
    _, name = view.fulfillment(msg)
    why, refund, note = view.interruption(msg)
    c.out.driver("⚠️", f"{name}")
    c.out.detail(f"{why}: estimated refund {inr(refund)}")
    if note:
        c.out.detail(note)


# --------------------------------------------------------------------------- 4. offline charger


async def offline(c: Client, cfg: DemoConfig) -> bool:
    b = Booking(txn_for("offline"), VIKRAM, *HIGHWAY_2, mode="AUTHORIZATION-HOLD")
    await c.mock("POST", "/admin/next-car", {"battery_kwh": 30, "soc": 0.7, "target_soc": 0.9,
                                             "max_kw": 60})
    c.out.driver("🚗", f"Vikram's {b.driver.model} (30 kWh battery at 70%) at {b.evse_id}: "
                      "2 kWh, paid by a card hold")
    c.out.wire("mock CPO: next car 30 kWh, 70% → 90% (it will take 6 kWh)")
    await book(c, b, steps.select_message(b, energy=Decimal(2)), retry_for=15)
    otp = await steps.start_code(c, b)
    await steps.start(c, b, otp)
    # Right after the start, before the bridge could stop at 2 kWh: the link goes down.
    await c.mock("POST", "/admin/faults/offline-charger", {"evse": "TPC-MDR-2",
                                                           "cdr_delay": 120})
    c.out.driver("📡", "The charger loses its link to the CPO but keeps charging")
    c.out.wire("mock CPO fault: offline-charger TPC-MDR-2 → no Session PATCHes, "
               "STOP_SESSION → TIMEOUT, a late CDR")
    await steps.follow(c, b)
    if cfg.interrupt_after <= 30:
        msg = await c.expect("on_status", b.txn, note="CONNECTION-INTERRUPTED (watchdog)",
                             within=cfg.interrupt_after + 20,
                             where=lambda m: view.fulfillment(m)[0] == "CONNECTION-INTERRUPTED",
                             unless=lambda: _completed(c, b))
        _interruption(c, msg)
    else:
        c.out.wire(f"(the bridge's watchdog reports silence after {cfg.interrupt_after:g} s; "
                   "the CDR will come first)")
    c.out.driver("⏳", "The car takes what it takes; the CDR arrives late, for more than held")
    final = await steps.final(c, b, within=90)
    return await steps.settle_up(c, b, final)


# --------------------------------------------------------------------------- runner

JOURNEYS: dict[str, tuple[str, Journey]] = {
    "reservation": ("Srilekha reserves a highway charger for later", reservation),
    "walk-in": ("Raghav walks in by QR with a ₹100 budget", walk_in),
    "power-cut": ("a power cut mid-session, refund of the rest", power_cut),
    "offline": ("an offline charger overcharges: hold captured + top-up", offline),
}


async def preflight(c: Client) -> None:
    """The bridge is up and the mock CPO is registered with it."""
    try:
        async with c.http.get(f"{c.ends.bridge_url}/readyz") as r:
            if r.status != 200:
                raise DemoFailure(f"bridge {c.ends.bridge_url}/readyz answered HTTP {r.status}")
        state = await c.mock("GET", "/admin/state")
    except aiohttp.ClientError as exc:
        raise DemoFailure(f"cannot reach the bridge or the mock CPO: {exc}") from exc
    if not state.get("registered"):
        raise DemoFailure("the mock CPO is not connected to the bridge "
                          "(bridge cpo invite IN TPC; ocpi-mock connect …)")
    c.out.wire(f"bridge {c.ends.bridge_url} ready · mock CPO {c.ends.mock_url} "
               f"(speed ×{state.get('speed')}, {state.get('locations')} locations) registered "
               f"as {', '.join(state.get('parties') or [])}")


async def play(c: Client, cfg: DemoConfig, name: str) -> bool:
    journey = JOURNEYS[name][1]
    started = time.monotonic()
    try:
        async with asyncio.timeout(cfg.timeout):
            ok = await journey(c, cfg)
    except DemoFailure as exc:
        c.out.verdict(False, str(exc))
        ok = False
    except TimeoutError:
        c.out.verdict(False, f"{name} did not finish within {cfg.timeout:g} s")
        ok = False
    except aiohttp.ClientError as exc:
        c.out.verdict(False, f"HTTP failure: {exc}")
        ok = False
    finally:
        c.live = None
    c.out.verdict(ok, f"{name}: {'done' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return ok


async def run_demo(cfg: DemoConfig, out: Printer) -> dict[str, bool]:
    identity = cfg.identity or Identity.fresh()
    bap = DemoBap(identity, cfg.ends.bpp_id, cfg.bridge_key, cfg.bap_port, inspect=cfg.inspect,
                  profile=cfg.profile)
    try:
        await bap.start()
    except OSError as exc:  # the port is taken (another demo still running?)
        raise DemoFailure(f"cannot serve the demo BAP on {bap.url}: {exc}") from exc
    redis = cfg.connect() if cfg.connect is not None else aioredis.Redis.from_url(cfg.redis_url)
    results: dict[str, bool] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            c = Client(http, bap, cfg.ends, out, redis)
            out.title("Demo BAP")
            out.driver("🤖", f"{identity.subscriber_id} (key {identity.key_id}) on {bap.url}: "
                            f"registry lookup at {bap.url}/lookup, callbacks at {bap.bap_uri}")
            for note in cfg.notes:
                out.wire(note)
            try:
                await preflight(c)
            except DemoFailure as exc:
                out.verdict(False, str(exc))
                return {name: False for name in cfg.journeys}
            for i, name in enumerate(cfg.journeys, 1):
                out.title(f"{i}/{len(cfg.journeys)} {name}: {JOURNEYS[name][0]}")
                results[name] = await play(c, cfg, name)
            out.title("Summary")
            for name, ok in results.items():
                out.verdict(ok, name)
            out.wire(f"the bridge looked up the demo BAP's key {bap.lookups} time(s) at "
                     f"{bap.url}/lookup (then from its cache)")
    finally:
        await redis.aclose()
        await bap.close()
    return results


__all__ = ["JOURNEYS", "DemoConfig", "run_demo"]
