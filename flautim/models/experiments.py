"""Experiments, their explicit state machine, and what their runs leave behind."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from .base import UTCDateTime, created_at_column, db, utcnow
from .projects import enum_column


class ExperimentState(enum.StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        return self in (ExperimentState.QUEUED, ExperimentState.PREPARING, ExperimentState.RUNNING)


TERMINAL_STATES = frozenset(
    {
        ExperimentState.SUCCEEDED,
        ExperimentState.FAILED,
        ExperimentState.CANCELLED,
        ExperimentState.TIMED_OUT,
    }
)

_S = ExperimentState
ALLOWED_TRANSITIONS: dict[ExperimentState, frozenset[ExperimentState]] = {
    _S.DRAFT: frozenset({_S.QUEUED}),
    _S.QUEUED: frozenset({_S.PREPARING, _S.CANCELLED, _S.FAILED}),
    _S.PREPARING: frozenset({_S.RUNNING, _S.FAILED, _S.CANCELLED, _S.TIMED_OUT}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED, _S.TIMED_OUT}),
    # A finished experiment can be run again: a re-run starts a new attempt.
    _S.SUCCEEDED: frozenset({_S.QUEUED}),
    _S.FAILED: frozenset({_S.QUEUED}),
    _S.CANCELLED: frozenset({_S.QUEUED}),
    _S.TIMED_OUT: frozenset({_S.QUEUED}),
}


class FailureKind(enum.StrEnum):
    USER_CODE = "user_code"
    OUT_OF_MEMORY = "out_of_memory"
    TIME_LIMIT = "time_limit"
    INFRASTRUCTURE = "infrastructure"


class ExperimentKind(enum.StrEnum):
    # An experiment the user set up.
    FEDERATED = "federated"
    # The centralized baseline of its parent (`parent_id`): the same Dataset and model on
    # one client holding all the training data (flautim/web/experiments/baseline.py).
    CENTRALIZED_BASELINE = "centralized_baseline"


class InvalidTransition(ValueError):
    pass


class Experiment(db.Model):
    __tablename__ = "experiments"
    # One child of each kind per parent: a second press of "Comparar com treino
    # centralizado" finds the first one instead of making another.
    __table_args__ = (UniqueConstraint("parent_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    model_code_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_codes.id", ondelete="SET NULL")
    )
    hyperparameter_file_id: Mapped[int | None] = mapped_column(
        ForeignKey("hyperparameter_files.id", ondelete="SET NULL")
    )
    cloned_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL")
    )
    # The experiment this one was derived from to compare against (see `kind`); a deleted
    # parent leaves the child as an experiment of its own.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"))
    kind: Mapped[ExperimentKind] = enum_column(ExperimentKind, default=ExperimentKind.FEDERATED)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who pressed "run" for the current attempt: the user whose quotas it counts against.
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    state: Mapped[ExperimentState] = enum_column(ExperimentState, default=ExperimentState.DRAFT)
    failure_kind: Mapped[FailureKind | None] = enum_column(FailureKind, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # Each press of "Executar experimento" is a new attempt; logs and metrics carry it.
    attempt: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    transport: Mapped[str] = mapped_column(String(16), default="fast")
    wants_gpu: Mapped[bool] = mapped_column(default=False)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    rounds_total: Mapped[int] = mapped_column(default=0)
    rounds_done: Mapped[int] = mapped_column(default=0)
    # Latest headline figures, for lists and the page header.
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    # The current attempt's log sources ("server", "client-0", ...) in first-seen order,
    # kept by the worker as it stores lines, so the page's source filter costs no query.
    # None: never tracked (the lines were written some other way); count them then.
    log_sources: Mapped[list | None] = mapped_column(JSON)
    # The current attempt's newest metric row id (0: none yet), kept by the worker as it
    # stores metrics: the version that keys cached metric responses, without a probe.
    # None: never tracked (rows written some other way); probe the index then.
    metrics_version: Mapped[int | None] = mapped_column(BigInteger())

    created_at: Mapped[datetime] = created_at_column()
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the fair-share dispatcher handed this attempt to an RQ queue (flautim/worker/
    # queue.py); NULL while it waits its turn in the database, which is the queue of record.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    project = relationship("Project")
    dataset = relationship("Dataset")
    model_code = relationship("ModelCode")
    hyperparameter_file = relationship("HyperparameterFile")
    created_by = relationship("User", foreign_keys=[created_by_id])

    def transition(self, new: ExperimentState) -> None:
        """Move to `new`, or raise InvalidTransition if the state machine forbids it."""
        if new not in ALLOWED_TRANSITIONS[self.state]:
            raise InvalidTransition(f"experiment {self.id}: {self.state} -> {new} is not allowed")
        self.state = new
        now = utcnow()
        if new == ExperimentState.QUEUED:
            self.queued_at, self.started_at, self.finished_at = now, None, None
            self.failure_kind, self.failure_reason = None, None
            self.cancel_requested = False
            self.rounds_done = 0
            self.attempt += 1
            self.log_sources = []
            self.metrics_version = 0
            # A new attempt waits for the dispatcher: no job yet (an old attempt's job id
            # would make it look handed over already).
            self.job_id, self.dispatched_at = None, None
        elif new == ExperimentState.RUNNING:
            self.started_at = now
        elif new.is_terminal:
            self.finished_at = now

    def transition_if(self, expected: ExperimentState, new: ExperimentState) -> bool:
        """Move from `expected` to `new` only if the database row of this attempt still says
        `expected`, by a conditional UPDATE; False (and the row re-read) when it does not.

        Two writers that both read "queued" — a worker starting the run and a user
        cancelling it — each pass a plain read-then-write and the later commit silently
        undoes the other. With this, exactly one UPDATE matches (PostgreSQL makes the second
        wait for the first's commit and then re-checks the condition). The caller commits.
        """
        session = object_session(self)
        result = session.execute(
            update(Experiment)
            .where(Experiment.id == self.id, Experiment.attempt == self.attempt, Experiment.state == expected)
            .values(state=new)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            session.refresh(self)
            return False
        self.state = expected
        self.transition(new)
        return True

    def fail(self, kind: FailureKind, reason: str, state=ExperimentState.FAILED) -> None:
        self.transition(state)
        self.failure_kind = kind
        self.failure_reason = reason[:4000]

    @property
    def duration_s(self) -> float | None:
        return run_duration_s(self.started_at, self.finished_at)


def run_duration_s(started_at: datetime | None, finished_at: datetime | None) -> float | None:
    """Seconds from a run's start to its end (to now while it runs); None before it starts."""
    if started_at is None:
        return None
    return ((finished_at or utcnow()) - started_at).total_seconds()


# The runtime's per-client events (flautim.fl.events.client_event_type: client_<phase>),
# spelt out here because importing flautim.fl would load torch into the web process.
CLIENT_REPORT_TYPES = ("client_train", "client_evaluate")
PAGE_EVENTS_WHERE = "type NOT IN ('client_train', 'client_evaluate')"


class ExperimentEvent(db.Model):
    """One event of the runtime's versioned stream (flautim.fl.events), as received."""

    __tablename__ = "experiment_events"
    __table_args__ = (
        Index("ix_experiment_events_exp_seq", "experiment_id", "id"),
        # The live page's events: all but the clients' reports (one per client and round,
        # 2,000 a round at 1,000 clients), which its catch-up leaves out. Those rows are not
        # in this index, so the catch-up reads only what it sends.
        Index("ix_experiment_events_page", "experiment_id", "id",
              postgresql_where=text(PAGE_EVENTS_WHERE), sqlite_where=text(PAGE_EVENTS_WHERE)),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(default=1)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_at_column()


class MetricRow(db.Model):
    """A number per round: from a client, the aggregate, or the central evaluation."""

    __tablename__ = "metric_rows"
    # By attempt and round for the API's filters; by attempt and id for the newest row,
    # the version that keys the cached metric responses (one index probe).
    __table_args__ = (
        Index("ix_metric_rows_exp_round", "experiment_id", "attempt", "round"),
        Index("ix_metric_rows_exp_id", "experiment_id", "attempt", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(default=1)
    round: Mapped[int] = mapped_column()
    # "train", "evaluate" (federated) or "central".
    phase: Mapped[str] = mapped_column(String(16))
    # "aggregate", "server" or "client-N".
    source: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


class ClientResult(db.Model):
    """One client's report of one round and phase (its `client_train` or `client_evaluate`
    event) as typed columns: at 1,000 clients the per-client table is sorted and paged, and
    the spread across clients summarised, by the database (index on round, phase, loss)
    rather than from the events' JSON."""

    __tablename__ = "client_results"
    __table_args__ = (
        Index("ix_client_results_round", "experiment_id", "attempt", "round", "phase", "loss"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(default=1)
    round: Mapped[int] = mapped_column()
    # "train" or "evaluate".
    phase: Mapped[str] = mapped_column(String(16))
    client: Mapped[int] = mapped_column()
    examples: Mapped[int | None] = mapped_column(nullable=True)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class LogRecord(db.Model):
    """One line a container (or process) printed. The id orders lines and resumes streams."""

    __tablename__ = "log_records"
    # (experiment, id): catch-up and resume. (experiment, attempt, source, id): the page's
    # list of sources as a skip scan (one probe per source, not a GROUP BY over every line)
    # and the catch-up of one source.
    __table_args__ = (
        Index("ix_log_records_exp_id", "experiment_id", "id"),
        Index("ix_log_records_exp_source", "experiment_id", "attempt", "source", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(default=1)
    # "server", "superlink", "client-N", "platform".
    source: Mapped[str] = mapped_column(String(32))
    stream: Mapped[str] = mapped_column(String(8), default="stdout")
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class ModelArtifact(db.Model):
    """A checkpoint of the global model copied into the project's storage."""

    __tablename__ = "model_artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(default=1)
    round: Mapped[int] = mapped_column()
    # "round", "best" or "final".
    kind: Mapped[str] = mapped_column(String(16))
    # "pytorch" or "safetensors".
    format: Mapped[str] = mapped_column(String(16))
    storage_path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = created_at_column()

    experiment = relationship("Experiment")
