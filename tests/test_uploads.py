"""Bad uploads are refused with a clear error naming what is wrong and where, and leave
nothing behind: no row, no file under DATA_DIR, no staging folder."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from tests.experiments_support import (
    HYPERPARAMETERS,
    MNIST,
    setup_project,
    switch_user,
    upload,
    zip_bytes,
)

DATASET_PY = (MNIST / "dataset.py").read_bytes()


@pytest.fixture
def config_overrides():
    return {"MAX_UPLOAD_MB": 3, "MAX_UNZIPPED_MB": 2, "MAX_ARCHIVE_FILES": 5}


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    return setup_project(make_user, make_project, client)


def assert_nothing_stored(app, db_session):
    from flautim.models import Dataset, HyperparameterFile, ModelCode

    for model in (Dataset, ModelCode, HyperparameterFile):
        assert db_session.scalar(db_session.query(model).statement.with_only_columns(model.id)) is None
    data_dir = Path(app.extensions["flautim_config"].DATA_DIR)
    stored = [p for p in (data_dir / "projects").rglob("*")] if (data_dir / "projects").exists() else []
    assert not [p for p in stored if p.is_file()], stored
    staging = list((data_dir / "tmp").iterdir()) if (data_dir / "tmp").exists() else []
    assert staging == [], staging


def page_error(response) -> str:
    html = response.get_data(as_text=True)
    assert 'data-testid="upload-error"' in html, html[:3000]
    return html


def dataset_upload(client, project_id, data_files):
    return upload(
        client,
        project_id,
        "datasets",
        {"dataset_file": ("dataset.py", DATASET_PY), "data_files": data_files},
        {"name": "D"},
    )


# --- file types and encodings ---------------------------------------------------------------

def test_model_code_must_be_a_py_file(app, client, ctx, db_session):
    r = upload(client, ctx["project_id"], "model-code", {"file": ("model.txt", b"print(1)\n")})
    assert r.status_code == 400
    assert "model.txt não é um arquivo .py" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_hyperparameters_must_be_a_py_file(app, client, ctx, db_session):
    r = upload(client, ctx["project_id"], "hyperparameters", {"file": ("hp.json", b'{"rounds": 3}')})
    assert r.status_code == 400
    assert "hp.json não é um arquivo .py" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_non_utf8_code_names_the_line(app, client, ctx, db_session):
    source = b"import torch\n# coment\xe1rio em latin-1\nclass X: pass\n"
    r = upload(client, ctx["project_id"], "model-code", {"file": ("api.py", source)})
    assert r.status_code == 400
    html = page_error(r)
    assert "não está em UTF-8" in html and "api.py, linha 2" in html
    assert_nothing_stored(app, db_session)


def test_syntax_error_in_dataset_class_names_file_and_line(app, client, ctx, db_session):
    r = upload(client, ctx["project_id"], "datasets", {"dataset_file": ("dataset.py", b"import os\n\ndef broken(:\n")})
    assert r.status_code == 400
    assert "dataset.py, linha 3" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_api_code_without_experiment_is_refused(app, client, ctx, db_session):
    r = upload(client, ctx["project_id"], "model-code", {"file": ("api.py", b"import torch\nx = 1\n")})
    assert r.status_code == 400
    assert "Experiment" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_hyperparameter_file_with_a_function_call(app, client, ctx, db_session):
    source = b"rounds = 3\nlearning_rate = float('0.1')\n"
    r = upload(client, ctx["project_id"], "hyperparameters", {"file": ("hyperparameters.py", source)})
    assert r.status_code == 400
    html = page_error(r)
    assert "hyperparameters.py, linha 2" in html
    assert_nothing_stored(app, db_session)


# --- sizes ----------------------------------------------------------------------------------

def test_oversized_request_is_refused_with_413(app, client, ctx, db_session):
    big = b"0" * (4 * 1024 * 1024)
    r = dataset_upload(client, ctx["project_id"], [("big.bin", big)])
    assert r.status_code == 413
    assert "tamanho máximo" in r.get_data(as_text=True)
    assert_nothing_stored(app, db_session)


def test_oversized_source_file_is_refused(app, client, ctx, db_session):
    source = b"x = 1\n" + b"#" * (1024 * 1024 + 10) + b"\n"
    r = upload(client, ctx["project_id"], "model-code", {"file": ("api.py", source)})
    assert r.status_code == 400
    assert "passa do limite" in page_error(r)
    assert_nothing_stored(app, db_session)


# --- archives -------------------------------------------------------------------------------

def test_zip_bomb_by_ratio(app, client, ctx, db_session):
    bomb = zip_bytes({"zeros.bin": b"\0" * (1536 * 1024)})
    assert len(bomb) < 10_000
    r = dataset_upload(client, ctx["project_id"], [("data.zip", bomb)])
    assert r.status_code == 400
    assert "bomba de zip" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_zip_bomb_by_total_size(app, client, ctx, db_session):
    # Each entry compresses moderately; together they pass MAX_UNZIPPED_MB (2).
    import random

    rnd = random.Random(1)
    chunk = bytes(rnd.getrandbits(8) for _ in range(800 * 1024))
    bomb = zip_bytes({f"part{i}.bin": chunk for i in range(3)})
    r = dataset_upload(client, ctx["project_id"], [("data.zip", bomb)])
    assert r.status_code == 400
    assert "limite é 2 MB" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_zip_entry_larger_than_its_header_claims(app, tmp_path):
    """A zip whose central directory understates an entry's size is caught while writing."""
    from flautim.web.uploads.archives import ByteBudget, extract_zip
    from flautim.web.uploads.errors import UserFacingError
    from flautim.web.uploads.limits import UploadLimits

    raw = bytearray(zip_bytes({"a.bin": b"A" * 5000}, compression=zipfile.ZIP_STORED))
    # Patch the uncompressed size (offset 24 of the central directory entry) to 100.
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
    archive = tmp_path / "lying.zip"
    archive.write_bytes(bytes(raw))
    dest = tmp_path / "out"
    dest.mkdir()
    limits = UploadLimits(max_upload_bytes=10**7, max_unzipped_bytes=10**7, max_archive_files=10)
    with app.test_request_context(), pytest.raises(UserFacingError):
        extract_zip(archive, dest, limits, ByteBudget(10**7, "data_files"), "lying.zip")


