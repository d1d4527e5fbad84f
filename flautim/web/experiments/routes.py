"""Pages of a project's experiments and assets. Thin: every rule lives in `assets.py`,
`runs.py` and `results.py` (shared with the JSON API); every lookup is scoped through
`flautim.web.projects.access`, which also checks the role each page needs.
"""

from __future__ import annotations

import io

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from flautim import headline, redis_connection
from flautim.models import Dataset, Experiment, HyperparameterFile, ModelCode, Role, db
from flautim.models.experiments import run_duration_s
from flautim.web import flautim_config
from flautim.web.extensions import login_manager
from flautim.web.projects.access import (
    get_columns_with_session_user_or_404,
    project_object_or_404,
    require_role,
    scoped,
)
from flautim.web.response_cache import cached_fragment
from flautim.web.stored_files import send_stored
from flautim.web.uploads import UserFacingError

from . import assets as asset_service
from . import baseline, bp, client_curves, live, log_picker, run_messages, runs
from .diagnoses import experiment_diagnoses
from .display import artifact_download_name, can_edit_project, js_labels, state_label
from .forms import ConfirmForm, DatasetUploadForm, ExperimentForm, SourceUploadForm
from .results import (
    artifact_in_experiment,
    compare_rows,
    curve_max_points,
    curves_of,
    experiment_artifacts,
    experiment_logs,
    hyperparameter_values,
    log_sources,
)

# URL slug -> (model, template folder word, page title)
ASSETS = {
    "datasets": Dataset,
    "model-code": ModelCode,
    "hyperparameters": HyperparameterFile,
}


def _asset_titles() -> dict[str, str]:
    return {
        "datasets": _("Datasets"),
        "model-code": _("Códigos da API do modelo"),
        "hyperparameters": _("Arquivos de hiperparâmetros"),
    }


def _flash_error(error: UserFacingError) -> None:
    where = error.where()
    text = f"{error.message} — {where}" if where else error.message
    if error.hint:
        text += f" ({error.hint})"
    flash(text, "error")


# --- assets -------------------------------------------------------------------------------

def _asset_model(kind: str):
    model = ASSETS.get(kind)
    if model is None:
        abort(404)
    return model


def _upload_form(kind: str):
    return DatasetUploadForm() if kind == "datasets" else SourceUploadForm()


def _render_assets(project_id: int, kind: str, form=None, error: UserFacingError | None = None, status=200):
    model = _asset_model(kind)
    return (
        render_template(
            "experiments/assets.html",
            project=g.project,
            membership=g.membership,
            kind=kind,
            title=_asset_titles()[kind],
            assets=asset_service.list_assets(g.project, model),
            form=form or _upload_form(kind),
            upload_error=error,
            delete_form=ConfirmForm(),
        ),
        status,
    )


@bp.get("/<int:project_id>/<any(datasets, 'model-code', hyperparameters):kind>")
@require_role(Role.VIEWER)
def assets(project_id: int, kind: str):
    return _render_assets(project_id, kind)


@bp.post("/<int:project_id>/<any(datasets, 'model-code', hyperparameters):kind>")
@require_role(Role.EDITOR)
def upload_asset(project_id: int, kind: str):
    form = _upload_form(kind)
    if not form.validate_on_submit():
        return _render_assets(project_id, kind, form=form, status=400)
    try:
        if kind == "datasets":
            asset = asset_service.upload_dataset(
                g.project,
                current_user,
                name=form.name.data,
                description=form.description.data,
                dataset_file=request.files.get("dataset_file"),
                data_files=request.files.getlist("data_files"),
            )
        elif kind == "model-code":
            asset = asset_service.upload_model_code(
                g.project, current_user, upload=request.files.get("file"), name=form.name.data
            )
        else:
            asset = asset_service.upload_hyperparameters(
                g.project, current_user, upload=request.files.get("file"), name=form.name.data
            )
    except UserFacingError as error:
        return _render_assets(project_id, kind, form=form, error=error, status=400)
    flash(_("“%(name)s” enviado.", name=asset.name), "success")
    return redirect(url_for(".asset", project_id=project_id, kind=kind, asset_id=asset.id))


