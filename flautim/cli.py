"""The `flautim` command. Each subcommand imports its module lazily, so `flautim run`
never imports the web app and the web commands never import torch."""

from __future__ import annotations

import click

# `run`, `submit` and `download` hand their whole line (--help too) to their own command,
# imported only when called.
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group()
def main() -> None:
    """Flautim: federated-learning experiments, from the browser or the terminal."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the web app (development server) with FLAUTIM_* settings."""
    from flautim.web.serve import serve as run_server

    run_server(host, port, demo=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-run", is_flag=True, help="Seed the demo but do not start the MNIST run.")
def demo(host: str, port: int, no_run: bool) -> None:
    """Seed a demo account and project with the MNIST example, start it, and serve."""
    from flautim.web.serve import serve as run_server

    run_server(host, port, demo=True, start_demo_run=not no_run)


@main.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.password_option()
def create_admin(email: str, name: str, password: str) -> None:
    """Create a site administrator (or make an existing user one)."""
    from flautim.web.admin.commands import create_admin as make

    click.echo(make(email, name, password))


@main.group()
def db() -> None:
    """The database schema's migrations (Alembic; FLAUTIM_DATABASE_URL names the database)."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from flautim import schema_migrations

    schema_migrations.upgrade(revision=revision)


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION ("base": no tables)."""
    from flautim import schema_migrations

    schema_migrations.downgrade(None, revision)


@db.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--rev-id", default=None, help="The revision's id (default: a random one).")
def revision(message: str, rev_id: str | None) -> None:
    """Write a new revision from what the models describe and the database lacks."""
    from alembic import command

    from flautim import schema_migrations

    command.revision(schema_migrations.alembic_config(), message=message, autogenerate=True, rev_id=rev_id)


@main.command()
@click.option("--queue", "queues", multiple=True, help="Queues to serve (default: experiments).")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Start a worker that runs queued experiments in sandboxes."""
    from flautim.worker.main import run_worker

    run_worker(list(queues) or None, burst=burst)


@main.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run an experiment bundle on this machine: `flautim run DIR [--transport flower]`."""
    from flautim.fl.runner import main as run_main

    raise SystemExit(run_main(ctx.args))


@main.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def submit(ctx: click.Context) -> None:
    """Upload a local experiment folder through the API, start it and follow it."""
    from flautim.api_client.cli import submit_main

    raise SystemExit(submit_main(ctx.args))


@main.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def download(ctx: click.Context) -> None:
    """Download a trained model (a checkpoint) of an experiment through the API."""
    from flautim.api_client.cli import download_main

    raise SystemExit(download_main(ctx.args))


@main.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def baseline(ctx: click.Context) -> None:
    """Compare a finished experiment with centralized training (one client, all the data)."""
    from flautim.api_client.cli import baseline_main

    raise SystemExit(baseline_main(ctx.args))


if __name__ == "__main__":
    main()
