"""Ingesting a run's output: log lines and events into the database, then Redis.

The live-update contract (docs/architecture.md): every log line becomes a `LogRecord`,
every event an `ExperimentEvent` plus the `MetricRow`s / `ModelArtifact`s derived from it,
the experiment's headline figures are updated, and each stored row is published on the
experiment's channel as the message `flautim.live_messages` builds for it.

Lines arrive from many capture threads at once and a run can print fast, so `Ingestor`
queues them and one flusher thread writes them in batches. Everything a run prints is
hostile: a malformed event is kept as a plain log line, checkpoint files are copied only if
they are regular files inside the output folder (never through a link the run planted).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import queue
import stat
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Integer, cast, delete, func, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError

from flautim import headline, live_messages, storage
from flautim.config import Config
from flautim.diagnosis import RunWatch
from flautim.fl.events import (
    CLIENT_EVENT_PHASES,
    MAX_EVENT_DEPTH,
    SCHEMA_VERSION,
    InvalidEvent,
    depth,
    parse_line,
)
from flautim.live_messages import int_or_none, number_or_none
from flautim.models import (
    ClientResult,
    Experiment,
    ExperimentEvent,
    LogRecord,
    MetricRow,
    ModelArtifact,
    db,
    utcnow,
)
from flautim.object_store import store_for

from .database import session_scope

log = logging.getLogger(__name__)

BATCH_MAX = 500
FLUSH_INTERVAL_S = 0.25
# After a batch's first item, how long to wait for more: a run's lines arrive a few at a
# time, and one transaction per handful cost more CPU than the rounds could spare. Well
# inside the live updates' latency goal (p95 < 500 ms).
LINGER_S = 0.1
_WAKE = object()  # put by close(): ends the flusher's wait at once
# While the database is away, keep at most this many items waiting; older ones are dropped
# (and counted) rather than exhausting the worker's memory.
BACKLOG_MAX = 200_000
CHECKPOINT_MAX_BYTES = 2 * 2**30
# Event lines may be up to 1 MB (flautim.fl.events.MAX_EVENT_BYTES); other lines are cut.
MAX_STORED_LINE = 1_100_000
# The first key of pg_advisory_xact_lock for a run's log writes (the second: its experiment id).
LOG_ORDER_LOCK = 0x10C5


class LogOrderError(RuntimeError):
    """New log lines would get ids at or below lines already stored: refused (see _write)."""
CHECKPOINT_FORMATS = {"pytorch": ".pt", "safetensors": ".safetensors"}
CHECKPOINT_KINDS = ("round", "best", "final")
# Metric names remembered for the headline rule (the first ones a run reports decide it).
MAX_REPORTED_NAMES = 100
# Round numbers beyond any run's (hyperparameters allow 10,000 rounds) are not results.
MAX_ROUND = 1_000_000
MAX_INT32 = 2**31 - 1


class Ingestor:
    """A RunSink that stores and publishes what one attempt prints.

    `line()` is thread-safe and cheap; `close()` flushes everything and stops the flusher.
    After the run, `run_finished`, `last_error` and `events_seen` describe what the runtime
    reported.
    """

    def __init__(self, config: Config, experiment_id: int, attempt: int, out_dir: Path, *,
                 redis_client: redis.Redis | None, on_phase=None) -> None:
        self.config = config
        self.experiment_id = experiment_id
        self.attempt = attempt
        self.out_dir = Path(out_dir)
        self.redis = redis_client
        self.on_phase = on_phase
        self.store = store_for(config)
        self.max_lines = self.config.MAX_LOG_LINES_PER_EXPERIMENT
        self.max_events = self.config.MAX_EVENTS_PER_ATTEMPT
        self.max_metrics_per_round = self.config.MAX_METRIC_ROWS_PER_ROUND
        self.storage_limit = self.config.SANDBOX_OUTPUT_LIMIT_MB * 2**20
        self.events_stored = 0
        self.events_dropped = 0
        # Items that could not be stored at all (a hostile or broken line): skipped, counted.
        self.skipped = 0
        self._metrics_per_round: dict[int, int] = {}
        # The worker's copies of this attempt's checkpoints, mirroring the run's keep_last:
        # (kind, round) -> (files, bytes), oldest first.
        self._copies: dict[tuple[str, int], tuple[list[Path], int]] = {}
        self._keep_last: int | None = None
        self._hyperparameters: dict | None = None
        # Metric names the run's evaluations reported, first seen first (flautim.headline).
        self._reported: dict[str, None] = {}
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.lines_stored = 0
        self.truncated = False
        self.dropped = 0
        self.last_error: dict[str, Any] | None = None
        self.run_finished: dict[str, Any] | None = None
        self.run_started: dict[str, Any] | None = None
        self.events_seen = 0
        self._summary: dict[str, Any] = {}
        self._sources: set[str] = set()  # already in experiment.log_sources
        self._rounds_done = 0
        self._rounds_total: int | None = None
        self._round_started_at: dict[int, float] = {}
        self._round_times: list[float] = []
        self._redis_warned = False
        # What looks wrong in the curves, found as the events arrive (flautim/diagnosis.py).
        self._watch = RunWatch()
        self._thread = threading.Thread(target=self._flusher, name=f"ingest-{experiment_id}", daemon=True)
        self._thread.start()

    # --- RunSink ---------------------------------------------------------------------------

    def line(self, source: str, stream: str, text: str) -> None:
        if self._queue.qsize() >= BACKLOG_MAX:
            self.dropped += 1
            return
        # PostgreSQL's text refuses NUL; a row must stay a line, not a megabyte.
        text = text.replace("\x00", "")
        if len(text) > MAX_STORED_LINE:
            text = text[:MAX_STORED_LINE] + " [...]"
        self._queue.put((source, stream, text, time.time()))

    def phase(self, name: str) -> None:
        if self.on_phase is not None:
            self.on_phase(name)

    def platform(self, text: str) -> None:
        """A line from the platform itself (shown with the run's logs)."""
        self.line("platform", "stdout", text)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self, timeout: float = 120) -> None:
        self._stop.set()
        self._queue.put(_WAKE)  # the flusher may be waiting up to FLUSH_INTERVAL_S for a line
        self._thread.join(timeout=timeout)

    def _flusher(self) -> None:
        with session_scope(self.config):
            # Nothing is put after close() (the backend drained its output first).
            while not (self._stop.is_set() and self._queue.empty()):
                batch = self._take_batch()
                if batch:
                    self._write_with_retry(batch)
            db.session.remove()

    def _take_batch(self) -> list:
        """The next items: whatever arrives within LINGER_S of the first, BATCH_MAX at most
        (no lingering once closing)."""
        try:
            items = [self._queue.get(timeout=FLUSH_INTERVAL_S)]
        except queue.Empty:
            return []
        until = time.monotonic() + LINGER_S
        while len(items) < BATCH_MAX:
            left = until - time.monotonic()
            try:
                if left <= 0 or self._stop.is_set():
                    items.append(self._queue.get_nowait())
                else:
                    items.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return [item for item in items if item is not _WAKE]

    def _write_with_retry(self, batch: list) -> None:
        """Write a batch; while the database is unreachable, retry (the run goes on).

        Any other failure means some item of the batch is unacceptable (a value the database
        refuses, a full disk while copying a checkpoint, ...): the batch is written again one
        item at a time and only the items that fail are skipped, so one hostile line never
        costs the run's other results — least of all the events its outcome depends on.
        """
        delay = 0.5
        while True:
            saved = self._counters()
            try:
                self._write(batch)
                return
            except (OperationalError, InterfaceError) as exc:
                self._rollback(saved)
                log.warning("experiment %s: database unreachable (%s); retrying", self.experiment_id, exc)
                if self._stop.is_set() and delay >= 10:
                    log.error("experiment %s: giving up on %d log items", self.experiment_id, len(batch))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 10)
            except Exception:
                self._rollback(saved)
                if len(batch) == 1:
                    self._skip(batch[0])
                    return
                for item in batch:
                    self._write_with_retry([item])
                return

    def _counters(self) -> tuple:
        return (self.lines_stored, self.truncated, len(self._round_times), self.events_seen,
                self.events_stored, dict(self._metrics_per_round), set(self._watch.emitted))

    def _rollback(self, saved: tuple) -> None:
        """Forget a failed write: nothing of it was stored, so none of it may count."""
        db.session.rollback()
        db.session.remove()
        (self.lines_stored, self.truncated, n_times, self.events_seen, self.events_stored,
         self._metrics_per_round, self._watch.emitted) = saved
        del self._round_times[n_times:]

    def _skip(self, item: tuple) -> None:
        source, _stream, text, _ts = item
        self.skipped += 1
        log.exception("experiment %s: an output line of %s could not be stored; skipped",
                      self.experiment_id, source)
        if self.skipped <= 10:
            try:
                self._write([("platform", "stderr",
                              f"[flautim] a line printed by {source[:32]} could not be stored and was "
                              f"skipped (it begins {text[:80]!r})", time.time())])
            except Exception:
                db.session.rollback()
                db.session.remove()

    # --- the work --------------------------------------------------------------------------

    def _write(self, batch: list) -> None:
        logs: list[LogRecord] = []
        events: list[tuple[ExperimentEvent, dict]] = []
        metrics: list[MetricRow] = []
        client_results: list[ClientResult] = []
        artifacts: list[ModelArtifact] = []
        for source, stream, text, _ts in batch:
            event = None
            if source == "server" or source == "prepare":
                try:
                    event = parse_line(text)
                except InvalidEvent as exc:
                    text = f"{text}  [flautim: invalid event ignored: {exc}]"
            if event is not None and self.events_stored >= self.max_events:
                # Past the cap the event still counts for the outcome, the headline
                # figures and the diagnoses; it is only not stored.
                self._track(event)
                events.extend(self._diagnoses(event))
                self.events_dropped += 1
                if self.events_dropped == 1:
                    logs.append(self._log_row(
                        "platform", "stderr",
                        f"[flautim] this run sent more than {self.max_events} events; the rest "
                        "were not stored (its outcome still counts)",
                    ))
                continue
            if event is not None:
                self.events_stored += 1
                row = ExperimentEvent(
                    experiment_id=self.experiment_id, attempt=self.attempt,
                    type=event["type"], payload=_jsonable(event),
                )
                events.append((row, event))
                metrics.extend(self._capped(self._metrics_of(event), logs))
                client_results.extend(self._client_result_of(event))
                artifacts.extend(self._artifacts_of(event))
                self._track(event)
                events.extend(self._diagnoses(event))
                continue
            if self.lines_stored >= self.max_lines:
                if not self.truncated:
                    self.truncated = True
                    logs.append(self._log_row(
                        "platform", "stderr",
                        f"[flautim] this run printed more than {self.max_lines} lines; "
                        "the rest were not stored",
                    ))
                continue
            self.lines_stored += 1
            logs.append(self._log_row(source, stream, text))

        # Readers keep full blocks of lines (flautim/web/api/log_pages.py) because no line
        # may appear later between ids already seen. That holds here: the lines of a run
        # get their ids under its lock, in printed order, above every stored id, and are
        # visible only once this transaction commits and lets the next writer in.
        stored_max = self._hold_log_order() if logs else 0
        _insert(logs, ids=True)
        _insert([row for row, _ in events], ids=True)
        _insert(metrics, ids=True)
        _insert(client_results, ids=False)
        db.session.add_all(artifacts)
        if artifacts:
            self._retire_rows(artifacts)
        new_sources = [s for s in dict.fromkeys(row.source for row in logs) if s not in self._sources]
        experiment = db.session.get(Experiment, self.experiment_id)
        if experiment is not None and events:
            self._apply_summary(experiment)
        current = experiment is not None and experiment.attempt == self.attempt
        if current and new_sources:
            known = list(experiment.log_sources or [])
            experiment.log_sources = known + [s for s in new_sources if s not in known]
        if current and metrics:
            experiment.metrics_version = max(experiment.metrics_version or 0, *(row.id for row in metrics))
        if logs:
            self._check_log_order([row.id for row in logs], stored_max)
        messages = self._live_messages(logs, events, experiment if events else None)
        db.session.commit()
        self._sources.update(new_sources)
        self._publish(messages)

    def _hold_log_order(self) -> int:
        """Take the run's log lock until the transaction ends; the highest line id stored."""
        if db.session.get_bind().dialect.name == "postgresql":  # SQLite has one writer anyway
            db.session.execute(select(func.pg_advisory_xact_lock(
                cast(LOG_ORDER_LOCK, Integer), cast(self.experiment_id, Integer))))
        return db.session.scalar(
            select(func.max(LogRecord.id)).where(LogRecord.experiment_id == self.experiment_id)) or 0

    def _check_log_order(self, ids: list[int], stored_max: int) -> None:
        if ids[0] <= stored_max or any(a >= b for a, b in pairwise(ids)):
            raise LogOrderError(
                f"experiment {self.experiment_id}: new log lines got ids {ids[0]}..{ids[-1]}, not "
                f"ascending above the highest stored id {stored_max}; refused, since readers keep "
                "full blocks of lines as final")

    def _log_row(self, source: str, stream: str, text: str) -> LogRecord:
        return LogRecord(experiment_id=self.experiment_id, attempt=self.attempt,
                         source=source[:32], stream=stream[:8], line=text, created_at=utcnow())

    # --- events -> rows --------------------------------------------------------------------

    def _diagnoses(self, event: dict) -> list[tuple[ExperimentEvent, dict]]:
        """`diagnosis` events for the problems `event` shows beginning (each once a run;
        few, so they are stored past the events' cap too)."""
        rows = []
        for diagnosis in self._watch.observe(event):
            payload = {"v": SCHEMA_VERSION, "type": "diagnosis", "ts": time.time(), **diagnosis.fields()}
            rows.append((ExperimentEvent(experiment_id=self.experiment_id, attempt=self.attempt,
                                         type="diagnosis", payload=_jsonable(payload)), payload))
        return rows

    def _metrics_of(self, event: dict) -> list[MetricRow]:
        kind = event["type"]
        if kind in CLIENT_EVENT_PHASES:
            phase = CLIENT_EVENT_PHASES[kind]
            source = f"client-{event.get('client')}"
        elif kind == "aggregated":
            phase, source = str(event.get("phase", "train"))[:16], "aggregate"
        elif kind == "central_evaluate":
            phase, source = "central", "server"
        elif kind == "metric":
            value = number_or_none(event.get("value"))
            rnd = _round(event.get("round"))
            if value is None or rnd is None:
                return []
            return [MetricRow(experiment_id=self.experiment_id, attempt=self.attempt, round=rnd,
                              phase="metric", source=str(event.get("source") or "server")[:32],
                              name=str(event.get("name"))[:64], value=value)]
        else:
            return []
        rnd = _round(event.get("round"))
        if rnd is None:
            return []
        values: dict[str, Any] = {"loss": event.get("loss")}
        if isinstance(event.get("metrics"), dict):
            values.update(event["metrics"])
        rows = []
        for name, raw in list(values.items())[:100]:
            value = number_or_none(raw)
            if value is not None:
                rows.append(MetricRow(experiment_id=self.experiment_id, attempt=self.attempt,
                                      round=rnd, phase=phase, source=source[:32],
                                      name=str(name)[:64], value=value))
        return rows

    def _client_result_of(self, event: dict) -> list[ClientResult]:
        """A client's report as one typed row (none when its round or client id is not a
        plain number). One per stored event, so the events' cap bounds these rows too;
        a value out of a column's range is dropped, never the event."""
        phase = CLIENT_EVENT_PHASES.get(event["type"])
        if phase is None:
            return []
        rnd, client = _round(event.get("round")), int_or_none(event.get("client"))
        if rnd is None or client is None or not 0 <= client <= MAX_INT32:
            return []
        examples = int_or_none(event.get("examples"))
        return [ClientResult(
            experiment_id=self.experiment_id, attempt=self.attempt, round=rnd,
            phase=phase, client=client,
            examples=examples if examples is not None and 0 <= examples <= MAX_INT32 else None,
            loss=number_or_none(event.get("loss")),
            accuracy=headline.accuracy_of(event.get("metrics")),
            duration_s=number_or_none(event.get("duration_s")),
        )]

    def _capped(self, rows: list[MetricRow], logs: list[LogRecord]) -> list[MetricRow]:
        """`rows` within the per-round cap; the first time a round passes it, Logs say so."""
        kept = []
        for row in rows:
            count = self._metrics_per_round.get(row.round, 0)
            if count >= self.max_metrics_per_round:
                if count == self.max_metrics_per_round:
                    logs.append(self._log_row(
                        "platform", "stderr",
                        f"[flautim] round {row.round} reported more than {self.max_metrics_per_round} "
                        "metric values; the rest of that round's were not stored",
                    ))
                    self._metrics_per_round[row.round] = count + 1
                continue
            self._metrics_per_round[row.round] = count + 1
            kept.append(row)
        return kept

    def _artifacts_of(self, event: dict) -> list[ModelArtifact]:
        if event["type"] != "checkpoint" or not isinstance(event.get("files"), dict):
            return []
        rnd = _round(event.get("round"))
        kind = event.get("kind")
        # Both go into file names: only the runtime's own kinds and a plain round number.
        if kind not in CHECKPOINT_KINDS or rnd is None:
            self.line("platform", "stderr", f"[flautim] checkpoint of kind {str(kind)[:40]!r}, round "
                      f"{str(event.get('round'))[:20]!r} refused: not a checkpoint the runtime makes")
            return []
        rows = []
        dest_dir = storage.attempt_dir(
            self.config.data_path, self._project_id(), self.experiment_id, self.attempt
        ) / "checkpoints"
        files = dict(event["files"])
        written: list[Path] = []
        stem = f"round-{rnd}-{kind}"
        card = self._card(files.pop("card", None), dest_dir / f"{stem}.card.json", written)
        for fmt, relative in list(files.items())[: len(CHECKPOINT_FORMATS)]:
            if fmt not in CHECKPOINT_FORMATS or not isinstance(relative, str):
                self.line("platform", "stderr", f"[flautim] checkpoint format {str(fmt)[:40]!r} ignored")
                continue
            dest = dest_dir / f"{stem}{CHECKPOINT_FORMATS[fmt]}"
            try:
                size, digest = copy_checkpoint(self.out_dir, relative, dest, max_bytes=self._room())
                # Checked and copied out of the sandbox's reach first; only then stored.
                self.store.put_file(storage.relative(self.config.data_path, dest), dest)
            except CheckpointRejected as exc:
                self.line("platform", "stderr", f"[flautim] checkpoint {relative[:200]!r} refused: {exc}")
                continue
            except OSError as exc:  # our disk, not the run's file: say so, keep going
                log.error("experiment %s: copying checkpoint %r failed: %s", self.experiment_id, relative, exc)
                self.line("platform", "stderr",
                          f"[flautim] checkpoint {relative[:200]!r} not kept: the platform could not store it "
                          f"({exc.strerror or exc})")
                continue
            written.append(dest)
            rows.append(ModelArtifact(
                experiment_id=self.experiment_id, attempt=self.attempt, round=rnd, kind=kind,
                format=fmt, storage_path=storage.relative(self.config.data_path, dest),
                size_bytes=size, sha256=digest,
                card=_jsonable({**card, "metrics": event.get("metrics"), "source_file": relative}),
            ))
        self._keep(kind, rnd, written)
        return rows

    def _room(self) -> int:
        """Bytes this attempt's checkpoint copies may still take (the run's storage limit)."""
        used = sum(size for _files, size in self._copies.values())
        return max(0, min(CHECKPOINT_MAX_BYTES, self.storage_limit - used))

    def _keep(self, kind: str, rnd: int, written: list[Path]) -> None:
        """Record a new set of copies and retire the ones the run itself no longer keeps:
        per-round sets past keep_last, an earlier best, an earlier final."""
        previous = self._copies.pop((kind, rnd), None)
        if previous is not None:
            self._retire(p for p in previous[0] if p not in written)
        self._copies[(kind, rnd)] = (written, sum(_size(p) for p in written))
        same_kind = [key for key in self._copies if key[0] == kind]
        keep = self._keep_last_rounds() if kind == "round" else 1
        for key in same_kind[: max(0, len(same_kind) - keep)]:
            self._retire(self._copies.pop(key)[0])

    def _retire(self, paths) -> None:
        """Remove retired copies here and from the object store."""
        for path in paths:
            path.unlink(missing_ok=True)
            if not self.store.is_local:
                try:
                    self.store.delete(storage.relative(self.config.data_path, path))
                except OSError as exc:  # only space left behind: the row goes anyway
                    log.warning("experiment %s: %s", self.experiment_id, exc)

    def _retire_rows(self, artifacts: list[ModelArtifact]) -> None:
        """Delete the rows of retired copies (this batch's included)."""
        for kind in {row.kind for row in artifacts}:
            kept_rounds = [r for k, r in self._copies if k == kind]
            db.session.execute(delete(ModelArtifact).where(
                ModelArtifact.experiment_id == self.experiment_id, ModelArtifact.attempt == self.attempt,
                ModelArtifact.kind == kind, ModelArtifact.round.not_in(kept_rounds),
            ).execution_options(synchronize_session=False))

    def _hyperparameter_values(self) -> dict:
        """The hyperparameters the platform validated for this run (read once)."""
        if self._hyperparameters is None:
            experiment = db.session.get(Experiment, self.experiment_id)
            values = experiment.hyperparameter_file.values if experiment and experiment.hyperparameter_file else {}
            self._hyperparameters = values if isinstance(values, dict) else {}
        return self._hyperparameters

    def _keep_last_rounds(self) -> int:
        """The run's checkpoint.keep_last, from the hyperparameters the platform validated."""
        if self._keep_last is None:
            options = self._hyperparameter_values().get("checkpoint")
            keep = options.get("keep_last", 2) if isinstance(options, dict) else 2
            self._keep_last = keep if isinstance(keep, int) and 0 <= keep <= 1000 else 2
        return self._keep_last

    def _card(self, relative: object, dest: Path, written: list[Path]) -> dict:
        """The checkpoint's JSON card (round, metrics, hyperparameters, code hash), copied
        as safely as the weights; a missing or malformed card just leaves it empty."""
        if not isinstance(relative, str):
            return {}
        try:
            copy_checkpoint(self.out_dir, relative, dest, max_bytes=min(CARD_MAX_BYTES, self._room()))
            written.append(dest)
            card = json.loads(dest.read_text(encoding="utf-8"))
        except (CheckpointRejected, OSError, ValueError, RecursionError) as exc:
            self.line("platform", "stderr", f"[flautim] checkpoint card {relative[:200]!r} refused: {exc}")
            return {}
        return _jsonable(card) if isinstance(card, dict) and depth(card) <= MAX_EVENT_DEPTH else {}

    _project_cache: int | None = None

    def _project_id(self) -> int:
        if self._project_cache is None:
            experiment = db.session.get(Experiment, self.experiment_id)
            self._project_cache = experiment.project_id
        return self._project_cache

    def _track(self, event: dict) -> None:
        self.events_seen += 1
        kind = event["type"]
        rnd = int_or_none(event.get("round"))
        if kind == "run_started":
            self.run_started = event
            self._rounds_total = int_or_none(event.get("rounds"))
        elif kind == "round_started" and rnd is not None and rnd <= MAX_ROUND:
            self._round_started_at[rnd] = float(event["ts"])
            self._rounds_done = max(self._rounds_done, rnd - 1)
            if rnd - 1 in self._round_started_at:
                self._round_times.append(float(event["ts"]) - self._round_started_at[rnd - 1])
        elif kind in ("central_evaluate", "aggregated") and rnd:
            if kind == "central_evaluate" or event.get("phase") == "evaluate":
                self._rounds_done = max(self._rounds_done, rnd)
                metrics = event.get("metrics")
                if isinstance(metrics, dict) and len(self._reported) < MAX_REPORTED_NAMES:
                    for name in list(metrics)[:MAX_REPORTED_NAMES]:
                        self._reported.setdefault(str(name)[:64], None)  # as its rows store it
                live_messages.score(self._summary, event,
                                    headline.headline_metric(self._hyperparameter_values(), self._reported))
        elif kind == "error":
            self.last_error = event
        elif kind == "run_finished":
            self.run_finished = event
            done = int_or_none(event.get("rounds_completed"))
            if done is not None:
                self._rounds_done = max(self._rounds_done, done)

    def _apply_summary(self, experiment: Experiment) -> None:
        if self._rounds_total is not None:
            experiment.rounds_total = self._rounds_total
        experiment.rounds_done = max(experiment.rounds_done or 0, self._rounds_done)
        summary = dict(experiment.summary or {})
        summary.update(self._summary)
        if self._round_times:
            mean = sum(self._round_times) / len(self._round_times)
            summary["mean_round_s"] = round(mean, 3)
            remaining = max(0, (experiment.rounds_total or 0) - experiment.rounds_done)
            summary["eta_s"] = round(mean * remaining, 1)
        if self.truncated:
            summary["logs_truncated"] = True
        experiment.summary = summary

    # --- publishing ------------------------------------------------------------------------

    def _live_messages(self, logs, events, experiment) -> list:
        if self.redis is None:
            return []
        messages = [live_messages.log_message(row.id, row.attempt, row.source, row.stream, row.line, row.created_at)
                    for row in logs]
        messages += [live_messages.event_message(row.id, row.attempt, row.type, row.payload) for row, _ in events]
        if experiment is not None:
            messages.append(live_messages.state_message(experiment))
        return messages

    def _publish(self, messages: list) -> None:
        """After the commit, so a page that hears of a row can read it (none without Redis:
        _live_messages built none)."""
        if not messages:
            return
        channel = live_messages.channel_for(self.redis, self.experiment_id)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for message in messages:
                pipe.publish(channel, live_messages.encode(message))
            pipe.execute()
            self._redis_warned = False
        except redis.RedisError as exc:
            # Pages catch up from the database; a Redis outage only delays the live view.
            if not self._redis_warned:
                log.warning("experiment %s: cannot publish live updates (%s)", self.experiment_id, exc)
                self._redis_warned = True


