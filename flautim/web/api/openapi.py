"""The OpenAPI 3.1 document of /api/v1, generated from the routes and their `@operation`s.

Paths and path parameters come from Flask's URL rules, everything else from the pydantic
models the operations name (schemas.py): the document cannot describe a route that does not
exist, and a route without a declaration is an error here, not a gap in the document.
Pydantic writes JSON Schema 2020-12, which is OpenAPI 3.1's dialect.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from flautim.models import MAX_ID

from .auth import PUBLIC_ENDPOINTS
from .operations import Operation, declared_operation
from .schemas import Error

API_VERSION = "1.0.0"
PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"

PATH_PARAMETERS = {
    "project_id": "Id do projeto",
    "experiment_id": "Id do experimento",
    "artifact_id": "Id do modelo salvo",
}
ERRORS = {
    400: "Entrada inválida (o campo em `field`)",
    401: "Token ausente, inválido ou revogado",
    403: "Papel insuficiente no projeto",
    404: "Não existe ou não pertence a um projeto seu",
    409: "Estado do experimento não permite a ação",
    413: "Envio grande demais",
    415: "Tipo de conteúdo não suportado",
}
SUCCESS = {200: "OK", 201: "Criado", 202: "Aceito"}


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema) -> bool:  # "title": "Limit" beside "limit" is noise
        return False


def openapi_document(app: Flask) -> dict:
    operations = _operations(app)
    models: set[tuple[type[BaseModel], str]] = {(Error, "serialization")}
    for _path, _method, _rule, op in operations:
        models |= {(m, "validation") for m in (op.query, op.body, op.form) if m is not None}
        models |= {(m, "serialization") for m in op.responses.values() if not isinstance(m, str)}
    refs, definitions = models_json_schema(sorted(models, key=lambda m: (m[0].__name__, m[1])),
                                           ref_template=REF, schema_generator=_Schema)
    schemas = definitions.get("$defs", {})
    paths: dict[str, dict] = {}
    for path, method, rule, op in operations:
        paths.setdefault(path, {})[method] = _operation(rule, op, refs, schemas)
    # Query models are spread into parameters, not referenced.
    for model in {op.query for *_rest, op in operations if op.query is not None}:
        schemas.pop(model.__name__, None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flautim API",
            "version": API_VERSION,
            "description": (
                "API JSON do Flautim. Autentique com um token pessoal (crie em Minha conta): "
                "`Authorization: Bearer flt_...`."
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operations(app: Flask) -> list[tuple[str, str, Any, Operation]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        op = declared_operation(app.view_functions[rule.endpoint])
        if op is None:
            raise RuntimeError(f"{rule.endpoint} ({rule.rule}) has no @operation: declare it in its module")
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), rule, op))
    return found


def _operation(rule, op: Operation, refs: dict, schemas: dict) -> dict:
    parameters = [
        {"name": name, "in": "path", "required": True, "description": PATH_PARAMETERS.get(name, ""),
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
        for name in sorted(rule.arguments)
    ]
    if op.query is not None:
        parameters += _query_parameters(schemas[op.query.__name__])
    described: dict[str, Any] = {"summary": op.summary, "tags": [op.tag]}
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = _content("application/json", refs[(op.body, "validation")], required=True)
    if op.form is not None:
        described["requestBody"] = _content("multipart/form-data", refs[(op.form, "validation")], required=True)
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        if isinstance(model, str):
            responses[str(status)] = {"description": model}
        else:
            responses[str(status)] = {"description": SUCCESS.get(status, "OK"),
                                      **_content("application/json", refs[(model, "serialization")])}
    for status in op.errors:
        responses[str(status)] = {"description": ERRORS[status],
                                  **_content("application/json", refs[(Error, "serialization")])}
    described["responses"] = responses
    if rule.endpoint in PUBLIC_ENDPOINTS:
        described["security"] = []
    return described


def _content(mimetype: str, schema: dict, required: bool | None = None) -> dict:
    body: dict[str, Any] = {"content": {mimetype: {"schema": schema}}}
    if required is not None:
        body["required"] = required
    return body


def _query_parameters(schema: dict) -> list[dict]:
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        # An optional parameter is absent, never null: drop pydantic's `| None` branch.
        options = [s for s in prop.pop("anyOf", []) if s != {"type": "null"}]
        if len(options) == 1:
            prop.update(options[0])
        elif options:
            prop["anyOf"] = options
        if prop.get("default", ...) is None:
            del prop["default"]
        parameters.append({"name": name, "in": "query", "required": name in required,
                           "description": description, "schema": prop})
    return parameters
