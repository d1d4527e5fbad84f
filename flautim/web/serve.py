"""`flautim serve` and `flautim demo`: migrate, start the embedded worker, serve.

The development server is threaded (live pages hold a Server-Sent Events connection each);
production runs `gunicorn wsgi:app` instead (see README).
"""

from __future__ import annotations

import logging

import click

from flautim.config import Config


def serve(host: str, port: int, demo: bool, start_demo_run: bool = True) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {"BASE_URL": f"http://{host}:{port}"}
    config = Config.from_env(**overrides)
    from flautim.schema_migrations import upgrade
    from flautim.web import create_app
    from flautim.web.database import engine_of

    app = create_app(config)
    upgrade(engine_of(app))

    if config.EMBEDDED_WORKER:
        from flautim.worker.main import start_embedded_worker

        start_embedded_worker(app)

    login = None
    if demo:
        from flautim.web.demo import seed_demo

        login = seed_demo(app, start_run=start_demo_run)

    url = config.BASE_URL
    click.echo("")
    click.echo(f"  Flautim is running at {url}")
    if login:
        click.echo(f"  Demo login: {login.email}  password: {login.password}")
        click.echo(f"  Demo experiment: {url}{login.path}")
    if config.SANDBOX_BACKEND == "local":
        click.echo("  Sandbox: local processes (NOT isolated; use FLAUTIM_SANDBOX_BACKEND=docker)")
    click.echo("")
    app.run(host=host, port=port, threaded=True, use_reloader=False, debug=False)
