"""Workers on many hosts with no shared disk (issue 15 §3): two real `flautim worker`
processes, each with its own DATA_DIR, take runs from the same queue; inputs come from and
outputs go to a real S3 server (SeaweedFS); the web app, with a third DATA_DIR, serves
every model file and log."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
from rq import Worker
from sqlalchemy import select

from flautim.models import Experiment, ExperimentState, ModelArtifact, db
from flautim.worker.queue import enqueue_experiment, redis_for
from tests.conftest import REDIS_URL, login

from .bundles import store_experiment, write_bundle
from .test_local_runs import SLOW_API_SUFFIX

pytestmark = pytest.mark.slow


def _start_worker(config, data_dir, log_path, seaweedfs) -> subprocess.Popen:
    env = {
        **os.environ,
        "FLAUTIM_ENV": "test", "FLAUTIM_SECRET_KEY": "test-secret", "FLAUTIM_DATA_DIR": str(data_dir),
        "FLAUTIM_DATABASE_URL": config.DATABASE_URL, "FLAUTIM_REDIS_URL": REDIS_URL,
        "FLAUTIM_SANDBOX_BACKEND": "local", "FLAUTIM_EMBEDDED_WORKER": "0",
        **seaweedfs.environ(),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from flautim.cli import main; main()", "worker"],
        env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_without_a_shared_disk_run_from_one_queue_and_the_web_serves_every_file(
    app, client, seaweedfs, make_user, make_project, tmp_path
):
    config = app.extensions["flautim_config"]
    user_id = make_user("dona@example.org")
    bundle = write_bundle(tmp_path / "bundle")
    # Each run lasts long enough that an idle worker takes the other one.
    (bundle / "api.py").write_text((bundle / "api.py").read_text() + SLOW_API_SUFFIX.replace("sleep(4)", "sleep(1)"))
    # Two projects: fair share hands one run per project to the queue at a time.
    runs = []
    for name in ("A", "B"):
        project_id = make_project(name, user_id)
        runs.append((project_id, store_experiment(app, bundle, project_id, user_id, name=f"exp-{name}")))
    assert not (config.data_path / "projects").exists(), "the web kept inputs on its own disk"

    hosts = [tmp_path / "host-1", tmp_path / "host-2"]
    for host in hosts:
        host.mkdir()
    workers = [_start_worker(config, host / "data", host.parent / f"{host.name}.log", seaweedfs) for host in hosts]
    try:
        connection = redis_for(config)
        _wait(lambda: len(Worker.all(connection=connection)) == 2, 120, "both workers to register")
        for _project_id, experiment_id in runs:
            with app.app_context():
                enqueue_experiment(db.session.get(Experiment, experiment_id), config)

        def finished():
            with app.app_context():
                states = [db.session.get(Experiment, e).state for _p, e in runs]
                db.session.remove()
            return all(not s.is_active for s in states)

        _wait(finished, 420, "both runs to finish")
    finally:
        for process in workers:
            _stop(process)

    logs = [(host.parent / f"{host.name}.log").read_text(errors="replace") for host in hosts]
    with app.app_context():
        experiments = [db.session.get(Experiment, e) for _p, e in runs]
        for experiment in experiments:
            assert experiment.state == ExperimentState.SUCCEEDED, experiment.failure_reason
        # Each worker ran one of them (RQ logs the job id it takes).
        assert sorted(sum(e.job_id in log for log in logs) for e in experiments) == [1, 1], logs
        artifacts = {e.id: db.session.scalars(select(ModelArtifact).where(
            ModelArtifact.experiment_id == e.id)).all() for e in experiments}
        db.session.remove()

    login(client, "dona@example.org")
    for project_id, experiment_id in runs:
        assert {a.kind for a in artifacts[experiment_id]} >= {"final"}
        for artifact in artifacts[experiment_id]:
            r = client.get(f"/projects/{project_id}/experiments/{experiment_id}/artifacts/{artifact.id}")
            assert r.status_code == 200
            assert len(r.data) == artifact.size_bytes > 0
            assert hashlib.sha256(r.data).hexdigest() == artifact.sha256
        log_text = client.get(f"/projects/{project_id}/experiments/{experiment_id}/logs.txt").get_data(as_text=True)
        assert "[server]" in log_text and "[client-1]" in log_text
    # Nothing of the runs on the web's disk; each worker removed its scratch after its run.
    assert not (config.data_path / "projects").exists()
    for host in hosts:
        leftovers = [p for p in (host / "data" / "projects").rglob("*") if p.is_file()] \
            if (host / "data" / "projects").exists() else []
        assert leftovers == [], leftovers