@pytest.mark.parametrize(
    "name, expected",
    [("../../evil.py", "sai da pasta"), ("data/../../evil.py", "sai da pasta"), ("/etc/cron.d/evil", "Caminho absoluto"), ("C:/x.txt", "Caminho absoluto")],
)
def test_zip_slip_paths_are_refused(app, client, ctx, db_session, name, expected):
    archive = zip_bytes({"ok.txt": b"fine", name: b"evil"})
    r = dataset_upload(client, ctx["project_id"], [("data.zip", archive)])
    assert r.status_code == 400
    html = page_error(r)
    assert expected in html
    data_dir = Path(app.extensions["flautim_config"].DATA_DIR)
    assert not list(data_dir.parent.rglob("evil.py")) and not list(data_dir.parent.rglob("evil"))
    assert_nothing_stored(app, db_session)


def test_symlink_in_archive_is_refused(app, client, ctx, db_session):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("real.txt", b"data")
        link = zipfile.ZipInfo("link.txt")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    r = dataset_upload(client, ctx["project_id"], [("data.zip", buf.getvalue())])
    assert r.status_code == 400
    assert "Links simbólicos" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_too_many_files_in_archive(app, client, ctx, db_session):
    archive = zip_bytes({f"f{i}.txt": b"x" for i in range(6)})
    r = dataset_upload(client, ctx["project_id"], [("data.zip", archive)])
    assert r.status_code == 400
    assert "o máximo é 5" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_not_a_zip(app, client, ctx, db_session):
    r = dataset_upload(client, ctx["project_id"], [("data.zip", b"this is not a zip")])
    assert r.status_code == 400
    assert "não é um arquivo zip válido" in page_error(r)
    assert_nothing_stored(app, db_session)


def test_good_zip_is_stored_under_the_dataset_folder(app, client, ctx, db_session):
    from flautim.models import Dataset

    archive = zip_bytes({"train/a.csv": b"1,2\n", "train/b.csv": b"3,4\n", "test.csv": b"5,6\n"})
    r = dataset_upload(client, ctx["project_id"], [("data.zip", archive)])
    assert r.status_code == 302
    dataset = db_session.scalar(db_session.query(Dataset).statement)
    assert dataset.file_count == 3
    root = Path(app.extensions["flautim_config"].DATA_DIR) / dataset.storage_path
    assert (root / "dataset.py").read_bytes() == DATASET_PY
    assert (root / "data" / "train" / "b.csv").read_bytes() == b"3,4\n"
    assert list((Path(app.extensions["flautim_config"].DATA_DIR) / "tmp").iterdir()) == []


def test_several_plain_files_with_odd_names_are_sanitised(app, client, ctx, db_session):
    from flautim.models import Dataset

    r = dataset_upload(client, ctx["project_id"], [("dados ação.csv", b"1\n"), ("pasta/b:1.npy", b"2")])
    assert r.status_code == 302, r.get_data(as_text=True)[-3000:]
    dataset = db_session.scalar(db_session.query(Dataset).statement)
    root = Path(app.extensions["flautim_config"].DATA_DIR) / dataset.storage_path / "data"
    assert sorted(p.name for p in root.iterdir()) == ["b_1.npy", "dados acao.csv"]


# --- roles and tenants ----------------------------------------------------------------------

def test_viewer_cannot_upload(app, client, ctx, db_session):
    switch_user(client, "leitor@example.org")
    assert client.get(f"/projects/{ctx['project_id']}/hyperparameters").status_code == 200
    r = upload(client, ctx["project_id"], "hyperparameters", {"file": ("hyperparameters.py", HYPERPARAMETERS)})
    assert r.status_code == 403
    assert_nothing_stored(app, db_session)


def test_outsider_cannot_upload_or_list(app, client, ctx, db_session):
    switch_user(client, "fora@example.org")
    assert client.get(f"/projects/{ctx['project_id']}/datasets").status_code == 404
    from flautim.web.uploads import Staging  # noqa: F401  (the module imports cleanly)


# --- names, unit ----------------------------------------------------------------------------

def test_safe_relative_path_rules(app):
    from flautim.web.uploads.errors import UserFacingError
    from flautim.web.uploads.names import safe_relative_path

    with app.test_request_context():
        assert str(safe_relative_path("a/./b/c.txt")) == "a/b/c.txt"
        assert str(safe_relative_path("pasta\\arquivo.csv")) == "pasta/arquivo.csv"
        for bad in ("../x", "/x", "a/../../x", "C:\\x", ".hidden", ""):
            with pytest.raises(UserFacingError):
                safe_relative_path(bad)
