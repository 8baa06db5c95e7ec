"""Every Redis key the bridge uses, in one place.

All keys start with `PREFIX`. `cc`/`pid` are the OCPI country code and party
id of the CPO party that pushed the object, upper-cased; ids are as the CPO
sent them (OCPI ids are case-insensitive: `norm_id` lower-cases them for keys).

OCPI objects (module = locations | tariffs | sessions | cdrs):
    obb:ocpi:{module}:{cc}:{pid}:{id}   HASH  d   = object JSON (for locations:
                                                    without `evses`)
                                             lu  = last_updated, epoch ms
                                             lus = last_updated, OCPI string
                                        locations only, per EVSE uid:
                                             e:{uid}   = EVSE JSON (with connectors) less
                                                         `status` and `last_updated`
                                             es:{uid}  = EVSE status
                                             el:{uid}  = EVSE last_updated, epoch ms
                                             els:{uid} = EVSE last_updated, OCPI string
                                        (status apart: a status PATCH, most of a CPO's
                                        traffic, is then one write with no read)
    obb:ocpi:idx:{module}:{cc}:{pid}    ZSET  id -> last_updated ms (GET lists, sync)
    obb:ocpi:idx:{module}               ZSET  "{cc}:{pid}:{id}" -> last_updated ms
                                              (all parties; what the catalog renders)
    obb:ocpi:events                     STREAM one entry per accepted change:
                                              module, op (put|patch|delete), cc, pid,
                                              id, evse_uid?, connector_id?, lu, fields?
                                              (trimmed to about `ocpi_events_maxlen`)

Credentials and parties:
    obb:cred:token:{sha256(token)}      HASH  our tokens (A: one-time invite; C: a
                                              registered platform's): kind, conn,
                                              parties, pending (1 while our own
                                              registration with it completes);
                                              invites: party = "CC:PID[,CC:PID...]"
    obb:cred:conn:{conn_id}             HASH  a registered platform: token (theirs, for
                                              our calls), token_hash (ours, theirs to
                                              use), versions_url, version_url,
                                              endpoints (JSON), roles (JSON), created
    obb:cred:conns                      SET   conn ids
    obb:cred:party:{cc}:{pid}           STRING conn id serving that CPO party
    obb:cred:changed                    PUBSUB a registration changed (conn id): every
                                              process drops its token cache
    obb:cred:stats:{cc}:{pid}           HASH  last_push, last_push_what, last_error,
                                              last_error_at (for `bridge cpo list`)
    obb:sync:{cc}:{pid}:{module}        STRING last successful sync time (OCPI DateTime)

Shards (docs/scaling.md, bridge/store/shards.py). With one shard on one Redis the names
are the ones above. Otherwise an object's hash carries the hash tag of its shard (the
shard of "{cc}:{pid}:{id}", for a Location also its catalog entry's), the indexes and the
change stream are one per shard ("obb:{tag}:ocpi:idx:...", "obb:{tag}:ocpi:events"),
so a write touches one slot; and the credentials' keys share one tag ("obb:{cred}:...")
because registration changes several in one MULTI.
"""

from __future__ import annotations

from bridge.store import shards

PREFIX = "obb:"

OCPI_MODULES = ("locations", "tariffs", "sessions", "cdrs")
# The change stream of one Redis with one shard (tools and tests); code reads every
# shard's: `events(shard)` for shard in `shards.current().shards`.
EVENTS = f"{PREFIX}ocpi:events"


def norm_id(value: str) -> str:
    """OCPI CiString ids compare case-insensitively; keys use the lower case."""
    return value.lower()


def object_ref(cc: str, pid: str, oid: str) -> str:
    """"{CC}:{PID}:{id}": an object's identity (a Location's is its catalog `ref`)."""
    return f"{cc.upper()}:{pid.upper()}:{norm_id(oid)}"


def shard_of(cc: str, pid: str, oid: str) -> int:
    return shards.current().of(object_ref(cc, pid, oid))


def obj(module: str, cc: str, pid: str, oid: str) -> str:
    ref = object_ref(cc, pid, oid)
    return shards.current().entity_key(ref, f"ocpi:{module}:{ref}")


def party_index(module: str, cc: str, pid: str, shard: int = 0) -> str:
    return shards.current().key(shard, f"ocpi:idx:{module}:{cc.upper()}:{pid.upper()}")


def module_index(module: str, shard: int = 0) -> str:
    return shards.current().key(shard, f"ocpi:idx:{module}")


def events(shard: int = 0) -> str:
    return shards.current().key(shard, "ocpi:events")


def cred(rest: str) -> str:
    """A credentials key: all under one hash tag on a Cluster (one MULTI changes several)."""
    return f"{PREFIX}{{cred}}:{rest}" if shards.current().tagged else f"{PREFIX}{rest}"


def token(token_hash: str) -> str:
    return cred(f"cred:token:{token_hash}")


def conn(conn_id: str) -> str:
    return cred(f"cred:conn:{conn_id}")


def conns() -> str:
    return cred("cred:conns")


CRED_CHANGED = f"{PREFIX}cred:changed"  # a pub/sub channel: no slot


def party(cc: str, pid: str) -> str:
    return cred(f"cred:party:{cc.upper()}:{pid.upper()}")


def party_stats(cc: str, pid: str) -> str:
    return cred(f"cred:stats:{cc.upper()}:{pid.upper()}")


def __getattr__(name: str) -> str:
    if name == "CONNS":  # the name it had before shards (read when used, not at import)
        return conns()
    raise AttributeError(name)


def sync_mark(cc: str, pid: str, module: str) -> str:
    return f"{PREFIX}sync:{cc.upper()}:{pid.upper()}:{module}"
