"""Turning names chosen by users (file names, names inside archives) into safe relative paths.

A name is refused, never silently rewritten into something else, when it tries to leave the
folder (absolute paths, drive letters, `..`): the user learns that the archive is unsafe.
Harmless oddities (spaces, accents, odd punctuation) are normalised.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from flask_babel import gettext as _

from .errors import UserFacingError

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_NAME_LENGTH = 200


def safe_component(name: str, field: str | None = None) -> str:
    """One path component made of safe characters; refuses empty names, '.' and '..'."""
    normalised = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_CHARS.sub("_", normalised).strip(" ")
    if cleaned in ("", ".", "..") or cleaned.startswith("."):
        # Hidden files (".x") are refused too: they would be invisible in the file list.
        raise UserFacingError(
            _("Nome de arquivo inválido: %(name)s", name=name),
            field=field,
            filename=name,
            hint=_("Use nomes com letras, números, ponto, hífen ou sublinhado."),
        )
    return cleaned[:MAX_NAME_LENGTH]


def safe_relative_path(name: str, field: str | None = None) -> PurePosixPath:
    """A relative path inside the target folder, or UserFacingError for an escaping name."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise UserFacingError(
            _("Caminho absoluto não permitido no arquivo: %(name)s", name=name),
            field=field,
            filename=name,
            hint=_("Crie o zip a partir da pasta dos dados, com caminhos relativos."),
        )
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UserFacingError(
            _("Caminho que sai da pasta (\"..\") não permitido: %(name)s", name=name),
            field=field,
            filename=name,
            hint=_("O arquivo zip tenta gravar fora da pasta de destino; recrie o zip."),
        )
    if not parts:
        raise UserFacingError(_("Nome de arquivo vazio."), field=field, filename=name)
    return PurePosixPath(*[safe_component(p, field) for p in parts])


def basename(name: str | None) -> str:
    """The last component of a name a browser sent (some send full Windows paths)."""
    return (name or "").replace("\\", "/").rsplit("/", 1)[-1]
