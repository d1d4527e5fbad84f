"""The one way to reach a project's objects: every lookup is scoped to a membership.

Anyone who is not a member gets 404 (never 403), so a URL does not reveal that a project
exists. A member whose role is too low for the action gets 403. An archived project is
read-only: a write (POST, PUT, PATCH, DELETE) that needs an editor gets 409 with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache, wraps
from typing import NamedTuple, TypeVar

from flask import abort, g, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Row, and_, bindparam, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import contains_eager, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from flautim.models import MAX_ID, Membership, Project, Role, User, db
from flautim.web.security import session_user_id

T = TypeVar("T")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def valid_id(value) -> bool:
    return isinstance(value, int) and 1 <= value <= MAX_ID


# The statements of the scoped lookups, built once with bound parameters: building one
# and computing its cache key cost as much as running it (every request does a lookup).
MEMBERSHIP_QUERY = (
    select(Membership)
    .join(Membership.project)  # the project in the same round trip: every request needs both
    .options(contains_eager(Membership.project))
    .where(Membership.project_id == bindparam("project_id"), Membership.user_id == bindparam("user_id"))
)


@lru_cache(maxsize=64)
def _membership_and_object_query(model: type, options: tuple):
    """MEMBERSHIP_QUERY plus `model`'s row by id in that project (None outside it). Cached
    per (model, options): pass `options` as a module-level tuple, not built per call."""
    return (
        MEMBERSHIP_QUERY.add_columns(model)
        .outerjoin(model, and_(model.id == bindparam("object_id"), model.project_id == Membership.project_id))
        .options(*options)
    )


def with_membership_and_object(statement, model: type, options: tuple = ()):
    """`statement`, which selects a User, plus that user's membership of :project_id (with
    its project) and `model`'s row :object_id in that project, each None where absent: the
    user and the scoped lookup in one round trip (the API's token, a page's session user)."""
    return _scope_joins(statement.add_columns(Membership, model), model).options(
        contains_eager(Membership.project), *options
    )


def _scope_joins(statement, model: type):
    """The joins both scoped lookups share, from a statement that selects from User: the
    user's membership of :project_id, its project, then `model` at :object_id in that
    project (each outer: None where absent)."""
    return (
        statement.outerjoin(Membership, and_(Membership.user_id == User.id, Membership.project_id == bindparam("project_id")))
        .outerjoin(Project, Project.id == Membership.project_id)
        .outerjoin(model, and_(model.id == bindparam("object_id"), model.project_id == Membership.project_id))
    )


def _outer_joined(statement, joins: tuple):
    for target, onclause in joins:
        statement = statement.outerjoin(target, onclause)
    return statement


def membership_for(project_id: int, user=None) -> Membership | None:
    user = user or current_user
    if not user or not user.is_authenticated or not valid_id(project_id):
        return None
    return db.session.scalar(MEMBERSHIP_QUERY, {"project_id": project_id, "user_id": user.id})


def project_is_writable(project: Project) -> bool:
    """False for an archived project: no uploads, runs or edits until it is unarchived."""
    return project.archived_at is None


def refuse_if_archived(project: Project) -> None:
    """Abort with 409 and a message saying why, when `project` is archived."""
    if not project_is_writable(project):
        abort(
            409,
            description=_(
                "O projeto “%(name)s” está arquivado e é somente leitura. "
                "Um dono pode desarquivá-lo em Configurações.",
                name=project.name,
            ),
        )


def get_project_or_404(
    project_id: int, needed: Role = Role.VIEWER, user=None, *, allow_archived: bool = False
) -> Project:
    """The project if the current user is a member with at least `needed`; 404 / 403 otherwise.

    A write request (POST, PUT, PATCH, DELETE) needing an editor or owner on an archived
    project gets 409 unless `allow_archived` (unarchive, delete, member management).
    Sets `g.project` and `g.membership` for templates and later lookups.
    """
    return _admit(membership_for(project_id, user), needed, allow_archived)


def _admit(membership: Membership | None, needed: Role, allow_archived: bool) -> Project:
    if membership is None:
        abort(404)
    if not membership.role.allows(needed):
        abort(403)
    project = membership.project
    if (
        not allow_archived
        and needed != Role.VIEWER
        and _is_write_request()
        and not project_is_writable(project)
    ):
        refuse_if_archived(project)
    g.project, g.membership = project, membership
    return project


def get_project_object_or_404(
    project_id: int, model: type[T], object_id: int, needed: Role = Role.VIEWER, user=None,
    options: tuple = (),
) -> tuple[Project, T]:
    """`get_project_or_404` then `project_object_or_404`, same answers (404, 403, 409, then
    404 for an object outside the project), in one round trip: the hot path of the API and
    the experiment page. `options`: loader options of `model` (e.g. `joinedload(...)`), a
    tuple made once at import (the statement is cached per options)."""
    user = user or current_user
    if not valid_id(object_id):
        get_project_or_404(project_id, needed, user)
        abort(404)
    row = None
    if user and user.is_authenticated and valid_id(project_id):
        row = db.session.execute(
            _membership_and_object_query(model, options),
            {"project_id": project_id, "user_id": user.id, "object_id": object_id},
        ).first()
    membership, obj = row if row is not None else (None, None)
    return admit_object(membership, obj, needed)


class ProjectColumns(NamedTuple):
    """The columns of a project that `_admit` and a page read, where no ORM object is built."""

    id: int
    name: str
    archived_at: datetime | None


class MembershipColumns(NamedTuple):
    """A membership as its role and its project's columns (what `_admit` reads of one)."""

    role: Role
    project: ProjectColumns


