"""Virtual clients through the queue, the worker and the local sandbox: 20 clients in 2
client processes, each client still itself in the stored events and metrics."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flautim.models import Experiment, ExperimentEvent, ExperimentState, LogRecord, MetricRow, db
from flautim.worker.main import run_worker
from flautim.worker.queue import enqueue_experiment

from .bundles import TINY, store_experiment, write_bundle

pytestmark = pytest.mark.slow


@pytest.fixture
def config_overrides():
    return {"SANDBOX_BACKEND": "local", "SANDBOX_CLIENT_CONTAINERS": 2}


def test_twenty_clients_run_in_two_client_processes(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    hp = (TINY / "hyperparameters.py").read_text().replace("num_clients = 2", "num_clients = 20")
    hp = hp.replace("rounds = 3", "rounds = 2")
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", hyperparameters=hp), project_id, user_id)
    with app.app_context():
        enqueue_experiment(db.session.get(Experiment, experiment_id), app.extensions["flautim_config"])

    run_worker(["experiments"], burst=True, config=worker_config)

    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        assert experiment.state == ExperimentState.SUCCEEDED, experiment.failure_reason
        assert experiment.summary["containers"] == 3  # the server and 2 client processes
        sources = {s for (s,) in db.session.execute(
            select(LogRecord.source).where(LogRecord.experiment_id == experiment_id)).all()}
        assert {"server", "clients-0-9", "clients-10-19"} <= sources
        assert not any(s.startswith("client-") for s in sources)
        trained = db.session.execute(select(ExperimentEvent.payload).where(
            ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == "client_train")).scalars().all()
        assert len(trained) == 2 * 20  # fraction_fit 1.0: every client, every round
        assert {e["client"] for e in trained} == set(range(20))
        metric_sources = set(db.session.execute(select(MetricRow.source).where(
            MetricRow.experiment_id == experiment_id, MetricRow.phase == "train")).scalars())
        assert {"client-0", "client-19"} <= metric_sources
