"""The parts of every page shared by all viewers in a language (flautim/web/chrome.py): the
top bar's links, the language buttons, the footer and the static files' URLs are rendered
once and kept, so each test asks one app (one cache) as different people, in different
languages and under different script roots, and checks each sees their own."""

from __future__ import annotations

import re

from tests.conftest import csrf_token_from, login


def _topbar(html: str) -> str:
    return html[html.index('<header class="topbar">') : html.index("</header>")]


def _links(html: str) -> list[str]:
    return re.findall(r'<a (?:class="brand" )?href="([^"]+)"', _topbar(html))


def test_the_top_bar_follows_who_is_asking_though_its_links_are_kept(app, make_user):
    make_user("ana@example.org", name="Ana")
    make_user("root@example.org", name="Root", is_admin=True)
    visitor, user, admin = app.test_client(), app.test_client(), app.test_client()
    login(user, "ana@example.org")
    login(admin, "root@example.org")
    for _round in range(2):  # the second round is served from the kept fragments
        assert _links(visitor.get("/help/").get_data(as_text=True)) == [
            "/", "/help/", "/auth/login", "/auth/signup"]
        page = user.get("/help/").get_data(as_text=True)
        assert _links(page) == ["/", "/projects/", "/help/", "/support/", "/auth/account"]
        assert '<span class="who">Ana</span>' in _topbar(page)
        page = admin.get("/help/").get_data(as_text=True)
        assert _links(page) == ["/", "/projects/", "/help/", "/support/", "/auth/account", "/admin/"]
        assert '<span class="who">Root</span>' in _topbar(page)


def test_the_kept_parts_are_per_language(app, client):
    for _round in range(2):
        page = client.get("/help/").get_data(as_text=True)
        assert ">Criar conta</a>" in page and "Perguntas frequentes" in page
        assert re.search(r'value="pt_BR" class="link current"\s+aria-current="true">PT<', page)
        token = csrf_token_from(page)
        client.post("/language", data={"csrf_token": token, "locale": "en", "next": "/help/"})
        page = client.get("/help/").get_data(as_text=True)
        assert ">Sign up</a>" in page and "Frequently asked questions" in page
        assert "Perguntas frequentes" not in page and ">Criar conta</a>" not in page
        assert re.search(r'value="en" class="link current"\s+aria-current="true">EN<', page)
        assert not re.search(r'value="pt_BR" class="link current"', page)
        client.post("/language", data={"csrf_token": csrf_token_from(page), "locale": "pt_BR", "next": "/help/"})


def test_the_kept_links_start_with_each_requests_script_root(app, client):
    """Behind a proxy mounting the site under a prefix, every link carries it; the same app
    also serving at the root keeps the two apart."""
    for _round in range(2):
        plain = client.get("/help/").get_data(as_text=True)
        mounted = client.get("/help/", base_url="http://localhost/flautim/").get_data(as_text=True)
        assert _links(plain)[:2] == ["/", "/help/"]
        assert _links(mounted)[:2] == ["/flautim/", "/flautim/help/"]
        assert 'href="/static/flautim.css"' in plain and 'href="/flautim/static/flautim.css"' in mounted
        assert 'href="/flautim/support/new"' in mounted[mounted.index('data-testid="footer-contact"'):]
        assert "/flautim/" not in plain
