"""The centralized baseline of an experiment ("Comparar com treino centralizado"): the same
Dataset and model trained on one client holding all the training data, run as a child of
the experiment, its curves overlaid on the parent's and the gap stated.

What "the same training" means. FedAvg with N clients, E local epochs and R rounds (every
client sampled each round) passes each training sample through the model E × R times, and
all clients together take E × |train| / batch_size optimizer steps a round. One client
holding all the training data, with the same E and R, does exactly that too: the same
passes over the data and the same number of steps, only in one model instead of N averaged
ones. So the baseline keeps `rounds` and `local_epochs` (and every other setting: batch
size, learning rate, optimizer, seed, checkpoints) and changes only what makes it
federated (BASELINE_SETTINGS): one client, every round, an IID "partition" (all the data),
plain FedAvg (with one client: sequential training; a server optimizer, FedProx's pull
towards the round's start or DP noise would change the training being compared against).
Keeping the rounds keeps the evaluation points: both runs are evaluated after each round,
on the same held-out validation split (the server's, `prepare` gives it the whole
validation split whatever the partition), so the curves line up round by round. With
partial participation (fraction_fit < 1) the federated run saw fewer samples per round;
the gap then includes that cost too, which is what a researcher asks the baseline about.

The child's hyperparameters are a stored hyperparameter file of the project (the parent's
text with BASELINE_SETTINGS appended, which the runtime reads last), so the child is an
ordinary experiment for the worker, the quotas and the pages: it can be opened, re-run or
cloned, and its file says what it ran.

Plain functions taking a project the caller already scoped and checked the role for, like
`runs.py`; the pages and the JSON API call them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import redis
from flask_babel import format_decimal
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from flautim import headline, quotas, redis_connection
from flautim.models import (
    Experiment,
    ExperimentKind,
    ExperimentState,
    HyperparameterFile,
    Project,
    User,
    db,
)
from flautim.web import flautim_config
from flautim.web.uploads import UserFacingError

from . import assets, runs
from .errors import NotFound
from .results import curves_of

log = logging.getLogger(__name__)

# What the baseline changes in the parent's hyperparameters; everything else is kept.
BASELINE_SETTINGS: dict[str, Any] = {
    "num_clients": 1,
    "fraction_fit": 1.0,
    "fraction_evaluate": 1.0,
    "partitioning": "iid",
    "partitioning_options": {},
    "strategy": "FedAvg",
    "strategy_options": {},
    "differential_privacy": None,
}
SETTINGS_HEADER = (
    "# --- Flautim: centralized baseline. One client holds all the training data; the same\n"
    "# rounds and local epochs as the federated run (the same passes over the data).\n"
)
# Two presses at once (a double click, two tabs) wait for each other here, then the second
# finds the first's run queued.
LOCK_TIMEOUT_S = 60


def baseline_source(parent_source: str) -> str:
    """The baseline's hyperparameters.py: the parent's, then BASELINE_SETTINGS, which win
    as the later assignments."""
    settings = "".join(f"{key} = {value!r}\n" for key, value in BASELINE_SETTINGS.items())
    return parent_source.rstrip("\n") + "\n\n" + SETTINGS_HEADER + settings


def find_baseline(parent: Experiment) -> Experiment | None:
    """The parent's centralized baseline, read afresh (another request may have changed it)."""
    return db.session.scalar(
        select(Experiment)
        .where(
            Experiment.project_id == parent.project_id,
            Experiment.parent_id == parent.id,
            Experiment.kind == ExperimentKind.CENTRALIZED_BASELINE,
        )
        .execution_options(populate_existing=True)
    )


