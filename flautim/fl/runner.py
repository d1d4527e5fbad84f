"""`flautim run EXPERIMENT_DIR`: run a bundle on this machine and print its events.

It starts the same processes the Docker sandbox starts (`python -m flautim.fl ...`):
`prepare`, then the server and the clients as separate local processes, and prints the
server's event stream, one readable line per event (`--json`: the raw events on stdout, log
lines on stderr). Every wait is bounded: a run ends with exit code 0 and a `run_finished`
event, or with exactly one `error` event and exit code 1.

Transports (`--transport`):
- `fast` (default): the server listens on a local TCP port; the clients are warm processes
  forked from one parent that imported torch once (`clients` command), each opening only its
  own partition directory.
- `flower`: a stock Flower deployment, a SuperLink and N SuperNodes
  (transport/flower_deployment.py) running the apps of transport/flower_apps.py.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from flautim.fl.command_line import run
from flautim.fl.process_group import Console, ProcessGroup, fail, free_port, module_command
from flautim.fl.run_settings import peek, run_limits
from flautim.fl.transport.flower_deployment import (
    start_superlink,
    start_warm_clientapps,
    submit_and_follow,
    supernode_command,
)

# Margin on top of the experiment's time_limit_s before the runner kills everything.
KILL_MARGIN_S = 30.0
# After the server ends, clients get this long to read "bye" and exit.
CLIENT_EXIT_GRACE_S = 10.0


def run_prepare(args: SimpleNamespace, group: ProcessGroup, workdir: Path, console: Console, deadline: float) -> int | None:
    cmd = module_command("prepare", str(args.bundle), str(workdir), *overrides(args))
    proc = group.start("prepare", cmd, events_ok=True)
    try:
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
    group.drain(names=("prepare",))
    return code


def overrides(args: SimpleNamespace) -> list[str]:
    out = []
    if args.clients is not None:
        out += ["--clients", str(args.clients)]
    if args.rounds is not None:
        out += ["--rounds", str(args.rounds)]
    return out


def num_clients(args: SimpleNamespace, workdir: Path) -> int:
    if args.clients is not None:
        return int(args.clients)
    return len([p for p in workdir.iterdir() if p.name.startswith("client-")])


def prepare_or_fail(args: SimpleNamespace, group: ProcessGroup, workdir: Path, console: Console, deadline: float, started: float) -> int | None:
    """Run `prepare`; None when the data is ready, else the run's exit code (failure reported)."""
    code = run_prepare(args, group, workdir, console, deadline)
    if code is None:
        group.kill_all()
        return fail(console, "preparing the data exceeded the run's time limit", "prepare", "", "timeout", started)
    if code != 0:
        return fail(console, f"preparing the data failed (exit code {code})", "prepare", "see the log above", "infrastructure", started)
    return None


def planned_clients(args: SimpleNamespace) -> int | None:
    """How many clients the run will have, known before `prepare` (None: unreadable file)."""
    if args.clients is not None:
        return int(args.clients)
    return peek(Path(args.bundle), "num_clients", None)


