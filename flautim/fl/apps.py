"""The generic Flower apps: one ServerApp and one ClientApp that run any Flautim bundle.

Both use Flower 1.42's Message API and load the user's code through the sessions of
`flautim.fl.session` (FL-CORE), so every transport runs the same apps:
- the fast transport calls `client_app(message=..., context=...)` in a warm process and
  `server_app(grid, context)` over its DirectGrid;
- the Flower deployment transport ships them in a FAB (`transport/flower_apps.py`) where a
  SuperNode's ClientApp process and the SuperLink's ServerApp process call them.

Every failure becomes a FlautimError: on a client it travels back as the Error of the reply
(see `transport/records.py`), on the server the run emits exactly one `error` event and a
`run_finished` with status "failed", and the process exits non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from flautim.fl.bundle import Bundle
from flautim.fl.errors import FlautimError, as_flautim_error
from flautim.fl.events import EventWriter
from flautim.fl.hyperparameter_reads import ignored_warnings, read_reads, user_keys_read
from flautim.fl.hyperparameters import Hyperparameters
from flautim.fl.round_deadline import RoundDeadline
from flautim.fl.session import ClientSession
from flautim.fl.strategies import ObservedStrategy, build_strategy, node_minimums, weights_norm
from flautim.fl.transport.records import (
    WeightsDecoder,
    arrays_to_weights,
    error_reply,
    flautim_record,
    metric_record,
    numeric_metrics,
    record_named,
    records_of,
    weights_to_arrays,
)

DEFAULT_REPLY_TIMEOUT_S = 1800.0


class RunFailed(RuntimeError):
    """The run failed and its `error` event has already been emitted."""

    def __init__(self, error: FlautimError) -> None:
        super().__init__(error.message())
        self.error = error


# ---------------------------------------------------------------------------------------
# ClientApp
# ---------------------------------------------------------------------------------------
def make_client_app(
    session_for: Callable[[Context], Any],
    client_id_for: Callable[[Context], int],
    bundle_dir: Path | Callable[[Context], Path],
) -> ClientApp:
    """A ClientApp that trains/evaluates with the ClientSession `session_for(context)`.

    `bundle_dir` (or a function of the context giving it) locates user code in tracebacks.
    """
    app = ClientApp()
    decode = WeightsDecoder()

    def handle(message: Message, context: Context, phase: str) -> Message:
        client_id = client_id_for(context)
        config = dict(record_named(message.content, "config", ConfigRecord) or {})
        server_round = int(config.get("server-round", 0))
        try:
            session = session_for(context)
            arrays = records_of(message.content, ArrayRecord)[0]
            weights = decode(arrays)
            if phase == "train":
                result = session.fit(weights, server_round, config)
            else:
                result = session.evaluate(weights, server_round, config)
            loss = result.get("loss")
            loss = None if loss is None else float(loss)
            content = RecordDict(
                {
                    "metrics": metric_record(loss, int(result["num_examples"]), result.get("metrics") or {}),
                    "flautim": flautim_record(
                        client_id, float(result.get("duration_s") or 0.0), loss, result.get("metrics") or {},
                        user_keys_read(session.hp),
                    ),
                }
            )
            if phase == "train":
                content["arrays"] = weights_to_arrays(result["weights"])
            return Message(content, reply_to=message)
        except Exception as exc:  # noqa: BLE001 - the server must learn what failed and where
            doing = "training" if phase == "train" else "evaluation"
            root = bundle_dir(context) if callable(bundle_dir) else bundle_dir
            error = as_flautim_error(exc, root, f"{doing} failed in round {server_round}", client_id)
            return error_reply(message, error.event_fields())

    @app.train()
    def train(message: Message, context: Context) -> Message:
        return handle(message, context, "train")

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        return handle(message, context, "evaluate")

    return app


def load_client_session(bundle_dir: Path, hyperparameters: Any, data_dir: Path, client_id: int, device: str = "cpu") -> Any:
    """A ready ClientSession (user code imported, partition loaded, model checked on a batch)."""
    bundle = Bundle.load(bundle_dir)
    session = ClientSession(bundle, hyperparameters, Path(data_dir), client_id, device=device)
    session.preflight()
    return session


# ---------------------------------------------------------------------------------------
# ServerApp
# ---------------------------------------------------------------------------------------
def train_config(hyperparameters: Any) -> ConfigRecord:
    """What every train message tells the clients (sessions also read the hyperparameters)."""
    values: dict[str, Any] = {
        "local-epochs": int(hyperparameters.local_epochs),
        "batch-size": int(hyperparameters.batch_size),
        "learning-rate": float(hyperparameters.learning_rate),
    }
    mu = (hyperparameters.strategy_options or {}).get("proximal_mu")
    if mu is not None:
        values["proximal-mu"] = float(mu)
    return ConfigRecord(values)


def run_federation(
    grid: Grid,
    server_session: Any,
    hyperparameters: Any,
    events: EventWriter,
    client_of: Callable[[int, Any], Any],
    reply_timeout_s: float | None = None,
    progress: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every round of the experiment over `grid`; returns {rounds_completed, metrics}.

    Raises FlautimError on the first failure (the caller reports it).
    """
    num_clients = int(hyperparameters.num_clients)
    defaults = node_minimums(num_clients, float(hyperparameters.fraction_fit), float(hyperparameters.fraction_evaluate))
    inner = server_session.custom_strategy(defaults) or build_strategy(hyperparameters, num_clients)
    timeout = float(reply_timeout_s or hyperparameters.time_limit_s or DEFAULT_REPLY_TIMEOUT_S)
    if hasattr(grid, "round_deadline"):
        # A client that never answers costs a round deadline, not the whole time limit.
        grid.round_deadline = RoundDeadline.from_hyperparameters(hyperparameters)
    strategy = ObservedStrategy(
        inner, events, client_of, server_session.check_update, reply_timeout_s=timeout,
        drop_late_clients=bool(getattr(hyperparameters, "drop_late_clients", True)),
        sampling_seed=int(getattr(hyperparameters, "seed", 0)),
    )
    if progress is not None:
        progress["strategy"] = strategy
    num_rounds = int(hyperparameters.rounds)

    def evaluate_fn(server_round: int, arrays: Any) -> MetricRecord | None:
        weights = arrays_to_weights(arrays)
        result = server_session.central_evaluate(weights, server_round)
        # Without central data, checkpoints rank rounds by the clients' aggregated evaluation.
        metrics: dict[str, Any] = dict(strategy.last_evaluate) if server_round > 0 else {}
        record = None
        if result is not None:
            loss, metrics = result
            metrics = dict(metrics or {})
            events.emit("central_evaluate", round=server_round, loss=loss, metrics=metrics,
                        weights_norm=weights_norm(weights))
            values = numeric_metrics(metrics)
            if loss is not None:
                values["loss"] = float(loss)
            record = MetricRecord(values)
            metrics = {**metrics, "loss": loss}
        if server_round > 0:
            # The last round's save is also the final one (one write, not the round twice).
            final = server_round == num_rounds
            for fields in server_session.checkpoint(weights, server_round, metrics, final=final) or []:
                events.emit("checkpoint", **fields)
        return record

    strategy.start(
        grid=grid,
        initial_arrays=weights_to_arrays(server_session.initial_weights()),
        num_rounds=num_rounds,
        timeout=timeout,
        train_config=train_config(hyperparameters),
        evaluate_config=ConfigRecord({"batch-size": int(hyperparameters.batch_size)}),
        evaluate_fn=evaluate_fn,
    )
    return {"rounds_completed": strategy.rounds_completed}


