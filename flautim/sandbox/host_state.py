"""Where the workers of one host keep what they share on disk, and the lock they share it by.

Several workers may run on one host (over one data folder): the warm pool's slots and the
admission tickets live under `DATA_DIR/sandbox-pool/`, each changed only under a file lock.
"""

from __future__ import annotations

import fcntl
import socket
from contextlib import contextmanager
from pathlib import Path

from flautim.config import Config


def pool_root(config: Config) -> Path:
    """This host's warm-pool slots (every folder in it is a slot)."""
    return config.data_path / "sandbox-pool" / socket.gethostname()


def admission_root(config: Config) -> Path:
    """This host's admission tickets: beside the pool's slots, never among them."""
    return config.data_path / "sandbox-pool" / f".admitted-{socket.gethostname()}"


@contextmanager
def exclusive(lock_file: Path):
    """Hold an exclusive lock on `lock_file` (made with its folder if missing)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
