"""The error a user can fix: a message plus where it is (field, line) and a hint.

Upload validation, the experiment services, the quotas and the JSON API all raise this one
type, so the pages and the API show the same words for the same mistake. It lives below
the web and the worker so both can raise it (flautim.quotas is used by both).
"""

from __future__ import annotations


class UserFacingError(Exception):
    """Something the user sent is wrong. `message` is already translated for the user.

    `field` names the form field (or API field) at fault, `line` the line of the uploaded
    file, `filename` the file (a name inside an archive, for instance), `hint` what to do.
    """

    def __init__(
        self,
        message: str,
        field: str | None = None,
        line: int | None = None,
        hint: str | None = None,
        filename: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line
        self.hint = hint
        self.filename = filename

    def where(self) -> str:
        """"file, line N" (or what of it is known), for one-line displays."""
        parts = []
        if self.filename:
            parts.append(self.filename)
        if self.line:
            parts.append(f"linha {self.line}")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        body = {"message": self.message}
        for key in ("field", "line", "hint", "filename"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        return body

    def __str__(self) -> str:
        where = self.where()
        return f"{self.message} ({where})" if where else self.message
