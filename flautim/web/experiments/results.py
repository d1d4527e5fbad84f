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

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_, select

from flautim import headline
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

# series key -> (phase, source) of its metric rows — the three curves of each Saídas chart.
SERIES = {
    "train": ("train", "aggregate"),
    "evaluate": ("evaluate", "aggregate"),
    "central": ("central", "server"),
}
# The series whose metrics are evaluations (the headline rule reads their names).
EVALUATIONS = ("evaluate", "central")
DEFAULT_MAX_POINTS = 500
# Metrics charted per run (the loss and the headline always among them): a run may report
# any number of names, each a chart's worth of points.
MAX_CURVE_METRICS = 24
# Metric names read per run, first reported first (the worker's ingest remembers as many for
# the headline rule): a hostile run could report a new name every round.
MAX_METRIC_NAMES = 100


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def curve_max_points() -> int:
    config = flautim_config()
    return getattr(config, "CURVE_MAX_POINTS", DEFAULT_MAX_POINTS)


def _attempt(experiment: Experiment, attempt: int | None) -> int:
    return experiment.attempt if attempt is None else attempt


def _series_filter():
    return or_(*(and_(MetricRow.phase == phase, MetricRow.source == source) for phase, source in SERIES.values()))


def hyperparameter_values(experiment: Experiment) -> dict[str, Any]:
    values = experiment.hyperparameter_file.values if experiment.hyperparameter_file else None
    return values if isinstance(values, dict) else {}


def curve_stats(experiment: Experiment, attempt: int | None = None) -> dict[str, Any]:
    """What the run has curves of, in one grouped statement over the attempt's metric rows:
    {"headline": Headline, "names": [charted names, loss and headline first, then in the
    order the run first reported them], "left_out": names read but not charted, "stats":
    {(name, series key): {"rounds", "first", "last", "best"}}}. Reads the loss, the
    checkpoint's metric and the first MAX_METRIC_NAMES names the run reported."""
    values = hyperparameter_values(experiment)
    of_attempt = (MetricRow.experiment_id == experiment.id, MetricRow.attempt == _attempt(experiment, attempt),
                  _series_filter())
    first_names = (select(MetricRow.name).where(*of_attempt).group_by(MetricRow.name)
                   .order_by(func.min(MetricRow.id)).limit(MAX_METRIC_NAMES))
    chosen = headline.chosen(values)
    always = [headline.LOSS] + ([chosen.name] if chosen else [])
    rows = db.session.execute(
        select(MetricRow.phase, MetricRow.source, MetricRow.name, func.count(func.distinct(MetricRow.round)),
               func.min(MetricRow.round), func.max(MetricRow.round), func.min(MetricRow.value),
               func.max(MetricRow.value), func.min(MetricRow.id))
        .where(*of_attempt, or_(MetricRow.name.in_(first_names.scalar_subquery()), MetricRow.name.in_(always)))
        .group_by(MetricRow.phase, MetricRow.source, MetricRow.name)
    ).all()
    keys = {pair: key for key, pair in SERIES.items()}
    firsts: dict[str, int] = {}
    evaluated: dict[str, int] = {}
    for phase, source, name, *_rest, first_id in rows:
        firsts[name] = min(firsts.get(name, first_id), first_id)
        if keys[(phase, source)] in EVALUATIONS:
            evaluated[name] = min(evaluated.get(name, first_id), first_id)
    top = headline.headline_metric(values, sorted(evaluated, key=evaluated.get))
    ordered = sorted(firsts, key=lambda n: (n != headline.LOSS, n != top.name, firsts[n]))
    names = ordered[:MAX_CURVE_METRICS]
    charted = set(names)
    stats = {}
    for phase, source, name, rounds, first, last, low, high, _id in rows:
        if name in charted:
            mode = headline.mode_of(name, values)
            stats[(name, keys[(phase, source)])] = {"rounds": rounds, "first": first, "last": last,
                                                    "best": low if mode == "min" else high}
    return {"headline": top, "names": names, "left_out": len(ordered) - len(names), "stats": stats,
            "modes": {name: headline.mode_of(name, values) for name in names}}


