"""Where stored files live: a local folder (the embedded default) or any S3-compatible
object store, so workers on other hosts need no shared disk.

Keys are the id-built paths of `flautim/storage.py` (`projects/7/datasets/3/dataset.py`),
the same strings the database rows keep; a key with `..`, an empty segment or a leading
`/` is refused, so no row or caller can reach outside the store.

Settings (flautim/config.py): OBJECT_STORE ("local": files under DATA_DIR, as before; "s3")
and S3_ENDPOINT_URL, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_REGION.
boto3 signs and retries the requests; nothing here speaks the protocol by hand.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024
# Files up to this size move in one request; larger ones through boto3's multipart transfer.
SINGLE_REQUEST_BYTES = 8 * 1024 * 1024
# Requests in flight for a tree of small files (latency-bound, not bandwidth-bound).
TREE_CONCURRENCY = 16


class StoredObjectMissing(FileNotFoundError):
    """No object under that key."""


class ObjectStoreUnavailable(OSError):
    """The store did not take or give a file (unreachable, refused, full): an OSError, so
    callers that survive a full disk survive this the same way."""


@dataclass(frozen=True)
class StoredFile:
    """An entry under a prefix: its path below the prefix and its size in bytes."""

    name: str
    size: int


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path) -> None: ...
    def put_tree(self, prefix: str, folder: Path) -> None: ...
    def read_bytes(self, key: str) -> bytes: ...
    def open(self, key: str) -> tuple[BinaryIO, int]: ...
    def list(self, prefix: str, limit: int | None = None) -> list[StoredFile]: ...
    def exists(self, key: str) -> bool: ...
    def local_tree(self, prefix: str, scratch: Path) -> Path: ...
    def delete(self, key: str) -> None: ...
    def delete_tree(self, prefix: str) -> None: ...


def check_key(key: str) -> str:
    """`key` if it is a plain relative path of named segments; ValueError otherwise."""
    parts = str(key).split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise ValueError(f"not a valid storage key: {key!r}")
    return key


def iter_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """A stored object's bytes in 1 MiB pieces; closes the stream at the end."""
    try:
        while chunk := stream.read(CHUNK):
            yield chunk
    finally:
        stream.close()


class LocalFolderStore:
    """Objects are files under `root` (DATA_DIR): the layout Flautim always had."""

    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        if Path(path).resolve() == target.resolve():
            return  # already in place (the worker wrote it under this DATA_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def put_tree(self, prefix: str, folder: Path) -> None:
        """Takes `folder` (moved, not copied)."""
        target = self.path(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # A leftover from a crash between rename and commit; ids are never reused
            # on PostgreSQL, so whatever is there belongs to no row.
            shutil.rmtree(target)
        # One rename when on the same disk (uploads are staged under DATA_DIR/tmp).
        shutil.move(folder, target)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StoredObjectMissing(key) from exc

    def open(self, key: str) -> tuple[BinaryIO, int]:
        path = self.path(key)
        if not path.is_file():
            raise StoredObjectMissing(key)
        stream = path.open("rb")
        return stream, os.fstat(stream.fileno()).st_size

    def list(self, prefix: str, limit: int | None = None) -> list[StoredFile]:
        root = self.path(prefix)
        out: list[StoredFile] = []
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    out.append(StoredFile(path.relative_to(root).as_posix(), path.stat().st_size))
                    if limit is not None and len(out) >= limit:
                        break
        return out

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def local_tree(self, prefix: str, scratch: Path) -> Path:
        return self.path(prefix)  # already on this disk: no copy

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)


