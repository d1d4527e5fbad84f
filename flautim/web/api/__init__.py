"""The JSON API (personal access tokens) and its OpenAPI document.

Two blueprints: `api` (/api/v1, JSON, bearer tokens only, exempt from CSRF because it never
reads cookies) and `api_tokens` (/account/tokens, the HTML forms that make and revoke
tokens, logged in by session and CSRF-protected like every other form).
"""

from flask import Blueprint, Flask

bp = Blueprint("api", __name__, url_prefix="/api/v1")
tokens_bp = Blueprint("api_tokens", __name__, url_prefix="/account/tokens")


def init_app(app: Flask) -> None:
    from flautim.web.extensions import csrf

    # Importing the route modules attaches their views, the bearer check and the error
    # handlers to the blueprints (once per process, before the first registration).
    from . import asset_routes, client_routes, experiment_routes, export_routes, routes, token_pages  # noqa: F401

    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(tokens_bp)
    app.jinja_env.globals["api_tokens_for_current_user"] = token_pages.tokens_for_current_user
