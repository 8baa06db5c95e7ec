"""Faults that act at once (the switches themselves are in `faults.py`)."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from bridge.ocpi.models import Status, format_datetime
from ocpi_mock import simulator
from ocpi_mock.runtime import Mock

log = structlog.get_logger("ocpi_mock.faults")


class FaultError(Exception):
    """Bad fault request (unknown location, session...)."""


async def power_cut(mock: Mock, location_id: str, duration: float, outcome: str,
                    status: str = "UNKNOWN") -> dict[str, Any]:
    """The location loses power: its EVSEs go UNKNOWN (or OUTOFORDER), running
    sessions stop metering and sending updates; after `duration` simulated
    seconds they resume, or end with a CDR for the energy delivered so far."""
    loc = mock.state.locations.get(location_id)
    if loc is None:
        raise FaultError(f"unknown location {location_id}")
    if outcome not in ("resume", "end"):
        raise FaultError("outcome must be resume or end")
    if status not in ("UNKNOWN", "OUTOFORDER"):
        raise FaultError("status must be UNKNOWN or OUTOFORDER")
    before = {e.uid: e.status for e in loc.evses or []}
    mock.cuts[loc.id] = outcome
    for evse in loc.evses or []:
        await simulator.set_evse_status(mock, loc, evse, Status(status))
    mock.spawn(_restore(mock, location_id, duration, before), f"power-{location_id}")
    log.info("fault.power_cut", location=location_id, duration=duration, outcome=outcome)
    return {"location_id": loc.id, "evses": list(before), "duration": duration,
            "outcome": outcome}


async def _restore(mock: Mock, location_id: str, duration: float,
                   before: dict[str, Status]) -> None:
    await mock.clock.sleep(duration)
    outcome = mock.cuts.pop(location_id, "resume")
    loc = mock.state.locations[location_id]
    charging = {live.evse.uid for live in mock.live.values() if live.location.id == location_id}
    for evse in loc.evses or []:
        if evse.uid in charging:
            status = Status.CHARGING if outcome == "resume" else Status.AVAILABLE
        else:
            status = before.get(evse.uid, Status.AVAILABLE)
            if status == Status.CHARGING:
                status = Status.AVAILABLE
        await simulator.set_evse_status(mock, loc, evse, status)
    log.info("fault.power_restored", location=location_id, outcome=outcome)


def offline_charger(mock: Mock, location_id: str, evse_uid: str, cdr_delay: float) -> dict[str, Any]:
    if mock.state.evse(location_id, evse_uid) is None:
        raise FaultError(f"unknown EVSE {location_id}/{evse_uid}")
    mock.faults.offline[(location_id, evse_uid)] = cdr_delay
    return {"location_id": location_id, "evse_uid": evse_uid, "cdr_delay": cdr_delay}


async def unknown_session_patch(mock: Mock, party_id: str | None) -> dict[str, Any]:
    party = next((p for p in mock.state.network.parties
                  if party_id is None or p.party_id == party_id), None)
    if party is None:
        raise FaultError(f"unknown party {party_id}")
    sid = f"{party.party_id}-GHOST-{uuid.uuid4().hex[:8].upper()}"
    body = {"kwh": 4.2, "last_updated": format_datetime(mock.clock.now())}
    ok = await simulator.safe(
        mock.push.patch_session(party.country_code, party.party_id, sid, body),
        "PATCH for unknown session")
    return {"session_id": sid, "accepted_by_emsp": ok}


async def duplicate_cdr(mock: Mock, session_id: str | None, count: int) -> dict[str, Any]:
    if session_id is None:
        mock.faults.duplicate_cdrs += count
        return {"next_cdrs_posted_twice": mock.faults.duplicate_cdrs}
    cdr = mock.state.cdrs.get(f"CDR-{session_id}")
    if cdr is None:
        raise FaultError(f"no CDR for session {session_id}")
    ok = await simulator.safe(mock.push.post_cdr(cdr), f"CDR {cdr.id} (again)")
    return {"cdr_id": cdr.id, "accepted_by_emsp": ok}
