"""Errors a user can fix: what went wrong, where (file:line), and a hint.

Every failure that comes from the user's bundle (code, data, hyperparameters) is raised as a
`FlautimError`. The runner turns it into exactly one `error` event (see `events.py`) and a
non-zero exit code, so the web page can show "what / where / hint" instead of a traceback.

Each error can also carry a stable `code` with its `params` (the values its message names)
and a FAQ `help` slug: the platform renders the code through its translation catalog
(flautim/run_messages.py), while `what` and `hint` stay the English text for `flautim run`
and the logs. Codes and slugs are listed in `error_codes.py`.

`user_code_error` builds one from an exception raised inside user code: it walks the
traceback to the innermost frame that belongs to the bundle (dataset.py, api.py, ...) so the
message names the user's own file and line, not a line deep inside PyTorch.
"""

from __future__ import annotations

import traceback as traceback_module
from pathlib import Path
from types import TracebackType
from typing import Any

from flautim.fl import error_codes

# The kinds match `events.ERROR_KINDS`.
USER_CODE = "user_code"
HYPERPARAMETERS = "hyperparameters"
DATA = "data"

# A traceback shown to the user is cut to this many characters (the tail, where the cause is).
MAX_TRACEBACK_CHARS = 8000


class FlautimError(Exception):
    """A failure the user can fix, with `what` happened, `where` (file:line) and a `hint`.

    `kind` classifies it (user_code, hyperparameters, data, timeout, out_of_memory,
    infrastructure); `client` is the federated client it happened on (None: the server or
    the preparation step); `traceback` is the user-relevant traceback text, if any.
    """

    def __init__(
        self,
        what: str,
        where: str = "",
        hint: str = "",
        kind: str = USER_CODE,
        client: int | None = None,
        traceback: str | None = None,
        code: str | None = None,
        params: dict[str, Any] | None = None,
        help: str | None = None,
    ) -> None:
        self.what = what
        self.code = code
        self.params = dict(params or {})
        self.help = help if help is not None else error_codes.help_for(code)
        self.where = where
        self.hint = hint
        self.kind = kind
        self.client = client
        self.traceback = traceback
        super().__init__(self.message())

    def message(self) -> str:
        """One readable line: `where: what (client N). Hint: hint`."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.client is not None:
            text += f" (client {self.client})"
        if self.hint:
            text += f". Hint: {self.hint}"
        return text

    def event_fields(self) -> dict[str, Any]:
        """Keyword arguments for `EventWriter.emit("error", **fields)`."""
        fields: dict[str, Any] = {
            "what": self.what,
            "where": self.where,
            "hint": self.hint,
            "kind": self.kind,
        }
        if self.client is not None:
            fields["client"] = self.client
        if self.traceback:
            fields["traceback"] = self.traceback
        fields.update(error_codes.coded_fields(self.code, self.params, self.help))
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, Any], client: int | None = None) -> FlautimError:
        """The error a client process reported with `event_fields()` (its code included),
        raised again on the server; `client` names it when the fields do not."""
        params = fields.get("params")
        return cls(
            what=str(fields.get("what", "a client failed")),
            where=str(fields.get("where", "")),
            hint=str(fields.get("hint", "")),
            kind=str(fields.get("kind", USER_CODE)),
            client=fields.get("client", client),
            traceback=fields.get("traceback"),
            code=fields.get("code") if isinstance(fields.get("code"), str) else None,
            params=params if isinstance(params, dict) else None,
            help=fields.get("help") if isinstance(fields.get("help"), str) else None,
        )

    def with_client(self, client: int | None) -> FlautimError:
        """The same error attributed to `client` (keeps an attribution already made)."""
        if self.client is None:
            self.client = client
            self.args = (self.message(),)
        return self


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def user_location(tb: TracebackType | None, root: Path) -> str:
    """`file:line` of the innermost traceback frame inside `root` (the bundle), or ""."""
    where = ""
    for frame, lineno in traceback_module.walk_tb(tb):
        filename = frame.f_code.co_filename
        if filename.startswith("<"):
            continue
        path = Path(filename)
        if _is_under(path, root):
            where = f"{path.resolve().relative_to(root.resolve())}:{lineno}"
    return where


def user_traceback(exc: BaseException, root: Path) -> str:
    """The traceback text, with bundle paths shown relative to the bundle, cut to the tail."""
    text = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
    text = text.replace(str(root.resolve()) + "/", "")
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    return text


def describe_exception(exc: BaseException) -> str:
    """`ValueError: message` — the exception as a user reads it."""
    detail = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


def user_code_error(
    exc: BaseException,
    root: Path,
    what: str,
    hint: str = "",
    kind: str = USER_CODE,
    client: int | None = None,
    code: str | None = None,
    params: dict[str, Any] | None = None,
) -> FlautimError:
    """A FlautimError for `exc` raised inside user code.

    `what` says what the platform was doing ("training_loop raised in round 3"); the
    exception itself is appended. `where` is the innermost frame in the bundle `root`; for a
    SyntaxError it is the offending line of the file being compiled. `code` names what the
    platform was doing, with `params` and the exception as the param `error`.
    """
    if isinstance(exc, FlautimError):
        return exc.with_client(client)
    where = user_location(exc.__traceback__, root)
    if isinstance(exc, SyntaxError) and exc.filename:
        path = Path(exc.filename)
        name = str(path.resolve().relative_to(root.resolve())) if _is_under(path, root) else path.name
        where = f"{name}:{exc.lineno}" if exc.lineno else name
        detail = f"SyntaxError: {exc.msg}"
        if exc.text:
            detail += f" in `{exc.text.strip()}`"
    else:
        detail = describe_exception(exc)
    return FlautimError(
        what=f"{what}: {detail}",
        where=where,
        hint=hint,
        kind=kind,
        client=client,
        traceback=user_traceback(exc, root),
        code=code,
        params={**(params or {}), "error": detail} if code else None,
    )


def as_flautim_error(exc: BaseException, bundle_dir: Path, what: str, client: int | None = None) -> FlautimError:
    """Any exception as a FlautimError naming the user's file:line when user code raised it;
    with no frame of the bundle on the stack, kind `infrastructure` (the fault is ours)."""
    if isinstance(exc, FlautimError):
        return exc.with_client(client)
    if isinstance(exc, MemoryError):
        return FlautimError(
            what=f"{what}: out of memory",
            where=f"client {client}" if client is not None else "server",
            hint="use a smaller batch_size or model",
            kind="out_of_memory",
            client=client,
        )
    error = user_code_error(exc, Path(bundle_dir), what, client=client)
    if not error.where:
        error.kind = "infrastructure"
        error.hint = error.hint or "this looks like a platform problem; please report it with the run id"
    return error