def refusal(parent: Experiment, baseline: Experiment | None) -> UserFacingError | None:
    """Why a baseline of `parent` cannot start now, or None."""
    if parent.kind != ExperimentKind.FEDERATED:
        return UserFacingError(_("Este experimento já é um treino centralizado de referência."))
    if parent.state != ExperimentState.SUCCEEDED:
        return UserFacingError(
            _("Só um experimento concluído pode ser comparado com o treino centralizado."),
            hint=_("Espere o experimento terminar, ou execute-o de novo."),
        )
    hyper = parent.hyperparameter_file
    if hyper is None or parent.dataset_id is None or parent.model_code_id is None:
        return UserFacingError(
            _(
                "O dataset, o código do modelo ou os hiperparâmetros deste experimento foram apagados."
            ),
            hint=_("Clone o experimento e escolha outro."),
        )
    if _clients(hyper) <= 1:
        return UserFacingError(
            _("Este experimento já treina com um único cliente: ele é o treino centralizado.")
        )
    if baseline is not None and baseline.state.is_active:
        return UserFacingError(
            _("O treino centralizado deste experimento já está na fila ou em execução."),
            hint=_("Acompanhe-o em Saídas; ao terminar, as curvas aparecem sobrepostas."),
        )
    return None


def _clients(hyper: HyperparameterFile) -> int:
    value = (hyper.values or {}).get("num_clients", 4)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def start_baseline(project: Project, user: User, parent: Experiment) -> Experiment:
    """Create (once) and queue the centralized baseline of `parent`, a finished federated
    experiment; a finished baseline is run again. UserFacingError when it cannot start
    (see `refusal`), quotas included."""
    if parent.project_id != project.id:
        raise NotFound(f"experiment {parent.id} is not in project {project.id}")
    lock = redis_connection.connect(flautim_config()).lock(
        f"flautim:baseline:{parent.id}", timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S
    )
    try:
        acquired = lock.acquire()
    except redis.RedisError:
        log.exception("experiment %s: the baseline lock is unavailable", parent.id)
        acquired = False
    if not acquired:
        raise UserFacingError(
            _(
                "O treino centralizado deste experimento está sendo iniciado. Tente de novo em instantes."
            )
        )
    try:
        db.session.refresh(parent)
        baseline = find_baseline(parent)
        problem = refusal(parent, baseline)
        if problem is not None:
            raise problem
        if baseline is None:
            # Refused by the quotas before anything is made (run_experiment checks again).
            quotas.check_can_queue(project, user, parent, flautim_config())
            baseline = _create(project, user, parent)
        return runs.run_experiment(project, user, baseline)
    finally:
        try:
            lock.release()
        except Exception:  # expired: the unique constraint still allows one child
            log.warning("the baseline lock of experiment %s expired before its release", parent.id)


def _create(project: Project, user: User, parent: Experiment) -> Experiment:
    parent_hyper = parent.hyperparameter_file
    hyper = assets.store_derived_hyperparameters(
        project,
        user,
        text=baseline_source(assets.asset_source(parent_hyper)),
        filename=parent_hyper.filename or "hyperparameters.py",
        name=_("%(name)s · centralizado", name=parent_hyper.name)[:100],
        description=_(
            "Hiperparâmetros de “%(name)s” com um único cliente (treino centralizado de referência).",
            name=parent.name,
        ),
    )
    baseline = Experiment(
        project_id=project.id,
        created_by_id=user.id,
        parent_id=parent.id,
        kind=ExperimentKind.CENTRALIZED_BASELINE,
        name=_("%(name)s · centralizado", name=parent.name)[:100],
        description=_(
            "Treino centralizado de referência do experimento “%(name)s”: o mesmo dataset e "
            "modelo em um único cliente com todos os dados de treino.",
            name=parent.name,
        ),
        dataset_id=parent.dataset_id,
        model_code_id=parent.model_code_id,
        hyperparameter_file_id=hyper.id,
        transport=parent.transport,
        wants_gpu=parent.wants_gpu,
        rounds_total=parent.rounds_total,
        summary={},
    )
    db.session.add(baseline)
    try:
        db.session.commit()
    except IntegrityError:  # made a moment ago by a request that held no lock (Redis lost it)
        db.session.rollback()
        existing = find_baseline(parent)
        if existing is None:
            raise
        problem = refusal(parent, existing)
        if problem is not None:
            raise problem from None
        return existing
    return baseline


