"""What the object store costs a run's inputs and outputs: the same files put, listed,
fetched and streamed through the local folder store and through a real S3 server
(SeaweedFS on loopback, started here), side by side.

    .venv/bin/python benchmarks/bench_object_store.py [--files 2000] [--file-kb 32] [--big-mb 64]

A dataset of many small files (a run's inputs: put_tree at upload, local_tree on a worker)
and one big file (a checkpoint: put_file by the worker, open + read by a download).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flautim.config import Config  # noqa: E402
from flautim.object_store import LocalFolderStore, iter_chunks, store_for  # noqa: E402
from tests.seaweedfs import start_seaweedfs  # noqa: E402


def _dataset(folder: Path, files: int, size: int) -> None:
    for i in range(files):
        path = folder / "data" / f"part-{i % 20}" / f"{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    (folder / "dataset.py").write_text("class D: pass\n")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(store, work: Path, files: int, size: int, big: Path) -> dict[str, float]:
    staged = work / "staged"
    _dataset(staged, files, size)
    key = "projects/1/datasets/1"
    out = {}
    out["put_tree"] = _timed(lambda: store.put_tree(key, staged))
    out["list"] = _timed(lambda: store.list(f"{key}/data"))
    out["local_tree"] = _timed(lambda: store.local_tree(f"{key}/data", work / "fetched"))
    ckpt = "projects/1/experiments/1/attempt-1/checkpoints/round-1-final.safetensors"
    out["put_file big"] = _timed(lambda: store.put_file(ckpt, big))

    def stream():
        body, _size = store.open(ckpt)
        for _chunk in iter_chunks(body):
            pass

    out["stream big"] = _timed(stream)
    store.delete_tree("projects/1")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--file-kb", type=int, default=32)
    parser.add_argument("--big-mb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "big.bin"
        big.write_bytes(os.urandom(args.big_mb * 2**20))
        server = start_seaweedfs(tmp / "seaweedfs")
        try:
            config = Config.from_env(environ={}, DATA_DIR=str(tmp / "s3-data"), SANDBOX_BACKEND="local",
                                     **server.settings())
            results = {
                "local": measure(LocalFolderStore(tmp / "local-data"), tmp / "work-local", args.files,
                                 args.file_kb * 1024, big),
                "s3 (SeaweedFS)": measure(store_for(config), tmp / "work-s3", args.files,
                                          args.file_kb * 1024, big),
            }
        finally:
            server.stop()
            shutil.rmtree(tmp / "seaweedfs", ignore_errors=True)
    total_mb = args.files * args.file_kb / 1024
    print(f"dataset: {args.files} files x {args.file_kb} KiB ({total_mb:.0f} MiB); big file: {args.big_mb} MiB")
    print(f"{'step':<14}" + "".join(f"{name:>18}" for name in results))
    for step in next(iter(results.values())):
        print(f"{step:<14}" + "".join(f"{r[step]:>16.2f} s" for r in results.values()))


if __name__ == "__main__":
    main()
