"""Putting work on the RQ queues and asking running work to stop.

The database row owns the work; the queue carries only its id. The caller commits the state
change first and enqueues second, so a fast worker always finds the row (the reverse order
loses runs). Web code calls these functions; it never imports the job or the sandbox.

Fair share: the database is the queue of record for runs (state "queued", `queued_at`). RQ
is given at most FAIR_SHARE_DISPATCH_PER_PROJECT runs of a project at a time
(`dispatch_waiting_runs`); the rest wait in the database and are handed over, one at a time,
to the project that least recently had a run handed over, so one tenant's hundred runs do
not delay everybody else's. A run no live worker could ever hold (too many clients for any
worker's memory, a GPU where no worker has one: worker/capacity.py) is not handed over; it
waits with the reason shown on its page until a worker that fits connects. The dispatcher
runs on each submission, when a worker takes a job (the job left the RQ queue, so its
project's place is free) and after it, and in the workers' maintenance. The quotas' running limits and monthly budgets (flautim/quotas.py) hold runs
back here: they wait, with the reason shown on the project's usage page.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter, defaultdict
from datetime import datetime

import redis
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select, update

from flautim.config import Config
from flautim.live_messages import channel_for, encode, state_message
from flautim.models import Dataset, Experiment, ExperimentState, HyperparameterFile, db, utcnow
from flautim.redis_connection import client_for, redis_url

from .capacity import RunNeeds, live_workers, unholdable_reason

log = logging.getLogger(__name__)

EXPERIMENT_QUEUE = "experiments"
GPU_QUEUE = "experiments-gpu"
# Inspections are short: their own queue, served first, so they never wait behind a run.
INSPECTION_QUEUE = "inspections"
DEFAULT_QUEUES = (INSPECTION_QUEUE, EXPERIMENT_QUEUE)

RUN_JOB = "flautim.worker.job.run_experiment"
INSPECT_JOB = "flautim.worker.job.inspect_dataset"
# Margin on top of the run's own time limit: the job enforces the limit itself (it kills the
# containers); RQ's hard limit only catches a work horse that is itself stuck.
JOB_TIMEOUT_MARGIN_S = 300


def redis_for(config: Config) -> redis.Redis:
    """This process's Redis client for the queues and the live channels (the embedded one
    in the demo)."""
    return client_for(redis_url(config))


def queue_for(name: str, config: Config) -> Queue:
    return Queue(name, connection=redis_for(config))


def cancel_key(experiment_id: int, attempt: int) -> str:
    return f"flautim:cancel:{int(experiment_id)}:{int(attempt)}"


def experiment_time_limit(experiment: Experiment, config: Config) -> int:
    """The run's wall-clock limit: hyperparameters' time_limit_s, capped by the site's."""
    values = experiment.hyperparameter_file.values if experiment.hyperparameter_file else {}
    return _time_limit(values, config)


def _time_limit(values, config: Config) -> int:
    wanted = values.get("time_limit_s") if isinstance(values, dict) else None
    if not isinstance(wanted, (int, float)) or isinstance(wanted, bool) or wanted <= 0:
        wanted = config.DEFAULT_EXPERIMENT_SECONDS
    return int(min(wanted, config.MAX_EXPERIMENT_SECONDS))


def enqueue_experiment(experiment: Experiment, config: Config) -> str | None:
    """Queue a run of `experiment` (validated by the caller); returns its RQ job id when it
    was handed to a worker queue at once, None when it waits its turn in the database.

    Moves the experiment from draft (or a finished state: a re-run is a new attempt) to
    queued (unless the caller already did) and commits; then the fair-share dispatcher hands
    over what may go. A queued experiment that already names a job (Redis lost it:
    `requeue_lost`) is put back on its RQ queue directly, keeping the place it had. Raises
    InvalidTransition when the experiment is already running.
    """
    # The web service may already have moved it to queued (a new attempt) and committed.
    if experiment.state != ExperimentState.QUEUED:
        experiment.transition(ExperimentState.QUEUED)
        db.session.commit()
    if experiment.job_id is not None:
        values = experiment.hyperparameter_file.values if experiment.hyperparameter_file else {}
        queue = _queue_name(experiment.wants_gpu, values)
        job_id = _hand_over(experiment.id, experiment.attempt, queue, values, config)
    else:
        dispatch_waiting_runs(config)
        db.session.refresh(experiment)
        job_id = experiment.job_id
    publish_state(experiment, config)
    return job_id


