"""A run's results as files to take away: every metric row of an attempt (each round, each
client, each metric) as CSV or JSON, a TensorBoard log folder (`tensorboard_logs`), and
the attempt's events as JSON Lines.

The pages and the API serve the same bodies, after their own tenant check. Bodies are
generators over pages of rows read by key (id order, on the (experiment, attempt, id)
indexes), so an export of millions of rows streams in bounded memory; the views wrap them
in `stream_with_context` to keep the request's database session.

Every text cell came from the sandbox (metric names and `metric()` sources are the user's
own words): the CSV is written so that no spreadsheet runs one as a formula.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import orjson
from defusedcsv import csv as defused_csv
from sqlalchemy import bindparam, select

from flautim.models import Experiment, ExperimentEvent, MetricRow, db

from .results import METRIC_COLUMNS, METRIC_KEYS

PAGE_ROWS = 5000
EVENT_PAGE_ROWS = 1000
CSV_COLUMNS = ("attempt", "round", "phase", "source", "name", "value")

METRIC_PAGE = (
    select(*METRIC_COLUMNS)
    .where(MetricRow.experiment_id == bindparam("experiment_id"), MetricRow.attempt == bindparam("attempt"),
           MetricRow.id > bindparam("after"))
    .order_by(MetricRow.id)
    .limit(bindparam("limit"))
)
EVENT_COLUMNS = (ExperimentEvent.id, ExperimentEvent.attempt, ExperimentEvent.type, ExperimentEvent.payload,
                 ExperimentEvent.created_at)
EVENT_KEYS = ("id", "attempt", "type", "payload", "created_at")
EVENT_PAGE = (
    select(*EVENT_COLUMNS)
    .where(ExperimentEvent.experiment_id == bindparam("experiment_id"),
           ExperimentEvent.attempt == bindparam("attempt"), ExperimentEvent.id > bindparam("after"))
    .order_by(ExperimentEvent.id)
    .limit(bindparam("limit"))
)


def _pages(statement, experiment_id: int, attempt: int, limit: int) -> Iterator[list[tuple]]:
    after = 0
    while True:
        rows = db.session.execute(
            statement, {"experiment_id": experiment_id, "attempt": attempt, "after": after, "limit": limit}
        ).all()
        if not rows:
            return
        yield rows
        if len(rows) < limit:
            return
        after = rows[-1][0]


def metric_pages(experiment: Experiment, attempt: int) -> Iterator[list[tuple]]:
    """The attempt's metric rows as tuples of results.METRIC_COLUMNS, in id order (the
    order they arrived: round by round), PAGE_ROWS at a time."""
    return _pages(METRIC_PAGE, experiment.id, attempt, PAGE_ROWS)


# defusedcsv quotes text starting with = + - @ | %; a spreadsheet also acts on a cell whose
# first character is a tab or a line break, or whose formula follows leading blanks.
_FORMULA_AFTER_BLANKS = re.compile(r"^[\s\x00-\x1f]+[=+\-@|%]|^[\t\r\n]")


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never evaluates; numbers stay numbers."""
    if isinstance(value, str) and _FORMULA_AFTER_BLANKS.match(value):
        return "'" + value
    return value


def metrics_csv(experiment: Experiment, attempt: int) -> Iterator[bytes]:
    """CSV (UTF-8, a header row, then one row per number): attempt, round, phase, source,
    name, value."""
    buffer = io.StringIO()
    writer = defused_csv.writer(buffer)  # RFC 4180: CRLF, fields with either quoted
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    for rows in metric_pages(experiment, attempt):
        buffer.seek(0)
        buffer.truncate()
        for _id, row_attempt, rnd, phase, source, name, value in rows:
            writer.writerow((row_attempt, rnd, csv_cell(phase), csv_cell(source), csv_cell(name), value))
        yield buffer.getvalue().encode()


def metrics_json(experiment: Experiment, attempt: int) -> Iterator[bytes]:
    """`{"experiment_id", "attempt", "items": [{id, attempt, round, phase, source, name,
    value}, ...]}` (the API's MetricsExport), written a page at a time."""
    yield b'{"experiment_id":%d,"attempt":%d,"items":[' % (experiment.id, attempt)
    first = True
    for rows in metric_pages(experiment, attempt):
        items = orjson.dumps([dict(zip(METRIC_KEYS, row, strict=True)) for row in rows])[1:-1]
        yield items if first else b"," + items
        first = False
    yield b"]}"


def events_jsonl(experiment: Experiment, attempt: int) -> Iterator[bytes]:
    """One JSON object a line per event of the attempt, oldest first: id, attempt, type,
    payload (as the runtime sent it, after the ingest's checks), created_at."""
    for rows in _pages(EVENT_PAGE, experiment.id, attempt, EVENT_PAGE_ROWS):
        yield b"".join(orjson.dumps(dict(zip(EVENT_KEYS, row, strict=True))) + b"\n" for row in rows)
