"""The database for every process, in plain SQLAlchemy: engines made from the Config, the
session that reads cheaply, and `Database`, the handle the models' `db` is.

`db.session` is a `scoped_session`. Which session (its scope) and which engine (its bind) a
caller gets is decided by whoever binds it, never by the models:
- `with db.bound_to(engine):` gives the block a session of its own on that engine, removed
  at the end (the worker: flautim.worker.database);
- outside such a block, the resolver installed with `db.resolve_with(...)` answers (the
  web: the current app's engine, one session per app context; flautim.web.database).

Round trips are the cost of a light request (PostgreSQL spends as much CPU on a BEGIN or a
ping as on a small SELECT), hence two choices here:

- **Reads in autocommit.** A session whose `info[READS_AUTOCOMMIT]` is set takes its
  connection in autocommit, so psycopg sends no BEGIN and the end of the request no
  ROLLBACK. Under READ COMMITTED, which is what we run, each statement sees a fresh snapshot
  either way; all that autocommit could lose is the atomicity of a write. So a write in such
  a session (a flush, or an ORM INSERT/UPDATE/DELETE) opens a real transaction first, and
  `commit()` or `rollback()` ends it as usual. Which sessions serve a read is the caller's
  choice: the web marks those made while serving a GET or HEAD request through
  `reads_in_autocommit_when`; the worker never marks any.
- **Ping only after idle.** `pool_pre_ping` pings on every checkout. A connection used a
  moment ago is as good as a ping. `ping_after_idle` pings only one that sat in the pool
  longer than `IDLE_BEFORE_PING`: the ones a database restart or a firewall's idle timeout
  may have cut. A dead one is replaced before the caller sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, scoped_session
from sqlalchemy.orm import Session as OrmSession

if TYPE_CHECKING:
    from flautim.config import Config

READS_AUTOCOMMIT = "flautim.reads_autocommit"
IDLE_BEFORE_PING = 10.0  # seconds in the pool after which a connection is pinged on checkout

# A scope key (sessions are kept per key) and the engine its session binds to.
Binding = tuple[Hashable, Engine]


def create_engine(config: Config) -> Engine:
    """An engine on the site's database (`Config.database_url`, `Config.engine_options()`),
    its pooled connections pinged only after sitting idle."""
    engine = sa.create_engine(config.database_url, **config.engine_options())
    ping_after_idle(engine)
    return engine


class Database:
    """The handle the models use: `Model`, `metadata`, `session` and the bound `engine`."""

    def __init__(self, model: type[DeclarativeBase]) -> None:
        self.Model = model
        self.metadata = model.metadata
        self._bound: ContextVar[Binding | None] = ContextVar(
            "flautim_database_binding", default=None
        )
        self._ambient_scope: Callable[[], Hashable | None] = lambda: None
        self._ambient_engine: Callable[[], Engine] | None = None
        self.session = scoped_session(self._new_session, scopefunc=self._scope)

    @property
    def engine(self) -> Engine:
        """The engine the current scope's session binds to."""
        bound = self._bound.get()
        if bound is not None:
            return bound[1]
        self._scope()  # raises where nothing is bound
        return self._ambient_engine()

    @contextmanager
    def bound_to(self, engine: Engine) -> Iterator[None]:
        """Within the block `session` is a session of its own on `engine`, removed (its
        connection returned) at the end."""
        token = self._bound.set((object(), engine))
        try:
            yield
        finally:
            try:
                self.session.remove()
            finally:
                self._bound.reset(token)

    def resolve_with(
        self, scope: Callable[[], Hashable | None], engine: Callable[[], Engine]
    ) -> None:
        """Outside `bound_to`, `scope()` names the current scope (None: none here) and
        `engine()` gives its engine. `scope` runs on every use of `session`: keep it cheap."""
        self._ambient_scope, self._ambient_engine = scope, engine

    def _scope(self) -> Hashable:
        bound = self._bound.get()
        if bound is not None:
            return bound[0]
        scope = self._ambient_scope()
        if scope is None:
            raise RuntimeError(
                "no database is bound here: use `with db.bound_to(engine):` "
                "(the worker: flautim.worker.database.session_scope) or a web app context"
            )
        return scope

    def _new_session(self) -> Session:
        return Session(bind=self.engine)


_serves_a_read: Callable[[], bool] | None = None


def reads_in_autocommit_when(serves_a_read: Callable[[], bool]) -> None:
    """Sessions made while `serves_a_read()` answers True read in autocommit (see above)."""
    global _serves_a_read
    _serves_a_read = serves_a_read


class Session(OrmSession):
    """An ORM session, in autocommit when it serves a read (see above)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Made on first use, so a request that never touches the database makes none.
        if _serves_a_read is not None and _serves_a_read():
            self.info[READS_AUTOCOMMIT] = True

    def get_bind(self, *args, **kwargs):
        engine = super().get_bind(*args, **kwargs)
        if self.info.get(READS_AUTOCOMMIT) and engine.dialect.name == "postgresql":
            return _autocommit(engine)
        return engine


@lru_cache(maxsize=8)
def _autocommit(engine: Engine) -> Engine:
    # Same pool; SQLAlchemy puts the connection back in its default isolation on return.
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _begin_before_write(session: Session) -> None:
    if not session.info.get(READS_AUTOCOMMIT):
        return
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    if (
        getattr(dbapi, "autocommit", False)
        and dbapi.info.transaction_status == dbapi.info.transaction_status.IDLE
    ):
        # psycopg's commit() and rollback() see the open transaction and end it.
        connection.exec_driver_sql("BEGIN")


@event.listens_for(Session, "before_flush")
def _before_flush(session, _flush_context, _instances) -> None:
    _begin_before_write(session)


@event.listens_for(Session, "do_orm_execute")
def _before_dml(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        _begin_before_write(state.session)


def ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection on checkout only when it has been idle a while; use it in
    place of `pool_pre_ping` (SQLite needs neither)."""
    if engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < IDLE_BEFORE_PING:
            return  # new, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error
        if not alive:
            raise exc.DisconnectionError("pooled connection failed its ping")
