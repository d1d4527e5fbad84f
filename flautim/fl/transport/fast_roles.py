"""The fast transport's processes: the server, one client, or several clients forked from
one warm parent.

    python -m flautim.fl server BUNDLE --data D --out O --listen HOST:PORT
    python -m flautim.fl client BUNDLE --data D --server HOST:PORT --client-id I
    python -m flautim.fl clients BUNDLE --data-root WORKDIR --server HOST:PORT --ids 0-9

The server writes the event stream to stdout; clients never emit events (their failures
travel to the server, which reports the run's one error), they only print log lines.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flwr.app import Context, RecordDict

from flautim.fl.apps import (
    RunFailed,
    emit_run_started,
    load_client_session,
    make_client_app,
    make_server_app,
)
from flautim.fl.bundle import Bundle
from flautim.fl.errors import as_flautim_error
from flautim.fl.events import EventWriter
from flautim.fl.process_group import wait_until_prepared
from flautim.fl.process_setup import limit_torch_threads, warm_client_imports
from flautim.fl.run_settings import load_run_hyperparameters
from flautim.fl.session import ServerSession
from flautim.fl.transport.fast import DirectGrid, serve_client
from flautim.fl.virtual_clients import available_memory_bytes, client_processes, split_clients

# How long a client keeps trying to reach the server.
CONNECT_TIMEOUT_S = 120.0
# The reply timeout when the experiment sets no time_limit_s.
DEFAULT_LOAD_TIMEOUT_S = 600.0


def cmd_server(args: SimpleNamespace) -> int:
    """The ServerApp over a DirectGrid; prints the event stream."""
    events = EventWriter()
    bundle_dir = Path(args.bundle)
    wait_until_prepared(args.after)
    started = time.time()
    # After the wait: a pooled process imported torch before it knew its role's threads.
    limit_torch_threads(1)
    grid = None
    try:
        hp = load_run_hyperparameters(bundle_dir, args.clients, args.rounds)
        emit_run_started(events, bundle_dir, hp, "fast")
        grid = DirectGrid(args.listen, int(hp.num_clients))
        print(f"[server] listening on {grid.address}", file=sys.stderr, flush=True)
        # Load the server side before waiting, so a broken api.py fails without clients.
        session = ServerSession(Bundle.load(bundle_dir), hp, Path(args.data), Path(args.out))
        app = make_server_app(lambda _c: session, hp, events, grid.client_of, bundle_dir, started)
        grid.wait_for_clients(float(hp.min_clients_wait_s), float(hp.time_limit_s or DEFAULT_LOAD_TIMEOUT_S))
        context = Context(run_id=grid.run.run_id, node_id=1, node_config={}, state=RecordDict(), run_config={})
        try:
            app(grid, context)
        except RunFailed:
            return 1
        return 0
    except Exception as exc:  # noqa: BLE001 - one error event for any failure
        events.emit_failure(as_flautim_error(exc, bundle_dir, "the server failed to start").event_fields(), started)
        return 1
    finally:
        if grid is not None:
            grid.close()


def run_client_process(
    bundle_dir: Path, data_dir_of: Callable[[int], Path], server: str, client_ids: list[int],
    clients: int | None, rounds: int | None, threads_share: int,
) -> int:
    """One warm client process hosting `client_ids` (virtual clients when several): the
    model is built once, each message is trained as the client it is addressed to, whose
    partition (`data_dir_of(client)`) is read only then."""
    first = client_ids[0]

    def load_app() -> Any:
        hp = load_run_hyperparameters(bundle_dir, clients, rounds)
        limit_torch_threads(threads_share)
        session = load_client_session(bundle_dir, hp, data_dir_of(first), first, device=str(hp.device))

        def session_for(context: Context) -> Any:
            client_id = client_of(context)
            session.become(client_id, data_dir_of(client_id))
            return session

        return make_client_app(session_for, client_of, bundle_dir)

    def error_fields(exc: BaseException) -> dict[str, Any]:
        return as_flautim_error(exc, bundle_dir, "the client could not start", first).event_fields()

    return serve_client(server, client_ids, load_app, CONNECT_TIMEOUT_S, error_fields)


def client_of(context: Context) -> int:
    return int(context.node_config["client-id"])


def cmd_client(args: SimpleNamespace) -> int:
    """One warm client process."""
    try:
        if args.after:  # started while `prepare` runs: pay the first optimizer's warm-up now
            warm_client_imports()
            wait_until_prepared(args.after)
        data = Path(args.data)
        return run_client_process(Path(args.bundle), lambda _c: data, args.server, [args.client_id], args.clients, args.rounds, args.clients or 1)
    except ConnectionError as exc:
        print(f"[client {args.client_id}] {exc}", file=sys.stderr, flush=True)
        return 1


def cmd_clients(args: SimpleNamespace) -> int:
    """Several clients from one warm parent, in K forked children (`virtual_clients`): one
    child per client when they are few, else each child hosts a contiguous group."""
    ids = parse_ids(args.ids)
    groups = split_clients(ids, client_processes(len(ids), memory_bytes=available_memory_bytes()))
    data_root = Path(args.data_root)
    warm_client_imports()
    wait_until_prepared(args.after)
    children: dict[int, list[int]] = {}
    for group in groups:
        pid = os.fork()
        if pid == 0:
            code = 1
            name = f"client {group[0]}" if len(group) == 1 else f"clients {group[0]}-{group[-1]}"
            try:
                code = run_client_process(
                    Path(args.bundle), lambda cid: data_root / f"client-{cid}", args.server,
                    group, args.clients, args.rounds, len(groups),
                )
            except ConnectionError as exc:
                print(f"[{name}] {exc}", file=sys.stderr, flush=True)
            except BaseException as exc:  # noqa: BLE001
                print(f"[{name}] {exc!r}", file=sys.stderr, flush=True)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = group
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
