"""The runs that ended lately in the projects a user belongs to: the in-app list beside
the run-end email (the projects page), so a finished run is found without the inbox."""

from __future__ import annotations

from sqlalchemy import select

from flautim.models import Experiment, Membership, Project, db
from flautim.models.experiments import TERMINAL_STATES

RECENT_RUNS = 10


def recent_finished_runs(user_id: int, limit: int = RECENT_RUNS) -> list:
    """Rows (experiment_id, name, state, finished_at, project_id, project_name) of the
    newest finished attempts in the user's projects, newest first. The membership is the
    scope: a project the user left drops out with its runs."""
    return db.session.execute(
        select(Experiment.id.label("experiment_id"), Experiment.name, Experiment.state, Experiment.finished_at,
               Project.id.label("project_id"), Project.name.label("project_name"))
        .join(Project, Project.id == Experiment.project_id)
        .join(Membership, (Membership.project_id == Project.id) & (Membership.user_id == user_id))
        .where(Experiment.state.in_(TERMINAL_STATES), Experiment.finished_at.is_not(None))
        .order_by(Experiment.finished_at.desc(), Experiment.id.desc())
        .limit(limit)
    ).all()
