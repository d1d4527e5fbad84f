"""The headline metric of a run: the one metric its summary cards, Compare, the Modelos
table, the API and the worker's running summary lead with, and which way is better.

The rule, the only one: the experiment's `checkpoint.best_metric` (the metric its best
checkpoint follows) when it names a metric other than the loss; otherwise the first metric
other than the loss the run reports in an evaluation (federated or central); the loss when
it reports nothing else. The loss always has its own card and chart, and `best_metric`
defaults to "loss", so leading with it again would hide a run's real measure (a regression
run's MAE, a classifier's accuracy). Which way is better: `checkpoint.mode` for the metric
the checkpoint follows, otherwise `flautim.fl.hyperparameters.metric_mode` (MSE and MAE go
down, accuracy goes up).

Imports neither Flask nor SQLAlchemy: the worker's ingest uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flautim.fl.hyperparameters import metric_mode

LOSS = "loss"
MODES = ("min", "max")
# The metric names an evaluation's numbers are read under: a run names its own metrics, but
# one that names a thousand would only bloat summaries and pickers.
MAX_NAME_LENGTH = 64


@dataclass(frozen=True)
class Headline:
    name: str
    mode: Literal["min", "max"]

    def better(self, value: float, than: float | None) -> bool:
        """Whether `value` improves on `than` (None: nothing to beat)."""
        if than is None:
            return True
        return value < than if self.mode == "min" else value > than

    def best(self, values: Iterable[float]) -> float | None:
        values = list(values)
        if not values:
            return None
        return min(values) if self.mode == "min" else max(values)

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "mode": self.mode}


def _checkpoint(hyperparameters: Mapping[str, Any] | None) -> Mapping[str, Any]:
    options = hyperparameters.get("checkpoint") if isinstance(hyperparameters, Mapping) else None
    return options if isinstance(options, Mapping) else {}


def chosen(hyperparameters: Mapping[str, Any] | None) -> Headline | None:
    """The metric the experiment's checkpoint follows, when it is not the loss."""
    options = _checkpoint(hyperparameters)
    name = options.get("best_metric")
    if not isinstance(name, str) or not name or name == LOSS or len(name) > MAX_NAME_LENGTH:
        return None
    mode = options.get("mode")
    return Headline(name, mode if mode in MODES else metric_mode(name))


def mode_of(name: str, hyperparameters: Mapping[str, Any] | None = None) -> Literal["min", "max"]:
    """Which way `name` improves: the checkpoint's mode when it follows that metric."""
    picked = chosen(hyperparameters)
    if picked is not None and picked.name == name:
        return picked.mode
    return "min" if name == LOSS else metric_mode(name)  # type: ignore[return-value]


def headline_metric(hyperparameters: Mapping[str, Any] | None, reported: Iterable[str]) -> Headline:
    """The run's headline metric, given its hyperparameters (the stored values) and the
    names its evaluations reported, in the order they first appeared."""
    picked = chosen(hyperparameters)
    if picked is not None:
        return picked
    for name in reported:
        if isinstance(name, str) and name and name != LOSS and len(name) <= MAX_NAME_LENGTH:
            return Headline(name, metric_mode(name))  # type: ignore[arg-type]
    return Headline(LOSS, "min")


# The names a classification accuracy is reported under, in order of preference. Not the
# headline rule: checks that need an accuracy whatever the run leads with (a run stuck at
# chance, the per-client results' accuracy column) read it with `accuracy_of`.
ACCURACY_NAMES = ("accuracy", "acc", "val_accuracy")


def accuracy_of(metrics: Any) -> float | None:
    """The accuracy among a round's reported metrics (the first of ACCURACY_NAMES present),
    a finite number or None."""
    name = accuracy_name(metrics)
    return number_or_none(metrics[name]) if name else None


def accuracy_name(metrics: Any) -> str | None:
    if not isinstance(metrics, Mapping):
        return None
    return next((name for name in ACCURACY_NAMES if name in metrics), None)


def number_or_none(value: Any) -> float | None:
    """A finite float, or None (a run's output is hostile: NaN, an integer past a float's
    range, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def stored(summary: Mapping[str, Any] | None) -> Headline | None:
    """The headline the worker wrote into an experiment's summary (`score`), if any."""
    if not isinstance(summary, Mapping):
        return None
    name, mode = summary.get("metric"), summary.get("metric_mode")
    if isinstance(name, str) and name and len(name) <= MAX_NAME_LENGTH and mode in MODES:
        return Headline(name, mode)
    return None


def of_experiment(summary: Mapping[str, Any] | None, hyperparameters: Mapping[str, Any] | None) -> Headline:
    """An experiment's headline without reading its metric rows: what the worker wrote, or,
    before it wrote any, what the rule gives from the hyperparameters alone."""
    return stored(summary) or headline_metric(hyperparameters, ())
