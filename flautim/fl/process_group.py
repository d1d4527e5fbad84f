"""The processes of a run as their supervisor sees them, and the console that shows them.

`ProcessGroup` starts children in their own process groups (none outlives the run) and pumps
their output into a `Console`, which prints events and log lines and remembers the events;
`fail` reports what the children could not report themselves. A child started while
`prepare` still runs waits for the supervisor's prepared signal with `wait_until_prepared`.

This is the bottom of the runtime's process layer: it imports only the event stream, so the
light supervisors (`flautim run`, the Flower roles) never load torch or flwr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, TextIO

from flautim.fl.events import CLIENT_EVENT_PHASES, InvalidEvent, event_line, make_event, parse_line


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def module_command(*args: str) -> list[str]:
    """`python -m flautim.fl ARGS` with this interpreter."""
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
    if kind in CLIENT_EVENT_PHASES:
        phase = CLIENT_EVENT_PHASES[kind]
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
            self.out.write(self.format(event) + "\n")
            self.out.flush()

    def format(self, event: dict[str, Any]) -> str:
        return json.dumps(event) if self.as_json else describe(event)

    def log(self, source: str, line: str) -> None:
        with self.lock:
            stream = self.err if self.as_json else self.out
            stream.write(f"[{source}] {line}\n" if not line.startswith("[") else line + "\n")
            stream.flush()

    def has(self, type_: str) -> bool:
        return any(e["type"] == type_ for e in self.events)

    def finished(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e["type"] == "run_finished"), None)


class EventConsole(Console):
    """Re-emits the run's events as event lines on stdout (as a server process does); logs go
    to stderr. A supervisor that is itself a run's server side (the Flower server role) uses it."""

    def __init__(self) -> None:
        super().__init__(as_json=True)

    def format(self, event: dict[str, Any]) -> str:
        return event_line(event)


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


def wait_until_prepared(ready: str | None) -> None:
    """Block until the supervisor says the data is ready (`--after FILE`); exit if it is gone.

    The supervisor starts the server and clients while `prepare` runs, so their imports
    overlap it; it creates FILE once `prepare` succeeded and kills us if it failed.
    """
    if not ready:
        return
    parent = os.getppid()
    while not os.path.exists(ready):
        if os.getppid() != parent:
            raise SystemExit(1)  # the supervisor died: nobody will create the file
        time.sleep(0.02)
