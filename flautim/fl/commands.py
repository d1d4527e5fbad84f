"""The process entry points of a run: `python -m flautim.fl <command>`.

The local runner (`flautim run`) and the Docker sandbox start exactly these:
`prepare` and `inspect` here, the fast transport's `server`, `client` and `clients`
(`transport/fast_roles.py`), the Flower deployment's `flower-server` and `flower-client`
(`transport/flower_roles.py`), and `pooled` for the warm pool. Servers write the event
stream to stdout (`@flautim-event {json}` lines, see events.py); clients only print log
lines. Exit codes: 0 completed, 1 failed (an `error` event says why), 2 bad command line.

Each command imports its own modules when it runs: `prepare` and `inspect` never import flwr,
the Flower roles never import torch (each ~1 s of CPU at start-up), and `pooled` imports
everything on purpose before it waits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import click

from flautim.fl.command_line import USAGE_ERROR, run
from flautim.fl.errors import FlautimError, as_flautim_error
from flautim.fl.events import EventWriter
from flautim.fl.process_setup import (
    POOL_READY,
    quiet_flower,
    warm_client_imports,
    warm_server_imports,
)
from flautim.fl.run_settings import load_run_hyperparameters

POOLED_ROLES = ("server", "client", "clients", "flower-server", "flower-client")
# Commands that never touch flwr (the others have Flower's INFO logging quieted).
WITHOUT_FLOWER = ("prepare", "inspect", "pooled")

bundle_argument = click.argument("bundle")
overrides = [
    click.option("--clients", type=int, help="override num_clients"),
    click.option("--rounds", type=int, help="override rounds"),
]
after = click.option("--after", metavar="FILE", help="import, then wait until FILE exists (the runner's prepared signal)")


def with_options(*decorators: Callable) -> Callable:
    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def as_role(func: Callable[[SimpleNamespace], int]) -> Callable[..., int]:
    """A role takes its options as one object (`args.bundle`, `args.clients`, ...)."""

    def callback(**params) -> int:
        return func(SimpleNamespace(**params))

    callback.__name__, callback.__doc__ = func.__name__, func.__doc__
    return callback


@click.group("python -m flautim.fl", help="Flautim run processes")
@click.pass_context
def commands(ctx: click.Context) -> None:
    if ctx.invoked_subcommand not in WITHOUT_FLOWER:
        quiet_flower()


def server_side(name: str, help: str, listen: str) -> Callable:
    return with_options(
        commands.command(name, help=help), bundle_argument,
        click.option("--data", required=True), click.option("--out", required=True),
        click.option("--listen", default=listen, show_default=True, help="HOST:PORT to serve the clients on"),
        *overrides, after,
    )


def client_side(name: str, help: str) -> Callable:
    return with_options(
        commands.command(name, help=help), bundle_argument,
        click.option("--data", required=True), click.option("--server", required=True, help="HOST:PORT of the server side"),
        click.option("--client-id", type=int, required=True), *overrides, after,
    )


@with_options(commands.command("prepare"), bundle_argument, click.argument("workdir"), *overrides)
@as_role
def prepare_command(args: SimpleNamespace) -> int:
    """Partition the data into WORKDIR/client-<i>/ and WORKDIR/server/."""
    from flautim.fl.bundle import Bundle
    from flautim.fl.prepare import prepare

    events = EventWriter()
    started = time.time()
    bundle_dir = Path(args.bundle)
    try:
        hp = load_run_hyperparameters(bundle_dir, args.clients, args.rounds)
        for warning in hp.warnings:
            events.emit("warning", **warning)
        summary = dict(prepare(Bundle.load(bundle_dir), hp, Path(args.workdir)))
        warnings = summary.pop("warnings", []) or []
        events.emit("partition_summary", **summary)
        for warning in warnings:
            if isinstance(warning, dict):
                events.emit("warning", **{"hint": "", **warning})
            else:
                events.emit("warning", message=str(warning), hint="")
        return 0
    except Exception as exc:  # noqa: BLE001 - one error event for any failure
        events.emit_failure(as_flautim_error(exc, bundle_dir, "preparing the data failed").event_fields(), started)
        return 1


@with_options(commands.command("inspect"), bundle_argument)
@as_role
def inspect_command(args: SimpleNamespace) -> int:
    """Describe a stored dataset (dataset.py + data/, no api.py) as JSON."""
    from flautim.fl.prepare import inspect_dataset

    try:
        print(json.dumps(inspect_dataset(Path(args.bundle)), default=str))
        return 0
    except FlautimError as error:
        print(json.dumps({"error": error.event_fields()}, default=str))
        return 1


@server_side("server", "the ServerApp side; prints the event stream", "127.0.0.1:9400")
@as_role
def server_command(args: SimpleNamespace) -> int:
    from flautim.fl.transport import fast_roles

    return fast_roles.cmd_server(args)


@client_side("client", "one warm client process")
@as_role
def client_command(args: SimpleNamespace) -> int:
    from flautim.fl.transport import fast_roles

    return fast_roles.cmd_client(args)


@with_options(
    commands.command("clients", help="several clients forked from one warm parent (local runs)"), bundle_argument,
    click.option("--data-root", required=True, help="WORKDIR holding client-<i>/"), click.option("--server", required=True),
    click.option("--ids", required=True, help="e.g. 0-9"), *overrides, after,
)
@as_role
def clients_command(args: SimpleNamespace) -> int:
    from flautim.fl.transport import fast_roles

    return fast_roles.cmd_clients(args)


@server_side("flower-server", "SuperLink + the generic ServerApp; prints the event stream", "0.0.0.0:9092")
@as_role
def flower_server_command(args: SimpleNamespace) -> int:
    from flautim.fl.transport import flower_roles

    return flower_roles.cmd_flower_server(args)


@client_side("flower-client", "one SuperNode (and its warm ClientApp parent)")
@as_role
def flower_client_command(args: SimpleNamespace) -> int:
    from flautim.fl.transport import flower_roles

    return flower_roles.cmd_flower_client(args)


@with_options(commands.command("pooled"), click.argument("control"))
@as_role
def pooled_command(args: SimpleNamespace) -> int:
    """A warm-pool container's process: import what every role needs, then wait for the
    worker to write CONTROL/role.json ({"argv": [...], "env": {...}}) and become that role.

    Until then it has no network, no user code and no data (flautim/sandbox/warm_pool.py).
    """
    from flautim.fl.transport import fast_roles, flower_roles  # noqa: F401 - warm them too

    warm_client_imports()
    warm_server_imports()
    print(POOL_READY, flush=True)
    spec_path = Path(args.control) / "role.json"
    while not spec_path.exists():
        time.sleep(0.02)
    spec = json.loads(spec_path.read_text())
    argv = [str(a) for a in spec.get("argv", [])]
    if not argv or argv[0] not in POOLED_ROLES:
        print(f"[flautim] a pooled container cannot become {argv[:1]}", file=sys.stderr, flush=True)
        return USAGE_ERROR
    os.environ.update({str(k): str(v) for k, v in spec.get("env", {}).items()})
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    return run(commands, argv)
