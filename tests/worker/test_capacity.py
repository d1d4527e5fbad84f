"""Workers advertise what they can hold, and the dispatcher hands a run only to a queue some
live worker could hold it from. Real PostgreSQL, real Redis and real `flautim worker`
processes (RQ's forking worker, the local sandbox) with different memory."""

from __future__ import annotations

import dataclasses
import os
import re
import time

from rq.job import Job

from flautim.models import Experiment, ExperimentState, HyperparameterFile, db
from flautim.sandbox.container_spec import FLOWER_NODE_MEMORY_MB
from flautim.worker.capacity import (
    NAMES_KEY,
    RunNeeds,
    WorkerCapacity,
    advertise,
    encode,
    key_for,
    live_workers,
    unholdable_reason,
)
from flautim.worker.queue import dispatch_waiting_runs, enqueue_experiment, redis_for
from tests.conftest import login

from .test_faults_worker import running_worker


def _wait_for_workers(connection, count: int, timeout: float = 60) -> list[WorkerCapacity]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = live_workers(connection)
        if len(workers) == count:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"expected {count} live workers, found {live_workers(connection)}")


def _queued_run(app, owner, name: str, **values) -> int:
    """A run of `values` (hyperparameters) submitted for the fair-share dispatcher."""
    user_id, project_id = owner
    with app.app_context():
        hyper = HyperparameterFile(project_id=project_id, created_by_id=user_id, name=f"{name}-hp",
                                   filename="hyperparameters.py", storage_path="pending",
                                   content_hash="0" * 64, values={"rounds": 1, **values})
        db.session.add(hyper)
        db.session.flush()
        experiment = Experiment(project_id=project_id, name=name, hyperparameter_file_id=hyper.id,
                                created_by_id=user_id, summary={})
        db.session.add(experiment)
        db.session.commit()
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        db.session.remove()
        return experiment.id


def _row(app, experiment_id: int) -> Experiment:
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        db.session.expunge(experiment)
        db.session.remove()
        return experiment


def test_runs_go_only_where_a_live_worker_could_hold_them(app, worker_config, owner, make_user):
    connection = redis_for(worker_config)

    def run_mb(clients: int, transport: str = "fast") -> int:  # prepare and the server, then each client
        per_client = worker_config.SANDBOX_CLIENT_MEMORY_MB + (FLOWER_NODE_MEMORY_MB if transport == "flower" else 0)
        return 2 * worker_config.SANDBOX_SERVER_MEMORY_MB + clients * per_client

    def worker_with(memory_mb: int):
        return dataclasses.replace(worker_config, SANDBOX_HOST_MEMORY_MB=memory_mb, SANDBOX_HOST_RESERVE_MB=0,
                                   SANDBOX_WARM_POOL=0, SANDBOX_MEMORY_OVERCOMMIT=1.0)

    with running_worker(worker_with(run_mb(2))):
        (small,) = _wait_for_workers(connection, 1)
        assert (small.cores, small.memory_total_mb, small.memory_for_runs_mb) == (
            len(os.sched_getaffinity(0)), run_mb(2), run_mb(2))
        assert (small.gpus, small.backend, small.queues) == ([], "local", ["experiments"])

        # The admin's queue page shows it with its capacity.
        make_user("root@example.org", is_admin=True)
        admin = app.test_client()
        login(admin, "root@example.org")
        page = admin.get("/admin/queues").get_data(as_text=True)
        row = re.search(rf'<tr data-worker="{re.escape(small.name)}">(.*?)</tr>', page, flags=re.S).group(1)
        assert f'<td class="cores">{small.cores}</td>' in row
        assert f"{run_mb(2)} MB / {run_mb(2)} MB" in row and "nenhuma" in row

        fits = _queued_run(app, owner, "cabe", num_clients=2)
        # More clients than the worker has room for containers: they share its two (virtual
        # clients). Flower's transport keeps a container per client, so 3 of them are too big.
        grouped = _queued_run(app, owner, "agrupada", num_clients=300)
        too_big = _queued_run(app, owner, "grande", num_clients=3, transport="flower")
        on_gpu = _queued_run(app, owner, "gpu", num_clients=1, device="cuda")
        for handed in (_row(app, fits), _row(app, grouped)):
            assert handed.job_id and Job.fetch(handed.job_id, connection=connection).origin == "experiments"
        for held in (_row(app, too_big), _row(app, on_gpu)):
            assert held.state == ExperimentState.QUEUED and held.job_id is None
        reason = _row(app, too_big).failure_reason
        assert f"precisa de {run_mb(3, 'flower')} MB de memória (3 clientes" in reason
        assert f"o maior worker oferece {run_mb(2)} MB" in reason
        assert f"No live worker can hold this run: it needs {run_mb(3, 'flower')} MB" in reason
        assert "Nenhum worker ativo tem GPU" in _row(app, on_gpu).failure_reason
        assert "No live worker has a GPU" in _row(app, on_gpu).failure_reason

        # A larger worker connects: the big run goes, its reason gone; the GPU run still waits.
        with running_worker(worker_with(run_mb(3, "flower"))):
            _wait_for_workers(connection, 2)
            with app.app_context():
                dispatch_waiting_runs(worker_config)
            moved = _row(app, too_big)
            # The capacity reason is gone. (The larger worker may already have taken the job and
            # failed it for this fixture's missing files: that race is not what is tested.)
            assert moved.job_id and "No live worker" not in (moved.failure_reason or "")
            assert Job.fetch(moved.job_id, connection=connection).origin == "experiments"
            assert _row(app, on_gpu).job_id is None
        _wait_for_workers(connection, 1)  # a stopped worker withdraws its capacity
    assert live_workers(connection) == []


