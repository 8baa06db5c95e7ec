"""Simulated charging sessions.

Pure part (tested with tables): the power curve and one meter tick.
Driving part: a task per session that PUTs the Session (PENDING, then
ACTIVE), PATCHes meter values every tick, and on stop sends COMPLETED, the
EVSE back to AVAILABLE, and the CDR priced by `pricing.py`.

Periods are aligned to a grid of `tick_seconds` (default 180 s = 0.05 h) so
every ChargingPeriod's TIME/PARKING_TIME volume is an exact decimal; energy
is metered in whole Wh.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import structlog

from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import (
    CDR,
    EVSE,
    AuthMethod,
    CdrLocation,
    CdrToken,
    ChargingPeriod,
    Connector,
    Location,
    Price,
    Session,
    SessionStatus,
    Status,
    Tariff,
    Token,
)
from ocpi_mock import pricing
from ocpi_mock.pricing import Kind, Period
from ocpi_mock.pusher import NotRegistered
from ocpi_mock.runtime import Mock

log = structlog.get_logger("ocpi_mock.simulator")

WH = Decimal("0.001")
TAPER_FROM = Decimal("0.8")
TAPER_FLOOR = Decimal("0.1")  # at 100% SoC the car still takes 10% of its limit


# ----------------------------------------------------------------------------- pure


@dataclass
class Car:
    battery_kwh: Decimal
    soc: Decimal  # 0..1
    target_soc: Decimal  # the car stops charging here (0..1)
    max_kw: Decimal  # what the car accepts (on-board charger for AC)


def charge_power(soc: Decimal, limit_kw: Decimal) -> Decimal:
    """Constant power up to 80% state of charge, then a linear taper down to
    10% of the limit at 100% (how CC/CV charging looks from the grid)."""
    if soc < TAPER_FROM:
        return limit_kw
    frac = (Decimal(1) - soc) / (Decimal(1) - TAPER_FROM)
    return limit_kw * (TAPER_FLOOR + (Decimal(1) - TAPER_FLOOR) * max(frac, Decimal(0)))


def tick(car: Car, limit_kw: Decimal, seconds: int) -> tuple[Decimal, Decimal]:
    """(energy kWh in whole Wh, average power kW) for one tick; updates car.soc."""
    if car.soc >= car.target_soc:
        return Decimal(0), Decimal(0)
    power = charge_power(car.soc, min(limit_kw, car.max_kw))
    energy = (power * seconds / 3600).quantize(WH, rounding=ROUND_DOWN)
    room = ((car.target_soc - car.soc) * car.battery_kwh).quantize(WH, rounding=ROUND_DOWN)
    if energy >= room:
        energy = max(room, Decimal(0))
    car.soc += energy / car.battery_kwh
    if energy == room:
        car.soc = car.target_soc
    avg = (energy * 3600 / seconds).quantize(Decimal("0.01"))
    return energy, avg


def default_car(seed: str, dc: bool, connector_kw: Decimal) -> Car:
    """A plausible Indian EV, the same for the same seed (session id)."""
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16))
    if dc:
        battery, max_kw = rng.choice([(Decimal("30.2"), Decimal(50)), (Decimal("40.5"), Decimal(50)),
                                      (Decimal("59"), Decimal(110)), (Decimal("72.6"), Decimal(150))])
    else:
        battery, max_kw = rng.choice([(Decimal("30.2"), Decimal("7.2")), (Decimal("40.5"), Decimal(11)),
                                      (Decimal("26"), Decimal("3.3"))])
    soc = Decimal(rng.randint(15, 45)) / 100
    return Car(battery, soc, Decimal(rng.choice([80, 90, 100])) / 100, min(max_kw, connector_kw))


def current_for(power_kw: Decimal, conn: Connector) -> Decimal:
    volts = Decimal(400) if str(conn.power_type) == "DC" else Decimal(230)
    return (power_kw * 1000 / volts).quantize(Decimal("0.1"))


def charging_period(p: Period, conn: Connector, tariff_id: str | None) -> ChargingPeriod:
    hours = p.seconds / 3600
    dims: list[dict[str, Any]] = [{"type": "ENERGY", "volume": p.energy}]
    if p.kind is Kind.CHARGING:
        dims += [{"type": "TIME", "volume": hours}, {"type": "POWER", "volume": p.power},
                 {"type": "CURRENT", "volume": p.current}]
    elif p.kind is Kind.PARKING:
        dims.append({"type": "PARKING_TIME", "volume": hours})
    return ChargingPeriod.model_validate({"start_date_time": p.start, "dimensions": dims,
                                          "tariff_id": tariff_id})


def money(value: Decimal) -> Decimal:
    return pricing.round_money(value)


def price_obj(cost: pricing.Cost) -> Price:
    return Price(excl_vat=money(cost.excl), incl_vat=money(cost.incl))


# ----------------------------------------------------------------------------- live sessions


@dataclass
class LiveSession:
    session: Session
    location: Location
    evse: EVSE
    connector: Connector
    tariff: Tariff | None
    car: Car
    periods: list[Period] = field(default_factory=list)
    sent: int = 0  # periods already PATCHed to the eMSP
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    cut_started: datetime | None = None
    cut_outcome: str | None = None
    full_since: datetime | None = None
    task: asyncio.Task[Any] | None = None
    cdr: CDR | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.location.id, self.evse.uid)

    def total_kwh(self) -> Decimal:
        return sum((p.energy for p in self.periods), Decimal(0))

    def cost(self) -> pricing.PriceResult | None:
        if self.tariff is None:
            return None
        return pricing.price(self.tariff, self.periods, self.location.time_zone)


def grid_after(t: datetime, tick_seconds: int) -> datetime:
    epoch = int(t.timestamp())
    if t.microsecond:
        epoch += 1
    aligned = -(-epoch // tick_seconds) * tick_seconds
    return datetime.fromtimestamp(aligned, UTC)


async def safe(coro: Any, what: str) -> bool:
    """A push whose failure (after the pusher's retries) must not stop the simulation."""
    try:
        await coro
        return True
    except (OcpiClientError, NotRegistered) as exc:
        log.warning("push.gave_up", what=what, error=str(exc))
        return False


async def set_evse_status(mock: Mock, loc: Location, evse: EVSE, status: Status) -> None:
    now = mock.clock.now()
    evse.status = status
    evse.last_updated = now
    loc.last_updated = now
    if mock.state.peer is not None:
        await safe(mock.push.patch_evse(loc, evse.uid, {"status": str(status),
                                                        "last_updated": _dt(now)}),
                   f"EVSE {evse.uid} {status}")


def _dt(value: datetime) -> str:
    from bridge.ocpi.models import format_datetime

    return format_datetime(value)


def start_session(mock: Mock, *, loc: Location, evse: EVSE, conn: Connector, token: Token,
                  auth_method: AuthMethod, authorization_reference: str | None,
                  car: Car | None = None) -> LiveSession:
    now = mock.clock.now()
    sid = f"{loc.party_id}-{uuid.uuid4().hex[:12].upper()}"
    tariff = mock.state.tariff_for(loc, conn)
    session = Session(
        country_code=loc.country_code, party_id=loc.party_id, id=sid, start_date_time=now,
        kwh=Decimal(0),
        cdr_token=CdrToken(country_code=token.country_code, party_id=token.party_id,
                           uid=token.uid, type=token.type, contract_id=token.contract_id),
        auth_method=auth_method, authorization_reference=authorization_reference,
        location_id=loc.id, evse_uid=evse.uid, connector_id=conn.id,
        meter_id=f"MTR-{evse.uid}", currency=tariff.currency if tariff else "INR",
        status=SessionStatus.PENDING, last_updated=now,
    )
    kw = Decimal(conn.max_electric_power or 7400) / 1000
    live = LiveSession(session=session, location=loc, evse=evse, connector=conn, tariff=tariff,
                       car=car or default_car(sid, str(conn.power_type) == "DC", kw))
    mock.state.sessions[sid] = session
    mock.live[sid] = live
    live.task = mock.spawn(run(mock, live), f"session-{sid}")
    log.info("session.start", session_id=sid, location=loc.id, evse=evse.uid,
             auth_method=str(auth_method))
    return live


def request_stop(live: LiveSession, reason: str) -> None:
    live.stop_reason = live.stop_reason or reason
    live.stop.set()


def _offline(mock: Mock, live: LiveSession) -> bool:
    return live.key in mock.faults.offline


async def _patch(mock: Mock, live: LiveSession, body: dict[str, Any]) -> None:
    s = live.session
    faults = mock.faults
    if faults.take_out_of_order(s.id):
        # fault: a newer PATCH overtakes this one; the older arrives last
        newer = {**_fields(s, ("kwh", "total_cost"), None),
                 "last_updated": _dt(s.last_updated + timedelta(seconds=1))}
        await safe(mock.push.patch_session(s.country_code, s.party_id, s.id, newer),
                   "session patch (newer)")
    await safe(mock.push.patch_session(s.country_code, s.party_id, s.id, body), "session patch")
    if faults.take_duplicate_patch(s.id):
        await safe(mock.push.patch_session(s.country_code, s.party_id, s.id, body),
                   "session patch (duplicate)")


def _fields(s: Session, keys: tuple[str, ...], periods_from: int | None) -> dict[str, Any]:
    """A PATCH body: the named fields of the Session as JSON, plus the charging
    periods not sent yet (a PATCH's charging_periods are added, spec §9.2.2)."""
    full = s.to_json_dict()
    body = {k: full[k] for k in keys if k in full}
    if periods_from is not None and full.get("charging_periods", [])[periods_from:]:
        body["charging_periods"] = full["charging_periods"][periods_from:]
    return body


def _update(mock: Mock, live: LiveSession) -> dict[str, Any]:
    """Refresh the Session from the meter; the PATCH body of what changed."""
    s = live.session
    s.kwh = live.total_kwh()
    tid = live.tariff.id if live.tariff else None
    s.charging_periods = [charging_period(p, live.connector, tid) for p in live.periods] or None
    cost = live.cost()
    if cost is not None:
        s.total_cost = price_obj(cost.total)
    s.last_updated = mock.clock.now()
    body = _fields(s, ("kwh", "total_cost", "last_updated"), live.sent)
    live.sent = len(live.periods)
    return body


async def run(mock: Mock, live: LiveSession) -> None:
    cfg = mock.cfg
    s = live.session
    loc, evse, conn = live.location, live.evse, live.connector
    offline_at_start = _offline(mock, live)
    if not offline_at_start:
        await safe(mock.push.put_session(s), f"session {s.id} PENDING")
    await set_evse_status(mock, loc, evse, Status.CHARGING)

    start = grid_after(mock.clock.now() + timedelta(seconds=cfg.start_delay_seconds),
                       cfg.tick_seconds)
    await mock.clock.sleep_until(start)
    s.status = SessionStatus.ACTIVE
    s.start_date_time = start
    s.last_updated = mock.clock.now()
    if mock.faults.take_lost_active():
        log.info("session.fault", session_id=s.id, fault="lost-active-push")
    elif not _offline(mock, live):
        await safe(mock.push.put_session(s), f"session {s.id} ACTIVE")

    t = start
    limit = Decimal(conn.max_electric_power or 7400) / 1000
    end = t
    while True:
        t_next = t + timedelta(seconds=cfg.tick_seconds)
        await mock.clock.sleep_until(t_next)
        cut = mock.cuts.get(loc.id)
        if cut is not None:
            if live.cut_started is None:
                live.cut_started, live.cut_outcome = t, cut
            live.periods.append(Period(t, t_next, Kind.IDLE))  # no energy, nothing billed
        elif live.cut_started is not None and live.cut_outcome == "end":
            # power came back too late: the session ended when the power went
            live.periods = [p for p in live.periods if p.start < live.cut_started]
            end = live.cut_started
            live.stop_reason = "power cut"
            break
        else:
            live.cut_started = live.cut_outcome = None
            energy, power = tick(live.car, limit, cfg.tick_seconds)
            if energy > 0:
                live.periods.append(Period(t, t_next, Kind.CHARGING, energy, power,
                                           current_for(power, conn)))
            else:
                live.full_since = live.full_since or t
                live.periods.append(Period(t, t_next, Kind.PARKING))
        end = t_next
        if cut is None and not _offline(mock, live):
            await _patch(mock, live, _update(mock, live))
        if live.stop.is_set() and cut is None:
            break
        if live.full_since is not None and cut is None and \
                (t_next - live.full_since).total_seconds() >= cfg.park_after_full_seconds:
            live.stop_reason = live.stop_reason or "car full, driver unplugged"
            break
        t = t_next
    await finish(mock, live, end)


async def finish(mock: Mock, live: LiveSession, end: datetime) -> None:
    s = live.session
    offline = _offline(mock, live)
    if offline:
        delay = mock.faults.offline.get(live.key, 0.0)
        await mock.clock.sleep(delay)  # the charger reconnects late
    sent_before = live.sent
    _update(mock, live)
    s.status = SessionStatus.COMPLETED
    s.end_date_time = end
    s.last_updated = mock.clock.now()
    if offline:
        await safe(mock.push.put_session(s), f"session {s.id} COMPLETED (late)")
    else:
        await _patch(mock, live, _fields(
            s, ("status", "end_date_time", "kwh", "total_cost", "last_updated"), sent_before))
    live.sent = len(live.periods)
    await set_evse_status(mock, live.location, live.evse, Status.AVAILABLE)
    cdr = build_cdr(mock, live, end)
    live.cdr = cdr
    mock.state.cdrs[cdr.id] = cdr
    await safe(mock.push.post_cdr(cdr), f"CDR {cdr.id}")
    if mock.faults.take_duplicate_cdr():
        await safe(mock.push.post_cdr(cdr), f"CDR {cdr.id} (duplicate)")
    mock.faults.offline.pop(live.key, None)  # the offline fault lasts one session
    mock.live.pop(s.id, None)
    log.info("session.end", session_id=s.id, kwh=str(s.kwh), reason=live.stop_reason,
             total=str(cdr.total_cost.incl_vat))


def build_cdr(mock: Mock, live: LiveSession, end: datetime) -> CDR:
    s, loc, evse, conn = live.session, live.location, live.evse, live.connector
    tid = live.tariff.id if live.tariff else None
    periods = live.periods or [Period(s.start_date_time, end, Kind.IDLE)]
    cps = [charging_period(p, conn, tid) for p in periods]
    result = pricing.price(live.tariff, periods, loc.time_zone) if live.tariff else None
    zero = pricing.Cost()
    parking_s = sum((p.seconds for p in periods if p.kind is Kind.PARKING), Decimal(0))
    return CDR(
        country_code=s.country_code, party_id=s.party_id, id=f"CDR-{s.id}",
        start_date_time=s.start_date_time, end_date_time=end, session_id=s.id,
        cdr_token=s.cdr_token, auth_method=s.auth_method,
        authorization_reference=s.authorization_reference,
        cdr_location=CdrLocation(
            id=loc.id, name=loc.name, address=loc.address, city=loc.city,
            postal_code=loc.postal_code, state=loc.state, country=loc.country,
            coordinates=loc.coordinates, evse_uid=evse.uid, evse_id=evse.evse_id or evse.uid,
            connector_id=conn.id, connector_standard=conn.standard,
            connector_format=conn.format, connector_power_type=conn.power_type),
        meter_id=s.meter_id, currency=s.currency,
        tariffs=[live.tariff] if live.tariff else None, charging_periods=cps,
        total_cost=price_obj(result.total if result else zero),
        total_fixed_cost=price_obj(result.fixed if result else zero),
        total_energy=sum((p.energy for p in periods), Decimal(0)),
        total_energy_cost=price_obj(result.energy if result else zero),
        total_time=pricing._seconds(end - s.start_date_time) / 3600,
        total_time_cost=price_obj(result.time if result else zero),
        total_parking_time=parking_s / 3600,
        total_parking_cost=price_obj(result.parking if result else zero),
        remark=live.stop_reason, last_updated=mock.clock.now(),
    )
