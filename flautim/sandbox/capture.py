"""Turning a process's byte stream into labelled lines, with a cap on how much is kept."""

from __future__ import annotations

from collections.abc import Iterable

from flautim.fl.events import EVENT_PREFIX

from .plan import RunSink

# One log line longer than this is cut: a single huge line must not become one huge row.
MAX_LINE_CHARS = 8000
# Past the log cap, event lines are still read (the run's outcome depends on them) until
# this multiple of the cap has gone by; then reading stops altogether.
HARD_LIMIT_FACTOR = 20
_EVENT_PREFIX = EVENT_PREFIX.encode()
_SUPERLINK_PREFIX = "[superlink] "


def pump_lines(chunks: Iterable[bytes], sink: RunSink, source: str, stream: str, limit_bytes: int,
               keep_events: bool | None = None) -> int:
    """Feed every line of `chunks` to `sink`; returns the bytes read.

    After `limit_bytes` of output, ordinary lines are no longer stored (one "platform" line
    says so) but event lines still are; after HARD_LIMIT_FACTOR times the cap reading stops
    (the process may go on printing; Docker's own log file is capped separately). Streams
    that carry the run's events (`keep_events`, by default the stdout of the server and of
    prepare) are read to the end: the run's outcome depends on their last lines.
    """
    if keep_events is None:
        keep_events = stream == "stdout" and source in ("server", "prepare")
    buffer = b""
    total = 0
    kept = 0
    over = False
    hard_limit = limit_bytes * HARD_LIMIT_FACTOR
    for chunk in chunks:
        if not chunk:
            continue
        total += len(chunk)
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > MAX_LINE_CHARS * 4:
            lines.append(buffer)
            buffer = b""
        for line in lines:
            if not over:
                kept += len(line) + 1
                if kept > limit_bytes:
                    over = True
                    sink.line(
                        "platform", "stderr",
                        f"[flautim] the {stream} of {source} passed {limit_bytes} bytes; "
                        "the rest of its output was not kept",
                    )
            if not over or line.startswith(_EVENT_PREFIX):
                sink.line(*_label(source, stream, _decode(line)))
        if total > hard_limit and not keep_events:
            sink.line("platform", "stderr", f"[flautim] stopped reading the {stream} of {source}")
            return total
    if buffer and (not over or buffer.startswith(_EVENT_PREFIX)):
        sink.line(*_label(source, stream, _decode(buffer)))
    return total


def _label(source: str, stream: str, text: str) -> tuple[str, str, str]:
    """With the Flower transport the server container also runs the SuperLink, whose lines
    it prefixes: give them their own source in the Logs tab."""
    if source == "server" and stream == "stderr" and text.startswith(_SUPERLINK_PREFIX):
        return "superlink", stream, text[len(_SUPERLINK_PREFIX):]
    return source, stream, text


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + " [...]"
    return text.replace("\x00", "")
