"""Preparing a run's data: partition the training split and give each client only its part.

STUB (interface committed first; implementation follows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flautim.fl.bundle import Bundle
from flautim.fl.hyperparameters import Hyperparameters


def prepare(bundle: Bundle, hyperparameters: Hyperparameters, workdir: str | Path) -> dict[str, Any]:
    """Instantiate the user's Dataset once, partition its training split among
    `hyperparameters.num_clients` clients (method and seed from the hyperparameters) and write
    `workdir/client-<i>/` (ONLY client i's samples: its training share and a local validation
    share) and `workdir/server/` (the validation split, for central evaluation).

    Returns the `partition_summary` event's fields: {"method", "seed", "num_classes",
    "clients": [{client, train_examples, val_examples, label_counts}], "warnings":
    [{message, hint, client}]} (a warning for a client holding one class or very few
    examples). Raises FlautimError (file:line) when the user's Dataset fails.
    """
    raise NotImplementedError


def load_partition(data_dir: str | Path) -> tuple[Any, Any]:
    """(train_dataset, val_dataset) written by `prepare` into `data_dir` (a client-<i>/ or
    server/ folder; the server has an empty train dataset). Map-style torch datasets."""
    raise NotImplementedError


def inspect_dataset(bundle: Bundle) -> dict[str, Any]:
    """What the upload page shows: {"splits": {"train": {examples, label_counts, sample_shape,
    sample_dtype}, "validation": {...}}, "num_classes"}. Raises FlautimError on failure."""
    raise NotImplementedError
