"""Portuguese first, English on request; the catalog is complete and compiled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, csrf_token_from, login, submit_form

TRANSLATIONS = ROOT / "flautim" / "web" / "translations"


def _switch(client, locale: str, page: str = "/auth/login"):
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    return client.post("/language", data={"csrf_token": token, "locale": locale, "next": page})


def test_login_page_is_portuguese_by_default_and_english_after_switch(client):
    page = client.get("/auth/login").get_data(as_text=True)
    assert "Lembrar de mim" in page and 'lang="pt-BR"' in page
    response = _switch(client, "en")
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/login")
    page = client.get("/auth/login").get_data(as_text=True)
    assert 'lang="en"' in page
    assert "Remember me" in page and "Forgot your password" in page
    assert "Lembrar de mim" not in page


def test_browser_language_is_used_when_nothing_was_chosen(client):
    page = client.get("/auth/login", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert "Remember me" in page


def test_choice_persists_for_the_logged_in_user(app, make_user):
    from flautim.models import User, db

    uid = make_user("lena@example.org")
    first = app.test_client()
    login(first, "lena@example.org")
    _switch(first, "en", page="/auth/account")
    with app.app_context():
        assert db.session.get(User, uid).locale == "en"
    # A new browser, with nothing in its session, gets English after logging in.
    second = app.test_client()
    assert "Lembrar de mim" in second.get("/auth/login").get_data(as_text=True)
    login(second, "lena@example.org")
    page = second.get("/auth/account").get_data(as_text=True)
    assert "Change password" in page and "Trocar senha" not in page


def test_english_form_errors(client):
    _switch(client, "en")
    response = submit_form(client, "/auth/signup", {"name": "", "email": "bad", "password": "x"})
    page = response.get_data(as_text=True)
    assert "Enter your name." in page and "This email is not valid" in page


def test_unknown_locale_is_refused(client):
    token = csrf_token_from(client.get("/auth/login").get_data(as_text=True))
    assert client.post("/language", data={"csrf_token": token, "locale": "xx"}).status_code == 400


def test_catalog_is_complete_and_compiled():
    """Every string of the app has an English translation, and the committed .mo matches."""
    po = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    assert mo.exists(), "run scripts/i18n compile and commit the .mo"
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        catalog = read_po(f)
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert untranslated == [], f"{len(untranslated)} untranslated, e.g. {untranslated[:5]}"
    with mo.open("rb") as f:
        compiled = read_mo(f)
    def pairs(messages):
        return {_plain(m.id): _plain(m.string) for m in messages if m.id}

    assert pairs(compiled) == pairs(catalog), "the .mo is stale: run scripts/i18n compile"


def _plain(value):
    """Plural messages come as lists from a .mo and tuples from a .po."""
    return tuple(value) if isinstance(value, list | tuple) else value


def test_every_string_in_the_code_is_in_the_catalog(tmp_path):
    """Re-extracting finds nothing the English catalog lacks (run scripts/i18n update)."""
    from babel.messages.pofile import read_po

    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run(
        [str(pybabel), "-q", "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext",
         "-o", str(pot), "."],
        cwd=ROOT, check=True,
    )
    with pot.open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    with (TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        have = {m.id for m in read_po(f) if m.id}
    missing = sorted(str(m) for m in wanted - have)
    assert missing == [], f"{len(missing)} strings not in the catalog, e.g. {missing[:5]}"