class S3Store:
    """Objects in one bucket of an S3-compatible service (AWS S3, SeaweedFS, MinIO, Ceph...)."""

    is_local = False

    def __init__(self, client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put_file(self, key: str, path: Path) -> None:
        with _unavailable_as_oserror(key):
            if Path(path).stat().st_size <= SINGLE_REQUEST_BYTES:
                # One PUT: the transfer manager's threads and multipart cost more than the file.
                with open(path, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=body)
            else:
                self.client.upload_file(str(path), self.bucket, check_key(key))

    def put_tree(self, prefix: str, folder: Path) -> None:
        folder = Path(folder)
        files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()]
        _in_parallel(lambda path: self.put_file(f"{check_key(prefix)}/{path.relative_to(folder).as_posix()}", path),
                     files)

    def read_bytes(self, key: str) -> bytes:
        stream, _size = self.open(key)
        with stream:
            return stream.read()

    def open(self, key: str) -> tuple[BinaryIO, int]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise StoredObjectMissing(key) from exc
        return answer["Body"], int(answer["ContentLength"])

    def _objects(self, prefix: str) -> Iterator[dict]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=check_key(prefix) + "/"
        )
        for page in pages:
            yield from page.get("Contents", [])

    def list(self, prefix: str, limit: int | None = None) -> list[StoredFile]:
        out: list[StoredFile] = []
        start = len(prefix) + 1
        for entry in self._objects(prefix):
            out.append(StoredFile(entry["Key"][start:], int(entry["Size"])))
            if limit is not None and len(out) >= limit:
                break
        return sorted(out, key=lambda f: f.name)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def local_tree(self, prefix: str, scratch: Path) -> Path:
        """Download every object under `prefix` into `scratch` (a folder only the worker
        writes); names come from our own keys, checked again before they become paths."""
        scratch = Path(scratch)
        scratch.mkdir(parents=True, exist_ok=True)

        def fetch(entry: StoredFile) -> None:
            target = scratch / check_key(entry.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.size <= SINGLE_REQUEST_BYTES:
                body, _size = self.open(f"{prefix}/{entry.name}")
                with open(target, "wb") as out:
                    for chunk in iter_chunks(body):
                        out.write(chunk)
            else:
                self.client.download_file(self.bucket, f"{prefix}/{entry.name}", str(target))

        _in_parallel(fetch, self.list(prefix))
        return scratch

    def delete(self, key: str) -> None:
        with _unavailable_as_oserror(key):
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def delete_tree(self, prefix: str) -> None:
        keys = [{"Key": entry["Key"]} for entry in self._objects(prefix)]
        for start in range(0, len(keys), 1000):  # the API's limit per request
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000]})


def _in_parallel(fn, items) -> None:
    """`fn` on every item, TREE_CONCURRENCY at a time (boto3 clients are thread-safe);
    the first error is raised."""
    with ThreadPoolExecutor(TREE_CONCURRENCY) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


@contextmanager
def _unavailable_as_oserror(key: str):
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        raise ObjectStoreUnavailable(f"the object store failed on {key}: {exc}") from exc


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def store_for(config) -> LocalFolderStore | S3Store:
    """The store the settings name. One boto3 client per settings per process (a forked
    work horse makes its own: a connection pool must not cross a fork)."""
    if config.OBJECT_STORE == "local":
        return LocalFolderStore(config.data_path)
    settings = (os.getpid(), config.S3_ENDPOINT_URL, config.S3_REGION, config.S3_ACCESS_KEY_ID,
                config.S3_SECRET_ACCESS_KEY)
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            client = _clients[settings] = _s3_client(config)
    return S3Store(client, config.S3_BUCKET)


def _s3_client(config):
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.S3_ENDPOINT_URL or None,
        region_name=config.S3_REGION or None,
        # Empty: boto3's own chain (AWS_* variables, an instance role...).
        aws_access_key_id=config.S3_ACCESS_KEY_ID or None,
        aws_secret_access_key=config.S3_SECRET_ACCESS_KEY or None,
        # Path-style URLs work on every S3-compatible server, virtual hosts need DNS for each bucket.
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 5},
                          max_pool_connections=TREE_CONCURRENCY),
    )