def request_cancel(experiment: Experiment, config: Config) -> None:
    """Stop `experiment`: a queued one is cancelled now; a running one within seconds.

    For a running experiment this sets `cancel_requested` and a Redis flag the worker
    polls every half second; the worker then kills the containers and records the state.
    Finished experiments are left as they are.
    """
    state = experiment.state
    if state == ExperimentState.QUEUED:
        # Conditional, like the worker's start: of a cancel and a worker starting the run at
        # the same moment exactly one wins.
        if experiment.transition_if(ExperimentState.QUEUED, ExperimentState.CANCELLED):
            experiment.failure_reason = None
            db.session.commit()
            if experiment.job_id:
                try:
                    Job.fetch(experiment.job_id, connection=redis_for(config)).cancel()
                except Exception:  # the job may be gone already; the state is what matters
                    log.info("job %s of experiment %s not cancelled in RQ", experiment.job_id, experiment.id)
            publish_state(experiment, config)
            return
        # A worker started it a moment ago: stop it as a running one.
        state = experiment.state
    if state in (ExperimentState.PREPARING, ExperimentState.RUNNING):
        experiment.cancel_requested = True
        db.session.commit()
        redis_for(config).set(cancel_key(experiment.id, experiment.attempt), "1", ex=24 * 3600)
        publish_state(experiment, config)


DISPATCH_LOCK = "flautim:dispatch-lock"


def dispatch_waiting_runs(config: Config) -> list[int]:
    """Hand waiting runs to the RQ queues, fairly; returns the ids handed over.

    Needs an app context. One dispatcher at a time (a Redis lock): each repeatedly picks,
    among projects with a waiting run that may go, the one whose last run was handed over
    longest ago (never: first; a tie: the oldest waiting run), and hands over its oldest
    waiting run that no quota holds back. A project goes only while fewer than
    FAIR_SHARE_DISPATCH_PER_PROJECT of its runs sit in that RQ queue.
    """
    connection = redis_for(config)
    lock = connection.lock(DISPATCH_LOCK, timeout=120, blocking_timeout=30)
    if not lock.acquire():
        log.warning("another dispatcher held the lock for 30 s; waiting runs stay for the next pass")
        return []
    try:
        return _dispatch(config, connection)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:  # expired while we worked: harmless, we are done
            pass


def _dispatch(config: Config, connection: redis.Redis) -> list[int]:
    from flautim.quotas import Admission, run_uses_gpu, submitter

    waiting = db.session.execute(
        select(
            Experiment.id, Experiment.attempt, Experiment.project_id, submitter(), Experiment.wants_gpu,
            HyperparameterFile.values, Experiment.queued_at, Experiment.transport, Experiment.failure_reason,
        )
        .outerjoin(HyperparameterFile, HyperparameterFile.id == Experiment.hyperparameter_file_id)
        .where(Experiment.state == ExperimentState.QUEUED, Experiment.job_id.is_(None))
        .order_by(Experiment.queued_at, Experiment.id)
    ).all()
    waiting = _holdable(waiting, connection, config)
    if not waiting:
        return []
    by_project: dict[int, list] = defaultdict(list)
    for row in waiting:
        by_project[row.project_id].append(row)
    in_queue = _runs_in_rq_queues(connection)
    last_handed: dict[int, datetime] = dict(
        db.session.execute(
            select(Experiment.project_id, func.max(Experiment.dispatched_at))
            .where(Experiment.project_id.in_(list(by_project)), Experiment.dispatched_at.is_not(None))
            .group_by(Experiment.project_id)
        ).all()
    )
    admission = Admission.load(config, by_project, {row[3] for row in waiting})
    per_project = max(1, config.FAIR_SHARE_DISPATCH_PER_PROJECT)
    oldest = datetime.min.replace(tzinfo=utcnow().tzinfo)
    handed: list[int] = []
    while True:
        choice = None
        for project_id, rows in by_project.items():
            row = next(
                (
                    r for r in rows
                    if in_queue[(project_id, _queue_name(r.wants_gpu, r.values))] < per_project
                    and admission.hold(project_id, r[3], run_uses_gpu(r.wants_gpu, r.values)) is None
                ),
                None,
            )
            if row is None:
                continue
            key = (last_handed.get(project_id) or oldest, rows[0].queued_at or oldest, project_id)
            if choice is None or key < choice[0]:
                choice = (key, row)
        if choice is None:
            return handed
        row = choice[1]
        by_project[row.project_id].remove(row)
        queue = _queue_name(row.wants_gpu, row.values)
        if _hand_over(row.id, row.attempt, queue, row.values, config, claim=True):
            handed.append(row.id)
            in_queue[(row.project_id, queue)] += 1
            admission.handed_over(row.project_id, row[3])
            last_handed[row.project_id] = utcnow()


def _queue_name(wants_gpu: bool, values) -> str:
    """A run that uses a GPU (quotas' rule, the one that also charges it) goes to the GPU
    queue, which only workers with a GPU serve."""
    from flautim.quotas import run_uses_gpu

    return GPU_QUEUE if run_uses_gpu(wants_gpu, values) else EXPERIMENT_QUEUE


