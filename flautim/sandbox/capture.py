"""Turning a process's byte stream into labelled lines, with a cap on how much is kept."""

from __future__ import annotations

from collections.abc import Iterable

from .plan import RunSink

# One log line longer than this is cut: a single huge line must not become one huge row.
MAX_LINE_CHARS = 8000


def pump_lines(chunks: Iterable[bytes], sink: RunSink, source: str, stream: str, limit_bytes: int) -> int:
    """Feed every complete line of `chunks` to `sink`; returns the bytes read.

    After `limit_bytes` the rest is not stored: one "platform" line says the output was
    truncated and reading stops (the caller's process is free to go on printing; Docker's
    own log file is capped separately).
    """
    buffer = b""
    total = 0
    for chunk in chunks:
        if not chunk:
            continue
        total += len(chunk)
        if total > limit_bytes:
            buffer += chunk[: max(0, len(chunk) - (total - limit_bytes))]
            for line in buffer.split(b"\n"):
                if line:
                    sink.line(source, stream, _decode(line))
            sink.line(
                "platform",
                "stderr",
                f"[flautim] the {stream} of {source} passed {limit_bytes} bytes; "
                "the rest of its output was not kept",
            )
            return total
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            sink.line(source, stream, _decode(line))
        if len(buffer) > MAX_LINE_CHARS * 4:
            sink.line(source, stream, _decode(buffer))
            buffer = b""
    if buffer:
        sink.line(source, stream, _decode(buffer))
    return total


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + " [...]"
    return text.replace("\x00", "")
