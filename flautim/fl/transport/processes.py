"""The process entry points of a run: `python -m flautim.fl prepare|server|client|clients|inspect`.

The local runner (`flautim run`) and the Docker sandbox start exactly these. The server
writes the event stream to stdout (`@flautim-event {json}` lines, see events.py); clients
never emit events (their failures travel to the server, which reports each run's one error),
they only print log lines. Exit codes: 0 completed, 1 failed (an `error` event says why),
2 bad command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from flautim.fl.errors import FlautimError
from flautim.fl.events import EventWriter

DEFAULT_CONNECT_TIMEOUT_S = 120.0


def _load_hyperparameters(bundle_dir: Path, clients: int | None, rounds: int | None) -> Any:
    from flautim.fl.hyperparameters import load_hyperparameters

    hp = load_hyperparameters(bundle_dir / "hyperparameters.py")
    overrides = {"num_clients": clients, "rounds": rounds}
    if any(v is not None for v in overrides.values()):
        hp = hp.with_overrides(filename="command line", **overrides)
    return hp


def _emit_failure(events: EventWriter, error: FlautimError, started_at: float) -> int:
    events.emit("error", **error.event_fields())
    events.emit("run_finished", status="failed", duration_s=round(time.time() - started_at, 3), rounds_completed=0)
    return 1


def limit_torch_threads(share: int) -> None:
    """Give each of `share` processes training at once its slice of the cores.

    N clients train in parallel; with torch's default (all cores each) they oversubscribe
    the machine and every round gets slower.
    """
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, share))
    # A sandbox container sets OMP_NUM_THREADS to its CPU quota: more threads than the quota
    # get the whole container throttled by the CFS scheduler (rounds ran ~10x slower).
    quota = os.environ.get("OMP_NUM_THREADS", "")
    if quota.isdigit() and int(quota) > 0:
        threads = min(threads, int(quota))
    torch.set_num_threads(threads)


# -- prepare -------------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    events = EventWriter()
    started = time.time()
    bundle_dir = Path(args.bundle)
    try:
        from flautim.fl.bundle import Bundle
        from flautim.fl.prepare import prepare

        hp = _load_hyperparameters(bundle_dir, args.clients, args.rounds)
        for warning in getattr(hp, "warnings", []) or []:
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
    except FlautimError as error:
        return _emit_failure(events, error, started)
    except Exception as exc:  # noqa: BLE001
        from flautim.fl.apps import as_flautim_error

        return _emit_failure(events, as_flautim_error(exc, bundle_dir, "preparing the data failed"), started)


def wait_until_prepared(ready: str | None) -> None:
    """Block until the runner says the data is ready (`--after FILE`); exit if it is gone.

    The runner starts the server and clients while `prepare` runs, so their imports overlap
    it; it creates FILE once `prepare` succeeded and kills us if it failed.
    """
    if not ready:
        return
    parent = os.getppid()
    while not os.path.exists(ready):
        if os.getppid() != parent:
            raise SystemExit(1)  # the runner died: nobody will create the file
        time.sleep(0.02)


def warm_server_imports() -> None:
    import torch  # noqa: F401

    import flautim.fl.apps  # noqa: F401
    import flautim.fl.session  # noqa: F401
    import flautim.fl.transport.fast  # noqa: F401


# -- server --------------------------------------------------------------------------------
def cmd_server(args: argparse.Namespace) -> int:
    events = EventWriter()
    started = time.time()
    bundle_dir = Path(args.bundle)
    grid = None
    if args.after:
        warm_server_imports()
        wait_until_prepared(args.after)
        started = time.time()
    try:
        hp = _load_hyperparameters(bundle_dir, args.clients, args.rounds)
        events.emit(
            "run_started",
            experiment=bundle_dir.resolve().name,
            transport="fast",
            clients=int(hp.num_clients),
            rounds=int(hp.rounds),
            strategy=str(hp.strategy),
            hyperparameters=hp.to_dict(),
        )
        from flwr.app import Context, RecordDict

        from flautim.fl.apps import RunFailed, make_server_app
        from flautim.fl.transport.fast import DirectGrid

        grid = DirectGrid(args.listen, int(hp.num_clients))
        print(f"[server] listening on {grid.address}", file=sys.stderr, flush=True)

        def load_session(_context: Context) -> Any:
            from flautim.fl.bundle import Bundle
            from flautim.fl.session import ServerSession

            return ServerSession(Bundle.load(bundle_dir), hp, Path(args.data), Path(args.out))

        # Load the server side before waiting, so a broken api.py fails without clients.
        session = load_session(None)  # type: ignore[arg-type]
        app = make_server_app(lambda _c: session, hp, events, grid.client_of, bundle_dir, started)
        grid.wait_for_clients(float(hp.min_clients_wait_s), float(hp.time_limit_s or 600.0))
        context = Context(run_id=grid.run.run_id, node_id=1, node_config={}, state=RecordDict(), run_config={})
        try:
            app(grid, context)
        except RunFailed:
            return 1
        return 0
    except FlautimError as error:
        return _emit_failure(events, error, started)
    except Exception as exc:  # noqa: BLE001
        from flautim.fl.apps import as_flautim_error

        return _emit_failure(events, as_flautim_error(exc, bundle_dir, "the server failed to start"), started)
    finally:
        if grid is not None:
            grid.close()


# -- client(s) -----------------------------------------------------------------------------
def _client_error_fields(bundle_dir: Path, client_id: int):
    def fields(exc: BaseException) -> dict[str, Any]:
        from flautim.fl.apps import as_flautim_error

        return as_flautim_error(exc, bundle_dir, "the client could not start", client_id).event_fields()

    return fields


def run_one_client(bundle_dir: Path, data_dir: Path, server: str, client_id: int, clients: int | None, rounds: int | None, threads_share: int) -> int:
    from flautim.fl.apps import load_client_session, make_client_app
    from flautim.fl.transport.fast import serve_client

    def load_app() -> Any:
        hp = _load_hyperparameters(bundle_dir, clients, rounds)
        limit_torch_threads(threads_share)
        session = load_client_session(bundle_dir, hp, data_dir, client_id, device=str(hp.device))
        return make_client_app(lambda _c: session, lambda _c: client_id, bundle_dir)

    return serve_client(server, client_id, load_app, DEFAULT_CONNECT_TIMEOUT_S, _client_error_fields(bundle_dir, client_id))


def cmd_client(args: argparse.Namespace) -> int:
    try:
        share = args.clients or 1
        if args.after:
            warm_imports()
            wait_until_prepared(args.after)
        return run_one_client(Path(args.bundle), Path(args.data), args.server, args.client_id, args.clients, args.rounds, share)
    except ConnectionError as exc:
        print(f"[client {args.client_id}] {exc}", file=sys.stderr, flush=True)
        return 1


def warm_imports() -> None:
    """Import what every client needs once, in the parent, before forking them."""
    import torch
    import torch.optim  # noqa: F401

    import flautim.fl.apps  # noqa: F401
    import flautim.fl.transport.fast  # noqa: F401

    # The first optimizer imports torch._dynamo (~1 s): pay it once here, not per client.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    try:
        import flautim.fl.session  # noqa: F401
    except ImportError:
        pass


def cmd_clients(args: argparse.Namespace) -> int:
    """Several clients from one warm parent: each is a forked child with its own partition."""
    ids = parse_ids(args.ids)
    warm_imports()
    wait_until_prepared(args.after)
    children: dict[int, int] = {}
    for client_id in ids:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_one_client(
                    Path(args.bundle), Path(args.data_root) / f"client-{client_id}", args.server,
                    client_id, args.clients, args.rounds, len(ids),
                )
            except ConnectionError as exc:
                print(f"[client {client_id}] {exc}", file=sys.stderr, flush=True)
            except BaseException as exc:  # noqa: BLE001
                print(f"[client {client_id}] {exc!r}", file=sys.stderr, flush=True)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = client_id
    worst = 0
    while children:
        pid, status = os.wait()
        children.pop(pid, None)
        worst = max(worst, os.waitstatus_to_exitcode(status) != 0)
    return int(worst)


def parse_ids(text: str) -> list[int]:
    """`0-3,7` -> [0, 1, 2, 3, 7]."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-", 1)
            ids.extend(range(int(low), int(high) + 1))
        elif part:
            ids.append(int(part))
    return ids


