"""Nothing stored half-way: uploads are written to a staging folder under DATA_DIR/tmp,
validated there, and put in the object store once the database row exists (a local store
on the same disk takes the folder with one rename). The folder goes when the `with` ends.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from flask_babel import gettext as _

from .archives import CHUNK, ByteBudget
from .errors import UserFacingError
from .limits import MB


class Staging:
    """A private temporary folder under DATA_DIR/tmp; use as a context manager."""

    def __init__(self, data_dir: Path) -> None:
        root = Path(data_dir) / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="upload-", dir=root))

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)  # nothing left when a local store took it


def save_stream(
    stream: BinaryIO, target: Path, budget: ByteBudget, limit: int, filename: str, field: str | None
) -> int:
    """Copy `stream` to `target`, refusing past `limit` bytes; returns the size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with open(target, "xb") as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise UserFacingError(
                    _("%(name)s passa do limite de %(mb)d MB.", name=filename, mb=limit // MB),
                    field=field,
                    filename=filename,
                )
            budget.spend(len(chunk), filename)
            out.write(chunk)
    return size


def read_limited(stream: BinaryIO, limit: int, filename: str, field: str | None) -> bytes:
    """The whole stream as bytes, refusing past `limit` bytes."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UserFacingError(
            _("%(name)s passa do limite de %(kb)d KB.", name=filename, kb=limit // 1024),
            field=field,
            filename=filename,
        )
    return data
