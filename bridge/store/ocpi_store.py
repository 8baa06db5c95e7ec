"""Redis repository of the OCPI objects CPOs push: locations, tariffs, sessions, CDRs.

Key layout: `bridge.store.keys`. Every write goes through one Lua script
(`bridge.store.scripts.WRITE`) that checks `last_updated`, writes, indexes and
emits the change event atomically; the HTTP answer is sent only after it
returns, so an acknowledged change is in Redis (and in the AOF).

PATCH is read-merge-validate-write with optimistic concurrency: the write
carries the `last_updated` it merged onto (`cas:`), and is retried if another
writer got in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, TypeAdapter, ValidationError

from bridge.ocpi.models import (
    EVSE,
    WIRE,
    Connector,
    DateTime,
    Location,
    Status,
    format_datetime,
)
from bridge.store import keys, shards
from bridge.store.scripts import DELETE, WRITE

CAS_RETRIES = 8


class Outcome(Enum):
    CREATED = "created"  # a new object: the receiver answers HTTP 201
    WRITTEN = "written"
    STALE = "stale"  # older than what is stored: ignored, answered 1000
    MISSING = "missing"  # PATCH of an unknown object, EVSE of an unknown location
    EXISTS = "exists"  # create of an immutable object that is already there


class PatchInvalid(Exception):
    """A PATCH that would make the stored object invalid (message says which field)."""

    def __init__(self, error: ValidationError | str) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Stored:
    data: dict[str, Any]
    lu_ms: int


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _json(model: BaseModel, exclude: set[str] | None = None) -> bytes:
    return orjson.dumps(model.model_dump(mode="json", exclude_none=True, exclude=exclude))


def merge_patch(stored: Mapping[str, Any], patch: Mapping[str, Any],
                append: tuple[str, ...] = ()) -> dict[str, Any]:
    """OCPI PATCH (§4.1.?, "PATCH" in each module): top-level fields replace,
    except those in `append` (Session `charging_periods`), whose items are added."""
    merged = dict(stored)
    for key, value in patch.items():
        if key in append and isinstance(value, list):
            merged[key] = [*merged.get(key, []), *value]
        else:
            merged[key] = value
    return merged


class OcpiStore:
    def __init__(self, redis: aioredis.Redis, events_maxlen: int = 200_000) -> None:
        self.redis = redis
        self.events_maxlen = events_maxlen
        self._write = redis.register_script(WRITE)
        self._delete = redis.register_script(DELETE)

    # ------------------------------------------------------------------ primitive

    async def _run_write(self, module: str, cc: str, pid: str, oid: str, *, guard: str,
                         guard_ms: int, pre: str, mode: str, lu_ms: int, lus: str,
                         fields: Mapping[str, bytes | str], event: Mapping[str, str]) -> int:
        cc, pid = cc.upper(), pid.upper()
        args: list[Any] = [guard, guard_ms, pre, mode, keys.norm_id(oid),
                           f"{cc}:{pid}:{keys.norm_id(oid)}", lu_ms, lus, self.events_maxlen,
                           len(fields)]
        for k, v in fields.items():
            args += [k, v]
        base_event = {"module": module, "cc": cc, "pid": pid, "id": oid, "lu": lus}
        for k, v in {**base_event, **event}.items():
            args += [k, v]
        shard = keys.shard_of(cc, pid, oid)  # the object, its index entries, its event: one slot
        key_list = [keys.obj(module, cc, pid, oid), keys.party_index(module, cc, pid, shard),
                    keys.module_index(module, shard), keys.events(shard)]
        return int(await self._write(keys=key_list, args=args))

    # ------------------------------------------------------------------ tariffs, sessions, CDRs

    async def get(self, module: str, cc: str, pid: str, oid: str) -> Stored | None:
        d, lu = await self.redis.hmget(keys.obj(module, cc, pid, oid), "d", "lu")
        if d is None:
            return None
        return Stored(orjson.loads(d), int(lu or 0))

    async def get_raw(self, module: str, cc: str, pid: str, oid: str) -> bytes | None:
        raw: bytes | None = await self.redis.hget(keys.obj(module, cc, pid, oid), "d")
        return raw

    async def put(self, module: str, obj: Any, *, create_only: bool = False,
                  only_newer: bool = False) -> Outcome:
        """Upsert (or, for CDRs, create) a whole object that has country_code,
        party_id, id and last_updated."""
        lu = ms(obj.last_updated)
        lus = format_datetime(obj.last_updated)
        rc = await self._run_write(
            module, obj.country_code, obj.party_id, obj.id, guard="lu", guard_ms=lu,
            pre="absent" if create_only else ("newer" if only_newer else ""), mode="put",
            lu_ms=lu, lus=lus, fields={"d": _json(obj)}, event={"op": "put"})
        return {2: Outcome.CREATED, 1: Outcome.WRITTEN, 0: Outcome.STALE}.get(
            rc, Outcome.EXISTS if create_only else Outcome.MISSING)

    async def patch(self, module: str, cc: str, pid: str, oid: str, patch: Mapping[str, Any],
                    model: type[BaseModel], append: tuple[str, ...] = ()) -> Outcome:
        for _ in range(CAS_RETRIES):
            stored = await self.get(module, cc, pid, oid)
            if stored is None:
                return Outcome.MISSING
            try:
                obj: Any = model.model_validate(merge_patch(stored.data, patch, append), context=WIRE)
            except ValidationError as exc:
                raise PatchInvalid(exc) from exc
            lu = ms(obj.last_updated)
            rc = await self._run_write(
                module, cc, pid, oid, guard="lu", guard_ms=lu, pre=f"cas:{stored.lu_ms}",
                mode="put", lu_ms=lu, lus=format_datetime(obj.last_updated),
                fields={"d": _json(obj)},
                event={"op": "patch", "fields": ",".join(sorted(patch))})
            if rc >= 1:
                return Outcome.WRITTEN
            if rc == 0:
                return Outcome.STALE
        raise RuntimeError(f"PATCH {module}/{cc}/{pid}/{oid}: too many concurrent writers")

    async def delete(self, module: str, cc: str, pid: str, oid: str) -> bool:
        cc, pid = cc.upper(), pid.upper()
        shard = keys.shard_of(cc, pid, oid)
        rc = await self._delete(
            keys=[keys.obj(module, cc, pid, oid), keys.party_index(module, cc, pid, shard),
                  keys.module_index(module, shard), keys.events(shard)],
            args=[keys.norm_id(oid), f"{cc}:{pid}:{keys.norm_id(oid)}", self.events_maxlen,
                  "module", module, "cc", cc, "pid", pid, "id", oid, "op", "delete"])
        return bool(rc)

    async def purge_party(self, cc: str, pid: str) -> dict[str, int]:
        """Delete every object a party pushed (`bridge cpo remove --purge`), each with
        its delete event so the catalog and other readers follow. Counts per module."""
        counts = {}
        for module in keys.OCPI_MODULES:
            ids = [oid for shard in shards.current().shards
                   for oid in await self.redis.zrange(keys.party_index(module, cc, pid, shard),
                                                      0, -1)]
            n = 0
            for oid in ids:
                n += await self.delete(module, cc, pid, oid.decode())
            counts[module] = n
        return counts

    # ------------------------------------------------------------------ locations

    async def _location_hash(self, cc: str, pid: str, lid: str) -> dict[bytes, bytes]:
        h: dict[bytes, bytes] = await self.redis.hgetall(keys.obj("locations", cc, pid, lid))
        return h

    @staticmethod
    def _assemble(h: Mapping[bytes, bytes]) -> dict[str, Any]:
        loc: dict[str, Any] = orjson.loads(h[b"d"])
        evses = [_evse_dict(v, h[b"es" + k[1:]], h[b"els" + k[1:]])
                 for k, v in sorted(h.items()) if k.startswith(b"e:")]
        if evses:
            loc["evses"] = evses
        loc["last_updated"] = h[b"lus"].decode()
        return loc

    async def get_location(self, cc: str, pid: str, lid: str) -> dict[str, Any] | None:
        h = await self._location_hash(cc, pid, lid)
        return self._assemble(h) if b"d" in h else None

    async def get_location_raw(self, cc: str, pid: str, lid: str) -> bytes | None:
        loc = await self.get_location(cc, pid, lid)
        return orjson.dumps(loc) if loc is not None else None

    async def put_location(self, loc: Location, *, pre: str = "", op: str = "put",
                           fields_changed: str = "") -> int:
        lu = ms(loc.last_updated)
        lus = format_datetime(loc.last_updated)
        fields: dict[str, bytes | str] = {"d": _json(loc, exclude={"evses"})}
        for evse in loc.evses or []:
            fields.update(_evse_fields(evse))
        event = {"op": op}
        if fields_changed:
            event["fields"] = fields_changed
        return await self._run_write("locations", loc.country_code, loc.party_id, loc.id,
                                     guard="lu", guard_ms=lu, pre=pre, mode="put", lu_ms=lu,
                                     lus=lus, fields=fields, event=event)

    async def patch_location(self, cc: str, pid: str, lid: str,
                             patch: Mapping[str, Any]) -> Outcome:
        for _ in range(CAS_RETRIES):
            h = await self._location_hash(cc, pid, lid)
            if b"d" not in h:
                return Outcome.MISSING
            try:
                loc = Location.model_validate(merge_patch(self._assemble(h), patch), context=WIRE)
            except ValidationError as exc:
                raise PatchInvalid(exc) from exc
            rc = await self.put_location(loc, pre=f"cas:{int(h[b'lu'])}", op="patch",
                                         fields_changed=",".join(sorted(patch)))
            if rc != -1:
                return Outcome.WRITTEN if rc >= 1 else Outcome.STALE
        raise RuntimeError(f"PATCH location {cc}/{pid}/{lid}: too many concurrent writers")

    async def get_evse(self, cc: str, pid: str, lid: str, uid: str) -> Stored | None:
        key = keys.obj("locations", cc, pid, lid)
        u = keys.norm_id(uid)
        d, es, el, els = await self.redis.hmget(key, f"e:{u}", f"es:{u}", f"el:{u}", f"els:{u}")
        return Stored(_evse_dict(d, es, els), int(el or 0)) if d is not None else None

    async def _write_evse(self, cc: str, pid: str, lid: str, evse: EVSE, *, pre: str, op: str,
                          connector_id: str | None = None, fields_changed: str = "") -> int:
        uid = keys.norm_id(evse.uid)
        lu = ms(evse.last_updated)
        event = {"op": op, "evse_uid": evse.uid, "status": evse.status.value}
        if connector_id:
            event["connector_id"] = connector_id
        if fields_changed:
            event["fields"] = fields_changed
        return await self._run_write(
            "locations", cc, pid, lid, guard=f"el:{uid}", guard_ms=lu, pre=pre, mode="merge",
            lu_ms=lu, lus=format_datetime(evse.last_updated), fields=_evse_fields(evse),
            event=event)

    async def put_evse(self, cc: str, pid: str, lid: str, evse: EVSE) -> Outcome:
        rc = await self._write_evse(cc, pid, lid, evse, pre="exists", op="put")
        return {2: Outcome.CREATED, 1: Outcome.WRITTEN, 0: Outcome.STALE}.get(rc, Outcome.MISSING)

    async def _update_evse(self, cc: str, pid: str, lid: str, uid: str,
                           change: Callable[[dict[str, Any]], tuple[EVSE, str | None]],
                           op: str, fields_changed: str = "") -> Outcome:
        for _ in range(CAS_RETRIES):
            stored = await self.get_evse(cc, pid, lid, uid)
            if stored is None:
                return Outcome.MISSING
            evse, connector_id = change(stored.data)
            rc = await self._write_evse(cc, pid, lid, evse, pre=f"cas:{stored.lu_ms}", op=op,
                                        connector_id=connector_id, fields_changed=fields_changed)
            if rc != -1:
                return Outcome.WRITTEN if rc >= 1 else Outcome.STALE
        raise RuntimeError(f"EVSE {cc}/{pid}/{lid}/{uid}: too many concurrent writers")

    async def patch_evse(self, cc: str, pid: str, lid: str, uid: str,
                         patch: Mapping[str, Any]) -> Outcome:
        if set(patch) <= {"status", "last_updated"} and "status" in patch:
            return await self._patch_evse_status(cc, pid, lid, uid, patch)
        def change(data: dict[str, Any]) -> tuple[EVSE, str | None]:
            try:
                return EVSE.model_validate(merge_patch(data, patch), context=WIRE), None
            except ValidationError as exc:
                raise PatchInvalid(exc) from exc

        return await self._update_evse(cc, pid, lid, uid, change, "patch", ",".join(sorted(patch)))

    async def _patch_evse_status(self, cc: str, pid: str, lid: str, uid: str,
                                 patch: Mapping[str, Any]) -> Outcome:
        """The hot path: status and last_updated live in their own hash fields,
        so this is one validated write, with no read and no JSON merge."""
        try:
            status = Status(patch["status"])
        except ValueError as exc:
            raise PatchInvalid(f"status: {patch['status']!r} is not an EVSE Status") from exc
        try:
            lu_dt = _DATETIME.validate_python(patch["last_updated"], context=WIRE)
        except ValidationError as exc:
            raise PatchInvalid(f"last_updated: {exc.errors()[0]['msg']}") from exc
        u = keys.norm_id(uid)
        lu, lus = ms(lu_dt), format_datetime(lu_dt)
        rc = await self._run_write(
            "locations", cc, pid, lid, guard=f"el:{u}", guard_ms=lu, pre=f"has:e:{u}",
            mode="merge", lu_ms=lu, lus=lus,
            fields={f"es:{u}": status.value, f"el:{u}": str(lu), f"els:{u}": lus},
            event={"op": "patch", "evse_uid": uid, "status": status.value,
                   "fields": ",".join(sorted(patch))})
        return {1: Outcome.WRITTEN, 0: Outcome.STALE}.get(rc, Outcome.MISSING)

    async def put_connector(self, cc: str, pid: str, lid: str, uid: str,
                            connector: Connector) -> Outcome:
        return await self._set_connector(cc, pid, lid, uid, connector.id,
                                         lambda _old: connector, "put")

    async def patch_connector(self, cc: str, pid: str, lid: str, uid: str, cid: str,
                              patch: Mapping[str, Any]) -> Outcome:
        def change(old: dict[str, Any] | None) -> Connector:
            if old is None:
                raise KeyError(cid)
            try:
                return Connector.model_validate(merge_patch(old, patch), context=WIRE)
            except ValidationError as exc:
                raise PatchInvalid(exc) from exc

        try:
            return await self._set_connector(cc, pid, lid, uid, cid, change, "patch",
                                             ",".join(sorted(patch)))
        except KeyError:
            return Outcome.MISSING

    async def _set_connector(self, cc: str, pid: str, lid: str, uid: str, cid: str,
                             make: Callable[[dict[str, Any] | None], Connector], op: str,
                             fields_changed: str = "") -> Outcome:
        def change(data: dict[str, Any]) -> tuple[EVSE, str | None]:
            connectors = list(data.get("connectors", []))
            pos = next((i for i, c in enumerate(connectors)
                        if keys.norm_id(c["id"]) == keys.norm_id(cid)), None)
            old = connectors[pos] if pos is not None else None
            new = make(old)
            new_json = new.model_dump(mode="json", exclude_none=True)
            if old is not None and ms(Connector.model_validate(old).last_updated) > ms(
                    new.last_updated):
                raise _StaleConnector
            if pos is None:
                connectors.append(new_json)
            else:
                connectors[pos] = new_json
            evse = EVSE.model_validate({**data, "connectors": connectors})
            # A child's change bumps its parents' last_updated (§8.3: "last_updated").
            if new.last_updated > evse.last_updated:
                evse = evse.model_copy(update={"last_updated": new.last_updated})
            return evse, cid

        try:
            return await self._update_evse(cc, pid, lid, uid, change, op, fields_changed)
        except _StaleConnector:
            return Outcome.STALE


_DATETIME: TypeAdapter[datetime] = TypeAdapter(DateTime)


def _evse_fields(evse: EVSE) -> dict[str, bytes | str]:
    u = keys.norm_id(evse.uid)
    return {f"e:{u}": _json(evse, exclude={"status", "last_updated"}),
            f"es:{u}": evse.status.value, f"el:{u}": str(ms(evse.last_updated)),
            f"els:{u}": format_datetime(evse.last_updated)}


def _evse_dict(body: bytes, status: bytes, lus: bytes) -> dict[str, Any]:
    evse: dict[str, Any] = orjson.loads(body)
    evse["status"] = status.decode()
    evse["last_updated"] = lus.decode()
    return evse


class _StaleConnector(Exception):
    """The pushed connector is older than the stored one: nothing is written."""
