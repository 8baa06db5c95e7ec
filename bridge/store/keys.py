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
"""

from __future__ import annotations

PREFIX = "obb:"

OCPI_MODULES = ("locations", "tariffs", "sessions", "cdrs")
EVENTS = f"{PREFIX}ocpi:events"


def norm_id(value: str) -> str:
    """OCPI CiString ids compare case-insensitively; keys use the lower case."""
    return value.lower()


def obj(module: str, cc: str, pid: str, oid: str) -> str:
    return f"{PREFIX}ocpi:{module}:{cc.upper()}:{pid.upper()}:{norm_id(oid)}"


def party_index(module: str, cc: str, pid: str) -> str:
    return f"{PREFIX}ocpi:idx:{module}:{cc.upper()}:{pid.upper()}"


def module_index(module: str) -> str:
    return f"{PREFIX}ocpi:idx:{module}"


def token(token_hash: str) -> str:
    return f"{PREFIX}cred:token:{token_hash}"


def conn(conn_id: str) -> str:
    return f"{PREFIX}cred:conn:{conn_id}"


CONNS = f"{PREFIX}cred:conns"
CRED_CHANGED = f"{PREFIX}cred:changed"


def party(cc: str, pid: str) -> str:
    return f"{PREFIX}cred:party:{cc.upper()}:{pid.upper()}"


def party_stats(cc: str, pid: str) -> str:
    return f"{PREFIX}cred:stats:{cc.upper()}:{pid.upper()}"


def sync_mark(cc: str, pid: str, module: str) -> str:
    return f"{PREFIX}sync:{cc.upper()}:{pid.upper()}:{module}"
