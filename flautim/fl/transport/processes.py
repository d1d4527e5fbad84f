"""The process entry points of a run: `python -m flautim.fl <command>`.

The local runner (`flautim run`) and the Docker sandbox start exactly these:
`prepare` and `inspect` here, the fast transport's `server`, `client` and `clients`
(`fast_roles.py`), the Flower deployment's `flower-server` and `flower-client`
(`flower_roles.py`), and `pooled` for the warm pool. Servers write the event stream to stdout
(`@flautim-event {json}` lines, see events.py); clients only print log lines. Exit codes:
0 completed, 1 failed (an `error` event says why), 2 bad command line.

Each command imports its own modules when it runs: `prepare` and `inspect` never import flwr,
the Flower roles never import torch (each ~1 s of CPU at start-up), and `pooled` imports
everything on purpose before it waits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from flautim.fl.errors import FlautimError, as_flautim_error
from flautim.fl.events import EventWriter
from flautim.fl.process_setup import quiet_flower, warm_client_imports, warm_server_imports
from flautim.fl.run_settings import load_run_hyperparameters

# Printed once a pooled process has imported everything (the pool counts it as ready).
POOL_READY = "flautim: pooled process ready"
POOLED_ROLES = ("server", "client", "flower-server", "flower-client")
# Commands that never touch flwr (the others have Flower's INFO logging quieted).
WITHOUT_FLOWER = ("prepare", "inspect", "pooled")


def cmd_prepare(args: argparse.Namespace) -> int:
    """Partition the data into WORKDIR/client-<i>/ and WORKDIR/server/."""
    from flautim.fl.bundle import Bundle
    from flautim.fl.prepare import prepare

    events = EventWriter()
    started = time.time()
    bundle_dir = Path(args.bundle)
    try:
        hp = load_run_hyperparameters(bundle_dir, args.clients, args.rounds)
        for warning in hp.warnings:
            events.emit("warning", message=str(warning), hint="")
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


def cmd_inspect(args: argparse.Namespace) -> int:
    """Describe a stored dataset (dataset.py + data/, no api.py) as JSON."""
    from flautim.fl.prepare import inspect_dataset

    try:
        print(json.dumps(inspect_dataset(Path(args.bundle)), default=str))
        return 0
    except FlautimError as error:
        print(json.dumps({"error": error.event_fields()}, default=str))
        return 1


def cmd_server(args: argparse.Namespace) -> int:
    from flautim.fl.transport import fast_roles

    return fast_roles.cmd_server(args)


def cmd_client(args: argparse.Namespace) -> int:
    from flautim.fl.transport import fast_roles

    return fast_roles.cmd_client(args)


def cmd_clients(args: argparse.Namespace) -> int:
    from flautim.fl.transport import fast_roles

    return fast_roles.cmd_clients(args)


def cmd_flower_server(args: argparse.Namespace) -> int:
    from flautim.fl.transport import flower_roles

    return flower_roles.cmd_flower_server(args)


def cmd_flower_client(args: argparse.Namespace) -> int:
    from flautim.fl.transport import flower_roles

    return flower_roles.cmd_flower_client(args)


def cmd_pooled(args: argparse.Namespace) -> int:
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
        return 2
    os.environ.update({str(k): str(v) for k, v in spec.get("env", {}).items()})
    return main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flautim.fl", description="Flautim run processes")
    sub = parser.add_subparsers(dest="command", required=True)

    def overrides(p: argparse.ArgumentParser) -> None:
        p.add_argument("--clients", type=int, help="override num_clients")
        p.add_argument("--rounds", type=int, help="override rounds")

    def after(p: argparse.ArgumentParser) -> None:
        p.add_argument("--after", metavar="FILE", help="import, then wait until FILE exists (the runner's prepared signal)")

    p = sub.add_parser("prepare", help="partition the data into WORKDIR/client-<i> and WORKDIR/server")
    p.add_argument("bundle")
    p.add_argument("workdir")
    overrides(p)
    p.set_defaults(func=cmd_prepare)

    def server_side(name: str, func, help: str, listen: str) -> None:
        p = sub.add_parser(name, help=help)
        p.add_argument("bundle")
        p.add_argument("--data", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--listen", default=listen, help="HOST:PORT to serve the clients on")
        overrides(p)
        after(p)
        p.set_defaults(func=func)

    def client_side(name: str, func, help: str) -> None:
        p = sub.add_parser(name, help=help)
        p.add_argument("bundle")
        p.add_argument("--data", required=True)
        p.add_argument("--server", required=True, help="HOST:PORT of the server side")
        p.add_argument("--client-id", type=int, required=True)
        overrides(p)
        after(p)
        p.set_defaults(func=func)

    server_side("server", cmd_server, "the ServerApp side; prints the event stream", "127.0.0.1:9400")
    client_side("client", cmd_client, "one warm client process")
    server_side("flower-server", cmd_flower_server, "SuperLink + the generic ServerApp; prints the event stream", "0.0.0.0:9092")
    client_side("flower-client", cmd_flower_client, "one SuperNode (and its warm ClientApp parent)")

    p = sub.add_parser("clients", help="several clients forked from one warm parent (local runs)")
    p.add_argument("bundle")
    p.add_argument("--data-root", required=True, help="WORKDIR holding client-<i>/")
    p.add_argument("--server", required=True)
    p.add_argument("--ids", required=True, help="e.g. 0-9")
    overrides(p)
    after(p)
    p.set_defaults(func=cmd_clients)

    p = sub.add_parser("pooled", help="import, then wait for CONTROL/role.json and run that role (warm pool)")
    p.add_argument("control")
    p.set_defaults(func=cmd_pooled)

    p = sub.add_parser("inspect", help="describe a bundle's dataset as JSON")
    p.add_argument("bundle")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in WITHOUT_FLOWER:
        quiet_flower()
    return int(args.func(args))