# -- pooled --------------------------------------------------------------------------------
# Printed once a pooled process has imported everything (the pool counts it as ready).
POOL_READY = "flautim: pooled process ready"
POOLED_ROLES = ("server", "client", "flower-server", "flower-client")


def cmd_pooled(args: argparse.Namespace) -> int:
    """A warm-pool container's process: import what every role needs, then wait for the
    worker to write CONTROL/role.json ({"argv": [...], "env": {...}}) and become that role.

    Until then it has no network, no user code and no data (flautim/sandbox/warm_pool.py).
    """
    warm_imports()
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


# -- inspect -------------------------------------------------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    from flautim.fl.prepare import inspect_dataset

    try:
        # A stored dataset is dataset.py + data/ alone (no api.py): inspect_dataset opens it.
        print(json.dumps(inspect_dataset(Path(args.bundle)), default=str))
        return 0
    except FlautimError as error:
        print(json.dumps({"error": error.event_fields()}, default=str))
        return 1


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

    def server_side(name: str, func: Any, help: str, listen: str) -> None:
        p = sub.add_parser(name, help=help)
        p.add_argument("bundle")
        p.add_argument("--data", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--listen", default=listen, help="HOST:PORT to serve the clients on")
        overrides(p)
        after(p)
        p.set_defaults(func=func)

    def client_side(name: str, func: Any, help: str) -> None:
        p = sub.add_parser(name, help=help)
        p.add_argument("bundle")
        p.add_argument("--data", required=True)
        p.add_argument("--server", required=True, help="HOST:PORT of the server side")
        p.add_argument("--client-id", type=int, required=True)
        overrides(p)
        after(p)
        p.set_defaults(func=func)

    from flautim.fl.transport.flower_roles import cmd_flower_client, cmd_flower_server

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


def quiet_flower() -> None:
    """Flower's INFO lines repeat what our events say; keep its warnings and errors."""
    import logging

    if os.environ.get("FLAUTIM_FLOWER_LOG", "").lower() not in {"1", "info", "debug"}:
        # Importing flwr sets its logger to DEBUG, so lower its console handler after that.
        from flwr.supercore import logger as flower_logger

        flower_logger.console_handler.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("prepare", "inspect", "pooled"):
        quiet_flower()  # the others import flwr; prepare and inspect never do (~0.6 s of CPU)
    return int(args.func(args))
