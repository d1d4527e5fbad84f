"""Sessions, login loading, rate-limit storage, the site's secret key and response
hardening headers."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from flask import Flask, session
from werkzeug.middleware.proxy_fix import ProxyFix

from flautim import redis_connection
from flautim.models import User, db
from flautim.web import flautim_config

from .extensions import limiter, login_manager

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret-key"
SECRET_KEY_MIN_LENGTH = 32


def load_or_create_secret_key(data_dir: Path) -> str:
    """The key kept in DATA_DIR/secret-key, made on first start: 256 random bits, a file
    only this user can read. A site without FLAUTIM_SECRET_KEY thus never signs sessions
    with a key anyone can read in our source, and keeps its sessions across restarts.

    Safe when several processes start at once (gunicorn workers): the key is written whole
    to a private temporary file (O_EXCL) and published with link(), which fails if another
    process got there first; then everyone reads the one file.
    """
    path = Path(data_dir) / SECRET_KEY_FILE
    if not path.exists():
        temporary = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
                log.info("generated a secret key in %s (set FLAUTIM_SECRET_KEY to choose one)", path)
            except FileExistsError:
                pass  # another process published its key first: use that one
        finally:
            temporary.unlink(missing_ok=True)
    return _read_secret_key(path)


def _read_secret_key(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s was readable by others; made it 0600", path)
            os.fchmod(handle.fileno(), 0o600)
        key = handle.read().strip()
    if len(key) < SECRET_KEY_MIN_LENGTH:
        raise ValueError(
            f"{path} holds no usable secret key (under {SECRET_KEY_MIN_LENGTH} characters): "
            "remove it to generate a new one, or set FLAUTIM_SECRET_KEY"
        )
    return key


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    # Flask-Login's "strong" protection would log users out when the IP changes; the session
    # epoch (User.get_id) already ends stale sessions after a password change.
    login_manager.session_protection = "basic"

    url = redis_connection.redis_url(flautim_config(app))
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI", url.replace("unix://", "redis+unix://", 1) if url.startswith("unix://") else url
    )
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)

    hops = flautim_config(app).TRUSTED_PROXIES
    if hops:
        # The client's address (what rate limits key on) and scheme as the proxies saw
        # them. Only X-Forwarded-For and -Proto: a proxy that passes a client's
        # X-Forwarded-Host through would let that client choose our links' host.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    @app.after_request
    def harden(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # Every asset is served by the app itself: no CDN, so 'self' is enough.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        return response


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    ids = _parse_session_id(session_id)
    if ids is None:
        return None
    user = db.session.get(User, ids[0])
    if user is None or user.session_epoch != ids[1] or not user.active:
        return None
    return user


def _parse_session_id(session_id: str) -> tuple[int, int] | None:
    """User.get_id()'s "<user id>.<session epoch>" as two ints, or None."""
    user_id, _, epoch = str(session_id).partition(".")
    if not user_id.isdigit() or not epoch.isdigit():
        return None
    return int(user_id), int(epoch)


def session_user_id() -> int | None:
    """The id of the user this request's session names, without loading the user: where
    Flask-Login keeps `User.get_id()` (the session's "_user_id", which its own test client
    writes too). For a view that fetches that user in its first query so that load_user,
    which still decides who is logged in, finds the row already in the ORM session
    (access.get_object_with_session_user_or_404). None without such a session."""
    ids = _parse_session_id(session.get("_user_id", ""))
    return ids[0] if ids is not None else None
