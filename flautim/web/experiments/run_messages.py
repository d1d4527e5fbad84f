"""A run's errors and warnings in the reader's language, for the page and the API.

The texts and the rules (which code, which params, the fallback to English) are
`flautim.run_messages`'; this module picks the language and turns FAQ slugs into links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flask_babel
from flask import current_app, request, url_for
from flask_babel import force_locale, get_locale
from jinja2.utils import htmlsafe_json_dumps

from flautim import run_messages
from flautim.diagnosis import IGNORED_WARNING_CODE
from flautim.web import flautim_config
from flautim.web.help import help_url
from flautim.web.i18n import select_locale

# The event types whose payload is a message to the user (diagnoses: flautim/diagnosis.py).
MESSAGE_EVENTS = ("error", "warning", "diagnosis")


def api_language() -> str:
    """The API's answer language: the request's Accept-Language among the site's languages,
    else the user's choice (as for pages)."""
    supported = flautim_config().LANGUAGES
    if request.headers.get("Accept-Language"):
        best = request.accept_languages.best_match(supported)
        if best:
            return best
    return select_locale()


def render(payload: Mapping[str, Any], language: str | None = None) -> run_messages.RunMessage:
    """An error or warning event's payload as its reader sees it, in `language` (default:
    the request's)."""
    if language is None:
        return run_messages.render(payload, flask_babel.gettext)
    with force_locale(language):
        return run_messages.render(payload, flask_babel.gettext)


def api_message(type: str, payload: Mapping[str, Any], language: str) -> dict[str, Any] | None:
    """The `message` of an API event: the error or warning rendered in `language`."""
    if type not in MESSAGE_EVENTS or not isinstance(payload, Mapping):
        return None
    message = render(payload, language)
    return {
        "language": language.replace("_", "-"),
        "text": message.text(),
        "what": message.what,
        "where": message.where,
        "hint": message.hint,
        "help": message.help,
        "help_url": help_url(message.help),
        "code": message.code,
        "translated": message.translated,
    }


@dataclass(frozen=True)
class CatalogScript:
    """Every code's texts in one language as a script for the page (static/js/run_messages.js
    fills them with an event's params, as `render` does). A script of its own, not part of
    the page: the same for every view in a language (~20 KB), so the browser keeps it by its
    version and each view of the page stays small."""

    body: bytes
    version: str


def catalog_script(locale: str) -> CatalogScript:
    # The FAQ links start with the script root: part of the key, with the language.
    key = (locale, request.script_root)
    script = _SCRIPTS.get(key)
    if script is None:
        with force_locale(locale):
            gettext = flask_babel.gettext
            entries = {
                code: {
                    "what": gettext(template.what),
                    "hints": [gettext(hint) for hint in template.hints],
                    "help_url": help_url(run_messages.help_slug(code)),
                    # The worker turns this warning into a diagnosis: the page shows its banner.
                    **({"as_diagnosis": True} if code == IGNORED_WARNING_CODE else {}),
                }
                for code, template in run_messages.TEMPLATES.items()
            }
        body = f"window.FlautimRunMessagesCatalog = {htmlsafe_json_dumps(entries, dumps=current_app.json.dumps)};\n"
        encoded = body.encode()
        script = _SCRIPTS[key] = CatalogScript(encoded, hashlib.sha256(encoded).hexdigest()[:16])
    return script


def catalog_script_url() -> str:
    """The page's catalog script, in the page's language, at the URL of its current version."""
    locale = str(get_locale())
    return url_for("experiments.run_messages_script", locale=locale, version=catalog_script(locale).version)


_SCRIPTS: dict[tuple[str, str], CatalogScript] = {}
