"""A download's file name is built from safe parts only: a checkpoint row whose kind holds
CR/LF, quotes, a path or non-ASCII (stored before the worker checked kinds) downloads with
a 200 and a plain name, on the page and through the API; an uploaded source whose
original name held control characters downloads the same way."""

from __future__ import annotations

import hashlib
import io

import pytest
from sqlalchemy import select

from tests.experiments_support import setup_project

HOSTILE_KINDS = ["final\r\nX-Evil: 1", 'be"st', "../../etc", "ação", "round\x7f", "a\tb;c"]


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    return setup_project(make_user, make_project, client)


def _artifact(app, project_id: int, kind: str) -> tuple[int, int]:
    """An experiment with one checkpoint row of `kind` and its file; (experiment, artifact)."""
    from flautim import storage
    from flautim.models import Experiment, ExperimentState, ModelArtifact, db

    data = b"weights"
    exp = Experiment(project_id=project_id, name="e", state=ExperimentState.SUCCEEDED, attempt=1,
                     rounds_total=3, rounds_done=3)
    db.session.add(exp)
    db.session.flush()
    data_dir = app.extensions["flautim_config"].data_path
    folder = storage.attempt_dir(data_dir, project_id, exp.id, 1) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "round-3-final.pt"
    path.write_bytes(data)
    artifact = ModelArtifact(experiment_id=exp.id, attempt=1, round=3, kind=kind, format="pytorch",
                             storage_path=storage.relative(data_dir, path), size_bytes=len(data),
                             sha256=hashlib.sha256(data).hexdigest(), card={})
    db.session.add(artifact)
    db.session.commit()
    return exp.id, artifact.id


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_checkpoint_kind_downloads_under_a_plain_name(app, client, ctx, db_session, kind):
    from flautim.models import User
    from flautim.web.api.tokens import create_token

    project_id = ctx["project_id"]
    exp_id, artifact_id = _artifact(app, project_id, kind)

    page = client.get(f"/projects/{project_id}/experiments/{exp_id}/artifacts/{artifact_id}")
    assert page.status_code == 200 and page.data == b"weights"
    assert page.headers["Content-Disposition"] == f"attachment; filename=experimento-{exp_id}-checkpoint-rodada-3.pt"

    _token, secret = create_token(db_session.get(User, ctx["owner"]), "t")
    api = client.get(f"/api/v1/projects/{project_id}/experiments/{exp_id}/artifacts/{artifact_id}/download",
                     headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200 and api.data == b"weights"
    assert api.headers["Content-Disposition"] == (
        f"attachment; filename=experiment-{exp_id}-attempt1-checkpoint-round3.pt")


def test_known_kinds_keep_their_names(app, client, ctx, db_session):
    project_id = ctx["project_id"]
    for kind in ("final", "best", "round"):
        exp_id, artifact_id = _artifact(app, project_id, kind)
        r = client.get(f"/projects/{project_id}/experiments/{exp_id}/artifacts/{artifact_id}")
        assert r.headers["Content-Disposition"] == f"attachment; filename=experimento-{exp_id}-{kind}-rodada-3.pt"


def test_source_uploaded_under_a_hostile_name_downloads_under_a_plain_one(app, client, ctx, db_session):
    """A multipart file name may say `filename*=UTF-8''...%0D%0A...`: the stored name then
    holds CR/LF, which a download header cannot carry."""
    from flautim.models import HyperparameterFile, db
    from tests.conftest import csrf_token_from

    project_id = ctx["project_id"]
    url = f"/projects/{project_id}/hyperparameters"
    token = csrf_token_from(client.get(url).get_data(as_text=True))
    boundary = "xYzBoundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f"{token}\r\n"
        f"--{boundary}\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''hp%0D%0AX-Evil%3A%201%22%C3%A7.py\r\n"
        "Content-Type: text/x-python\r\n\r\n"
        "rounds = 3\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    r = client.post(url, data=io.BytesIO(body), content_type=f"multipart/form-data; boundary={boundary}")
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    row = db.session.scalar(select(HyperparameterFile).where(HyperparameterFile.project_id == project_id))
    assert "\r\n" in row.filename  # the hostile name really was stored
    download = client.get(f"/projects/{project_id}/hyperparameters/{row.id}/download")
    assert download.status_code == 200 and b"rounds = 3" in download.data
    disposition = download.headers["Content-Disposition"]
    # One header line (no header injected); accents survive as RFC 6266's filename*.
    assert disposition == """attachment; filename="hp__X-Evil: 1_c.py"; filename*=UTF-8''hp__X-Evil%3A%201_%C3%A7.py"""
