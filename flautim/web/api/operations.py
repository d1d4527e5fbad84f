"""Each /api/v1 route declares its operation once; its request is read from that declaration.

`@operation(...)` names the summary, the query, body or form model and the responses
(schemas.py). openapi.py generates the served document from these declarations, and the
view reads its input with `query_args()`, `json_body()` or `form_fields()`, which check it
against the same models. They are called inside the view after the project is scoped, so an
outsider gets 404 before any word about their input (tests/test_tenant_isolation.py).

Validation is pydantic's; its first error becomes the API's JSON error naming the field and
the value received, in the request's language.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, get_origin

from flask import Response, current_app, request
from flask_babel import gettext as _
from pydantic import BaseModel, ValidationError

from .errors import ApiError, field_error
from .schemas import Body, Form, Query

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    # status -> the body's model, or a description of a body that is not JSON / absent.
    responses: dict[int, type[BaseModel] | str]
    errors: tuple[int, ...] = ()
    query: type[Query] | None = None
    body: type[Body] | None = None
    form: type[Form] | None = None


def operation(summary: str, tag: str, *, responses: dict[int, type[BaseModel] | str], errors: tuple[int, ...] = (),
              query: type[Query] | None = None, body: type[Body] | None = None,
              form: type[Form] | None = None) -> Callable:
    """Declare a view's operation (put it under the route decorator). Whether it needs a
    token is auth.PUBLIC_ENDPOINTS' to say."""
    declared = Operation(summary, tag, responses, errors, query, body, form)

    def attach(view: Callable) -> Callable:
        view.api_operation = declared
        return view

    return attach


def declared_operation(view: Callable) -> Operation | None:
    return getattr(view, "api_operation", None)


def _current() -> Operation:
    return current_app.view_functions[request.endpoint].api_operation


def query_args() -> Any:
    """The query string, checked against the operation's query model. An empty value
    (`?limit=`) counts as absent."""
    values = {key: value for key, value in request.args.items() if value != ""}
    return validated(_current().query, values)


def json_body() -> Any:
    """The JSON body, checked against the operation's body model."""
    if not request.is_json:
        raise field_error("body", _("Envie um objeto JSON com Content-Type: application/json."), status=415)
    data = request.get_json(silent=True)
    if data is None:
        raise field_error("body", _("O corpo não é um JSON válido."))
    if not isinstance(data, dict):
        raise field_error("body", _("O corpo deve ser um objeto JSON."))
    return validated(_current().body, data)


def form_fields() -> Any:
    """The multipart form's text fields and files, checked against the operation's form model."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise field_error("body", _("Envie os arquivos como multipart/form-data."), status=415)
    model = _current().form
    values: dict[str, Any] = dict(request.form.items())
    for name, field in model.model_fields.items():
        if name in request.files:
            many = get_origin(field.annotation) is list
            values[name] = request.files.getlist(name) if many else request.files[name]
    return validated(model, values)


def validated(model: type[M], values: dict) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _api_error(exc, model) from None


def answer(body: BaseModel, status: int = 200) -> Response:
    """A response model as the JSON answer (fields marked `omitted` left out when unset)."""
    return Response(body.model_dump_json(exclude_unset=True), status=status, mimetype="application/json")


# --- pydantic's errors as the API's ------------------------------------------------------

def _api_error(exc: ValidationError, model: type[BaseModel]) -> ApiError:
    # A misspelt field first: "datset_id is unknown" explains the "dataset_id is missing" too.
    error = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = error["loc"]
    name = str(loc[0]) if loc else "body"
    message = _message(error, name, model)
    if error["type"] not in ("missing", "extra_forbidden"):
        message = _("%(message)s Recebido: %(value)s.", message=message, value=_shown(error["input"]))
    return field_error(".".join(map(str, loc)) or "body", message)


def _message(error: dict, name: str, model: type[BaseModel]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return _("O campo %(name)s é obrigatório.", name=name)
    if kind == "extra_forbidden":
        return _("Campo desconhecido: %(names)s. Aceitos: %(allowed)s.",
                 names=name[:100], allowed=", ".join(model.model_fields))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return _("%(name)s deve ser um número inteiro.", name=name)
    if kind in ("greater_than_equal", "less_than_equal"):
        field = _constraints(model, name)
        low, high = field.get("minimum"), field.get("maximum")
        if high is None:
            return _("%(name)s deve ser no mínimo %(min)s.", name=name, min=low)
        return _("%(name)s deve estar entre %(min)s e %(max)s.", name=name, min=low, max=high)
    if kind == "string_type":
        return _("O campo %(name)s deve ser um texto.", name=name)
    if kind == "string_too_short":
        return _("O campo %(name)s não pode ser vazio.", name=name)
    if kind == "string_too_long":
        return _("O campo %(name)s passa de %(max)s caracteres.", name=name, max=ctx.get("max_length"))
    if kind in ("bool_type", "bool_parsing"):
        return _("O campo %(name)s deve ser true ou false.", name=name)
    if kind in ("enum", "literal_error"):
        values = _constraints(model, name).get("enum") or [ctx.get("expected")]
        return _("%(name)s deve ser um de: %(values)s.", name=name, values=", ".join(map(str, values)))
    if kind == "is_instance_of":
        return _("O campo %(name)s deve ser um arquivo.", name=name)
    return f"{name}: {error['msg']}"


@cache
def _constraints(model: type[BaseModel], name: str) -> dict:
    """The field's schema as the document states it, without its `| None` and `$ref`."""
    schema = model.model_json_schema()
    prop = schema["properties"].get(name, {})
    merged: dict = {}
    for part in (prop, *prop.get("anyOf", [])):
        if "$ref" in part:
            part = schema["$defs"][part["$ref"].rsplit("/", 1)[-1]]
        merged.update(part)
    return merged


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
