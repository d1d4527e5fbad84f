"""Virtual clients through the Docker sandbox: 12 clients in 3 client containers."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from flautim.models import Experiment, ExperimentEvent, ExperimentState, LogRecord, db
from flautim.sandbox.container_spec import LABEL_EXPERIMENT, LABEL_ROLE
from flautim.worker import job
from flautim.worker.queue import enqueue_experiment
from tests.worker.bundles import TINY, store_experiment, write_bundle

from .conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def config_overrides():
    return {"SANDBOX_BACKEND": "docker", "SANDBOX_CLIENT_MEMORY_MB": 768, "SANDBOX_SERVER_MEMORY_MB": 1024,
            "SANDBOX_GPUS": "", "SANDBOX_CLIENT_CONTAINERS": 3}


def test_twelve_clients_run_in_three_client_containers(app, worker_config, owner, tmp_path, docker_client):
    user_id, project_id = owner
    hp = (TINY / "hyperparameters.py").read_text().replace("num_clients = 2", "num_clients = 12")
    hp = hp.replace("rounds = 3", "rounds = 2")
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", hyperparameters=hp), project_id, user_id)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        attempt = experiment.attempt
    began = int(time.time()) - 1
    result = job.run_experiment(experiment_id, attempt)
    # Every container Docker created for the run, read from the engine's own events.
    created = docker_client.events(since=began, until=int(time.time()) + 1, decode=True, filters={
        "type": "container", "event": "create", "label": f"{LABEL_EXPERIMENT}={experiment_id}"})
    roles = sorted(e["Actor"]["Attributes"][LABEL_ROLE] for e in created)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        log = [f"{r.source}: {r.line}" for r in db.session.execute(select(LogRecord).where(
            LogRecord.experiment_id == experiment_id).order_by(LogRecord.id)).scalars()]
        assert result == "succeeded", f"{experiment.failure_reason}\n" + "\n".join(log[-40:])
        assert experiment.state == ExperimentState.SUCCEEDED
        assert experiment.summary["containers"] == 4
        sources = set(db.session.execute(select(LogRecord.source).where(
            LogRecord.experiment_id == experiment_id)).scalars())
        assert {"server", "clients-0-3", "clients-4-7", "clients-8-11"} <= sources
        trained = db.session.execute(select(ExperimentEvent.payload).where(
            ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == "client_train")).scalars().all()
        assert {e["client"] for e in trained} == set(range(12))
    # K + 2: prepare, the server and 3 client containers, not 12.
    assert roles == ["clients-0-3", "clients-4-7", "clients-8-11", "prepare", "server"]
    assert leftovers(docker_client, experiment_id) == []
