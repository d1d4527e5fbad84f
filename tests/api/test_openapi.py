"""The served OpenAPI document describes exactly the /api/v1 routes, with their methods."""

from __future__ import annotations

import re

# The OpenAPI 3.1 meta-schema that schemathesis itself validates documents with.
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR


def _flask_operations(app) -> set[tuple[str, str]]:
    ops = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            ops.add((method.lower(), path))
    return ops


def test_every_route_documented_and_every_document_path_routed(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    routed = _flask_operations(app)
    assert routed - documented == set(), "routes missing from openapi.json"
    assert documented - routed == set(), "openapi.json describes routes that do not exist"
    assert len(routed) >= 20


def test_document_is_valid_openapi(client):
    doc = client.get("/api/v1/openapi.json").json
    errors = [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)]
    assert errors == []
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    # Every path parameter is declared on its operation.
    for path, item in doc["paths"].items():
        names = set(re.findall(r"{([a-z_]+)}", path))
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, declared)