# --- the comparison ---------------------------------------------------------------------------


def _series(federated: dict, centralized: dict, metric: str) -> str | None:
    """The evaluation both runs report for `metric`: the central one (held-out data, the
    same for both) when both have it, else the federated evaluation."""
    mine, theirs = federated["metrics"].get(metric, {}), centralized["metrics"].get(metric, {})
    for key in ("central", "evaluate"):
        if mine.get(key) and theirs.get(key):
            return key
    for key in ("central", "evaluate"):
        if mine.get(key):
            return key
    return None


def gap(metric: str, federated: float | None, centralized: float | None) -> dict[str, Any] | None:
    """{"metric", "federated", "centralized", "ratio"}: the federated final value over the
    centralized one (a metric that grows: the share of it reached; one that falls, as the
    loss, MSE or MAE: how many times it). None when either is missing or not finite, or
    the centralized one is not positive (a ratio would mislead)."""
    if federated is None or centralized is None:
        return None
    if not (math.isfinite(federated) and math.isfinite(centralized)) or centralized <= 0:
        return None
    return {
        "metric": metric,
        "federated": federated,
        "centralized": centralized,
        "ratio": federated / centralized,
    }


def gap_text(found: dict[str, Any] | None, mode: str) -> str | None:
    if found is None:
        return None
    name = found["metric"]
    if name == "accuracy":
        return _(
            "federado atinge %(pct)s%% da acurácia centralizada",
            pct=format_decimal(found["ratio"] * 100, format="0"),
        )
    if name == headline.LOSS:
        return _(
            "a loss federada é %(times)s× a centralizada",
            times=format_decimal(found["ratio"], format="0.00"),
        )
    if mode == "max":
        return _(
            "federado atinge %(pct)s%% do valor centralizado de %(name)s",
            pct=format_decimal(found["ratio"] * 100, format="0"), name=name,
        )
    return _(
        "%(name)s federado é %(times)s× o centralizado",
        times=format_decimal(found["ratio"], format="0.00"), name=name,
    )


def comparison(parent: Experiment, may_start: bool = True) -> dict[str, Any]:
    """The Saídas overlay: the parent's and its baseline's curves (the loss and the parent's
    headline metric, flautim.headline, on the evaluation both report), and the gap between
    their final values of the headline metric (once the baseline succeeded). `may_start`:
    whether the asker may start one (role)."""
    baseline = find_baseline(parent)
    body: dict[str, Any] = {
        "experiment_id": parent.id,
        "can_start": may_start and refusal(parent, baseline) is None,
        "baseline": None,
        "metric": None,
        "series": None,
        "curves": {},
        "gap": None,
        "gap_text": None,
    }
    if baseline is None:
        return body
    body["baseline"] = baseline
    federated, centralized = curves_of(parent), curves_of(baseline)
    top = federated["headline"]
    for metric in dict.fromkeys((headline.LOSS, top["name"])):
        key = _series(federated, centralized, metric)
        if key is not None:
            body["curves"][metric] = {
                "series": key,
                "federated": federated["metrics"][metric][key],
                "centralized": centralized["metrics"].get(metric, {}).get(key, []),
            }
    metric = top["name"]
    if metric not in body["curves"]:
        return body
    chosen = body["curves"][metric]
    body["metric"], body["series"] = metric, chosen["series"]
    if baseline.state == ExperimentState.SUCCEEDED and parent.state == ExperimentState.SUCCEEDED:
        last = lambda points: points[-1][1] if points else None  # noqa: E731
        body["gap"] = gap(metric, last(chosen["federated"]), last(chosen["centralized"]))
        body["gap_text"] = gap_text(body["gap"], top["mode"])
    return body
