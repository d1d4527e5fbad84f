"""Reading a local experiment folder (docs/architecture.md, "Experiment bundle") for upload."""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

REQUIRED_FILES = ("dataset.py", "api.py", "hyperparameters.py")


class BundleError(Exception):
    """The local folder is not a usable bundle; the message says what to fix."""


@dataclass
class LocalBundle:
    root: Path
    data_files: list[Path]

    def path(self, name: str) -> Path:
        return self.root / name

    def data_zip(self) -> io.BytesIO | None:
        """The data/ folder as one zip (paths relative to data/), or None when it is empty."""
        if not self.data_files:
            return None
        buffer = io.BytesIO()
        data_root = self.root / "data"
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in self.data_files:
                archive.write(path, path.relative_to(data_root).as_posix())
        buffer.seek(0)
        return buffer


def read_bundle(folder: str | os.PathLike) -> LocalBundle:
    root = Path(folder)
    if not root.is_dir():
        raise BundleError(f"{root}: a pasta do experimento não existe")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise BundleError(
            f"{root}: faltam {', '.join(missing)} (uma pasta de experimento tem dataset.py, "
            "data/, api.py e hyperparameters.py)"
        )
    data_root = root / "data"
    files: list[Path] = []
    if data_root.exists():
        if not data_root.is_dir() or data_root.is_symlink():
            raise BundleError(f"{data_root}: deve ser uma pasta comum")
        for path in sorted(data_root.rglob("*")):
            if path.is_symlink():
                # The server refuses links in archives; say which one here instead.
                raise BundleError(f"{path}: links simbólicos não são enviados; copie o arquivo")
            if path.is_file():
                if any(part.startswith(".") for part in path.relative_to(data_root).parts):
                    continue  # hidden files (.DS_Store, .git) are not data
                files.append(path)
    return LocalBundle(root=root, data_files=files)
