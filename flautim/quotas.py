"""Admission control: every quota rule of the site, in one place.

Each user and each project has five limits (site defaults in flautim/config.py, QUOTA_*;
an admin's `QuotaOverride` replaces any of them for one user or project; negative: none):

- **running** — runs handed to the workers, preparing or running at once. A run over this
  limit is not refused: it waits in the queue until one ends (the dispatcher in
  flautim/worker/queue.py asks `Admission.hold`).
- **queued** — runs in state "queued". Submitting one more is refused (`check_can_queue`).
- **storage** — bytes of the files flautim/storage.py lays out: datasets (data and class),
  model code, hyperparameter files and checkpoints. Computed, not kept as a running total:
  every stored file has a row with its `size_bytes`, so the total is four indexed SUMs and
  can never drift from what is on disk after a crash, a deleted experiment or a failed copy.
  An upload that would pass it is refused (`check_can_store`); so is a run while it is full.
- **CPU and GPU hours per calendar month (UTC)** — run time is wall seconds × containers
  (the server plus one per client). Each container holds its CPU share and memory for the
  whole run whether it computes or waits for a round, so the reservation, not the CPU the
  code happened to burn, is what other tenants could not use; it is also what a user can
  predict before pressing "run" and cannot shrink by idling. Counted when a run ends
  (`settle_usage`, one `RunUsage` row per attempt); a new run is refused, and queued ones
  wait, once the month's budget is spent. Runs already started finish, so a month can end
  a little over budget (at most `running` runs' worth).

A user is charged for the runs they submitted (`Experiment.submitted_by_id`) and the files
they uploaded; a project for all of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, exists, func, select

from flautim.config import Config
from flautim.errors import UserFacingError
from flautim.fl.hyperparameters import HyperparameterError, check_value
from flautim.models import (
    Dataset,
    Experiment,
    ExperimentState,
    HyperparameterFile,
    ModelArtifact,
    ModelCode,
    Project,
    QuotaOverride,
    RunUsage,
    User,
    db,
    utcnow,
)
from flautim.translation import gettext as _

USER, PROJECT = "user", "project"
# The limits as an admin edits them (the override's columns and the config's units).
SETTINGS = ("running", "queued", "storage_mb", "cpu_hours", "gpu_hours")
_DEFAULT_SETTING = {
    (USER, "running"): "QUOTA_RUNNING_PER_USER",
    (PROJECT, "running"): "QUOTA_RUNNING_PER_PROJECT",
    (USER, "queued"): "QUOTA_QUEUED_PER_USER",
    (PROJECT, "queued"): "QUOTA_QUEUED_PER_PROJECT",
    (USER, "storage_mb"): "QUOTA_STORAGE_MB_PER_USER",
    (PROJECT, "storage_mb"): "QUOTA_STORAGE_MB_PER_PROJECT",
    (USER, "cpu_hours"): "QUOTA_CPU_HOURS_PER_USER",
    (PROJECT, "cpu_hours"): "QUOTA_CPU_HOURS_PER_PROJECT",
    (USER, "gpu_hours"): "QUOTA_GPU_HOURS_PER_USER",
    (PROJECT, "gpu_hours"): "QUOTA_GPU_HOURS_PER_PROJECT",
}
# How far back the worker's maintenance looks for finished runs not yet counted.
SETTLE_LOOKBACK = timedelta(days=35)
# A run whose hyperparameters name no client count gets the runtime's default.
DEFAULT_CLIENTS = 4


class QuotaExceeded(UserFacingError):
    """A submission or upload refused by a quota; the message names the limit and numbers."""


# --- limits -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """One user's or project's effective limits; None means no limit."""

    running: int | None
    queued: int | None
    storage_bytes: int | None
    cpu_seconds: float | None
    gpu_seconds: float | None

    @classmethod
    def from_settings(cls, settings: dict) -> Limits:
        def limit(name, scale=1):
            value = settings.get(name)
            return None if value is None or value < 0 else value * scale

        return cls(
            running=limit("running"),
            queued=limit("queued"),
            storage_bytes=limit("storage_mb", 1024 * 1024),
            cpu_seconds=limit("cpu_hours", 3600.0),
            gpu_seconds=limit("gpu_hours", 3600.0),
        )

    def run_seconds(self, gpu: bool) -> float | None:
        return self.gpu_seconds if gpu else self.cpu_seconds


def default_settings(scope: str, config: Config) -> dict:
    """The site's defaults for a user or a project, in the admin's units."""
    return {name: getattr(config, _DEFAULT_SETTING[(scope, name)]) for name in SETTINGS}


def override_for(scope: str, subject_id: int) -> QuotaOverride | None:
    column = QuotaOverride.user_id if scope == USER else QuotaOverride.project_id
    return db.session.scalar(select(QuotaOverride).where(column == subject_id))


def settings_for(scope: str, subject_ids: Iterable[int], config: Config) -> dict[int, dict]:
    """Each subject's settings: the defaults with the admin's overrides on top (one query)."""
    ids = sorted(set(subject_ids))
    base = default_settings(scope, config)
    out = {i: dict(base) for i in ids}
    if not ids:
        return out
    column = QuotaOverride.user_id if scope == USER else QuotaOverride.project_id
    for row in db.session.scalars(select(QuotaOverride).where(column.in_(ids))):
        subject = row.user_id if scope == USER else row.project_id
        for name in SETTINGS:
            if getattr(row, name) is not None:
                out[subject][name] = getattr(row, name)
    return out


def limits_for(scope: str, subject_id: int, config: Config) -> Limits:
    return Limits.from_settings(settings_for(scope, [subject_id], config)[subject_id])


def save_override(scope: str, subject_id: int, values: dict, admin_id: int | None) -> QuotaOverride:
    """Set one subject's overrides (None: the site default). The caller commits."""
    row = override_for(scope, subject_id)
    if row is None:
        row = QuotaOverride(**{"user_id" if scope == USER else "project_id": subject_id})
        db.session.add(row)
    for name in SETTINGS:
        setattr(row, name, values.get(name))
    row.updated_by_id, row.updated_at = admin_id, utcnow()
    return row


