"""Figures read back from a run's event rows: per-round curves and the comparison table.

Curves come from the runtime's own events (`aggregated`, `central_evaluate`), the same ones
the live page draws from, so a finished page and the comparison always agree.
"""

from __future__ import annotations

from typing import Any

from flautim.models import Experiment

from . import services

# (series key, event type, phase) — the three curves of the Saídas charts.
SERIES = (
    ("train", "aggregated", "train"),
    ("evaluate", "aggregated", "evaluate"),
    ("central", "central_evaluate", None),
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def accuracy_of(metrics: Any) -> float | None:
    if not isinstance(metrics, dict):
        return None
    for key in ("accuracy", "acc", "val_accuracy"):
        if key in metrics:
            return _number(metrics[key])
    return None


def curves_of(experiment: Experiment, attempt: int | None = None) -> dict[str, Any]:
    """{"loss": {series: [[round, value], ...]}, "accuracy": {...}, "duration_s", ...}."""
    loss: dict[str, list[list[float]]] = {key: [] for key, _, _ in SERIES}
    accuracy: dict[str, list[list[float]]] = {key: [] for key, _, _ in SERIES}
    duration = None
    for row in services.experiment_events(experiment, attempt=attempt):
        payload = row.payload or {}
        if row.type == "run_finished":
            duration = _number(payload.get("duration_s"))
            continue
        for key, type_, phase in SERIES:
            if row.type != type_ or (phase and payload.get("phase") != phase):
                continue
            rnd = _number(payload.get("round"))
            if rnd is None:
                continue
            value = _number(payload.get("loss"))
            if value is not None:
                loss[key].append([rnd, value])
            acc = accuracy_of(payload.get("metrics"))
            if acc is not None:
                accuracy[key].append([rnd, acc])
    return {
        "id": experiment.id,
        "name": experiment.name,
        "state": experiment.state.value,
        "loss": loss,
        "accuracy": accuracy,
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
        acc = curves["accuracy"]["central"] or curves["accuracy"]["evaluate"]
        loss = curves["loss"]["central"] or curves["loss"]["evaluate"]
        values = dict(experiment.hyperparameter_file.values) if experiment.hyperparameter_file else {}
        for key in values:
            if key not in keys:
                keys.append(key)
        rows.append(
            {
                "experiment": experiment,
                "final_accuracy": _last(acc),
                "best_accuracy": max((p[1] for p in acc), default=None),
                "final_loss": _last(loss),
                "rounds": len({p[0] for p in loss}) if loss else experiment.rounds_done,
                "duration_s": curves["duration_s"],
                "hyperparameters": values,
            }
        )
    return {"rows": rows, "keys": keys}
