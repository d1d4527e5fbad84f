"""Friendly error pages (HTML) and JSON errors (API), with an id for the ones we must fix."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as HTTPNotFound

from flautim.web.experiments.errors import NotFound

log = logging.getLogger("flautim.errors")


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best == "application/json"
    )


def _render(status: int, title: str, message: str, error_id: str | None = None):
    if wants_json():
        body = {"error": {"code": status, "message": message}}
        if error_id:
            body["error"]["id"] = error_id
        return jsonify(body), status
    return (
        render_template("error.html", status=status, title=title, message=message, error_id=error_id),
        status,
    )


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return _render(400, _("Sessão expirada"), _("O formulário expirou ou é inválido. Recarregue a página e tente de novo."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        titles = {
            403: _("Acesso negado"),
            404: _("Página não encontrada"),
            409: _("Ação não permitida agora"),
            413: _("Arquivo grande demais"),
            429: _("Muitas tentativas"),
        }
        messages = {
            403: _("Você não tem permissão para esta ação neste projeto."),
            404: _("O endereço não existe ou você não tem acesso a ele."),
            413: _("O envio passou do tamanho máximo permitido."),
            429: _("Muitas tentativas em pouco tempo. Aguarde um pouco e tente de novo."),
        }
        return _render(
            exc.code or 500,
            titles.get(exc.code, exc.name),
            messages.get(exc.code, exc.description or exc.name),
        )

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return http_error(HTTPNotFound())

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", error_id, request.method, request.path)
        from flautim.models import db

        db.session.rollback()
        return _render(
            500,
            _("Algo deu errado"),
            _("Desculpe, ocorreu um erro do nosso lado. Se falar com o suporte, informe o código do erro."),
            error_id,
        )
