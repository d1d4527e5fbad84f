"""Extracting a user's zip archive without trusting anything it says about itself.

Refused, with the entry's name: absolute paths and `..` (zip-slip), symlinks, encrypted
entries, duplicate names, more entries than MAX_ARCHIVE_FILES, and zip bombs — an entry
whose expansion ratio is too high, or a total past MAX_UNZIPPED_MB. Sizes are counted while
the bytes are written, since the sizes in the zip's headers can lie.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from flask_babel import gettext as _

from .errors import UserFacingError
from .limits import MB, UploadLimits
from .names import safe_relative_path

CHUNK = 1024 * 1024
# Below this size a high ratio is harmless (a small text file of repeated lines).
RATIO_CHECK_FROM_BYTES = 1 * MB


class ByteBudget:
    """Counts bytes written across every file of one upload against the unzipped limit."""

    def __init__(self, limit: int, field: str | None) -> None:
        self.limit = limit
        self.used = 0
        self.field = field

    def spend(self, n: int, filename: str) -> None:
        self.used += n
        if self.used > self.limit:
            raise UserFacingError(
                _(
                    "Os dados descompactados passam do limite de %(mb)d MB.",
                    mb=self.limit // MB,
                ),
                field=self.field,
                filename=filename,
                hint=_("Envie menos dados ou peça ao administrador para aumentar o limite."),
            )


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def extract_zip(
    archive: Path,
    dest: Path,
    limits: UploadLimits,
    budget: ByteBudget,
    archive_name: str,
    field: str | None = None,
) -> list[PurePosixPath]:
    """Extract `archive` into `dest` (which must exist); returns the relative paths written."""
    if not zipfile.is_zipfile(archive):
        raise UserFacingError(
            _("%(name)s não é um arquivo zip válido.", name=archive_name), field=field, filename=archive_name
        )
    written: list[PurePosixPath] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > limits.max_archive_files:
                raise UserFacingError(
                    _(
                        "O zip tem %(n)d entradas; o máximo é %(max)d.",
                        n=len(infos),
                        max=limits.max_archive_files,
                    ),
                    field=field,
                    filename=archive_name,
                    hint=_("Agrupe os dados em menos arquivos (por exemplo, um .npz ou .csv)."),
                )
            declared = sum(i.file_size for i in infos)
            if declared > limits.max_unzipped_bytes:
                raise UserFacingError(
                    _(
                        "O zip se expande para %(got)d MB; o limite é %(mb)d MB.",
                        got=declared // MB,
                        mb=limits.max_unzipped_bytes // MB,
                    ),
                    field=field,
                    filename=archive_name,
                )
            # Check every entry before writing anything, so a bad entry late in the
            # archive costs no disk.
            seen: set[str] = set()
            plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            for info in infos:
                where = f"{archive_name}: {info.filename}"
                if _is_symlink(info):
                    raise UserFacingError(
                        _("Links simbólicos não são permitidos no zip: %(name)s", name=info.filename),
                        field=field,
                        filename=where,
                        hint=_("Substitua o link pelo arquivo real antes de compactar."),
                    )
                if info.flag_bits & 0x1:
                    raise UserFacingError(
                        _("Arquivos protegidos por senha não são aceitos: %(name)s", name=info.filename),
                        field=field,
                        filename=where,
                    )
                rel = safe_relative_path(info.filename, field)
                if info.is_dir():
                    continue
                key = str(rel).lower()
                if key in seen:
                    raise UserFacingError(
                        _("Nome repetido no zip: %(name)s", name=info.filename), field=field, filename=where
                    )
                seen.add(key)
                if (
                    info.file_size > RATIO_CHECK_FROM_BYTES
                    and info.file_size > limits.max_ratio * max(info.compress_size, 1)
                ):
                    raise UserFacingError(
                        _(
                            "%(name)s se expande %(ratio)d vezes ao descompactar: parece uma bomba de zip.",
                            name=info.filename,
                            ratio=info.file_size // max(info.compress_size, 1),
                        ),
                        field=field,
                        filename=where,
                        hint=_("Envie os dados sem uma compactação tão alta."),
                    )
                plan.append((info, rel))
            for info, rel in plan:
                target = dest.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                # Counted while writing: the header's file_size is the zip's claim, not a fact.
                limit_for_entry = max(info.file_size, 0)
                written_bytes = 0
                with zf.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(CHUNK):
                        written_bytes += len(chunk)
                        if written_bytes > limit_for_entry:
                            raise UserFacingError(
                                _("%(name)s é maior do que o zip declara.", name=info.filename),
                                field=field,
                                filename=f"{archive_name}: {info.filename}",
                            )
                        budget.spend(len(chunk), f"{archive_name}: {info.filename}")
                        out.write(chunk)
                written.append(rel)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise UserFacingError(
            _("Não foi possível ler o zip %(name)s: %(err)s", name=archive_name, err=str(exc)),
            field=field,
            filename=archive_name,
        ) from exc
    except FileExistsError as exc:
        raise UserFacingError(
            _("Nome repetido no zip: %(name)s", name=Path(exc.filename or "").name),
            field=field,
            filename=archive_name,
        ) from exc
    return written