@bp.get("/<int:project_id>/<any(datasets, 'model-code', hyperparameters):kind>/<int:asset_id>")
@require_role(Role.VIEWER)
def asset(project_id: int, kind: str, asset_id: int):
    row = project_object_or_404(_asset_model(kind), asset_id, g.project)
    source = asset_service.asset_source(row)
    return render_template(
        "experiments/asset.html",
        project=g.project,
        membership=g.membership,
        kind=kind,
        title=_asset_titles()[kind],
        asset=row,
        lines=source.splitlines(),
        files=asset_service.dataset_files(row) if kind == "datasets" else [],
        delete_form=ConfirmForm(),
    )


@bp.get("/<int:project_id>/<any(datasets, 'model-code', hyperparameters):kind>/<int:asset_id>/download")
@require_role(Role.VIEWER)
def download_asset(project_id: int, kind: str, asset_id: int):
    row = project_object_or_404(_asset_model(kind), asset_id, g.project)
    key = asset_service.asset_file_key(row)
    return send_stored(key, mimetype="text/x-python", as_attachment=True, download_name=_download_name(row, key))


def _download_name(row, key: str) -> str:
    """The name a source was uploaded under, fit for a header: a multipart file name may
    say `filename*=UTF-8''a%0D%0A.py` and be stored holding CR/LF. Accents stay (send_file
    gives non-ASCII names as RFC 6266's filename*); control characters, quotes and
    slashes become "_"."""
    fallback = key.rsplit("/", 1)[-1]
    name = getattr(row, "filename", None) or fallback
    cleaned = "".join(c if c.isprintable() and c not in '"/\\' else "_" for c in name).strip()
    return cleaned[:200] or fallback


@bp.post("/<int:project_id>/<any(datasets, 'model-code', hyperparameters):kind>/<int:asset_id>/delete")
@require_role(Role.EDITOR)
def delete_asset(project_id: int, kind: str, asset_id: int):
    row = project_object_or_404(_asset_model(kind), asset_id, g.project)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        asset_service.delete_asset(g.project, row)
    except UserFacingError as error:
        _flash_error(error)
        return redirect(url_for(".asset", project_id=project_id, kind=kind, asset_id=asset_id))
    flash(_("Apagado."), "success")
    return redirect(url_for(".assets", project_id=project_id, kind=kind))


@bp.post("/<int:project_id>/datasets/<int:asset_id>/inspect")
@require_role(Role.EDITOR)
def reinspect_dataset(project_id: int, asset_id: int):
    row = project_object_or_404(Dataset, asset_id, g.project)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    asset_service.reinspect_dataset(g.project, row)
    return redirect(url_for(".asset", project_id=project_id, kind="datasets", asset_id=asset_id))


# --- experiments: list, add, review, run --------------------------------------------------

@bp.get("/<int:project_id>/experiments")
@require_role(Role.VIEWER)
def list_experiments(project_id: int):
    return render_template(
        "experiments/list.html",
        project=g.project,
        membership=g.membership,
        experiments=runs.list_experiments(g.project),
    )


def _fill_choices(form: ExperimentForm) -> None:
    def choices(model, label):
        rows = asset_service.list_assets(g.project, model)
        return [("", label)] + [(str(r.id), f"{r.name} · {r.content_hash[:8]}") for r in rows]

    form.dataset_id.choices = choices(Dataset, _("— escolha um dataset —"))
    form.model_code_id.choices = choices(ModelCode, _("— escolha um código —"))
    form.hyperparameter_file_id.choices = choices(HyperparameterFile, _("— escolha um arquivo —"))


