"""The object store's two backends behave alike: a local folder and a real S3 server
(SeaweedFS), through the same calls the web and the worker make."""

from __future__ import annotations

import pytest

from flautim.config import Config
from flautim.object_store import (
    LocalFolderStore,
    StoredObjectMissing,
    check_key,
    iter_chunks,
    store_for,
)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalFolderStore(tmp_path / "data")
    server = request.getfixturevalue("seaweedfs")
    config = Config.from_env(environ={}, DATA_DIR=str(tmp_path / "data"), SANDBOX_BACKEND="local",
                             **server.settings())
    return store_for(config)


def _folder(tmp_path):
    folder = tmp_path / "staged"
    (folder / "data" / "sub").mkdir(parents=True)
    (folder / "dataset.py").write_text("class D: pass\n")
    (folder / "data" / "a.csv").write_bytes(b"1,2\n")
    (folder / "data" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)
    return folder


def test_a_stored_tree_is_listed_read_streamed_fetched_and_deleted(store, tmp_path):
    store.put_tree("projects/1/datasets/2", _folder(tmp_path))

    assert [(f.name, f.size) for f in store.list("projects/1/datasets/2/data")] == [
        ("a.csv", 4), ("sub/b.bin", 1_280_000)]
    assert store.read_bytes("projects/1/datasets/2/dataset.py") == b"class D: pass\n"
    assert store.exists("projects/1/datasets/2/data/a.csv")
    assert not store.exists("projects/1/datasets/2/data/nope")
    stream, size = store.open("projects/1/datasets/2/data/sub/b.bin")
    assert size == 1_280_000 and b"".join(iter_chunks(stream)) == bytes(range(256)) * 5000

    fetched = store.local_tree("projects/1/datasets/2/data", tmp_path / "scratch")
    assert (fetched / "sub" / "b.bin").stat().st_size == 1_280_000
    assert (fetched / "a.csv").read_bytes() == b"1,2\n"

    store.put_file("projects/1/experiments/3/attempt-1/checkpoints/final.safetensors", fetched / "a.csv")
    store.delete("projects/1/experiments/3/attempt-1/checkpoints/final.safetensors")
    assert not store.exists("projects/1/experiments/3/attempt-1/checkpoints/final.safetensors")
    store.delete_tree("projects/1")
    assert store.list("projects/1/datasets/2/data") == []
    with pytest.raises(StoredObjectMissing):
        store.read_bytes("projects/1/datasets/2/dataset.py")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "projects/../../x", "projects//1", "a/./b", "a\\b", "a\x00b"])
def test_keys_that_could_leave_the_store_are_refused(key, tmp_path):
    with pytest.raises(ValueError, match="not a valid storage key"):
        check_key(key)
    with pytest.raises(ValueError):
        LocalFolderStore(tmp_path).read_bytes(key)


def test_wrong_credentials_are_refused_by_the_s3_server(seaweedfs, tmp_path):
    from botocore.exceptions import ClientError

    settings = {**seaweedfs.settings(), "S3_SECRET_ACCESS_KEY": "not-the-secret"}
    config = Config.from_env(environ={}, DATA_DIR=str(tmp_path), SANDBOX_BACKEND="local", **settings)
    with pytest.raises(ClientError):
        store_for(config).list("projects/1")


def test_an_s3_store_needs_a_bucket(tmp_path):
    with pytest.raises(ValueError, match="FLAUTIM_S3_BUCKET"):
        Config.from_env(environ={}, DATA_DIR=str(tmp_path), SANDBOX_BACKEND="local", OBJECT_STORE="s3")
    with pytest.raises(ValueError, match="FLAUTIM_OBJECT_STORE"):
        Config.from_env(environ={}, DATA_DIR=str(tmp_path), SANDBOX_BACKEND="local", OBJECT_STORE="nfs")
