"""The experiment service layer: storing and validating uploads, creating, cloning, running
and cancelling experiments, reading their metrics, logs and artifacts.

Plain functions taking a project (already scoped by `flautim.web.projects.access`) and the
acting user; they return rows or raise `UserFacingError` (message, field, line, hint). The
pages in `routes.py` and the JSON API both call them, so both enforce the same rules.
Permission is re-checked here (`check_member_role`) so a caller cannot forget it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from flask import abort
from flask_babel import gettext as _
from sqlalchemy import bindparam, func, select

from flautim import quotas, storage
from flautim.models import (
    Dataset,
    Experiment,
    ExperimentEvent,
    ExperimentState,
    FailureKind,
    HyperparameterFile,
    LogRecord,
    Membership,
    MetricRow,
    ModelArtifact,
    ModelCode,
    Project,
    Role,
    User,
    db,
)
from flautim.web import flautim_config
from flautim.web.projects.access import refuse_if_archived, scoped
from flautim.web.uploads import (
    Staging,
    Upload,
    UploadLimits,
    UserFacingError,
    read_limited,
    read_python_upload,
    stage_dataset,
)
from flautim.web.uploads.names import basename

from .runtime_checks import check_api_source, check_dataset_source, check_hyperparameters

log = logging.getLogger(__name__)

AssetModel = type[Dataset] | type[ModelCode] | type[HyperparameterFile]
ASSET_FILES = {Dataset: "dataset.py", ModelCode: "api.py", HyperparameterFile: "hyperparameters.py"}

__all__ = [
    "UserFacingError",
    "asset_file_path",
    "asset_source",
    "artifact_file",
    "cancel_experiment",
    "clone_experiment",
    "create_experiment",
    "delete_asset",
    "delete_experiment",
    "experiment_artifacts",
    "experiment_events",
    "experiment_logs",
    "experiment_metrics",
    "metrics_version",
    "list_assets",
    "list_experiments",
    "log_sources",
    "check_member_role",
    "run_experiment",
    "upload_dataset",
    "upload_hyperparameters",
    "upload_model_code",
]


# --- permission ---------------------------------------------------------------------------

def check_member_role(project: Project, user: User, needed: Role) -> Membership:
    """The user's membership of `project` if its role allows `needed`; 404 / 403 otherwise."""
    membership = db.session.scalar(
        select(Membership).where(Membership.project_id == project.id, Membership.user_id == user.id)
    )
    if membership is None:
        abort(404)
    if not membership.role.allows(needed):
        abort(403)
    if needed != Role.VIEWER:
        # Archived projects are read-only, whichever page or API route asks.
        refuse_if_archived(project)
    return membership


def _config():
    return flautim_config()


def _limits() -> UploadLimits:
    return UploadLimits.from_config(_config())


def _data_dir() -> Path:
    return _config().data_path


def _clean_name(name: str | None, fallback: str, field: str = "name") -> str:
    name = (name or "").strip() or fallback.strip()
    if not name:
        raise UserFacingError(_("Informe um nome."), field=field)
    if len(name) > 100:
        raise UserFacingError(_("O nome pode ter no máximo 100 caracteres."), field=field)
    return name


# --- assets -------------------------------------------------------------------------------

def list_assets(project: Project, model: AssetModel) -> list:
    return list(db.session.scalars(scoped(model, project).order_by(model.created_at.desc(), model.id.desc())))


