"""Sessions, login loading, rate-limit storage and response hardening headers."""

from __future__ import annotations

from flask import Flask

from flautim.models import User

from .extensions import limiter, login_manager
from .projects.access import user_by_id


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    # Flask-Login's "strong" protection would log users out when the IP changes; the session
    # epoch (User.get_id) already ends stale sessions after a password change.
    login_manager.session_protection = "basic"

    redis_url = app.config["FLAUTIM_REDIS_URL_RESOLVED"]
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI",
        redis_url.replace("unix://", "redis+unix://", 1) if redis_url.startswith("unix://") else redis_url,
    )
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)

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
    user_id, _, epoch = session_id.partition(".")
    if not user_id.isdigit() or not epoch.isdigit():
        return None
    user = user_by_id(int(user_id))
    if user is None or user.session_epoch != int(epoch) or not user.active:
        return None
    return user
