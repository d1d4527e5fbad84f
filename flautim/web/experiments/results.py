"""What a run left, read back from its rows: per-round curves and the comparison table,
the metric rows the API serves, events, log lines, log sources and model artifacts.

Curves are read from the metric rows the worker derives from the runtime's own events
(`aggregated` per phase, `central_evaluate`), the same events the live page draws from, so
a finished page and the comparison agree with what was watched live. They are read as
columns and bounded: a run may report any number of rounds (or hostile round numbers), so
each curve is at most `max_points` points, one per bucket of rounds (the bucket's last
round, its newest value), chosen by the database. The last point is always the last round;
the best value is the whole curve's.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select

from flautim.live_messages import ACCURACY_NAMES
from flautim.models import (
    Experiment,
    ExperimentEvent,
    LogRecord,
    MetricRow,
    ModelArtifact,
    Project,
    db,
)
from flautim.web import flautim_config

from .errors import NotFound

# series key -> (phase, source) of its metric rows — the three curves of the Saídas charts.
SERIES = {
    "train": ("train", "aggregate"),
    "evaluate": ("evaluate", "aggregate"),
    "central": ("central", "server"),
}
# metric -> the metric names it is read from, in order of preference.
METRIC_NAMES = {"loss": ("loss",), "accuracy": ACCURACY_NAMES}
DEFAULT_MAX_POINTS = 500


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _max_points() -> int:
    config = flautim_config()
    return getattr(config, "CURVE_MAX_POINTS", DEFAULT_MAX_POINTS)


def _attempt(experiment: Experiment, attempt: int | None) -> int:
    return experiment.attempt if attempt is None else attempt


def _series_filter():
    return or_(*(and_(MetricRow.phase == phase, MetricRow.source == source) for phase, source in SERIES.values()))


def curve_stats(experiment: Experiment, attempt: int | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """{(metric, series key): {"name", "rounds", "first", "last", "best"}} for every curve
    the run has rows for: one grouped statement over the attempt's metric rows."""
    names = [name for group in METRIC_NAMES.values() for name in group]
    rows = db.session.execute(
        select(MetricRow.phase, MetricRow.source, MetricRow.name, func.count(func.distinct(MetricRow.round)),
               func.min(MetricRow.round), func.max(MetricRow.round), func.min(MetricRow.value),
               func.max(MetricRow.value))
        .where(MetricRow.experiment_id == experiment.id, MetricRow.attempt == _attempt(experiment, attempt),
               _series_filter(), MetricRow.name.in_(names))
        .group_by(MetricRow.phase, MetricRow.source, MetricRow.name)
    ).all()
    found = {(phase, source, name): rest for phase, source, name, *rest in rows}
    stats = {}
    for metric, preferred in METRIC_NAMES.items():
        for key, (phase, source) in SERIES.items():
            name = next((n for n in preferred if (phase, source, n) in found), None)
            if name is None:
                continue
            rounds, first, last, low, high = found[(phase, source, name)]
            stats[(metric, key)] = {"name": name, "rounds": rounds, "first": first, "last": last,
                                    "best": low if metric == "loss" else high}
    return stats