# --- usage ------------------------------------------------------------------------------

@dataclass
class Usage:
    running: int = 0  # handed to the workers, preparing or running
    queued: int = 0  # in state "queued" (waiting its turn or handed to the workers)
    storage_bytes: int = 0
    cpu_seconds: float = 0.0  # this month
    gpu_seconds: float = 0.0

    def run_seconds(self, gpu: bool) -> float:
        return self.gpu_seconds if gpu else self.cpu_seconds


def submitter():
    """The user a run counts against: who submitted it (or, for older rows, who created it)."""
    return func.coalesce(Experiment.submitted_by_id, Experiment.created_by_id)


def _subject_column(scope: str):
    return submitter() if scope == USER else Experiment.project_id


HANDED_OVER = (Experiment.state == ExperimentState.QUEUED) & Experiment.job_id.is_not(None)
STARTED = Experiment.state.in_([ExperimentState.PREPARING, ExperimentState.RUNNING])


def run_counts(scope: str, subject_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(running, queued) per subject, one GROUP BY."""
    ids = sorted(set(subject_ids))
    if not ids:
        return {}
    subject = _subject_column(scope)
    rows = db.session.execute(
        select(
            subject,
            func.sum(case((HANDED_OVER | STARTED, 1), else_=0)),
            func.sum(case((Experiment.state == ExperimentState.QUEUED, 1), else_=0)),
        )
        .where(subject.in_(ids), Experiment.state.in_([s for s in ExperimentState if s.is_active]))
        .group_by(subject)
    ).all()
    return {int(s): (int(r or 0), int(q or 0)) for s, r, q in rows}


def month_start(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_usage(scope: str, subject_ids: Iterable[int], now: datetime | None = None) -> dict[int, tuple[float, float]]:
    """(CPU seconds, GPU seconds) of container time per subject this month."""
    ids = sorted(set(subject_ids))
    if not ids:
        return {}
    column = RunUsage.user_id if scope == USER else RunUsage.project_id
    rows = db.session.execute(
        select(
            column,
            func.sum(case((RunUsage.gpu.is_(False), RunUsage.container_seconds), else_=0.0)),
            func.sum(case((RunUsage.gpu.is_(True), RunUsage.container_seconds), else_=0.0)),
        )
        .where(column.in_(ids), RunUsage.finished_at >= month_start(now))
        .group_by(column)
    ).all()
    return {int(s): (float(c or 0), float(g or 0)) for s, c, g in rows}


def storage_bytes(scope: str, subject_id: int) -> int:
    """Stored bytes of a user or project: the sum of every stored file's row (one query)."""
    sums = []
    for model in (Dataset, ModelCode, HyperparameterFile):
        owner = model.created_by_id if scope == USER else model.project_id
        sums.append(select(func.coalesce(func.sum(model.size_bytes), 0)).where(owner == subject_id).scalar_subquery())
    sums.append(
        select(func.coalesce(func.sum(ModelArtifact.size_bytes), 0))
        .join(Experiment, Experiment.id == ModelArtifact.experiment_id)
        .where(_subject_column(scope) == subject_id)
        .scalar_subquery()
    )
    total = sums[0]
    for part in sums[1:]:
        total = total + part
    return int(db.session.scalar(select(total)) or 0)


def usage_for(scope: str, subject_id: int, now: datetime | None = None) -> Usage:
    running, queued = run_counts(scope, [subject_id]).get(subject_id, (0, 0))
    cpu, gpu = month_usage(scope, [subject_id], now).get(subject_id, (0.0, 0.0))
    return Usage(running, queued, storage_bytes(scope, subject_id), cpu, gpu)


@dataclass(frozen=True)
class UsageLine:
    """One limit as pages show it: what is used and the limit, both formatted."""

    name: str  # one of SETTINGS
    used: str
    limit: str | None  # None: no limit
    full: bool


def usage_lines(limits: Limits, usage: Usage) -> list[UsageLine]:
    """The five limits of a user or project beside their usage, for the pages."""

    def line(name, used, limit, fmt):
        return UsageLine(name, fmt(used), None if limit is None else fmt(limit), limit is not None and used >= limit)

    count = str
    return [
        line("running", usage.running, limits.running, count),
        line("queued", usage.queued, limits.queued, count),
        line("storage_mb", usage.storage_bytes, limits.storage_bytes, format_bytes),
        line("cpu_hours", usage.cpu_seconds, limits.cpu_seconds, format_hours),
        line("gpu_hours", usage.gpu_seconds, limits.gpu_seconds, format_hours),
    ]


# --- what a run costs -------------------------------------------------------------------

def _values(experiment_values) -> dict:
    return experiment_values if isinstance(experiment_values, dict) else {}


def run_uses_gpu(wants_gpu: bool, values) -> bool:
    """A run is charged to the GPU budget when it asks for a GPU (as the worker plans it)."""
    return bool(wants_gpu) or str(_values(values).get("device", "cpu")).startswith("cuda")


def run_clients(values) -> int:
    """The run's federated clients, N (the runtime's rule for `num_clients`; the default
    where the stored value breaks it, which the worker refuses to run)."""
    try:
        return check_value("num_clients", _values(values).get("num_clients", DEFAULT_CLIENTS))
    except HyperparameterError:
        return DEFAULT_CLIENTS


def run_containers(values, summary=None) -> int:
    """The server plus the run's client containers, as the worker recorded them when it
    planned the run (sandbox.admission.plan_client_containers); one per client for a run
    it never planned."""
    recorded = _values(summary).get("containers")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 2:
        return recorded
    return 1 + run_clients(values)


def _wall_seconds(summary, started_at, finished_at) -> float:
    measured = _values(summary).get("duration_s")
    if isinstance(measured, (int, float)) and not isinstance(measured, bool) and math.isfinite(measured):
        return max(0.0, float(measured))
    if started_at is not None and finished_at is not None:
        return max(0.0, (finished_at - started_at).total_seconds())
    return 0.0


def settle_usage(experiment_ids: Iterable[int] | None = None, now: datetime | None = None) -> int:
    """Write the `RunUsage` row of every finished attempt that has none yet; returns how
    many. Idempotent (one row per experiment and attempt), so the worker calls it after each
    job and in its maintenance, which also catches runs a crashed worker never counted."""
    now = now or utcnow()
    counted = exists().where(RunUsage.experiment_id == Experiment.id, RunUsage.attempt == Experiment.attempt)
    query = (
        select(
            Experiment.id, Experiment.attempt, Experiment.project_id, submitter(), Experiment.wants_gpu,
            HyperparameterFile.values, Experiment.summary, Experiment.started_at, Experiment.finished_at,
        )
        .outerjoin(HyperparameterFile, HyperparameterFile.id == Experiment.hyperparameter_file_id)
        .where(
            Experiment.state.in_([s for s in ExperimentState if s.is_terminal]),
            Experiment.attempt > 0,
            Experiment.finished_at.is_not(None),
            ~counted,
        )
    )
    if experiment_ids is not None:
        ids = sorted(set(experiment_ids))
        if not ids:
            return 0
        query = query.where(Experiment.id.in_(ids))
    else:
        query = query.where(Experiment.finished_at >= now - SETTLE_LOOKBACK)
    written = 0
    for exp_id, attempt, project_id, user_id, wants_gpu, values, summary, started, finished in db.session.execute(query).all():
        wall = _wall_seconds(summary, started, finished)
        containers = run_containers(values, summary)
        row = RunUsage(
            experiment_id=exp_id, attempt=attempt, project_id=project_id, user_id=user_id,
            gpu=run_uses_gpu(wants_gpu, values), containers=containers, wall_seconds=wall,
            container_seconds=wall * containers, finished_at=finished,
        )
        try:
            with db.session.begin_nested():
                db.session.add(row)
            written += 1
        except Exception:  # another worker counted it a moment ago (the unique constraint)
            continue
    db.session.commit()
    return written


# --- refusals (submission, upload) --------------------------------------------------------

def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def format_hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}"


