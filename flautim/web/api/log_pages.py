"""The log catch-up API's pages, put together from blocks of lines encoded once and kept.

Reading, building and encoding a long page (PostgreSQL, psycopg, a dict and orjson per
line) made it the slowest of the API's answers under load. Yet a stored line never
changes, so each is encoded once and kept, in blocks:

- A block is the first BLOCK_LINES lines of one attempt (and source) with an id at or
  above its start, each already JSON. A page (`after`, `limit`) begins with the block that
  starts at `after + 1` rounded down to a multiple of BLOCK_LINES (so pages near each other
  share it) and goes on with the block that starts after each block's last line, until it
  has `limit + 1` lines (the one past the page says `has_more`).
- Only a full block is kept. It cannot change: no line can appear later between ids
  already seen. The ingestor holds that where it writes (`Ingestor._write` in
  flautim/worker/ingest.py: a run's lines get their ids under its lock, in order, above
  every stored id, or are refused). A shorter block is the end of the log, which may
  still grow: it is read afresh every time.
- Searches are not kept (any text may be asked once): `results.experiment_logs` answers
  them from the database.

The blocks live in the app's `response_cache` (one LRU per process, bounded by size), after
the access check like everything there.
"""

from __future__ import annotations

from bisect import bisect_right

from flask import current_app

from flautim.models import Experiment
from flautim.web.experiments import results
from flautim.web.response_cache import EXTENSION, BodyCache, json_bytes

from .schemas import log_rows

BLOCK_LINES = 256


class Block:
    """Lines of one attempt from a start id on: their ids, ascending, and their JSON."""

    __slots__ = ("ids", "lines", "size")

    def __init__(self, ids: list[int], lines: list[bytes]) -> None:
        self.ids = ids
        self.lines = lines
        self.size = sum(map(len, lines)) + 80 * len(lines)  # plus a bytes object, an int, two list slots

    def __len__(self) -> int:  # what BodyCache counts against its budget
        return self.size


def page_body(experiment: Experiment, attempt: int, after: int, limit: int, source: str | None) -> bytes:
    """The catch-up API's body: `{"items": [...], "next_after": id, "has_more": bool}`, the
    lines with id > `after` in id order, at most `limit` of them."""
    wanted = limit + 1
    ids: list[int] = []
    lines: list[bytes] = []
    start = (after + 1) // BLOCK_LINES * BLOCK_LINES
    while len(lines) < wanted:
        block = _block(experiment, attempt, source, start)
        first = bisect_right(block.ids, after)  # only the first block has lines at or before it
        stop = first + wanted - len(lines)
        ids += block.ids[first:stop]
        lines += block.lines[first:stop]
        if len(block.ids) < BLOCK_LINES:
            break  # the end of the log
        start = block.ids[-1] + 1
    has_more = len(lines) > limit
    next_after = ids[limit - 1] if has_more else (ids[-1] if ids else after)
    return b'{"items":[' + b",".join(lines[:limit]) + b'],"next_after":' + json_bytes(next_after) + \
        b',"has_more":' + json_bytes(has_more) + b"}"


def _block(experiment: Experiment, attempt: int, source: str | None, start: int) -> Block:
    cache: BodyCache = current_app.extensions[EXTENSION]
    # created_at tells apart a re-created database's experiments, which reuse ids.
    key = ("log-block", experiment.id, experiment.created_at.isoformat(), attempt, source, start)
    block = cache.get(key)
    if block is not None:
        return block
    rows = results.experiment_logs(experiment, attempt=attempt, after_id=start - 1, source=source,
                                    limit=BLOCK_LINES)
    block = Block([row[0] for row in rows], [json_bytes(item) for item in log_rows(rows)])
    if len(rows) == BLOCK_LINES:
        cache.put(key, block)
    return block
