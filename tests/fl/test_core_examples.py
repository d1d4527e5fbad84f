"""The shipped examples pass the static checks, prepare, pass preflight and learn."""

from __future__ import annotations

from pathlib import Path

import pytest

from flautim.fl.bundle import Bundle, check_api_source, check_dataset_source
from flautim.fl.prepare import inspect_dataset, prepare
from flautim.fl.session import ClientSession, ServerSession

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["mnist", "tabular"])
def test_examples_pass_the_upload_checks(name):
    bundle = Bundle.load(EXAMPLES / name)
    assert check_api_source(bundle.api_py.read_text()) == []
    assert check_dataset_source(bundle.dataset_py.read_text()) == []


@pytest.mark.slow
def test_mnist_example_prepares_ten_clients_and_trains(tmp_path):
    bundle = Bundle.load(EXAMPLES / "mnist")
    hp = bundle.hyperparameters().with_overrides(local_epochs=3)
    summary = prepare(bundle, hp, tmp_path / "work")
    assert len(summary["clients"]) == 10 and summary["num_classes"] == 10
    assert sum(c["train_examples"] + c["val_examples"] for c in summary["clients"]) == 4000
    assert summary["warnings"] == []
    server = ServerSession(bundle, hp, tmp_path / "work" / "server", tmp_path / "out")
    client = ClientSession(bundle, hp, tmp_path / "work" / "client-0", 0)
    client.preflight()
    assert sum(p.numel() for p in client.model.parameters()) == 27562
    initial_loss, _ = server.central_evaluate(server.initial_weights(), 0)
    result = client.fit(server.initial_weights(), 1, {})
    assert result["num_examples"] == 360 and len(result["epochs"]) == 3
    epochs = result["epochs"]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert epochs[-1]["metrics"]["accuracy"] > epochs[0]["metrics"]["accuracy"]
    loss, metrics = server.central_evaluate(result["weights"], 1)
    assert loss != initial_loss and 0.0 <= metrics["accuracy"] <= 1.0
    info = inspect_dataset(EXAMPLES / "mnist")
    assert info["splits"]["train"]["sample_shape"] == [1, 28, 28]
    assert info["splits"]["validation"]["examples"] == 1000


def test_tabular_example_learns_with_skewed_hospitals(tmp_path):
    bundle = Bundle.load(EXAMPLES / "tabular")
    hp = bundle.hyperparameters().with_overrides(rounds=4)
    summary = prepare(bundle, hp, tmp_path / "work")
    sizes = [c["train_examples"] for c in summary["clients"]]
    assert len(sizes) == 5 and len(set(sizes)) > 1
    server = ServerSession(bundle, hp, tmp_path / "work" / "server", tmp_path / "out")
    clients = [ClientSession(bundle, hp, tmp_path / "work" / f"client-{i}", i) for i in range(5)]
    weights = server.initial_weights()
    for round in range(1, hp.rounds + 1):
        results = [c.fit(weights, round, {}) for c in clients]
        for i, r in enumerate(results):
            server.check_update(r["weights"], i)
        total = sum(r["num_examples"] for r in results)
        weights = {k: (sum(r["weights"][k] * r["num_examples"] for r in results) / total).astype(v.dtype)
                   for k, v in weights.items()}
    loss, metrics = server.central_evaluate(weights, hp.rounds)
    assert metrics["accuracy"] > 0.9 and metrics["f1"] > 0.9  # f1 comes from metric()
    written = server.checkpoint(weights, hp.rounds, {"loss": loss, **metrics}, final=True)
    assert [w["kind"] for w in written] == ["round", "best", "final"]