def run_fast(args: SimpleNamespace, group: ProcessGroup, workdir: Path, out: Path, console: Console, deadline: float, started: float) -> int:
    # The server and the clients start while `prepare` partitions the data: their imports
    # (torch, flwr: ~2 s of CPU each) overlap it, and they wait for the `ready` file.
    n = planned_clients(args)
    overlap = n is not None
    if not overlap:  # unreadable hyperparameters: prepare first (it says what is wrong)
        if (failed := prepare_or_fail(args, group, workdir, console, deadline, started)) is not None:
            return failed
        n = num_clients(args, workdir)
    ready = workdir / ".prepared"
    after = ["--after", str(ready)]
    address = f"127.0.0.1:{free_port()}"
    server = group.start(
        "server",
        module_command("server", str(args.bundle), "--data", str(workdir / "server"), "--out", str(out), "--listen", address, *after, *overrides(args)),
        events_ok=True,
    )
    if args.separate_clients:
        clients = [
            group.start(
                f"client {i}",
                module_command("client", str(args.bundle), "--data", str(workdir / f"client-{i}"), "--server", address, "--client-id", str(i), *after, *overrides(args)),
            )
            for i in range(n)
        ]
    else:
        clients = [
            group.start(
                "clients",
                module_command("clients", str(args.bundle), "--data-root", str(workdir), "--server", address, "--ids", f"0-{n - 1}", *after, *overrides(args)),
            )
        ]
    if overlap and (failed := prepare_or_fail(args, group, workdir, console, deadline, started)) is not None:
        return failed
    ready.touch()
    try:
        code = server.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        group.kill_all()
        group.drain()
        return fail(console, "the run exceeded its time limit and was stopped", "run", "raise time_limit_s in hyperparameters.py or train less per round", "timeout", started)
    grace = time.monotonic() + CLIENT_EXIT_GRACE_S
    for proc in clients:
        try:
            proc.wait(timeout=max(0.1, grace - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    group.kill_all()
    group.drain()
    if code != 0 or not console.finished():
        return fail(console, f"the server process ended with exit code {code} without reporting why", "server", "see the log above", "infrastructure", started)
    return 0 if console.finished().get("status") == "completed" else 1


def run_flower(args: SimpleNamespace, group: ProcessGroup, workdir: Path, out: Path, console: Console, deadline: float, started: float) -> int:
    """A SuperLink and N SuperNodes on this machine, once `prepare` is done."""
    n = num_clients(args, workdir)
    home = out / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    link_port = free_port()
    address = f"127.0.0.1:{link_port}"
    start_superlink(group, home, "127.0.0.1", link_port)
    warm_dir, node_env = start_warm_clientapps(group, home, n)
    bundle = Path(args.bundle).resolve()
    try:
        for i in range(n):
            group.start(f"supernode {i}", supernode_command(address, i, (workdir / f"client-{i}").resolve(), bundle, free_port()), env=node_env)
        return submit_and_follow(
            bundle=bundle, server_data=(workdir / "server").resolve(), out=out.resolve(),
            scratch=out.resolve(), clients=int(args.clients or 0), rounds=int(args.rounds or 0),
            home=home, address=address, wait_s=run_limits(bundle).clients_wait_s, console=console,
            deadline=deadline, started=started,
        )
    finally:
        group.kill_all()
        group.drain()
        if warm_dir is not None:
            shutil.rmtree(warm_dir, ignore_errors=True)


@click.command("flautim run", help="Run an experiment bundle on this machine.")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--transport", type=click.Choice(("fast", "flower")), help="default: the hyperparameters' transport (fast)")
@click.option("--clients", type=int, help="number of clients (default: num_clients)")
@click.option("--rounds", type=int, help="number of rounds (default: rounds)")
@click.option("--out", type=click.Path(path_type=Path), help="where checkpoints and the work folder go (default: a new temporary folder)")
@click.option("--json", "json_events", is_flag=True, help="print the raw events (JSON lines) on stdout, logs on stderr")
@click.option("--separate-clients", is_flag=True, help="start each client as its own fresh interpreter, as the Docker sandbox does (slower start)")
def run_command(**params: Any) -> int:
    return run_bundle(SimpleNamespace(**params))


def main(argv: list[str] | None = None) -> int:
    """`flautim run ...`; returns the exit code."""
    return run(run_command, argv)


def run_bundle(args: SimpleNamespace) -> int:
    console = Console(args.json_events)
    started = time.time()
    bundle: Path = args.bundle
    if not bundle.is_dir():
        return fail(console, f"{bundle} is not a folder", str(bundle), "pass the experiment folder (dataset.py, data/, api.py, hyperparameters.py)", "user_code", started)
    if args.clients is not None and args.clients < 1:
        return fail(console, "--clients must be at least 1", "command line", "", "hyperparameters", started)
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="flautim-run-"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "work"
    workdir.mkdir(exist_ok=True)
    args.transport = args.transport or peek(bundle, "transport", "fast")
    deadline = time.monotonic() + run_limits(bundle).time_limit_s + KILL_MARGIN_S
    group = ProcessGroup(console)

    def on_terminate(signum: int, _frame: Any) -> None:
        # Children run in their own sessions (so a Ctrl-C reaches us first); a SIGTERM to
        # the runner must still take them down: unwind to the `finally` below.
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_terminate)
    try:
        if args.transport == "flower":
            if (failed := prepare_or_fail(args, group, workdir, console, deadline, started)) is not None:
                return failed
            result = run_flower(args, group, workdir, out, console, deadline, started)
        else:
            result = run_fast(args, group, workdir, out, console, deadline, started)
        if not args.json_events:
            console.out.write(f"output: {out}\n")
        return result
    except KeyboardInterrupt:
        group.kill_all()
        return fail(console, "stopped by the user", "run", "", "infrastructure", started)
    finally:
        group.kill_all()
