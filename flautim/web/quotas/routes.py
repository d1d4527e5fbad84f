"""The project's "Uso e limites" page."""

from __future__ import annotations

from flask import g, render_template
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from flautim import quotas
from flautim.models import Experiment, ExperimentState, HyperparameterFile, User, db
from flautim.web import flautim_config
from flautim.web.projects.access import require_role, scoped

from . import bp


@bp.get("/<int:project_id>/usage")
@require_role()
def project_usage(project_id: int):
    config = flautim_config()
    project = g.project
    columns = [
        (_("Projeto"), _lines(quotas.PROJECT, project.id, config)),
        (_("Você (em todos os projetos)"), _lines(quotas.USER, current_user.id, config)),
    ]
    return render_template(
        "quotas/usage.html", project=project, membership=g.membership, active="usage",
        columns=columns, queued=_queued_runs(project, config),
    )


def _lines(scope: str, subject_id: int, config) -> list[quotas.UsageLine]:
    return quotas.usage_lines(quotas.limits_for(scope, subject_id, config), quotas.usage_for(scope, subject_id))


def _queued_runs(project, config) -> list[tuple[Experiment, str]]:
    """The project's queued runs, oldest first, each with where it stands."""
    rows = db.session.execute(
        scoped(Experiment, project)
        .add_columns(quotas.submitter(), HyperparameterFile.values)
        .outerjoin(HyperparameterFile, HyperparameterFile.id == Experiment.hyperparameter_file_id)
        .where(Experiment.state == ExperimentState.QUEUED)
        .order_by(Experiment.queued_at, Experiment.id)
    ).all()
    user_ids = {user_id for _e, user_id, _v in rows}
    admission = quotas.Admission.load(config, [project.id], user_ids)
    names = dict(db.session.execute(select(User.id, User.name).where(User.id.in_(user_ids))).all())
    out = []
    for experiment, user_id, values in rows:
        if experiment.job_id is not None:
            status = _("Entregue aos workers: começa quando um estiver livre.")
        else:
            hold = admission.hold(project.id, user_id, quotas.run_uses_gpu(experiment.wants_gpu, values))
            name = None if user_id == current_user.id else names.get(user_id)
            status = hold.message(project, name) if hold else _(
                "Aguardando a vez: os workers recebem os experimentos de um projeto de cada vez, "
                "alternando entre os projetos."
            )
        out.append((experiment, status))
    return out
