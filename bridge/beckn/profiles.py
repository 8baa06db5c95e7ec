"""Wire profiles: one engine, several ways of writing (and reading) a message at the edge.

    rc2     the Beckn 2.0 core draft rc2 exactly as its published schema says
            (api/beckn.yaml, schema/core/v2/attributes.yaml, the EV attribute packs):
            the default, and what the EV network sandboxes validate against
    guide   the vocabulary of our implementation guide's examples 02-17 (`ev:` item
            attributes, `beckn:gps`, `beckn:state`, `fulfillment-details`, ...), for
            BAPs built from the guide
    lts     the released Beckn 2.0 (core-v2.0.0-lts and release-v2.0.0-lts): paths
            without prefix (`/select`), a camelCase context, the Contract model, errors
            `{errorCode, errorMessage}`, counter-signed ACKs (bridge/beckn/lts.py)

The order state machine, quotes, settlement and search are shared. A profile is only
a set of pure render functions per action (`bridge/journey/rc2.py`, `guide.py`, the
per-action modules' `render_*`), chosen here per BAP. Requests are read in every
dialect whatever the profile (the parsers accept all of them).

Which profile a request gets: the LTS paths (`/select`, ...) are answered in `lts`;
on `/beckn/{action}`, `beckn.guide_bap_ids` (a list of bap_ids) or else the network
default `beckn.wire_profile`. `beckn.profiles` says which are served at all. An order
keeps the profile it was created with, so a configuration change never switches
dialect in the middle of an order, and a request in another family (an LTS BAP on a
draft order, or the reverse) finds no order.

The seam: each profile's renderers sit in tables keyed by its name,
`bridge.journey.wire.ORDER` (the order of every on_* that carries one) and `PATCH`
(live tracking), `track.RENDER`, `rating.RENDER`, `support.RENDER`, and the catalog's
rendering in `bridge.beckn.discover.handle_discover`. The LTS plugs in there: its
functions in those tables (`bridge.journey.lts`, `bridge.mapping.catalog_lts`), its
requests rewritten into the draft's form at the edge (`bridge.beckn.lts.inbound`), its
routes choosing it per request (`BecknRequest.profile`).
"""

from __future__ import annotations

from typing import Final

from bridge.config import Settings

RC2: Final = "rc2"
GUIDE: Final = "guide"
LTS: Final = "lts"
PROFILES: Final = (RC2, GUIDE, LTS)
# The profiles served on /beckn/{action} (the draft's family); LTS has its own paths.
DRAFT: Final = (RC2, GUIDE)


def profiles_on(settings: Settings) -> frozenset[str]:
    """The profiles this bridge serves (`beckn.profiles`)."""
    return frozenset(p.strip() for p in settings.beckn_profiles.split(",") if p.strip())


def family(profile: str | None) -> str:
    """Which paths a profile's BAPs use: `lts` or the draft's `/beckn` (rc2, guide)."""
    return LTS if profile == LTS else RC2


def guide_baps(settings: Settings) -> frozenset[str]:
    return frozenset(b.strip() for b in settings.beckn_guide_bap_ids.split(",") if b.strip())


def profile_for(settings: Settings, bap_id: str) -> str:
    """The profile a BAP is answered in (when no order says otherwise)."""
    if bap_id in guide_baps(settings):
        return GUIDE
    return settings.beckn_wire_profile
