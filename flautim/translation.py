"""User-facing text written in the core (flautim.quotas), translated where it is shown.

The core writes its messages in Brazilian Portuguese, the source language, through
`gettext`. The web installs Flask-Babel's at start (flautim.web.i18n), so a request gets
its user's language; elsewhere (the worker) the source text is used, and no Flask loads.
"""

from __future__ import annotations

from collections.abc import Callable

_translate: Callable[..., str] | None = None


def translate_with(gettext: Callable[..., str]) -> None:
    """Use `gettext(string, **variables)` to translate the core's messages from now on."""
    global _translate
    _translate = gettext


def gettext(string: str, **variables) -> str:
    """`string` translated, with `%(name)s` placeholders filled from `variables`."""
    if _translate is not None:
        return _translate(string, **variables)
    return string % variables if variables else string
