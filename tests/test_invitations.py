"""Teams: invitations by email over a real SMTP server, roles, removal, leaving and
transferring ownership."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from flautim.models import AuditEvent, Invitation, Membership, Role, db, utcnow
from tests.conftest import csrf_token_from, login, submit_form


def logout(client) -> None:
    token = csrf_token_from(client.get("/projects/").get_data(as_text=True))
    client.post("/auth/logout", data={"csrf_token": token})


def membership_id(app, pid: int, uid: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(Membership.id).where(Membership.project_id == pid, Membership.user_id == uid)
        )


def role_of(app, pid: int, uid: int) -> Role | None:
    with app.app_context():
        return db.session.scalar(
            select(Membership.role).where(Membership.project_id == pid, Membership.user_id == uid)
        )


@pytest.fixture
def team(app, client, make_user, make_project):
    owner = make_user("dona@example.org", name="Dona")
    pid = make_project("Dígitos", owner)
    login(client, "dona@example.org")
    return owner, pid


def invite(client, pid: int, email: str, role: str = "editor"):
    return submit_form(
        client, f"/projects/{pid}/members/invite", {"email": email, "role": role},
        page=f"/projects/{pid}/members",
    )


def test_invitation_email_link_and_acceptance_after_signup(app, client, smtp_server, team, make_user):
    owner, pid = team
    response = invite(client, pid, "  Nova@Example.org ", "editor")
    assert response.status_code == 302
    [message] = smtp_server.to("nova@example.org")
    assert "Dígitos" in message["Subject"]
    link = smtp_server.first_link(message)
    base = app.extensions["flautim_config"].BASE_URL.rstrip("/")
    assert link.startswith(f"{base}/invitations/")
    token = link.rsplit("/", 1)[1]
    with app.app_context():
        invitation = db.session.scalar(select(Invitation))
        # Only the hash is stored.
        assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in invitation.token_hash
        assert invitation.email == "nova@example.org"
    members_page = client.get(f"/projects/{pid}/members").get_data(as_text=True)
    assert 'class="invitation" data-email="nova@example.org"' in members_page

    logout(client)
    path = f"/invitations/{token}"
    page = client.get(path).get_data(as_text=True)
    assert "Dígitos" in page and "editor" in page
    assert f"/auth/signup?next={path}&amp;email=nova" in page
    assert f"/auth/login?next={path}" in page
    # An anonymous "Aceitar" goes to the login page.
    r = client.post(path, data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]

    # Signs up later (the account is created after the invitation), then comes back.
    new_uid = make_user("nova@example.org", name="Nova")
    login(client, "nova@example.org")
    assert "1 convite esperando" in client.get("/projects/").get_data(as_text=True)
    page = client.get(path).get_data(as_text=True)
    assert "Aceitar" in page
    r = client.post(path, data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/projects/{pid}")
    assert role_of(app, pid, new_uid) == Role.EDITOR
    # Single use.
    r = client.get(path)
    assert r.status_code == 410
    assert "já foi aceito" in r.get_data(as_text=True)
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.project_id == pid).order_by(AuditEvent.id)
        ).all()
        assert actions == ["member.invited", "invitation.accepted"]
    activity = client.get(f"/projects/{pid}/activity").get_data(as_text=True)
    assert "convidou nova@example.org como editor" in activity
    assert "aceitou o convite e entrou como editor" in activity


def test_only_the_invited_account_can_accept(app, client, smtp_server, team, make_user):
    _, pid = team
    invite(client, pid, "certa@example.org", "viewer")
    token = smtp_server.first_link(smtp_server.to("certa@example.org")[0]).rsplit("/", 1)[1]
    other = make_user("outra@example.org")
    logout(client)
    login(client, "outra@example.org")
    page = client.get(f"/invitations/{token}").get_data(as_text=True)
    assert "foi enviado para certa@example.org" in page
    r = client.post(f"/invitations/{token}", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 403
    assert role_of(app, pid, other) is None


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.org", "a b@example.org", ""])
def test_invalid_email_is_refused(app, client, team, email):
    _, pid = team
    r = invite(client, pid, email)
    assert r.status_code == 400
    body = r.get_data(as_text=True)
    assert "Este e-mail não é válido." in body or "Informe o e-mail" in body
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_inviting_an_existing_member_or_twice_is_refused(app, client, smtp_server, team, make_user):
    owner, pid = team
    r = invite(client, pid, "DONA@example.org")
    assert r.status_code == 400
    assert "já é membro deste projeto" in r.get_data(as_text=True)
    assert invite(client, pid, "x@example.org").status_code == 302
    r = invite(client, pid, "x@example.org")
    assert r.status_code == 400
    assert "Já existe um convite pendente" in r.get_data(as_text=True)


def test_invalid_and_expired_tokens_get_a_clear_page(app, client, smtp_server, team):
    _, pid = team
    r = client.get("/invitations/not-a-real-token")
    assert r.status_code == 404
    assert "Convite inválido" in r.get_data(as_text=True)
    invite(client, pid, "late@example.org")
    token = smtp_server.first_link(smtp_server.to("late@example.org")[0]).rsplit("/", 1)[1]
    with app.app_context():
        invitation = db.session.scalar(select(Invitation))
        invitation.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    r = client.get(f"/invitations/{token}")
    assert r.status_code == 410
    assert "Convite expirado" in r.get_data(as_text=True)


def test_resend_rotates_the_token_and_revoke_kills_it(app, client, smtp_server, team):
    _, pid = team
    invite(client, pid, "r@example.org")
    first = smtp_server.first_link(smtp_server.to("r@example.org")[0]).rsplit("/", 1)[1]
    with app.app_context():
        iid = db.session.scalar(select(Invitation.id))
    r = submit_form(client, f"/projects/{pid}/invitations/{iid}/resend", {}, page=f"/projects/{pid}/members")
    assert r.status_code == 302
    assert len(smtp_server.to("r@example.org")) == 2
    second = smtp_server.first_link(smtp_server.to("r@example.org")[1]).rsplit("/", 1)[1]
    assert second != first
    assert client.get(f"/invitations/{first}").status_code == 404
    assert client.get(f"/invitations/{second}").status_code == 200
    r = submit_form(client, f"/projects/{pid}/invitations/{iid}/revoke", {}, page=f"/projects/{pid}/members")
    assert r.status_code == 302
    assert client.get(f"/invitations/{second}").status_code == 404


def test_roles_remove_transfer_and_the_last_owner(app, client, team, make_user, make_project):
    owner, pid = team
    ed = make_user("ed@example.org", name="Ed")
    vi = make_user("vi@example.org", name="Vi")
    with app.app_context():
        db.session.add_all(
            [
                Membership(project_id=pid, user_id=ed, role=Role.EDITOR),
                Membership(project_id=pid, user_id=vi, role=Role.VIEWER),
            ]
        )
        db.session.commit()
    members = f"/projects/{pid}/members"
    # The only owner can neither leave nor demote themself.
    r = submit_form(client, f"/projects/{pid}/leave", {}, page=members)
    assert r.status_code == 409
    assert "único dono" in r.get_data(as_text=True)
    r = submit_form(client, f"/projects/{pid}/members/{membership_id(app, pid, owner)}/role", {"role": "viewer"}, page=members)
    assert r.status_code == 409
    assert role_of(app, pid, owner) == Role.OWNER
    # Change a role.
    r = submit_form(client, f"/projects/{pid}/members/{membership_id(app, pid, vi)}/role", {"role": "editor"}, page=members)
    assert r.status_code == 302 and role_of(app, pid, vi) == Role.EDITOR
    r = submit_form(client, f"/projects/{pid}/members/{membership_id(app, pid, vi)}/role", {"role": "superuser"}, page=members)
    assert r.status_code == 400 and role_of(app, pid, vi) == Role.EDITOR
    # Remove a member.
    r = submit_form(client, f"/projects/{pid}/members/{membership_id(app, pid, vi)}/remove", {}, page=members)
    assert r.status_code == 302 and role_of(app, pid, vi) is None
    # Transfer ownership: Ed becomes owner, Dona becomes editor.
    r = submit_form(client, f"/projects/{pid}/members/{membership_id(app, pid, ed)}/transfer", {}, page=members)
    assert r.status_code == 302
    assert (role_of(app, pid, ed), role_of(app, pid, owner)) == (Role.OWNER, Role.EDITOR)
    # Now an editor: owner actions are 403, leaving is fine.
    r = submit_form(client, f"/projects/{pid}/members/{membership_id(app, pid, ed)}/remove", {}, page=members)
    assert r.status_code == 403
    r = invite(client, pid, "z@example.org")
    assert r.status_code == 403
    r = submit_form(client, f"/projects/{pid}/leave", {}, page=members)
    assert r.status_code == 302 and role_of(app, pid, owner) is None
    assert client.get(members).status_code == 404
    # A membership of another project cannot be reached through this one.
    other = make_project("Outro", ed)
    logout(client)
    login(client, "ed@example.org")
    r = submit_form(client, f"/projects/{pid}/members/{membership_id(app, other, ed)}/role", {"role": "viewer"}, page=members)
    assert r.status_code == 404
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.project_id == pid).order_by(AuditEvent.id)
        ).all()
    assert actions == [
        "member.role_changed", "member.removed", "project.ownership_transferred", "member.left",
    ]


def test_viewer_gets_403_for_editor_actions(app, client, make_user, make_project):
    owner = make_user("o@example.org")
    viewer = make_user("v@example.org")
    pid = make_project("P", owner, viewers=[viewer])
    login(client, "v@example.org")
    r = submit_form(client, f"/projects/{pid}/settings", {"description": "x"}, page=f"/projects/{pid}")
    assert r.status_code == 403
    r = invite(client, pid, "z@example.org")
    assert r.status_code == 403
    # Viewers see the members page but no management controls.
    page = client.get(f"/projects/{pid}/members").get_data(as_text=True)
    assert "Enviar convite" not in page and "Remover" not in page


def test_a_mail_failure_keeps_the_invitation_for_a_resend(app, client, team):
    from tests.conftest import free_port

    _, pid = team
    cfg = app.extensions["flautim_config"]
    cfg.SMTP_HOST, cfg.SMTP_PORT = "127.0.0.1", free_port()  # nothing listens there
    r = invite(client, pid, "falha@example.org")
    assert r.status_code == 302
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "não pôde ser enviado" in page
    assert 'data-email="falha@example.org"' in page
    with app.app_context():
        assert db.session.scalar(select(Invitation.email)) == "falha@example.org"


def test_accepting_never_lowers_an_existing_role(app, client, smtp_server, team, make_user):
    _, pid = team
    editor = make_user("ja@example.org")
    with app.app_context():
        db.session.add(Membership(project_id=pid, user_id=editor, role=Role.EDITOR))
        db.session.commit()
    # Invited before joining another way; the invitation still works once, as a no-op.
    with app.app_context():
        from flautim.web.projects import invitations as inv

        invitation = Invitation(project_id=pid, email="ja@example.org", role=Role.VIEWER, invited_by_id=None)
        token = inv.new_token(invitation)
        db.session.add(invitation)
        db.session.commit()
    logout(client)
    login(client, "ja@example.org")
    page = client.get(f"/invitations/{token}").get_data(as_text=True)
    assert "Você já é membro deste projeto." in page
    r = client.post(f"/invitations/{token}", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    assert role_of(app, pid, editor) == Role.EDITOR
    assert client.get(f"/invitations/{token}").status_code == 410
