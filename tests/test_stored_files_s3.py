"""With OBJECT_STORE=s3 the web keeps nothing under DATA_DIR: uploads land in a real S3
server (SeaweedFS), pages and downloads read them back through the same tenant checks,
and deleting an asset or a project removes its objects."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flautim.models import Dataset, ModelCode, db
from tests.conftest import submit_form
from tests.experiments_support import MNIST, setup_project, switch_user, upload, zip_bytes


@pytest.fixture
def ctx(app, seaweedfs, make_user, make_project, client):
    return setup_project(make_user, make_project, client)


def _keys(seaweedfs, prefix: str) -> set[str]:
    listing = seaweedfs.client().list_objects_v2(Bucket=seaweedfs.bucket, Prefix=prefix)
    return {entry["Key"] for entry in listing.get("Contents", [])}


def test_uploads_live_in_the_store_and_come_back_through_the_tenant_checks(app, client, ctx, seaweedfs, db_session):
    pid = ctx["project_id"]
    data = zip_bytes({"train/a.csv": b"1,2\n", "b.bin": b"\x00" * 3000})
    r = upload(client, pid, "datasets", {"dataset_file": ("dataset.py", (MNIST / "dataset.py").read_bytes()),
                                         "data_files": [("data.zip", data)]}, {"name": "MNIST"})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    api = (MNIST / "api.py").read_bytes()
    r = upload(client, pid, "model-code", {"file": ("minha_api.py", api)})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    dataset = db.session.scalar(select(Dataset).where(Dataset.project_id == pid))
    code = db.session.scalar(select(ModelCode).where(ModelCode.project_id == pid))

    # Keys from ids only; nothing of the project on the web's disk.
    assert _keys(seaweedfs, f"projects/{pid}/") == {
        f"projects/{pid}/datasets/{dataset.id}/dataset.py",
        f"projects/{pid}/datasets/{dataset.id}/data/train/a.csv",
        f"projects/{pid}/datasets/{dataset.id}/data/b.bin",
        f"projects/{pid}/models/{code.id}/api.py",
    }
    assert not (app.extensions["flautim_config"].data_path / "projects").exists()

    page = client.get(f"/projects/{pid}/datasets/{dataset.id}").get_data(as_text=True)
    assert "train/a.csv" in page and "b.bin" in page and "class " in page
    download = client.get(f"/projects/{pid}/model-code/{code.id}/download")
    assert download.status_code == 200 and download.data == api
    assert download.headers["Content-Length"] == str(len(api))
    assert "minha_api.py" in download.headers["Content-Disposition"]

    switch_user(client, "fora@example.org")  # another tenant: as if the asset did not exist
    assert client.get(f"/projects/{pid}/model-code/{code.id}/download").status_code == 404
    switch_user(client, "dona@example.org")

    r = submit_form(client, f"/projects/{pid}/model-code/{code.id}/delete", {},
                    page=f"/projects/{pid}/model-code/{code.id}")
    assert r.status_code == 302
    assert _keys(seaweedfs, f"projects/{pid}/models/") == set()
    r = submit_form(client, f"/projects/{pid}/delete", {"confirm_name": "Federado"}, page=f"/projects/{pid}/settings")
    assert r.status_code == 302
    assert _keys(seaweedfs, f"projects/{pid}/") == set()
