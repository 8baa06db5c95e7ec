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
                                                 k = index memberships (JSON),
                                                 h = opening hours (JSON, absent: always open)
    obb:beckn:prov:{CC}-{PID}            STRING  catalog header of that CPO (JSON)
    obb:beckn:geo                        GEO     ref at the location's coordinates
    obb:beckn:geo:ct:{connectorType}     GEO     refs having that connector type
    obb:beckn:idx:pw:{band}              SET     refs with an item of at least `band` kW
    obb:beckn:idx:avail                  SET     refs with an available item
    obb:beckn:idx:prov:{CC}-{PID}        SET     refs of that CPO
    obb:beckn:idx:tok:{token}            SET     refs whose text has that token
    obb:beckn:idx:all                    ZSET    all refs (score 0, lexicographic order)
    obb:beckn:evse                       HASH    normalised EVSE id -> "{ref}\t{uid}"
    obb:beckn:idx:station:{lid}          SET     refs of locations with that id (lower-cased)
    obb:beckn:catalog:version            STRING  the layout the catalog was rendered in (an
                                                 older one is rendered again at the
                                                 consumer's start)
    obb:beckn:tariff:{CC}:{PID}:{tid}    SET     refs whose connectors use that tariff
Catalog publish (bridge/beckn/catalog_publish.py; only with beckn.cds_url):
    obb:beckn:pub:dirty:{CC-PID}         ZSET    refs rendered since the CPO's last publish ->
                                                 first change (ms); written by the render
    obb:beckn:pub:due                    ZSET    CPO -> when its publish is due (ms): first
                                                 change + publish_delay, or a retry time
    obb:beckn:pub:inflight:{CC-PID}      ZSET    the dirty refs a worker is publishing now
    obb:beckn:pub:lease:{CC-PID}         STRING  that worker's claim (PX 60 s, renewed)
    obb:beckn:pub:inflight               SET     CPOs with a claim (for recovery)
    obb:beckn:pub:fails:{CC-PID}         STRING  failed publishes in a row (backoff)
    obb:beckn:pub:loc:{ref}              HASH    item id -> "digest\tconnectorType\tkW" as
                                                 the CDS has it from us
    obb:beckn:pub:refs:{CC-PID}          SET     refs with published items
    obb:beckn:pub:rejected:{CC-PID}      SET     refs the CDS refused (sent with the next change)
    obb:beckn:pub:req:{transaction_id}   HASH    one publish request: provider, catalog, kind
                                                 (publish|withdraw), items [[ref, id]], refs,
                                                 sent_at, state, result; EX 7 days
    obb:beckn:pub:cat:{catalog_id}       HASH    sent_at, sent_txn, sent_items, sent_withdrawn,
                                                 error; the CDS's last result: result,
                                                 result_at, item_count, warnings, result_error
    obb:beckn:pub:full                   STRING  a full publish is asked for: "reason time"
    obb:beckn:pub:full:lease             STRING  held by the worker doing it
    obb:beckn:pub:stats                  HASH    full_at, full_reason

Shards (docs/scaling.md, bridge/store/shards.py). Everything of one Beckn transaction
(its order, its callbacks and their queue, the duplicate-check records of its requests)
is in the transaction's shard: with more than one shard those keys carry the shard's tag
("obb:{tag}:beckn:cb:..."), a callback id starts with its shard ("7-3f2a..."), and the
wake list, the dead letters and (when the queues are not on the data's Redis) the
callbacks' due set are one per shard ("obb:{tag}:beckn:cb:due": cb id -> next attempt,
ms).

The catalog with shards: a location's hash is in its shard (the shard of its `ref`, as
its OCPI object's), and every index (GEO sets, the sets, the EVSE-id hash, all refs,
provider headers, tariff sets) is one per shard, so a render is one MULTI in one slot.
The functions below name an index with the placeholder tag "{cat}"
("obb:{cat}:beckn:geo"); `shard_key(name, shard)` is that index of one shard, and the
catalog store asks every shard and merges (bridge/store/catalog.py). The publisher's keys
(pub:*) keep "{cat}" as their real tag: one slot, apart from the catalog; a render marks
its location in its own shard (`pub_marks`) and the publisher moves the marks there.
"""

from __future__ import annotations

from bridge.store import shards

PREFIX = "obb:beckn:"


def _cat(rest: str) -> str:
    """A catalog index's name, or a publisher key (see the module docstring)."""
    return f"obb:{{cat}}:beckn:{rest}" if shards.current().tagged else f"{PREFIX}{rest}"


_PLACEHOLDER = "{cat}"


def shard_key(name: str, shard: int) -> str:
    """A catalog index of one shard: `name` (from the functions below) with the shard's
    tag for the placeholder; one Redis with one shard: `name` itself."""
    layout = shards.current()
    if not layout.tagged or _PLACEHOLDER not in name:
        return name
    return name.replace(_PLACEHOLDER, "{" + layout.tags[shard] + "}", 1)


def ref_shard(ref: str) -> int:
    """The shard of a location's catalog entry: its OCPI object's ("CC:PID:id")."""
    return shards.current().of(ref)


def pub_marks(shard: int) -> str:
    """A shard's renders not yet handed to the publisher: "{prov}\t{ref}" -> first change
    (ms). Written in the render's MULTI; the publisher moves them to `pub_dirty`."""
    return shard_key(_cat("pub:marks"), shard)


