"""`log()` and `metric()`: what user code reports while the platform runs it.

A session (client or server) opens a `reporting_scope` around each call into user code; the
values passed to `metric()` inside it are collected and merged into that round's metrics, and
`log()` lines are printed with the client and round so the run's log reads in order.
Outside any scope (a user trying their code in a notebook) both simply print.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReportingScope:
    client_id: int | None
    round: int
    phase: str
    metrics: dict[str, float] = field(default_factory=dict)


_local = threading.local()


def current_scope() -> ReportingScope | None:
    return getattr(_local, "scope", None)


@contextlib.contextmanager
def reporting_scope(client_id: int | None, round: int, phase: str) -> Iterator[ReportingScope]:
    """Collect `metric()` calls made by user code until the block ends."""
    previous = current_scope()
    scope = ReportingScope(client_id, round, phase)
    _local.scope = scope
    try:
        yield scope
    finally:
        _local.scope = previous


def _prefix(scope: ReportingScope | None) -> str:
    if scope is None:
        return "[flautim]"
    who = "server" if scope.client_id is None else f"client {scope.client_id}"
    return f"[{who} round {scope.round} {scope.phase}]"


def log(*args: Any) -> None:
    """Write a line to the experiment's log (shown live on the experiment page).

    Use it like `print`: `log("epoch", epoch, "loss", loss)`. The line is tagged with the
    client and the round it was written in.
    """
    text = " ".join(str(a) for a in args)
    # One write per line: client processes share a pipe, and print() writes the newline
    # separately, which lets lines of two clients run together.
    sys.stdout.write(f"{_prefix(current_scope())} {text}\n")
    sys.stdout.flush()


def metric(name: str, value: float) -> None:
    """Record a named measurement (accuracy, f1, ...) for the current round and client.

    The value is merged into the metrics the client reports for this round (shown in the
    charts and used for averaging); calling it twice with the same name keeps the last value.
    `value` must be a real number.
    """
    if not isinstance(name, str) or not name:
        raise TypeError("metric(name, value): name must be a non-empty string")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"metric({name!r}, value): value must be a number, got {type(value).__name__}"
        ) from exc
    scope = current_scope()
    if scope is None:
        print(f"[flautim] metric {name} = {number}", flush=True)
        return
    scope.metrics[name] = number
    if not math.isfinite(number):
        log(f"metric {name} is {number}")
