"""A cancel racing a worker that is just starting the run: cancelled wins, on real
PostgreSQL and Redis (issue 13 §5).

The sandbox is a stand-in that records whether it ran and whether it saw the cancel: what
is tested is the state machine between the web's cancel and the worker's start.
"""

from __future__ import annotations

import threading
import time

from flautim.models import Experiment, ExperimentState, db
from flautim.sandbox import RunOutcome
from flautim.worker import job
from flautim.worker.queue import enqueue_experiment, request_cancel

from .bundles import store_experiment, write_bundle


class RecordingSandbox:
    """Runs nothing; waits (at most `wait_s`) for the cancel a real run would obey."""

    isolated = True

    def __init__(self, wait_s: float = 15.0) -> None:
        self.wait_s = wait_s
        self.ran = threading.Event()
        self.saw_cancel = threading.Event()

    def run(self, plan, sink, control):
        self.ran.set()
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            control.beat()
            if control.cancelled():
                self.saw_cancel.set()
                return RunOutcome("cancelled", reason="cancelled by a user")
            time.sleep(0.05)
        return RunOutcome("succeeded")

    def replenish(self) -> None:
        pass


def _queued(app, tmp_path, owner, name="exp") -> int:
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / name), project_id, user_id, name=name)
    with app.app_context():
        enqueue_experiment(db.session.get(Experiment, experiment_id), app.extensions["flautim_config"])
    return experiment_id


def _state(app, experiment_id) -> ExperimentState:
    with app.app_context():
        state = db.session.get(Experiment, experiment_id).state
        db.session.remove()
        return state


def _cancel(app, experiment_id) -> None:
    """The web's cancel, in its own thread and session (as a request would be)."""

    def cancel() -> None:
        with app.app_context():
            request_cancel(db.session.get(Experiment, experiment_id), app.extensions["flautim_config"])
            db.session.remove()

    thread = threading.Thread(target=cancel)
    thread.start()
    thread.join(30)


def test_a_cancel_committed_while_the_worker_starts_wins_and_nothing_runs(
    app, worker_config, owner, tmp_path, monkeypatch
):
    experiment_id = _queued(app, tmp_path, owner)
    sandbox = RecordingSandbox()
    monkeypatch.setattr(job, "sandbox_for", lambda config: sandbox)
    real_build_plan = job.build_plan

    def build_plan_then_cancel(experiment, config):
        # The worker has read "queued"; the user's cancel commits now, before the worker
        # writes "preparing".
        plan = real_build_plan(experiment, config)
        _cancel(app, experiment_id)
        return plan

    monkeypatch.setattr(job, "build_plan", build_plan_then_cancel)

    result = job.run_experiment(experiment_id)

    assert result == "cancelled"
    assert _state(app, experiment_id) == ExperimentState.CANCELLED
    assert not sandbox.ran.is_set(), "the worker started a run the user had cancelled"


def test_a_cancel_read_before_the_worker_started_stops_the_run(app, worker_config, owner, tmp_path, monkeypatch):
    experiment_id = _queued(app, tmp_path, owner)
    sandbox = RecordingSandbox()
    monkeypatch.setattr(job, "sandbox_for", lambda config: sandbox)
    with app.app_context():
        # The web reads "queued"; the worker starts the run before the cancel is written.
        stale = db.session.get(Experiment, experiment_id)
        assert stale.state == ExperimentState.QUEUED
        worker = threading.Thread(target=job.run_experiment, args=(experiment_id,))
        worker.start()
        assert sandbox.ran.wait(30)
        request_cancel(stale, app.extensions["flautim_config"])
        db.session.remove()
    worker.join(30)

    assert sandbox.saw_cancel.is_set(), "the run went on while the page said cancelled"
    assert _state(app, experiment_id) == ExperimentState.CANCELLED


def test_cancel_and_start_at_the_same_moment_always_end_cancelled(app, worker_config, owner, tmp_path, monkeypatch):
    """Both orders, many times, with real threads released together."""
    ids = [_queued(app, tmp_path, owner, name=f"e{i}") for i in range(12)]
    for experiment_id in ids:
        sandbox = RecordingSandbox(wait_s=10)
        monkeypatch.setattr(job, "sandbox_for", lambda config, s=sandbox: s)
        barrier = threading.Barrier(2)

        def start(eid=experiment_id, b=barrier):
            b.wait()
            job.run_experiment(eid)

        def cancel(eid=experiment_id, b=barrier):
            with app.app_context():
                experiment = db.session.get(Experiment, eid)
                b.wait()
                request_cancel(experiment, app.extensions["flautim_config"])
                db.session.remove()

        threads = [threading.Thread(target=start), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert _state(app, experiment_id) == ExperimentState.CANCELLED
        if sandbox.ran.is_set():
            assert sandbox.saw_cancel.is_set(), f"experiment {experiment_id} ran on after its cancel"
