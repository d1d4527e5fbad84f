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
