"""Uploads of a project's assets: datasets (files or one zip + dataset.py), model code and
hyperparameter files. Multipart forms; validation is `flautim.web.experiments.assets`'."""

from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _

from flautim.models import Dataset, HyperparameterFile, ModelCode, Role
from flautim.web.experiments import assets
from flautim.web.uploads import UserFacingError

from . import bp
from . import serializers as ser
from .auth import api_user
from .errors import ApiError, field_error
from .params import page_args
from .scoping import page, scoped_project

KINDS = {
    "datasets": (Dataset, ser.dataset),
    "models": (ModelCode, ser.model_code),
    "hyperparameters": (HyperparameterFile, ser.hyperparameter_file),
}


def user_error(exc: UserFacingError, status: int = 400) -> ApiError:
    """The API's form of a UserFacingError (same words as the pages)."""
    message = exc.message
    if exc.filename and exc.filename not in message:
        message = f"{message} ({exc.where()})"
    return ApiError(
        status, message, code="validation_error" if status == 400 else None,
        field=exc.field, line=exc.line, hint=exc.hint,
    )


def _form_text(name: str, max_length: int) -> str:
    value = request.form.get(name, "")
    if len(value) > max_length:
        raise field_error(name, _("O campo %(name)s passa de %(max)s caracteres.", name=name, max=max_length))
    return value


def _require_multipart() -> None:
    if not request.mimetype.startswith("multipart/form-data"):
        raise field_error("body", _("Envie os arquivos como multipart/form-data."), status=415)


def _list(project_id: int, kind: str):
    project = scoped_project(project_id)
    model, serialize = KINDS[kind]
    limit, offset = page_args()
    rows = assets.list_assets(project, model)
    return jsonify(page([serialize(r) for r in rows[offset : offset + limit]], len(rows), limit, offset))


@bp.get("/projects/<int:project_id>/datasets")
def list_datasets(project_id: int):
    return _list(project_id, "datasets")


@bp.get("/projects/<int:project_id>/models")
def list_models(project_id: int):
    return _list(project_id, "models")


@bp.get("/projects/<int:project_id>/hyperparameters")
def list_hyperparameters(project_id: int):
    return _list(project_id, "hyperparameters")


@bp.post("/projects/<int:project_id>/datasets")
def upload_dataset(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    _require_multipart()
    try:
        row = assets.upload_dataset(
            project,
            api_user(),
            name=_form_text("name", 100),
            description=_form_text("description", 5000),
            dataset_file=request.files.get("dataset_file"),
            data_files=request.files.getlist("data_files"),
        )
    except UserFacingError as exc:
        raise user_error(exc) from None
    return jsonify(ser.dataset(row)), 201


@bp.post("/projects/<int:project_id>/models")
def upload_model(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    _require_multipart()
    try:
        row = assets.upload_model_code(
            project,
            api_user(),
            upload=request.files.get("model_file"),
            name=_form_text("name", 100),
            description=_form_text("description", 5000),
        )
    except UserFacingError as exc:
        raise user_error(exc) from None
    return jsonify(ser.model_code(row)), 201


@bp.post("/projects/<int:project_id>/hyperparameters")
def upload_hyperparameters(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    _require_multipart()
    try:
        row = assets.upload_hyperparameters(
            project,
            api_user(),
            upload=request.files.get("hyperparameters_file"),
            name=_form_text("name", 100),
            description=_form_text("description", 5000),
        )
    except UserFacingError as exc:
        raise user_error(exc) from None
    return jsonify(ser.hyperparameter_file(row)), 201
