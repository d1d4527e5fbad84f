"""Shared setup of the experiment tests: a project with an owner, a viewer and an outsider,
MNIST example sources, and rows fed straight into the database the way the worker stores
them (so pages and streams are tested without running a federation)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from tests.conftest import login, submit_form

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
HYPERPARAMETERS = b"rounds = 3\nnum_clients = 2\nlocal_epochs = 1\nbatch_size = 32\n"


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def upload(client, project_id: int, kind: str, files: dict, extra: dict | None = None):
    """POST an upload form of `kind` ("datasets", "model-code", "hyperparameters")."""
    data = dict(extra or {})
    for field, value in files.items():
        if isinstance(value, list):
            data[field] = [(io.BytesIO(content), name) for name, content in value]
        else:
            name, content = value
            data[field] = (io.BytesIO(content), name)
    return submit_form(
        client,
        f"/projects/{project_id}/{kind}",
        data,
        content_type="multipart/form-data",
    )


def setup_project(make_user, make_project, client):
    owner = make_user("dona@example.org")
    viewer = make_user("leitor@example.org")
    outsider = make_user("fora@example.org")
    project_id = make_project("Federado", owner, viewers=[viewer])
    other_project = make_project("Outro", outsider)
    login(client, "dona@example.org")
    return {
        "owner": owner,
        "viewer": viewer,
        "outsider": outsider,
        "project_id": project_id,
        "other_project": other_project,
    }


def upload_mnist_assets(client, project_id: int) -> dict[str, int]:
    """Upload examples/mnist's dataset, API code and a 3-round hyperparameter file."""
    from flautim.models import Dataset, HyperparameterFile, ModelCode, db

    r = upload(client, project_id, "datasets", {"dataset_file": ("dataset.py", (MNIST / "dataset.py").read_bytes())}, {"name": "MNIST"})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    r = upload(client, project_id, "model-code", {"file": ("api.py", (MNIST / "api.py").read_bytes())})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    r = upload(client, project_id, "hyperparameters", {"file": ("hyperparameters.py", HYPERPARAMETERS)})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    return {
        "dataset_id": db.session.scalar(db.select(Dataset.id).where(Dataset.project_id == project_id)),
        "model_code_id": db.session.scalar(db.select(ModelCode.id).where(ModelCode.project_id == project_id)),
        "hyperparameter_file_id": db.session.scalar(
            db.select(HyperparameterFile.id).where(HyperparameterFile.project_id == project_id)
        ),
    }
