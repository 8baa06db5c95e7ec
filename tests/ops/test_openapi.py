"""The OpenAPI documents describe exactly the routes the app serves, with the handlers'
own models, and are valid OpenAPI 3.1 to a tool no one here wrote (schemathesis)."""

from __future__ import annotations

import schemathesis

from bridge import extensions
from bridge.app import build_app
from bridge.config import Settings
from bridge.ocpi import models as ocpi
from bridge.openapi import BECKN_ACTIONS, beckn_document, document_bytes, ocpi_document


def _app_routes() -> set[tuple[str, str]]:
    app = build_app(Settings(), extensions=extensions.app_extensions())
    return {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.method != "HEAD" and r.resource is not None}


def test_ocpi_document_has_every_ocpi_route_and_no_other() -> None:
    served = {(m, p) for m, p in _app_routes() if p.startswith("/ocpi")}
    documented = {(method.upper(), path) for path, ops in ocpi_document()["paths"].items()
                  for method in ops}
    assert documented == served


def test_beckn_document_has_every_action() -> None:
    assert ("POST", "/beckn/{action}") in _app_routes()
    assert set(beckn_document()["paths"]) == {f"/beckn/{a}" for a in BECKN_ACTIONS}


def test_bodies_are_the_handlers_models() -> None:
    schemas = ocpi_document()["components"]["schemas"]
    assert schemas["Location"] == ocpi.Location.model_json_schema(
        ref_template="#/components/schemas/{model}").get("$defs", {}).get("Location", schemas["Location"])
    assert set(ocpi.Location.model_fields) <= set(schemas["Location"]["properties"])
    assert schemas["SessionPatch"]["required"] == ["last_updated"]
    put = ocpi_document()["paths"]["/ocpi/2.2.1/cdrs"]["post"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CDR")


def test_documents_load_in_schemathesis() -> None:
    for doc in (ocpi_document(), beckn_document()):
        schema = schemathesis.openapi.from_dict(doc)
        ops = [op.ok() for op in schema.get_all_operations()]
        assert ops and all(op.label for op in ops)
    assert document_bytes("ocpi").startswith(b'{"openapi":"3.1.0"')
