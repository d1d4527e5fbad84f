"""The runtime's event stream: everything a run produces, as versioned JSON lines.

A run (the ServerApp side) writes one event per line to standard output, each line starting
with `EVENT_PREFIX` so events can share the stream with ordinary log lines. The local runner,
the Docker sandbox and the web UI consume this stream and nothing else; `parse_line` is the
one place that reads it back, and it treats every line as hostile (user code shares the
process and could print anything).

Schema version 1. Every event has `v` (the schema version), `type`, `ts` (UNIX seconds) and
the fields listed in `EVENT_FIELDS` for its type (extra fields are allowed and kept):

- run_started: experiment, transport, clients, rounds, strategy, hyperparameters
- partition_summary: method, clients: [{client, train_examples, val_examples, label_counts}]
- round_started: round
- client_train / client_evaluate: round, client, loss, metrics, examples, duration_s
- aggregated: round, phase ("train" | "evaluate"), loss, metrics; weights_norm (train: the L2
  norm of the new global weights)
- central_evaluate: round, loss, metrics; weights_norm (of the evaluated global model; round 0:
  the initial weights)
- metric: round, name, value, source (a user `metric(name, value)` call)
- checkpoint: round, kind ("round" | "best" | "final"), files {format: relative path}, metrics
- warning: message, hint, client (optional), where (optional)
- error: what, where, hint, kind, client (optional), traceback (optional)

An error or a warning may also carry `code` (a stable name from `error_codes.py`),
`params` (an object of the values its message names) and `help` (a FAQ slug): the platform
shows the code's text in the user's language and falls back to the English `what` /
`message` and `hint`, which stay in every event. Consumers that do not know these optional
fields ignore them, so the schema version stays 1.
- run_finished: status ("completed" | "failed" | "stopped"), duration_s, rounds_completed
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any, TextIO

SCHEMA_VERSION = 1
EVENT_PREFIX = "@flautim-event "
MAX_EVENT_BYTES = 1_000_000
# Deeper JSON than any event needs would only exhaust whoever walks it (the recursion limit).
MAX_EVENT_DEPTH = 32

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("experiment", "transport", "clients", "rounds", "strategy", "hyperparameters"),
    "partition_summary": ("method", "clients"),
    "round_started": ("round",),
    "client_train": ("round", "client", "loss", "metrics", "examples", "duration_s"),
    "client_evaluate": ("round", "client", "loss", "metrics", "examples", "duration_s"),
    "aggregated": ("round", "phase", "loss", "metrics"),
    "central_evaluate": ("round", "loss", "metrics"),
    "metric": ("round", "name", "value", "source"),
    "checkpoint": ("round", "kind", "files", "metrics"),
    "warning": ("message", "hint"),
    "error": ("what", "where", "hint", "kind"),
    "run_finished": ("status", "duration_s", "rounds_completed"),
}

PHASES = ("train", "evaluate")


def client_event_type(phase: str) -> str:
    """The per-client event of a phase (as `aggregated` events and metric rows name it)."""
    return f"client_{phase}"


CLIENT_EVENT_PHASES = {client_event_type(phase): phase for phase in PHASES}

# Error kinds, for classifying a failed run.
ERROR_KINDS = ("user_code", "hyperparameters", "data", "timeout", "out_of_memory", "infrastructure")


class InvalidEvent(ValueError):
    pass


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: send them as strings so consumers never choke."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def make_event(type: str, **fields: Any) -> dict[str, Any]:
    if type not in EVENT_FIELDS:
        raise InvalidEvent(f"unknown event type {type!r}")
    missing = [f for f in EVENT_FIELDS[type] if f not in fields]
    if missing:
        raise InvalidEvent(f"{type} event lacks {', '.join(missing)}")
    return {"v": SCHEMA_VERSION, "type": type, "ts": time.time(), **_finite(fields)}


def event_line(event: dict[str, Any]) -> str:
    """The wire form of an event (without the newline): what `parse_line` reads back."""
    return EVENT_PREFIX + json.dumps(event, separators=(",", ":"), default=str)


class EventWriter:
    """Writes events to a text stream, one line each, safe to call from several threads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = make_event(type, **fields)
        line = event_line(event)
        with self._lock:
            stream = self._stream or sys.stdout
            stream.write(line + "\n")
            stream.flush()
        return event

    def emit_failure(self, error_fields: dict[str, Any], started_at: float, rounds_completed: int = 0) -> None:
        """A failed run's one `error` event and its `run_finished` (status failed)."""
        self.emit("error", **error_fields)
        self.emit("run_finished", status="failed", duration_s=round(time.time() - started_at, 3), rounds_completed=rounds_completed)


def parse_line(line: str) -> dict[str, Any] | None:
    """The event carried by `line`, None for an ordinary log line; InvalidEvent if malformed."""
    if not line.startswith(EVENT_PREFIX):
        return None
    raw = line[len(EVENT_PREFIX) :].strip()
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("event larger than 1 MB")
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError; an integer of 4,300+ digits
        raise InvalidEvent(f"not JSON: {exc}") from None
    if depth(event) > MAX_EVENT_DEPTH:
        raise InvalidEvent(f"event nested deeper than {MAX_EVENT_DEPTH} levels")
    if not isinstance(event, dict):
        raise InvalidEvent("event is not an object")
    if event.get("v") != SCHEMA_VERSION:
        raise InvalidEvent(f"unsupported schema version {event.get('v')!r}")
    type_ = event.get("type")
    if type_ not in EVENT_FIELDS:
        raise InvalidEvent(f"unknown event type {type_!r}")
    missing = [f for f in EVENT_FIELDS[type_] if f not in event]
    if missing:
        raise InvalidEvent(f"{type_} event lacks {', '.join(missing)}")
    ts = event.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise InvalidEvent("event has no numeric ts")
    return event


def depth(value: Any) -> int:
    """How deep lists and objects nest in `value` (iteratively: no recursion to exhaust)."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_EVENT_DEPTH:
                break
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
