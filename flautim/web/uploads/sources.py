"""Checks every uploaded Python source goes through before anything else reads it:
the `.py` extension, a size cap, UTF-8 (the line of the first bad byte is reported) and
syntax (line and column from the compiler). Nothing here executes the code.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass

from flask_babel import gettext as _

from .errors import UserFacingError
from .limits import MB


@dataclass(frozen=True)
class PythonSource:
    filename: str
    text: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def require_py_name(filename: str, field: str) -> None:
    if not filename:
        raise UserFacingError(_("Escolha um arquivo."), field=field)
    if not filename.lower().endswith(".py"):
        raise UserFacingError(
            _("%(name)s não é um arquivo .py.", name=filename),
            field=field,
            filename=filename,
            hint=_("Envie o código Python com a extensão .py."),
        )


def decode_utf8(data: bytes, filename: str, field: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserFacingError(
            _("O arquivo não está em UTF-8 (byte inválido na linha %(line)d).", line=line),
            field=field,
            line=line,
            filename=filename,
            hint=_("Salve o arquivo com a codificação UTF-8 no seu editor."),
        ) from exc
    # A BOM is legal UTF-8 but trips `ast` line numbers in some tools; drop it.
    return text.removeprefix("\ufeff")


def check_syntax(text: str, filename: str, field: str) -> ast.Module:
    try:
        return ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise UserFacingError(
            _("Erro de sintaxe: %(msg)s", msg=exc.msg),
            field=field,
            line=exc.lineno,
            filename=filename,
            hint=(exc.text or "").strip() or None,
        ) from exc


def read_python_upload(data: bytes, filename: str, field: str, max_bytes: int) -> PythonSource:
    """The checked source of an uploaded `.py`, or UserFacingError naming file and line."""
    require_py_name(filename, field)
    if len(data) > max_bytes:
        raise UserFacingError(
            _("%(name)s passa do limite de %(kb)d KB para código.", name=filename, kb=max_bytes // 1024),
            field=field,
            filename=filename,
        )
    if not data.strip():
        raise UserFacingError(_("%(name)s está vazio.", name=filename), field=field, filename=filename)
    text = decode_utf8(data, filename, field)
    check_syntax(text, filename, field)
    return PythonSource(filename=filename, text=text, data=data)


__all__ = ["MB", "PythonSource", "check_syntax", "decode_utf8", "read_python_upload", "require_py_name"]
