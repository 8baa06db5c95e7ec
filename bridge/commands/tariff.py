"""`bridge tariff price [TARIFF.json ...] CDR_OR_SESSION.json [--tariff T.json]... [--time-zone TZ]`.

Prices an OCPI 2.2.1 CDR or Session with the same engine as quotes and
settlements, and prints the result as JSON on stdout (amounts as JSON
numbers, every figure under the OCPI name it has: `total_time` is the whole
session as in the CDRs chapter, `total_charging_time` is its note's
`total_time - total_parking_time`, `volumes` / `billed` are per
CdrDimensionType).

Which tariff prices which period (each period's `tariff_id`, mod_cdrs
ChargingPeriod): the tariff files given, then the CDR's own `tariffs`, then
the tariffs stored by the bridge (Redis, `redis_url` of the settings). One
file given for a record whose periods name at most one tariff prices every
period (a what-if; a warning says so when the ids differ). Which time zone:
`--time-zone`, else the stored Location's `time_zone`, else UTC (with a
warning); the output says which one was used and where it came from.
`--offline` never asks the store.

A file that is not JSON, not a valid Tariff, or neither a valid CDR nor a
valid Session, or a period naming a tariff found nowhere, exits with status 2
and a message on stderr naming the file and the invalid field. Also runnable
on its own: `python -m bridge.commands.tariff price ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from bridge.mapping.money import decimal_to_json, minor_unit
from bridge.mapping.tariff import TariffError, price_cdr, price_session, zone
from bridge.ocpi.models import CDR, Session, Tariff

if TYPE_CHECKING:
    from bridge.config import Settings

PROG = "bridge tariff price"
M = TypeVar("M", bound=BaseModel)
STORE_TIMEOUT_S = 3.0  # the store is a convenience here: never hang the command on it


class InputError(Exception):
    """A bad input file or option: exit status 2."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `tariff price` to the `bridge` command line."""
    parser = sub.add_parser("tariff", help="OCPI tariff tools", description="OCPI 2.2.1 tariff tools.")
    parser.set_defaults(needs_settings=False)
    tsub = parser.add_subparsers(dest="tariff_command", required=True)
    p = tsub.add_parser(
        "price",
        help="price a CDR or Session with its tariffs",
        description="Price an OCPI 2.2.1 CDR or Session and print the result as JSON. Each charging "
                    "period is priced with the tariff its tariff_id names: from the files given, the "
                    "CDR's own tariffs, or the bridge's store.",
    )
    p.add_argument("files", metavar="FILE.json", nargs="+",
                   help="[TARIFF.json ...] CDR_OR_SESSION.json: tariffs (optional), then the record")
    p.add_argument("--tariff", dest="tariffs", metavar="TARIFF.json", action="append", default=[],
                   help="a Tariff to use (repeatable): one per tariff_id the periods name")
    p.add_argument(
        "--time-zone", dest="time_zone", default=None,
        help="the Location's IANA time zone, e.g. Asia/Kolkata (default: the stored Location's, else UTC)",
    )
    p.add_argument(
        "--now", default=None,
        help="for an ACTIVE Session: price it up to this RFC 3339 time (default: its last_updated)",
    )
    p.add_argument("--offline", action="store_true",
                   help="do not look the Location or tariffs up in the bridge's store (Redis)")
    p.set_defaults(func=cmd_price, needs_settings=True)