def _capacity(name: str, *, gpus=(), queues=("experiments",), memory_mb=8192, cores=2) -> WorkerCapacity:
    return WorkerCapacity(name=name, host="h", backend="docker", queues=list(queues), cores=cores,
                          cpus_per_container=1.0, memory_total_mb=memory_mb, memory_for_runs_mb=memory_mb,
                          run_base_mb=4096, client_mb={"fast": 1024, "flower": 2048}, gpus=list(gpus))


def test_the_reason_names_what_no_live_worker_has():
    cpu_run = RunNeeds(clients=4, transport="fast", gpu=False, queue="experiments")
    gpu_run = RunNeeds(clients=1, transport="fast", gpu=True, queue="experiments-gpu")
    cpu = _capacity("cpu")
    gpu = _capacity("gpu", gpus=["NVIDIA H200"], queues=("experiments-gpu", "experiments"))
    assert unholdable_reason(cpu_run, []) is None  # no worker yet: the run waits on its queue
    assert unholdable_reason(cpu_run, [cpu]) is None  # 4096 + 4 x 1024 fits 8192
    assert unholdable_reason(gpu_run, [cpu, gpu]) is None
    assert "No live worker has a GPU" in unholdable_reason(gpu_run, [cpu])
    # A GPU worker too small for the run is not enough either, and says so in memory.
    assert "it needs 8192 MB" in unholdable_reason(
        dataclasses.replace(gpu_run, clients=2, transport="flower"), [cpu, _capacity("g", gpus=["A"], queues=(
            "experiments-gpu",), memory_mb=5000)])
    # The flower transport costs more per client on the same worker.
    assert "it needs 12288 MB" in unholdable_reason(dataclasses.replace(cpu_run, transport="flower"), [cpu])
    # A worker whose containers ask for more CPUs than it has holds nothing.
    assert "No live worker has the cores" in unholdable_reason(cpu_run, [_capacity("c", cores=0)])


def test_a_worker_whose_advertisement_expired_is_not_live(worker_config):
    connection = redis_for(worker_config)
    for name in ("gone", "here"):
        advertise(connection, name, encode(_capacity(name)), ttl_s=600)
    connection.delete(key_for("gone"))  # as when a killed worker's time to live runs out
    assert [w.name for w in live_workers(connection)] == ["here"]
    assert connection.smembers(NAMES_KEY) == {b"here"}  # and it is forgotten
