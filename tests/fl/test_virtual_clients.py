"""Virtual clients: N logical clients in K client processes (`flautim.fl.virtual_clients`),
each client still itself to user code, sampled per round from the experiment's seed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity

from flautim.fl.events import EventWriter
from flautim.fl.round_deadline import RoundDeadline
from flautim.fl.strategies import ObservedStrategy
from flautim.fl.transport.fast import DirectGrid, node_id_of, serve_client
from flautim.fl.transport.records import flautim_record, metric_record, weights_to_arrays
from flautim.fl.virtual_clients import client_processes, split_clients
from tests.fl.runs import RUN_TIMEOUT_S, copy_bundle, edit, only_error

CLIENTS = 50
PROCESSES = 2


def test_k_follows_the_host_not_the_clients(monkeypatch):
    monkeypatch.delenv("FLAUTIM_CLIENT_PROCESSES", raising=False)
    assert client_processes(1000, cores=2) == client_processes(10_000, cores=2) == 4
    assert client_processes(17, cores=2) == 4 and client_processes(1000, cores=8) == 16
    # A small run (at most 8 clients a core): a process per client, as before.
    assert client_processes(10, cores=2) == 10 and client_processes(16, cores=2) == 16
    assert client_processes(1000, cores=2, memory_bytes=1 * 2**30) == 4  # memory bounds it too
    assert client_processes(1000, cores=2, memory_bytes=int(2.5 * 2**30)) == 4
    assert client_processes(16, cores=2, memory_bytes=int(2.5 * 2**30)) == 10
    assert client_processes(1000, cores=2, memory_bytes=1) == 1
    monkeypatch.setenv("FLAUTIM_CLIENT_PROCESSES", "3")
    assert client_processes(1000, cores=64) == 3 and client_processes(2, cores=64) == 2
    monkeypatch.setenv("FLAUTIM_CLIENT_PROCESSES", "many")
    with pytest.raises(ValueError, match="FLAUTIM_CLIENT_PROCESSES"):
        client_processes(10)


def test_clients_split_into_contiguous_groups():
    groups = split_clients(list(range(10)), 3)
    assert groups == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert split_clients([0, 1], 5) == [[0], [1]]


class _Nodes:
    """The one thing Flower's sampling asks a grid: which nodes there are."""

    def __init__(self, count: int) -> None:
        self.ids = list(range(1000, 1000 + count))

    def get_node_ids(self):
        return list(self.ids)


def _sampled(seed: int, server_round: int) -> list[int]:
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 1
    TaskIdentity.task_id = 0
    strategy = ObservedStrategy(
        FedAvg(fraction_train=0.1, min_available_nodes=1000, min_train_nodes=100),
        EventWriter(open(os.devnull, "w")),
        lambda node, _c=None: node,
        sampling_seed=seed,
    )
    messages = strategy.configure_train(server_round, ArrayRecord(), ConfigRecord(), _Nodes(1000))
    return sorted(m.metadata.dst_node_id for m in messages)


def test_sampling_is_seeded_per_round():
    import random

    random.seed(123)
    before = random.random()
    first = _sampled(seed=42, server_round=1)
    assert len(first) == 100 and len(set(first)) == 100
    assert _sampled(seed=42, server_round=1) == first  # reproducible
    assert _sampled(seed=42, server_round=2) != first  # a new sample each round
    assert _sampled(seed=43, server_round=1) != first
    random.seed(123)
    assert random.random() == before  # the global generator's state is left alone


IDENTITY_LOOP = """    def training_loop(self, data_loader):
        import os
        if self.client_id == FAILING:
            raise RuntimeError(f"client {self.client_id} refuses")
        self.model.train()"""


