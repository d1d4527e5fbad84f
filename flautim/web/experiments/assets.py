"""A project's assets: uploading (checked, then stored and counted against the storage
quota), reading back and deleting datasets, model code and hyperparameter files.

Plain functions taking a project the caller already scoped and checked the role for
(`flautim.web.projects.access`: the pages' `require_role`, the API's `scoped_project`);
they return rows or raise `UserFacingError` (message, field, line, hint) or `NotFound`.
The pages and the JSON API both call them, so both enforce the same rules.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask_babel import gettext as _

from flautim import quotas, storage
from flautim.models import (
    Dataset,
    Experiment,
    ExperimentState,
    HyperparameterFile,
    ModelCode,
    Project,
    User,
    db,
)
from flautim.web import flautim_config
from flautim.web.projects.access import scoped
from flautim.web.stored_files import object_store
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
from flautim.web.uploads.sources import PythonSource

from .errors import NotFound
from .runtime_checks import check_api_source, check_dataset_source, check_hyperparameters

log = logging.getLogger(__name__)

Asset = Dataset | ModelCode | HyperparameterFile
AssetModel = type[Dataset] | type[ModelCode] | type[HyperparameterFile]
ASSET_FILES = {Dataset: "dataset.py", ModelCode: "api.py", HyperparameterFile: "hyperparameters.py"}
# The experiment column that points at each kind of asset.
_ASSET_FK = {
    Dataset: Experiment.dataset_id,
    ModelCode: Experiment.model_code_id,
    HyperparameterFile: Experiment.hyperparameter_file_id,
}


def _data_dir() -> Path:
    return flautim_config().data_path


def _limits() -> UploadLimits:
    return UploadLimits.from_config(flautim_config())


def clean_name(name: str | None, fallback: str, field: str = "name") -> str:
    """The name given (or `fallback`), stripped; a UserFacingError when empty or too long."""
    name = (name or "").strip() or fallback.strip()
    if not name:
        raise UserFacingError(_("Informe um nome."), field=field)
    if len(name) > 100:
        raise UserFacingError(_("O nome pode ter no máximo 100 caracteres."), field=field)
    return name


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
    name = clean_name(name, basename(getattr(dataset_file, "filename", "") or "").removesuffix(".py"))
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
        _store(staging, dataset, lambda: storage.dataset_key(project.id, dataset.id))
    _enqueue_inspection(dataset)
    return dataset


def upload_model_code(
    project: Project, user: User, *, upload: Upload | None, name: str | None = None, description: str = ""
) -> ModelCode:
    """Store a version of the model's API code after the runtime's static checks. Uploading
    the same content again returns the version already stored (versions are content hashes)."""
    source = _read_source(upload, "model_file")
    check_api_source(source.text, source.filename)
    return _store_source_version(
        project, user, ModelCode, source, name, description, storage.model_code_key
    )


def upload_hyperparameters(
    project: Project, user: User, *, upload: Upload | None, name: str | None = None, description: str = ""
) -> HyperparameterFile:
    """Store a hyperparameter file: literals only, parsed and never executed."""
    source = _read_source(upload, "hyperparameters_file")
    values = check_hyperparameters(source.text, source.filename)
    return _store_source_version(
        project, user, HyperparameterFile, source, name, description, storage.hyperparameters_key,
        values=values,
    )


def store_derived_hyperparameters(
    project: Project, user: User, *, text: str, filename: str, name: str, description: str = ""
) -> HyperparameterFile:
    """Store a hyperparameter file the platform wrote (e.g. a centralized baseline's), checked
    like an upload; the same text again returns the version already stored."""
    source = PythonSource(filename=filename, text=text, data=text.encode("utf-8"))
    values = check_hyperparameters(source.text, source.filename)
    return _store_source_version(
        project, user, HyperparameterFile, source, name, description, storage.hyperparameters_key,
        values=values,
    )


def _store_source_version(project, user, model, source, name, description, key_for, **fields):
    """The stored row for a checked `.py` upload: the existing version when the content hash
    is already in the project, else a new row with its file moved into place."""
    existing = db.session.scalar(scoped(model, project).where(model.content_hash == source.sha256))
    if existing is not None:
        return existing
    row = model(
        project_id=project.id,
        created_by_id=user.id,
        name=clean_name(name, source.filename.removesuffix(".py")),
        description=(description or "").strip(),
        filename=source.filename,
        storage_path="",
        content_hash=source.sha256,
        size_bytes=len(source.data),
        **fields,
    )
    with Staging(_data_dir()) as staging:
        (staging.path / ASSET_FILES[model]).write_bytes(source.data)
        _store(staging, row, lambda: key_for(project.id, row.id))
    return row


def _read_source(upload: Upload | None, field: str):
    if upload is None or not upload.filename:
        raise UserFacingError(_("Escolha um arquivo .py."), field=field)
    filename = basename(upload.filename)
    limit = _limits().max_source_bytes
    data = read_limited(upload.stream, limit, filename, field)
    return read_python_upload(data, filename, field, limit)


def _store(staging: Staging, row, key_for) -> None:
    """Insert `row`, put the staged folder in the object store under its id-based key,
    commit; undo on failure."""
    quotas.check_can_store(
        db.session.get(Project, row.project_id), db.session.get(User, row.created_by_id), row.size_bytes,
        flautim_config(),
    )
    db.session.add(row)
    key: str | None = None
    try:
        db.session.flush()
        key = row.storage_path = key_for()
        object_store().put_tree(key, staging.path)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        if key is not None:
            object_store().delete_tree(key)
        raise


def asset_file_key(asset: Asset) -> str:
    """The stored `.py` of an asset (the Dataset class for a dataset)."""
    return f"{asset.storage_path}/{ASSET_FILES[type(asset)]}"


def asset_source(asset: Asset) -> str:
    return object_store().read_bytes(asset_file_key(asset)).decode("utf-8")


def dataset_files(dataset: Dataset, limit: int = 500) -> list[tuple[str, int]]:
    """The dataset's data files (relative path, size), at most `limit` of them."""
    return [(f.name, f.size) for f in object_store().list(f"{dataset.storage_path}/data", limit)]


def delete_asset(project: Project, asset: Asset) -> None:
    """Delete an asset and its files. Refused while a queued or running experiment uses it;
    finished experiments keep their results and lose only the link."""
    if asset.project_id != project.id:
        raise NotFound(f"{type(asset).__name__} {asset.id} is not in project {project.id}")
    active = [s.value for s in ExperimentState if s.is_active]
    busy = db.session.scalar(
        scoped(Experiment, project).where(_ASSET_FK[type(asset)] == asset.id, Experiment.state.in_(active))
    )
    if busy is not None:
        raise UserFacingError(
            _("“%(name)s” está em uso pelo experimento em andamento “%(exp)s”.", name=asset.name, exp=busy.name),
            hint=_("Cancele o experimento ou espere ele terminar."),
        )
    key = asset.storage_path
    db.session.delete(asset)
    db.session.commit()
    object_store().delete_tree(key)


def reinspect_dataset(project: Project, dataset: Dataset) -> Dataset:
    if dataset.project_id != project.id:
        raise NotFound(f"dataset {dataset.id} is not in project {project.id}")
    dataset.inspection_status, dataset.inspection = "pending", {}
    db.session.commit()
    _enqueue_inspection(dataset)
    return dataset


def _enqueue_inspection(dataset: Dataset) -> None:
    """Queue the dataset's inspection (after the commit); if the queue is away, the dataset
    says so and the page offers a retry."""
    try:
        from flautim.worker.queue import enqueue_dataset_inspection

        enqueue_dataset_inspection(dataset, flautim_config())
    except Exception as exc:
        log.exception("could not queue the inspection of dataset %s", dataset.id)
        dataset.inspection_status = "error"
        dataset.inspection = {"what": _("A inspeção não pôde ser iniciada."), "where": "", "hint": str(exc)[:500]}
        db.session.commit()
