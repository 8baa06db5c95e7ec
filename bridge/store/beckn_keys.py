"""Redis keys of the Beckn side (the OCPI side's are in `bridge.store.keys`).

Transport:
    obb:beckn:msg:{bap_id}:{action}:{message_id}
                                         HASH    a request taken: d = its digest, cb = the
                                                 callback answering it (EX dedupe_ttl);
                                                 written with the request's queued work
    obb:beckn:msg:{bap_id}:{action}:{message_id}:lock
                                         STRING  the digest, while the request is handled
    obb:beckn:reg:{subscriber}|{key_id}  STRING  registry record JSON ("" = not found),
                                                 EX registry_cache_ttl (negative: 60 s)
Onboarding (bridge/beckn/onboarding.py):
    obb:beckn:onboard:{key_id}           HASH    the last on_subscribe challenge for our key:
                                                 at (epoch s), outcome (answered | refused),
                                                 detail, registry (signer), status (as the
                                                 registry sent it); EX 30 days
Callbacks:
    obb:beckn:cb:{cb_id}                 HASH    url, action, body (JSON), txn, bap_id,
                                                 deadline (epoch s), attempts, state
                                                 (pending|done|dead), last_error, created
    obb:beckn:cb:{cb_id}:lock            STRING  held while one process POSTs it
    obb:beckn:txq:{bap_id}:{txn_id}      LIST    cb ids of one transaction, in order
    obb:beckn:cb:wake                    LIST    cb ids for the worker's fast lane (BLPOP)
    obb:beckn:dead                       ZSET    cb_id -> time dead-lettered
Catalog (pre-rendered; `ref` = "{CC}:{PID}:{location id lower-cased}"):
    obb:beckn:cat:{ref}                  HASH    f = item facets (JSON list of rows), p = provider,
                                                 i:{item_id} = item JSON,
                                                 t:{tariff_id} = offer template JSON (the item
                                                 id is a placeholder; one per tariff, shared
                                                 by the location's items),
                                                 k = index memberships (JSON)
    obb:beckn:prov:{CC}-{PID}            STRING  catalog header of that CPO (JSON)
    obb:beckn:geo                        GEO     ref at the location's coordinates
    obb:beckn:geo:ct:{connectorType}     GEO     refs having that connector type
    obb:beckn:idx:pw:{band}              SET     refs with an item of at least `band` kW
    obb:beckn:idx:avail                  SET     refs with an available item
    obb:beckn:idx:prov:{CC}-{PID}        SET     refs of that CPO
    obb:beckn:idx:tok:{token}            SET     refs whose text has that token
    obb:beckn:idx:all                    ZSET    all refs (score 0, lexicographic order)
    obb:beckn:evse                       HASH    normalised EVSE id -> "{ref}\t{uid}"
    obb:beckn:tariff:{CC}:{PID}:{tid}    SET     refs whose connectors use that tariff
"""

from __future__ import annotations

PREFIX = "obb:beckn:"


def seen(bap_id: str, action: str, message_id: str) -> str:
    return f"{PREFIX}msg:{bap_id}:{action}:{message_id}"


def seen_lock(bap_id: str, action: str, message_id: str) -> str:
    return f"{seen(bap_id, action, message_id)}:lock"


def registry(subscriber_id: str, key_id: str) -> str:
    return f"{PREFIX}reg:{subscriber_id}|{key_id}"


def onboard(key_id: str) -> str:
    return f"{PREFIX}onboard:{key_id}"


def callback(cb_id: str) -> str:
    return f"{PREFIX}cb:{cb_id}"


def callback_lock(cb_id: str) -> str:
    return f"{PREFIX}cb:{cb_id}:lock"


def txn_queue(bap_id: str, txn_id: str) -> str:
    return f"{PREFIX}txq:{bap_id}:{txn_id}"


WAKE = f"{PREFIX}cb:wake"
DEAD = f"{PREFIX}dead"


def cat(ref: str) -> str:
    return f"{PREFIX}cat:{ref}"


def provider(prov: str) -> str:
    return f"{PREFIX}prov:{prov}"


GEO = f"{PREFIX}geo"


def geo_ct(connector_type: str) -> str:
    return f"{PREFIX}geo:ct:{connector_type}"


def power(band: int) -> str:
    return f"{PREFIX}idx:pw:{band}"


AVAIL = f"{PREFIX}idx:avail"


def prov_idx(prov: str) -> str:
    return f"{PREFIX}idx:prov:{prov}"


def token(tok: str) -> str:
    return f"{PREFIX}idx:tok:{tok}"


ALL = f"{PREFIX}idx:all"
EVSE = f"{PREFIX}evse"


def tariff(cc: str, pid: str, tid: str) -> str:
    return f"{PREFIX}tariff:{cc.upper()}:{pid.upper()}:{tid.lower()}"


CATALOG_GROUP = "beckn-catalog"