# Every column of a user, read under a prefix (a page's own columns may be named like a
# user's), then built into the User that the ORM session keeps (attach_session_user).
USER_COLUMN_KEYS = tuple(attribute.key for attribute in sa_inspect(User).column_attrs)
_USER_COLUMNS = tuple(getattr(User, key).label(f"user_{key}") for key in USER_COLUMN_KEYS)
_SCOPE_COLUMNS = (
    Membership.role.label("membership_role"),
    Project.id.label("scope_project_id"),
    Project.name.label("scope_project_name"),
    Project.archived_at.label("scope_project_archived_at"),
)


@lru_cache(maxsize=64)
def _user_membership_and_columns_query(model: type, columns: tuple, joins: tuple):
    statement = select(*_USER_COLUMNS, *_SCOPE_COLUMNS, model.id, *columns)
    return _outer_joined(_scope_joins(statement.where(User.id == bindparam("user_id")), model), joins)


def attach_session_user(row) -> User:
    """The user of a row read with `_USER_COLUMNS`, put in the ORM session as if a query had
    loaded it (SQLAlchemy's `make_transient_to_detached`, then `add`), so that Flask-Login's
    loader (security.load_user), which still decides whether the session is logged in,
    finds it by id without a statement. Where the session already holds that user, that
    one is kept, as a query's row would have given it. The session holds loaded objects
    weakly: the caller keeps the returned user until the loader has run."""
    present = db.session.identity_map.get(identity_key(User, row.user_id))
    if present is not None:
        return present
    values = row._mapping
    user = User(**{key: values[f"user_{key}"] for key in USER_COLUMN_KEYS})
    make_transient_to_detached(user)
    db.session.add(user)
    return user


