"""Turning a bundle folder into stored project assets and an experiment, as uploads do."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flautim import storage
from flautim.fl.hyperparameters import load_hyperparameters
from flautim.models import Dataset, Experiment, HyperparameterFile, ModelCode, db
from flautim.object_store import store_for

TINY = Path(__file__).resolve().parents[1] / "fl" / "bundles" / "tiny"


def write_bundle(dest: Path, *, api: str | None = None, dataset: str | None = None,
                 hyperparameters: str | None = None, base: Path = TINY) -> Path:
    """A copy of `base` with some files replaced."""
    shutil.copytree(base, dest)
    (dest / "data").mkdir(exist_ok=True)
    for name, text in (("api.py", api), ("dataset.py", dataset), ("hyperparameters.py", hyperparameters)):
        if text is not None:
            (dest / name).write_text(text)
    return dest


def store_experiment(app, bundle: Path, project_id: int, user_id: int, name: str = "exp") -> int:
    """Rows and stored files (in the app's object store) for `bundle`; returns the new
    (draft) experiment's id."""
    config = app.extensions["flautim_config"]
    store = store_for(config)
    with app.app_context():
        dataset = Dataset(project_id=project_id, created_by_id=user_id, name=f"{name}-data",
                          storage_path="pending", content_hash="0" * 64)
        code = ModelCode(project_id=project_id, created_by_id=user_id, name=f"{name}-api",
                         filename="api.py", storage_path="pending", content_hash="0" * 64)
        values = load_hyperparameters(bundle / "hyperparameters.py").to_dict()
        hyper = HyperparameterFile(project_id=project_id, created_by_id=user_id, name=f"{name}-hp",
                                   filename="hyperparameters.py", storage_path="pending",
                                   content_hash="0" * 64, values=values)
        db.session.add_all([dataset, code, hyper])
        db.session.flush()
        dataset.storage_path = storage.dataset_key(project_id, dataset.id)
        code.storage_path = storage.model_code_key(project_id, code.id)
        hyper.storage_path = storage.hyperparameters_key(project_id, hyper.id)
        with tempfile.TemporaryDirectory() as staging:
            for row, files in ((dataset, ("dataset.py", "data")), (code, ("api.py",)),
                               (hyper, ("hyperparameters.py",))):
                folder = Path(staging) / str(row.storage_path).replace("/", "-")
                folder.mkdir()
                for file in files:
                    copy = shutil.copytree if (bundle / file).is_dir() else shutil.copyfile
                    copy(bundle / file, folder / file)
                store.put_tree(row.storage_path, folder)
        experiment = Experiment(project_id=project_id, name=name, dataset_id=dataset.id,
                                model_code_id=code.id, hyperparameter_file_id=hyper.id,
                                created_by_id=user_id)
        db.session.add(experiment)
        db.session.commit()
        return experiment.id
