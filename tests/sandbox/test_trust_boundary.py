"""Two tenants on one worker host, one hostile: every planted-path trick at every point
where the worker touches a folder the sandbox can write, in one bundle, beside an ordinary
run. The ordinary run succeeds with its metrics intact, nothing outside the hostile run's
own folder changes, and the platform serves pages throughout."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from flautim import storage
from flautim.models import Experiment, ExperimentState, LogRecord, MetricRow, ModelArtifact, db
from tests.conftest import login
from tests.worker.bundles import TINY, store_experiment, write_bundle

from . import attacks
from .conftest import leftovers
from .test_security import _run_all, _state

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def config_overrides():
    return {
        "SANDBOX_BACKEND": "docker", "SANDBOX_CLIENT_MEMORY_MB": 768, "SANDBOX_SERVER_MEMORY_MB": 1024,
        "SANDBOX_LOG_LIMIT_BYTES": 1_000_000, "SANDBOX_OUTPUT_LIMIT_MB": 200, "SANDBOX_GPUS": "",
        "SANDBOX_OUTPUT_MAX_FILES": 3_000, "MAX_EVENTS_PER_ATTEMPT": 400,
    }


def _tree_digest(root: Path, skip: list[Path]) -> dict[str, str]:
    """Every file under `root` but those under `skip`: its content's hash (links: target).
    Folders are left out: a run's own folder's parents appear when it starts."""
    digests = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        if path.is_symlink():
            digests[str(path)] = "link:" + str(path.readlink())
        elif path.is_file():
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def test_a_hostile_tenant_touches_nothing_outside_its_run_and_starves_no_one(
        app, worker_config, make_user, make_project, client, tmp_path, docker_client):
    data = worker_config.data_path
    hostile_user = make_user("mallory@example.com")
    hostile_project = make_project("M", hostile_user)
    victim_user = make_user("alice@example.com")
    victim_project = make_project("A", victim_user)

    ordinary = store_experiment(app, write_bundle(tmp_path / "ok"), victim_project, victim_user, "ordinary")
    with app.app_context():
        victim_dataset = db.session.get(Experiment, ordinary).dataset_id
    victim_dir = storage.dataset_dir(data, victim_project, victim_dataset)
    header = f"VICTIM_FILE = {str(victim_dir / 'dataset.py')!r}\nVICTIM_DIR = {str(victim_dir)!r}\n"
    snippet = header + attacks.PLANTED_PATHS
    hostile = store_experiment(app, write_bundle(
        tmp_path / "evil", dataset=snippet + (TINY / "dataset.py").read_text(),
        api=snippet + (TINY / "api.py").read_text()), hostile_project, hostile_user, "hostile")

    def run_folder(project_id, experiment_id):
        return storage.experiment_dir(data, project_id, experiment_id)

    skip = [run_folder(hostile_project, hostile), run_folder(victim_project, ordinary),
            data / "sandbox-pool", data / "tmp"]
    before = _tree_digest(data, skip)
    assert str(victim_dir / "dataset.py") in before

    # Alice keeps using the site while both runs go.
    login(client, "alice@example.com")
    page = f"/projects/{victim_project}/experiments/{ordinary}"
    answers: list[tuple[int, float]] = []
    stop = threading.Event()

    def browse():
        while not stop.is_set():
            started = time.monotonic()
            answers.append((client.get(page).status_code, time.monotonic() - started))
            time.sleep(0.5)

    browsing = threading.Thread(target=browse, daemon=True)
    browsing.start()
    try:
        results = _run_all(app, [hostile, ordinary])
    finally:
        stop.set()
        browsing.join(10)

    # The ordinary run: succeeded, every round's metrics, its model.
    state, kind, reason = _state(app, ordinary)
    assert results[ordinary] == "succeeded", reason
    with app.app_context():
        rounds = {m.round for m in db.session.execute(
            select(MetricRow).where(MetricRow.experiment_id == ordinary, MetricRow.phase == "train")).scalars()}
        models = db.session.execute(
            select(ModelArtifact).where(ModelArtifact.experiment_id == ordinary)).scalars().all()
        hostile_logs = [r.line for r in db.session.execute(
            select(LogRecord).where(LogRecord.experiment_id == hostile).order_by(LogRecord.id)).scalars()]
        hostile_models = db.session.execute(
            select(ModelArtifact).where(ModelArtifact.experiment_id == hostile)).scalars().all()
    assert rounds == {1, 2, 3}
    assert any(m.kind == "final" for m in models)

    # Nothing outside the two runs' folders changed: not the victim's dataset, not a byte.
    assert _tree_digest(data, skip) == before
    assert not list(data.rglob("pwned*"))

    # The hostile run's tricks all failed, and it was stopped for its flood of files.
    plants = [line for line in hostile_logs if line.startswith("PLANT ")]
    assert {p.split()[1] for p in plants} >= {"prepare", "server"}, plants
    # The traps were set where the worker once wrote its marker (and followed them) ...
    assert "PLANT prepare link-server-.prepared done" in plants
    assert "PLANT prepare fifo-client-0 done" in plants
    # ... and none of the moves against the worker's own folders worked.
    landed = [p for p in plants if p.split()[3] == "done" and p.split()[2].startswith(("swap", "write-ctl", "mkdir"))]
    assert landed == [], landed
    state, kind, reason = _state(app, hostile)
    assert state == ExperimentState.FAILED and "more than 3000 files" in reason, reason
    assert all(a.kind in ("round", "best", "final") and "\n" not in a.kind for a in hostile_models)
    assert not any(a.card.get("source_file") in ("checkpoints/fifo.pt", "checkpoints/victim.pt",
                                                  "escape/dataset.py") for a in hostile_models)
    assert any("more than 400 events" in line for line in hostile_logs)
    assert sum("refused" in line for line in hostile_logs) >= 5
    # Its raw output and scratch folders are gone (their contents, links and all, unfollowed).
    attempt = storage.attempt_dir(data, hostile_project, hostile, 1)
    assert sorted(p.name for p in attempt.iterdir()) in (["checkpoints", "code"], ["code"])
    assert (victim_dir / "dataset.py").exists()
    assert leftovers(docker_client, hostile) == [] and leftovers(docker_client, ordinary) == []

    # The site answered Alice throughout.
    assert len(answers) >= 10 and all(code == 200 for code, _ in answers), answers[:5]
