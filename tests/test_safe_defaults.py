"""Safe by default: a secret key of the site's own, no unisolated runs without an explicit
choice, and rate limits that see the client behind a reverse proxy (only when told to)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import threading
import uuid

import pytest

from flautim.config import Config
from flautim.web.security import SECRET_KEY_FILE, load_or_create_secret_key

from .conftest import PASSWORD, submit_form

PUBLIC_KEY_OF_OLD_RELEASES = "dev-only-secret-change-me"
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/flautim-test/docker.sock"}


# --- the secret key ---------------------------------------------------------------------

def test_a_site_without_a_secret_key_gets_its_own_and_keeps_it(tmp_path):
    from flautim.web import create_app

    def app_on(data_dir):
        return create_app(Config.from_env(environ={}, DATA_DIR=str(data_dir), SANDBOX_BACKEND="local"))

    first = app_on(tmp_path / "a").config["SECRET_KEY"]
    assert first != PUBLIC_KEY_OF_OLD_RELEASES and len(first) >= 32
    key_file = tmp_path / "a" / SECRET_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert app_on(tmp_path / "a").config["SECRET_KEY"] == first  # a restart keeps sessions
    assert app_on(tmp_path / "b").config["SECRET_KEY"] != first  # another site, another key


@pytest.fixture
def config_overrides():
    return {"SECRET_KEY": ""}


def test_a_session_signed_with_the_old_public_key_is_refused(app, client, make_user):
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    user_id = make_user("ana@example.org")
    forger = Flask("forger")
    forger.secret_key = PUBLIC_KEY_OF_OLD_RELEASES
    cookie = SecureCookieSessionInterface().get_signing_serializer(forger).dumps(
        {"_user_id": f"{user_id}.0", "_fresh": True}
    )
    client.set_cookie("session", cookie)
    response = client.get("/auth/account")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_processes_starting_together_share_one_key(tmp_path):
    keys, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        keys.append(load_or_create_secret_key(tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [SECRET_KEY_FILE]  # no temporary left


def test_the_key_file_is_never_followed_through_a_link_and_is_kept_private(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("x" * 64)
    data = tmp_path / "data"
    data.mkdir()
    (data / SECRET_KEY_FILE).symlink_to(elsewhere)
    with pytest.raises(OSError):
        load_or_create_secret_key(data)

    (data / SECRET_KEY_FILE).unlink()
    (data / SECRET_KEY_FILE).write_text("k" * 43 + "\n")
    os.chmod(data / SECRET_KEY_FILE, 0o644)
    assert load_or_create_secret_key(data) == "k" * 43
    assert stat.S_IMODE((data / SECRET_KEY_FILE).stat().st_mode) == 0o600

    (data / SECRET_KEY_FILE).write_text("short\n")
    with pytest.raises(ValueError, match="no usable secret key"):
        load_or_create_secret_key(data)


def test_production_still_needs_an_explicit_key():
    with pytest.raises(ValueError, match="FLAUTIM_SECRET_KEY"):
        Config.from_env(environ={"FLAUTIM_ENV": "production", "FLAUTIM_SANDBOX_BACKEND": "docker"})


# --- the sandbox backend ----------------------------------------------------------------

def test_without_docker_the_default_refuses_to_run_user_code_unisolated():
    assert Config.SANDBOX_BACKEND == "auto"
    with pytest.raises(ValueError) as refused:
        Config.from_env(environ=NO_ENGINE)
    message = str(refused.value)
    assert "no Docker engine answers" in message and "FLAUTIM_SANDBOX_BACKEND=local" in message


def test_production_without_docker_is_not_offered_the_local_backend():
    environ = {"FLAUTIM_ENV": "production", "FLAUTIM_SECRET_KEY": "s" * 40,
               "FLAUTIM_REDIS_URL": "redis://127.0.0.1:6379/11", **NO_ENGINE}
    with pytest.raises(ValueError, match="no Docker engine answers") as refused:
        Config.from_env(environ=environ)
    assert "=local" not in str(refused.value)


def test_an_explicit_local_backend_is_honoured_without_asking_docker():
    config = Config.from_env(environ={"FLAUTIM_SANDBOX_BACKEND": "local", **NO_ENGINE})
    assert config.SANDBOX_BACKEND == "local"


def test_the_test_suite_chooses_its_backend_explicitly(app):
    assert app.extensions["flautim_config"].SANDBOX_BACKEND == "local"


@pytest.fixture
def docker_engine():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine here: {exc}")
    yield client
    client.close()


def test_auto_picks_docker_when_the_engine_answers_and_the_image_exists(docker_engine):
    image = f"flautim-test-probe-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValueError, match=f"has no image {image}:cpu"):
        Config.from_env(environ={**os.environ, "FLAUTIM_SANDBOX_IMAGE": f"{image}:cpu"})

    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    docker_engine.api.import_image_from_data(empty.getvalue(), repository=image, tag="cpu")
    try:
        config = Config.from_env(environ={**os.environ, "FLAUTIM_SANDBOX_IMAGE": f"{image}:cpu"})
        assert config.SANDBOX_BACKEND == "docker"
    finally:
        docker_engine.images.remove(f"{image}:cpu", force=True)


# --- rate limits behind a reverse proxy -------------------------------------------------

PROXY = "10.0.0.5"


def _failed_login(client, n: int, forwarded_for: str | None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    # A different account each time: only the per-IP limit can trip.
    return submit_form(
        client, "/auth/login", {"email": f"nobody{n}@example.org", "password": PASSWORD + "x"},
        headers=headers, environ_base={"REMOTE_ADDR": PROXY},
    )


def _statuses(client, forwarded_fors) -> list[int]:
    return [_failed_login(client, n, xff).status_code for n, xff in enumerate(forwarded_fors)]


@pytest.mark.parametrize("config_overrides", [{"LOGIN_LIMIT_PER_IP": "2 per minute"}])
def test_without_trusted_proxies_a_forged_forwarded_for_changes_nothing(app, client):
    # Each attempt claims another client address; all come from one peer and count as one.
    assert _statuses(client, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [200, 200, 429]


@pytest.mark.parametrize(
    "config_overrides", [{"LOGIN_LIMIT_PER_IP": "2 per minute", "TRUSTED_PROXIES": 1}]
)
def test_behind_one_trusted_proxy_each_client_has_its_own_limit(app, client):
    # Two clients behind the same proxy: the first uses up its allowance, the second has its own.
    assert _statuses(client, ["1.1.1.1", "1.1.1.1", "1.1.1.1", "2.2.2.2"]) == [200, 200, 429, 200]
    # A client prepending its own X-Forwarded-For only fools a proxy we do not trust: the
    # address our proxy appended (the last one) is the one that counts.
    assert _statuses(client, ["9.9.9.9, 1.1.1.1"]) == [429]
