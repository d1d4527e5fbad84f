"""The Flautim library: the classes a user subclasses to run a federated experiment.

An experiment bundle has two code files:

- `dataset.py` defines a subclass of `Dataset` that loads the data (from its `data/` folder
  or anywhere the code can reach) and returns a training split and a validation split;
- `api.py` defines the model (a `torch.nn.Module`) and a subclass of `Experiment` with the
  local training loop (`training_loop`) and the evaluation loop (`validation_loop`).

The platform partitions the training split among the federated clients, gives each client
only its own part, and runs `training_loop` / `validation_loop` on every client in every
round. See docs/library.md for the full reference and examples/ for complete bundles.

torch is imported where it is used, not here: the web app checks bundles with this module
(flautim.fl.bundle) and must not load torch.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from flautim.fl.reporting import log, metric

__all__ = ["Dataset", "Experiment", "log", "metric"]


class Dataset:
    """Your data: subclass it in `dataset.py` and implement `train()` and `validation()`.

    The platform creates it once, before the run, as `YourDataset(data_dir, hyperparameters)`:
    `data_dir` is the bundle's `data/` folder (a `pathlib.Path`) and `hyperparameters` the
    dict of every value in hyperparameters.py (your own keys included).

    `train()` and `validation()` return map-style PyTorch datasets (anything with `__len__`
    and `__getitem__`, e.g. `torch.utils.data.TensorDataset`) whose items are
    `(input, label)` pairs. The training split is partitioned among the clients; the
    validation split is kept on the server for the central (global) evaluation.

    Augmentation note: the platform reads every item once and stores each client's share, so
    random transforms applied in `__getitem__` are frozen; augment inside `training_loop`.
    """

    def __init__(self, data_dir: pathlib.Path, hyperparameters: dict[str, Any]) -> None:
        self.data_dir = pathlib.Path(data_dir)
        # The platform's dict copies itself so that the keys read stay noted (a key nothing
        # reads is reported as ignored, flautim/fl/hyperparameter_reads.py).
        self.hyperparameters = hyperparameters.copy() if isinstance(hyperparameters, dict) else dict(hyperparameters)

    def train(self) -> Any:
        """The training split: a map-style torch dataset of (input, label) items."""
        raise NotImplementedError("Dataset.train() must return the training split")

    def validation(self) -> Any:
        """The validation (test) split: a map-style torch dataset of (input, label) items."""
        raise NotImplementedError("Dataset.validation() must return the validation split")

    def labels(self, split: str = "train") -> Sequence[int]:
        """The class label of every item of `split` ("train" or "validation"), in order.

        Used to partition the data by class (non-IID partitioning) and to report how many
        examples of each class a client holds. The default reads the second element of every
        item; override it when labels are cheaper to get directly (e.g. `self.targets`).
        """
        data = self.train() if split == "train" else self.validation()
        return [label_of(data[i]) for i in range(len(data))]


def label_of(item: Any) -> int:
    """The class label of a dataset item `(input, label, ...)` as an int."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise TypeError(
            f"a dataset item must be an (input, label) pair, got {type(item).__name__}"
        )
    label = item[1]
    if hasattr(label, "item"):
        label = label.item()
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    if not isinstance(label, int) or isinstance(label, bool):
        raise TypeError(f"a label must be an integer class index, got {label!r}")
    return label


class Experiment:
    """Your training: subclass it in `api.py` and write `training_loop` and `validation_loop`.

    The platform creates one per client (and one on the server), sets these attributes
    before calling your `__init__` (so you can use them there), and calls your methods:

    - `self.model`: the `torch.nn.Module` from `build_model()` (already on `self.device`),
      loaded with the global weights of the current round;
    - `self.optimizer`: from `configure_optimizer(model)`, built once per client;
    - `self.hyperparameters`: dict of every value in hyperparameters.py;
    - `self.device`: a `torch.device` ("cpu" or "cuda");
    - `self.client_id`: this client's number (0, 1, ...), None on the server;
    - `self.round`: the federated round (1, 2, ...; 0 before the first);
    - `self.epoch`: the local epoch being run (1..local_epochs) during `training_loop`;
    - `self.epochs`, `self.batch_size`, `self.learning_rate`: shortcuts to hyperparameters.

    Required:

    - `training_loop(data_loader) -> (loss, metrics)`: ONE local epoch over `data_loader`
      (the platform calls it `local_epochs` times per round and logs every epoch);
    - `validation_loop(data_loader) -> (loss, metrics)`: evaluate `self.model`.

    `loss` is a float (the mean loss over the examples), `metrics` a dict of name -> float
    (e.g. {"accuracy": 0.93}). Do not return batch counts: the platform counts examples.
    """

    model: Any
    optimizer: Any
    hyperparameters: dict[str, Any]
    device: Any
    client_id: int | None
    round: int
    epoch: int

    def build_model(self) -> Any:
        """Create the model (a `torch.nn.Module`). The default instantiates the class named
        `Model` defined at module level in api.py with no arguments."""
        factory = getattr(type(self), "_flautim_model_class", None)
        if factory is None:
            raise NotImplementedError(
                "define a class named Model (a torch.nn.Module) in api.py, "
                "or override Experiment.build_model()"
            )
        return factory()

    def configure_optimizer(self, model: Any) -> Any:
        """Create the optimizer for `model`. The default follows the hyperparameters
        `optimizer` (sgd, adam, adamw, rmsprop, adagrad), `learning_rate`, `momentum` and
        `weight_decay`."""
        import torch

        hp = self.hyperparameters
        lr = hp.get("learning_rate", 0.01)
        wd = hp.get("weight_decay", 0.0)
        name = str(hp.get("optimizer", "sgd")).lower()
        params = model.parameters()
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=hp.get("momentum", 0.0), weight_decay=wd)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        if name == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, momentum=hp.get("momentum", 0.0), weight_decay=wd)
        if name == "adagrad":
            return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
        raise ValueError(f"unknown optimizer {name!r}")

    def training_loop(self, data_loader: Any) -> tuple[float, dict[str, float]]:
        """Train `self.model` for one local epoch over `data_loader`; return (loss, metrics)."""
        raise NotImplementedError("Experiment.training_loop(data_loader) must be implemented")

    def validation_loop(self, data_loader: Any) -> tuple[float, dict[str, float]]:
        """Evaluate `self.model` over `data_loader`; return (loss, metrics)."""
        raise NotImplementedError("Experiment.validation_loop(data_loader) must be implemented")

    def central_dataset(self) -> Any | None:
        """Data for the server's central evaluation of the global model after every round.

        The default (None) uses the validation split of your Dataset, kept on the server.
        Return a map-style dataset to evaluate on something else."""
        return None

    def central_evaluation(self, data_loader: Any) -> tuple[float, dict[str, float]]:
        """Evaluate the global model on the server; the default calls `validation_loop`."""
        return self.validation_loop(data_loader)

    def build_strategy(self, defaults: dict[str, Any]) -> Any | None:
        """Return a Flower strategy to use instead of the one named in the hyperparameters.

        `defaults` holds the keyword arguments the platform would pass (fractions, minimum
        clients, ...). Return None (the default) to let the platform choose."""
        return None

    def log(self, *args: Any) -> None:
        """Write a line to the experiment's log (same as `flautim.fl.log`)."""
        log(*args)

    def metric(self, name: str, value: float) -> None:
        """Record a named measurement for this round (same as `flautim.fl.metric`)."""
        metric(name, value)
