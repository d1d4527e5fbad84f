"""The database schema's migrations: Alembic, with its scripts in `migrations/`.

`upgrade(engine)` brings a database to the newest revision; `flautim db ...` (flautim/cli.py)
and Alembic's own command line (`alembic -c migrations/alembic.ini ...`) run the same
scripts. `migrations/env.py` migrates the engine handed to it here, or, from a command
line, the site's database (FLAUTIM_* settings, as every process reads them).

No Flask: the web app, the worker, the tests and the benchmarks all migrate through here.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
ENGINE_ATTRIBUTE = "flautim_engine"


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """Alembic's configuration for our scripts, migrating `engine` (None: the site's database)."""
    config = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes[ENGINE_ATTRIBUTE] = engine
    return config


def upgrade(engine: Engine | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine | None, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config()).get_heads())
