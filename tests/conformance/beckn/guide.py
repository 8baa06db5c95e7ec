"""The guide profile checked against the implementation guide's examples: a message the
bridge writes for a step of the journey must carry every field path the guide's example
of that step has (values may differ).

Paths are a message's keys from the top, list positions as `[*]`; a path of the example
is carried when the bridge's message has it as a leaf or as an object/list on the way
to others. The context is the BAP's, echoed: it is checked against the Beckn Context
schema (rc2 validator), not against the example.

`NO_SOURCE` lists the example paths the bridge has nothing to fill with, and why;
`ECHOED` the ones that repeat what the BAP sent (present only when the BAP sent them:
the per-example test sends the guide's own requests); `CONFIGURED` the ones that depend
on data or settings a scenario may not have (a network id, an operator logo).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tests import spec
from tests.conformance.beckn import rc2
from tests.conformance.beckn.rc2 import Violation

NO_SOURCE: dict[str, str] = {
    "real-time-data.connector-temperature": "OCPI 2.2.1 reports no connector temperature",
    "real-time-data.battery-level": "only when the CPO's charging periods carry "
                                    "STATE_OF_CHARGE (the mock CPO's do not)",
    "beckn:paymentAttributes.bank-details": "no bank transfer is offered: payments go through "
                                            "the gateway's payment link",
    "beckn:rating": "no rating of a charger is kept (ratings are stored per order)",
}
ECHOED = ("billing-details", "fulfillment-details.vehicle", "fulfillment-details.customer",
          "buyer-finder-fee")
CONFIGURED = ("beckn:networkId", "beckn:descriptor.schema:image", "provider-details.schema:image")


def paths(node: Any, prefix: str = "") -> set[str]:
    """Every path in `node` (interior and leaf), list positions as [*]."""
    out = {prefix} if prefix else set()
    if isinstance(node, dict):
        for k, v in node.items():
            out |= paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(node, list):
        for v in node:
            out |= paths(v, f"{prefix}[*]")
    return out


def leaves(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict) and node:
        return set().union(*(leaves(v, f"{prefix}.{k}" if prefix else k) for k, v in node.items()))
    if isinstance(node, list) and node:
        return set().union(*(leaves(v, f"{prefix}[*]") for v in node))
    return {prefix}


@cache
def example(name: str) -> dict[str, Any]:
    return json.loads(spec.require(spec.BECKN_EXAMPLES / name).read_text())


def payload(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "context"}


def _gives_back(body: dict[str, Any]) -> bool:
    pd = ((_order(body).get("beckn:orderAttributes") or {}).get("payment-details"))
    return isinstance(pd, list) and any(e.get("beckn:method") in ("REFUND", "RELEASE")
                                        for e in pd)


def excused(path: str, strict: bool, body: dict[str, Any] | None = None) -> str | None:
    for frag, why in NO_SOURCE.items():
        if frag in path:
            return why
    if ("refund-type" in path or "refund-amount" in path) and body is not None and \
            "payment-details" in path and not _gives_back(body):
        return "the bill gave nothing back (no refund or release line)"
    if not strict:
        for frag in ECHOED + CONFIGURED:
            if frag in path:
                return "echo / configuration"
    return None


def missing(body: dict[str, Any], name: str, strict: bool = True) -> list[str]:
    """The example's field paths the body lacks (context aside, excused ones aside)."""
    want = leaves(payload(example(name)))
    have = paths(payload(body))
    return sorted(p for p in want if p not in have and not excused(p, strict, body))


def _order(body: dict[str, Any]) -> dict[str, Any]:
    o = (body.get("message") or {}).get("order")
    return o if isinstance(o, dict) else {}


def example_for(kind: str, body: dict[str, Any]) -> str | None:
    """The guide's example of the step this message is, if there is one."""
    o = _order(body)
    state = o.get("beckn:state")
    fd = (o.get("beckn:orderAttributes") or {}).get("fulfillment-details") or {}
    if body.get("error"):
        return None
    if kind == "on_discover":  # an empty answer has no item to carry the paths
        found = any(c.get("beckn:items") for c in body.get("catalogs") or [])
        return "02-on_discover.json" if found else None
    if kind == "on_select":
        return "05-on_select.json"
    if kind == "on_init":
        return "07-on_init.json"
    if kind == "on_confirm":
        return "10-on_confirm.json"
    if kind == "on_status":
        if fd.get("beckn:status") == "CONNECTION-INTERRUPTED":
            return "16-on_status-connection-interrupted.json"
        if state == "PENDING":
            return "08-on_status-payment-paid.json"
        return None
    if kind == "on_update":
        return {"ACTIVE": "12-on_update-charging-started.json",
                "COMPLETED": "17-on_update-charging-completed.json"}.get(state)
    if kind == "on_track":
        return "15-on_track.json" if state == "ACTIVE" else None
    if kind == "track":
        return "14-track-callback-patch-body.json"
    return None


def check(kind: str, body: Any, schema: rc2.Rc2 | None) -> list[Violation]:
    """The guide-profile inspector: acks and contexts against the schema, each step's
    message against the guide's example of it (echoed and configured paths excused)."""
    assert schema is not None
    if kind == "ack":
        return schema.ack(body)
    out: list[Violation] = []
    if kind != "track":
        out += schema.errors(f"{rc2.V1_URL}#/components/schemas/Context", body.get("context"),
                             kind, ("context",))
    name = example_for(kind, body)
    if name is not None:
        out += [Violation(kind, f"$.{p}", f"missing (the guide's {name} has it)")
                for p in missing(body, name, strict=False)]
    return out