class CheckpointRejected(ValueError):
    pass


CARD_MAX_BYTES = 256 * 1024


def copy_checkpoint(out_dir: Path, relative: str, dest: Path, max_bytes: int = CHECKPOINT_MAX_BYTES) -> tuple[int, str]:
    """Copy OUT_DIR/relative to `dest` without ever following a link the sandbox made.

    Every path component is opened with O_NOFOLLOW relative to the previous one, so a
    symlink anywhere (a planted `checkpoints -> /etc`) is refused, as is anything that is
    not a regular file or that is larger than `max_bytes`. Returns (size, sha256).
    """
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise CheckpointRejected("not a plain relative path inside the output folder")
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(out_dir, flags_dir)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, flags_dir, dir_fd=fd)
            except OSError as exc:
                raise CheckpointRejected(f"{part!r} is not a folder of the output ({exc.strerror})") from None
            os.close(fd)
            fd = nxt
        try:
            src = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=fd)
        except OSError as exc:
            raise CheckpointRejected(f"cannot open it without following links ({exc.strerror})") from None
    finally:
        os.close(fd)
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointRejected("not a regular file")
        if info.st_size > max_bytes:
            raise CheckpointRejected(f"larger than {max_bytes} bytes, the room left in the run's storage")
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        tmp = dest.with_name(dest.name + ".part")
        try:
            with os.fdopen(os.dup(src), "rb") as reader, open(tmp, "wb") as writer:
                while chunk := reader.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise CheckpointRejected(f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    writer.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)  # a refused or failed copy (a full disk) leaves nothing
        return size, digest.hexdigest()
    finally:
        os.close(src)


