"""Who binds the models' `db` (flautim.database): each web app its own database, one session
per app context; the worker a session per block on its own engine, with no Flask at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select

from flautim.config import Config
from flautim.models import User, db
from flautim.worker.database import engine_for, session_scope
from tests.conftest import REDIS_URL, ROOT


def _config(tmp_path, name: str) -> Config:
    data = tmp_path / name
    return Config.from_env(
        environ={},
        ENV="test",
        SECRET_KEY="x",
        DATA_DIR=str(data),
        DATABASE_URL=f"sqlite:///{data}.sqlite3",
        REDIS_URL=REDIS_URL,
        EMBEDDED_WORKER=False,
        SANDBOX_BACKEND="local",
    )


def _app(config: Config):
    from flautim.web import create_app

    app = create_app(config)
    with app.app_context():
        db.metadata.create_all(db.engine)
    return app


def _users() -> int:
    return db.session.scalar(select(func.count(User.id)))


def test_each_app_reads_its_own_database_and_a_session_per_app_context(tmp_path):
    first, second = _app(_config(tmp_path, "first")), _app(_config(tmp_path, "second"))
    with first.app_context():
        db.session.add(User(email="a@example.org", name="a", password_hash="x"))
        db.session.commit()
        outer = db.session()
        with second.app_context():
            assert _users() == 0
            assert db.session() is not outer
        with first.test_request_context("/"):  # a request inside the context shares its session
            assert db.session() is outer
        assert _users() == 1
    with second.app_context():
        assert _users() == 0


def test_a_worker_block_has_its_own_session_closed_at_its_end(tmp_path):
    config = _config(tmp_path, "site")
    app = _app(config)
    with app.app_context():
        web_session = db.session()
        with session_scope(config):
            assert db.session() is not web_session
            db.session.add(User(email="w@example.org", name="w", password_hash="x"))
            db.session.commit()
            assert _users() == 1  # holds a connection until the block ends
            assert engine_for(config).pool.checkedout() == 1
        assert engine_for(config).pool.checkedout() == 0  # the block's session was removed
        assert db.session() is web_session
        assert _users() == 1


def test_no_binding_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no database is bound here"):
        db.session.execute(select(1))


def test_the_worker_uses_the_database_without_flask(tmp_path):
    config = _config(tmp_path, "worker")
    with _app(config).app_context():
        pass  # the schema
    script = textwrap.dedent(f"""
        import sys
        from sqlalchemy import select
        from flautim.config import Config
        from flautim.models import User, db
        from flautim.worker.database import session_scope, use_config
        import flautim.worker.job  # noqa: F401
        from flautim.worker.main import settle_and_dispatch

        config = Config.from_env(environ={{}}, ENV="test", SECRET_KEY="x", DATA_DIR={str(config.DATA_DIR)!r},
                                 DATABASE_URL={config.DATABASE_URL!r}, REDIS_URL={REDIS_URL!r},
                                 EMBEDDED_WORKER=False, SANDBOX_BACKEND="local")
        use_config(config)
        with session_scope():
            db.session.add(User(email="w@example.org", name="w", password_hash="x"))
            db.session.commit()
        with session_scope():
            print(db.session.scalar(select(User.email)))
        settle_and_dispatch(config)  # the quotas' rules and messages, the fair-share hand-over
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "flask_sqlalchemy", "flask_babel", "werkzeug")))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["w@example.org", "[]"]