def _points(experiment: Experiment, attempt: int | None, stats: dict, max_points: int) -> dict:
    """{(metric, key): [[round, value], ...]}: per curve, the newest value of the last round
    of each bucket of `width` rounds (width 1 when the curve fits), in one statement."""
    if not stats:
        return {}
    buckets, wanted = [], []
    for (_metric, key), info in stats.items():
        phase, source = SERIES[key]
        width = max(1, math.ceil((info["last"] - info["first"] + 1) / max_points))
        match = and_(MetricRow.phase == phase, MetricRow.source == source, MetricRow.name == info["name"])
        wanted.append(match)
        buckets.append((match, (MetricRow.round - info["first"]) // width))
    ranked = (
        select(MetricRow.phase, MetricRow.source, MetricRow.name, MetricRow.round, MetricRow.value,
               func.row_number().over(
                   partition_by=(MetricRow.phase, MetricRow.source, MetricRow.name, case(*buckets)),
                   order_by=(MetricRow.round.desc(), MetricRow.id.desc()),
               ).label("rank"))
        .where(MetricRow.experiment_id == experiment.id, MetricRow.attempt == _attempt(experiment, attempt),
               or_(*wanted))
        .subquery()
    )
    rows = db.session.execute(
        select(ranked.c.phase, ranked.c.source, ranked.c.name, ranked.c.round, ranked.c.value)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.round)
    ).all()
    by_row = {(SERIES[key][0], SERIES[key][1], info["name"]): (metric, key) for (metric, key), info in stats.items()}
    points: dict = {}
    for phase, source, name, rnd, value in rows:
        points.setdefault(by_row[(phase, source, name)], []).append([rnd, value])
    return points


def _duration(experiment: Experiment, attempt: int | None) -> float | None:
    payload = db.session.scalar(
        select(ExperimentEvent.payload)
        .where(ExperimentEvent.experiment_id == experiment.id,
               ExperimentEvent.attempt == _attempt(experiment, attempt),
               ExperimentEvent.type == "run_finished")
        .order_by(ExperimentEvent.id.desc())
        .limit(1)
    )
    return _number(payload.get("duration_s")) if isinstance(payload, dict) else None


def curves_of(experiment: Experiment, attempt: int | None = None, max_points: int | None = None) -> dict[str, Any]:
    """{"loss": {series: [[round, value], ...]}, "accuracy": {...}, "best", "rounds",
    "downsampled", "max_points", "duration_s", ...}: at most `max_points` points a curve."""
    max_points = max_points or _max_points()
    stats = curve_stats(experiment, attempt)
    points = _points(experiment, attempt, stats, max_points)
    curves: dict[str, Any] = {metric: {key: points.get((metric, key), []) for key in SERIES}
                              for metric in METRIC_NAMES}
    duration = _duration(experiment, attempt)
    return {
        "id": experiment.id,
        "name": experiment.name,
        "state": experiment.state.value,
        **curves,
        "best": {metric: {key: info["best"] for (m, key), info in stats.items() if m == metric}
                 for metric in METRIC_NAMES},
        "rounds": {metric: {key: info["rounds"] for (m, key), info in stats.items() if m == metric}
                   for metric in METRIC_NAMES},
        "downsampled": any(info["rounds"] > len(points.get(target, [])) for target, info in stats.items()),
        "max_points": max_points,
        "duration_s": duration if duration is not None else experiment.duration_s,
    }


def _last(points: list[list[float]]) -> float | None:
    return points[-1][1] if points else None


def compare_rows(experiments: list[Experiment]) -> dict[str, Any]:
    """The comparison table: final and best metrics, duration and every hyperparameter."""
    rows = []
    keys: list[str] = []
    for experiment in experiments:
        curves = curves_of(experiment)
        # The central evaluation is the held-out truth; fall back to the federated one.
        acc_key = "central" if curves["accuracy"]["central"] else "evaluate"
        loss_key = "central" if curves["loss"]["central"] else "evaluate"
        acc, loss = curves["accuracy"][acc_key], curves["loss"][loss_key]
        values = dict(experiment.hyperparameter_file.values) if experiment.hyperparameter_file else {}
        for key in values:
            if key not in keys:
                keys.append(key)
        rows.append(
            {
                "experiment": experiment,
                "final_accuracy": _last(acc),
                "best_accuracy": curves["best"]["accuracy"].get(acc_key),
                "final_loss": _last(loss),
                "rounds": curves["rounds"]["loss"].get(loss_key) if loss else experiment.rounds_done,
                "duration_s": curves["duration_s"],
                "hyperparameters": values,
                "downsampled": curves["downsampled"],
            }
        )
    return {"rows": rows, "keys": keys, "max_points": _max_points(),
            "downsampled": any(row["downsampled"] for row in rows)}


# --- rows of an attempt ---------------------------------------------------------------------

def metrics_version(experiment: Experiment, attempt: int | None = None) -> int:
    """The newest metric row's id of an attempt (0 when none): changes whenever the worker
    stores metrics, so it keys cached metric responses. One ingestor writes an attempt's
    rows, committing batches in id order, so a row with a lower id never appears after a
    higher one was seen. The current attempt's is kept on the experiment by the worker
    (`Experiment.metrics_version`), which saves the probe of ix_metric_rows_exp_id."""
    attempt = _attempt(experiment, attempt)
    if attempt == experiment.attempt and experiment.metrics_version is not None:
        return experiment.metrics_version
    newest = db.session.scalar(NEWEST_METRIC, {"experiment_id": experiment.id, "attempt": attempt})
    return int(newest or 0)


# Built once: it runs on every metrics request (see flautim.web.projects.access).
NEWEST_METRIC = select(func.max(MetricRow.id)).where(
    MetricRow.experiment_id == bindparam("experiment_id"), MetricRow.attempt == bindparam("attempt")
)
METRIC_COLUMNS = (MetricRow.id, MetricRow.attempt, MetricRow.round, MetricRow.phase,
                  MetricRow.source, MetricRow.name, MetricRow.value)
METRIC_KEYS = ("id", "attempt", "round", "phase", "source", "name", "value")
MAX_METRIC_ROWS = 100_000


def metric_rows(
    experiment: Experiment,
    attempt: int,
    *,
    fmt: str = "rows",
    source: str | None = None,
    phase: str | None = None,
    name: str | None = None,
    round_min: int | None = None,
    round_max: int | None = None,
    after_round: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Every number per round of one attempt, filtered: the body of the metrics API.

    `fmt="rows"`: one object per number (`items`). `fmt="series"`: one object per (phase,
    source, name) with parallel `rounds` and `values` lists (`series`). With `limit`
    (rounds per page) the body also says `next_after_round` and `has_more`; at most
    MAX_METRIC_ROWS rows either way."""
    query = select(*METRIC_COLUMNS).where(MetricRow.experiment_id == experiment.id, MetricRow.attempt == attempt)
    for column, value in ((MetricRow.source, source), (MetricRow.phase, phase), (MetricRow.name, name)):
        if value is not None:
            query = query.where(column == value)
    if round_min is not None:
        query = query.where(MetricRow.round >= round_min)
    if round_max is not None:
        query = query.where(MetricRow.round <= round_max)
    if after_round is not None:
        query = query.where(MetricRow.round > after_round)
    body: dict[str, Any] = {"experiment_id": experiment.id, "attempt": attempt, "format": fmt}
    if limit is not None:
        # The page's last round: the limit-th distinct round left (one more says has_more).
        rounds = db.session.scalars(
            query.with_only_columns(MetricRow.round).distinct().order_by(MetricRow.round).limit(limit + 1)
        ).all()
        page_rounds = rounds[:limit]
        if page_rounds:
            query = query.where(MetricRow.round <= page_rounds[-1])
        body["next_after_round"] = page_rounds[-1] if page_rounds else (after_round if after_round is not None else -1)
        body["has_more"] = len(rounds) > limit
    rows = db.session.execute(query.order_by(MetricRow.round, MetricRow.id).limit(MAX_METRIC_ROWS)).all()
    if fmt == "series":
        series: dict[tuple[str, str, str], dict] = {}
        for _id, _attempt, rnd, row_phase, row_source, row_name, value in rows:
            entry = series.get((row_phase, row_source, row_name))
            if entry is None:
                entry = series[(row_phase, row_source, row_name)] = {
                    "phase": row_phase, "source": row_source, "name": row_name, "rounds": [], "values": []}
            entry["rounds"].append(rnd)
            entry["values"].append(value)
        body["series"] = list(series.values())
    else:
        body["items"] = [dict(zip(METRIC_KEYS, row, strict=True)) for row in rows]
    return body


def experiment_events(
    experiment: Experiment, attempt: int | None = None, after_id: int = 0, limit: int | None = None
) -> list[ExperimentEvent]:
    query = (
        select(ExperimentEvent)
        .where(
            ExperimentEvent.experiment_id == experiment.id,
            ExperimentEvent.attempt == _attempt(experiment, attempt),
            ExperimentEvent.id > after_id,
        )
        .order_by(ExperimentEvent.id)
    )
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))


LOG_COLUMNS = (LogRecord.id, LogRecord.attempt, LogRecord.source, LogRecord.stream, LogRecord.line,
               LogRecord.created_at)


def experiment_logs(
    experiment: Experiment,
    *,
    attempt: int | None = None,
    after_id: int = 0,
    source: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    tail: bool = False,
) -> list[tuple]:
    """Log lines in id order; `tail=True` with `limit` gives the last `limit` lines.

    Plain tuples of LOG_COLUMNS (id, attempt, source, stream, line, created_at), not ORM
    objects or Rows, which would cost more than the query on a long page. Keyset paging on
    the id (`after_id`), never an offset or a count."""
    query = select(*LOG_COLUMNS).where(
        LogRecord.experiment_id == experiment.id,
        LogRecord.attempt == _attempt(experiment, attempt),
        LogRecord.id > after_id,
    )
    if source:
        query = query.where(LogRecord.source == source)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(LogRecord.line.ilike(f"%{escaped}%", escape="\\"))
    if tail and limit:
        return _plain_rows(query.order_by(LogRecord.id.desc()).limit(limit))[::-1]
    query = query.order_by(LogRecord.id)
    if limit:
        query = query.limit(limit)
    return _plain_rows(query)


def _plain_rows(query) -> list[tuple]:
    """The query's rows as tuples, on the session's connection, past the ORM's result layer."""
    connection = db.session.connection()
    result = connection.execute(query)
    if connection.dialect.name == "postgresql":
        # psycopg already returns every column as Python wants it (timestamptz as an
        # aware datetime): SQLAlchemy's per-value processing and Row objects would only
        # add to the time of a long page.
        with result:
            return result.cursor.fetchall()
    return [tuple(row) for row in result]  # SQLite: UTCDateTime adds the zone it drops


def log_sources(experiment: Experiment, attempt: int | None = None) -> list[str]:
    """The distinct sources of an attempt's log lines, "server" first, clients in order.

    The current attempt's come from `experiment.log_sources`, which the worker keeps as it
    stores lines. Otherwise (an older attempt, or lines the worker did not write): a skip
    scan on ix_log_records_exp_source, one index probe per source (a dozen), where a
    GROUP BY would read every line."""
    if _attempt(experiment, attempt) == experiment.attempt and experiment.log_sources is not None:
        return _source_order(experiment.log_sources)
    lines = select(LogRecord.source).where(
        LogRecord.experiment_id == experiment.id, LogRecord.attempt == _attempt(experiment, attempt)
    )
    found = select(func.min(LogRecord.source).label("source")).where(
        LogRecord.experiment_id == experiment.id, LogRecord.attempt == _attempt(experiment, attempt)
    ).cte("found", recursive=True)
    following = (
        lines.where(LogRecord.source > found.c.source)
        .order_by(LogRecord.source)
        .limit(1)
        .scalar_subquery()
    )
    found = found.union_all(select(following).where(found.c.source.is_not(None)))
    rows = db.session.scalars(select(found.c.source).where(found.c.source.is_not(None)))
    return _source_order(rows)


def _source_order(sources) -> list[str]:
    return sorted(set(sources), key=lambda s: (s.startswith("client-"), len(s), s))


def experiment_artifacts(experiment: Experiment, attempt: int | None = None) -> list[ModelArtifact]:
    return list(
        db.session.scalars(
            select(ModelArtifact)
            .where(
                ModelArtifact.experiment_id == experiment.id,
                ModelArtifact.attempt == _attempt(experiment, attempt),
            )
            .order_by(ModelArtifact.round, ModelArtifact.kind, ModelArtifact.format)
        )
    )


def artifact_in_experiment(project: Project, experiment: Experiment, artifact_id: int) -> ModelArtifact:
    """A model artifact by id, only if it is `experiment`'s and that is `project`'s."""
    artifact = db.session.scalar(
        select(ModelArtifact)
        .join(Experiment, Experiment.id == ModelArtifact.experiment_id)
        .where(ModelArtifact.id == artifact_id, ModelArtifact.experiment_id == experiment.id,
               Experiment.project_id == project.id)
    )
    if artifact is None:
        raise NotFound(f"artifact {artifact_id} is not in experiment {experiment.id}")
    return artifact