def emit_run_started(events: EventWriter, bundle_dir: Path, hyperparameters: Hyperparameters, transport: str) -> None:
    """The run's first event from the server side: what runs, how, with which settings."""
    events.emit(
        "run_started",
        experiment=bundle_dir.resolve().name,
        transport=transport,
        clients=int(hyperparameters.num_clients),
        rounds=int(hyperparameters.rounds),
        strategy=str(hyperparameters.strategy),
        hyperparameters=hyperparameters.to_dict(),
    )


def make_server_app(
    load_session: Callable[[Context], Any],
    hyperparameters: Any,
    events: EventWriter,
    client_of: Callable[[int, Any], Any],
    bundle_dir: Path,
    started_at: float,
    prepare_grid: Callable[[Grid], Grid] | None = None,
) -> ServerApp:
    """The ServerApp: run the federation, then emit `run_finished` (and `error` on failure).

    On failure it raises RunFailed after emitting, so Flower marks the run failed too.
    """
    app = ServerApp()
    state: dict[str, Any] = {"rounds_completed": 0}

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            if prepare_grid is not None:
                grid = prepare_grid(grid)
            session = load_session(context)
            outcome = run_federation(grid, session, hyperparameters, events, client_of, progress=state)
            state["rounds_completed"] = outcome["rounds_completed"]
            if isinstance(hyperparameters, Hyperparameters):
                # Every part of the run has read what it reads: name the keys nothing read.
                read_reads(getattr(session, "data_dir", None))
                for fields in ignored_warnings(hyperparameters):
                    events.emit("warning", **fields)
        except BaseException as exc:  # noqa: BLE001 - one error event for any failure
            error = as_flautim_error(exc, bundle_dir, "the server failed")
            events.emit_failure(error.event_fields(), started_at, getattr(state.get("strategy"), "rounds_completed", 0))
            raise RunFailed(error) from exc
        events.emit(
            "run_finished",
            status="completed",
            duration_s=round(time.time() - started_at, 3),
            rounds_completed=state["rounds_completed"],
        )

    return app
