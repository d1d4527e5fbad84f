"""Figures read back from a run's rows: per-round curves and the comparison table.

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

from sqlalchemy import and_, case, func, or_, select

from flautim.live_messages import ACCURACY_NAMES
from flautim.models import Experiment, ExperimentEvent, MetricRow, db
from flautim.web import flautim_config

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
