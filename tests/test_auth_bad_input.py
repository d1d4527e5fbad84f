"""Bad input at the account forms: each gets a clear error on the field it concerns."""

from __future__ import annotations

import html
import re
import time

import pytest
from sqlalchemy import func, select

from tests.conftest import PASSWORD, REDIS_URL, login, submit_form

STRONG = "luz do sol em marte 42"
# Rate-limit counters live in Redis. A database of our own keeps them apart from other test
# modules that flush the shared test database (db 15) while these tests count attempts.
LIMITS_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/13"


@pytest.fixture
def config_overrides():
    import redis

    redis.Redis.from_url(LIMITS_REDIS_URL).flushdb()
    return {"REDIS_URL": LIMITS_REDIS_URL}


def _signup(client, **fields):
    data = {"name": "Rita", "email": "rita@example.org", "password": STRONG}
    data.update(fields)
    return submit_form(client, "/auth/signup", data)


def _field_errors(response) -> dict[str, list[str]]:
    """{field id: [error messages]} as shown next to each field."""
    page = response.get_data(as_text=True)
    errors: dict[str, list[str]] = {}
    for block in re.findall(r'<div class="field has-error">(.*?)</div>', page, flags=re.S):
        field_id = re.search(r'id="([^"]+)"', block).group(1)
        errors[field_id] = [html.unescape(e) for e in re.findall(r'<p class="error" role="alert">(.*?)</p>', block)]
    return errors


def _count_users(app) -> int:
    from flautim.models import User, db

    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


def test_duplicate_email_any_case_is_refused(app, client, make_user):
    make_user("rita@example.org")
    response = _signup(client, email="RITA@Example.org")
    assert response.status_code == 200
    assert "Já existe uma conta com este email" in _field_errors(response)["email"][0]
    assert _count_users(app) == 1


@pytest.mark.parametrize("email", ["not-an-email", "rita@", "@example.org", "rita@@example.org", "a b@example.org"])
def test_malformed_email_is_refused(app, client, email):
    response = _signup(client, email=email)
    assert "Este email não é válido" in _field_errors(response)["email"][0]
    assert _count_users(app) == 0


def test_empty_email_is_refused(client):
    assert _field_errors(_signup(client, email="   "))["email"] == ["Informe o email."]


def test_over_long_and_empty_names_are_refused(app, client):
    errors = _field_errors(_signup(client, name="x" * 101))
    assert errors["name"] == ["O nome pode ter no máximo 100 caracteres."]
    errors = _field_errors(_signup(client, name="   "))
    assert errors["name"] == ["Informe o seu nome."]
    errors = _field_errors(_signup(client, name="Ana\u202eamlaP"))
    assert errors["name"] == ["O nome não pode conter caracteres de controle."]
    assert _count_users(app) == 0


def test_unicode_name_is_accepted_and_shown(app, client):
    name = "Zoë Łukasz Ñandú 李小龙 🙂"
    response = _signup(client, name=name)
    assert response.status_code == 302
    page = client.get("/auth/account").get_data(as_text=True)
    assert name in page
    from flautim.models import User, db

    with app.app_context():
        assert db.session.scalar(select(User.name)) == name


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("curta1!", "pelo menos 10 caracteres"),
        ("password123", "comum demais"),
        ("1234567890", "comum demais"),
        ("Senha12345!", "comum demais"),
        ("aaaaaaaaaaaaaa", "trivial demais"),
        ("abcdefghijklmnop", "trivial demais"),
        ("rita@example.org", "igual ao seu email"),
        ("", "Escolha uma senha."),
    ],
)
def test_weak_passwords_are_refused(app, client, password, message):
    errors = _field_errors(_signup(client, password=password))
    assert message in errors["password"][0]
    assert _count_users(app) == 0