def get_columns_with_session_user_or_404(
    project_id: int, model: type, object_id: int, columns: tuple, joins: tuple = ()
) -> tuple[Project | ProjectColumns, Row] | None:
    """get_project_object_or_404's answers (404, 403, 409, then 404 for an object outside the
    project) for the logged-in user, as a row of `model.id` (as `id`) and `columns` (read by
    name; label the ones whose names clash) instead of the object: a page's hot path, that shows a few of the
    object's columns and its neighbours' (`joins`: (target, onclause) pairs, outer joined
    after the object). Both tuples made once at import: the statement is cached per them.

    One Core statement reads the user, the membership's role, the project's columns and
    `columns`; no ORM object is loaded but the user (attach_session_user), so `g.project`,
    `g.membership` and the project returned are ProjectColumns and MembershipColumns. None
    when nobody is logged in: the caller sends the login page."""
    user_id = session_user_id()
    row = user = None
    if user_id is not None and valid_id(user_id) and valid_id(project_id) and valid_id(object_id):
        row = db.session.connection().execute(
            _user_membership_and_columns_query(model, columns, joins),
            {"user_id": user_id, "project_id": project_id, "object_id": object_id},
        ).first()
        if row is not None:
            user = attach_session_user(row)
    if not current_user.is_authenticated:
        return None
    if user is None or user is not current_user._get_current_object():
        # No session id (a remember-me cookie logged this request in), or another user.
        project = get_project_or_404(project_id)
        if not valid_id(object_id):
            abort(404)
        statement = select(model.id, *columns).where(model.id == object_id, model.project_id == project.id)
        found = db.session.execute(_outer_joined(statement, joins)).first()
        if found is None:
            abort(404)
        return project, found
    membership = None
    if row.membership_role is not None:
        project = ProjectColumns(row.scope_project_id, row.scope_project_name, row.scope_project_archived_at)
        membership = MembershipColumns(row.membership_role, project)
    return admit_object(membership, row if row.id is not None else None)


def admit_object(membership: Membership | None, obj: T | None, needed: Role = Role.VIEWER) -> tuple[Project, T]:
    """get_project_object_or_404's answers for a membership and object already fetched
    (None where the user is no member, or the object is not in the project): for a caller
    that fetched them with its user in one query (the API's token)."""
    project = _admit(membership, needed, allow_archived=False)
    if obj is None:
        abort(404)
    return project, obj


def _is_write_request() -> bool:
    try:
        return request.method in WRITE_METHODS
    except RuntimeError:  # outside a request (worker, shell): the caller decides
        return False


def require_role(
    needed: Role = Role.VIEWER, *, allow_archived: bool = False
) -> Callable[[Callable], Callable]:
    """Decorate a view taking `project_id`: anonymous users go to the login page, others
    through `get_project_or_404(project_id, needed)`. The view reads `g.project` and
    `g.membership`.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                from flautim.web.extensions import login_manager

                return login_manager.unauthorized()
            get_project_or_404(kwargs["project_id"], needed, allow_archived=allow_archived)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def project_object_or_404(model: type[T], object_id: int, project: Project, *options) -> T:
    """An object of `model` by id, only if it belongs to `project`. `options`: loader
    options (e.g. `joinedload(...)` of what the page shows) for the same query."""
    if not valid_id(object_id):
        abort(404)
    obj = db.session.scalar(
        select(model).where(model.id == object_id, model.project_id == project.id).options(*options)
    )
    if obj is None:
        abort(404)
    return obj


def visible_object_or_none(model: type[T], object_id: object, user=None, *options) -> T | None:
    """An object of `model` by id, only if `user` is a member (any role) of its project;
    None for anything else, a malformed id included: for references a form carries (the
    experiment a support ticket is about), where what the user cannot see must look absent."""
    if not valid_id(object_id):
        return None
    user = user or current_user
    return db.session.scalar(
        select(model)
        .join(Membership, Membership.project_id == model.project_id)
        .where(model.id == object_id, Membership.user_id == user.id)
        .options(*options)
    )


def scoped(model: type[T], project: Project):
    """A SELECT of `model` restricted to `project` (add filters and ordering to it)."""
    return select(model).where(model.project_id == project.id)


def projects_of(user=None):
    """The projects the user is a member of, newest first."""
    user = user or current_user
    return db.session.scalars(
        select(Project)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.created_at.desc())
    ).all()


def memberships_of(user=None) -> list[Membership]:
    """The user's memberships (with their projects), newest project first."""
    user = user or current_user
    return db.session.scalars(
        select(Membership)
        .join(Project, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.created_at.desc())
    ).all()
