"""What a client process keeps between messages (virtual clients answer hundreds a round):
the partitions it read and the round's global weights, never at the cost of a client's
results."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord

from flautim.fl.bundle import Bundle
from flautim.fl.errors import FlautimError
from flautim.fl.prepare import prepare
from flautim.fl.session import ClientSession, PartitionCache, ServerSession
from flautim.fl.transport.records import WeightsDecoder, weights_to_arrays


@pytest.fixture
def prepared(digits_bundle, tmp_path):
    bundle = Bundle.load(digits_bundle())
    hp = bundle.hyperparameters().with_overrides(num_clients=3)
    work = tmp_path / "work"
    prepare(bundle, hp, work)
    server = ServerSession(bundle, hp, work / "server", tmp_path / "out")
    return bundle, hp, work, server


def test_a_client_process_reads_each_partition_once(prepared, tmp_path):
    bundle, hp, work, _server = prepared
    session = ClientSession(bundle, hp, work / "client-0", 0)
    session.become(1, work / "client-1")
    first = session.train_data.columns[0].clone()
    session.become(2, work / "client-2")
    shutil.move(work / "client-1", tmp_path / "moved")  # a second read would fail now
    session.become(1, work / "client-1")
    assert session.client_id == session.experiment.client_id == 1
    assert torch.equal(session.train_data.columns[0], first)


def test_partitions_over_the_budget_are_read_again(prepared, tmp_path):
    _bundle, _hp, work, _server = prepared
    cache = PartitionCache(budget=0)
    cache.load(work / "client-1")
    assert cache.used == 0
    shutil.move(work / "client-1", tmp_path / "moved")
    with pytest.raises(FlautimError, match="does not exist"):
        cache.load(work / "client-1")


def test_the_round_weights_are_decoded_once_and_again_when_they_change(prepared):
    server = prepared[3]
    weights = server.initial_weights()
    decode = WeightsDecoder()
    first = decode(weights_to_arrays(weights))
    assert decode(weights_to_arrays({k: v.copy() for k, v in weights.items()})) is first
    key = next(iter(weights))
    changed = {**weights, key: weights[key] + 1}
    second = decode(weights_to_arrays(changed))
    assert second is not first and np.array_equal(second[key], changed[key])
    record = ArrayRecord({k: Array(v) for k, v in changed.items()})
    record[key] = Array(changed[key].astype(np.float64))  # same values, another dtype
    assert decode(record)[key].dtype == np.float64


def test_every_message_starts_from_the_global_weights(prepared):
    bundle, hp, work, server = prepared
    weights = server.initial_weights()
    session = ClientSession(bundle, hp, work / "client-0", 0)
    fresh = ClientSession(bundle, hp, work / "client-1", 1)
    session.evaluate(weights, 1, {})
    session.fit(weights, 1, {})  # training moved the model away from the global weights
    session.become(1, work / "client-1")
    assert session.evaluate(weights, 1, {})["loss"] == fresh.evaluate(weights, 1, {})["loss"]
    for name, value in session.model.state_dict().items():
        assert np.array_equal(value.numpy(), weights[name])
    # Arrays changed in place since the last message are loaded as they are now.
    key = next(iter(weights))
    weights[key] += 1
    session.evaluate(weights, 1, {})
    assert np.array_equal(session.model.state_dict()[key].numpy(), weights[key])


def test_a_model_changed_between_messages_is_still_named(prepared):
    bundle, hp, work, server = prepared
    weights = server.initial_weights()
    session = ClientSession(bundle, hp, work / "client-0", 0)
    session.evaluate(weights, 1, {})
    session.become(2, work / "client-2")
    session.model.fc2 = torch.nn.Linear(32, 11)  # user code resized a layer
    with pytest.raises(FlautimError, match="shape") as raised:
        session.evaluate(weights, 1, {})
    assert raised.value.client == 2


STATEFUL_API = '''
import torch
from torch import nn

from flautim.fl import Experiment


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.norm = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


class Meddling(Experiment):
    def training_loop(self, data_loader):
        return 1.0, {}

    def validation_loop(self, data_loader):
        # Left in train mode, so every batch moves BatchNorm's running statistics, and
        # then a weight changed in place: the next client must not see either.
        self.model.train()
        total, seen = 0.0, 0
        with torch.no_grad():
            for x, y in data_loader:
                total += nn.functional.cross_entropy(self.model(x), y, reduction="sum").item()
                seen += len(y)
            self.model.fc1.weight.mul_(3.0)
        return total / seen, {}
'''


def assert_holds(model: torch.nn.Module, weights: dict[str, np.ndarray]) -> None:
    for name, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), weights[name]), name


@pytest.fixture
def meddling(digits_bundle, tmp_path):
    bundle = Bundle.load(digits_bundle(api=STATEFUL_API))
    hp = bundle.hyperparameters().with_overrides(num_clients=3)
    work = tmp_path / "work"
    prepare(bundle, hp, work)
    server = ServerSession(bundle, hp, work / "server", tmp_path / "out")
    return bundle, hp, work, server.initial_weights()


def test_a_client_evaluates_the_global_weights_whatever_the_previous_client_changed(meddling):
    bundle, hp, work, weights = meddling
    expected = ClientSession(bundle, hp, work / "client-1", 1).evaluate(weights, 1, {})["loss"]
    session = ClientSession(bundle, hp, work / "client-0", 0)
    for _ in range(2):  # the second pass loads through the kept weights
        session.become(0, work / "client-0")
        session.evaluate(weights, 1, {})
        session.become(1, work / "client-1")
        assert session.evaluate(weights, 1, {})["loss"] == expected
    session.evaluate(weights, 1, {})
    session._load_global(weights)
    assert_holds(session.model, weights)


def test_kept_weights_are_copied_into_the_model_without_load_state_dict(meddling):
    bundle, hp, work, weights = meddling
    session = ClientSession(bundle, hp, work / "client-0", 0)
    session._load_global(weights)
    loads = []
    original = session.model.load_state_dict
    session.model.load_state_dict = lambda *a, **k: loads.append(1) or original(*a, **k)
    with torch.no_grad():
        for tensor in session.model.state_dict(keep_vars=True).values():
            tensor.add_(1)
    session._load_global(weights)
    assert loads == []
    assert_holds(session.model, weights)


def test_a_replaced_parameter_or_buffer_is_loaded_by_the_full_path(meddling):
    bundle, hp, work, weights = meddling
    session = ClientSession(bundle, hp, work / "client-0", 0)
    session._load_global(weights)
    session.model.fc1.weight = torch.nn.Parameter(torch.zeros(32, 64))  # same shape, new tensor
    session.model.norm.running_mean = torch.full((32,), 7.0)
    session._load_global(weights)
    assert np.array_equal(session.model.fc1.weight.detach().numpy(), weights["fc1.weight"])
    assert np.array_equal(session.model.norm.running_mean.numpy(), weights["norm.running_mean"])
    with torch.no_grad():
        session.model.fc2.weight.data = torch.zeros(10, 33)  # resized in place: same Parameter
    with pytest.raises(FlautimError, match="shape"):
        session._load_global(weights)