def upload_dataset(
    project: Project,
    user: User,
    *,
    name: str,
    dataset_file: Upload | None,
    data_files: list[Upload] | None = None,
    description: str = "",
) -> Dataset:
    """Store a Dataset class plus its data (several files or one zip), then queue its
    sandboxed inspection. Nothing is stored if any check fails."""
    check_member_role(project, user, Role.EDITOR)
    name = _clean_name(name, basename(getattr(dataset_file, "filename", "") or "").removesuffix(".py"))
    with Staging(_data_dir()) as staging:
        staged = stage_dataset(staging.path, dataset_file, list(data_files or []), _limits())
        check_dataset_source(staged.source.text, staged.source.filename)
        dataset = Dataset(
            project_id=project.id,
            created_by_id=user.id,
            name=name,
            description=(description or "").strip(),
            storage_path="",
            content_hash=staged.content_hash,
            size_bytes=staged.size_bytes,
            file_count=len(staged.files),
            inspection_status="pending",
            inspection={},
        )
        _store(staging, dataset, lambda: storage.dataset_dir(_data_dir(), project.id, dataset.id))
    _after_commit_enqueue("enqueue_dataset_inspection", dataset)
    return dataset


def upload_model_code(
    project: Project, user: User, *, upload: Upload | None, name: str | None = None, description: str = ""
) -> ModelCode:
    """Store a version of the model's API code after the runtime's static checks. Uploading
    the same content again returns the version already stored (versions are content hashes)."""
    check_member_role(project, user, Role.EDITOR)
    source = _read_source(upload, "model_file")
    check_api_source(source.text, source.filename)
    return _store_source_version(
        project, user, ModelCode, source, name, description, storage.model_code_dir
    )


def upload_hyperparameters(
    project: Project, user: User, *, upload: Upload | None, name: str | None = None, description: str = ""
) -> HyperparameterFile:
    """Store a hyperparameter file: literals only, parsed and never executed."""
    check_member_role(project, user, Role.EDITOR)
    source = _read_source(upload, "hyperparameters_file")
    values = check_hyperparameters(source.text, source.filename)
    return _store_source_version(
        project, user, HyperparameterFile, source, name, description, storage.hyperparameters_dir,
        values=values,
    )


def _store_source_version(project, user, model, source, name, description, dir_for, **fields):
    """The stored row for a checked `.py` upload: the existing version when the content hash
    is already in the project, else a new row with its file moved into place."""
    existing = db.session.scalar(scoped(model, project).where(model.content_hash == source.sha256))
    if existing is not None:
        return existing
    row = model(
        project_id=project.id,
        created_by_id=user.id,
        name=_clean_name(name, source.filename.removesuffix(".py")),
        description=(description or "").strip(),
        filename=source.filename,
        storage_path="",
        content_hash=source.sha256,
        size_bytes=len(source.data),
        **fields,
    )
    with Staging(_data_dir()) as staging:
        (staging.path / ASSET_FILES[model]).write_bytes(source.data)
        _store(staging, row, lambda: dir_for(_data_dir(), project.id, row.id))
    return row


def _read_source(upload: Upload | None, field: str):
    if upload is None or not upload.filename:
        raise UserFacingError(_("Escolha um arquivo .py."), field=field)
    filename = basename(upload.filename)
    limit = _limits().max_source_bytes
    data = read_limited(upload.stream, limit, filename, field)
    return read_python_upload(data, filename, field, limit)


def _store(staging: Staging, row, target_for) -> None:
    """Insert `row`, move the staged folder to its id-based place, commit; undo on failure."""
    quotas.check_can_store(
        db.session.get(Project, row.project_id), db.session.get(User, row.created_by_id), row.size_bytes, _config()
    )
    db.session.add(row)
    target: Path | None = None
    try:
        db.session.flush()
        target = target_for()
        row.storage_path = storage.relative(_data_dir(), _ensure_parent(target))
        staging.move_to(target)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        if target is not None and staging._moved:
            shutil.rmtree(target, ignore_errors=True)
        raise


def _ensure_parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def asset_file_path(asset: Dataset | ModelCode | HyperparameterFile) -> Path:
    """The stored `.py` of an asset (the Dataset class for a dataset)."""
    return storage.absolute(_data_dir(), asset.storage_path) / ASSET_FILES[type(asset)]


def asset_source(asset: Dataset | ModelCode | HyperparameterFile) -> str:
    return asset_file_path(asset).read_text(encoding="utf-8")