def _insert(rows: list, *, ids: bool) -> None:
    """Store rows the ingest built as mapped objects with one INSERT per table (a batch's
    rows share a table and the columns they set), filling in their ids when asked.

    The objects never join the session: its unit of work would track each one, and flushing
    them was most of the worker's CPU at 1,000 clients (benchmarks/bench_ingest.py). They
    stay plain values for the live messages, which read them after the commit without a
    query. Columns a row leaves unset get their defaults from the table."""
    if not rows:
        return
    table = type(rows[0]).__table__
    values = [{k: v for k, v in vars(row).items() if not k.startswith("_sa_")} for row in rows]
    if any(v.keys() != values[0].keys() for v in values):
        raise ValueError(f"{table.name}: the rows of one insert must set the same columns")
    statement = insert(table)
    if not ids:
        db.session.execute(statement, values)
        return
    returned = db.session.execute(statement.returning(table.c.id, sort_by_parameter_order=True), values)
    for row, (new_id,) in zip(rows, returned, strict=True):
        row.id = new_id


def _round(value: Any) -> int | None:
    rnd = int_or_none(value)
    return rnd if rnd is not None and 0 <= rnd <= MAX_ROUND else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _jsonable(value: Any) -> Any:
    """A copy JSON (and PostgreSQL's JSON type) accepts: no NaN, no NUL, plain types."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value.replace("\x00", "")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, dict):
        return {str(k).replace("\x00", ""): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value).replace("\x00", "")
