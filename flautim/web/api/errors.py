"""JSON errors of the API: `{"error": {"code", "message", "field", "line", "hint"}}`.

`code` is a stable machine-readable word; `message` is for people (Portuguese first, like
the pages); `field` names the request field at fault and `line` the line of an uploaded file.
"""

from __future__ import annotations

import logging
import uuid

from flask import Blueprint, jsonify
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as HTTPNotFound

from flautim.web.experiments.errors import NotFound

log = logging.getLogger("flautim.api")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or HTTP_CODES.get(status, "error")
        self.message = message
        self.field = field
        self.line = line
        self.hint = hint


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    line: int | None = None,
    hint: str | None = None,
    error_id: str | None = None,
):
    body: dict = {
        "code": code or HTTP_CODES.get(status, "error"),
        "message": message,
        "field": field,
        "line": line,
    }
    if hint:
        body["hint"] = hint
    if error_id:
        body["id"] = error_id
    response = jsonify({"error": body})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="flautim"'
    return response


def field_error(field: str, message: str, status: int = 400, line: int | None = None) -> ApiError:
    return ApiError(status, message, code="validation_error", field=field, line=line)


def register_error_handlers(bp: Blueprint) -> None:
    """Error handlers for everything raised inside the API blueprint's views."""

    @bp.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(
            exc.status, exc.message, code=exc.code, field=exc.field, line=exc.line, hint=exc.hint
        )

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {
            401: _("Token de acesso ausente, inválido ou revogado."),
            403: _("Você não tem permissão para esta ação neste projeto."),
            404: _("O recurso não existe ou você não tem acesso a ele."),
            413: _("O envio passou do tamanho máximo permitido."),
        }
        status = exc.code or 500
        return error_response(status, messages.get(status, exc.description or exc.name))

    @bp.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return http_error(HTTPNotFound())

    @bp.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled API error %s", error_id)
        from flautim.models import db

        db.session.rollback()
        return error_response(
            500,
            _("Desculpe, ocorreu um erro do nosso lado. Informe o código do erro ao suporte."),
            code="internal_error",
            error_id=error_id,
        )