def _points(experiment: Experiment, attempt: int | None, stats: dict, max_points: int) -> dict:
    """{(name, key): [[round, value], ...]}: per curve, the newest value of the last round
    of each bucket of `width` rounds (width 1 when the curve fits), in one statement."""
    if not stats:
        return {}
    buckets, wanted = [], []
    for (name, key), info in stats.items():
        phase, source = SERIES[key]
        width = max(1, math.ceil((info["last"] - info["first"] + 1) / max_points))
        match = and_(MetricRow.phase == phase, MetricRow.source == source, MetricRow.name == name)
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
    keys = {pair: key for key, pair in SERIES.items()}
    points: dict = {}
    for phase, source, name, rnd, value in rows:
        points.setdefault((name, keys[(phase, source)]), []).append([rnd, value])
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
    """Every metric the run reports, per series: {"headline": {"name", "mode"}, "names",
    "metrics": {name: {series: [[round, value], ...]}}, "modes": {name: "min" | "max"},
    "best", "rounds" (per name and series), "metrics_left_out", "downsampled",
    "max_points", "duration_s", ...}: at most `max_points` points a curve and
    MAX_CURVE_METRICS metrics."""
    max_points = max_points or curve_max_points()
    found = curve_stats(experiment, attempt)
    stats = found["stats"]
    points = _points(experiment, attempt, stats, max_points)
    names = found["names"]
    duration = _duration(experiment, attempt)
    return {
        "id": experiment.id,
        "name": experiment.name,
        "state": experiment.state.value,
        "headline": found["headline"].as_dict(),
        # The charted names in order (the loss, the headline, then as first reported): JSON
        # objects carry no order.
        "names": names,
        "metrics": {name: {key: points.get((name, key), []) for key in SERIES} for name in names},
        "modes": found["modes"],
        "best": {name: {key: info["best"] for (n, key), info in stats.items() if n == name} for name in names},
        "rounds": {name: {key: info["rounds"] for (n, key), info in stats.items() if n == name} for name in names},
        "metrics_left_out": found["left_out"],
        "downsampled": any(info["rounds"] > len(points.get(target, [])) for target, info in stats.items()),
        "max_points": max_points,
        "duration_s": duration if duration is not None else experiment.duration_s,
    }


def _last(points: list[list[float]]) -> float | None:
    return points[-1][1] if points else None


def _held_out_first(curves: dict[str, Any], name: str) -> str:
    """The series a comparison reads: the central evaluation is the held-out truth; fall
    back to the federated one, then to training."""
    series = curves["metrics"].get(name, {})
    return next((key for key in ("central", "evaluate", "train") if series.get(key)), "central")


def compare_rows(experiments: list[Experiment]) -> dict[str, Any]:
    """The comparison table: each run's headline metric (final and best), final loss,
    duration and every hyperparameter; and the metrics any of them reports, for the
    chart's picker (the headline of the first run first)."""
    rows = []
    keys: list[str] = []
    metric_names: dict[str, None] = {}
    for experiment in experiments:
        curves = curves_of(experiment)
        top = curves["headline"]["name"]
        metric_key, loss_key = _held_out_first(curves, top), _held_out_first(curves, headline.LOSS)
        values = dict(experiment.hyperparameter_file.values) if experiment.hyperparameter_file else {}
        for key in values:
            if key not in keys:
                keys.append(key)
        metric_names.setdefault(top, None)
        loss = curves["metrics"].get(headline.LOSS, {}).get(loss_key, [])
        rows.append(
            {
                "experiment": experiment,
                "metric": top,
                "metric_mode": curves["headline"]["mode"],
                "final_metric": _last(curves["metrics"].get(top, {}).get(metric_key, [])),
                "best_metric": curves["best"].get(top, {}).get(metric_key),
                "final_loss": _last(loss),
                "rounds": curves["rounds"].get(headline.LOSS, {}).get(loss_key) if loss else experiment.rounds_done,
                "duration_s": curves["duration_s"],
                "hyperparameters": values,
                "downsampled": curves["downsampled"],
            }
        )
        for name in curves["names"]:
            metric_names.setdefault(name, None)
    return {"rows": rows, "keys": keys, "max_points": curve_max_points(), "metric_names": list(metric_names),
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
    where: ColumnElement[bool] | None = None,
) -> list[tuple]:
    """Log lines in id order; `tail=True` with `limit` gives the last `limit` lines;
    `where`: a further condition (the Logs tab's choice, `log_picker.chosen_lines`).

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
    if where is not None:
        query = query.where(where)
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
    """The distinct sources of an attempt's log lines, in no given order: the Logs tab's
    picker (`log_picker.summarize`) orders the few it lists, and sorting 10,000 clients'
    would cost a page view more than the rest of the picker.

    The current attempt's come from `experiment.log_sources`, which the worker keeps as it
    stores lines. Otherwise (an older attempt, or lines the worker did not write): a skip
    scan on ix_log_records_exp_source, one index probe per source (a dozen), where a
    GROUP BY would read every line."""
    if _attempt(experiment, attempt) == experiment.attempt and experiment.log_sources is not None:
        return list(experiment.log_sources)
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
    return list(db.session.scalars(select(found.c.source).where(found.c.source.is_not(None))))


def source_order(sources) -> list[str]:
    """Each source once, "server" first, then the others shortest first, clients last."""
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
