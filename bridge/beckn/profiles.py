"""Wire profiles: one engine, several ways of writing (and reading) a message at the edge.

    rc2     the Beckn 2.0 core draft rc2 exactly as its published schema says
            (api/beckn.yaml, schema/core/v2/attributes.yaml, the EV attribute packs):
            the default, and what the EV network sandboxes validate against
    guide   the vocabulary of our implementation guide's examples 02-17 (`ev:` item
            attributes, `beckn:gps`, `beckn:state`, `fulfillment-details`, ...), for
            BAPs built from the guide

The order state machine, quotes, settlement and search are shared. A profile is only
a set of pure render functions per action (`bridge/journey/rc2.py`, `guide.py`, the
per-action modules' `render_*`), chosen here per BAP. Requests are read in every
dialect whatever the profile (the parsers accept all of them).

Which profile a BAP gets: `beckn.guide_bap_ids` (a list of bap_ids) or else the
network default `beckn.wire_profile`. An order keeps the profile it was created with,
so a configuration change never switches dialect in the middle of an order.

The seam: each profile's renderers sit in tables keyed by its name,
`bridge.journey.wire.ORDER` (the order of every on_* that carries one) and `PATCH`
(live tracking), `track.RENDER`, `rating.RENDER`, `support.RENDER`, and the catalog's
rendering in `bridge.beckn.discover.handle_discover`. A later profile (Beckn 2.0 LTS,
issue 16) plugs in there: a name here, its functions in those tables, its parsers
beside the others in `bridge.journey.wire`, and its routes choosing it per request
(`BecknRequest.profile`).
"""

from __future__ import annotations

from typing import Final

from bridge.config import Settings

RC2: Final = "rc2"
GUIDE: Final = "guide"
PROFILES: Final = (RC2, GUIDE)


def guide_baps(settings: Settings) -> frozenset[str]:
    return frozenset(b.strip() for b in settings.beckn_guide_bap_ids.split(",") if b.strip())


def profile_for(settings: Settings, bap_id: str) -> str:
    """The profile a BAP is answered in (when no order says otherwise)."""
    if bap_id in guide_baps(settings):
        return GUIDE
    return settings.beckn_wire_profile
