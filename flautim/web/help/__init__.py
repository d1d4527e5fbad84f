"""Help inside the product: the tutorial and the FAQ as pages, and links from errors to them."""

from __future__ import annotations

from flask import Blueprint, Flask, url_for

from flautim.help_topics import FAQ_SLUGS, is_help_topic

bp = Blueprint("help", __name__, url_prefix="/help")


def help_url(slug: object, external: bool = False) -> str | None:
    """The FAQ entry's URL for a published slug (flautim.help_topics), else None: templates
    show a link only when there is one, since an event's slug comes from the sandbox."""
    if not is_help_topic(slug):
        return None
    return url_for("help.faq", _anchor=slug, _external=external)


def help_urls() -> dict[str, str]:
    """Every published slug's URL: what a page's script may link an event's `help` to."""
    return {slug: help_url(slug) for slug in FAQ_SLUGS}


def init_app(app: Flask) -> None:
    from . import routes  # noqa: F401

    app.register_blueprint(bp)
    app.add_template_global(help_url)
    app.add_template_global(help_urls)
