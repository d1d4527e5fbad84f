"""Reading and checking query parameters and JSON bodies, with errors that name the field."""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _

from flautim.models import MAX_ID

from .errors import field_error

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def int_arg(name: str, default: int | None = None, minimum: int = 0, maximum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise field_error(name, _("%(name)s deve ser um número inteiro.", name=name)) from None
    if value < minimum or (maximum is not None and value > maximum):
        if maximum is None:
            message = _("%(name)s deve ser no mínimo %(min)s.", name=name, min=minimum)
        else:
            message = _("%(name)s deve estar entre %(min)s e %(max)s.", name=name, min=minimum, max=maximum)
        raise field_error(name, message)
    return value


def str_arg(name: str, max_length: int = 100) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise field_error(name, _("%(name)s é longo demais (máximo %(max)s caracteres).", name=name, max=max_length))
    return raw


def page_args(max_limit: int = MAX_LIMIT) -> tuple[int, int]:
    """`limit` (1..max_limit, default 50) and `offset` (>= 0) of a paginated list."""
    limit = int_arg("limit", DEFAULT_LIMIT, minimum=1, maximum=max_limit)
    offset = int_arg("offset", 0, minimum=0, maximum=MAX_ID)
    return limit, offset


def json_body() -> dict:
    """The request's JSON object, or a 400 naming what is wrong with it."""
    if not request.is_json:
        raise field_error("body", _("Envie um objeto JSON com Content-Type: application/json."), status=415)
    data = request.get_json(silent=True)
    if data is None:
        raise field_error("body", _("O corpo não é um JSON válido."))
    if not isinstance(data, dict):
        raise field_error("body", _("O corpo deve ser um objeto JSON."))
    return data


def reject_unknown_fields(data: dict, allowed: set[str]) -> None:
    """A misspelt field ("datset_id") is an error, not silently ignored."""
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise field_error(
            unknown[0], _("Campo desconhecido: %(names)s. Aceitos: %(allowed)s.",
                          names=", ".join(unknown)[:200], allowed=", ".join(sorted(allowed)))
        )


def body_str(data: dict, name: str, required: bool = False, max_length: int = 100) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise field_error(name, _("O campo %(name)s é obrigatório.", name=name))
        return None
    if not isinstance(value, str):
        raise field_error(name, _("O campo %(name)s deve ser um texto.", name=name))
    value = value.strip()
    if required and not value:
        raise field_error(name, _("O campo %(name)s não pode ser vazio.", name=name))
    if len(value) > max_length:
        raise field_error(name, _("O campo %(name)s passa de %(max)s caracteres.", name=name, max=max_length))
    return value


def body_id(data: dict, name: str, required: bool = False) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise field_error(name, _("O campo %(name)s é obrigatório.", name=name))
        return None
    # bool is an int in Python; `true` is not an id.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > MAX_ID:
        raise field_error(name, _("O campo %(name)s deve ser um id (inteiro positivo).", name=name))
    return value


def body_bool(data: dict, name: str, default: bool = False) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise field_error(name, _("O campo %(name)s deve ser true ou false.", name=name))
    return value
