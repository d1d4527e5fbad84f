"""Brazilian Portuguese first, English too; the user's choice is remembered."""

from __future__ import annotations

import flask_babel
from flask import Flask, current_app, has_request_context, request, session
from flask_login import current_user

from flautim import translation
from flautim.web import flautim_config

from .extensions import babel


def select_locale() -> str:
    supported = flautim_config().LANGUAGES
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user.is_authenticated and current_user.locale in supported:
        return current_user.locale
    if session.get("locale") in supported:
        return session["locale"]
    return request.accept_languages.best_match(supported) or current_app.config["BABEL_DEFAULT_LOCALE"]


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    babel.init_app(app, locale_selector=select_locale)
    translation.translate_with(flask_babel.gettext)  # the core's messages (flautim.quotas)

    @app.context_processor
    def inject_locale():
        from flask_babel import get_locale

        return {"current_locale": str(get_locale()), "languages": flautim_config(app).LANGUAGES}
