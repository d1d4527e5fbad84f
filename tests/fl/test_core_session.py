"""Client and server sessions over real torch and real digits: counting, logging, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from flautim.fl.bundle import Bundle
from flautim.fl.errors import FlautimError
from flautim.fl.prepare import prepare
from flautim.fl.session import ClientSession, ServerSession
from tests.fl import conftest as fl_conftest


def _line(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(text)


def _prepared(root: Path, tmp_path: Path, **overrides):
    bundle = Bundle.load(root)
    hp = bundle.hyperparameters().with_overrides(**overrides) if overrides else bundle.hyperparameters()
    work = tmp_path / f"work-{root.name}"
    prepare(bundle, hp, work)
    return bundle, hp, work


def test_fit_counts_examples_and_logs_every_epoch(digits_bundle, tmp_path, capsys):
    bundle, hp, work = _prepared(digits_bundle(), tmp_path, local_epochs=3)
    server = ServerSession(bundle, hp, work / "server", tmp_path / "out")
    client = ClientSession(bundle, hp, work / "client-1", 1)
    client.preflight()
    result = client.fit(server.initial_weights(), 1, {})
    assert result["num_examples"] == len(client.train_data) == 450  # examples, not batches
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3]
    assert result["epochs"][0]["loss"] > result["epochs"][-1]["loss"]
    assert result["loss"] == result["epochs"][-1]["loss"]
    # training_loop's own metrics plus the metric() call made inside it.
    assert result["metrics"] == {"train_examples": 450.0, "batches_seen": 15.0}
    out = capsys.readouterr().out
    for epoch in (1, 2, 3):
        assert f"[client 1 round 1 train] epoch {epoch}/3 loss" in out
    server.check_update(result["weights"], 1)
    assert set(result["weights"]) == set(server.initial_weights())

    evaluation = client.evaluate(result["weights"], 1, {"batch-size": 8})
    assert evaluation["num_examples"] == len(client.val_data) == 50
    assert 0.0 <= evaluation["metrics"]["accuracy"] <= 1.0

    # Flower-style config keys from the transport override the hyperparameters per round.
    short = client.fit(server.initial_weights(), 2, {"local-epochs": 1, "server-round": 2})
    assert len(short["epochs"]) == 1


def test_a_few_rounds_of_fedavg_learn(digits_bundle, tmp_path):
    bundle, hp, work = _prepared(digits_bundle(), tmp_path, local_epochs=2)
    server = ServerSession(bundle, hp, work / "server", tmp_path / "out")
    clients = [ClientSession(bundle, hp, work / f"client-{i}", i) for i in range(hp.num_clients)]
    weights = server.initial_weights()
    first = server.central_evaluate(weights, 0)
    for round in range(1, 4):
        results = [c.fit(weights, round, {}) for c in clients]
        total = sum(r["num_examples"] for r in results)
        weights = {
            k: (sum(r["weights"][k] * r["num_examples"] for r in results) / total).astype(v.dtype)
            for k, v in weights.items()
        }
    loss, metrics = server.central_evaluate(weights, 3)
    assert first[1]["accuracy"] < 0.3
    assert metrics["accuracy"] > 0.85 and loss < first[0]


WRONG_IN_FEATURES = fl_conftest.DIGITS_API.replace("nn.Linear(32, 10)", "nn.Linear(48, 10)")


def test_size_mismatch_names_layer_expected_got_and_line(digits_bundle, tmp_path):
    root = digits_bundle(api=WRONG_IN_FEATURES)
    bundle, hp, work = _prepared(root, tmp_path)
    client = ClientSession(bundle, hp, work / "client-0", 0)
    with pytest.raises(FlautimError) as info:
        client.preflight()
    error = info.value
    assert "layer 'fc2'" in error.what
    assert "expected 48 input features" in error.what and "got 32" in error.what
    assert error.where == f"api.py:{_line(root / 'api.py', 'return self.fc2(x)')}"
    assert "in_features=32" in error.hint
    assert error.client == 0


def test_conv_channel_mismatch(digits_bundle, tmp_path):
    api = fl_conftest.DIGITS_API.replace(
        "self.fc1 = nn.Linear(64, 32)", "self.conv = nn.Conv2d(3, 4, 3)\n        self.fc1 = nn.Linear(144, 32)"
    ).replace("x = torch.relu(self.fc1(x))", "x = self.conv(x.view(-1, 1, 8, 8)).flatten(1)\n        x = torch.relu(self.fc1(x))")
    root = digits_bundle(api=api)
    bundle, hp, work = _prepared(root, tmp_path)
    with pytest.raises(FlautimError) as info:
        ClientSession(bundle, hp, work / "client-0", 0).preflight()
    assert "layer 'conv'" in info.value.what and "expected 3 input channels, got 1" in info.value.what
    assert info.value.where == f"api.py:{_line(root / 'api.py', 'x = self.conv(')}"


def test_wrong_output_shape_is_caught_before_round_1(digits_bundle, tmp_path):
    root = digits_bundle(api=fl_conftest.DIGITS_API.replace("nn.Linear(32, 10)", "nn.Linear(32, 5)"))
    bundle, hp, work = _prepared(root, tmp_path)
    with pytest.raises(FlautimError) as info:
        ClientSession(bundle, hp, work / "client-0", 0).preflight()
    assert "5 columns" in info.value.what and "expected at least 10 outputs" in info.value.what
    assert info.value.where == f"api.py:{_line(root / 'api.py', 'class Model')}"
    assert "out_features to 10" in info.value.hint

    root = digits_bundle(api=fl_conftest.DIGITS_API.replace("return self.fc2(x)", "return self.fc2(x).flatten()"))
    bundle, hp, work = _prepared(root, tmp_path)
    with pytest.raises(FlautimError) as info:
        ClientSession(bundle, hp, work / "client-0", 0).preflight()
    assert "expected 32 rows" in info.value.what


RAISES_IN_ROUND_3 = fl_conftest.DIGITS_API.replace(
    "        self.model.train()\n        total, seen = 0.0, 0",
    "        self.model.train()\n        if self.round == 3 and self.client_id == 2:\n"
    "            raise RuntimeError('lost the GPU')\n        total, seen = 0.0, 0",
)


def test_client_raising_in_round_3_names_round_client_and_line(digits_bundle, tmp_path):
    root = digits_bundle(api=RAISES_IN_ROUND_3)
    bundle, hp, work = _prepared(root, tmp_path)
    client = ClientSession(bundle, hp, work / "client-2", 2)
    weights = ServerSession(bundle, hp, None, tmp_path / "out").initial_weights()
    client.fit(weights, 1, {})
    client.fit(weights, 2, {})
    with pytest.raises(FlautimError) as info:
        client.fit(weights, 3, {})
    error = info.value
    assert "round 3" in error.what and "RuntimeError: lost the GPU" in error.what
    assert error.client == 2 and "(client 2)" in str(error)
    assert error.where == f"api.py:{_line(root / 'api.py', 'lost the GPU')}"
    fields = error.event_fields()
    assert fields["client"] == 2 and fields["kind"] == "user_code" and "Traceback" in fields["traceback"]


def test_nan_loss_stops_with_round_and_client(digits_bundle, tmp_path):
    root = digits_bundle(api=fl_conftest.DIGITS_API.replace(
        "return total / seen, {\"train_examples\": seen}",
        "return (float('nan') if self.round == 2 else total / seen), {\"train_examples\": seen}"))
    bundle, hp, work = _prepared(root, tmp_path)
    client = ClientSession(bundle, hp, work / "client-1", 1)
    weights = ServerSession(bundle, hp, None, tmp_path / "out").initial_weights()
    client.fit(weights, 1, {})
    with pytest.raises(FlautimError) as info:
        client.fit(weights, 2, {})
    assert "loss became nan in round 2" in info.value.what and info.value.client == 1
    assert info.value.where.startswith("api.py:") and "learning_rate" in info.value.hint


def test_diverging_training_is_stopped(digits_bundle, tmp_path):
    root = digits_bundle(hyperparameters="learning_rate = 10.0\nnum_clients = 2\nbatch_size = 64\n")
    bundle, hp, work = _prepared(root, tmp_path)
    client = ClientSession(bundle, hp, work / "client-0", 0)
    weights = ServerSession(bundle, hp, None, tmp_path / "out").initial_weights()
    weights = {k: v * 1e25 if v.ndim == 2 else v for k, v in weights.items()}
    with pytest.raises(FlautimError) as info:
        client.fit(weights, 1, {})
    assert "round 1" in info.value.what and ("nan" in info.value.what or "inf" in info.value.what)


def test_wrong_return_values_are_explained(digits_bundle, tmp_path):
    root = digits_bundle(api=fl_conftest.DIGITS_API.replace(
        "return total / seen, {\"train_examples\": seen}", "return total / seen, seen"))
    bundle, hp, work = _prepared(root, tmp_path)
    client = ClientSession(bundle, hp, work / "client-0", 0)
    with pytest.raises(FlautimError) as info:
        client.fit(ServerSession(bundle, hp, None, tmp_path / "o").initial_weights(), 1, {})
    assert "training_loop returned metrics of type int" in info.value.what
    assert info.value.where == f"api.py:{_line(root / 'api.py', 'def training_loop')}"


def test_check_update_names_client_and_parameter(digits_bundle, tmp_path):
    bundle, hp, work = _prepared(digits_bundle(), tmp_path)
    server = ServerSession(bundle, hp, work / "server", tmp_path / "out")
    good = server.initial_weights()
    server.check_update(good, 4)
    cases = [
        ({**good, "fc1.weight": np.zeros((16, 64), np.float32)}, "client 4 sent parameter 'fc1.weight' with shape [16, 64], the global model has [32, 64]"),
        ({**good, "fc2.bias": good["fc2.bias"].astype(np.float64)}, "client 4 sent parameter 'fc2.bias' as float64, the global model has float32"),
        ({k: v for k, v in good.items() if k != "fc1.bias"}, "client 4 sent weights without parameter 'fc1.bias'"),
        ({**good, "extra.weight": np.zeros(1, np.float32)}, "unknown parameter 'extra.weight'"),
        ({**good, "fc2.bias": np.full(10, np.nan, np.float32)}, "'fc2.bias' with NaN/inf"),
    ]
    for weights, message in cases:
        with pytest.raises(FlautimError) as info:
            server.check_update(weights, 4)
        assert message in info.value.what
        assert info.value.client == 4 and info.value.event_fields()["client"] == 4


def test_checkpoints_keep_last_best_and_final(digits_bundle, tmp_path):
    root = digits_bundle(hyperparameters=fl_conftest.DIGITS_HYPERPARAMETERS
                         + "checkpoint = {'keep_last': 2, 'best_metric': 'accuracy'}\n")
    bundle, hp, work = _prepared(root, tmp_path)
    out = tmp_path / "out"
    server = ServerSession(bundle, hp, work / "server", out)
    weights = server.initial_weights()
    accuracies = [0.5, 0.7, 0.6, 0.65]
    written = []
    for round, accuracy in enumerate(accuracies, start=1):
        weights = {k: v + round for k, v in weights.items()}
        written.append(server.checkpoint(weights, round, {"loss": 1.0 / round, "accuracy": accuracy},
                                         final=round == 4))
    assert [e["kind"] for e in written[0]] == ["round", "best"]
    assert [e["kind"] for e in written[2]] == ["round"]  # 0.6 < 0.7: not a new best
    assert [e["kind"] for e in written[3]] == ["round", "final"]
    folder = out / "checkpoints"
    assert sorted(p.name for p in folder.glob("round-*.pt")) == ["round-0003.pt", "round-0004.pt"]
    best_card = json.loads((folder / "best.json").read_text())
    assert best_card["round"] == 2 and best_card["metrics"]["accuracy"] == 0.7
    assert best_card["code_hash"] == bundle.code_hash()
    assert best_card["hyperparameters"]["rounds"] == 3
    final = written[3][1]
    assert final["files"] == {"pytorch": "checkpoints/final.pt", "safetensors": "checkpoints/final.safetensors",
                              "card": "checkpoints/final.json"}
    # Both formats load into the user's model and hold the same final weights.
    model = server.code.experiment_class._flautim_model_class()
    model.load_state_dict(torch.load(out / final["files"]["pytorch"], weights_only=True))
    from_safetensors = load_file(str(out / final["files"]["safetensors"]))
    for key, value in model.state_dict().items():
        assert torch.equal(value, from_safetensors[key])
        assert np.allclose(value.numpy(), weights[key])


def test_fedprox_keeps_clients_near_the_global_model(digits_bundle, tmp_path):
    bundle, hp, work = _prepared(digits_bundle(), tmp_path)
    weights = ServerSession(bundle, hp, None, tmp_path / "o").initial_weights()

    def drift(mu: float) -> float:
        client = ClientSession(bundle, hp, work / "client-0", 0)
        new = client.fit(weights, 1, {"proximal-mu": mu, "local-epochs": 2})["weights"]
        return float(sum(np.sum((new[k] - weights[k]) ** 2) for k in weights))

    assert drift(5.0) < 0.5 * drift(0.0)


def test_central_dataset_override_and_custom_strategy(digits_bundle, tmp_path):
    api = fl_conftest.DIGITS_API + '''

    def central_dataset(self):
        from torch.utils.data import TensorDataset
        return TensorDataset(torch.zeros(7, 64), torch.zeros(7, dtype=torch.long))

    def build_strategy(self, defaults):
        return ("my strategy", defaults)
'''
    bundle, hp, _work = _prepared(digits_bundle(api=api), tmp_path)
    server = ServerSession(bundle, hp, None, tmp_path / "o")
    loss, metrics = server.central_evaluate(server.initial_weights(), 1)
    assert metrics["accuracy"] in {0.0, 1.0}  # all 7 examples share one input
    assert server.custom_strategy({"fraction_train": 1.0}) == ("my strategy", {"fraction_train": 1.0})

    plain_bundle, plain_hp, _ = _prepared(digits_bundle(), tmp_path)
    assert ServerSession(plain_bundle, plain_hp, None, tmp_path / "p").central_evaluate(
        ServerSession(plain_bundle, plain_hp, None, tmp_path / "q").initial_weights(), 1) is None
    assert ServerSession(plain_bundle, plain_hp, None, tmp_path / "r").custom_strategy({}) is None