def dataset_files(dataset: Dataset, limit: int = 500) -> list[tuple[str, int]]:
    """The dataset's data files (relative path, size), at most `limit` of them."""
    root = storage.absolute(_data_dir(), dataset.storage_path) / "data"
    out: list[tuple[str, int]] = []
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                out.append((path.relative_to(root).as_posix(), path.stat().st_size))
                if len(out) >= limit:
                    break
    return out


_ASSET_FK = {
    Dataset: Experiment.dataset_id,
    ModelCode: Experiment.model_code_id,
    HyperparameterFile: Experiment.hyperparameter_file_id,
}


def delete_asset(project: Project, user: User, asset: Dataset | ModelCode | HyperparameterFile) -> None:
    """Delete an asset and its files. Refused while a queued or running experiment uses it;
    finished experiments keep their results and lose only the link."""
    check_member_role(project, user, Role.EDITOR)
    if asset.project_id != project.id:
        abort(404)
    active = [s.value for s in ExperimentState if s.is_active]
    busy = db.session.scalar(
        scoped(Experiment, project).where(_ASSET_FK[type(asset)] == asset.id, Experiment.state.in_(active))
    )
    if busy is not None:
        raise UserFacingError(
            _("“%(name)s” está em uso pelo experimento em andamento “%(exp)s”.", name=asset.name, exp=busy.name),
            hint=_("Cancele o experimento ou espere ele terminar."),
        )
    folder = storage.absolute(_data_dir(), asset.storage_path)
    db.session.delete(asset)
    db.session.commit()
    shutil.rmtree(folder, ignore_errors=True)


# --- experiments --------------------------------------------------------------------------

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
    check_member_role(project, user, Role.EDITOR)
    name = _clean_name(name, "")
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
        wants_gpu=cloned_from.wants_gpu if cloned_from else False,
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
    _check_owned(project, experiment)
    allowed = {"description", "dataset_id", "model_code_id", "hyperparameter_file_id"}
    unknown = set(changes) - allowed
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


def _check_owned(project: Project, obj) -> None:
    if obj.project_id != project.id:
        abort(404)


def run_experiment(project: Project, user: User, experiment: Experiment) -> Experiment:
    """Queue a run (a new attempt): commit the state first, then enqueue only the id, so a
    fast worker always finds the row."""
    check_member_role(project, user, Role.EDITOR)
    _check_owned(project, experiment)
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
    quotas.check_can_queue(project, user, experiment, _config())
    experiment.transition(ExperimentState.QUEUED)
    experiment.submitted_by_id = user.id
    experiment.summary = {}
    if experiment.hyperparameter_file is not None:
        experiment.rounds_total = _rounds_of(experiment.hyperparameter_file) or experiment.rounds_total
    db.session.commit()
    try:
        from flautim.worker.queue import enqueue_experiment

        enqueue_experiment(experiment)
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


def cancel_experiment(project: Project, user: User, experiment: Experiment) -> Experiment:
    """Cancel a queued experiment at once; ask the worker to stop a preparing/running one."""
    check_member_role(project, user, Role.EDITOR)
    _check_owned(project, experiment)
    if not experiment.state.is_active:
        raise UserFacingError(_("Só é possível cancelar um experimento na fila ou em execução."))
    experiment.cancel_requested = True
    db.session.commit()
    from flautim.worker.queue import dispatch_waiting_runs, request_cancel

    request_cancel(experiment)
    try:  # a run that left the queue frees its project's place: hand over the next one
        dispatch_waiting_runs()
    except Exception:  # the workers' maintenance will; the cancel itself is done
        log.exception("could not hand waiting experiments to the queues after a cancel")
    db.session.refresh(experiment)
    return experiment


def delete_experiment(project: Project, user: User, experiment: Experiment) -> None:
    check_member_role(project, user, Role.EDITOR)
    _check_owned(project, experiment)
    if experiment.state.is_active:
        raise UserFacingError(_("Cancele o experimento antes de apagá-lo."))
    folder = storage.experiment_dir(_data_dir(), project.id, experiment.id)
    db.session.delete(experiment)
    db.session.commit()
    shutil.rmtree(folder, ignore_errors=True)