def _virtual_run(tmp_path, fraction_fit: str, failing: int, rounds: int):
    bundle = copy_bundle(tmp_path)
    api = bundle / "api.py"
    edit(
        api,
        "    def training_loop(self, data_loader):\n        self.model.train()",
        IDENTITY_LOOP.replace("FAILING", str(failing)),
    )
    # What user code sees: its client id and the process it runs in, reported as metrics.
    edit(
        api,
        "return total / max(seen, 1), {}",
        'return total / max(seen, 1), {"me": self.client_id, "pid": os.getpid()}',
    )
    edit(
        bundle / "hyperparameters.py",
        "num_clients = 2",
        f"num_clients = {CLIENTS}\nfraction_fit = {fraction_fit}\nfraction_evaluate = 0.1",
    )
    cmd = [
        sys.executable,
        "-m",
        "flautim.cli",
        "run",
        str(bundle),
        "--json",
        "--rounds",
        str(rounds),
    ]
    env = {**os.environ, "FLAUTIM_CLIENT_PROCESSES": str(PROCESSES)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    import json

    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stderr


@pytest.mark.slow
def test_fifty_clients_in_two_processes_keep_their_identity(tmp_path):
    code, events, stderr = _virtual_run(tmp_path, "0.2", failing=-1, rounds=2)
    assert code == 0, stderr[-3000:]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "completed"
    trained = [e for e in events if e["type"] == "client_train"]
    by_round = {r: sorted(e["client"] for e in trained if e["round"] == r) for r in (1, 2)}
    for clients in by_round.values():
        assert (
            len(clients) == 10 and len(set(clients)) == 10 and set(clients) <= set(range(CLIENTS))
        )
    assert by_round[1] != by_round[2]  # sampled afresh each round
    for e in trained:
        assert e["metrics"]["me"] == e["client"]  # self.client_id is the client trained
        assert e["examples"] > 0
        # its log lines carry its tag
        assert re.search(rf"^\[client {e['client']} round {e['round']} train\]", stderr, re.M)
    # Two client processes host all 50: each client always trains in the same one.
    pids = {e["metrics"]["pid"] for e in trained}
    assert len(pids) == PROCESSES
    where = {}
    for e in trained:
        assert where.setdefault(e["client"], e["metrics"]["pid"]) == e["metrics"]["pid"]
    assert len([e for e in events if e["type"] == "client_evaluate" and e["round"] == 1]) == 5


@pytest.mark.slow
def test_a_virtual_clients_error_names_it(tmp_path):
    code, events, stderr = _virtual_run(tmp_path, "1.0", failing=31, rounds=1)
    assert code == 1
    error = only_error(events)
    assert error["client"] == 31, error
    assert "client 31 refuses" in error["what"] + str(error.get("traceback")), error
    assert "api.py" in error["where"]


def _hosting_grid(stuck: int | None) -> DirectGrid:
    """A DirectGrid with one client process (a thread here) hosting clients 0-3; each
    trains 0.6 s, client `stuck` 30 s."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context):
        client = int(context.node_config["client-id"])
        time.sleep(30 if client == stuck else 0.6)
        content = RecordDict(
            {"metrics": metric_record(1.0, 1, {}), "flautim": flautim_record(client, 0.6, 1.0, {})}
        )
        return Message(content, reply_to=message)

    grid = DirectGrid("127.0.0.1:0", 4)
    threading.Thread(
        target=serve_client, args=(grid.address, [0, 1, 2, 3], lambda: app), daemon=True
    ).start()
    grid.wait_for_clients(30)
    grid.round_deadline = RoundDeadline(fixed_s=1.5)
    return grid


def _train_all(grid: DirectGrid) -> list[int]:
    content = RecordDict(
        {
            "arrays": weights_to_arrays({"w": np.zeros(2, dtype=np.float32)}),
            "config": ConfigRecord({"server-round": 1}),
        }
    )
    messages = [grid.create_message(content, "train", node_id_of(c), "1") for c in range(4)]
    try:
        replies = grid.send_and_receive(messages, timeout=60)
    finally:
        grid.close()
    return sorted(grid.client_of(r.metadata.src_node_id) for r in replies)


@pytest.mark.slow
def test_round_deadline_counts_from_the_hosts_last_answer():
    """Four clients queued on one process take 4 x 0.6 s, past a 1.5 s deadline counted
    from sending; each took 0.6 s of its host's time, so none is late."""
    grid = _hosting_grid(stuck=None)
    assert _train_all(grid) == [0, 1, 2, 3]
    assert grid.late is None


@pytest.mark.slow
def test_a_stuck_client_makes_the_clients_queued_behind_it_late():
    grid = _hosting_grid(stuck=1)
    assert _train_all(grid) == [0]
    assert grid.late is not None and [grid.client_of(n) for n in grid.late.node_ids] == [1, 2, 3]