def _render_new(form: ExperimentForm, error: UserFacingError | None = None, status: int = 200, source=None):
    if error is not None and error.field and hasattr(form, error.field):
        getattr(form, error.field).errors = list(getattr(form, error.field).errors or []) + [
            error.message + (f" — {error.where()}" if error.where() else "")
        ]
    return (
        render_template(
            "experiments/new.html",
            project=g.project,
            membership=g.membership,
            form=form,
            error=error,
            source=source,
        ),
        status,
    )


@bp.route("/<int:project_id>/experiments/new", methods=["GET", "POST"])
@require_role(Role.EDITOR)
def new_experiment(project_id: int):
    form = ExperimentForm()
    source = None
    clone_of = request.args.get("clone", type=int)
    if clone_of:
        source = project_object_or_404(Experiment, clone_of, g.project)
    _fill_choices(form)
    if request.method == "GET":
        if source is not None:
            form.name.data = _("%(name)s (cópia)", name=source.name)[:100]
            form.description.data = source.description
            form.dataset_id.data = str(source.dataset_id or "")
            form.model_code_id.data = str(source.model_code_id or "")
            form.hyperparameter_file_id.data = str(source.hyperparameter_file_id or "")
        else:
            # A single choice is picked for the user.
            for field in (form.dataset_id, form.model_code_id, form.hyperparameter_file_id):
                if len(field.choices) == 2:
                    field.data = field.choices[1][0]
        return _render_new(form, source=source)
    if not form.validate_on_submit():
        return _render_new(form, status=400, source=source)
    try:
        # Files uploaded inline become assets first (they are useful even if the rest fails).
        model_code_id = form.model_code_id.data
        upload = request.files.get("model_file")
        if upload and upload.filename:
            model_code_id = asset_service.upload_model_code(g.project, current_user, upload=upload).id
        hyper_id = form.hyperparameter_file_id.data
        upload = request.files.get("hyperparameters_file")
        if upload and upload.filename:
            hyper_id = asset_service.upload_hyperparameters(g.project, current_user, upload=upload).id
        experiment = runs.create_experiment(
            g.project,
            current_user,
            name=form.name.data,
            description=form.description.data,
            dataset_id=form.dataset_id.data,
            model_code_id=model_code_id,
            hyperparameter_file_id=hyper_id,
            cloned_from=source,
        )
    except UserFacingError as error:
        _fill_choices(form)
        return _render_new(form, error=error, status=400, source=source)
    return redirect(url_for(".review", project_id=project_id, experiment_id=experiment.id))


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/review")
@require_role(Role.VIEWER)
def review(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    hyper = experiment.hyperparameter_file
    return render_template(
        "experiments/review.html",
        project=g.project,
        membership=g.membership,
        experiment=experiment,
        hyperparameters=(hyper.values if hyper else {}),
        run_form=ConfirmForm(),
    )


@bp.post("/<int:project_id>/experiments/<int:experiment_id>/run")
@require_role(Role.EDITOR)
def run(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        runs.run_experiment(g.project, current_user, experiment)
    except UserFacingError as error:
        _flash_error(error)
    return redirect(url_for(".show", project_id=project_id, experiment_id=experiment_id))


@bp.post("/<int:project_id>/experiments/<int:experiment_id>/cancel")
@require_role(Role.EDITOR)
def cancel(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        runs.cancel_experiment(g.project, experiment)
        flash(_("Cancelamento pedido."), "info")
    except UserFacingError as error:
        _flash_error(error)
    return redirect(url_for(".show", project_id=project_id, experiment_id=experiment_id))


@bp.post("/<int:project_id>/experiments/<int:experiment_id>/delete")
@require_role(Role.EDITOR)
def delete(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        runs.delete_experiment(g.project, experiment)
    except UserFacingError as error:
        _flash_error(error)
        return redirect(url_for(".show", project_id=project_id, experiment_id=experiment_id))
    flash(_("Experimento apagado."), "success")
    return redirect(url_for(".list_experiments", project_id=project_id))


# --- the experiment page ------------------------------------------------------------------

# What the experiment page shows of its experiment and of the assets it names, read as
# plain columns with the user and the scope (one statement, cached per these tuples): no
# ORM object of the experiment or its assets is built per view.
PAGE_COLUMNS = (
    Experiment.project_id,
    Experiment.name,
    Experiment.description,
    Experiment.state,
    Experiment.kind,
    Experiment.attempt,
    Experiment.rounds_done,
    Experiment.rounds_total,
    Experiment.failure_reason,
    Experiment.parent_id,
    Experiment.log_sources,
    Experiment.created_at,
    Experiment.started_at,
    Experiment.finished_at,
    Experiment.summary["sandbox_backend"].as_string().label("sandbox_backend"),
    Dataset.name.label("dataset"),
    ModelCode.name.label("model_code"),
    ModelCode.content_hash.label("model_code_hash"),
    HyperparameterFile.name.label("hyperparameters"),
)
PAGE_JOINS = (
    (Dataset, Dataset.id == Experiment.dataset_id),
    (ModelCode, ModelCode.id == Experiment.model_code_id),
    (HyperparameterFile, HyperparameterFile.id == Experiment.hyperparameter_file_id),
)


@bp.get("/run-messages/<locale>.<version>.js")
def run_messages_script(locale: str, version: str):
    """The texts of the runtime's error and warning codes in one language, as the experiment
    page's script reads them. Public (nothing in it is anyone's); kept by browsers for a year
    at a versioned URL, which changes with the texts."""
    if locale not in flautim_config().LANGUAGES:
        abort(404)
    script = run_messages.catalog_script(locale)
    response = Response(script.body, mimetype="text/javascript")
    if version == script.version:
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:  # an old page's version: today's texts, not kept
        response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/<int:project_id>/experiments/<int:experiment_id>")
def show(project_id: int, experiment_id: int):
    # The user, membership, project, experiment and what the header names: one round trip.
    found = get_columns_with_session_user_or_404(project_id, Experiment, experiment_id, PAGE_COLUMNS, PAGE_JOINS)
    if found is None:
        return login_manager.unauthorized()
    project, experiment = found
    e = {
        "project": {"id": project.id, "name": project.name},
        "id": experiment.id,
        "name": experiment.name,
        "state": experiment.state,
        "attempt": experiment.attempt,
        "rounds_total": experiment.rounds_total,
        "started_at": experiment.started_at,
        "finished_at": experiment.finished_at,
        "can_edit": can_edit_project(g.membership),
        "not_isolated": _ran_without_isolation(experiment.attempt, experiment.sandbox_backend),
        "panels": _panels(experiment),
    }
    return render_template(
        "experiments/show.html", e=e, js_labels=js_labels(), run_messages_url=run_messages.catalog_script_url()
    )


def _panels(experiment) -> Markup:
    """The tabs, rendered once per language and version of what they show and shared by
    every viewer: nothing in them depends on who asks (the per-user header, CSRF tokens
    and role buttons are rendered around them). The Modelos table is not here: the page
    fetches it (models_fragment) once the stream's catch-up is done, and on each new
    checkpoint. `experiment`: a row of PAGE_COLUMNS."""
    terminal = experiment.state.is_terminal
    view = {
        "project_id": experiment.project_id,
        "experiment_id": experiment.id,
        # A re-created database reuses ids; created_at tells its experiments apart.
        "created_at": experiment.created_at.isoformat(),
        "description": experiment.description,
        "dataset": experiment.dataset,
        "model_code": experiment.model_code,
        "model_code_hash": experiment.model_code_hash[:8] if experiment.model_code_hash is not None else None,
        "hyperparameters": experiment.hyperparameters,
        "attempt": experiment.attempt,
        "failure_reason": experiment.failure_reason,
        "rounds_done": experiment.rounds_done,
        "rounds_total": experiment.rounds_total,
        # While it runs, the page's script counts the elapsed time from data-started-at.
        "duration_s": _whole_seconds(run_duration_s(experiment.started_at, experiment.finished_at)) if terminal else None,
        "log_sources": log_picker.summarize(log_sources(experiment)),
        "kind": experiment.kind.value,
        "parent_id": experiment.parent_id,
    }
    key = ("experiment-panels", str(get_locale()), tuple(view.items()))
    return Markup(cached_fragment(key, lambda: render_template("experiments/_panels.html", v=view)))


def _whole_seconds(seconds: float | None) -> int | None:
    return int(seconds) if seconds is not None else None


def _ran_without_isolation(attempt: int, sandbox_backend: str | None) -> bool:
    """The local backend ran it (as the worker recorded it in the run's summary, else as this
    site is set up)."""
    if attempt == 0:
        return False
    return (sandbox_backend or flautim_config().SANDBOX_BACKEND) == "local"


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/models")
@require_role(Role.VIEWER)
def models_fragment(project_id: int, experiment_id: int):
    """The Modelos tab's table, fetched again by the page when a checkpoint arrives."""
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    return render_template(
        "experiments/_models.html",
        project=g.project,
        experiment=experiment,
        artifacts=experiment_artifacts(experiment),
        headline=headline.of_experiment(experiment.summary, hyperparameter_values(experiment)),
    )


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/diagnoses")
@require_role(Role.VIEWER)
def diagnoses_fragment(project_id: int, experiment_id: int):
    """Saídas' diagnosis banners, fetched by the page (diagnoses.js) when it opens and when
    the stream brings a new diagnosis."""
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    return render_template("experiments/_diagnoses.html", diagnoses=experiment_diagnoses(experiment))


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/stream")
@require_role(Role.VIEWER)
def stream(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    cursor = live.Cursor.parse(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
    app = current_app._get_current_object()
    config = flautim_config(app)
    client = redis_connection.connect(config)
    exp_id, user_id = experiment.id, current_user.id
    # A lease outlives a few re-checks (which renew it) and a slow catch-up.
    slots = live.StreamSlots(client, user_id, config.STREAMS_PER_USER, lease_s=max(30.0, 3 * config.STREAM_RECHECK_S))
    token = slots.acquire()
    if token is None:
        client.close()
        message = _(
            "Você já tem %(n)d atualizações ao vivo abertas. Feche algumas abas e recarregue a página.",
            n=config.STREAMS_PER_USER,
        )
        return Response(message, status=429, mimetype="text/plain", headers={"Retry-After": "30"})
    # Give the request's DB connection back before the long response starts.
    db.session.remove()

    def still_allowed() -> bool:
        slots.renew(token)
        return live.viewer_may_watch(app, user_id, project_id, exp_id)

    closed = []

    def close() -> None:
        # Once: both the body's end and the response's close (a body never started) call it.
        if not closed:
            closed.append(True)
            try:
                slots.release(token)
            finally:
                client.close()

    def body():
        try:
            yield from live.stream(app, client, exp_id, cursor, still_allowed=still_allowed,
                                   recheck_s=config.STREAM_RECHECK_S,
                                   catch_up_events=config.STREAM_CATCH_UP_EVENTS)
        finally:
            close()

    response = Response(body(), mimetype="text/event-stream")
    response.call_on_close(close)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/logs.txt")
@require_role(Role.VIEWER)
def download_logs(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    attempt = request.args.get("attempt", type=int)
    source = request.args.get("source") or None

    def lines():
        after = 0
        while True:
            rows = experiment_logs(experiment, attempt=attempt, after_id=after, source=source, limit=2000)
            if not rows:
                return
            buf = io.StringIO()
            for _id, _attempt, row_source, _stream, line, created_at in rows:
                buf.write(f"{created_at.isoformat()} [{row_source}] {line}\n")
            after = rows[-1][0]
            yield buf.getvalue()

    filename = f"experimento-{experiment.id}-tentativa-{attempt or experiment.attempt}.log"
    return Response(
        stream_with_context(lines()),
        mimetype="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/artifacts/<int:artifact_id>")
@require_role(Role.VIEWER)
def download_artifact(project_id: int, experiment_id: int, artifact_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    artifact = artifact_in_experiment(g.project, experiment, artifact_id)
    name = artifact_download_name(artifact, f"experimento-{experiment.id}-{{kind}}-rodada-{{round}}")
    return send_stored(artifact.storage_path, mimetype="application/octet-stream", as_attachment=True,
                       download_name=name)


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/curves.json")
@require_role(Role.VIEWER)
def curves(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    return curves_of(experiment)


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/client-curves.json")
@require_role(Role.VIEWER)
def client_curves_json(project_id: int, experiment_id: int):
    """The page's per-client chart: the spread across clients and the chosen clients' curves."""
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    try:
        name, phase = client_curves.check_query(request.args.get("name"), request.args.get("phase"))
        clients = client_curves.parse_clients(request.args.get("clients"))
    except client_curves.BadClientQuery as exc:
        messages = {
            "clients": _("Até %(n)d números de cliente separados por vírgula, por exemplo 0,3,7.",
                         n=client_curves.MAX_CLIENTS),
            "name": _("O nome da métrica tem no máximo %(n)d caracteres.", n=client_curves.MAX_NAME_LENGTH),
            "phase": _("A fase é train ou evaluate."),
        }
        return {"error": messages[exc.field], "field": exc.field}, 400
    return client_curves.client_curves(experiment, experiment.attempt, name=name, phase=phase, clients=clients,
                                       max_points=curve_max_points())


@bp.get("/<int:project_id>/experiments/compare")
@require_role(Role.VIEWER)
def compare(project_id: int):
    ids = [i for i in request.args.getlist("ids", type=int)][:8]
    chosen = (
        list(db.session.scalars(scoped(Experiment, g.project).where(Experiment.id.in_(ids)).order_by(Experiment.id)))
        if ids
        else []
    )
    all_experiments = runs.list_experiments(g.project)
    return render_template(
        "experiments/compare.html",
        project=g.project,
        membership=g.membership,
        chosen=chosen,
        rows=compare_rows(chosen),
        all_experiments=all_experiments,
        chosen_ids={e.id for e in chosen},
    )




# --- the centralized baseline (baseline.py) ------------------------------------------------

def _baseline_json(project_id: int, experiment: Experiment) -> dict:
    may_start = can_edit_project(g.membership) and g.project.archived_at is None
    body = baseline.comparison(experiment, may_start=may_start)
    child = body["baseline"]
    if child is not None:
        body["baseline"] = {
            "id": child.id, "name": child.name, "state": child.state.value,
            "state_label": state_label(child.state.value), "attempt": child.attempt,
            "rounds_done": child.rounds_done, "rounds_total": child.rounds_total,
            "url": url_for(".show", project_id=project_id, experiment_id=child.id),
        }
    return body


@bp.get("/<int:project_id>/experiments/<int:experiment_id>/baseline.json")
@require_role(Role.VIEWER)
def baseline_comparison(project_id: int, experiment_id: int):
    """The Saídas overlay of the experiment and its centralized baseline, fetched by the
    page's script (baseline.js), so the page itself makes no query for it."""
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    return _baseline_json(project_id, experiment)


@bp.post("/<int:project_id>/experiments/<int:experiment_id>/baseline")
@require_role(Role.EDITOR)
def start_baseline(project_id: int, experiment_id: int):
    """"Comparar com treino centralizado" (a fetch with the X-CSRFToken header)."""
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    try:
        baseline.start_baseline(g.project, current_user, experiment)
    except UserFacingError as error:
        return {"error": {"message": error.message, "hint": error.hint}}, 409
    return _baseline_json(project_id, experiment), 202
