"""The team journey in Debian's chromium: create a project, invite someone who has no
account yet, who signs up from the emailed link and accepts; CSP stays clean throughout."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _login(page, base: str, email: str) -> None:
    page.goto(f"{base}/auth/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]:not(.link)")


def test_invite_a_newcomer_who_signs_up_and_accepts(live_server, page, smtp_server, make_user):
    console_errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))
    base = live_server.url
    make_user("lider@example.org", name="Líder")
    _login(page, base, "lider@example.org")

    page.goto(f"{base}/projects/")
    page.click("text=Novo projeto")
    page.fill("input[name=name]", "Saúde federada")
    page.fill("textarea[name=description]", "Hospitais sem juntar os dados")
    page.click("form button.primary")
    assert re.search(r"/projects/\d+$", page.url)
    assert page.locator(".my-role").inner_text() == "dono"

    page.click("nav.tabs >> text=Membros")
    page.fill(".invite-form input[name=email]", "recem@example.org")
    page.select_option(".invite-form select[name=role]", "editor")
    page.click("text=Enviar convite")
    assert "Convite enviado para recem@example.org" in page.content()
    assert page.locator('tr.invitation[data-email="recem@example.org"]').count() == 1
    link = smtp_server.first_link(smtp_server.to("recem@example.org")[0])

    page.click("text=Sair")
    page.goto(link)
    assert "Convite para o projeto “Saúde federada”" in page.content()
    page.click(".invitation-card a:has-text('Criar conta')")
    assert page.input_value("input[name=email]") == "recem@example.org"
    page.fill("input[name=name]", "Recém")
    page.fill("input[name=password]", PASSWORD + " novo")
    page.click("form button[type=submit]:not(.link)")
    # Back on the invitation, now signed in.
    assert page.url == link
    page.click("button:has-text('Aceitar')")
    assert re.search(r"/projects/\d+$", page.url)
    assert page.locator(".my-role").inner_text() == "editor"

    page.click("nav.tabs >> text=Atividade")
    text = page.locator("table.activity-table").inner_text()
    assert "convidou recem@example.org como editor" in text
    assert "aceitou o convite e entrou como editor" in text
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
