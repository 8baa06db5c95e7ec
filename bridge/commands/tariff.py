"""`bridge tariff price TARIFF.json CDR_OR_SESSION.json [--time-zone TZ]`.

Prices an OCPI 2.2.1 CDR or Session with a Tariff, using the same engine as
quotes and settlements, and prints the result as JSON on stdout (amounts as
JSON numbers). A file that is not JSON, not a valid Tariff, or neither a
valid CDR nor a valid Session exits with status 2 and a message on stderr
naming the file and the invalid field. Also runnable on its own:
`python -m bridge.commands.tariff price ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bridge.mapping.money import decimal_to_json, minor_unit
from bridge.mapping.tariff import TariffError, price_cdr, price_session, zone
from bridge.ocpi.models import CDR, Session, Tariff

PROG = "bridge tariff price"
M = TypeVar("M", bound=BaseModel)


class InputError(Exception):
    """A bad input file or option: exit status 2."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `tariff price` to the `bridge` command line."""
    parser = sub.add_parser("tariff", help="OCPI tariff tools", description="OCPI 2.2.1 tariff tools.")
    parser.set_defaults(needs_settings=False)
    tsub = parser.add_subparsers(dest="tariff_command", required=True)
    p = tsub.add_parser(
        "price",
        help="price a CDR or Session with a tariff",
        description="Price an OCPI 2.2.1 CDR or Session with a Tariff and print the result as JSON.",
    )
    p.add_argument("tariff", metavar="TARIFF.json", help="an OCPI Tariff object")
    p.add_argument("record", metavar="CDR_OR_SESSION.json", help="an OCPI CDR or Session object")
    p.add_argument(
        "--time-zone", dest="time_zone", default=None,
        help="the Location's IANA time zone, e.g. Asia/Kolkata (default: UTC, with a warning)",
    )
    p.add_argument(
        "--now", default=None,
        help="for an ACTIVE Session: price it up to this RFC 3339 time (default: its last_updated)",
    )
    p.set_defaults(func=cmd_price, needs_settings=False)


def cmd_price(args: argparse.Namespace) -> int:
    try:
        out = _price(args.tariff, args.record, args.time_zone, args.now)
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _price(tariff_path: str, record_path: str, time_zone: str | None, now_text: str | None) -> dict[str, Any]:
    if time_zone is not None:
        try:
            zone(time_zone)
        except TariffError as exc:
            raise InputError(f"--time-zone: {exc}") from exc
    tariff = _model(Tariff, _read(tariff_path), tariff_path, "Tariff")
    doc = _read(record_path)
    kind, record = _record(doc, record_path)
    try:
        if isinstance(record, CDR):
            result = price_cdr(record, time_zone, tariff=tariff)
        else:
            now = _now(now_text, record)
            result = price_session(record, tariff, time_zone or "UTC", now)
    except TariffError as exc:
        raise InputError(f"{record_path}: {exc}") from exc
    out: dict[str, Any] = {"record": {"type": kind, "id": record.id}}
    out.update(result.to_json())
    if time_zone is None and isinstance(record, Session):
        out["warnings"] = [*out["warnings"], "no time zone given: restrictions evaluated in UTC"]
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["tariff", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