def _after_commit_enqueue(function_name: str, row) -> None:
    try:
        from flautim.worker import queue

        getattr(queue, function_name)(row)
    except Exception as exc:  # the row stays "pending"; the page says so and offers a retry
        log.exception("could not %s for %s %s", function_name, type(row).__name__, row.id)
        if isinstance(row, Dataset):
            row.inspection_status = "error"
            row.inspection = {"what": _("A inspeção não pôde ser iniciada."), "where": "", "hint": str(exc)[:500]}
            db.session.commit()


def reinspect_dataset(project: Project, user: User, dataset: Dataset) -> Dataset:
    check_member_role(project, user, Role.EDITOR)
    _check_owned(project, dataset)
    dataset.inspection_status, dataset.inspection = "pending", {}
    db.session.commit()
    _after_commit_enqueue("enqueue_dataset_inspection", dataset)
    return dataset


# --- results ------------------------------------------------------------------------------

def _attempt(experiment: Experiment, attempt: int | None) -> int:
    return experiment.attempt if attempt is None else attempt


def experiment_metrics(experiment: Experiment, attempt: int | None = None) -> list[MetricRow]:
    return list(
        db.session.scalars(
            select(MetricRow)
            .where(MetricRow.experiment_id == experiment.id, MetricRow.attempt == _attempt(experiment, attempt))
            .order_by(MetricRow.round, MetricRow.id)
        )
    )


def metrics_version(experiment: Experiment, attempt: int | None = None) -> int:
    """The newest metric row's id of an attempt (0 when none): changes whenever the worker
    stores metrics, so it keys cached metric responses. One probe of ix_metric_rows_exp_id.
    One ingestor writes an attempt's rows, committing batches in id order, so a row with a
    lower id never appears after a higher one was seen. The current attempt's is kept on
    the experiment by the worker (`Experiment.metrics_version`), which saves the probe."""
    attempt = _attempt(experiment, attempt)
    if attempt == experiment.attempt and experiment.metrics_version is not None:
        return experiment.metrics_version
    newest = db.session.scalar(NEWEST_METRIC, {"experiment_id": experiment.id, "attempt": attempt})
    return int(newest or 0)


# Built once: it runs on every metrics request (see flautim.web.projects.access).
NEWEST_METRIC = select(func.max(MetricRow.id)).where(
    MetricRow.experiment_id == bindparam("experiment_id"), MetricRow.attempt == bindparam("attempt")
)


def experiment_events(
    experiment: Experiment, attempt: int | None = None, after_id: int = 0, limit: int | None = None
) -> list[ExperimentEvent]:
    query = (
        select(ExperimentEvent)
        .where(
            ExperimentEvent.experiment_id == experiment.id,
            ExperimentEvent.attempt == _attempt(experiment, attempt),
            ExperimentEvent.id > after_id,
        )
        .order_by(ExperimentEvent.id)
    )
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))


LOG_COLUMNS = (LogRecord.id, LogRecord.attempt, LogRecord.source, LogRecord.stream, LogRecord.line,
               LogRecord.created_at)


def experiment_logs(
    experiment: Experiment,
    *,
    attempt: int | None = None,
    after_id: int = 0,
    source: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    tail: bool = False,
) -> list[tuple]:
    """Log lines in id order; `tail=True` with `limit` gives the last `limit` lines.

    Plain tuples of LOG_COLUMNS (id, attempt, source, stream, line, created_at), not ORM
    objects or Rows: building an object per line was most of a 1,000-line catch-up's time.
    Keyset paging on the id (`after_id`), never an offset or a count."""
    query = select(*LOG_COLUMNS).where(
        LogRecord.experiment_id == experiment.id,
        LogRecord.attempt == _attempt(experiment, attempt),
        LogRecord.id > after_id,
    )
    if source:
        query = query.where(LogRecord.source == source)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(LogRecord.line.ilike(f"%{escaped}%", escape="\\"))
    if tail and limit:
        return _plain_rows(query.order_by(LogRecord.id.desc()).limit(limit))[::-1]
    query = query.order_by(LogRecord.id)
    if limit:
        query = query.limit(limit)
    return _plain_rows(query)