def test_forged_csrf_token_is_rejected(client, make_user):
    make_user("sara@example.org")
    client.get("/auth/login")
    response = client.post(
        "/auth/login", data={"csrf_token": "forged", "email": "sara@example.org", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "O formulário expirou ou é inválido" in response.get_data(as_text=True)
    response = client.post("/auth/login", data={"email": "sara@example.org", "password": PASSWORD})
    assert response.status_code == 400


def test_deactivated_user_cannot_log_in(client, make_user):
    make_user("tiago@example.org", active=False)
    response = submit_form(client, "/auth/login", {"email": "tiago@example.org", "password": PASSWORD})
    assert response.status_code == 200
    assert "Esta conta está desativada" in response.get_data(as_text=True)
    assert client.get("/auth/account").status_code == 302


def test_deactivation_ends_an_open_session(app, client, make_user):
    from flautim.models import User, db

    uid = make_user("ulla@example.org")
    login(client, "ulla@example.org")
    with app.app_context():
        db.session.get(User, uid).active = False
        db.session.commit()
    assert client.get("/auth/account").status_code == 302


def test_login_rate_limit_per_account(app, client, make_user):
    make_user("vera@example.org")
    for _ in range(5):
        response = submit_form(client, "/auth/login", {"email": "vera@example.org", "password": "wrong password 1"})
        assert response.status_code == 200
    # Even the right password is refused once the account's allowance is spent.
    response = submit_form(client, "/auth/login", {"email": "vera@example.org", "password": PASSWORD})
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "Muitas tentativas" in page and 'lang="pt-BR"' in page
    # Another account from the same address is not locked by it.
    make_user("walter@example.org")
    login(client, "walter@example.org")


def test_login_rate_limit_per_ip(app, client, make_user):
    app.extensions["flautim_config"].LOGIN_LIMIT_PER_IP = "3 per minute"
    for i in range(3):
        response = submit_form(client, "/auth/login", {"email": f"x{i}@example.org", "password": "wrong password 1"})
        assert response.status_code == 200
    response = submit_form(client, "/auth/login", {"email": "x9@example.org", "password": "wrong password 1"})
    assert response.status_code == 429


def test_successful_logins_do_not_use_up_the_limit(app, make_user):
    make_user("xavier@example.org")
    for _ in range(7):
        client = app.test_client()
        login(client, "xavier@example.org")


@pytest.mark.parametrize("path", ["/auth/reset/garbage", "/auth/reset/eyJ1IjoxfQ.aaaa.bbbb"])
def test_invalid_reset_token(client, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "inválido ou já foi usado" in response.get_data(as_text=True)


def test_expired_reset_token(app, client, make_user):
    from flautim.models import User, db
    from flautim.web.auth.tokens import make_reset_token

    uid = make_user("yara@example.org")
    with app.test_request_context():
        token = make_reset_token(db.session.get(User, uid))
    app.extensions["flautim_config"].TOKEN_MAX_AGE_S = 1
    time.sleep(2.2)
    response = client.get(f"/auth/reset/{token}")
    assert response.status_code == 400
    assert "expirou" in response.get_data(as_text=True)


def test_reset_token_reused_after_use(app, client, make_user):
    from flautim.models import User, db
    from flautim.web.auth.tokens import make_reset_token

    uid = make_user("zeca@example.org")
    with app.test_request_context():
        token = make_reset_token(db.session.get(User, uid))
    new = "rios e montanhas azuis 3"
    assert submit_form(client, f"/auth/reset/{token}", {"password": new, "confirm": new}).status_code == 302
    other = "outra tentativa com link 4"
    response = client.post(f"/auth/reset/{token}", data={"password": other, "confirm": other})
    assert response.status_code == 400
    login(client, "zeca@example.org", new)


def test_reset_refuses_weak_or_mismatched_password(client, app, make_user):
    from flautim.models import User, db
    from flautim.web.auth.tokens import make_reset_token

    uid = make_user("aline@example.org")
    with app.test_request_context():
        token = make_reset_token(db.session.get(User, uid))
    errors = _field_errors(submit_form(client, f"/auth/reset/{token}", {"password": "qwerty", "confirm": "qwerty"}))
    assert "pelo menos 10" in errors["password"][0]
    errors = _field_errors(
        submit_form(client, f"/auth/reset/{token}", {"password": STRONG, "confirm": STRONG + "x"})
    )
    assert errors["confirm"] == ["As duas senhas não são iguais."]


def test_invalid_and_expired_email_change_tokens(app, client, make_user):
    from flautim.models import User, db
    from flautim.web.auth.tokens import make_email_change_token

    assert client.get("/auth/email/confirm/garbage").status_code == 400
    uid = make_user("bruno@example.org")
    with app.test_request_context():
        user = db.session.get(User, uid)
        # A token for a change that was never requested (no pending email) is refused.
        stray = make_email_change_token(user, "other@example.org")
        user.pending_email = "bruno2@example.org"
        db.session.commit()
        token = make_email_change_token(user, "bruno2@example.org")
    response = client.get(f"/auth/email/confirm/{stray}")
    assert response.status_code == 400 and "inválido" in response.get_data(as_text=True)
    app.extensions["flautim_config"].TOKEN_MAX_AGE_S = 1
    time.sleep(2.2)
    response = client.get(f"/auth/email/confirm/{token}")
    assert response.status_code == 400 and "expirou" in response.get_data(as_text=True)


def test_email_change_to_taken_or_malformed_address(client, make_user):
    make_user("carlos@example.org")
    make_user("dani@example.org")
    login(client, "carlos@example.org")
    response = submit_form(
        client, "/auth/account/email",
        {"email-new_email": "DANI@example.org", "email-current_password": PASSWORD}, page="/auth/account",
    )
    assert _field_errors(response)["email-new_email"] == ["Já existe uma conta com este email."]
    response = submit_form(
        client, "/auth/account/email",
        {"email-new_email": "dani@", "email-current_password": PASSWORD}, page="/auth/account",
    )
    assert "não é válido" in _field_errors(response)["email-new_email"][0]
