"""Diagnoses from recorded runs' curves (tests/worker/curves): the ingest stores each as a
`diagnosis` event once, when it begins, and publishes it live; a healthy run gets none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from flautim.diagnosis import RunWatch
from flautim.fl.events import EVENT_PREFIX, make_event
from flautim.models import ExperimentEvent, db
from flautim.worker.ingest import Ingestor
from flautim.worker.queue import channel_for
from tests.conftest import REDIS_URL

CURVES = Path(__file__).parent / "curves"


def recorded(name: str) -> list[dict]:
    return [json.loads(line) for line in (CURVES / name).read_text().splitlines() if line.strip()]


def watched(events: list[dict]) -> list:
    watch = RunWatch()
    return [d for event in events for d in watch.observe(event)]


def ingest(app, experiment_id: int, tmp_path: Path, events: list[dict]) -> tuple[list[dict], list[dict]]:
    """Feed `events` as the run printed them (prepare's, then the server's); the stored
    diagnosis payloads and the live messages published for them."""
    client = redis.Redis.from_url(REDIS_URL)
    listener = client.pubsub()
    listener.subscribe(channel_for(client, experiment_id))
    ingestor = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path,
                        redis_client=redis.Redis.from_url(REDIS_URL))
    for event in events:
        source = "prepare" if event["type"] == "partition_summary" else "server"
        ingestor.line(source, "stdout", EVENT_PREFIX + json.dumps(event))
    ingestor.close()
    with app.app_context():
        stored = db.session.execute(select(ExperimentEvent.payload).where(
            ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.type == "diagnosis",
        ).order_by(ExperimentEvent.id)).scalars().all()
    live = []
    while (message := listener.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            body = json.loads(message["data"])
            if body.get("type") == "diagnosis":
                live.append(body)
    listener.close()
    return stored, live


def test_the_mnist_examples_healthy_run_is_not_diagnosed(app, experiment_id, tmp_path):
    events = recorded("mnist-healthy.jsonl")
    assert [e["round"] for e in events if e["type"] == "central_evaluate"][-1] == 10
    stored, live = ingest(app, experiment_id, tmp_path, events)
    assert stored == [] and live == []


def test_accuracy_stuck_at_chance_is_diagnosed_from_the_round_it_began(app, experiment_id, tmp_path):
    stored, live = ingest(app, experiment_id, tmp_path, recorded("stuck-at-chance.jsonl"))
    assert [(d["kind"], d["round"]) for d in stored] == [("stuck_at_chance", 3)]
    (diagnosis,) = stored
    assert diagnosis["code"] == "diagnosis.stuck_at_chance" and diagnosis["help"] == "configuracao-de-hiperparametros"
    assert diagnosis["params"]["classes"] == 10 and diagnosis["params"]["chance"] == pytest.approx(0.1)
    assert [m["payload"]["kind"] for m in live] == ["stuck_at_chance"]
    assert live[0]["kind"] == "event" and live[0]["id"] > 0


def test_a_one_class_per_client_partition_is_diagnosed_before_round_1(app, experiment_id, tmp_path):
    stored, _live = ingest(app, experiment_id, tmp_path, recorded("one-class-per-client.jsonl"))
    kinds = {d["kind"]: d for d in stored}
    heterogeneity = kinds["heterogeneity"]
    assert heterogeneity["code"] == "diagnosis.heterogeneity.partition" and heterogeneity["round"] is None
    assert heterogeneity["params"]["single_class"] == 10 and heterogeneity["params"]["clients"] == 10
    assert heterogeneity["help"] == "heterogeneidade-de-dados"
    # Once per run, although the clients' accuracies spread from 0 to 1 in every round.
    assert [d["kind"] for d in stored].count("heterogeneity") == 1


def test_a_loss_that_explodes_in_round_1_is_divergence_from_round_1(app, experiment_id, tmp_path):
    stored, live = ingest(app, experiment_id, tmp_path, recorded("diverging.jsonl"))
    assert [(d["kind"], d["code"], d["round"]) for d in stored] == [
        ("divergence", "diagnosis.divergence.loss", 1), ("stuck_at_chance", "diagnosis.stuck_at_chance", 1)]
    divergence = stored[0]
    assert divergence["params"]["best_round"] == 0 and divergence["params"]["factor"] > 1000
    assert [m["payload"]["kind"] for m in live] == ["divergence", "stuck_at_chance"]


def test_overfitting_is_diagnosed_from_the_first_round_the_validation_loss_rose(app, experiment_id, tmp_path):
    """Training loss falling to ~0 while the central validation loss rises from round 2;
    the training loss's tiny wobbles near zero (x15 in round 8) are not divergence."""
    stored, _live = ingest(app, experiment_id, tmp_path, recorded("overfitting.jsonl"))
    assert [(d["kind"], d["round"]) for d in stored] == [("overfitting", 2)]
    params = stored[0]["params"]
    assert params["loss"] > 1.05 * params["best"] and params["train_to"] < params["train_from"]