def _who(scope: str, project: Project | None) -> str:
    if scope == PROJECT and project is not None:
        return _("projeto “%(name)s”", name=project.name)
    return _("sua conta")


def _storage_hint() -> str:
    return _("Apague datasets, modelos ou experimentos que não usa mais, ou peça mais espaço a um administrador.")


def _subjects(project: Project, user: User | None) -> list[tuple[str, int]]:
    subjects = [(PROJECT, project.id)]
    if user is not None:
        subjects.append((USER, user.id))
    return subjects


def check_can_queue(project: Project, user: User, experiment: Experiment, config: Config) -> None:
    """Raise QuotaExceeded when `user` may not queue a run of `experiment` in `project`:
    too many queued runs, storage full, or the month's CPU or GPU budget spent."""
    values = experiment.hyperparameter_file.values if experiment.hyperparameter_file else {}
    gpu = run_uses_gpu(experiment.wants_gpu, values)
    for scope, subject_id in _subjects(project, user):
        limits = limits_for(scope, subject_id, config)
        usage = usage_for(scope, subject_id)
        who = _who(scope, project)
        if limits.queued is not None and usage.queued + 1 > limits.queued:
            raise QuotaExceeded(
                _("Limite de experimentos na fila atingido (%(who)s): %(used)d de %(limit)d.",
                  who=who, used=usage.queued, limit=limits.queued),
                hint=_("Espere algum terminar ou cancele um da fila. Um administrador pode aumentar o limite."),
            )
        budget = limits.run_seconds(gpu)
        if budget is not None and usage.run_seconds(gpu) >= budget:
            kind = _("tempo de GPU") if gpu else _("tempo de CPU")
            raise QuotaExceeded(
                _("Orçamento mensal de %(kind)s esgotado (%(who)s): %(used)s h usadas de %(limit)s h "
                  "(horas de execução × contêineres).",
                  kind=kind, who=who, used=format_hours(usage.run_seconds(gpu)), limit=format_hours(budget)),
                hint=_("O orçamento renova no dia 1º de cada mês (UTC). Um administrador pode aumentá-lo."),
            )
        if limits.storage_bytes is not None and usage.storage_bytes >= limits.storage_bytes:
            raise QuotaExceeded(
                _("Armazenamento cheio (%(who)s): %(used)s usados de %(limit)s; um experimento grava modelos.",
                  who=who, used=format_bytes(usage.storage_bytes), limit=format_bytes(limits.storage_bytes)),
                hint=_storage_hint(),
            )


