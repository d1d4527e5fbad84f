"""Strategies by name over the fast transport's DirectGrid (real Flower strategies, real TCP).

The client apps here are plain Flower ClientApps that add a known amount to the weights, so
the aggregate can be checked exactly; the full stack with user code is in test_run_*.py.
"""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
from flwr.app import Message, RecordDict
from flwr.clientapp import ClientApp

from flautim.fl.errors import FlautimError
from flautim.fl.events import EventWriter, parse_line
from flautim.fl.hyperparameters import Hyperparameters
from flautim.fl.strategies import STRATEGIES, ObservedStrategy, build_strategy, node_minimums
from flautim.fl.transport.fast import DirectGrid, serve_client
from flautim.fl.transport.records import (
    arrays_to_weights,
    error_reply,
    flautim_record,
    metric_record,
    weights_to_arrays,
)

ALL_NAMES = ["FedAvg", "FedAvgM", "FedProx", "FedAdam", "FedYogi", "FedAdagrad", "FedMedian",
             "FedTrimmedAvg", "Krum", "Bulyan", "QFedAvg"]


def adding_client(client_id: int, fail_in_round: int | None = None) -> ClientApp:
    """Client i returns weights + (i + 1), trained on 10 * (i + 1) examples."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context):
        server_round = int(message.content["config"]["server-round"])
        if server_round == fail_in_round:
            return error_reply(message, {"what": "training_loop raised ValueError: bad", "where": "api.py:12",
                                         "hint": "fix it", "kind": "user_code", "client": client_id})
        weights = {k: v + (client_id + 1) for k, v in arrays_to_weights(message.content["arrays"]).items()}
        return Message(RecordDict({
            "arrays": weights_to_arrays(weights),
            "metrics": metric_record(1.0 / server_round, 10 * (client_id + 1), {"accuracy": 0.5}),
            "flautim": flautim_record(client_id, 0.01, 1.0 / server_round, {"accuracy": 0.5}),
        }), reply_to=message)

    @app.evaluate()
    def evaluate(message: Message, context):
        return Message(RecordDict({
            "metrics": metric_record(0.25, 5, {"accuracy": 0.75}),
            "flautim": flautim_record(client_id, 0.01, 0.25, {"accuracy": 0.75}),
        }), reply_to=message)

    return app


def federation(num_clients: int, fail: dict[int, int] | None = None) -> DirectGrid:
    grid = DirectGrid("127.0.0.1:0", num_clients)
    for cid in range(num_clients):
        app = adding_client(cid, (fail or {}).get(cid))
        threading.Thread(target=serve_client, args=(grid.address, cid, lambda app=app: app), daemon=True).start()
    grid.wait_for_clients(10)
    return grid


def run_rounds(grid: DirectGrid, hp: Hyperparameters, rounds: int = 2):
    stream = io.StringIO()
    strategy = ObservedStrategy(build_strategy(hp, hp.num_clients), EventWriter(stream), grid.client_of, reply_timeout_s=20)
    try:
        result = strategy.start(grid, weights_to_arrays({"w": np.zeros(4, dtype=np.float32)}), num_rounds=rounds, timeout=20)
    finally:
        grid.close()
    events = [parse_line(line) for line in stream.getvalue().splitlines()]
    return result, events


def test_every_strategy_name_builds_with_the_experiments_node_minimums():
    assert {name.lower() for name in ALL_NAMES} == set(STRATEGIES)
    for name in ALL_NAMES:
        strategy = build_strategy(Hyperparameters(num_clients=5, strategy=name, fraction_fit=0.4), 5)
        assert type(strategy).__name__ == name
        assert strategy.min_available_nodes == 5
        assert strategy.min_train_nodes == 2  # ceil(0.4 * 5)
        assert strategy.min_evaluate_nodes == 5


def test_node_minimums_for_one_client_do_not_wait_for_two():
    assert node_minimums(1, 1.0, 1.0) == {"fraction_train": 1.0, "fraction_evaluate": 1.0,
                                           "min_train_nodes": 1, "min_evaluate_nodes": 1, "min_available_nodes": 1}
    assert node_minimums(10, 0.25, 0.0)["min_train_nodes"] == 3
    assert node_minimums(10, 0.25, 0.0)["min_evaluate_nodes"] == 0


def test_unknown_strategy_and_option_name_the_hyperparameter():
    with pytest.raises(FlautimError) as err:
        build_strategy(Hyperparameters(strategy="FedMagic"), 4)
    assert "FedMagic" in err.value.what and "strategy" in err.value.where and "FedAvg" in err.value.hint
    with pytest.raises(FlautimError) as err:
        build_strategy(Hyperparameters(strategy="FedAvgM", strategy_options={"momentum": 0.9}), 4)
    assert "momentum" in err.value.what and "server_momentum" in err.value.hint
    with pytest.raises(FlautimError) as err:
        build_strategy(Hyperparameters(strategy="FedAvg", strategy_options={"min_available_nodes": 1}), 4)
    assert "platform sets it" in err.value.what


def test_options_reach_the_strategy_and_dp_wraps_it():
    strategy = build_strategy(Hyperparameters(strategy="FedAvgM", strategy_options={"server_momentum": 0.7}), 4)
    assert strategy.server_momentum == 0.7
    dp = build_strategy(Hyperparameters(num_clients=3, differential_privacy={"noise_multiplier": 0.0, "clipping_norm": 5.0}), 3)
    assert type(dp).__name__ == "DifferentialPrivacyServerSideFixedClipping"
    assert dp.clipping_norm == 5.0 and dp.num_sampled_clients == 3
    with pytest.raises(FlautimError) as err:
        build_strategy(Hyperparameters(differential_privacy={"clipping_norm": -1.0}), 3)
    assert "differential_privacy" in err.value.where


@pytest.mark.parametrize("name", ALL_NAMES)
def test_each_strategy_runs_rounds_over_the_direct_grid(name):
    hp = Hyperparameters(num_clients=4, strategy=name, rounds=2)
    result, events = run_rounds(federation(4), hp)
    types = [e["type"] for e in events]
    assert types.count("round_started") == 2
    assert types.count("client_train") == 8 and types.count("client_evaluate") == 8
    trained = [e for e in events if e["type"] == "client_train"]
    assert sorted({e["client"] for e in trained}) == [0, 1, 2, 3]
    assert {e["examples"] for e in trained} == {10, 20, 30, 40}
    final = arrays_to_weights(result.arrays)["w"]
    assert final.shape == (4,) and np.all(np.isfinite(final))
    if name == "FedAvg":
        # weighted by examples: (1*10 + 2*20 + 3*30 + 4*40) / 100 = 3 per round
        np.testing.assert_allclose(final, 6.0)
    if name == "FedMedian":
        np.testing.assert_allclose(final, 5.0)  # median of 1..4 is 2.5, twice


def test_dp_fixed_clipping_bounds_the_update():
    hp = Hyperparameters(num_clients=3, rounds=1, differential_privacy={"noise_multiplier": 0.0, "clipping_norm": 1.0})
    result, _ = run_rounds(federation(3), hp, rounds=1)
    update = arrays_to_weights(result.arrays)["w"]
    assert np.linalg.norm(update) <= 1.0 + 1e-5  # every client's update was clipped to norm 1


def test_a_failing_client_stops_the_run_with_its_error():
    hp = Hyperparameters(num_clients=3, rounds=4)
    with pytest.raises(FlautimError) as err:
        run_rounds(federation(3, fail={2: 3}), hp, rounds=4)
    assert err.value.where == "api.py:12" and err.value.client == 2 and err.value.hint == "fix it"


def test_missing_clients_fail_after_a_bounded_wait():
    grid = DirectGrid("127.0.0.1:0", 3)
    app = adding_client(0)
    threading.Thread(target=serve_client, args=(grid.address, 0, lambda: app), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(FlautimError) as err:
        grid.wait_for_clients(1.5)
    grid.close()
    assert time.monotonic() - started < 10
    assert err.value.kind == "timeout" and "1 of 3 clients were connected" in err.value.what and "1, 2" in err.value.what


def test_client_that_fails_to_load_is_reported_before_the_first_round():
    grid = DirectGrid("127.0.0.1:0", 1)

    def broken():
        raise FlautimError("SyntaxError: invalid syntax", where="api.py:3", hint="fix the line")

    threading.Thread(
        target=serve_client,
        args=(grid.address, 0, broken),
        kwargs={"on_error": lambda exc: exc.event_fields()},
        daemon=True,
    ).start()
    with pytest.raises(FlautimError) as err:
        grid.wait_for_clients(10)
    grid.close()
    assert err.value.where == "api.py:3" and err.value.client == 0
    assert json.loads(json.dumps(err.value.event_fields()))["what"].startswith("SyntaxError")


def test_weights_norm_in_the_weights_own_precision():
    """The L2 norm of the floating-point weights, summed by BLAS in their own precision (no
    float64 copy): close to the exact norm, float16 squares not overflowing, integer buffers
    (a BatchNorm's step counter) left out."""
    import math

    import numpy as np

    from flautim.fl.strategies import weights_norm

    rng = np.random.default_rng(0)
    weights = {"w": rng.standard_normal((300, 400)).astype(np.float32),
               "h": np.full(1000, 300.0, dtype=np.float16),  # 300² overflows float16
               "steps": np.array([10**6], dtype=np.int64)}
    exact = math.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for k, a in weights.items() if k != "steps"))
    assert math.isfinite(weights_norm(weights))
    assert math.isclose(weights_norm(weights), exact, rel_tol=1e-5)
