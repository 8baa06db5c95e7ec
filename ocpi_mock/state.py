"""In-process state of the mock CPO platform. It is a test double: nothing is
persisted, a restart starts from the network file again."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from bridge.ocpi.models import (
    CDR,
    EVSE,
    BusinessDetails,
    Connector,
    CredentialsRole,
    Location,
    Role,
    Session,
    Tariff,
    Token,
)
from ocpi_mock.network import Network


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Peer:
    """The eMSP we are registered with (one at a time: the mock serves one eMSP)."""

    versions_url: str
    token_out: str  # token C: we call the eMSP with it
    token_in: str  # token B: the eMSP calls us with it
    endpoints: dict[tuple[str, str], str]  # (module, role) -> url
    roles: list[CredentialsRole]

    def url(self, module: str, role: str) -> str | None:
        return self.endpoints.get((module, role))

    @property
    def parties(self) -> frozenset[tuple[str, str]]:
        return frozenset((r.country_code.upper(), r.party_id.upper()) for r in self.roles)

    @property
    def party(self) -> tuple[str, str] | None:
        emsp = next((r for r in self.roles if r.role == Role.EMSP), None) or \
            (self.roles[0] if self.roles else None)
        return (emsp.country_code, emsp.party_id) if emsp else None


@dataclass
class Reservation:
    reservation_id: str
    location_id: str
    evse_uid: str
    token: Token
    expiry: datetime
    authorization_reference: str | None
    response_url: str
    created: datetime


@dataclass
class State:
    network: Network
    locations: dict[str, Location] = field(default_factory=dict)  # by location id
    tariffs: dict[tuple[str, str], Tariff] = field(default_factory=dict)  # (party_id, id)
    sessions: dict[str, Session] = field(default_factory=dict)
    cdrs: dict[str, CDR] = field(default_factory=dict)
    tokens: dict[tuple[str, str, str], Token] = field(default_factory=dict)  # (cc, pid, uid)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    invites: set[str] = field(default_factory=set)  # tokens A we handed out
    pending_in: set[str] = field(default_factory=set)  # tokens B offered during `connect`
    peer: Peer | None = None

    @classmethod
    def from_network(cls, network: Network) -> State:
        state = cls(network=network)
        for loc in network.locations:
            state.locations[loc.id] = loc
        for tariff in network.tariffs:
            state.tariffs[(tariff.party_id, tariff.id)] = tariff
        return state

    # ---- our identity

    def roles(self) -> list[CredentialsRole]:
        return [CredentialsRole(role=Role.CPO, country_code=p.country_code, party_id=p.party_id,
                                business_details=BusinessDetails(name=p.name, website=p.website))
                for p in self.network.parties]

    def own_parties(self) -> list[tuple[str, str]]:
        return [p.key for p in self.network.parties]

    # ---- lookups

    def evse(self, location_id: str, evse_uid: str) -> tuple[Location, EVSE] | None:
        loc = self.locations.get(location_id)
        if loc is None:
            return None
        evse = next((e for e in loc.evses or [] if e.uid == evse_uid), None)
        return (loc, evse) if evse else None

    def connector(self, evse: EVSE, connector_id: str | None) -> Connector | None:
        if connector_id is None:
            return evse.connectors[0]
        return next((c for c in evse.connectors if c.id == connector_id), None)

    def tariff_for(self, loc: Location, conn: Connector) -> Tariff | None:
        for tid in conn.tariff_ids or []:
            tariff = self.tariffs.get((loc.party_id, tid))
            if tariff is not None:
                return tariff
        return None

    def find_evse_uid(self, evse_id_or_uid: str) -> tuple[Location, EVSE] | None:
        """By EVSE uid or by the printed evse_id (the QR code on the charger)."""
        for loc in self.locations.values():
            for evse in loc.evses or []:
                if evse_id_or_uid in (evse.uid, evse.evse_id):
                    return loc, evse
        return None

    def reservation_on(self, location_id: str, evse_uid: str) -> Reservation | None:
        return next((r for r in self.reservations.values()
                     if r.location_id == location_id and r.evse_uid == evse_uid), None)
