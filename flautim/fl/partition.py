"""Splitting the training data among federated clients, deterministically by seed.

Methods (the `partitioning` hyperparameter, options in `partitioning_options`):

- `iid`: shuffled and cut into equal parts;
- `dirichlet` (`alpha`, default 0.5; `min_examples`, default 10): for every class, the
  share of each client is drawn from Dirichlet(alpha) — small alpha, strong label skew;
- `pathological` (`classes_per_client`, default 2): each client holds only k classes;
- `shards` (`shards_per_client`, default 2): sorted by label, cut into shards, each client
  gets a few random shards (McMahan et al., 2017);
- `size_skew` (`sigma`, default 1.0): client sizes drawn from a log-normal distribution,
  content IID.

Every method returns one index array per client; every index is used at most once, and the
same labels, clients, method, seed and options always give the same partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flautim.fl.errors import DATA, HYPERPARAMETERS, FlautimError

METHODS = ("iid", "dirichlet", "pathological", "shards", "size_skew")

_OPTIONS: dict[str, dict[str, tuple[type, float, float]]] = {
    # option: (type, lowest, highest)
    "iid": {},
    "dirichlet": {"alpha": (float, 1e-3, 1e4), "min_examples": (int, 0, 1_000_000)},
    "pathological": {"classes_per_client": (int, 1, 100_000)},
    "shards": {"shards_per_client": (int, 1, 100_000)},
    "size_skew": {"sigma": (float, 0.0, 10.0), "min_examples": (int, 1, 1_000_000)},
}


def option_names() -> dict[str, tuple[str, ...]]:
    """The options each partitioning method takes (`partitioning_options`)."""
    return {method: tuple(options) for method, options in _OPTIONS.items()}


class PartitionError(FlautimError):
    """Partitioning is impossible with these data and options."""

    def __init__(
        self, what: str, hint: str = "", kind: str = DATA, code: str | None = None, **params: Any,
    ) -> None:
        super().__init__(what, where="hyperparameters.py", hint=hint, kind=kind, code=code, params=params)


def check_partition_options(method: str, options: dict[str, Any]) -> None:
    """Raise PartitionError when `options` do not fit `method` (unknown name, bad value)."""
    if method not in _OPTIONS:
        raise PartitionError(
            f"unknown partitioning method {method!r}", f"choose one of {', '.join(METHODS)}",
            kind=HYPERPARAMETERS,
        )
    known = _OPTIONS[method]
    for name, value in options.items():
        if name not in known:
            allowed = ", ".join(known) or "none"
            raise PartitionError(
                f"partitioning_options has {name!r}, which {method} does not take",
                f"options of {method}: {allowed}", kind=HYPERPARAMETERS,
                code="partition.unknown_option", method=method, option=repr(name), allowed=allowed,
            )
        kind, low, high = known[name]
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int and number_ok and float(value).is_integer():
            value = int(value)
        if not number_ok or (kind is int and not isinstance(value, int)) or not low <= value <= high:
            raise PartitionError(
                f"partitioning_options[{name!r}] must be {'a whole number' if kind is int else 'a number'} "
                f"from {low:g} to {high:g}, got {value!r}",
                f"e.g. partitioning_options = {{{name!r}: {_DEFAULTS[method][name]!r}}}",
                kind=HYPERPARAMETERS, code="partition.option_range", option=repr(name), low=f"{low:g}",
                high=f"{high:g}", got=repr(value), example=repr(_DEFAULTS[method][name]),
            )
        if name == "alpha" and value <= 0:
            raise PartitionError("alpha must be greater than 0", kind=HYPERPARAMETERS)


_DEFAULTS: dict[str, dict[str, Any]] = {
    "iid": {},
    "dirichlet": {"alpha": 0.5, "min_examples": 10},
    "pathological": {"classes_per_client": 2},
    "shards": {"shards_per_client": 2},
    "size_skew": {"sigma": 1.0, "min_examples": 1},
}


def partition_indices(
    labels: Sequence[int] | np.ndarray,
    num_clients: int,
    method: str = "iid",
    seed: int = 0,
    **options: Any,
) -> list[np.ndarray]:
    """Split example indices 0..len(labels)-1 among `num_clients` clients.

    Returns a list of `num_clients` sorted int64 arrays. Deterministic for the same inputs.
    Raises PartitionError when the split is impossible (more clients than examples, more
    classes per client than classes, ...), with a hint.
    """
    check_partition_options(method, options)
    opts = {**_DEFAULTS[method], **options}
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(y)
    if num_clients < 1:
        raise PartitionError("num_clients must be at least 1", kind=HYPERPARAMETERS)
    if n < num_clients:
        raise PartitionError(
            f"the training split has {n} examples, fewer than the {num_clients} clients",
            "use fewer clients or a larger training split",
            code="partition.too_few_examples", examples=n, clients=num_clients,
        )
    rng = np.random.default_rng(seed)
    if method == "iid":
        parts = np.array_split(rng.permutation(n), num_clients)
    elif method == "dirichlet":
        parts = _dirichlet(y, num_clients, float(opts["alpha"]), int(opts["min_examples"]), rng)
    elif method == "pathological":
        parts = _pathological(y, num_clients, int(opts["classes_per_client"]), rng)
    elif method == "shards":
        parts = _shards(y, num_clients, int(opts["shards_per_client"]), rng)
    else:
        parts = _size_skew(n, num_clients, float(opts["sigma"]), int(opts["min_examples"]), rng)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _dirichlet(
    y: np.ndarray, num_clients: int, alpha: float, min_examples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    classes = np.unique(y)
    # Tiny data sets cannot give every client `min_examples`: ask for what is possible.
    floor = min(min_examples, len(y) // (2 * num_clients))
    best: list[list[int]] | None = None
    # Redraw (deterministically: same generator) until no client is nearly empty.
    for _attempt in range(100):
        buckets: list[list[int]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares) * len(idx)).astype(int)[:-1]
            for client, chunk in enumerate(np.split(idx, cuts)):
                buckets[client].extend(chunk.tolist())
        smallest = min(len(b) for b in buckets)
        if best is None or smallest > min(len(b) for b in best):
            best = buckets
        if smallest >= max(floor, 1):
            break
    assert best is not None
    if min(len(b) for b in best) == 0:
        raise PartitionError(
            f"Dirichlet partitioning with alpha={alpha} leaves a client without examples",
            "raise alpha or use fewer clients",
            code="partition.dirichlet_empty_client", alpha=alpha,
        )
    return [np.asarray(b) for b in best]


def _pathological(
    y: np.ndarray, num_clients: int, k: int, rng: np.random.Generator
) -> list[np.ndarray]:
    classes = np.unique(y)
    if k > len(classes):
        raise PartitionError(
            f"classes_per_client is {k} but the training split has only {len(classes)} classes",
            f"use classes_per_client of at most {len(classes)}", kind=HYPERPARAMETERS,
            code="partition.too_many_classes_per_client", k=k, classes=len(classes),
        )
    # Deal classes round-robin from a shuffled cycle so every class goes to about the same
    # number of clients and no client gets the same class twice.
    order = rng.permutation(classes)
    holders: dict[int, list[int]] = {int(c): [] for c in classes}
    position = 0
    for client in range(num_clients):
        for j in range(k):
            c = int(order[(position + j) % len(order)])
            holders[c].append(client)
        position += k
    buckets: list[list[int]] = [[] for _ in range(num_clients)]
    for c, clients in holders.items():
        if not clients:
            continue  # fewer client slots than classes: this class is not used
        idx = rng.permutation(np.flatnonzero(y == c))
        for client, chunk in zip(clients, np.array_split(idx, len(clients)), strict=True):
            buckets[client].extend(chunk.tolist())
    empty = [i for i, b in enumerate(buckets) if not b]
    if empty:
        raise PartitionError(
            f"pathological partitioning leaves client {empty[0]} without examples",
            "use fewer clients or more classes per client",
            code="partition.pathological_empty_client", client=empty[0],
        )
    return [np.asarray(b) for b in buckets]


def _shards(y: np.ndarray, num_clients: int, per_client: int, rng: np.random.Generator) -> list[np.ndarray]:
    total = num_clients * per_client
    if total > len(y):
        raise PartitionError(
            f"{num_clients} clients x {per_client} shards = {total} shards, more than the "
            f"{len(y)} examples", "use fewer shards per client or fewer clients",
            code="partition.too_many_shards", clients=num_clients, per_client=per_client, total=total,
            examples=len(y),
        )
    # Stable sort after a shuffle: ties (same label) are in random but reproducible order.
    shuffled = rng.permutation(len(y))
    by_label = shuffled[np.argsort(y[shuffled], kind="stable")]
    shards = np.array_split(by_label, total)
    assignment = rng.permutation(total).reshape(num_clients, per_client)
    return [np.concatenate([shards[s] for s in row]) for row in assignment]


def _size_skew(
    n: int, num_clients: int, sigma: float, min_examples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    floor = min(min_examples, n // num_clients)
    weights = rng.lognormal(mean=0.0, sigma=sigma, size=num_clients)
    spare = n - floor * num_clients
    sizes = floor + np.floor(weights / weights.sum() * spare).astype(int)
    # Hand the rounding remainder to the largest clients, one each.
    for client in np.argsort(-weights)[: n - sizes.sum()]:
        sizes[client] += 1
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])


def label_counts(labels: Sequence[int] | np.ndarray, parts: Sequence[np.ndarray]) -> list[dict[int, int]]:
    """For each client, {label: number of its examples with that label} (labels sorted)."""
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    result = []
    for part in parts:
        values, counts = np.unique(y[np.asarray(part, dtype=np.int64)], return_counts=True)
        result.append({int(v): int(c) for v, c in zip(values, counts, strict=True)})
    return result
