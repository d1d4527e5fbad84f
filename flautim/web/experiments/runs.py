"""An experiment's life: creating and cloning a draft, running it (a new attempt, held to
the quotas), cancelling and deleting it.

Plain functions taking a project the caller already scoped and checked the role for
(`flautim.web.projects.access`); they return rows or raise `UserFacingError` or
`NotFound`. The pages and the JSON API both call them.
"""

from __future__ import annotations

import logging
from typing import Any

from flask_babel import gettext as _

from flautim import quotas, storage
from flautim.models import (
    Dataset,
    Experiment,
    ExperimentState,
    FailureKind,
    HyperparameterFile,
    ModelCode,
    Project,
    User,
    db,
)
from flautim.web import flautim_config
from flautim.web.projects.access import scoped
from flautim.web.stored_files import object_store
from flautim.web.uploads import UserFacingError

from .assets import AssetModel, clean_name
from .errors import NotFound

log = logging.getLogger(__name__)

CLONE_CHANGES = frozenset({"description", "dataset_id", "model_code_id", "hyperparameter_file_id"})


def list_experiments(project: Project) -> list[Experiment]:
    return list(db.session.scalars(scoped(Experiment, project).order_by(Experiment.created_at.desc(), Experiment.id.desc())))


def _asset_or_error(project: Project, model: AssetModel, asset_id: Any, field: str, label: str):
    try:
        asset_id = int(asset_id)
    except (TypeError, ValueError):
        raise UserFacingError(_("Escolha %(what)s.", what=label), field=field) from None
    asset = db.session.scalar(scoped(model, project).where(model.id == asset_id))
    if asset is None:
        raise UserFacingError(
            _("%(what)s não existe neste projeto.", what=label.capitalize()), field=field
        )
    return asset


def create_experiment(
    project: Project,
    user: User,
    *,
    name: str,
    dataset_id: Any,
    model_code_id: Any,
    hyperparameter_file_id: Any,
    description: str = "",
    cloned_from: Experiment | None = None,
) -> Experiment:
    """A new experiment in state draft (run it with `run_experiment`)."""
    name = clean_name(name, "")
    dataset = _asset_or_error(project, Dataset, dataset_id, "dataset_id", _("um dataset"))
    model_code = _asset_or_error(project, ModelCode, model_code_id, "model_code_id", _("um código do modelo"))
    hyper = _asset_or_error(
        project, HyperparameterFile, hyperparameter_file_id, "hyperparameter_file_id", _("um arquivo de hiperparâmetros")
    )
    experiment = Experiment(
        project_id=project.id,
        created_by_id=user.id,
        name=name,
        description=(description or "").strip(),
        dataset_id=dataset.id,
        model_code_id=model_code.id,
        hyperparameter_file_id=hyper.id,
        cloned_from_id=cloned_from.id if cloned_from else None,
        transport=cloned_from.transport if cloned_from else "fast",
        # What the hyperparameters ask (device="cuda"), not the original's: a clone may
        # take another hyperparameter file. The queue routes by the same rule.
        wants_gpu=quotas.run_uses_gpu(False, hyper.values),
        rounds_total=_rounds_of(hyper),
        summary={},
    )
    db.session.add(experiment)
    db.session.commit()
    return experiment


def _rounds_of(hyper: HyperparameterFile) -> int:
    values = hyper.values or {}
    for key in ("rounds", "num_rounds"):
        value = values.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def clone_experiment(
    project: Project, user: User, experiment: Experiment, *, name: str | None = None, **changes: Any
) -> Experiment:
    """A new draft with the same inputs as `experiment`, except those in `changes`
    (description, dataset_id, model_code_id, hyperparameter_file_id)."""
    _check_in_project(project, experiment)
    unknown = set(changes) - CLONE_CHANGES
    if unknown:
        raise UserFacingError(_("Campo desconhecido: %(f)s", f=", ".join(sorted(unknown))), field=sorted(unknown)[0])

    def pick(key: str):
        value = changes.get(key)
        return getattr(experiment, key) if value in (None, "") else value

    return create_experiment(
        project,
        user,
        name=name or _("%(name)s (cópia)", name=experiment.name)[:100],
        description=pick("description") or "",
        dataset_id=pick("dataset_id"),
        model_code_id=pick("model_code_id"),
        hyperparameter_file_id=pick("hyperparameter_file_id"),
        cloned_from=experiment,
    )


def _check_in_project(project: Project, experiment: Experiment) -> None:
    if experiment.project_id != project.id:
        raise NotFound(f"experiment {experiment.id} is not in project {project.id}")


def run_experiment(project: Project, user: User, experiment: Experiment) -> Experiment:
    """Queue a run (a new attempt): commit the state first, then enqueue only the id, so a
    fast worker always finds the row."""
    _check_in_project(project, experiment)
    missing = [
        label
        for label, value in (
            (_("dataset"), experiment.dataset_id),
            (_("código do modelo"), experiment.model_code_id),
            (_("hiperparâmetros"), experiment.hyperparameter_file_id),
        )
        if value is None
    ]
    if missing:
        raise UserFacingError(
            _("O experimento não tem mais: %(what)s (foi apagado).", what=", ".join(missing)),
            hint=_("Clone o experimento e escolha outro."),
        )
    if experiment.state.is_active:
        raise UserFacingError(_("O experimento já está na fila ou em execução."))
    # The attempt about to be replaced is counted first, in case no worker did.
    quotas.settle_usage([experiment.id])
    quotas.check_can_queue(project, user, experiment, flautim_config())
    experiment.transition(ExperimentState.QUEUED)
    experiment.submitted_by_id = user.id
    experiment.summary = {}
    if experiment.hyperparameter_file is not None:
        experiment.rounds_total = _rounds_of(experiment.hyperparameter_file) or experiment.rounds_total
    db.session.commit()
    try:
        from flautim.worker.queue import enqueue_experiment

        enqueue_experiment(experiment, flautim_config())
    except Exception as exc:
        log.exception("could not enqueue experiment %s", experiment.id)
        db.session.rollback()
        experiment = db.session.get(Experiment, experiment.id)
        experiment.fail(FailureKind.INFRASTRUCTURE, f"enqueue failed: {exc}")
        db.session.commit()
        raise UserFacingError(
            _("Não foi possível colocar o experimento na fila. Tente de novo em instantes."),
            hint=_("Se continuar, fale com o suporte."),
        ) from exc
    return experiment


def cancel_experiment(project: Project, experiment: Experiment) -> Experiment:
    """Cancel a queued experiment at once; ask the worker to stop a preparing/running one."""
    _check_in_project(project, experiment)
    if not experiment.state.is_active:
        raise UserFacingError(_("Só é possível cancelar um experimento na fila ou em execução."))
    experiment.cancel_requested = True
    db.session.commit()
    from flautim.worker.queue import dispatch_waiting_runs, request_cancel

    request_cancel(experiment, flautim_config())
    try:  # a run that left the queue frees its project's place: hand over the next one
        dispatch_waiting_runs(flautim_config())
    except Exception:  # the workers' maintenance will; the cancel itself is done
        log.exception("could not hand waiting experiments to the queues after a cancel")
    db.session.refresh(experiment)
    return experiment


def delete_experiment(project: Project, experiment: Experiment) -> None:
    _check_in_project(project, experiment)
    if experiment.state.is_active:
        raise UserFacingError(_("Cancele o experimento antes de apagá-lo."))
    key = storage.experiment_key(project.id, experiment.id)
    db.session.delete(experiment)
    db.session.commit()
    object_store().delete_tree(key)
