"""Faults of the worker itself, on real PostgreSQL and Redis (issue 13 §5): nothing stays
"running", nothing healthy is reaped, nothing queued is lost.

- a work horse killed with SIGKILL while its worker survives;
- a run whose worker vanished, noticed by another worker's periodic maintenance;
- a run whose supervision loop is blocked longer than the heartbeat's time to live;
- a queued run whose RQ job failed before it started (the database was away).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
import time

import pytest
from rq import Queue, Worker
from rq.job import Job

from flautim.fl.events import event_line, make_event
from flautim.models import Experiment, ExperimentState, FailureKind, db
from flautim.sandbox import RunOutcome
from flautim.worker import job
from flautim.worker.database import use_config
from flautim.worker.heartbeat import Heartbeat, is_alive
from flautim.worker.main import MAX_REQUEUES, child_pids, reap_orphans, requeue_lost, run_worker
from flautim.worker.queue import enqueue_experiment, redis_for

from .bundles import TINY, store_experiment, write_bundle
from .test_local_runs import SLOW_API_SUFFIX


def _slow_bundle(path):
    bundle = write_bundle(path)
    # Each training loop sleeps: a run that lasts minutes unless something stops it.
    (bundle / "api.py").write_text((bundle / "api.py").read_text() + SLOW_API_SUFFIX.replace("sleep(4)", "sleep(2)"))
    (bundle / "hyperparameters.py").write_text(
        (TINY / "hyperparameters.py").read_text().replace("rounds = 3", "rounds = 100")
    )
    return bundle


def _experiment(app, experiment_id) -> Experiment:
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        db.session.expunge(experiment)
        db.session.remove()
        return experiment


def _wait(predicate, timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


def _enqueue(app, experiment_id) -> int:
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        attempt = experiment.attempt
        db.session.remove()
        return attempt


def shorten_beats(app):
    """Short heartbeats and maintenance, so a test sees in seconds what takes a minute."""
    config = dataclasses.replace(
        app.extensions["flautim_config"], WORKER_HEARTBEAT_TTL_S=3, WORKER_MAINTENANCE_INTERVAL_S=2
    )
    app.extensions["flautim_config"] = config
    use_config(config)
    return config


@contextlib.contextmanager
def running_worker(config):
    """A real `flautim worker` (RQ's forking worker) in its own process, stopped after."""
    process = multiprocessing.get_context("spawn").Process(
        target=run_worker, kwargs={"queues": ["experiments"], "config": config}, daemon=True
    )
    process.start()
    try:
        yield process
    finally:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
            process.join(20)
        if process.is_alive():
            process.kill()
            process.join(5)


@pytest.fixture
def short_beats(app):
    return shorten_beats(app)


@pytest.fixture
def worker_process(short_beats):
    with running_worker(short_beats) as process:
        yield process


def _run_processes(experiment_id) -> list[int]:
    """The local sandbox's processes of this run (`python -m flautim.fl ...` in its folders)."""
    marker = f"/experiments/{experiment_id}/".encode()
    found = []
    for entry in os.scandir("/proc"):
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if entry.name.isdigit() and b"flautim.fl" in cmdline and marker in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_killed_work_horse_fails_its_run_at_once_and_the_worker_lives_on(
    app, worker_config, short_beats, owner, tmp_path, worker_process
):
    user_id, project_id = owner
    experiment_id = store_experiment(app, _slow_bundle(tmp_path / "b"), project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    assert _wait(lambda: _experiment(app, experiment_id).state == ExperimentState.RUNNING, 120)
    horses = child_pids(worker_process.pid)
    assert len(horses) == 1, horses
    time.sleep(1)

    os.kill(horses[0], signal.SIGKILL)
    killed_at = time.monotonic()

    assert _wait(lambda: _experiment(app, experiment_id).state.is_terminal, 60), (
        "the experiment stayed running after its work horse was killed"
    )
    resolved_s = time.monotonic() - killed_at
    experiment = _experiment(app, experiment_id)
    assert experiment.state == ExperimentState.FAILED
    assert experiment.failure_kind == FailureKind.INFRASTRUCTURE
    assert "killed" in experiment.failure_reason and "signal 9" in experiment.failure_reason
    assert not is_alive(redis_for(short_beats), experiment_id, attempt)
    assert worker_process.is_alive(), "the worker died with its work horse"
    # The run's own processes (the local sandbox's) do not outlive it: the worker adopted
    # and ended them.
    assert _wait(lambda: not _run_processes(experiment_id), 10), _run_processes(experiment_id)
    print(f"\nFIGURE horse SIGKILL (local sandbox): experiment failed {resolved_s:.1f} s after the kill; "
          f"reason: {experiment.failure_reason}")


@pytest.mark.slow
def test_another_workers_maintenance_reaps_a_run_whose_worker_vanished(
    app, worker_config, short_beats, owner, tmp_path, worker_process
):
    """A run left "running" by a worker that died with its horse (no one to clean up at
    once): an idle worker's periodic maintenance fails it, not only a worker's start."""
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    # The idle worker has started (and done its start-up reaping) before the run is orphaned.
    assert _wait(lambda: Worker.count(connection=redis_for(short_beats)) > 0, 60)
    time.sleep(3)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        experiment.transition(ExperimentState.QUEUED)
        experiment.transition(ExperimentState.PREPARING)
        experiment.transition(ExperimentState.RUNNING)
        db.session.commit()
        db.session.remove()
    orphaned_at = time.monotonic()

    assert _wait(lambda: _experiment(app, experiment_id).state.is_terminal, 60), (
        "no worker noticed the orphaned run"
    )
    experiment = _experiment(app, experiment_id)
    assert experiment.state == ExperimentState.FAILED
    assert "heartbeat vanished" in experiment.failure_reason
    print(f"\nFIGURE orphan reaped by maintenance in {time.monotonic() - orphaned_at:.1f} s "
          f"(interval {short_beats.WORKER_MAINTENANCE_INTERVAL_S} s, heartbeat TTL {short_beats.WORKER_HEARTBEAT_TTL_S} s)")


class BlockedSandbox:
    """A run whose supervision loop is stuck (starting many containers, a slow ingest) for
    `block_s` without calling control.beat(), then ends well."""

    isolated = True

    def __init__(self, block_s: float) -> None:
        self.block_s = block_s

    def run(self, plan, sink, control):
        sink.phase("running")
        time.sleep(self.block_s)
        sink.line("server", "stdout", event_line(make_event(
            "run_finished", status="completed", duration_s=self.block_s, rounds_completed=0)))
        return RunOutcome("succeeded", duration_s=self.block_s)

    def replenish(self) -> None:
        pass


@pytest.mark.slow
def test_a_run_whose_supervision_loop_is_blocked_past_the_heartbeat_ttl_is_not_reaped(
    app, worker_config, short_beats, owner, tmp_path, monkeypatch
):
    config = short_beats
    ttl = Heartbeat(None, config, 0, 0).ttl
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    # Blocked for longer than the heartbeat lives (and than the old 10 s floor).
    block_s = max(ttl, 10) + 4
    monkeypatch.setattr(job, "sandbox_for", lambda config: BlockedSandbox(block_s))
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("state", job.run_experiment(experiment_id, attempt)))
    runner.start()
    reaped = []
    connection = redis_for(config)
    # Another worker's reaper looks every second while the run is blocked.
    while runner.is_alive():
        reaped += reap_orphans(config, connection, recheck_after_s=1)
        time.sleep(1)
    runner.join()

    assert reaped == [], "a healthy run was reaped while its supervision loop was busy"
    assert result["state"] == "succeeded"
    assert _experiment(app, experiment_id).state == ExperimentState.SUCCEEDED


def _failed_job(connection, experiment_id, attempt) -> Job:
    """An RQ job of the run that failed before it started (as when the work horse could not
    reach the database), in RQ's failed registry."""
    queue = Queue("experiments", connection=connection)
    rq_job = queue.enqueue("flautim.worker.job.run_experiment", experiment_id, attempt, failure_ttl=3600)
    queue.remove(rq_job)
    rq_job.set_status("failed")
    queue.failed_job_registry.add(rq_job, ttl=3600)
    return rq_job


def _set_queued_long_ago(app, experiment_id, job_id) -> None:
    from datetime import timedelta

    from flautim.models import utcnow

    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        if experiment.state != ExperimentState.QUEUED:
            experiment.transition(ExperimentState.QUEUED)
        experiment.queued_at = utcnow() - timedelta(minutes=5)
        if hasattr(experiment, "dispatched_at"):
            experiment.dispatched_at = experiment.queued_at
        experiment.job_id = job_id
        db.session.commit()
        db.session.remove()


def test_a_queued_run_whose_job_failed_before_starting_is_queued_again_then_given_up(
    app, worker_config, owner, tmp_path
):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    connection = redis_for(worker_config)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        experiment.transition(ExperimentState.QUEUED)
        db.session.commit()
        attempt = experiment.attempt
        db.session.remove()

    for _ in range(MAX_REQUEUES):
        failed = _failed_job(connection, experiment_id, attempt)
        _set_queued_long_ago(app, experiment_id, failed.id)
        assert requeue_lost(worker_config, connection) == [experiment_id]
        experiment = _experiment(app, experiment_id)
        assert experiment.state == ExperimentState.QUEUED and experiment.job_id != failed.id
        waiting = Job.fetch(experiment.job_id, connection=connection)
        assert waiting.get_status() == "queued" and waiting.args == (experiment_id, attempt)
        # A job that waits (or runs) is left alone.
        _set_queued_long_ago(app, experiment_id, waiting.id)
        assert requeue_lost(worker_config, connection) == []

    # A job that fails every time is not queued for ever: the experiment fails, saying why.
    failed = _failed_job(connection, experiment_id, attempt)
    _set_queued_long_ago(app, experiment_id, failed.id)
    assert requeue_lost(worker_config, connection) == []
    experiment = _experiment(app, experiment_id)
    assert experiment.state == ExperimentState.FAILED
    assert experiment.failure_kind == FailureKind.INFRASTRUCTURE
    assert "could not start" in experiment.failure_reason
