"""Runs through the Docker sandbox: the real image, containers, network and capture."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flautim.models import Experiment, ExperimentState, LogRecord, ModelArtifact, db
from flautim.worker import job
from flautim.worker.main import reap_orphans
from flautim.worker.queue import enqueue_experiment, redis_for
from tests.worker.bundles import TINY, store_experiment, write_bundle

from .conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _enqueue(app, experiment_id):
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        return experiment.attempt


def _state(app, experiment_id):
    with app.app_context():
        e = db.session.get(Experiment, experiment_id)
        return e.state, e.failure_kind, e.failure_reason, dict(e.summary or {})


def test_docker_run_succeeds_and_leaves_nothing_behind(app, worker_config, owner, tmp_path, docker_client):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    assert job.run_experiment(experiment_id, attempt) == "succeeded"
    state, kind, reason, summary = _state(app, experiment_id)
    assert state == ExperimentState.SUCCEEDED, reason
    assert summary["metric"] == "accuracy" and summary["metric_value"] > 0.5
    with app.app_context():
        sources = set(db.session.execute(select(LogRecord.source).where(
            LogRecord.experiment_id == experiment_id)).scalars())
        assert {"server", "client-0", "client-1", "platform"} <= sources
        assert db.session.execute(select(ModelArtifact).where(
            ModelArtifact.experiment_id == experiment_id)).scalars().first() is not None
    assert leftovers(docker_client, experiment_id) == []


def test_docker_run_with_the_flower_transport(app, worker_config, owner, tmp_path, docker_client):
    """A SuperLink in the server container and one SuperNode per client container."""
    user_id, project_id = owner
    hyperparameters = (TINY / "hyperparameters.py").read_text() + 'transport = "flower"\n'
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", hyperparameters=hyperparameters), project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    result = job.run_experiment(experiment_id, attempt)
    with app.app_context():
        log = [f"{r.source}: {r.line}" for r in db.session.execute(select(LogRecord).where(
            LogRecord.experiment_id == experiment_id).order_by(LogRecord.id)).scalars()]
    state, _, reason, summary = _state(app, experiment_id)
    assert result == "succeeded", reason + "\n" + "\n".join(log[-60:])
    assert state == ExperimentState.SUCCEEDED, reason
    assert summary["metric"] == "accuracy" and summary["metric_value"] > 0.5
    with app.app_context():
        lines = db.session.execute(select(LogRecord.source, LogRecord.line).where(
            LogRecord.experiment_id == experiment_id)).all()
        assert any(source == "superlink" for source, _ in lines)
        assert any(source == "client-1" and "[supernode]" in line for source, line in lines)
        assert db.session.execute(select(ModelArtifact).where(
            ModelArtifact.experiment_id == experiment_id)).scalars().first() is not None
    assert leftovers(docker_client, experiment_id) == []


def test_reaper_removes_containers_of_a_dead_worker_and_fails_its_experiment(
    app, worker_config, owner, tmp_path, docker_client
):
    """A worker that died mid-run left a container and its experiment in "running"."""
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        experiment.transition(ExperimentState.QUEUED)
        experiment.transition(ExperimentState.PREPARING)
        experiment.transition(ExperimentState.RUNNING)
        db.session.commit()
    labels = {"org.flautim.experiment": str(experiment_id), "org.flautim.attempt": "1",
              "org.flautim.role": "client-0"}
    network = docker_client.networks.create(f"flautim-test-reap-{experiment_id}", internal=True, labels=labels)
    docker_client.containers.run("flautim-sandbox:cpu", entrypoint=["sleep", "600"], detach=True,
                                 labels=labels, network=network.name, user="10001:10001")
    assert leftovers(docker_client, experiment_id)
    failed = reap_orphans(worker_config, redis_for(worker_config), recheck_after_s=0)
    assert failed == [experiment_id]
    assert leftovers(docker_client, experiment_id) == []
    state, kind, reason, _ = _state(app, experiment_id)
    assert state == ExperimentState.FAILED
    assert kind == "infrastructure"
    assert "worker" in reason


def test_reaper_leaves_live_runs_alone(app, worker_config, owner, tmp_path, docker_client):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        experiment.transition(ExperimentState.QUEUED)
        experiment.transition(ExperimentState.PREPARING)
        db.session.commit()
    from flautim.worker.heartbeat import Heartbeat

    Heartbeat(redis_for(worker_config), worker_config, experiment_id, 1).beat()
    labels = {"org.flautim.experiment": str(experiment_id), "org.flautim.attempt": "1"}
    container = docker_client.containers.run("flautim-sandbox:cpu", entrypoint=["sleep", "600"],
                                             detach=True, labels=labels, network_disabled=True)
    try:
        assert reap_orphans(worker_config, redis_for(worker_config), recheck_after_s=0) == []
        container.reload()
        assert container.status == "running"
        assert _state(app, experiment_id)[0] == ExperimentState.PREPARING
    finally:
        container.remove(force=True)
