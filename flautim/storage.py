"""Where a project's files live under DATA_DIR. Paths are built from ids only, never from
user-supplied names, so no upload can choose where it lands.

    DATA_DIR/projects/<project_id>/datasets/<dataset_id>/dataset.py
    DATA_DIR/projects/<project_id>/datasets/<dataset_id>/data/...
    DATA_DIR/projects/<project_id>/models/<model_code_id>/api.py
    DATA_DIR/projects/<project_id>/hyperparameters/<file_id>/hyperparameters.py
    DATA_DIR/projects/<project_id>/experiments/<experiment_id>/attempt-<n>/
        checkpoints/   (copied from the sandbox's output volume)
        work/          (the run's scratch space: bundle, partitions; removed after the run)

Database rows store these paths relative to DATA_DIR (`relative`), so a site can move DATA_DIR.
"""

from __future__ import annotations

from pathlib import Path


def project_dir(data_dir: Path, project_id: int) -> Path:
    return Path(data_dir) / "projects" / str(int(project_id))


def dataset_dir(data_dir: Path, project_id: int, dataset_id: int) -> Path:
    return project_dir(data_dir, project_id) / "datasets" / str(int(dataset_id))


def model_code_dir(data_dir: Path, project_id: int, model_code_id: int) -> Path:
    return project_dir(data_dir, project_id) / "models" / str(int(model_code_id))


def hyperparameters_dir(data_dir: Path, project_id: int, file_id: int) -> Path:
    return project_dir(data_dir, project_id) / "hyperparameters" / str(int(file_id))


def experiment_dir(data_dir: Path, project_id: int, experiment_id: int) -> Path:
    return project_dir(data_dir, project_id) / "experiments" / str(int(experiment_id))


def attempt_dir(data_dir: Path, project_id: int, experiment_id: int, attempt: int) -> Path:
    return experiment_dir(data_dir, project_id, experiment_id) / f"attempt-{int(attempt)}"


def relative(data_dir: Path, path: Path) -> str:
    return str(Path(path).resolve().relative_to(Path(data_dir).resolve()))


def absolute(data_dir: Path, stored: str) -> Path:
    """The absolute path of a stored relative path; refuses anything that escapes DATA_DIR."""
    root = Path(data_dir).resolve()
    path = (root / stored).resolve()
    if root != path and root not in path.parents:
        raise ValueError(f"stored path escapes the data directory: {stored!r}")
    return path
