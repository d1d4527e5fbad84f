"""Putting work on the RQ queues and asking running work to stop.

The database row owns the work; the queue carries only its id. The caller commits the state
change first and enqueues second, so a fast worker always finds the row (the reverse order
loses runs). Web code calls these functions; it never imports the job or the sandbox.
"""

from __future__ import annotations

import logging

import redis
from rq import Queue
from rq.job import Job

from flautim.config import Config
from flautim.models import Dataset, Experiment, ExperimentState, db
from flautim.redis_connection import redis_url

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


def _config(config: Config | None) -> Config:
    if config is not None:
        return config
    from flask import current_app

    return current_app.extensions["flautim_config"]


def redis_for(config: Config | None = None) -> redis.Redis:
    """A Redis client for the queues and the live channels (the embedded one in the demo)."""
    return redis.Redis.from_url(redis_url(_config(config)))


def queue_for(name: str, config: Config | None = None) -> Queue:
    return Queue(name, connection=redis_for(config))


def cancel_key(experiment_id: int, attempt: int) -> str:
    return f"flautim:cancel:{int(experiment_id)}:{int(attempt)}"


def channel_for(experiment_id: int) -> str:
    """The Redis pub/sub channel of an experiment's live updates."""
    return f"flautim:experiment:{int(experiment_id)}"


def experiment_time_limit(experiment: Experiment, config: Config) -> int:
    """The run's wall-clock limit: hyperparameters' time_limit_s, capped by the site's."""
    values = experiment.hyperparameter_file.values if experiment.hyperparameter_file else {}
    wanted = values.get("time_limit_s") if isinstance(values, dict) else None
    if not isinstance(wanted, (int, float)) or isinstance(wanted, bool) or wanted <= 0:
        wanted = config.DEFAULT_EXPERIMENT_SECONDS
    return int(min(wanted, config.MAX_EXPERIMENT_SECONDS))


def enqueue_experiment(experiment: Experiment, config: Config | None = None) -> str:
    """Queue a run of `experiment` (validated by the caller) and return the RQ job id.

    Moves the experiment from draft (or a finished state: a re-run is a new attempt) to
    queued (unless the caller already did), commits, then puts only its id on the "experiments" queue ("experiments-gpu"
    when the experiment wants a GPU). Raises InvalidTransition when it is already active.
    """
    config = _config(config)
    # The web service may already have moved it to queued (a new attempt) and committed.
    if experiment.state != ExperimentState.QUEUED:
        experiment.transition(ExperimentState.QUEUED)
        db.session.commit()
    name = GPU_QUEUE if experiment.wants_gpu else EXPERIMENT_QUEUE
    queue = queue_for(name, config)
    job = queue.enqueue(
        RUN_JOB,
        experiment.id,
        experiment.attempt,
        job_timeout=experiment_time_limit(experiment, config) + JOB_TIMEOUT_MARGIN_S,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"experiment {experiment.id} attempt {experiment.attempt}",
    )
    experiment.job_id = job.id
    db.session.commit()
    publish_state(experiment, config)
    return job.id


def request_cancel(experiment: Experiment, config: Config | None = None) -> None:
    """Stop `experiment`: a queued one is cancelled now; a running one within seconds.

    For a running experiment this sets `cancel_requested` and a Redis flag the worker
    polls every half second; the worker then kills the containers and records the state.
    Finished experiments are left as they are.
    """
    config = _config(config)
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


def publish_state(experiment: Experiment, config: Config | None = None) -> None:
    """Tell live pages the experiment's state changed (best effort: pages also poll the DB)."""
    import json

    message = {
        "kind": "state",
        "id": experiment.id,
        "state": str(experiment.state),
        "attempt": experiment.attempt,
        "failure_kind": str(experiment.failure_kind) if experiment.failure_kind else None,
        "failure_reason": experiment.failure_reason,
        "cancel_requested": experiment.cancel_requested,
        "rounds_done": experiment.rounds_done,
        "rounds_total": experiment.rounds_total,
    }
    try:
        redis_for(_config(config)).publish(channel_for(experiment.id), json.dumps(message))
    except redis.RedisError:
        log.warning("could not publish the state of experiment %s", experiment.id)


def enqueue_dataset_inspection(dataset: Dataset, config: Config | None = None) -> str:
    """Queue the sandboxed inspection of `dataset` (runs `python -m flautim.fl inspect`).

    Sets inspection_status to "pending", commits, enqueues the id; the worker stores
    Dataset.inspection (sample counts, splits, labels, or the error with file and line) and
    inspection_status "ok" or "error".
    """
    config = _config(config)
    dataset.inspection_status = "pending"
    db.session.commit()
    job = queue_for(INSPECTION_QUEUE, config).enqueue(
        INSPECT_JOB, dataset.id, job_timeout=600, result_ttl=600, failure_ttl=24 * 3600
    )
    return job.id


__all__ = [
    "DEFAULT_QUEUES", "EXPERIMENT_QUEUE", "GPU_QUEUE", "INSPECTION_QUEUE",
    "cancel_key", "channel_for", "enqueue_dataset_inspection", "enqueue_experiment",
    "experiment_time_limit", "publish_state", "queue_for", "redis_for", "request_cancel",
]
