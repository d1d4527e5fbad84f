"""The warm pool on real Docker: runs take pre-started containers, which are as contained as
cold ones, are used once, and are reaped like any run's when their worker dies."""

from __future__ import annotations

import re
import socket

import pytest
from sqlalchemy import select

from flautim import storage
from flautim.fl.process_setup import POOL_READY
from flautim.fl.virtual_clients import available_cores
from flautim.models import Experiment, ExperimentState, LogRecord, ModelArtifact, db
from flautim.sandbox.container_spec import LABEL_HOST, LABEL_POOL
from flautim.sandbox.warm_pool import WarmPool
from flautim.worker import job
from flautim.worker.main import reap_orphans
from flautim.worker.queue import enqueue_experiment, redis_for
from tests.worker.bundles import TINY, store_experiment, write_bundle

from . import attacks
from .conftest import leftovers
from .test_security import _host_ips, host_web_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SIZE = 3  # the tiny bundle's server and two clients


@pytest.fixture
def config_overrides(config_overrides):
    return {**config_overrides, "SANDBOX_WARM_POOL": SIZE}


def _idle_ids(pool) -> set[str]:
    return {c.id for c in pool._idle(pool._image_id())}


def _run(app, experiment_id):
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        enqueue_experiment(experiment, app.extensions["flautim_config"])
        attempt = experiment.attempt
    result = job.run_experiment(experiment_id, attempt)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        logs = [(r.source, r.line) for r in db.session.execute(select(LogRecord).where(
            LogRecord.experiment_id == experiment_id).order_by(LogRecord.id)).scalars()]
        return result, experiment.state, experiment.failure_reason, dict(experiment.summary or {}), logs


def test_pool_containers_are_hardened_and_have_no_network(pool, docker_client):
    containers = pool._idle(pool._image_id())
    assert len(containers) == SIZE
    for container in containers:
        host = container.attrs["HostConfig"]
        assert container.attrs["Config"]["User"] == "10001:10001"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] == host["MemorySwap"] == 768 * 2**20
        assert host["NetworkMode"] == "none"
        assert list(container.attrs["NetworkSettings"]["Networks"]) == ["none"]
        mounts = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
        assert mounts == {"/bundle": False, "/data": False, "/out": True, "/ctl": False}


def test_a_run_takes_warm_containers_once_and_the_pool_refills(app, worker_config, owner, tmp_path, docker_client, pool):
    user_id, project_id = owner
    before = _idle_ids(pool)
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    result, state, reason, summary, logs = _run(app, experiment_id)
    assert result == "succeeded", reason + "\n" + "\n".join(f"{s}: {line}" for s, line in logs[-40:])
    assert summary["metric"] == "accuracy" and summary["metric_value"] > 0.5
    assert ("platform", "[flautim] 3 of 3 server and client containers taken warm from the pool") in logs
    assert {"server", "client-0", "client-1"} <= {source for source, _ in logs}
    assert not any(POOL_READY in line for _, line in logs)  # the pool's own output is not the run's
    with app.app_context():
        assert db.session.execute(select(ModelArtifact).where(
            ModelArtifact.experiment_id == experiment_id)).scalars().first() is not None
    assert leftovers(docker_client, experiment_id) == []
    # Used once: the run's containers are gone and the job's end started fresh ones.
    after = _idle_ids(pool)
    assert len(after) == SIZE and not after & before
    assert len(list(pool.root.iterdir())) == SIZE  # the used slots' folders went with the run


def test_the_flower_transport_runs_in_warm_containers(app, worker_config, owner, tmp_path, docker_client, pool):
    user_id, project_id = owner
    hyperparameters = (TINY / "hyperparameters.py").read_text() + 'transport = "flower"\n'
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", hyperparameters=hyperparameters),
                                     project_id, user_id)
    result, state, reason, summary, logs = _run(app, experiment_id)
    assert result == "succeeded", reason + "\n" + "\n".join(f"{s}: {line}" for s, line in logs[-60:])
    assert summary["metric"] == "accuracy" and summary["metric_value"] > 0.5
    assert ("platform", "[flautim] 3 of 3 server and client containers taken warm from the pool") in logs
    assert any(source == "superlink" for source, _ in logs)
    assert any(source == "client-1" and "[supernode]" in line for source, line in logs)
    assert leftovers(docker_client, experiment_id) == []


