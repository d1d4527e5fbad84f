"""Strategies by name, built from the hyperparameters, and the wrapper that reports them.

`build_strategy(hyperparameters, num_clients)` returns one of Flower 1.42's Message-API
strategies (`flwr.serverapp.strategy`) with its node minimums taken from the experiment
(never Flower's default of 2, which makes a one-client run wait forever), the user's
`strategy_options` checked against the strategy's own parameters, and, when
`differential_privacy` is set, wrapped in Flower's server-side fixed-clipping DP.

`ObservedStrategy` wraps whatever strategy runs (ours or the user's `build_strategy`) and
turns what passes through it into events: round_started, client_train/client_evaluate per
reply, aggregated per phase. It also stops the run with one clear error when a client
failed, did not reply, or sent an update that does not fit the global model.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp import strategy as flower_strategies

from flautim.fl.error_codes import coded_fields
from flautim.fl.errors import FlautimError
from flautim.fl.events import EventWriter, client_event_type
from flautim.fl.hyperparameter_reads import note_reported
from flautim.fl.transport.records import (
    arrays_to_weights,
    read_error_reply,
    read_flautim_record,
    records_of,
)

STRATEGIES: dict[str, type[flower_strategies.Strategy]] = {
    "fedavg": flower_strategies.FedAvg,
    "fedavgm": flower_strategies.FedAvgM,
    "fedprox": flower_strategies.FedProx,
    "fedadam": flower_strategies.FedAdam,
    "fedyogi": flower_strategies.FedYogi,
    "fedadagrad": flower_strategies.FedAdagrad,
    "fedmedian": flower_strategies.FedMedian,
    "fedtrimmedavg": flower_strategies.FedTrimmedAvg,
    "krum": flower_strategies.Krum,
    "bulyan": flower_strategies.Bulyan,
    "qfedavg": flower_strategies.QFedAvg,
}

# Set by the platform from the experiment; a user option with these names would fight it.
PLATFORM_OPTIONS = {
    "fraction_train",
    "fraction_evaluate",
    "min_train_nodes",
    "min_evaluate_nodes",
    "min_available_nodes",
    "weighted_by_key",
    "arrayrecord_key",
    "configrecord_key",
    "train_metrics_aggr_fn",
    "evaluate_metrics_aggr_fn",
    "train_loss_key",
}
# QFedAvg needs the client learning rate; FedProx's mu has no safe default for the user.
REQUIRED_FROM_HYPERPARAMETERS = {"qfedavg": {"client_learning_rate": "learning_rate"}}


def _hp(hyperparameters: Any, name: str, default: Any) -> Any:
    value = getattr(hyperparameters, name, default)
    return default if value is None else value


def strategy_key(name: str) -> str:
    return name.replace("-", "").replace("_", "").replace(" ", "").lower()


def node_minimums(num_clients: int, fraction_train: float, fraction_evaluate: float) -> dict[str, Any]:
    """Flower's sampling parameters for an experiment of `num_clients` clients."""
    train = 0 if fraction_train <= 0 else max(1, math.ceil(fraction_train * num_clients))
    evaluate = 0 if fraction_evaluate <= 0 else max(1, math.ceil(fraction_evaluate * num_clients))
    return {
        "fraction_train": float(fraction_train),
        "fraction_evaluate": float(fraction_evaluate),
        "min_train_nodes": train,
        "min_evaluate_nodes": evaluate,
        "min_available_nodes": num_clients,
    }


