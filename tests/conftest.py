"""Shared fixtures: a real PostgreSQL database migrated once per session, real Redis,
the app, a logged-in client, a live server, Debian's chromium through Playwright and a
real SMTP server on loopback.

Environment:
- FLAUTIM_TEST_DATABASE_URL: an admin URL of the PostgreSQL server (a fresh database is
  created from it for the session and dropped afterwards); "sqlite" runs on a file instead.
- FLAUTIM_TEST_REDIS_URL: the Redis to use (database 15 by default; flushed per test).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from flautim.config import Config

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PG_ADMIN_URL = os.environ.get("FLAUTIM_TEST_DATABASE_URL", "postgresql+psycopg://127.0.0.1/postgres")
REDIS_URL = os.environ.get("FLAUTIM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("FLAUTIM_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"


# --- database ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A fresh database for this test session, migrated to head with Alembic."""
    if PG_ADMIN_URL == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        _migrate(url, tmp_path_factory.mktemp("migrate-data"))
        yield url
        return
    name = f"flautim_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url, tmp_path_factory.mktemp("migrate-data"))
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _migrate(url: str, data_dir: Path) -> None:
    from flautim.models import db
    from flautim.schema_migrations import upgrade
    from flautim.web import create_app

    app = create_app(_config(url, data_dir))
    with app.app_context():
        upgrade(db.engine)

        db.engine.dispose()


def _config(database_url: str, data_dir: Path, **overrides) -> Config:
    values = dict(
        ENV="test",
        SECRET_KEY="test-secret",
        DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        EMBEDDED_WORKER=False,
        PASSWORD_MIN_LENGTH=10,
        # Explicit, never "auto": the suite must not switch to Docker because an engine
        # happens to answer (tests/sandbox asks for "docker" itself).
        SANDBOX_BACKEND="local",
    )
    values.update(overrides)
    return Config.from_env(environ={}, **values)


def _truncate_all(app) -> None:
    from flautim.models import db

    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(sa.text(f"DELETE FROM {table}"))
        db.session.remove()
        db.engine.dispose()


# --- app and clients --------------------------------------------------------------------

@pytest.fixture
def config_overrides():
    """Override in a test module to change settings: `return {"SMTP_HOST": ...}`."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, config_overrides, request):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    from flautim.web import create_app

    overrides = dict(config_overrides)
    if "smtp_server" in request.fixturenames:
        smtp = request.getfixturevalue("smtp_server")
        overrides.setdefault("SMTP_HOST", smtp.host)
        overrides.setdefault("SMTP_PORT", smtp.port)
    if "seaweedfs" in request.fixturenames:
        for key, value in request.getfixturevalue("seaweedfs").settings().items():
            overrides.setdefault(key, value)
    application = create_app(_config(database_url, tmp_path / "data", **overrides))
    yield application
    _truncate_all(application)


@pytest.fixture
def db_session(app):
    from flautim.models import db

    with app.app_context():
        yield db.session


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def submit_form(client, url: str, data: dict, page: str | None = None, **kwargs):
    """GET `page` (default `url`) to pick up the CSRF token, then POST `data` to `url`."""
    html = client.get(page or url).get_data(as_text=True)
    payload = {"csrf_token": csrf_token_from(html), **data}
    return client.post(url, data=payload, **kwargs)


@pytest.fixture
def make_user(app):
    """Create a user directly in the database: make_user("a@x.org", name=..., is_admin=...)."""
    from flautim.models import User, db
    from flautim.web.auth.passwords import hash_password

    def factory(email: str, password: str = PASSWORD, name: str | None = None, **fields):
        with app.app_context():
            user = User(
                email=email.lower(),
                name=name or email.split("@")[0],
                password_hash=hash_password(password),
                **fields,
            )
            db.session.add(user)
            db.session.commit()
            return user.id

    return factory


def login(client, email: str, password: str = PASSWORD):
    response = submit_form(client, "/auth/login", {"email": email, "password": password})
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:2000]
    return response


def login_in_browser(page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Log in through the real form in a Playwright page."""
    page.goto(base_url + "/auth/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Entrar").click()


@pytest.fixture
def make_project(app):
    """Create a project with members: make_project("P", owner_id, editors=[...], viewers=[...])."""
    from flautim.models import Membership, Project, Role, db

    def factory(name: str, owner_id: int, editors=(), viewers=()):
        with app.app_context():
            project = Project(name=name, description="")
            db.session.add(project)
            db.session.flush()
            db.session.add(Membership(project_id=project.id, user_id=owner_id, role=Role.OWNER))
            for uid in editors:
                db.session.add(Membership(project_id=project.id, user_id=uid, role=Role.EDITOR))
            for uid in viewers:
                db.session.add(Membership(project_id=project.id, user_id=uid, role=Role.VIEWER))
            db.session.commit()
            return project.id

    return factory


# --- live server and browser ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def live_server(app):
    app.config["FLAUTIM_BASE_URL"] = "pending"
    server = LiveServer(app)
    app.extensions["flautim_config"].BASE_URL = server.url
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium is required for browser tests ({CHROMIUM} missing)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(accept_downloads=True, locale="pt-BR")
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


# --- SMTP -------------------------------------------------------------------------------

class SmtpServer:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        self.host = "127.0.0.1"
        self.port = free_port()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def start(self):
        self._controller.start()
        return self

    def stop(self):
        self._controller.stop()

    def to(self, address: str):
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    @staticmethod
    def body(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def first_link(message) -> str:
        match = re.search(r"https?://\S+", SmtpServer.body(message))
        assert match, "no link in the message"
        return match.group(0)


@pytest.fixture
def embedded_worker(app):
    """The worker `flautim serve` starts beside the app (a process), serving the app's queues."""
    from flautim.worker.main import start_embedded_worker

    process = start_embedded_worker(app)
    yield process
    process.terminate()
    process.join(timeout=20)


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


# --- object store -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory):
    from tests.seaweedfs import seaweedfs_for_session

    server = seaweedfs_for_session(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def seaweedfs(seaweedfs_server):
    """A real S3 server (SeaweedFS) with an empty bucket; the `app` fixture stores there."""
    seaweedfs_server.empty_bucket()
    return seaweedfs_server
