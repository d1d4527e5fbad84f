"""Dataset inspection through the worker job and the local sandbox: a stored dataset is
dataset.py + data/ only (no api.py), and the upload page shows what the job stores."""

from __future__ import annotations

import shutil
from pathlib import Path

from flautim import storage
from flautim.models import Dataset, db
from flautim.object_store import store_for
from flautim.worker import job

TINY = Path(__file__).resolve().parents[1] / "fl" / "bundles" / "tiny"


def _stored_dataset(app, project_id: int, user_id: int, source: str, staging: Path) -> int:
    with app.app_context():
        dataset = Dataset(project_id=project_id, created_by_id=user_id, name="digits",
                          storage_path="pending", content_hash="0" * 64)
        db.session.add(dataset)
        db.session.flush()
        shutil.copytree(TINY / "data", staging / "data")
        (staging / "dataset.py").write_text(source)
        dataset.storage_path = storage.dataset_key(project_id, dataset.id)
        store_for(app.extensions["flautim_config"]).put_tree(dataset.storage_path, staging)
        db.session.commit()
        return dataset.id


def _inspection(app, dataset_id: int) -> tuple[str, dict]:
    with app.app_context():
        dataset = db.session.get(Dataset, dataset_id)
        return dataset.inspection_status, dataset.inspection


def test_inspection_reports_splits_and_labels(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    dataset_id = _stored_dataset(app, project_id, user_id, (TINY / "dataset.py").read_text(), tmp_path / "s")
    job.inspect_dataset(dataset_id)
    status, inspection = _inspection(app, dataset_id)
    assert status == "ok", inspection
    train = inspection["splits"]["train"]
    assert train["examples"] == sum(train["label_counts"].values()) > 0
    assert inspection["num_classes"] >= 2


def test_inspection_fetches_the_dataset_from_an_s3_store(app, seaweedfs, worker_config, owner, tmp_path):
    user_id, project_id = owner
    dataset_id = _stored_dataset(app, project_id, user_id, (TINY / "dataset.py").read_text(), tmp_path / "s")
    assert not (worker_config.data_path / "projects").exists()
    job.inspect_dataset(dataset_id)
    status, inspection = _inspection(app, dataset_id)
    assert status == "ok", inspection
    assert inspection["splits"]["train"]["examples"] > 0
    assert not [p for p in (worker_config.data_path / "tmp").rglob("*") if p.is_file()], "scratch left behind"


def test_inspection_of_a_broken_dataset_names_file_and_line(app, worker_config, owner, tmp_path):
    user_id, project_id = owner
    broken = (TINY / "dataset.py").read_text() + "\nraise RuntimeError('cannot read the files')\n"
    dataset_id = _stored_dataset(app, project_id, user_id, broken, tmp_path / "s")
    job.inspect_dataset(dataset_id)
    status, inspection = _inspection(app, dataset_id)
    assert status == "error"
    assert "dataset.py" in inspection["error"]["where"]
    assert "cannot read the files" in inspection["error"]["what"]