def build_strategy(hyperparameters: Any, num_clients: int) -> flower_strategies.Strategy:
    """The strategy named by `hyperparameters.strategy`, configured for this experiment."""
    name = str(_hp(hyperparameters, "strategy", "FedAvg"))
    key = strategy_key(name)
    if key not in STRATEGIES:
        known = ", ".join(cls.__name__ for cls in STRATEGIES.values())
        raise FlautimError(
            what=f"unknown strategy {name!r}",
            where="hyperparameters.py: strategy",
            hint=f"use one of {known}",
            kind="hyperparameters",
            code="hyperparameters.unknown_strategy", params={"name": name, "known": known},
        )
    cls = STRATEGIES[key]
    options = dict(_hp(hyperparameters, "strategy_options", {}) or {})
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for option in options:
        if option in PLATFORM_OPTIONS or option not in accepted:
            allowed = sorted(accepted - PLATFORM_OPTIONS)
            raise FlautimError(
                what=f"{cls.__name__} has no option {option!r}"
                + (" that you can set (the platform sets it from the experiment)" if option in PLATFORM_OPTIONS else ""),
                where=f"hyperparameters.py: strategy_options[{option!r}]",
                hint=f"{cls.__name__} accepts: {', '.join(allowed) or 'no options'}",
                kind="hyperparameters",
            )
    kwargs: dict[str, Any] = node_minimums(
        num_clients,
        float(_hp(hyperparameters, "fraction_fit", 1.0)),
        float(_hp(hyperparameters, "fraction_evaluate", 1.0)),
    )
    for option, source in REQUIRED_FROM_HYPERPARAMETERS.get(key, {}).items():
        options.setdefault(option, _hp(hyperparameters, source, 0.01))
    if key == "qfedavg":
        kwargs["train_loss_key"] = "loss"
    try:
        strategy = cls(**kwargs, **options)
    except (TypeError, ValueError) as exc:
        raise FlautimError(
            what=f"{cls.__name__} rejected its options: {exc}",
            where="hyperparameters.py: strategy_options",
            hint="check the values against Flower's documentation of this strategy",
            kind="hyperparameters",
        ) from exc
    return with_differential_privacy(strategy, hyperparameters, kwargs["min_train_nodes"])


def with_differential_privacy(
    strategy: flower_strategies.Strategy, hyperparameters: Any, sampled_clients: int
) -> flower_strategies.Strategy:
    """Wrap `strategy` in server-side fixed-clipping DP when the experiment asks for it."""
    dp = _hp(hyperparameters, "differential_privacy", None)
    if not dp:
        return strategy
    if not isinstance(dp, dict):
        raise FlautimError(
            what="differential_privacy must be a dict",
            where="hyperparameters.py: differential_privacy",
            hint='e.g. {"noise_multiplier": 1.0, "clipping_norm": 1.0}',
            kind="hyperparameters",
        )
    unknown = set(dp) - {"noise_multiplier", "clipping_norm", "num_sampled_clients"}
    if unknown:
        raise FlautimError(
            what=f"differential_privacy has unknown keys {sorted(unknown)}",
            where="hyperparameters.py: differential_privacy",
            hint="allowed: noise_multiplier, clipping_norm, num_sampled_clients",
            kind="hyperparameters",
        )
    try:
        return flower_strategies.DifferentialPrivacyServerSideFixedClipping(
            strategy,
            noise_multiplier=float(dp.get("noise_multiplier", 1.0)),
            clipping_norm=float(dp.get("clipping_norm", 1.0)),
            num_sampled_clients=int(dp.get("num_sampled_clients", sampled_clients) or sampled_clients),
        )
    except (TypeError, ValueError) as exc:
        raise FlautimError(
            what=f"differential_privacy: {exc}",
            where="hyperparameters.py: differential_privacy",
            hint="noise_multiplier >= 0, clipping_norm > 0, num_sampled_clients > 0",
            kind="hyperparameters",
        ) from exc


def weights_norm(weights: dict[str, Any]) -> float:
    """The L2 norm of the global model's floating-point weights (buffers such as BatchNorm's
    step counter left out): the platform watches it for divergence before the loss is NaN."""
    total = 0.0
    for array in weights.values():
        array = np.asarray(array)
        if array.dtype.kind == "f" and array.size:
            flat = array.reshape(-1)
            if flat.itemsize < 4:  # float16 squares overflow early
                flat = flat.astype(np.float32)
            # BLAS in the weights' own precision: a copy to float64 cost a round of the MNIST
            # example ~15 ms; the diagnosis compares norms by factors of ten.
            total += float(np.dot(flat, flat))
    return math.sqrt(total)


