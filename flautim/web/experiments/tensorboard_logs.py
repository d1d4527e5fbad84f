"""A run's metrics as a TensorBoard log folder, zipped: unzip it and point
`tensorboard --logdir` at it.

One TensorBoard run per source of the rows (`aggregate`, `server`, `client-0`, ...), so
TensorBoard's run picker is the client picker; tags are `phase/name` (`train/loss`,
`central/accuracy`) and the step is the round. The records are written with the
`tensorboard` package's own event format (its protos and RecordWriter, the framing and
checksums TensorBoard reads), without its writer thread: the rows are read a page at a time,
kept per source in memory up to SPILL_BYTES in all and then appended to scratch files, and
the zip is streamed as it is compressed.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

from flautim.models import Experiment

from .exports import metric_pages

SPILL_BYTES = 8 * 2**20
CHUNK_BYTES = 2**20
# A source becomes a folder name in the zip: the sandbox chose some of them (`metric()`).
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def run_folder_name(source: str, taken: set[str]) -> str:
    """A folder name for `source` that no unzip takes for a path (no separators, no dots
    alone, no leading dot) and that no other source of the run has."""
    name = _UNSAFE.sub("_", source)[:64] or "_"
    if name.startswith("."):
        name = "_" + name[1:]
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{name}-{n}"
    taken.add(unique)
    return unique


class _Chunks:
    """The zip's output: a write-only stream whose bytes are taken out as they come (an
    unseekable file makes zipfile write data descriptors, so nothing is written twice)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts, self.size = [], 0
        return data


def _event_files(experiment: Experiment, attempt: int, folder: Path, wall_time: float) -> dict[str, Path]:
    """Write one event file per source under `folder`; {run folder name: file}."""
    buffers: dict[str, tuple[io.BytesIO, RecordWriter]] = {}
    files: dict[str, Path] = {}
    taken: set[str] = set()
    pending = 0

    def spill() -> None:
        for source, (buffer, _writer) in buffers.items():
            with open(files[source], "ab") as out:
                out.write(buffer.getbuffer())
            buffer.seek(0)
            buffer.truncate()

    for rows in metric_pages(experiment, attempt):
        for _id, _attempt, rnd, phase, source, name, value in rows:
            if source not in buffers:
                buffer = io.BytesIO()
                buffers[source] = (buffer, RecordWriter(buffer))
                run = run_folder_name(source, taken)
                (folder / run).mkdir()
                files[source] = folder / run / "events"
                buffers[source][1].write(Event(wall_time=wall_time, file_version="brain.Event:2").SerializeToString())
            summary = Summary(value=[Summary.Value(tag=f"{phase}/{name}", simple_value=value)])
            record = Event(wall_time=wall_time, step=rnd, summary=summary).SerializeToString()
            buffers[source][1].write(record)
            pending += len(record) + 16
        if pending > SPILL_BYTES:
            spill()
            pending = 0
    spill()
    return {path.parent.name: path for path in files.values()}


def tensorboard_zip(experiment: Experiment, attempt: int, scratch: Path) -> Iterator[bytes]:
    """The zip, in pieces: `experiment-<id>-attempt-<n>/<source>/events.out.tfevents.*`.
    The event files are written under `scratch` (removed when the body ends or is closed)."""
    started = experiment.started_at or experiment.created_at
    wall_time = started.timestamp() if started else 0.0
    root = f"experiment-{experiment.id}-attempt-{attempt}"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="tensorboard-") as folder:
        files = _event_files(experiment, attempt, Path(folder), wall_time)
        sink = _Chunks()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for run, path in sorted(files.items()):
                entry = f"{root}/{run}/events.out.tfevents.{int(wall_time)}.flautim"
                # A stream cannot go back to widen the entry's header: say ZIP64 up front.
                zip64 = path.stat().st_size >= zipfile.ZIP64_LIMIT
                with open(path, "rb") as source, archive.open(entry, "w", force_zip64=zip64) as out:
                    while chunk := source.read(CHUNK_BYTES):
                        out.write(chunk)
                        if sink.size >= CHUNK_BYTES:
                            yield sink.take()
        yield sink.take()
