"""Staging a dataset upload: the Dataset class (`dataset.py`) plus its data, sent as
several files or as one zip. The staged folder is exactly a bundle's `dataset.py` + `data/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from flask_babel import gettext as _

from .archives import CHUNK, ByteBudget, extract_zip
from .errors import UserFacingError
from .limits import UploadLimits
from .names import basename, safe_component
from .sources import PythonSource, read_python_upload
from .staging import read_limited, save_stream


class Upload(Protocol):
    """What an uploaded file must offer (werkzeug's FileStorage does)."""

    filename: str | None
    stream: BinaryIO


@dataclass(frozen=True)
class StagedDataset:
    source: PythonSource
    files: list[PurePosixPath]
    size_bytes: int
    content_hash: str


def _is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


def folder_hash(root: Path) -> tuple[str, int]:
    """A hash of every file's relative path and content (order-independent), and the size."""
    digest = hashlib.sha256()
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        file_digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                file_digest.update(chunk)
                total += len(chunk)
        digest.update(str(path.relative_to(root).as_posix()).encode() + b"\0")
        digest.update(file_digest.digest())
    return digest.hexdigest(), total


def stage_dataset(
    staging_dir: Path,
    dataset_file: Upload | None,
    data_files: list[Upload],
    limits: UploadLimits,
) -> StagedDataset:
    """Write `dataset.py` and `data/` into `staging_dir`, validating everything on the way."""
    if dataset_file is None or not dataset_file.filename:
        raise UserFacingError(
            _("Envie o arquivo .py com a classe Dataset."),
            field="dataset_file",
            hint=_("É o código que lê seus dados, por exemplo dataset.py."),
        )
    name = basename(dataset_file.filename)
    data = read_limited(dataset_file.stream, limits.max_source_bytes, name, "dataset_file")
    source = read_python_upload(data, name, "dataset_file", limits.max_source_bytes)
    (staging_dir / "dataset.py").write_bytes(source.data)

    data_dir = staging_dir / "data"
    data_dir.mkdir()
    budget = ByteBudget(limits.max_unzipped_bytes, "data_files")
    uploads = [f for f in data_files if f is not None and f.filename]
    written: list[PurePosixPath] = []
    archives = [f for f in uploads if _is_zip_name(basename(f.filename))]
    if archives and len(uploads) > 1:
        raise UserFacingError(
            _("Envie vários arquivos de dados ou um único zip, não os dois juntos."),
            field="data_files",
        )
    if archives:
        zip_name = basename(archives[0].filename)
        raw = staging_dir / "upload.zip"
        # The zip itself is not unzipped data; it counts against the upload limit only.
        save_stream(
            archives[0].stream,
            raw,
            ByteBudget(limits.max_upload_bytes, "data_files"),
            limits.max_upload_bytes,
            zip_name,
            "data_files",
        )
        try:
            written = extract_zip(raw, data_dir, limits, budget, zip_name, "data_files")
        finally:
            raw.unlink(missing_ok=True)
    else:
        if len(uploads) > limits.max_archive_files:
            raise UserFacingError(
                _("Arquivos demais: no máximo %(max)d.", max=limits.max_archive_files),
                field="data_files",
            )
        seen: set[str] = set()
        for upload in uploads:
            original = basename(upload.filename)
            # Plain files land flat in data/: a browser sends a bare name, never a folder.
            rel = PurePosixPath(safe_component(original, "data_files"))
            if str(rel).lower() in seen:
                raise UserFacingError(
                    _("Arquivo repetido: %(name)s", name=original), field="data_files", filename=original
                )
            seen.add(str(rel).lower())
            save_stream(
                upload.stream, data_dir / rel, budget, limits.max_upload_bytes, original, "data_files"
            )
            written.append(rel)
    content_hash, size = folder_hash(staging_dir)
    return StagedDataset(source=source, files=written, size_bytes=size, content_hash=content_hash)