def run_needs(wants_gpu: bool, values, transport: str | None) -> RunNeeds:
    """What a run asks of a worker, read from its hyperparameters as the worker reads them."""
    from flautim.quotas import run_clients, run_uses_gpu

    values = values if isinstance(values, dict) else {}
    return RunNeeds(
        clients=run_clients(values),
        transport=str(values.get("transport") or transport or "fast"),
        gpu=run_uses_gpu(wants_gpu, values),
        queue=_queue_name(wants_gpu, values),
    )


def _holdable(waiting: list, connection: redis.Redis, config: Config) -> list:
    """The waiting runs some live worker could hold. The others stay waiting in the
    database, their reason (or its removal, once a worker that fits has come) stored and
    published for their pages."""
    workers = live_workers(connection)
    kept, changed = [], {}
    for row in waiting:
        reason = unholdable_reason(run_needs(row.wants_gpu, row.values, row.transport), workers)
        if reason is None:
            kept.append(row)
        if reason != row.failure_reason:
            changed[row.id] = (row.attempt, reason)
    for experiment_id, (attempt, reason) in changed.items():
        db.session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.attempt == attempt,
                   Experiment.state == ExperimentState.QUEUED, Experiment.job_id.is_(None))
            .values(failure_reason=reason)
            .execution_options(synchronize_session=False)
        )
    if changed:
        db.session.commit()
        for experiment in db.session.scalars(
            select(Experiment).where(Experiment.id.in_(list(changed)))
            .execution_options(populate_existing=True)
        ):
            publish_state(experiment, config)
    return kept


def _runs_in_rq_queues(connection: redis.Redis) -> Counter:
    """How many runs of each project sit in each RQ queue, not yet taken by a worker."""
    job_queue = {}
    for name in (EXPERIMENT_QUEUE, GPU_QUEUE):
        for job_id in Queue(name, connection=connection).get_job_ids():
            job_queue[job_id] = name
    counts: Counter = Counter()
    if job_queue:
        rows = db.session.execute(
            select(Experiment.project_id, Experiment.job_id).where(
                Experiment.job_id.in_(list(job_queue)), Experiment.state == ExperimentState.QUEUED
            )
        ).all()
        for project_id, job_id in rows:
            counts[(project_id, job_queue[job_id])] += 1
    return counts


def _hand_over(experiment_id: int, attempt: int, queue: str, values, config: Config,
               claim: bool = False) -> str | None:
    """Put one attempt on its RQ queue: the row names its new job and is committed first,
    then the job is enqueued (a worker never finds a job whose row does not know it; a job
    lost between the two is put back by `requeue_lost`). With `claim`, only a row still
    waiting (no job) is taken, so two dispatchers never hand over the same run."""
    job_id = f"run-{int(experiment_id)}-{int(attempt)}-{secrets.token_hex(6)}"
    condition = [Experiment.id == experiment_id, Experiment.attempt == attempt,
                 Experiment.state == ExperimentState.QUEUED]
    if claim:
        condition.append(Experiment.job_id.is_(None))
    taken = db.session.execute(
        update(Experiment).where(*condition).values(job_id=job_id, dispatched_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if taken != 1:
        return None
    queue_for(queue, config).enqueue(
        RUN_JOB,
        experiment_id,
        attempt,
        job_id=job_id,
        job_timeout=_time_limit(values, config) + JOB_TIMEOUT_MARGIN_S,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"experiment {experiment_id} attempt {attempt}",
    )
    return job_id


def publish_state(experiment: Experiment, config: Config) -> None:
    """Tell live pages the experiment's state changed (best effort: pages also poll the DB)."""
    try:
        client = redis_for(config)
        client.publish(channel_for(client, experiment.id), encode(state_message(experiment)))
    except redis.RedisError:
        log.warning("could not publish the state of experiment %s", experiment.id)


def enqueue_dataset_inspection(dataset: Dataset, config: Config) -> str:
    """Queue the sandboxed inspection of `dataset` (runs `python -m flautim.fl inspect`).

    Sets inspection_status to "pending", commits, enqueues the id; the worker stores
    Dataset.inspection (sample counts, splits, labels, or the error with file and line) and
    inspection_status "ok" or "error".
    """
    dataset.inspection_status = "pending"
    db.session.commit()
    job = queue_for(INSPECTION_QUEUE, config).enqueue(
        INSPECT_JOB, dataset.id, job_timeout=600, result_ttl=600, failure_ttl=24 * 3600
    )
    return job.id


__all__ = [
    "DEFAULT_QUEUES", "EXPERIMENT_QUEUE", "GPU_QUEUE", "INSPECTION_QUEUE",
    "cancel_key", "channel_for", "dispatch_waiting_runs", "enqueue_dataset_inspection",
    "enqueue_experiment", "experiment_time_limit", "publish_state", "queue_for", "redis_for",
    "request_cancel",
]
