"""The foundation in a real browser: accounts, a project, a teammate, roles and support.

Sign up, create a project, invite a teammate (the email arrives over SMTP and its link is
followed in a second browser), the teammate signs up and finds the project, the owner
changes the teammate's role, the teammate writes to support, an admin answers in the panel,
and the teammate reads the answer in the app and in the email. A screenshot of each step
goes to test-artifacts/.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

OWNER = ("Olívia Dona", "olivia@example.org", "girassol no telhado 11")
MATE = ("Tomás Colega", "tomas@example.org", "bicicleta azul do lago 22")
ADMIN = ("Ada Suporte", "ada@example.org", "farol na ilha distante 33")


def _shot(page, step: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"journey-{step}.png"), full_page=True)


def _wait_for_mail(smtp_server, address: str, count: int = 1, timeout_s: float = 10.0):
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        messages = smtp_server.to(address)
        if len(messages) >= count:
            return messages
        time.sleep(0.1)
    raise AssertionError(f"no email #{count} to {address}; got {[m['Subject'] for m in smtp_server.messages]}")


def _sign_up(page, name: str, email: str, password: str) -> None:
    page.get_by_label("Nome", exact=True).fill(name)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Criar conta").click()


def test_foundation_journey(app, live_server, browser, page, smtp_server, make_user):
    from playwright.sync_api import expect

    base = live_server.url
    support_address = app.config["FLAUTIM_SUPPORT_EMAIL"]

    # 1. The owner signs up.
    page.goto(base + "/")
    page.get_by_role("link", name="Criar conta").first.click()
    _sign_up(page, *OWNER)
    expect(page.locator(".flash")).to_contain_text("Bem-vindo(a) ao Flautim, Olívia Dona!")
    _shot(page, "01-owner-signed-up")

    # 2. ...creates a project.
    page.get_by_role("link", name="Novo projeto").click()
    page.get_by_label("Nome", exact=True).fill("Piloto Federado")
    page.get_by_role("button", name="Criar projeto").click()
    expect(page.locator("h1")).to_contain_text("Piloto Federado")
    project_url = page.url
    _shot(page, "02-project-created")

    # 3. ...and invites a teammate as a viewer; the invitation arrives by email.
    page.get_by_role("link", name="Membros", exact=True).click()
    invite = page.locator("form.invite-form")
    invite.get_by_label("E-mail", exact=True).fill(MATE[1])
    invite.get_by_label("Papel", exact=True).select_option("viewer")
    invite.get_by_role("button", name="Enviar convite").click()
    expect(page.locator(".invitations-table")).to_contain_text(MATE[1])
    _shot(page, "03-invitation-sent")
    [invitation] = _wait_for_mail(smtp_server, MATE[1])
    link = smtp_server.first_link(invitation)
    assert link.startswith(base + "/invitations/")

    # 4. The teammate follows the link in another browser, signs up and accepts.
    mate_context = browser.new_context(locale="pt-BR")
    mate = mate_context.new_page()
    mate.set_default_timeout(15_000)
    try:
        mate.goto(link)
        expect(mate.locator("h1")).to_contain_text("Piloto Federado")
        _shot(mate, "04-invitation-opened")
        mate.get_by_role("link", name="Criar conta").last.click()
        _sign_up(mate, *MATE)
        # Sign-up honoured `next`: back on the invitation, now able to accept it.
        assert mate.url == link
        mate.get_by_role("button", name="Aceitar").click()
        expect(mate.locator(".my-role")).to_have_text(re.compile(r"^\s*leitor\s*$", re.I))
        _shot(mate, "05-teammate-joined")
        mate.get_by_role("link", name="Projetos").first.click()
        expect(mate.locator(".project-list")).to_contain_text("Piloto Federado")
        _shot(mate, "06-teammate-finds-project")

        # 5. The owner makes the teammate an editor.
        page.goto(project_url)
        page.get_by_role("link", name="Membros", exact=True).click()
        row = page.locator(f'tr.member[data-email="{MATE[1]}"]')
        row.locator("select").select_option("editor")
        row.get_by_role("button", name="Mudar papel").click()
        expect(page.locator(f'tr.member[data-email="{MATE[1]}"] .member-role')).to_have_text(re.compile(r"^\s*editor\s*$", re.I))
        _shot(page, "07-role-changed")
        mate.goto(project_url)
        expect(mate.locator(".my-role")).to_have_text(re.compile(r"^\s*editor\s*$", re.I))

        # 6. The teammate writes to support.
        mate.get_by_role("link", name="Suporte", exact=True).click()
        mate.get_by_role("link", name="Escrever ao suporte").click()
        mate.get_by_label("Assunto").fill("Como compartilho um dataset?")
        mate.get_by_label("Mensagem").fill("Entrei no projeto Piloto Federado e não sei por onde começar.")
        mate.get_by_role("button", name="Enviar ao suporte").click()
        expect(mate.locator(".flash")).to_contain_text("Mensagem enviada ao suporte")
        ticket_url = mate.url
        _shot(mate, "08-support-ticket-sent")
        [to_staff] = _wait_for_mail(smtp_server, support_address)
        assert "Como compartilho um dataset?" in to_staff["Subject"]

        # 7. An admin answers in the panel.
        make_user(ADMIN[1], password=ADMIN[2], name=ADMIN[0], is_admin=True)
        admin_context = browser.new_context(locale="pt-BR")
        admin = admin_context.new_page()
        admin.set_default_timeout(15_000)
        try:
            admin.goto(base + "/auth/login")
            admin.get_by_label("Email", exact=True).fill(ADMIN[1])
            admin.get_by_label("Senha", exact=True).fill(ADMIN[2])
            admin.get_by_role("button", name="Entrar").click()
            admin.get_by_role("link", name="Admin").click()
            admin.locator(".admin-nav").get_by_role("link", name="Suporte", exact=True).click()
            admin.get_by_role("link", name="Como compartilho um dataset?").click()
            expect(admin.locator(".thread")).to_contain_text("não sei por onde começar")
            admin.get_by_label("Resposta").fill("Envie o dataset na aba Datasets do projeto; a equipe toda o verá.")
            admin.get_by_role("button", name="Enviar resposta").click()
            expect(admin.locator(".flash")).to_contain_text(f"Resposta enviada a {MATE[1]}")
            _shot(admin, "09-admin-answered")
        finally:
            admin_context.close()

        # 8. The teammate reads the answer in the app, and by email with a link to the thread.
        mate.goto(ticket_url)
        expect(mate.locator(".message.from-staff")).to_contain_text("Envie o dataset na aba Datasets")
        expect(mate.locator(".thread .message")).to_have_count(2)
        _shot(mate, "10-teammate-reads-answer")
        answers = [m for m in _wait_for_mail(smtp_server, MATE[1], count=2) if "Resposta" in m["Subject"]]
        assert len(answers) == 1
        assert "Envie o dataset na aba Datasets" in smtp_server.body(answers[0])
        mate.goto(smtp_server.first_link(answers[0]))
        assert re.sub(r"[?#].*$", "", mate.url) == ticket_url
        expect(mate.locator(".message.from-staff")).to_have_count(1)
        _shot(mate, "11-answer-link-opened")
    finally:
        mate_context.close()
