"""Client and server sessions: the platform side of running user code in a federated round.

STUB (interface committed first; implementation follows). Weights travel as
`dict[str, numpy.ndarray]` keyed by the model's `state_dict()` names (buffers included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flautim.fl.bundle import Bundle
from flautim.fl.hyperparameters import Hyperparameters

Weights = dict[str, np.ndarray]


class ClientSession:
    """One federated client: the user's Experiment, model, optimizer and this client's data.

    `bundle` is a Bundle or a path; `hyperparameters` None reads the bundle's; `data_dir` is
    the `client-<i>/` folder written by `prepare`.
    """

    def __init__(
        self,
        bundle: Bundle | str | Path,
        hyperparameters: Hyperparameters | None,
        data_dir: str | Path,
        client_id: int,
        device: str = "cpu",
    ) -> None:
        raise NotImplementedError

    def preflight(self) -> None:
        """Run the model on one batch before round 1; FlautimError "expected … got …" naming
        the layer and the user's file:line on a size mismatch, or a wrong output shape."""
        raise NotImplementedError

    def fit(self, weights: Weights, round: int, config: dict[str, Any]) -> dict[str, Any]:
        """Load `weights`, run `local_epochs` epochs of the user's training_loop, return
        {"weights", "num_examples" (examples, not batches), "loss", "metrics", "duration_s",
        "epochs": [{"epoch", "loss", "metrics"}]}. FlautimError naming round and client on
        an exception in user code or a NaN/inf loss. `config` may override "local_epochs",
        "learning_rate" and "batch_size" for this round."""
        raise NotImplementedError

    def evaluate(self, weights: Weights, round: int, config: dict[str, Any]) -> dict[str, Any]:
        """Load `weights`, run validation_loop on the local validation share, return
        {"num_examples", "loss", "metrics", "duration_s"}."""
        raise NotImplementedError


class ServerSession:
    """The server's view of user code: the initial model, update checks, central
    evaluation, checkpoints and an optional user strategy."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        hyperparameters: Hyperparameters | None,
        data_dir: str | Path | None,
        out_dir: str | Path,
        device: str = "cpu",
    ) -> None:
        raise NotImplementedError

    def initial_weights(self) -> Weights:
        """The global model's starting weights (seeded by the hyperparameters' seed)."""
        raise NotImplementedError

    def check_update(self, weights: Weights, client_id: int | None) -> None:
        """FlautimError naming the client and the parameter when a client's weights differ
        from the global model in keys, shapes or dtypes, or hold NaN/inf."""
        raise NotImplementedError

    def central_evaluate(self, weights: Weights, round: int) -> tuple[float, dict[str, float]] | None:
        """(loss, metrics) of the global model on the server's data, None when it has none."""
        raise NotImplementedError

    def checkpoint(
        self, weights: Weights, round: int, metrics: dict[str, float], final: bool = False
    ) -> list[dict[str, Any]]:
        """Save the global model; returns the `checkpoint` events' fields (round, kind,
        files, metrics) for what was written (the round's, a new best, the final one)."""
        raise NotImplementedError

    def custom_strategy(self, defaults: dict[str, Any]) -> Any | None:
        """The user's Experiment.build_strategy(defaults), or None."""
        raise NotImplementedError
