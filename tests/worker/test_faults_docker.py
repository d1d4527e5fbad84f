"""A work horse killed with SIGKILL mid-run on the Docker sandbox, its worker surviving: the
experiment does not stay "running" and its containers and network are gone within a minute
(issue 13 §5). Real worker process, Docker engine, PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import time

import docker
import pytest

from flautim.models import ExperimentState, FailureKind
from flautim.worker.main import child_pids
from tests.sandbox.conftest import IMAGE, leftovers

from .bundles import store_experiment
from .test_faults_worker import (
    _enqueue,
    _experiment,
    _slow_bundle,
    _wait,
    running_worker,
    shorten_beats,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def config_overrides():
    return {
        "SANDBOX_BACKEND": "docker",
        "SANDBOX_CLIENT_MEMORY_MB": 768,
        "SANDBOX_SERVER_MEMORY_MB": 1024,
        "SANDBOX_GPUS": "",
    }


@pytest.fixture
def short_beats(app):
    return shorten_beats(app)


@pytest.fixture
def worker_process(short_beats):
    with running_worker(short_beats) as process:
        yield process


@pytest.fixture
def docker_client():
    client = docker.from_env(timeout=120)
    client.images.get(IMAGE)
    return client


def test_a_killed_work_horse_leaves_no_container_and_no_running_experiment(
    app, short_beats, owner, tmp_path, worker_process, docker_client
):
    user_id, project_id = owner
    experiment_id = store_experiment(app, _slow_bundle(tmp_path / "b"), project_id, user_id)
    _enqueue(app, experiment_id)
    assert _wait(lambda: _experiment(app, experiment_id).state == ExperimentState.RUNNING, 180)
    assert _wait(lambda: len(leftovers(docker_client, experiment_id)) >= 3, 60), leftovers(docker_client, experiment_id)
    running = leftovers(docker_client, experiment_id)
    horses = child_pids(worker_process.pid)
    assert len(horses) == 1, horses

    os.kill(horses[0], signal.SIGKILL)
    killed_at = time.monotonic()

    assert _wait(lambda: _experiment(app, experiment_id).state.is_terminal, 60), "the experiment stayed running"
    failed_after = time.monotonic() - killed_at
    assert _wait(lambda: leftovers(docker_client, experiment_id) == [], 60), leftovers(docker_client, experiment_id)
    removed_after = time.monotonic() - killed_at
    experiment = _experiment(app, experiment_id)
    assert experiment.state == ExperimentState.FAILED
    assert experiment.failure_kind == FailureKind.INFRASTRUCTURE
    assert "killed" in experiment.failure_reason
    assert worker_process.is_alive()
    print(f"\nFIGURE horse SIGKILL (Docker): {len(running)} containers/networks running "
          f"({', '.join(sorted(running))}); experiment failed after {failed_after:.1f} s, "
          f"all removed after {removed_after:.1f} s; the page says: {experiment.failure_reason}")
