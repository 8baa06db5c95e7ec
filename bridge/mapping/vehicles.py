"""Indian EV models -> the connectors they take and their maximum charging power (pure).

Discover's vehicle filter (`...vehicle...['make'|'model'] == '...'` in the filter,
bridge/beckn/discover_terms.py) keeps the chargers whose connector the vehicle's inlet
takes: a CCS2 car takes CCS2 (DC) and Type 2 (AC, the upper half of the same inlet); a
Type 2 car AC only; the two-wheelers that charge from a household socket take the Indian
3-pin sockets (OCPI DOMESTIC_D / DOMESTIC_M). The powers are said in the answer (a
charger above the car's maximum still works, at the car's rate); they are not a filter.

Figures: the makers' published specifications of the models sold in India (2024-25),
rounded; "max DC" is the peak the car accepts. Two-wheelers' own DC fast charging (Ather's
LECCS, Ola's Hypercharger) has no OCPI 2.2.1 connector type, so only their household
charging is matched. A model not in the table: no vehicle filter, and the answer says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CCS2_CAR = ("CCS2", "Type2")


@dataclass(frozen=True)
class Vehicle:
    make: str
    model: str
    connectors: tuple[str, ...]  # the catalog's connectorType values it takes
    max_dc_kw: float | None  # None: no DC charging over a public connector
    max_ac_kw: float
    aliases: tuple[str, ...] = ()
    wheels: int = 4

    @property
    def name(self) -> str:
        return f"{self.make} {self.model}"

    def describe(self) -> str:
        dc = f"up to {self.max_dc_kw:g} kW DC" if self.max_dc_kw else "no DC"
        return (f"{self.name}: {', '.join(self.connectors)}; {dc}, up to {self.max_ac_kw:g} kW "
                "AC")


HOUSEHOLD = ("DOMESTIC_D", "DOMESTIC_M")

VEHICLES: tuple[Vehicle, ...] = (
    Vehicle("Tata", "Nexon EV", CCS2_CAR, 50, 7.2, ("nexon", "nexon.ev", "nexon ev max")),
    Vehicle("Tata", "Punch EV", CCS2_CAR, 50, 7.2, ("punch", "punch.ev")),
    Vehicle("Tata", "Tiago EV", CCS2_CAR, 25, 7.2, ("tiago", "tiago.ev")),
    Vehicle("Tata", "Tigor EV", CCS2_CAR, 25, 3.3, ("tigor", "xpres-t")),
    Vehicle("Tata", "Curvv EV", CCS2_CAR, 70, 7.2, ("curvv", "curvv.ev")),
    Vehicle("MG", "ZS EV", CCS2_CAR, 50, 7.4, ("zs", "zs ev"), ),
    Vehicle("MG", "Comet EV", ("Type2",), None, 7.4, ("comet",)),
    Vehicle("MG", "Windsor EV", CCS2_CAR, 45, 7.4, ("windsor",)),
    Vehicle("Hyundai", "Kona Electric", CCS2_CAR, 50, 7.2, ("kona", "kona ev")),
    Vehicle("Hyundai", "Creta Electric", CCS2_CAR, 50, 11, ("creta ev", "creta electric")),
    Vehicle("Hyundai", "Ioniq 5", CCS2_CAR, 220, 11, ("ioniq5", "ioniq 5")),
    Vehicle("Kia", "EV6", CCS2_CAR, 240, 11, ("ev6",)),
    Vehicle("Mahindra", "XUV400", CCS2_CAR, 50, 7.2, ("xuv400", "xuv 400", "xuv400 ev")),
    Vehicle("Mahindra", "BE 6", CCS2_CAR, 175, 11, ("be6", "be 6e")),
    Vehicle("Mahindra", "XEV 9e", CCS2_CAR, 175, 11, ("xev9e", "xev 9e")),
    Vehicle("BYD", "Atto 3", CCS2_CAR, 80, 7, ("atto3", "atto 3")),
    Vehicle("BYD", "Seal", CCS2_CAR, 150, 7, ()),
    Vehicle("BYD", "e6", CCS2_CAR, 60, 7, ("e6",)),
    Vehicle("Citroen", "eC3", CCS2_CAR, 30, 3.3, ("ec3", "e-c3", "ëc3")),
    Vehicle("Ola", "S1 Pro", HOUSEHOLD, None, 0.75, ("s1", "s1 pro", "s1 air", "s1 x"),
            wheels=2),
    Vehicle("Ather", "450X", HOUSEHOLD, None, 0.7, ("450", "450x", "450 apex", "450s"),
            wheels=2),
    Vehicle("Ather", "Rizta", HOUSEHOLD, None, 0.7, (), wheels=2),
    Vehicle("TVS", "iQube", HOUSEHOLD, None, 0.95, ("iqube",), wheels=2),
    Vehicle("Bajaj", "Chetak", HOUSEHOLD, None, 0.8, ("chetak",), wheels=2),
)

MAKE_ALIASES = {"tata motors": "tata", "mg motor": "mg", "morris garages": "mg",
                "citroën": "citroen", "ola electric": "ola", "ather energy": "ather",
                "tvs motor": "tvs", "bajaj auto": "bajaj", "kia motors": "kia"}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower().replace("ë", "e"))


def _index() -> dict[tuple[str, str], Vehicle]:
    out: dict[tuple[str, str], Vehicle] = {}
    for v in VEHICLES:
        for model in (v.model, *v.aliases):
            out[(_norm(v.make), _norm(model))] = v
    return out


_INDEX = _index()


def find(make: str | None, model: str | None) -> Vehicle | None:
    """The vehicle a make and model name (either may be missing; the model may carry the
    make: "Tata Nexon EV"), or None when it is not in the table or is ambiguous."""
    mk = _norm(MAKE_ALIASES.get((make or "").strip().lower(), make or ""))
    md = _norm(model or "")
    if not md:
        return None
    if mk:
        found = _INDEX.get((mk, md))
        if found is None and md.startswith(mk):  # "Tata Nexon EV" as the model
            found = _INDEX.get((mk, md[len(mk):]))
        return found
    candidates = {v for (m, name), v in _INDEX.items() if name == md or m + name == md}
    return next(iter(candidates)) if len(candidates) == 1 else None