def check_can_store(project: Project, user: User | None, new_bytes: int, config: Config) -> None:
    """Raise QuotaExceeded when storing `new_bytes` more would pass the storage limit of the
    project or of the uploading user."""
    for scope, subject_id in _subjects(project, user):
        limit = limits_for(scope, subject_id, config).storage_bytes
        if limit is None:
            continue
        used = storage_bytes(scope, subject_id)
        if used + new_bytes > limit:
            raise QuotaExceeded(
                _("Este envio (%(size)s) passaria do limite de armazenamento (%(who)s): %(used)s usados de "
                  "%(limit)s.",
                  size=format_bytes(new_bytes), who=_who(scope, project), used=format_bytes(used),
                  limit=format_bytes(limit)),
                hint=_storage_hint(),
            )


# --- holding runs back (the dispatcher) ---------------------------------------------------

@dataclass(frozen=True)
class Hold:
    """Why a queued run is not handed to the workers yet: a limit and its numbers."""

    scope: str
    subject_id: int
    limit_name: str  # "running", "cpu_hours" or "gpu_hours"
    used: float
    limit: float

    def message(self, project: Project | None = None, user_name: str | None = None) -> str:
        """The reason in words; `user_name` names whose account a user's limit is (on a page
        other members read), else it says "sua conta"."""
        who = _("conta de %(name)s", name=user_name) if self.scope == USER and user_name else _who(self.scope, project)
        if self.limit_name == "running":
            return _("Aguardando: limite de experimentos em execução (%(who)s): %(used)d de %(limit)d.",
                     who=who, used=self.used, limit=self.limit)
        kind = _("tempo de GPU") if self.limit_name == "gpu_hours" else _("tempo de CPU")
        return _("Aguardando: orçamento mensal de %(kind)s esgotado (%(who)s): %(used)s h de %(limit)s h.",
                 kind=kind, who=who, used=format_hours(self.used), limit=format_hours(self.limit))


