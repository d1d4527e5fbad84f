"""Uploads of a project's assets: datasets (files or one zip + dataset.py), model code and
hyperparameter files. Multipart forms; validation is `flautim.web.experiments.assets`'."""

from __future__ import annotations

from flautim import models as orm
from flautim.models import Role
from flautim.web.experiments import assets
from flautim.web.uploads import UserFacingError

from . import bp
from . import schemas as s
from .auth import api_user
from .errors import ApiError
from .operations import answer, form_fields, operation, query_args
from .scoping import scoped_project

LIST_ERRORS = (400, 401, 404)
UPLOAD_ERRORS = (400, 401, 403, 404, 409, 413, 415)


def user_error(exc: UserFacingError, status: int = 400) -> ApiError:
    """The API's form of a UserFacingError (same words as the pages)."""
    message = exc.message
    if exc.filename and exc.filename not in message:
        message = f"{message} ({exc.where()})"
    return ApiError(
        status, message, code="validation_error" if status == 400 else None,
        field=exc.field, line=exc.line, hint=exc.hint,
    )


def _list(project_id: int, row_model, answer_model):
    project = scoped_project(project_id)
    args = query_args()
    rows = assets.list_assets(project, row_model)
    items = [answer_model.model_validate(r) for r in rows[args.offset : args.offset + args.limit]]
    return answer(s.Page[answer_model](items=items, total=len(rows), limit=args.limit, offset=args.offset))


@bp.get("/projects/<int:project_id>/datasets")
@operation("Datasets do projeto", "assets", query=s.PageQuery, responses={200: s.Page[s.Dataset]},
           errors=LIST_ERRORS)
def list_datasets(project_id: int):
    return _list(project_id, orm.Dataset, s.Dataset)


@bp.get("/projects/<int:project_id>/models")
@operation("Versões do código do modelo", "assets", query=s.PageQuery, responses={200: s.Page[s.ModelCode]},
           errors=LIST_ERRORS)
def list_models(project_id: int):
    return _list(project_id, orm.ModelCode, s.ModelCode)


@bp.get("/projects/<int:project_id>/hyperparameters")
@operation("Arquivos de hiperparâmetros", "assets", query=s.PageQuery,
           responses={200: s.Page[s.HyperparameterFile]}, errors=LIST_ERRORS)
def list_hyperparameters(project_id: int):
    return _list(project_id, orm.HyperparameterFile, s.HyperparameterFile)


@bp.post("/projects/<int:project_id>/datasets")
@operation("Enviar um dataset: a classe Dataset (.py) e os dados (vários arquivos ou um .zip)", "assets",
           form=s.DatasetUpload, responses={201: s.Dataset}, errors=UPLOAD_ERRORS)
def upload_dataset(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    form = form_fields()
    try:
        row = assets.upload_dataset(project, api_user(), name=form.name, description=form.description,
                                    dataset_file=form.dataset_file, data_files=form.data_files)
    except UserFacingError as exc:
        raise user_error(exc) from None
    return answer(s.Dataset.model_validate(row), 201)


@bp.post("/projects/<int:project_id>/models")
@operation("Enviar o código da API do modelo (.py), verificado no envio", "assets",
           form=s.ModelUpload, responses={201: s.ModelCode}, errors=UPLOAD_ERRORS)
def upload_model(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    form = form_fields()
    try:
        row = assets.upload_model_code(project, api_user(), upload=form.model_file, name=form.name,
                                       description=form.description)
    except UserFacingError as exc:
        raise user_error(exc) from None
    return answer(s.ModelCode.model_validate(row), 201)


@bp.post("/projects/<int:project_id>/hyperparameters")
@operation("Enviar hiperparâmetros (.py só com literais; nunca executado)", "assets",
           form=s.HyperparametersUpload, responses={201: s.HyperparameterFile}, errors=UPLOAD_ERRORS)
def upload_hyperparameters(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    form = form_fields()
    try:
        row = assets.upload_hyperparameters(project, api_user(), upload=form.hyperparameters_file,
                                            name=form.name, description=form.description)
    except UserFacingError as exc:
        raise user_error(exc) from None
    return answer(s.HyperparameterFile.model_validate(row), 201)
