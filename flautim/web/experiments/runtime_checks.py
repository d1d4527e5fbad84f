"""The runtime's static checks (flautim.fl), seen through the web's error type.

The runtime raises its own errors (`FlautimError` with `where` = "file:line",
`HyperparameterError` with `line` and `hint`); the pages and the API want a
`UserFacingError` naming the form field, the file and the line.
"""

from __future__ import annotations

import json
import re
from typing import Any

import flask_babel
from flask_babel import gettext as _

from flautim import run_messages
from flautim.web.uploads import UserFacingError

_LINE_IN_WHERE = re.compile(r":(\d+)\s*$")


def _as_user_error(exc: Exception, filename: str, field: str) -> UserFacingError:
    line = getattr(exc, "line", None) or getattr(exc, "lineno", None)
    where = getattr(exc, "where", "") or ""
    if not line and where:
        match = _LINE_IN_WHERE.search(where)
        line = int(match.group(1)) if match else None
    message, hint = _text(exc)
    return UserFacingError(message, field=field, line=line, hint=hint or None, filename=filename)


def _text(exc: Exception) -> tuple[str, str]:
    """(what, hint) in the request's language when the runtime named the error with a code
    (flautim.run_messages), else its own text."""
    if getattr(exc, "code", None):
        shown = run_messages.render(exc.event_fields(), flask_babel.gettext)
        if shown.translated:
            return shown.what, shown.hint
    message = getattr(exc, "what", None) or getattr(exc, "message", None) or str(exc)
    return str(message), getattr(exc, "hint", None) or ""


def _raise_first(problems: list, filename: str, field: str) -> None:
    if not problems:
        return
    error = _as_user_error(problems[0], filename, field)
    if len(problems) > 1:
        more = "; ".join(_text(p)[0] for p in problems[1:4])
        error.hint = " ".join(filter(None, [error.hint, _("Também: %(more)s", more=more)]))
    raise error


def check_api_source(source: str, filename: str) -> None:
    """UserFacingError (field model_file) when the API code lacks what the runtime needs:
    an Experiment subclass with training_loop/validation_loop, and a model."""
    from flautim.fl import bundle

    _raise_first(bundle.check_api_source(source, filename), filename, "model_file")


def check_dataset_source(source: str, filename: str) -> None:
    """UserFacingError (field dataset_file) when dataset.py has no usable Dataset subclass."""
    from flautim.fl import bundle

    _raise_first(bundle.check_dataset_source(source, filename), filename, "dataset_file")


def check_hyperparameters(source: str, filename: str) -> dict[str, Any]:
    """Every value of a hyperparameter file, defaults included (literals only, parsed and
    never executed); UserFacingError with the line for anything else."""
    from flautim.fl.errors import FlautimError
    from flautim.fl.hyperparameters import parse_hyperparameters

    try:
        parsed = parse_hyperparameters(source, filename)
    except FlautimError as exc:
        raise _as_user_error(exc, filename, "hyperparameters_file") from exc
    values = parsed.to_dict() if hasattr(parsed, "to_dict") else parsed
    if not isinstance(values, dict):
        raise UserFacingError(_("O arquivo de hiperparâmetros não pôde ser lido."), field="hyperparameters_file")
    # Stored as JSON: tuples become lists, anything exotic its text.
    return json.loads(json.dumps(values, default=str))
