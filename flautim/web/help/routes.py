"""The help pages: public, so the tutorial can be read before signing up."""

from __future__ import annotations

from flask import render_template, url_for
from flask_babel import get_locale

from flautim.help_topics import FAQ_PATH
from flautim.web import flautim_config

from . import bp
from .content import Links, faq, tutorial_html


def _links() -> Links:
    return Links(
        support_email=flautim_config().SUPPORT_EMAIL,
        support_form_url=url_for("support.new_ticket"),
        faq_url=url_for("help.faq"),
    )


@bp.get("/")
def tutorial():
    return render_template("help/tutorial.html", html=tutorial_html(str(get_locale()), _links()))


@bp.get(FAQ_PATH.removeprefix(bp.url_prefix), endpoint="faq")
def faq_page():
    return render_template("help/faq.html", faq=faq(str(get_locale()), _links()))
