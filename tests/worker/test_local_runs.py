"""Whole runs through the queue, the worker and the local sandbox, on real PostgreSQL and
Redis with the real runtime processes."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import redis
from sqlalchemy import select

from flautim import storage
from flautim.models import (
    Experiment,
    ExperimentEvent,
    ExperimentState,
    FailureKind,
    LogRecord,
    MetricRow,
    ModelArtifact,
    db,
)
from flautim.worker import job
from flautim.worker.main import run_worker
from flautim.worker.queue import channel_for, enqueue_experiment, request_cancel
from tests.conftest import REDIS_URL

from .bundles import store_experiment, write_bundle

pytestmark = pytest.mark.slow

SLOW_API_SUFFIX = '''

import time as _time

_original = DigitsExperiment.training_loop


def _slow(self, data_loader):
    _time.sleep(4)
    return _original(self, data_loader)


DigitsExperiment.training_loop = _slow
'''


def _experiment(app, experiment_id):
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        db.session.expunge(experiment)
        return experiment


def _enqueue(app, experiment_id):
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        return experiment.attempt


def test_a_run_through_the_real_queue_stores_logs_events_metrics_and_checkpoints(
    app, worker_config, owner, tmp_path
):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    client = redis.Redis.from_url(REDIS_URL)
    listener = client.pubsub()
    listener.subscribe(channel_for(client, experiment_id))
    attempt = _enqueue(app, experiment_id)
    assert _experiment(app, experiment_id).state == ExperimentState.QUEUED

    run_worker(["experiments"], burst=True, config=worker_config)

    experiment = _experiment(app, experiment_id)
    assert experiment.state == ExperimentState.SUCCEEDED, experiment.failure_reason
    assert experiment.attempt == attempt == 1
    assert experiment.rounds_total == 3 and experiment.rounds_done == 3
    assert experiment.summary["metric"] == "accuracy" and experiment.summary["metric_mode"] == "max"
    assert 0.0 < experiment.summary["metric_value"] <= 1.0
    assert experiment.summary["metric_best"] >= experiment.summary["metric_value"]
    assert "mean_round_s" in experiment.summary
    with app.app_context():
        sources = {s for (s,) in db.session.execute(
            select(LogRecord.source).where(LogRecord.experiment_id == experiment_id)).all()}
        assert {"platform", "server", "client-0", "client-1"} <= sources
        types = [t for (t,) in db.session.execute(
            select(ExperimentEvent.type).where(ExperimentEvent.experiment_id == experiment_id)
            .order_by(ExperimentEvent.id)).all()]
        assert types[0] == "partition_summary" and "run_started" in types
        assert types[-1] == "run_finished"
        assert types.count("client_train") == 6
        train_losses = db.session.execute(select(MetricRow).where(
            MetricRow.experiment_id == experiment_id, MetricRow.phase == "train",
            MetricRow.source == "client-1", MetricRow.name == "loss")).scalars().all()
        assert sorted(m.round for m in train_losses) == [1, 2, 3]
        artifacts = db.session.execute(select(ModelArtifact).where(
            ModelArtifact.experiment_id == experiment_id)).scalars().all()
        assert artifacts, "no checkpoint was ingested"
        for artifact in artifacts:
            path = storage.absolute(worker_config.data_path, artifact.storage_path)
            assert path.is_file() and path.stat().st_size == artifact.size_bytes > 0
            assert "/checkpoints/" in artifact.storage_path
            # The runtime's JSON card travels with each file: round, hyperparameters, code hash.
            assert artifact.card["round"] == artifact.round
            assert artifact.card["code_hash"] and "hyperparameters" in artifact.card
        assert {a.kind for a in artifacts} >= {"final"}
    # The scratch space is gone; the checkpoints stay.
    attempt_dir = storage.attempt_dir(worker_config.data_path, project_id, experiment_id, 1)
    assert not (attempt_dir / "work").exists()

    kinds = set()
    deadline = time.time() + 5
    while time.time() < deadline:
        message = listener.get_message(timeout=0.5)
        if message and message["type"] == "message":
            payload = json.loads(message["data"])
            kinds.add(payload["kind"])
            assert "id" in payload
        elif message is None and {"log", "event", "state"} <= kinds:
            break
    assert {"log", "event", "state"} <= kinds


BROKEN_API = '''
from torch import nn
from flautim.fl import Experiment


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x)


class Broken(Experiment):
    def training_loop(self, data_loader):
        raise RuntimeError("deliberate failure in training")

    def validation_loop(self, data_loader):
        return 0.0, {}
'''


def test_a_failing_client_is_reported_as_user_code_with_its_traceback(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", api=BROKEN_API), project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    assert job.run_experiment(experiment_id, attempt) == "failed"
    experiment = _experiment(app, experiment_id)
    assert experiment.failure_kind == FailureKind.USER_CODE
    assert "deliberate failure" in (experiment.failure_reason or "") or "api.py" in (experiment.failure_reason or "")
    with app.app_context():
        lines = [line for (line,) in db.session.execute(select(LogRecord.line).where(
            LogRecord.experiment_id == experiment_id)).all()]
        events = db.session.execute(select(ExperimentEvent).where(
            ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == "error")).scalars().all()
    text = "\n".join(lines) + json.dumps([e.payload for e in events])
    assert "deliberate failure in training" in text
    assert "Traceback" in text or "traceback" in text


def _wait_for_state(app, experiment_id, state, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _experiment(app, experiment_id).state == state:
            return True
        time.sleep(0.2)
    return False


def test_cancel_stops_a_running_experiment_within_seconds(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    slow = (tmp_path / "api.py")
    bundle = write_bundle(tmp_path / "b")
    slow.write_text((bundle / "api.py").read_text() + SLOW_API_SUFFIX)
    (bundle / "api.py").write_text(slow.read_text())
    experiment_id = store_experiment(app, bundle, project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("state", job.run_experiment(experiment_id, attempt)))
    thread.start()
    assert _wait_for_state(app, experiment_id, ExperimentState.RUNNING, 120)
    time.sleep(2)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        request_cancel(experiment, app.extensions["flautim_config"])
        asked = time.monotonic()
    thread.join(timeout=60)
    assert not thread.is_alive()
    stopped_after = time.monotonic() - asked
    assert result["state"] == "cancelled"
    experiment = _experiment(app, experiment_id)
    assert experiment.state == ExperimentState.CANCELLED
    assert experiment.cancel_requested
    print(f"cancel took {stopped_after:.1f} s")


def test_time_limit_is_enforced_from_outside(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    bundle = write_bundle(tmp_path / "b")
    # A training loop stuck far longer than the limit: only the worker can end it.
    (bundle / "api.py").write_text((bundle / "api.py").read_text() + SLOW_API_SUFFIX.replace("sleep(4)", "sleep(600)"))
    hp = re.sub(r"(?m)^time_limit_s\s*=.*$", "", (bundle / "hyperparameters.py").read_text())
    hp += "\ntime_limit_s = 25\n"
    (bundle / "hyperparameters.py").write_text(hp)
    experiment_id = store_experiment(app, bundle, project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    assert job.run_experiment(experiment_id, attempt) == "timed_out"
    experiment = _experiment(app, experiment_id)
    assert experiment.failure_kind == FailureKind.TIME_LIMIT
    assert "25 s" in experiment.failure_reason
    with app.app_context():
        notes = db.session.execute(select(LogRecord.line).where(
            LogRecord.experiment_id == experiment_id, LogRecord.source == "platform")).scalars().all()
    assert any("time limit" in n for n in notes)


def test_cancel_while_queued_is_immediate_and_the_worker_skips_it(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    with app.app_context():
        request_cancel(db.session.get(Experiment, experiment_id), app.extensions["flautim_config"])
    assert _experiment(app, experiment_id).state == ExperimentState.CANCELLED
    assert job.run_experiment(experiment_id, attempt) == "cancelled"
