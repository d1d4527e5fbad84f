"""The errors of the experiment services that are not the user's to fix in a form.

A mistake the user can fix is a `flautim.web.uploads.UserFacingError` (message, field,
line, hint), shown by the page or the API beside what was sent. `NotFound` is a plain
exception with a message; the web's and the API's error handlers answer it as 404, the
same as a URL that names nothing, so the services never build HTTP answers themselves.
"""

from __future__ import annotations


class NotFound(LookupError):
    """What was asked for is not in this project (or its file is gone)."""
