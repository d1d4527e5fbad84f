"""The parts of every page that are the same for everyone in a language: the top bar's
links, the language buttons, the footer, and the static files' URLs. Each is rendered once
per app and what it shows (language, script root, and for the top bar whether someone is
logged in and an admin), then shared by every view; base.html renders the per-user parts
(the user's name, CSRF tokens, flashed messages, the current path) around them."""

from __future__ import annotations

from flask import Flask, current_app, request, url_for
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup

from flautim.web import flautim_config
from flautim.web.response_cache import cached_fragment

STATIC_URLS = "flautim_static_urls"


def static_url(filename: str) -> str:
    """url_for('static', filename=...), built once per app and script root: a page names a
    dozen static files, each URL otherwise built anew on every view."""
    urls: dict[tuple[str, str], str] = current_app.extensions[STATIC_URLS]
    key = (request.script_root, filename)
    url = urls.get(key)
    if url is None:
        url = urls[key] = url_for("static", filename=filename)
    return url


def _fragment(template: str, **shown) -> Markup:
    """`template` rendered from `shown` alone (no context processors: no user, request or
    session to lean on), kept under the template's name, the language, the script root
    (every link starts with it) and `shown`."""
    key = ("chrome", template, str(get_locale()), request.script_root, tuple(shown.items()))
    return Markup(cached_fragment(key, lambda: current_app.jinja_env.get_template(template).render(shown)))


def topbar_links() -> Markup:
    """The brand and the top bar's links: which ones depends only on whether someone is
    logged in and is an admin."""
    authenticated = bool(current_user.is_authenticated)
    return _fragment(
        "_topbar_links.html",
        authenticated=authenticated,
        is_admin=authenticated and bool(current_user.is_admin),
    )


def language_buttons() -> Markup:
    """The language switch's buttons, the current language marked."""
    return _fragment(
        "_language_buttons.html",
        current_locale=str(get_locale()),
        languages=tuple(flautim_config().LANGUAGES),
    )


def static_part(template: str, **shown) -> Markup:
    """A part of one page that shows nothing but `shown`, static files' URLs and
    translations (the experiment page's script tags): rendered once per language, script
    root and `shown`, then shared by every view, as the top bar is."""
    return _fragment(template, **shown)


def footer() -> Markup:
    """Where to get help and how to reach support (the support address is a setting, fixed
    for the app's life)."""
    return _fragment("_footer.html")


def init_app(app: Flask) -> None:
    app.extensions[STATIC_URLS] = {}
    app.jinja_env.globals.update(
        static_url=static_url,
        topbar_links=topbar_links,
        language_buttons=language_buttons,
        footer=footer,
        static_part=static_part,
    )
