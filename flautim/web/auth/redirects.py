"""Where to send a user after login or sign-up: only same-site paths, never an open redirect."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, url_for


def safe_next(target: str | None) -> str | None:
    """`target` if it is a local absolute path ("/projects/3"), else None."""
    if not target or len(target) > 2000:
        return None
    target = target.strip()
    # Browsers treat "\" like "/", so "/\evil.com" would leave the site.
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def next_or(default_endpoint: str, **values) -> str:
    """The request's safe `next` (query string or form), else the default page."""
    return safe_next(request.values.get("next")) or url_for(default_endpoint, **values)