def test_pooled_containers_are_as_contained_as_cold_ones(
    app, worker_config, owner, tmp_path, docker_client, pool, host_web_server  # noqa: F811
):
    user_id, project_id = owner
    store_experiment(app, write_bundle(tmp_path / "victim"), project_id, user_id, "victim")
    victim_file = storage.model_code_dir(worker_config.data_path, project_id, 1) / "api.py"
    targets = [(ip, port) for ip in _host_ips() for port in (6379, 5432, host_web_server)]
    probe = f"HOST_TARGETS = {targets!r}\nOTHER_EXPERIMENT_FILE = {str(victim_file)!r}\n" + attacks.PROBES
    api = probe + (TINY / "api.py").read_text()
    attacker = store_experiment(app, write_bundle(tmp_path / "a", api=api), project_id, user_id, "attacker")
    result, state, reason, _, logs = _run(app, attacker)
    assert state == ExperimentState.SUCCEEDED, reason
    assert ("platform", "[flautim] 3 of 3 server and client containers taken warm from the pool") in logs
    probes = [line for _, line in logs if line.startswith("PROBE ")]
    assert not [p for p in probes if " OPEN " in p]
    assert {"server", "client-0", "client-1"} <= {p.split()[1] for p in probes}
    assert any(re.match(r"PROBE client-0 write-out blocked", p) for p in probes)
    assert any(re.match(r"PROBE server connect-127\.0\.0\.1:6379 blocked", p) for p in probes)
    assert all(" uid 10001" in p for p in probes if " uid " in p)
    listings = [p for p in probes if " data-listing " in p and p.split()[1].startswith("client-")]
    assert all("client-" not in p.split("data-listing", 1)[1] for p in listings)
    assert leftovers(docker_client, attacker) == []


def test_the_reaper_removes_claimed_pool_containers_of_dead_runs_and_keeps_idle_ones(
    app, worker_config, owner, tmp_path, docker_client, pool
):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b"), project_id, user_id)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        for state in (ExperimentState.QUEUED, ExperimentState.PREPARING, ExperimentState.RUNNING):
            experiment.transition(state)
        db.session.commit()
    idle = _idle_ids(pool)
    # What a worker killed mid-run leaves: a claimed pool container, renamed for its run.
    slot = pool.root / "dead"
    slot.mkdir()
    docker_client.containers.run(
        "flautim-sandbox:cpu", entrypoint=["sleep", "600"], detach=True, network_disabled=True,
        name=f"flautim-e{experiment_id}-a1-client-0", user="10001:10001",
        labels={LABEL_POOL: str(slot), LABEL_HOST: socket.gethostname()},
    )
    assert leftovers(docker_client, experiment_id)
    assert reap_orphans(worker_config, redis_for(worker_config), recheck_after_s=0) == [experiment_id]
    assert leftovers(docker_client, experiment_id) == []
    assert _idle_ids(pool) == idle


def test_a_refill_replaces_containers_made_under_other_settings(worker_config, docker_client, pool):
    import dataclasses

    old = _idle_ids(pool)
    stricter = WarmPool(dataclasses.replace(worker_config, SANDBOX_PIDS_LIMIT=200), docker_client)
    assert stricter.claim(SIZE) == []  # never handed to a run
    assert stricter.refill() == SIZE
    assert not old & _idle_ids(stricter)
    assert all(c.attrs["HostConfig"]["PidsLimit"] == 200 for c in stricter._idle(stricter._image_id()))
    stricter.drain()


# Printed by each role as it loads the user's code: its torch threads and its CFS quota
# (cgroup v2's cpu.max, or v1's cfs_quota_us), as seen from inside its container.
RESOURCES_PROBE = '''
import os as _os
import torch as _torch


def _quota():
    for path in ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
        try:
            return open(path).read().split()[0]
        except OSError:
            pass
    return "unknown"


print("RESOURCES", _os.environ.get("FLAUTIM_ROLE"), _torch.get_num_threads(), _quota(), flush=True)
'''


def test_a_pooled_server_gets_the_hosts_cores_and_their_threads(app, worker_config, owner, tmp_path, pool):
    """A pool container starts with a client's quota and one torch thread, imported before it
    knows its role; as the server it must get the host's cores as a cold server does."""
    user_id, project_id = owner
    api = RESOURCES_PROBE + (TINY / "api.py").read_text()
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", api=api), project_id, user_id)
    result, state, reason, _, logs = _run(app, experiment_id)
    assert result == "succeeded", reason
    assert ("platform", "[flautim] 3 of 3 server and client containers taken warm from the pool") in logs
    seen = {line.split()[1]: line.split()[2:] for _, line in logs if line.startswith("RESOURCES ")}
    cores = available_cores()
    assert seen["server"] == [str(cores), str(cores * 100_000)]
    assert seen["client-0"] == seen["client-1"] == ["1", "100000"]
