"""Where a project's files live: keys built from ids only, never from user-supplied names,
so no upload can choose where it lands. The same keys name objects in the object store
(flautim/object_store.py) and, for the local store, paths under DATA_DIR.

    projects/<project_id>/datasets/<dataset_id>/dataset.py
    projects/<project_id>/datasets/<dataset_id>/data/...
    projects/<project_id>/models/<model_code_id>/api.py
    projects/<project_id>/hyperparameters/<file_id>/hyperparameters.py
    projects/<project_id>/experiments/<experiment_id>/attempt-<n>/
        checkpoints/   (ingested from the sandbox's output volume, then stored)
        work/          (the run's scratch space on the worker's disk; removed after the run)

Database rows store keys (`relative` of a path under DATA_DIR is the same string), so a
site can move DATA_DIR or switch to an object store without rewriting rows.
"""

from __future__ import annotations

from pathlib import Path


def project_key(project_id: int) -> str:
    return f"projects/{int(project_id)}"


def dataset_key(project_id: int, dataset_id: int) -> str:
    return f"{project_key(project_id)}/datasets/{int(dataset_id)}"


def model_code_key(project_id: int, model_code_id: int) -> str:
    return f"{project_key(project_id)}/models/{int(model_code_id)}"


def hyperparameters_key(project_id: int, file_id: int) -> str:
    return f"{project_key(project_id)}/hyperparameters/{int(file_id)}"


def experiment_key(project_id: int, experiment_id: int) -> str:
    return f"{project_key(project_id)}/experiments/{int(experiment_id)}"


def attempt_key(project_id: int, experiment_id: int, attempt: int) -> str:
    return f"{experiment_key(project_id, experiment_id)}/attempt-{int(attempt)}"


def project_dir(data_dir: Path, project_id: int) -> Path:
    return Path(data_dir) / project_key(project_id)


def dataset_dir(data_dir: Path, project_id: int, dataset_id: int) -> Path:
    return Path(data_dir) / dataset_key(project_id, dataset_id)


def model_code_dir(data_dir: Path, project_id: int, model_code_id: int) -> Path:
    return Path(data_dir) / model_code_key(project_id, model_code_id)


def hyperparameters_dir(data_dir: Path, project_id: int, file_id: int) -> Path:
    return Path(data_dir) / hyperparameters_key(project_id, file_id)


def experiment_dir(data_dir: Path, project_id: int, experiment_id: int) -> Path:
    return Path(data_dir) / experiment_key(project_id, experiment_id)


def attempt_dir(data_dir: Path, project_id: int, experiment_id: int, attempt: int) -> Path:
    return Path(data_dir) / attempt_key(project_id, experiment_id, attempt)


def relative(data_dir: Path, path: Path) -> str:
    return Path(path).resolve().relative_to(Path(data_dir).resolve()).as_posix()


def absolute(data_dir: Path, stored: str) -> Path:
    """The absolute path of a stored relative path; refuses anything that escapes DATA_DIR."""
    root = Path(data_dir).resolve()
    path = (root / stored).resolve()
    if root != path and root not in path.parents:
        raise ValueError(f"stored path escapes the data directory: {stored!r}")
    return path