class ObservedStrategy(flower_strategies.Strategy):
    """Delegates to `inner` and reports every round, reply and aggregate as events.

    `client_of(node_id, content)` names the client of a reply; `check_update(weights,
    client)` raises FlautimError for an update that does not fit the global model. A client
    the grid reports late at the round deadline (`flautim.fl.round_deadline`) is dropped
    when `drop_late_clients` and the strategy's minimums allow it, with a `warning` event;
    otherwise the round fails with a `timeout` error naming it and the round.
    """

    def __init__(
        self,
        inner: flower_strategies.Strategy,
        events: EventWriter,
        client_of: Callable[[int, Any], Any],
        check_update: Callable[[dict, Any], None] | None = None,
        reply_timeout_s: float = 600.0,
        drop_late_clients: bool = True,
        sampling_seed: int | None = None,
    ) -> None:
        self.inner = inner
        self.sampling_seed = sampling_seed
        self.drop_late_clients = drop_late_clients
        self._grid: Grid | None = None
        self.events = events
        self.client_of = client_of
        self.check_update = check_update
        self.reply_timeout_s = reply_timeout_s
        self.rounds_completed = 0
        self.last_evaluate: dict[str, Any] = {}
        self._expected: dict[str, set[int]] = {"train": set(), "evaluate": set()}

    def summary(self) -> None:
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.events.emit("round_started", round=server_round)
        self._grid = grid
        with self._seeded_sampling(server_round, "train"):
            messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self._expected["train"] = {m.metadata.dst_node_id for m in messages}
        return messages

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._grid = grid
        with self._seeded_sampling(server_round, "evaluate"):
            messages = list(self.inner.configure_evaluate(server_round, arrays, config, grid))
        self._expected["evaluate"] = {m.metadata.dst_node_id for m in messages}
        return messages

    @contextlib.contextmanager
    def _seeded_sampling(self, server_round: int, phase: str) -> Iterator[None]:
        """Flower's strategies sample clients with the global `random` module: seed it from
        the experiment's seed, the round and the phase while they sample, so a run's sampled
        clients are reproducible, and leave the module's state as it was."""
        if self.sampling_seed is None:
            yield
            return
        saved = random.getstate()
        random.seed(f"{self.sampling_seed}:{server_round}:{phase}")
        try:
            yield
        finally:
            random.setstate(saved)

    def _check_replies(self, phase: str, server_round: int, replies: list[Message]) -> None:
        for reply in replies:
            if reply.has_error():
                fields = read_error_reply(reply)
                raise FlautimError.from_fields(fields, self.client_of(reply.metadata.src_node_id, None))
        missing = self._expected[phase] - {r.metadata.src_node_id for r in replies}
        late = getattr(self._grid, "late", None)
        if missing and late is not None and late.phase == phase and missing <= set(late.node_ids):
            self._late(phase, server_round, missing, len(replies), late)
            return
        if missing:
            clients = sorted(str(self.client_of(node, None)) for node in missing)
            raise FlautimError(
                what=f"client {', '.join(clients)} did not answer the {phase} message of round "
                f"{server_round} within {self.reply_timeout_s:.0f} s",
                where=f"round {server_round}, {phase}",
                hint="the client process may have died or hung; see its log",
                kind="timeout",
                code="round.client_timeout",
                params={"clients": ", ".join(clients), "phase": phase, "round": server_round,
                        "seconds": f"{self.reply_timeout_s:.0f}"},
            )

    def _late(self, phase: str, server_round: int, missing: set[int], answered: int, late: Any) -> None:
        """Clients that missed the round deadline: drop them if the strategy can go on
        without them, else fail the round. Either way, name them and the round."""
        clients = sorted(self.client_of(node, None) for node in missing)
        names = ", ".join(map(str, clients))
        what = (
            f"client {names} did not answer the {phase} message of round {server_round} within "
            f"{late.waited_s:.0f} s (the round deadline, {late.rule})"
        )
        coded = {"clients": names, "phase": phase, "round": server_round, "seconds": f"{late.waited_s:.0f}"}
        left = self._clients_left_if_dropped(missing, answered)
        if left is not None:
            self._grid.drop_nodes(missing)
            self.inner.min_available_nodes = min(int(self.inner.min_available_nodes), left)
            for node, client in zip(sorted(missing), clients, strict=True):
                self.events.emit(
                    "warning",
                    message=f"{what}; it was dropped and the run goes on with {left} clients",
                    hint="see that client's log: an endless loop or a stuck process looks like this; "
                    "round_deadline_s, round_deadline_multiple and round_deadline_floor_s set the deadline",
                    client=client,
                    round=server_round,
                    node=node,
                    **coded_fields("round.client_dropped", {**coded, "left": left}, None),
                )
            return
        raise FlautimError(
            what=what,
            where=f"round {server_round}, {phase}",
            hint="see that client's log: an endless loop or a stuck process looks like this. "
            "round_deadline_s (or round_deadline_multiple and round_deadline_floor_s) sets the "
            "deadline; with fraction_fit and fraction_evaluate below 1 a late client is dropped "
            "instead",
            kind="timeout",
            client=clients[0],
            code="round.deadline_missed",
            params=coded,
        )

    def _clients_left_if_dropped(self, missing: set[int], answered: int) -> int | None:
        """How many clients the run keeps if `missing` are dropped; None when the strategy
        cannot go on without them (or dropping is off).

        Flower's strategies aggregate the replies they get; what they cannot do without is
        their minimum of nodes to sample each round (`min_train_nodes`, `min_evaluate_nodes`:
        all clients unless `fraction_fit`/`fraction_evaluate` are below 1). Krum and Bulyan
        size their defence by the replies they expect, and differential privacy clips for a
        fixed number of sampled clients: those fail the round instead.
        """
        inner = self.inner
        names = ("min_available_nodes", "min_train_nodes", "min_evaluate_nodes")
        if not self.drop_late_clients or not all(hasattr(inner, n) for n in names):
            return None
        if not hasattr(self._grid, "drop_nodes") or answered < 1:
            return None
        if hasattr(inner, "num_malicious_nodes") or "DifferentialPrivacy" in type(inner).__name__:
            return None
        left = len(list(self._grid.get_node_ids())) - len(missing)
        if left < max(1, int(inner.min_train_nodes), int(inner.min_evaluate_nodes)):
            return None
        return left

    def _report(self, phase: str, server_round: int, replies: list[Message]) -> None:
        for reply in replies:
            info = read_flautim_record(reply.content)
            note_reported(info["keys_read"])
            client = info["client"]
            if client is None:
                client = self.client_of(reply.metadata.src_node_id, reply.content)
            metric_records = records_of(reply.content, MetricRecord)
            numbers = dict(metric_records[0]) if metric_records else {}
            metrics = info["metrics"] or {k: v for k, v in numbers.items() if k not in {"num-examples", "loss"}}
            if phase == "train" and self.check_update is not None:
                arrays = records_of(reply.content, ArrayRecord)
                if arrays:
                    self.check_update(arrays_to_weights(arrays[0]), client)
            self.events.emit(
                client_event_type(phase),
                round=server_round,
                client=client,
                loss=info["loss"] if info["loss"] is not None else numbers.get("loss"),
                metrics=metrics,
                examples=int(numbers.get("num-examples", 0)),
                duration_s=info["duration_s"],
            )

    def _emit_aggregate(
        self, phase: str, server_round: int, metrics: MetricRecord | None, arrays: ArrayRecord | None = None
    ) -> None:
        values = dict(metrics) if metrics is not None else {}
        loss = values.pop("loss", None)
        values.pop("num-examples", None)
        if phase == "evaluate":
            self.last_evaluate = {**values, "loss": loss}
        extra = {} if arrays is None else {"weights_norm": weights_norm(arrays_to_weights(arrays))}
        self.events.emit("aggregated", round=server_round, phase=phase, loss=loss, metrics=values, **extra)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self._check_replies("train", server_round, replies)
        self._report("train", server_round, replies)
        arrays, metrics = self.inner.aggregate_train(server_round, replies)
        self._emit_aggregate("train", server_round, metrics, arrays)
        return arrays, metrics

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        self._check_replies("evaluate", server_round, replies)
        self._report("evaluate", server_round, replies)
        metrics = self.inner.aggregate_evaluate(server_round, replies)
        if replies:
            self._emit_aggregate("evaluate", server_round, metrics)
        self.rounds_completed = server_round
        return metrics