def txn_shard(txn_id: str) -> int:
    """The shard of a Beckn transaction (its order, callbacks, request records)."""
    return shards.current().of(f"txn:{txn_id}")


def _txn_key(txn_id: str, rest: str) -> str:
    return shards.current().key(txn_shard(txn_id), f"beckn:{rest}")


def seen(bap_id: str, action: str, message_id: str, txn_id: str = "") -> str:
    return _txn_key(txn_id, f"msg:{bap_id}:{action}:{message_id}")


def seen_lock(bap_id: str, action: str, message_id: str, txn_id: str = "") -> str:
    return f"{seen(bap_id, action, message_id, txn_id)}:lock"


def registry(subscriber_id: str, key_id: str) -> str:
    return f"{PREFIX}reg:{subscriber_id}|{key_id}"


def onboard(key_id: str) -> str:
    return f"{PREFIX}onboard:{key_id}"


def new_callback_id(txn_id: str, unique: str) -> str:
    """A callback's id: `unique` (a uuid's hex), prefixed with its transaction's shard
    when there is more than one."""
    layout = shards.current()
    return f"{txn_shard(txn_id)}-{unique}" if layout.tagged else unique


def callback_shard(cb_id: str) -> int:
    head, sep, _ = cb_id.partition("-")
    return int(head) if sep and head.isdigit() else 0


def callback(cb_id: str) -> str:
    return shards.current().key(callback_shard(cb_id), f"beckn:cb:{cb_id}")


def callback_lock(cb_id: str) -> str:
    return f"{callback(cb_id)}:lock"


def txn_queue(bap_id: str, txn_id: str) -> str:
    return _txn_key(txn_id, f"txq:{bap_id}:{txn_id}")


def txn_queue_prefix(shard: int) -> str:
    """`txn_queue(bap, txn)` = prefix + bap + ":" + txn, for a transaction of `shard`."""
    return shards.current().key(shard, "beckn:txq:")


def wake(shard: int = 0) -> str:
    return shards.current().key(shard, "beckn:cb:wake")


def dead(shard: int = 0) -> str:
    return shards.current().key(shard, "beckn:dead")


def due(shard: int = 0) -> str:
    return shards.current().key(shard, "beckn:cb:due")


def cat(ref: str) -> str:
    return shard_key(_cat(f"cat:{ref}"), ref_shard(ref))


def provider(prov: str) -> str:
    return _cat(f"prov:{prov}")


def geo_ct(connector_type: str) -> str:
    return _cat(f"geo:ct:{connector_type}")


def power(band: int) -> str:
    return _cat(f"idx:pw:{band}")


def prov_idx(prov: str) -> str:
    return _cat(f"idx:prov:{prov}")


def token(tok: str) -> str:
    return _cat(f"idx:tok:{tok}")


def tariff(cc: str, pid: str, tid: str) -> str:
    return _cat(f"tariff:{cc.upper()}:{pid.upper()}:{tid.lower()}")


# Names read when used (the layout is set at start): GEO, AVAIL, ALL, EVSE.
_NAMED = {"GEO": "geo", "AVAIL": "idx:avail", "ALL": "idx:all", "EVSE": "evse",
          "PUB_DUE": "pub:due", "PUB_INFLIGHT_SET": "pub:inflight", "PUB_FULL": "pub:full",
          "PUB_FULL_LEASE": "pub:full:lease", "PUB_STATS": "pub:stats"}


def __getattr__(name: str) -> str:
    if name in _NAMED:
        return _cat(_NAMED[name])
    if name == "WAKE":  # one shard's (one Redis): code uses wake(shard)
        return wake(0)
    if name == "DEAD":
        return dead(0)
    if name == "CATALOG_VERSION_KEY":  # one shard's (one Redis): code uses catalog_version
        return catalog_version(0)
    raise AttributeError(name)


CATALOG_GROUP = "beckn-catalog"


def pub_dirty(prov: str) -> str:
    return _cat(f"pub:dirty:{prov}")


def pub_inflight(prov: str) -> str:
    return _cat(f"pub:inflight:{prov}")


def pub_lease(prov: str) -> str:
    return _cat(f"pub:lease:{prov}")


def pub_failures(prov: str) -> str:
    return _cat(f"pub:fails:{prov}")


def pub_loc(ref: str) -> str:
    return _cat(f"pub:loc:{ref}")


def pub_refs(prov: str) -> str:
    return _cat(f"pub:refs:{prov}")


def pub_rejected(prov: str) -> str:
    return _cat(f"pub:rejected:{prov}")


def pub_request(transaction_id: str) -> str:
    return _cat(f"pub:req:{transaction_id}")


def pub_catalog(catalog_id: str) -> str:
    return _cat(f"pub:cat:{catalog_id}")


def station(location_id: str) -> str:
    return _cat(f"idx:station:{location_id.lower()}")


def catalog_version(shard: int = 0) -> str:
    """The catalog layout a shard's locations were rendered in (each shard's consumer
    renders its own again when it differs)."""
    if shards.current().tagged:
        return shards.current().key(shard, "beckn:catalog:version")
    return f"{PREFIX}catalog:version"