def _plain_rows(query) -> list[tuple]:
    """The query's rows as tuples, on the session's connection, past the ORM's result layer."""
    connection = db.session.connection()
    result = connection.execute(query)
    if connection.dialect.name == "postgresql":
        # psycopg already returns every column as Python wants it (timestamptz as an
        # aware datetime): SQLAlchemy's per-value processing and Row objects would only
        # double the time of a 1,000-line page.
        with result:
            return result.cursor.fetchall()
    return [tuple(row) for row in result]  # SQLite: UTCDateTime adds the zone it drops


def log_sources(experiment: Experiment, attempt: int | None = None) -> list[str]:
    """The distinct sources of an attempt's log lines, "server" first, clients in order.

    The current attempt's come from `experiment.log_sources`, which the worker keeps as it
    stores lines. Otherwise (an older attempt, or lines the worker did not write): a skip
    scan on ix_log_records_exp_source, one index probe per source (a dozen), where a
    GROUP BY read every line (30 ms for 100,000 lines)."""
    if _attempt(experiment, attempt) == experiment.attempt and experiment.log_sources is not None:
        return _source_order(experiment.log_sources)
    lines = select(LogRecord.source).where(
        LogRecord.experiment_id == experiment.id, LogRecord.attempt == _attempt(experiment, attempt)
    )
    found = select(func.min(LogRecord.source).label("source")).where(
        LogRecord.experiment_id == experiment.id, LogRecord.attempt == _attempt(experiment, attempt)
    ).cte("found", recursive=True)
    following = (
        lines.where(LogRecord.source > found.c.source)
        .order_by(LogRecord.source)
        .limit(1)
        .scalar_subquery()
    )
    found = found.union_all(select(following).where(found.c.source.is_not(None)))
    rows = db.session.scalars(select(found.c.source).where(found.c.source.is_not(None)))
    return _source_order(rows)


def _source_order(sources) -> list[str]:
    return sorted(set(sources), key=lambda s: (s.startswith("client-"), len(s), s))


def last_ids(experiment: Experiment) -> tuple[int, int]:
    """The newest log and event ids of the experiment (any attempt)."""
    log_id = db.session.scalar(select(func.max(LogRecord.id)).where(LogRecord.experiment_id == experiment.id))
    event_id = db.session.scalar(
        select(func.max(ExperimentEvent.id)).where(ExperimentEvent.experiment_id == experiment.id)
    )
    return int(log_id or 0), int(event_id or 0)


def experiment_artifacts(experiment: Experiment, attempt: int | None = None) -> list[ModelArtifact]:
    return list(
        db.session.scalars(
            select(ModelArtifact)
            .where(
                ModelArtifact.experiment_id == experiment.id,
                ModelArtifact.attempt == _attempt(experiment, attempt),
            )
            .order_by(ModelArtifact.round, ModelArtifact.kind, ModelArtifact.format)
        )
    )


def artifact_or_404(project: Project, artifact_id: int) -> ModelArtifact:
    """A model artifact by id, only if its experiment belongs to `project`."""
    artifact = db.session.scalar(
        select(ModelArtifact)
        .join(Experiment, Experiment.id == ModelArtifact.experiment_id)
        .where(ModelArtifact.id == artifact_id, Experiment.project_id == project.id)
    )
    if artifact is None:
        abort(404)
    return artifact


def artifact_file(project: Project, artifact: ModelArtifact) -> Path:
    if artifact.experiment.project_id != project.id:
        abort(404)
    path = storage.absolute(_data_dir(), artifact.storage_path)
    if not path.is_file():
        abort(404)
    return path
