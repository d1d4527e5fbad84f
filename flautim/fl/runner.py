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
- `flower`: a stock Flower deployment, a SuperLink and N SuperNodes (transport/flower.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from flautim.fl.events import InvalidEvent, make_event, parse_line

# Margin on top of the experiment's time_limit_s before the runner kills everything.
KILL_MARGIN_S = 30.0
DEFAULT_RUN_LIMIT_S = 6 * 3600.0
# After the server ends, clients get this long to read "bye" and exit.
CLIENT_EXIT_GRACE_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def module_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flautim.fl", *args]


def describe(event: dict[str, Any]) -> str:
    """One readable line for an event."""
    kind = event["type"]

    def num(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    def metrics(values: Any) -> str:
        if not isinstance(values, dict) or not values:
            return ""
        return " " + " ".join(f"{k}={num(v)}" for k, v in values.items())

    if kind == "run_started":
        return f"run started: {event['experiment']} ({event['transport']}, {event['clients']} clients, {event['rounds']} rounds, {event['strategy']})"
    if kind == "partition_summary":
        sizes = ", ".join(str(c.get("train_examples")) for c in event.get("clients") or [] if isinstance(c, dict))
        return f"partition {event['method']}: train examples per client [{sizes}]"
    if kind == "round_started":
        return f"round {event['round']}"
    if kind in {"client_train", "client_evaluate"}:
        phase = "train" if kind == "client_train" else "evaluate"
        return f"  client {event['client']} {phase}: loss={num(event['loss'])} examples={event['examples']} {num(event['duration_s'])}s{metrics(event['metrics'])}"
    if kind == "aggregated":
        return f"  aggregated {event['phase']}: loss={num(event['loss'])}{metrics(event['metrics'])}"
    if kind == "central_evaluate":
        return f"  central evaluation: loss={num(event['loss'])}{metrics(event['metrics'])}"
    if kind == "checkpoint":
        return f"  checkpoint ({event['kind']}, round {event['round']}): {', '.join(map(str, (event.get('files') or {}).values()))}"
    if kind == "warning":
        who = f" (client {event['client']})" if event.get("client") is not None else ""
        hint = f" — {event['hint']}" if event.get("hint") else ""
        return f"warning{who}: {event['message']}{hint}"
    if kind == "error":
        who = f" (client {event['client']})" if event.get("client") is not None else ""
        where = f"{event['where']}: " if event.get("where") else ""
        hint = f"\n  hint: {event['hint']}" if event.get("hint") else ""
        return f"ERROR{who}: {where}{event['what']}{hint}"
    if kind == "run_finished":
        return f"run {event['status']} in {num(event['duration_s'])}s ({event['rounds_completed']} rounds)"
    if kind == "metric":
        return f"  metric {event['name']}={num(event['value'])} (round {event['round']})"
    return json.dumps(event)


class Console:
    """Prints events and log lines; remembers what the run reported."""

    def __init__(self, as_json: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def event(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)
            text = json.dumps(event) if self.as_json else describe(event)
            self.out.write(text + "\n")
            self.out.flush()

    def log(self, source: str, line: str) -> None:
        with self.lock:
            stream = self.err if self.as_json else self.out
            stream.write(f"[{source}] {line}\n" if not line.startswith("[") else line + "\n")
            stream.flush()

    def has(self, type_: str) -> bool:
        return any(e["type"] == type_ for e in self.events)

    def finished(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e["type"] == "run_finished"), None)


def pump(stream: TextIO, source: str, console: Console, events_ok: bool) -> None:
    """Forward a child's output: events (only from processes allowed to emit) and log lines."""
    for raw in iter(stream.readline, ""):
        line = raw.rstrip("\n")
        try:
            event = parse_line(line) if events_ok else None
        except InvalidEvent as exc:
            console.log(source, f"(ignored a malformed event: {exc})")
            continue
        if event is not None:
            console.event(event)
        elif line:
            console.log(source, line)
    stream.close()


class ProcessGroup:
    """Child processes started in their own process group, so none outlives the run."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.procs: dict[str, subprocess.Popen] = {}
        self.threads: dict[str, threading.Thread] = {}

    def start(self, name: str, cmd: list[str], events_ok: bool = False, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.procs[name] = proc
        thread = threading.Thread(target=pump, args=(proc.stdout, name, self.console, events_ok), daemon=True)
        thread.start()
        self.threads[name] = thread
        return proc

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def drain(self, timeout: float = 5.0, names: tuple[str, ...] | None = None) -> None:
        """Wait until the output of the named processes (all by default) has been read."""
        deadline = time.monotonic() + timeout
        for name, thread in self.threads.items():
            if names is None or name in names:
                thread.join(max(0.0, deadline - time.monotonic()))


def fail(console: Console, what: str, where: str, hint: str, kind: str, started: float) -> int:
    """Report a failure the processes could not report themselves (one error event)."""
    if not console.has("error"):
        console.event(make_event("error", what=what, where=where, hint=hint, kind=kind))
    if not console.finished():
        rounds = sum(1 for e in console.events if e["type"] == "aggregated" and e.get("phase") == "train")
        console.event(make_event("run_finished", status="failed", duration_s=round(time.time() - started, 3), rounds_completed=rounds))
    return 1


def hyperparameter(bundle: Path, key: str, default: Any) -> Any:
    """One value of the bundle's hyperparameters.py (`default` if unreadable: prepare reports it)."""
    try:
        from flautim.fl.hyperparameters import load_hyperparameters

        return load_hyperparameters(bundle / "hyperparameters.py").get(key, default)
    except Exception:  # noqa: BLE001
        return default


def read_limits(bundle: Path) -> tuple[float, float]:
    """(time limit of the whole run, bounded wait for clients), from hyperparameters.py."""
    try:
        from flautim.fl.hyperparameters import load_hyperparameters

        hp = load_hyperparameters(bundle / "hyperparameters.py")
    except Exception:  # noqa: BLE001 - prepare reports a broken file with its line
        return DEFAULT_RUN_LIMIT_S, 60.0
    limit = float(hp.time_limit_s) if hp.time_limit_s else DEFAULT_RUN_LIMIT_S
    return limit, float(hp.min_clients_wait_s)


def run_prepare(args: argparse.Namespace, group: ProcessGroup, workdir: Path, console: Console, deadline: float) -> int | None:
    cmd = module_command("prepare", str(args.bundle), str(workdir), *overrides(args))
    proc = group.start("prepare", cmd, events_ok=True)
    try:
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
    group.drain(names=("prepare",))
    return code


def overrides(args: argparse.Namespace) -> list[str]:
    out = []
    if args.clients is not None:
        out += ["--clients", str(args.clients)]
    if args.rounds is not None:
        out += ["--rounds", str(args.rounds)]
    return out


def num_clients(args: argparse.Namespace, workdir: Path) -> int:
    if args.clients is not None:
        return int(args.clients)
    return len([p for p in workdir.iterdir() if p.name.startswith("client-")])


def prepare_or_fail(args: argparse.Namespace, group: ProcessGroup, workdir: Path, console: Console, deadline: float, started: float) -> int | None:
    """Run `prepare`; None when the data is ready, else the run's exit code (failure reported)."""
    code = run_prepare(args, group, workdir, console, deadline)
    if code is None:
        group.kill_all()
        return fail(console, "preparing the data exceeded the run's time limit", "prepare", "", "timeout", started)
    if code != 0:
        return fail(console, f"preparing the data failed (exit code {code})", "prepare", "see the log above", "infrastructure", started)
    return None


def planned_clients(args: argparse.Namespace) -> int | None:
    """How many clients the run will have, known before `prepare` (None: unreadable file)."""
    if args.clients is not None:
        return int(args.clients)
    return hyperparameter(Path(args.bundle), "num_clients", None)


def run_fast(args: argparse.Namespace, group: ProcessGroup, workdir: Path, out: Path, console: Console, deadline: float, started: float) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flautim run", description="Run an experiment bundle on this machine.")
    parser.add_argument("bundle", type=Path, help="folder with dataset.py, data/, api.py, hyperparameters.py")
    parser.add_argument("--transport", choices=("fast", "flower"), help="default: the hyperparameters' transport (fast)")
    parser.add_argument("--clients", type=int, help="number of clients (default: num_clients)")
    parser.add_argument("--rounds", type=int, help="number of rounds (default: rounds)")
    parser.add_argument("--out", type=Path, help="where checkpoints and the work folder go (default: a new temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the raw events (JSON lines) on stdout, logs on stderr")
    parser.add_argument("--separate-clients", action="store_true", help="start each client as its own fresh interpreter, as the Docker sandbox does (slower start)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`flautim run ...`; returns the exit code."""
    args = build_parser().parse_args(argv)
    console = Console(args.json)
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
    limit_s, _ = read_limits(bundle)
    args.transport = args.transport or hyperparameter(bundle, "transport", "fast")
    deadline = time.monotonic() + limit_s + KILL_MARGIN_S
    group = ProcessGroup(console)

    def on_terminate(signum: int, _frame: Any) -> None:
        # Children run in their own sessions (so a Ctrl-C reaches us first); a SIGTERM to
        # the runner must still take them down: unwind to the `finally` below.
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_terminate)
    try:
        if args.transport == "flower":
            from flautim.fl.transport.flower import run_flower

            if (failed := prepare_or_fail(args, group, workdir, console, deadline, started)) is not None:
                return failed
            result = run_flower(args, group, workdir, out, console, deadline, started)
        else:
            result = run_fast(args, group, workdir, out, console, deadline, started)
        if not args.json:
            console.out.write(f"output: {out}\n")
        return result
    except KeyboardInterrupt:
        group.kill_all()
        return fail(console, "stopped by the user", "run", "", "infrastructure", started)
    finally:
        group.kill_all()
