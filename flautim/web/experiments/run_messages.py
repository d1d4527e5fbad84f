"""A run's errors and warnings in the reader's language, for the page and the API.

The texts and the rules (which code, which params, the fallback to English) are
`flautim.run_messages`'; this module picks the language and turns FAQ slugs into links.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flask_babel
from flask import current_app, request
from flask_babel import force_locale, get_locale
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from flautim import run_messages
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


def page_catalog() -> Markup:
    """Every code's texts in the page's language, as JSON for an HTML attribute: the page's
    script fills them with an event's params (static/js/run_messages.js), as `render` does.
    The same for every view in a language: built once."""
    # The FAQ links start with the script root: part of the key, with the language.
    key = (str(get_locale()), request.script_root)
    catalog = _CATALOGS.get(key)
    if catalog is None:
        gettext = flask_babel.gettext
        entries = {
            code: {
                "what": gettext(template.what),
                "hints": [gettext(hint) for hint in template.hints],
                "help_url": help_url(run_messages.help_slug(code)),
            }
            for code, template in run_messages.TEMPLATES.items()
        }
        catalog = _CATALOGS[key] = htmlsafe_json_dumps(entries, dumps=current_app.json.dumps)
    return catalog


_CATALOGS: dict[tuple[str, str], Markup] = {}
