"""The worker's data disk filling up mid-run (issue 13 §5): the run fails with a clear
infrastructure message, nothing else on the disk is touched, and the run's space is freed.

The data folder is a small tmpfs mounted for the test (we run as root); the run is held in
its first round until the test has filled the disk with a file of its own, as another
tenant's upload or a log would.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from flautim import storage
from flautim.models import Experiment, ExperimentState, FailureKind, LogRecord, db
from flautim.worker import job

from .bundles import store_experiment, write_bundle
from .test_faults_services import _gated_bundle
from .test_faults_worker import _enqueue, _experiment, _wait

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def config_overrides(small_disk):
    return {"DATA_DIR": str(small_disk / "data"), "SANDBOX_BACKEND": "local"}


def _checksums(root: Path, skip: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and skip not in path.parents:
            sums[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def _free(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _fill(path: Path) -> Path:
    """Write a file until the disk refuses more (ENOSPC)."""
    filler = path / "filler"
    chunk = b"\0" * 2**20
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_full_data_disk_mid_run_fails_it_as_infrastructure_and_frees_its_space(
    app, worker_config, owner, tmp_path, small_disk
):
    data = worker_config.data_path
    release = tmp_path / "release"  # off the small disk
    user_id, project_id = owner
    store_experiment(app, write_bundle(tmp_path / "other"), project_id, user_id, name="bystander")
    experiment_id = store_experiment(app, _gated_bundle(tmp_path / "b", release), project_id, user_id)
    attempt = _enqueue(app, experiment_id)
    run_dir = storage.attempt_dir(data, project_id, experiment_id, attempt)
    before = _checksums(data, run_dir)
    free_before = _free(small_disk)

    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("state", job.run_experiment(experiment_id, attempt)))
    runner.start()
    assert _wait(lambda: _experiment(app, experiment_id).state == ExperimentState.RUNNING, 120)
    filler = _fill(small_disk)
    assert _free(small_disk) < 2**20
    full_at = time.monotonic()
    release.touch()  # round 1 trains; its checkpoint finds no room
    runner.join(240)
    resolved_s = time.monotonic() - full_at

    assert result.get("state") == "failed"
    experiment = _experiment(app, experiment_id)
    assert experiment.failure_kind == FailureKind.INFRASTRUCTURE
    assert "data disk is full" in experiment.failure_reason and "not a fault of your code" in experiment.failure_reason
    with app.app_context():
        notes = db.session.execute(select(LogRecord.line).where(
            LogRecord.experiment_id == experiment_id, LogRecord.source == "platform")).scalars().all()
        db.session.remove()
    assert any("data disk is full" in line for line in notes)
    # Nothing else on the disk changed; the run's scratch and output are gone.
    assert _checksums(data, run_dir) == before
    assert not (run_dir / "work").exists() and not (run_dir / "output").exists()
    assert not list(data.rglob("*.part"))
    filler.unlink()
    freed = _free(small_disk)
    assert freed >= free_before - 2 * 2**20, (free_before, freed)
    print(f"\nFIGURE data disk full mid-run: failed {resolved_s:.1f} s after the disk filled; "
          f"{freed // 2**20} MB free again after the filler went (was {free_before // 2**20} MB); "
          f"the page says: {experiment.failure_reason}")

    with app.app_context():
        assert db.session.get(Experiment, experiment_id).state == ExperimentState.FAILED
        db.session.remove()