@dataclass
class Admission:
    """What the dispatcher needs to decide, for the subjects of the waiting runs: limits,
    runs handed over or started, and this month's run time. A few grouped queries."""

    config: Config
    limits: dict[tuple[str, int], Limits] = field(default_factory=dict)
    running: dict[tuple[str, int], int] = field(default_factory=dict)
    seconds: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, config: Config, project_ids: Iterable[int], user_ids: Iterable[int]) -> Admission:
        view = cls(config)
        for scope, ids in ((PROJECT, set(project_ids)), (USER, {u for u in user_ids if u is not None})):
            for subject_id, settings in settings_for(scope, ids, config).items():
                view.limits[(scope, subject_id)] = Limits.from_settings(settings)
            for subject_id, (running, _queued) in run_counts(scope, ids).items():
                view.running[(scope, subject_id)] = running
            for subject_id, used in month_usage(scope, ids).items():
                view.seconds[(scope, subject_id)] = used
        return view

    def hold(self, project_id: int, user_id: int | None, gpu: bool) -> Hold | None:
        """The limit that keeps this run waiting, or None when it may be handed over."""
        subjects = [(PROJECT, project_id)] + ([(USER, user_id)] if user_id is not None else [])
        for key in subjects:
            limits = self.limits.get(key) or Limits.from_settings(default_settings(key[0], self.config))
            running = self.running.get(key, 0)
            if limits.running is not None and running >= limits.running:
                return Hold(key[0], key[1], "running", running, limits.running)
            budget = limits.run_seconds(gpu)
            used = self.seconds.get(key, (0.0, 0.0))[1 if gpu else 0]
            if budget is not None and used >= budget:
                return Hold(key[0], key[1], "gpu_hours" if gpu else "cpu_hours", used, budget)
        return None

    def handed_over(self, project_id: int, user_id: int | None) -> None:
        for key in [(PROJECT, project_id)] + ([(USER, user_id)] if user_id is not None else []):
            self.running[key] = self.running.get(key, 0) + 1


__all__ = [
    "PROJECT", "SETTINGS", "USER", "Admission", "Hold", "Limits", "QuotaExceeded", "Usage",
    "check_can_queue", "check_can_store", "default_settings", "format_bytes", "format_hours",
    "limits_for", "month_start", "month_usage", "override_for", "run_clients", "run_containers", "run_counts",
    "run_uses_gpu", "save_override", "settings_for", "settle_usage", "storage_bytes", "submitter",
    "usage_for", "usage_lines", "UsageLine",
]
