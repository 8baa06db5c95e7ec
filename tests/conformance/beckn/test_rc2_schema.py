"""The rc2 schema as the conformance suite loads it: the overlay patches exactly the
bugs docs/protocol-notes.md lists, the patched schemas are valid JSON Schema, and the
validator finds what it should (the guide's order examples break rc2's Order)."""

from __future__ import annotations

import json

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tests import spec
from tests.conformance.beckn import rc2


def component_schemas(docs: rc2.Documents) -> list[tuple[str, str, dict]]:
    return [(rel, name, schema) for rel, doc in docs.files.items()
            for name, schema in doc.get("components", {}).get("schemas", {}).items()]


def test_overlay_patches_exactly_the_listed_bugs() -> None:
    spec.require(rc2.RC2)
    docs = rc2.load_documents()
    assert docs.applied == [what for *_, what in rc2.OVERLAY]
    # applied once: a second pass finds nothing left to fix
    assert rc2.apply_overlay(docs.files) == []
    for _rel, _name, schema in component_schemas(docs):
        Draft202012Validator.check_schema(schema)  # raises on a bad schema


def test_without_the_overlay_the_published_schemas_are_broken() -> None:
    spec.require(rc2.RC2)
    raw = rc2.Documents({rel: yaml.safe_load((rc2.RC2 / rel).read_text())
                         for rel in rc2.load_documents().files})
    bad = []
    for _rel, name, schema in component_schemas(raw):
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError:
            bad.append(name)
    assert sorted(bad) == ["GeoJSONGeometry", "Location", "SpatialConstraint"]
    amenity = raw.files["schema/EvChargingService/v1/attributes.yaml"]["components"]["schemas"][
        "ChargingService"]["properties"]
    assert "items" in amenity and "items" not in amenity["amenityFeature"]


@pytest.mark.parametrize("name", spec.files(spec.BECKN_EXAMPLES, "*-on_*.json"))
def test_guide_order_examples_are_not_rc2(name: str | None) -> None:
    """The guide's callbacks (05-17) are its own dialect: rc2's generic validator refuses
    each, naming the JSON path. (The bridge's guide profile writes these; its rc2
    profile, the default, what the schema says.)"""
    body = json.loads(spec.require(spec.BECKN_EXAMPLES / name).read_text())
    action = body["context"]["action"]
    errors = rc2.shared().callback(action, body)
    assert errors, f"{name} validated against rc2"
    assert all(e.path.startswith("$") for e in errors)
    paths = {e.path for e in errors}
    if action == "on_track":  # the guide sends an order; rc2 wants message.tracking
        assert any("tracking" in e.message for e in errors), errors
    elif action != "on_discover":
        assert "$.message.order.beckn:buyer" in paths, paths


def test_bag_types_are_checked_against_their_pack() -> None:
    schema = rc2.shared()
    bad = {"@context": "https://example.org/ctx", "@type": "ChargingSession",
           "sessionStatus": "RUNNING", "meteredEnergyKWh": -1, "colour": "blue"}
    paths = {v.path for v in schema.session_patch(bad)}
    assert paths == {"$", "$.sessionStatus", "$.meteredEnergyKWh"}, paths


@pytest.mark.parametrize("action", ["select", "init", "confirm", "update", "track", "rating",
                                    "support"])
def test_the_rc2_test_bap_sends_what_the_schema_says(action: str) -> None:
    """The requests tests/journey/test_inbound_forms.py sends as a schema-built BAP are
    valid rc2 requests (so the bridge is shown to read the schema's shapes)."""
    from tests.journey.conftest import TestBap, wire_txn
    from tests.journey.test_inbound_forms import rc2_requests

    bap = TestBap(key=None, url="http://127.0.0.1:9")
    body = {"context": bap.context(action, wire_txn("rc2-requests")),
            "message": rc2_requests("f" * 32, "1234", "http://127.0.0.1:9/track/x")[action]}
    assert rc2.shared().request(action, body) == []


@pytest.mark.parametrize("step", ["discover", "select by INR", "select by KWH", "init", "confirm",
                                  "start", "stop", "track"])
def test_the_whole_journeys_rc2_bap_sends_what_the_schema_says(step: str) -> None:
    """tests/journey/test_whole_journey.py's schema-built BAP: every request it sends is a
    valid rc2 request."""
    from tests.journey.conftest import TestBap, wire_txn
    from tests.journey.test_whole_journey import Rc2Bap

    bap, order, item = Rc2Bap(), "f" * 32, "IN:TPC:tpc-hwy-mdr:tpc-mdr-2:1"
    bap.select(item, kwh=20)
    message = {
        "discover": lambda: bap.discover()["message"],
        "select by INR": lambda: bap.select(item, inr=150),
        "select by KWH": lambda: bap.select(item, kwh=20),
        "init": lambda: bap.init(order), "confirm": lambda: bap.confirm(order),
        "start": lambda: bap.start(order, "1234"), "stop": lambda: bap.stop(order),
        "track": lambda: bap.track(order, "http://127.0.0.1:9/track/x"),
    }[step]()
    action = step.split()[0]
    body = {"context": TestBap(key=None, url="http://127.0.0.1:9").context(
        "update" if action in ("start", "stop") else action, wire_txn("rc2-whole")),
        "message": message}
    assert rc2.shared().request(body["context"]["action"], body) == []
