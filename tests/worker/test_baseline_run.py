"""The centralized baseline runs through the real queue, worker and local sandbox: one client
holding all the training data, the same rounds and local epochs, the same held-out data, and
its comparison with the federated parent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flautim.models import Experiment, ExperimentEvent, ExperimentState, Project, User, db
from flautim.worker.main import run_worker
from flautim.worker.queue import enqueue_experiment

from .bundles import store_experiment, write_bundle

pytestmark = pytest.mark.slow


def _events(experiment_id: int, type_: str) -> list[dict]:
    return list(db.session.scalars(
        select(ExperimentEvent.payload)
        .where(ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == type_)
        .order_by(ExperimentEvent.id)
    ))


def test_the_baseline_trains_one_client_on_all_the_data_for_the_same_epochs(app, worker_config, owner, tmp_path):
    from flautim.web.experiments import baseline

    user_id, project_id = owner
    parent_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id, name="federado")
    with app.app_context():
        enqueue_experiment(db.session.get(Experiment, parent_id), worker_config)
    run_worker(["experiments"], burst=True, config=worker_config)

    with app.test_request_context():
        parent = db.session.get(Experiment, parent_id)
        assert parent.state == ExperimentState.SUCCEEDED, parent.failure_reason
        child = baseline.start_baseline(db.session.get(Project, project_id), db.session.get(User, user_id), parent)
        child_id = child.id
        assert child.state == ExperimentState.QUEUED
    run_worker(["experiments"], burst=True, config=worker_config)

    with app.test_request_context():
        child = db.session.get(Experiment, child_id)
        assert child.state == ExperimentState.SUCCEEDED, child.failure_reason
        assert child.rounds_done == 3
        [started] = _events(child_id, "run_started")
        assert started["clients"] == 1 and started["rounds"] == 3
        # One client holding every training sample the parent's two clients held.
        [federated_split] = _events(parent_id, "partition_summary")
        [central_split] = _events(child_id, "partition_summary")
        assert len(federated_split["clients"]) == 2 and len(central_split["clients"]) == 1
        held = lambda split: sum(c["train_examples"] + c["val_examples"] for c in split["clients"])  # noqa: E731
        assert held(central_split) == held(federated_split) > 0
        # The same passes over the data: each round trains on as many examples in all.
        for r in (1, 2, 3):
            federated = [e["examples"] for e in _events(parent_id, "client_train") if e["round"] == r]
            central = [e["examples"] for e in _events(child_id, "client_train") if e["round"] == r]
            assert len(federated) == 2 and len(central) == 1
            assert sum(federated) == central[0]

        body = baseline.comparison(db.session.get(Experiment, parent_id))
        assert body["baseline"].id == child_id and body["can_start"] is True
        assert body["metric"] == "accuracy" and body["series"] == "central"
        curves = body["curves"]["accuracy"]
        assert [r for r, _v in curves["centralized"]] == [0, 1, 2, 3]  # evaluated on the server's data
        assert body["gap"]["federated"] == curves["federated"][-1][1]
        assert body["gap"]["centralized"] == curves["centralized"][-1][1]
        assert body["gap"]["ratio"] == pytest.approx(body["gap"]["federated"] / body["gap"]["centralized"])
        assert body["gap_text"].startswith("federado atinge ")
