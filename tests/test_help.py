"""Help inside the product: the tutorial and the FAQ as pages in both languages, their stable
anchors, the support address from the settings, and help_url for linking errors to entries."""

from __future__ import annotations

import re

import pytest

from flautim.help_topics import FAQ_SLUGS

FIXED_SLUGS = (
    "sincronizacao-de-pesos",
    "heterogeneidade-de-dados",
    "configuracao-de-hiperparametros",
    "incompatibilidade-de-tamanho-de-tensor",
    "contato-suporte",
)


@pytest.fixture
def config_overrides():
    return {"SUPPORT_EMAIL": "ajuda@flautim.example.org"}


def _get(client, path: str, language: str) -> str:
    response = client.get(path, headers={"Accept-Language": language})
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("language", "lang_attr", "questions", "tutorial_words"),
    [
        (
            "pt-BR",
            "pt-BR",
            [
                "Sincronização de pesos",
                "Incompatibilidade de tamanho de tensor",
                "Heterogeneidade de dados",
            ],
            ["Passo a passo", "Executar experimento", "Saídas", "Modelos"],
        ),
        (
            "en",
            "en",
            ["Weight synchronisation", "Tensor size mismatch", "Data heterogeneity"],
            ["Step by step", "Run experiment", "Outputs", "Models"],
        ),
    ],
)
def test_help_pages_in_each_language_with_the_fixed_anchors(
    client, language, lang_attr, questions, tutorial_words
):
    tutorial = _get(client, "/help/", language)
    assert f'<html lang="{lang_attr}">' in tutorial
    for words in tutorial_words:
        assert words in tutorial
    assert 'href="/help/faq"' in tutorial and 'href="/support/new"' in tutorial

    faq = _get(client, "/help/faq", language)
    for slug in FIXED_SLUGS:
        assert faq.count(f'id="{slug}"') == 1, slug
        assert f'href="#{slug}"' in faq
    assert len(re.findall(r'data-testid="faq-entry"', faq)) == len(FAQ_SLUGS)
    for question in questions:
        assert question in faq
    # The seed's typo and placeholder are gone; the address is the configured one, as a link.
    assert "M´quina" not in faq and "placeholder@email.com" not in faq
    assert '<a href="mailto:ajuda@flautim.example.org">ajuda@flautim.example.org</a>' in faq


def test_help_is_in_the_top_bar_for_visitors_and_users(client, make_user):
    from tests.conftest import login

    assert 'href="/help/"' in client.get("/auth/login").get_data(as_text=True)
    make_user("ana@example.org")
    login(client, "ana@example.org")
    assert 'href="/help/"' in client.get("/projects/").get_data(as_text=True)


def test_help_url_links_only_published_entries(app):
    from flask import render_template_string

    from flautim.help_topics import help_path
    from flautim.web.help import help_url

    with app.test_request_context("/"):
        for slug in FIXED_SLUGS:
            assert help_url(slug) == help_path(slug) == f"/help/faq#{slug}"
        assert (
            help_url("contato-suporte", external=True)
            == "http://localhost/help/faq#contato-suporte"
        )
        # An event's slug comes from sandbox output: anything unpublished gets no link.
        for hostile in (
            "",
            "nope",
            'sincronizacao-de-pesos"><script>',
            None,
            3,
            ["contato-suporte"],
        ):
            assert help_url(hostile) is None and help_path(hostile) is None
        rendered = render_template_string(
            '{% set u = help_url(slug) %}{% if u %}<a href="{{ u }}">?</a>{% endif %}',
            slug="heterogeneidade-de-dados",
        )
        assert rendered == '<a href="/help/faq#heterogeneidade-de-dados">?</a>'


def test_markdown_is_rendered_with_html_escaped():
    from flautim.web.help.content import Links, _render

    links = Links(support_email='a<b>@x"y', support_form_url="/support/new", faq_url="/help/faq")
    html = str(
        _render("<script>alert(1)</script>\n\n[x](javascript:alert(1)) {support_email}", links)
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert "<b>" not in html and "mailto:" not in html


def test_every_page_shows_the_support_contact_in_its_footer(app, client, make_user, make_project):
    from tests.conftest import login
    from tests.experiments_support import make_experiment

    def assert_footer(path: str, status: int = 200) -> None:
        response = client.get(path)
        assert response.status_code == status, path
        html = response.get_data(as_text=True)
        footer = html[html.index('data-testid="footer-contact"') :]
        assert 'href="/support/new"' in footer, path
        assert (
            '<a href="mailto:ajuda@flautim.example.org">ajuda@flautim.example.org</a>' in footer
        ), path
        assert 'href="/help/faq"' in footer, path

    for path in ("/", "/auth/login", "/auth/signup", "/help/", "/help/faq"):
        assert_footer(path)
    assert_footer("/no-such-page", 404)

    owner = make_user("ana@example.org")
    project_id = make_project("P", owner)
    with app.app_context():
        experiment_id = make_experiment(project_id, {}, state="failed")
    login(client, "ana@example.org")
    for path in (
        "/projects/",
        f"/projects/{project_id}",
        f"/projects/{project_id}/experiments/{experiment_id}",
        "/support/",
        "/support/new",
        "/auth/account",
    ):
        assert_footer(path)
