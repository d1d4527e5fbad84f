"""Virtual clients take warm containers too: a group's pooled container mounts the group's
folder, and its clients' partitions appear in it as `prepare` writes them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flautim.models import ExperimentEvent, db
from tests.worker.bundles import TINY, store_experiment, write_bundle

from .conftest import leftovers
from .test_warm_pool import _run

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def config_overrides(config_overrides):
    # The server and two groups of three clients.
    return {**config_overrides, "SANDBOX_WARM_POOL": 3, "SANDBOX_CLIENT_CONTAINERS": 2}


def test_groups_of_virtual_clients_run_in_warm_containers(app, worker_config, owner, tmp_path, docker_client, pool):
    user_id, project_id = owner
    hyperparameters = (TINY / "hyperparameters.py").read_text().replace("num_clients = 2", "num_clients = 6")
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", hyperparameters=hyperparameters),
                                     project_id, user_id)
    result, state, reason, summary, logs = _run(app, experiment_id)
    assert result == "succeeded", reason + "\n" + "\n".join(f"{s}: {line}" for s, line in logs[-60:])
    assert ("platform", "[flautim] 3 of 3 server and client containers taken warm from the pool") in logs
    assert {"server", "clients-0-2", "clients-3-5"} <= {source for source, _ in logs}
    with app.app_context():
        trained = db.session.execute(select(ExperimentEvent.payload).where(
            ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == "client_train")).scalars().all()
    assert {e["client"] for e in trained} == set(range(6))
    assert summary["containers"] == 3  # the server and two groups
    assert leftovers(docker_client, experiment_id) == []
