"""The runtime's static checks (flautim.fl), seen through the web's error type.

The runtime raises its own errors (`FlautimError` with `where` = "file:line",
`HyperparameterError` with `line` and `hint`); the pages and the API want a
`UserFacingError` naming the form field, the file and the line.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import gettext as _

from flautim.web.uploads import UserFacingError

_LINE_IN_WHERE = re.compile(r":(\d+)\s*$")


def _as_user_error(exc: Exception, filename: str, field: str) -> UserFacingError:
    line = getattr(exc, "line", None) or getattr(exc, "lineno", None)
    where = getattr(exc, "where", "") or ""
    if not line and where:
        match = _LINE_IN_WHERE.search(where)
        line = int(match.group(1)) if match else None
    message = getattr(exc, "what", None) or getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None) or None
    return UserFacingError(str(message), field=field, line=line, hint=hint, filename=filename)


def check_api_source(source: str, filename: str) -> None:
    """UserFacingError (field model_file) when the API code lacks what the runtime needs."""
    from flautim.fl import bundle

    try:
        bundle.check_api_source(source, filename)
    except (ValueError, SyntaxError, LookupError, TypeError) as exc:
        raise _as_user_error(exc, filename, "model_file") from exc
    except Exception as exc:
        if hasattr(exc, "what") or hasattr(exc, "hint"):
            raise _as_user_error(exc, filename, "model_file") from exc
        raise


def check_hyperparameters(source: str, filename: str) -> dict[str, Any]:
    """The values of a hyperparameter file (literals only, never executed)."""
    from flautim.fl import hyperparameters

    try:
        values = hyperparameters.parse_hyperparameters(source, filename)
    except Exception as exc:
        if isinstance(exc, (ValueError, SyntaxError)) or hasattr(exc, "hint") or hasattr(exc, "what"):
            raise _as_user_error(exc, filename, "hyperparameters_file") from exc
        raise
    if not isinstance(values, dict):
        raise UserFacingError(_("O arquivo de hiperparâmetros não pôde ser lido."), field="hyperparameters_file")
    return dict(values)
