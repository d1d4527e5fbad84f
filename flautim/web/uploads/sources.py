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


# Deeper than this, a tree breaks recursive tools (ast.NodeVisitor, compile()) that the
# checks after this one, and the run itself, may use; real code stays far below it.
MAX_SYNTAX_DEPTH = 300
# A syntax error's line may be the whole file (one line of 200,000 parentheses): the page
# and the API show its start.
MAX_HINT_CHARS = 200


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_HINT_CHARS else text[:MAX_HINT_CHARS] + "…"


def _too_deep(tree: ast.AST, limit: int) -> bool:
    """Whether any node lies more than `limit` levels down (iterative: the tree may be
    deeper than the recursion limit)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False


def check_syntax(text: str, filename: str, field: str) -> ast.Module:
    """The parsed module, or UserFacingError naming the file (and the line when the
    compiler knows it). Pathological sources (thousands of nested parentheses, operators
    or attributes) make the compiler give up with MemoryError or RecursionError rather
    than SyntaxError; they are the user's to fix too."""
    if "\0" in text:
        raise _nul_byte(text, filename, field)
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise UserFacingError(
            _("Erro de sintaxe: %(msg)s", msg=exc.msg),
            field=field,
            line=exc.lineno,
            filename=filename,
            hint=_short(exc.text or "") or None,
        ) from exc
    except ValueError as exc:  # NUL bytes, on the 3.11 releases that raise ValueError
        raise _nul_byte(text, filename, field) from exc
    except (MemoryError, RecursionError) as exc:
        raise _too_nested(filename, field) from exc
    if _too_deep(tree, MAX_SYNTAX_DEPTH):
        raise _too_nested(filename, field)
    return tree


def _nul_byte(text: str, filename: str, field: str) -> UserFacingError:
    at = text.find("\0")
    return UserFacingError(
        _("%(name)s contém um byte nulo (NUL), que não pode estar em código Python.", name=filename),
        field=field,
        line=text[:at].count("\n") + 1 if at >= 0 else None,
        filename=filename,
        hint=_("Salve o arquivo como texto UTF-8 no seu editor."),
    )


def _too_nested(filename: str, field: str) -> UserFacingError:
    return UserFacingError(
        _(
            "%(name)s aninha expressões em mais níveis do que o Python consegue analisar "
            "(o limite aqui é %(max)d).",
            name=filename,
            max=MAX_SYNTAX_DEPTH,
        ),
        field=field,
        filename=filename,
        hint=_(
            "Divida a expressão em partes menores, guardadas em variáveis; parênteses, "
            "operadores ou atributos encadeados aos milhares não são aceitos."
        ),
    )


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
