"""A worker host admits a run only when the memory of all its containers fits beside the
other runs': one that never fits is refused at once with the numbers, one that fits later
waits, and nothing of a refused run is started."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from flautim.config import Config
from flautim.models import Experiment, ExperimentState, LogRecord, db
from flautim.sandbox.admission import Admission, host_capacity_mb, run_memory_mb
from flautim.sandbox.plan import RunControl, RunPlan, SandboxRefused
from flautim.worker import job
from flautim.worker.queue import enqueue_experiment
from tests.worker.bundles import TINY, store_experiment, write_bundle

from .conftest import leftovers


class _Lines:
    def __init__(self):
        self.lines = []

    def line(self, source, stream, text):
        self.lines.append(text)


def _config(tmp_path, **overrides):
    values = dict(ENV="test", DATA_DIR=str(tmp_path), SANDBOX_HOST_MEMORY_MB=8000, SANDBOX_HOST_RESERVE_MB=1000,
                  SANDBOX_CLIENT_MEMORY_MB=1000, SANDBOX_SERVER_MEMORY_MB=1000, SANDBOX_ADMISSION_WAIT_S=30)
    values.update(overrides)
    return Config.from_env(environ={}, **values)


def _plan(tmp_path, experiment_id, clients):
    base = tmp_path / f"e{experiment_id}"
    return RunPlan(experiment_id=experiment_id, attempt=1, code_dir=base / "code", data_dir=base / "ds",
                   work_dir=base / "work", out_dir=base / "out", clients=clients)


def test_the_run_s_memory_and_the_host_s_capacity(tmp_path):
    config = _config(tmp_path, SANDBOX_WARM_POOL=4)
    assert run_memory_mb(config, _plan(tmp_path, 1, 3)) == 5 * 1000  # prepare, server, 3 clients
    assert host_capacity_mb(config) == 8000 - 1000 - 4 * 240
    overcommitted = _config(tmp_path, SANDBOX_WARM_POOL=4, SANDBOX_MEMORY_OVERCOMMIT=2.0)
    assert host_capacity_mb(overcommitted) == 2 * (8000 - 1000 - 4 * 240)


def test_tickets_live_outside_the_pool_slots_a_refill_sweeps(tmp_path):
    from flautim.sandbox.warm_pool import WarmPool

    config = _config(tmp_path, SANDBOX_WARM_POOL=2)
    admission = Admission(config, _plan(tmp_path, 1, 1))
    admission.wait(_Lines(), RunControl(60))
    pool = WarmPool(config, client=None).root
    # A refill removes every folder of the pool root that is not a live slot.
    assert pool != admission.folder and pool not in admission.folder.parents
    assert admission.ticket.exists()
    admission.release()


def test_a_run_that_can_never_fit_is_refused_at_once_with_the_numbers(tmp_path):
    config = _config(tmp_path)
    started = time.monotonic()
    with pytest.raises(SandboxRefused, match=r"needs 1002000 MB .*1000 clients.* gives runs 7000 MB"):
        Admission(config, _plan(tmp_path, 1, 1000)).wait(_Lines(), RunControl(60))
    assert time.monotonic() - started < 5


def test_a_run_waits_while_others_hold_the_memory_then_starts(tmp_path):
    config = _config(tmp_path)
    first = Admission(config, _plan(tmp_path, 1, 3))  # 5,000 of 7,000 MB
    first.wait(_Lines(), RunControl(60))
    second = Admission(config, _plan(tmp_path, 2, 2))  # 4,000 MB: not beside the first
    lines = _Lines()
    admitted = threading.Event()
    threading.Thread(target=lambda: (second.wait(lines, RunControl(60)), admitted.set()), daemon=True).start()
    assert not admitted.wait(3)
    assert any("needs 4000 MB, other runs hold 5000 of this host's 7000 MB" in line for line in lines.lines)
    first.release()
    assert admitted.wait(10)
    second.release()


def test_waiting_ends_in_a_refusal_after_the_set_time(tmp_path):
    config = _config(tmp_path, SANDBOX_ADMISSION_WAIT_S=1)
    holder = Admission(config, _plan(tmp_path, 1, 3))
    holder.wait(_Lines(), RunControl(60))
    with pytest.raises(SandboxRefused, match="waited 1 s for 4000 MB"):
        Admission(config, _plan(tmp_path, 2, 2)).wait(_Lines(), RunControl(60))
    holder.release()


@pytest.fixture
def config_overrides():
    return {"SANDBOX_BACKEND": "docker", "SANDBOX_GPUS": "", "SANDBOX_HOST_MEMORY_MB": 6000,
            "SANDBOX_HOST_RESERVE_MB": 1000}


@pytest.mark.docker
def test_a_thousand_client_run_starts_no_container_and_says_why(app, worker_config, owner, tmp_path,
                                                               docker_client):
    user_id, project_id = owner
    hp = (TINY / "hyperparameters.py").read_text().replace("num_clients = 2", "num_clients = 1000")
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", hyperparameters=hp), project_id, user_id)
    with app.app_context():
        enqueue_experiment(db.session.get(Experiment, experiment_id), app.extensions["flautim_config"])
    assert job.run_experiment(experiment_id) == "failed"
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        assert experiment.state == ExperimentState.FAILED
        assert experiment.failure_kind == "infrastructure"
        assert "1000 clients" in experiment.failure_reason and "5000 MB" in experiment.failure_reason
        lines = db.session.execute(select(LogRecord.line).where(LogRecord.experiment_id == experiment_id)).scalars()
        assert any("1000 clients" in line for line in lines)
    assert leftovers(docker_client, experiment_id) == []
