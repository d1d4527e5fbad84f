"""What a run's output can do to the worker's ingest: nothing outside its own rows and
checkpoint copies, within caps, and never at the cost of its other results."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from sqlalchemy import select

from flautim import storage
from flautim.fl.events import EVENT_PREFIX, make_event
from flautim.models import (
    Experiment,
    ExperimentEvent,
    HyperparameterFile,
    LogRecord,
    MetricRow,
    ModelArtifact,
    db,
)
from flautim.worker.ingest import Ingestor


@pytest.fixture
def config_overrides():
    return {"MAX_EVENTS_PER_ATTEMPT": 40, "MAX_METRIC_ROWS_PER_ROUND": 6, "SANDBOX_OUTPUT_LIMIT_MB": 1}


@pytest.fixture
def experiment(app, owner):
    user_id, project_id = owner
    with app.app_context():
        hp = HyperparameterFile(project_id=project_id, created_by_id=user_id, name="hp", filename="h.py",
                                storage_path="x", content_hash="0" * 64,
                                values={"checkpoint": {"keep_last": 2}})
        db.session.add(hp)
        db.session.flush()
        experiment = Experiment(project_id=project_id, name="e", created_by_id=user_id, attempt=1,
                                hyperparameter_file_id=hp.id)
        db.session.add(experiment)
        db.session.commit()
        return experiment.id, project_id


def _event(type_, **fields):
    return EVENT_PREFIX + json.dumps(make_event(type_, **fields))


def _raw(**event):
    return EVENT_PREFIX + json.dumps({"v": 1, "ts": time.time(), **event})


def _ingest(app, experiment_id, out, lines):
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, out, redis_client=None)
    for line in lines:
        ingest.line("server", "stdout", line)
    ingest.close()
    return ingest


def _rows(app, model, experiment_id):
    with app.app_context():
        return db.session.execute(select(model).where(model.experiment_id == experiment_id)).scalars().all()


def _checkpoint_file(out, name, size=100):
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints" / name).write_bytes(os.urandom(size))
    return f"checkpoints/{name}"


def _files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_a_checkpoint_kind_or_round_never_names_a_file_outside_the_checkpoints(app, experiment, tmp_path):
    experiment_id, project_id = experiment
    out = tmp_path / "out"
    relative = _checkpoint_file(out, "w.pt")
    data = app.extensions["flautim_config"].data_path
    before = _files_under(data)
    ingest = _ingest(app, experiment_id, out, [
        _raw(type="checkpoint", round=1, kind="../../../../../pwned", files={"pytorch": relative}, metrics={}),
        _raw(type="checkpoint", round=1, kind="round\r\nSet-Cookie: a=b", files={"pytorch": relative}, metrics={}),
        _raw(type="checkpoint", round="1/../../x", kind="round", files={"pytorch": relative}, metrics={}),
        _raw(type="checkpoint", round=10**30, kind="round", files={"pytorch": relative}, metrics={}),
        _raw(type="checkpoint", round=1, kind="final", files={"pytorch": relative}, metrics={}),
    ])
    rows = _rows(app, ModelArtifact, experiment_id)
    assert [(r.kind, r.round) for r in rows] == [("final", 1)]
    after = _files_under(data)
    attempt = storage.relative(data, storage.attempt_dir(data, project_id, experiment_id, 1))
    assert set(after) - set(before) == {f"{attempt}/checkpoints/round-1-final.pt"}
    refusals = [r.line for r in _rows(app, LogRecord, experiment_id) if "refused" in r.line]
    assert len(refusals) == 4, refusals
    assert ingest.skipped == 0


def test_copies_follow_keep_last_and_stop_at_the_storage_limit(app, experiment, tmp_path):
    experiment_id, project_id = experiment
    out = tmp_path / "out"
    lines = []
    for rnd in range(1, 6):
        relative = _checkpoint_file(out, f"round-{rnd}.pt", 1000)
        lines.append(_raw(type="checkpoint", round=rnd, kind="round", files={"pytorch": relative}, metrics={}))
        lines.append(_raw(type="checkpoint", round=rnd, kind="best", files={"pytorch": relative}, metrics={}))
    _ingest(app, experiment_id, out, lines)
    data = app.extensions["flautim_config"].data_path
    folder = storage.attempt_dir(data, project_id, experiment_id, 1) / "checkpoints"
    # As the run itself keeps them: the last two rounds and one best.
    assert sorted(p.name for p in folder.iterdir()) == ["round-4-round.pt", "round-5-best.pt", "round-5-round.pt"]
    assert sorted((r.kind, r.round) for r in _rows(app, ModelArtifact, experiment_id)) == [
        ("best", 5), ("round", 4), ("round", 5)]

    # 1 MB of storage for the run: a second large file no longer fits.
    big = _checkpoint_file(out, "big.pt", 700_000)
    _ingest(app, experiment_id, out, [
        _raw(type="checkpoint", round=6, kind="final", files={"pytorch": big}, metrics={}),
        _raw(type="checkpoint", round=6, kind="round", files={"pytorch": big}, metrics={}),
    ])
    assert not list(folder.glob("*.part"))
    logs = [r.line for r in _rows(app, LogRecord, experiment_id)]
    assert any("room left in the run's storage" in line for line in logs), logs


def test_events_and_metrics_past_their_caps_are_dropped_but_the_outcome_still_counts(app, experiment, tmp_path):
    experiment_id, _ = experiment
    lines = [_event("run_started", experiment="e", transport="fast", clients=2, rounds=1, strategy="FedAvg",
                    hyperparameters={})]
    lines.append(_event("client_train", round=1, client=0, loss=0.5, examples=1, duration_s=0.1,
                        metrics={f"m{i}": i for i in range(20)}))
    lines += [_event("metric", round=2, name=f"x{i}", value=i, source="server") for i in range(60)]
    lines.append(_event("run_finished", status="completed", duration_s=1.0, rounds_completed=1))
    ingest = _ingest(app, experiment_id, tmp_path, lines)
    assert len(_rows(app, ExperimentEvent, experiment_id)) == 40
    assert ingest.events_dropped == len(lines) - 40
    assert ingest.run_finished is not None and ingest.run_finished["status"] == "completed"
    per_round = {}
    for row in _rows(app, MetricRow, experiment_id):
        per_round[row.round] = per_round.get(row.round, 0) + 1
    assert per_round == {1: 6, 2: 6}
    logs = [r.line for r in _rows(app, LogRecord, experiment_id) if r.source == "platform"]
    assert any("more than 40 events" in line for line in logs)
    assert any("round 1 reported more than 6 metric values" in line for line in logs)
    assert any("round 2 reported more than 6 metric values" in line for line in logs)


def test_a_line_the_database_or_python_refuses_is_skipped_alone(app, experiment, tmp_path):
    experiment_id, _ = experiment
    good = _event("client_train", round=1, client=0, loss=0.5, metrics={}, examples=1, duration_s=0.1)
    hostile = [
        # An integer past a float's range as a metric value.
        _raw(type="metric", round=1, name="huge", value=10**400, source="server"),
        # Nested far past any event's shape (RecursionError in json on today's code).
        EVENT_PREFIX + "[" * 100_000 + "]" * 100_000,
        # A round past PostgreSQL's integer: the database refuses the row.
        _raw(type="metric", round=2**40, name="far", value=1.0, source="server"),
        _raw(type="client_train", round=1, client="0" * 10, loss=1.0, examples=1, duration_s=0.1,
             metrics={"x" * 10_000: 1.0}),
    ]
    finished = _event("run_finished", status="completed", duration_s=1.0, rounds_completed=1)
    ingest = _ingest(app, experiment_id, tmp_path, [good, *hostile, finished])
    assert ingest.run_finished["status"] == "completed"
    types = [e.type for e in _rows(app, ExperimentEvent, experiment_id)]
    assert types[0] == "client_train" and types[-1] == "run_finished"
    names = {(m.name, m.round) for m in _rows(app, MetricRow, experiment_id)}
    assert ("loss", 1) in names and not any(name == "far" for name, _ in names)
    assert ingest._thread.is_alive() is False


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root)")
def test_a_full_disk_while_copying_a_checkpoint_leaves_no_part_file_and_the_ingest_goes_on(
        app, experiment, tmp_path):
    experiment_id, project_id = experiment
    out = tmp_path / "out"
    relative = _checkpoint_file(out, "w.pt", 600_000)
    data = app.extensions["flautim_config"].data_path
    folder = storage.attempt_dir(data, project_id, experiment_id, 1) / "checkpoints"
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        ingest = _ingest(app, experiment_id, out, [
            _raw(type="checkpoint", round=1, kind="final", files={"pytorch": relative}, metrics={}),
            _event("run_finished", status="completed", duration_s=1.0, rounds_completed=1),
        ])
        assert list(folder.iterdir()) == []
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert ingest.run_finished is not None
    assert _rows(app, ModelArtifact, experiment_id) == []
    logs = [r.line for r in _rows(app, LogRecord, experiment_id)]
    assert any("could not store it" in line and "No space left" in line for line in logs), logs