def cmd_price(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from bridge.config import ConfigError

    tariff_paths = [*args.files[:-1], *args.tariffs]
    try:
        out = _price(tariff_paths, args.files[-1], args.time_zone, args.now,
                     None if args.offline else _Store.lookup(settings))
    except ConfigError as exc:
        print(f"{PROG}: configuration error (use --offline to price without the store): {exc}",
              file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


@dataclass
class _Found:
    """What the store had for a record."""

    time_zone: str | None = None
    location: str | None = None  # "CC/PID/LOCATION-ID"
    tariffs: dict[str, Tariff] = field(default_factory=dict)
    problem: str | None = None  # why nothing could be looked up


class _Store:
    """Read-only look-ups in the bridge's store (the stored Location and Tariffs)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def lookup(cls, settings: Settings | None) -> _Store:
        if settings is None:
            from bridge.config import load_settings

            settings = load_settings(os.environ)
        return cls(settings)

    def find(self, cc: str, pid: str, location_id: str | None, tariff_ids: Sequence[str]) -> _Found:
        from redis.exceptions import RedisError

        work = self._find(cc, pid, location_id, tariff_ids)
        try:
            return asyncio.run(asyncio.wait_for(work, STORE_TIMEOUT_S))
        except (OSError, TimeoutError, RedisError) as exc:
            # Any Redis failure: price without the store, and say so.
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return _Found(problem=f"store not reachable: {text}")

    async def _find(self, cc: str, pid: str, location_id: str | None, tariff_ids: Sequence[str]) -> _Found:
        from bridge import redisconn
        from bridge.store.ocpi_store import OcpiStore

        redis = redisconn.data(self.settings, socket_connect_timeout=STORE_TIMEOUT_S,
                               socket_timeout=STORE_TIMEOUT_S)
        try:
            store = OcpiStore(redis)
            found = _Found()
            if location_id:
                loc = await store.get("locations", cc, pid, location_id)
                tz = loc.data.get("time_zone") if loc is not None else None
                if isinstance(tz, str) and tz:
                    found.time_zone, found.location = tz, f"{cc}/{pid}/{location_id}".upper()
            for tid in tariff_ids:
                stored = await store.get("tariffs", cc, pid, tid)
                if stored is not None:
                    try:
                        found.tariffs[tid] = Tariff.model_validate(stored.data)
                    except ValidationError:
                        continue  # the store validated it on the way in; a newer model may not
            return found
        finally:
            await redis.aclose()


def _price(tariff_paths: Sequence[str], record_path: str, time_zone: str | None, now_text: str | None,
           store: _Store | None) -> dict[str, Any]:
    if time_zone is not None:
        try:
            zone(time_zone)
        except TariffError as exc:
            raise InputError(f"--time-zone: {exc}") from exc
    files: list[tuple[str, Tariff]] = [
        (path, _model(Tariff, _read(path), path, "Tariff")) for path in tariff_paths
    ]
    doc = _read(record_path)
    kind, record = _record(doc, record_path)
    named = _named_ids(record)
    inline = {t.id: t for t in record.tariffs or ()} if isinstance(record, CDR) else {}
    given = {t.id: t for _, t in files}
    sources: dict[str, str] = {tid: "CDR tariffs" for tid in inline}
    sources.update({t.id: f"file {path}" for path, t in files})
    warnings: list[str] = []

    # One file and at most one tariff named: the file prices every period (as asked).
    override: Tariff | None = None
    if len(files) == 1 and len(named) <= 1:
        path, override = files[0]
        if named and named[0] != override.id:
            warnings.append(f"the periods name tariff {named[0]}; every period priced with tariff "
                            f"{override.id} from {path} as given")
        sources = {override.id: f"file {path}"}
    missing = [] if override is not None else [tid for tid in named if tid not in given and tid not in inline]

    # The store: the Location's time zone, and tariffs no file and no CDR carries.
    location_id = record.cdr_location.id if isinstance(record, CDR) else record.location_id
    found = _Found()
    wants_store = time_zone is None or missing
    if store is not None and wants_store:
        found = store.find(record.country_code, record.party_id, location_id, missing)
        if found.problem:
            warnings.append(f"{found.problem} ({_redacted(store.settings.redis_url)})")
    for tid in found.tariffs:
        sources[tid] = "store"
    still = [tid for tid in missing if tid not in found.tariffs]
    if still:
        where = "the files given, the CDR's tariffs" + (" or the store" if store is not None else "")
        raise InputError(f"{record_path}: charging periods name tariff {', '.join(still)}, "
                         f"not found in {where}")

    if time_zone is not None:
        tz, tz_source = time_zone, "--time-zone"
    elif found.time_zone is not None:
        tz, tz_source = found.time_zone, f"stored location {found.location}"
        try:
            zone(tz)
        except TariffError:
            warnings.append(f"stored location {found.location} has an unknown time_zone {tz!r}")
            tz, tz_source = "UTC", "default"
    else:
        tz, tz_source = "UTC", "default"
        why = "offline" if store is None else (
            "its location is not in the store" if not found.problem else "the store was not reachable")
        warnings.append(f"no time zone given and none found ({why}): restrictions evaluated in UTC")

    pool = {**found.tariffs, **given}
    if len(files) == 0 and not named and not inline and not found.tariffs:
        raise InputError(f"{record_path}: no tariff to price it with: give a TARIFF.json")
    try:
        if isinstance(record, CDR):
            result = price_cdr(record, tz, tariff=override, tariffs=pool)
        else:
            now = _now(now_text, record)
            if override is None and len(named) > 1:
                # A Session that switched tariffs: each period with the one it names.
                result = price_session(record, pool[named[0]], tz, now, tariffs=pool)
            else:
                tariff = override or _session_tariff(record, pool, files, record_path)
                result = price_session(record, tariff, tz, now)
    except TariffError as exc:
        raise InputError(f"{record_path}: {exc}") from exc
    out: dict[str, Any] = {"record": {"type": kind, "id": record.id}}
    out.update(result.to_json())
    out["time_zone_source"] = tz_source
    out["tariff_sources"] = {tid: sources.get(tid, "CDR tariffs") for tid in result.tariff_ids}
    out["warnings"] = [*warnings, *out["warnings"]]
    reported = record.total_cost
    if reported is not None:
        ours = result.total_cost
        tolerance = minor_unit(result.currency)
        same = abs(reported.excl_vat - ours.excl_vat) <= tolerance and (
            reported.incl_vat is None or abs(reported.incl_vat - ours.incl_vat) <= tolerance
        )
        out["reported_total_cost"] = {
            "excl_vat": decimal_to_json(reported.excl_vat),
            "incl_vat": None if reported.incl_vat is None else decimal_to_json(reported.incl_vat),
        }
        out["matches_reported"] = same
    return out


def _named_ids(record: CDR | Session) -> list[str]:
    """The tariff ids the record's periods name, in order of first use."""
    out: list[str] = []
    for p in record.charging_periods or ():
        if p.tariff_id and p.tariff_id not in out:
            out.append(p.tariff_id)
    return out


def _session_tariff(session: Session, pool: dict[str, Tariff], files: list[tuple[str, Tariff]],
                    path: str) -> Tariff:
    named = _named_ids(session)
    if len(named) == 1 and named[0] in pool:
        return pool[named[0]]
    if len(pool) == 1:
        return next(iter(pool.values()))
    raise InputError(f"{path}: the Session names no tariff: give one TARIFF.json")


def _redacted(url: str) -> str:
    from bridge.cli import redact_url

    return redact_url(url)


def _read(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    # Accept an OCPI response envelope ({"data": {...}, "status_code": 1000, ...}) too.
    if isinstance(doc, dict) and "status_code" in doc and isinstance(doc.get("data"), dict):
        doc = doc["data"]
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(doc).__name__}")
    return doc


def _model(cls: type[M], doc: dict[str, Any], path: str, name: str) -> M:
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        raise InputError(f"{path}: not a valid OCPI {name}: {_fields(exc)}") from exc


def _fields(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "(object)"
        parts.append(f"field {loc}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _record(doc: dict[str, Any], path: str) -> tuple[str, CDR | Session]:
    if "cdr_location" in doc or ("charging_periods" in doc and "total_energy" in doc):
        return "CDR", _model(CDR, doc, path, "CDR")
    if "kwh" in doc or "status" in doc:
        return "Session", _model(Session, doc, path, "Session")
    raise InputError(
        f"{path}: neither a CDR nor a Session"
        " (a CDR has the field cdr_location, a Session has kwh and status)"
    )


def _now(text: str | None, session: Session) -> datetime:
    if text is None:
        return session.end_date_time or session.last_updated
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--now: not an RFC 3339 time: {text!r}") from exc
    if value.tzinfo is None:
        raise InputError(f"--now: {text!r} has no time zone offset")
    return value


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["tariff", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
