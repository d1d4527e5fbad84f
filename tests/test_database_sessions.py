"""How requests use PostgreSQL: GET and HEAD read in autocommit (no BEGIN, no ROLLBACK),
a write in one is still one transaction, and a pooled connection cut while idle is
replaced before a request sees it (flautim.database)."""

import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from sqlalchemy import exc, select, update

from flautim import database as session_module
from flautim.models import User, db
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.skipif(PG_ADMIN_URL == "sqlite", reason="autocommit reads are a PostgreSQL path")


def _connection():
    return db.session.connection().connection.dbapi_connection


def _user(email: str) -> User:
    return User(email=email, name="n", password_hash="x")


def _emails(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(User.email).order_by(User.email)))


def test_a_get_reads_outside_a_transaction_and_a_post_inside_one(app):
    with app.test_request_context("/healthz", method="GET"):
        app.preprocess_request()
        db.session.execute(select(1))
        assert _connection().autocommit
        assert _connection().info.transaction_status == TransactionStatus.IDLE  # no BEGIN was sent
    with app.test_request_context("/healthz", method="POST"):
        app.preprocess_request()
        db.session.execute(select(1))
        # The same pooled connection, back in transactions once the GET returned it.
        assert not _connection().autocommit
        assert _connection().info.transaction_status == TransactionStatus.INTRANS


def test_a_write_in_a_get_is_one_transaction(app):
    with app.test_request_context("/healthz", method="GET"):
        app.preprocess_request()
        db.session.add(_user("first@example.org"))
        db.session.flush()
        assert _connection().info.transaction_status == TransactionStatus.INTRANS
        db.session.add(_user("first@example.org"))  # the unique email fails the second flush
        with pytest.raises(exc.IntegrityError):
            db.session.flush()
        db.session.rollback()
    assert _emails(app) == []  # the first insert went with the failed transaction

    with app.test_request_context("/healthz", method="GET"):
        app.preprocess_request()
        db.session.add(_user("kept@example.org"))
        db.session.commit()
        db.session.execute(update(User).values(name="changed"))  # an ORM UPDATE opens one too
        db.session.rollback()
        assert _connection().info.transaction_status == TransactionStatus.IDLE
    assert _emails(app) == ["kept@example.org"]
    with app.app_context():
        assert db.session.scalar(select(User.name)) == "n"


def _backend_pid() -> int:
    with db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _cut(database_url: str, pid: int) -> None:
    admin = sa.create_engine(database_url)
    with admin.connect() as connection:
        assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


def test_a_connection_cut_while_idle_is_replaced_on_checkout(app, database_url, monkeypatch):
    with app.app_context():
        db.engine.dispose()
        first = _backend_pid()
        _cut(database_url, first)
        monkeypatch.setattr(session_module, "IDLE_BEFORE_PING", 0.0)
        second = _backend_pid()  # pinged, found dead, replaced: no error reaches the caller
        assert second != first

        # Without the ping (used "a moment ago") the cut surfaces: the ping is what hid it.
        monkeypatch.setattr(session_module, "IDLE_BEFORE_PING", 3600.0)
        _cut(database_url, second)
        with pytest.raises(exc.OperationalError):
            _backend_pid()
        assert _backend_pid() not in (first, second)  # SQLAlchemy dropped the dead pool
