"""Alembic's environment for Flautim's schema (see flautim/schema_migrations.py)."""

import logging
from logging.config import fileConfig

from alembic import context

from flautim.models import db
from flautim.schema_migrations import ENGINE_ATTRIBUTE

config = context.config
# Loggers made before the migrations ran in this process (the worker's, under `serve` and
# in tests) keep logging.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

# Batch mode: SQLite (the embedded default) alters a table by copying it.
OPTIONS = {"target_metadata": db.metadata, "render_as_batch": True, "compare_type": True}


def engine():
    """The engine flautim.schema_migrations handed over, else the site's database."""
    given = config.attributes.get(ENGINE_ATTRIBUTE)
    if given is not None:
        return given
    from flautim.config import Config
    from flautim.database import create_engine

    return create_engine(Config.from_env())


def skip_empty_autogenerate(_context, _revision, directives):
    # `revision --autogenerate` with no change to the models writes no empty script.
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_offline():
    url = engine().url.render_as_string(hide_password=False)
    context.configure(url=url, literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    with engine().connect() as connection:
        context.configure(connection=connection, process_revision_directives=skip_empty_autogenerate,
                          **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
