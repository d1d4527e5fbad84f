"""Dataset inspection through the worker job and the local sandbox: a stored dataset is
dataset.py + data/ only (no api.py), and the upload page shows what the job stores."""

from __future__ import annotations

import shutil
from pathlib import Path

from flautim import storage
from flautim.models import Dataset, db
from flautim.worker import job

TINY = Path(__file__).resolve().parents[1] / "fl" / "bundles" / "tiny"


def _stored_dataset(app, project_id: int, user_id: int, source: str) -> int:
    data_dir = app.extensions["flautim_config"].data_path
    with app.app_context():
        dataset = Dataset(project_id=project_id, created_by_id=user_id, name="digits",
                          storage_path="pending", content_hash="0" * 64)
        db.session.add(dataset)
        db.session.flush()
        folder = storage.dataset_dir(data_dir, project_id, dataset.id)
        shutil.copytree(TINY / "data", folder / "data")
        (folder / "dataset.py").write_text(source)
        dataset.storage_path = storage.relative(data_dir, folder)
        db.session.commit()
        return dataset.id


def _inspection(app, dataset_id: int) -> tuple[str, dict]:
    with app.app_context():
        dataset = db.session.get(Dataset, dataset_id)
        return dataset.inspection_status, dataset.inspection


def test_inspection_reports_splits_and_labels(app, worker_config, owner):
    user_id, project_id = owner
    dataset_id = _stored_dataset(app, project_id, user_id, (TINY / "dataset.py").read_text())
    job.inspect_dataset(dataset_id)
    status, inspection = _inspection(app, dataset_id)
    assert status == "ok", inspection
    train = inspection["splits"]["train"]
    assert train["examples"] == sum(train["label_counts"].values()) > 0
    assert inspection["num_classes"] >= 2


def test_inspection_of_a_broken_dataset_names_file_and_line(app, worker_config, owner):
    user_id, project_id = owner
    broken = (TINY / "dataset.py").read_text() + "\nraise RuntimeError('cannot read the files')\n"
    dataset_id = _stored_dataset(app, project_id, user_id, broken)
    job.inspect_dataset(dataset_id)
    status, inspection = _inspection(app, dataset_id)
    assert status == "error"
    assert "dataset.py" in inspection["error"]["where"]
    assert "cannot read the files" in inspection["error"]["what"]