def test_the_spread_of_the_clients_accuracy_is_heterogeneity_without_a_partition_summary():
    events = [e for e in recorded("one-class-per-client.jsonl") if e["type"] != "partition_summary"]
    (diagnosis,) = watched(events)
    assert (diagnosis.kind, diagnosis.code, diagnosis.round) == ("heterogeneity", "diagnosis.heterogeneity.accuracy_spread", 1)
    assert diagnosis.params["low"] == 0.0 and diagnosis.params["high"] == 1.0


def test_a_weights_norm_that_explodes_is_divergence():
    """The diverging run's own norms (the untrained model's ~6, round 1's ~476), its loss
    left out: the norm alone finds it."""
    events = [dict(e) for e in recorded("diverging.jsonl")]
    for event in events:
        if event["type"] == "aggregated" and event["phase"] == "train":
            event["loss"] = None
    (diagnosis,) = [d for d in watched(events) if d.kind == "divergence"]
    assert (diagnosis.code, diagnosis.round) == ("diagnosis.divergence.weights_norm", 1)
    assert diagnosis.params["first_round"] == 0 and diagnosis.params["factor"] > 10


def test_each_diagnosis_is_emitted_once_even_when_the_problem_persists():
    events = recorded("stuck-at-chance.jsonl")
    rounds = [e for e in events if e["type"] in ("aggregated", "central_evaluate") and e["round"] >= 1]
    later = [{**e, "round": e["round"] + 6} for e in rounds]
    assert [d.kind for d in watched(events + later)] == ["stuck_at_chance"]


def test_a_diagnosis_lost_with_a_failed_write_is_found_again(app, experiment_id, tmp_path, monkeypatch):
    """The write of the batch that holds a new diagnosis fails once (after the watch saw
    it): the batch is written again, and the diagnosis with it."""
    failed = []
    original = Ingestor._diagnoses

    def fail_once(self, event):
        rows = original(self, event)
        if rows and not failed:
            failed.append(event["type"])
            raise ValueError("refused")
        return rows

    monkeypatch.setattr(Ingestor, "_diagnoses", fail_once)
    stored, _live = ingest(app, experiment_id, tmp_path, recorded("stuck-at-chance.jsonl"))
    assert failed == ["central_evaluate"]
    assert [(d["kind"], d["round"]) for d in stored] == [("stuck_at_chance", 3)]


def test_the_runtime_cannot_forge_a_diagnosis(app, experiment_id, tmp_path):
    forged = {"v": 1, "type": "diagnosis", "ts": 1.0, "kind": "divergence", "code": "diagnosis.divergence.loss",
              "round": 1, "params": {}, "help": "x"}
    stored, live = ingest(app, experiment_id, tmp_path, [forged])
    assert stored == [] and live == []


def test_the_ignored_hyperparameter_warning_becomes_one_diagnosis_per_key(app, experiment_id, tmp_path):
    warning = make_event("warning", message="m", hint="h", code="hyperparameters.ignored_key", help="configuracao-de-hiperparametros",
                         params={"key": "dirichlet_alpha", "where": "hyperparameters.py:4",
                                 "suggestion": 'partitioning_options = {"alpha": 1.0}'})
    stored, live = ingest(app, experiment_id, tmp_path, [warning, warning])
    assert [(d["kind"], d["params"]["key"], d["params"]["suggestion"]) for d in stored] == [
        ("ignored_hyperparameter", "dirichlet_alpha", 'partitioning_options = {"alpha": 1.0}')]
    assert len(live) == 1
