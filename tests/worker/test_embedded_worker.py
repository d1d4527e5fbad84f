"""The demo's embedded worker: a background process started from the web process."""

import time

import pytest

from flautim.models import Experiment, ExperimentState, db
from flautim.worker.main import start_embedded_worker
from flautim.worker.queue import enqueue_experiment

from .bundles import store_experiment, write_bundle

pytestmark = pytest.mark.slow


def test_embedded_worker_runs_a_queued_experiment(app, owner, tmp_path):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    process = start_embedded_worker(app)
    try:
        with app.app_context():
            enqueue_experiment(db.session.get(Experiment, experiment_id), app.extensions["flautim_config"])
        deadline = time.time() + 400
        state = None
        while time.time() < deadline:
            with app.app_context():
                state = db.session.get(Experiment, experiment_id).state
                db.session.remove()
            if state.is_terminal:
                break
            time.sleep(1)
        assert state == ExperimentState.SUCCEEDED
        assert process.is_alive()  # it keeps serving
    finally:
        process.terminate()
        process.join(timeout=20)
