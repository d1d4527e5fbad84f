"""Preparing a run's data: partition the training split and give each client only its part.

`prepare` runs once per run, before the server and the clients start (`python -m flautim.fl
prepare`). It instantiates the user's Dataset, reads every item of its splits once,
partitions the training split (method and seed from the hyperparameters) and writes:

- `WORKDIR/client-<i>/train.pt` and `validation.pt`: client i's training share and a local
  validation share carved from it (`client_validation_fraction`), nothing else, so a
  client's sandbox can be given this folder alone;
- `WORKDIR/server/validation.pt`: the whole validation split, for central evaluation;
- `WORKDIR/summary.json`: the partition summary (also returned).

Items are stored column-wise as tensors (`torch.save`, read back with `weights_only=True`):
reading them needs no user code and no pickled objects.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flautim.fl.api import Dataset, label_of
from flautim.fl.bundle import Bundle, load_dataset_class
from flautim.fl.error_codes import coded_fields, help_for
from flautim.fl.errors import DATA, FlautimError, user_code_error
from flautim.fl.hyperparameter_reads import tracked, write_reads
from flautim.fl.hyperparameters import Hyperparameters
from flautim.fl.partition import label_counts, partition_indices

FEW_EXAMPLES = 10
# A warning per client up to this many clients with the same problem; past it, one warning
# that counts them (at 1,000 clients a warning each would bury everything else a run says).
CLIENT_WARNINGS_EACH = 5
SINGLE_CLASS_HINT = ("its local model learns to predict one class; expect slow or unstable convergence "
                     "(try FedProx, a larger Dirichlet alpha or more classes per client)")
FEW_EXAMPLES_HINT = "use fewer clients or a partitioning with less size skew"
SMALLER_THAN_BATCH_HINT = "each local epoch is a single, smaller batch; consider a smaller batch_size"


class StoredSamples(torch.utils.data.Dataset):
    """A map-style dataset of stored items: item i is `tuple(column[i] for column)`."""

    def __init__(self, columns: list[Any], length: int) -> None:
        self.columns = columns
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if not -self.length <= index < self.length:
            raise IndexError(index)
        return tuple(column[index] for column in self.columns)

    def labels(self) -> list[int]:
        """The second column as ints (the class labels)."""
        if len(self.columns) < 2 or self.length == 0:
            return []
        column = self.columns[1]
        if isinstance(column, torch.Tensor):
            return [int(v) for v in column.reshape(self.length, -1)[:, 0].tolist()]
        return [label_of(self[i]) for i in range(self.length)]


def _column(values: list[Any]) -> Any:
    """Stack one position of every item into a tensor (a list when shapes differ)."""
    tensors = []
    for v in values:
        t = v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
        tensors.append(t.detach().cpu())
    try:
        return torch.stack(tensors)
    except RuntimeError:
        return tensors


def _save(items: list[tuple[Any, ...]], path: Path) -> None:
    width = len(items[0]) if items else 0
    columns = [_column([item[k] for item in items]) for k in range(width)]
    torch.save({"length": len(items), "columns": columns}, path)


def _load(path: Path) -> StoredSamples:
    if not path.is_file():
        return StoredSamples([], 0)
    stored = torch.load(path, weights_only=True)
    return StoredSamples(stored["columns"], int(stored["length"]))


def load_partition(data_dir: str | Path) -> tuple[StoredSamples, StoredSamples]:
    """(train_dataset, val_dataset) written by `prepare` into `data_dir` (a client-<i>/ or
    server/ folder; the server's train dataset is empty). Map-style torch datasets."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FlautimError(
            f"the data folder {data_dir} does not exist", where=str(data_dir),
            hint="run `python -m flautim.fl prepare BUNDLE WORKDIR` first", kind="infrastructure",
        )
    return _load(data_dir / "train.pt"), _load(data_dir / "validation.pt")


# --- reading the user's Dataset -------------------------------------------------------------


def _instantiate(bundle: Bundle, hp: dict[str, Any]) -> Dataset:
    _module, cls = load_dataset_class(bundle)
    try:
        return cls(bundle.data_dir, hp)
    except Exception as exc:
        raise user_code_error(
            exc, bundle.root, f"creating the dataset ({cls.__name__}(data_dir, hyperparameters)) failed",
            hint="your Dataset's __init__ receives data_dir (the data/ folder) and hyperparameters",
            kind=DATA,
        ) from None


def _split(bundle: Bundle, dataset: Dataset, name: str) -> Any:
    try:
        data = dataset.train() if name == "train" else dataset.validation()
        length = len(data)
    except Exception as exc:
        raise user_code_error(
            exc, bundle.root, f"Dataset.{name}() failed",
            hint=f"{name}() must return a map-style dataset (with __len__ and __getitem__)",
            kind=DATA,
        ) from None
    if length == 0 and name == "train":
        raise FlautimError(
            "Dataset.train() returned an empty dataset", where="dataset.py", kind=DATA,
            hint="check that the data files are in the data/ folder",
        )
    return data


def _read_items(bundle: Bundle, data: Any, split: str) -> list[tuple[Any, ...]]:
    items = []
    for index in range(len(data)):
        try:
            item = data[index]
        except Exception as exc:
            raise user_code_error(
                exc, bundle.root, f"reading item {index} of the {split} split failed",
                hint="your dataset's __getitem__ raised for this index; try dataset[i] for every "
                "i in range(len(dataset)) on your machine",
                kind=DATA,
            ) from None
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise FlautimError(
                f"item {index} of the {split} split is a {type(item).__name__}, not an (input, label) pair",
                where="dataset.py", kind=DATA,
                hint="__getitem__ must return (input, label), e.g. (tensor, 3)",
            )
        items.append(tuple(item))
    return items


def _labels(bundle: Bundle, dataset: Dataset, items: list[tuple[Any, ...]], split: str) -> np.ndarray:
    try:
        if type(dataset).labels is not Dataset.labels:
            labels = [int(v) for v in dataset.labels(split)]
        else:
            labels = [label_of(item) for item in items]
    except Exception as exc:
        raise user_code_error(
            exc, bundle.root, f"reading the class labels of the {split} split failed",
            hint="labels must be integer class indices (0, 1, ...); for other targets, override "
            "Dataset.labels(split) to return a class per item",
            kind=DATA,
        ) from None
    if len(labels) != len(items):
        raise FlautimError(
            f"Dataset.labels({split!r}) returned {len(labels)} labels for {len(items)} items",
            where="dataset.py", kind=DATA, hint="return one label per item, in order",
        )
    return np.asarray(labels, dtype=np.int64)


def _warnings(clients: list[dict[str, Any]], batch_size: int) -> list[dict[str, Any]]:
    """Per kind of problem, a warning per client it concerns, or one that counts them when
    there are more than CLIENT_WARNINGS_EACH (the partition table and its chart show which)."""
    total = len(clients)
    single = [c for c in clients if len(c["label_counts"]) == 1]
    few = [c for c in clients if c["train_examples"] < FEW_EXAMPLES]
    small = [c for c in clients if FEW_EXAMPLES <= c["train_examples"] < batch_size]
    return [
        *_each_or_counted(
            single, total, SINGLE_CLASS_HINT,
            lambda c: (f"client {c['client']} holds only class {_only_label(c)} ({c['train_examples']} examples)",
                       "data.single_class_client", {"label": _only_label(c), "examples": c["train_examples"]}),
            (f"{len(single)} of {total} clients hold only one class (e.g. clients {_some(single)})",
             "data.single_class_clients", {}),
        ),
        *_each_or_counted(
            few, total, FEW_EXAMPLES_HINT,
            lambda c: (f"client {c['client']} holds only {c['train_examples']} training examples",
                       "data.few_examples_client", {"examples": c["train_examples"]}),
            (f"{len(few)} of {total} clients hold fewer than {FEW_EXAMPLES} training examples "
             f"(the fewest: {_fewest(few)}; e.g. clients {_some(few)})",
             "data.few_examples_clients", {"threshold": FEW_EXAMPLES, "low": _fewest(few)}),
        ),
        *_each_or_counted(
            small, total, SMALLER_THAN_BATCH_HINT,
            lambda c: (f"client {c['client']} holds {c['train_examples']} training examples, fewer than "
                       f"batch_size ({batch_size})", "data.smaller_than_batch",
                       {"examples": c["train_examples"], "batch_size": batch_size}),
            (f"{len(small)} of {total} clients hold fewer training examples than batch_size "
             f"({batch_size}; the fewest: {_fewest(small)}; e.g. clients {_some(small)})",
             "data.smaller_than_batch_clients", {"batch_size": batch_size, "low": _fewest(small)}),
        ),
    ]


def _each_or_counted(group, total, hint, each, counted) -> list[dict[str, Any]]:
    """`each(client)` and `counted` are (message, code, params) of a client's warning and of
    the one that counts the group."""
    if len(group) > CLIENT_WARNINGS_EACH:
        message, code, params = counted
        return [{"message": message, "hint": hint,
                 **_coded(code, count=len(group), clients=total, first=_some(group), **params)}]
    warnings = []
    for c in group:
        message, code, params = each(c)
        warnings.append({"client": c["client"], "message": message, "hint": hint,
                         **_coded(code, client=c["client"], **params)})
    return warnings


def _fewest(group: list[dict[str, Any]]) -> int | None:
    return min((c["train_examples"] for c in group), default=None)


def _only_label(client: dict[str, Any]) -> Any:
    (label,) = client["label_counts"]
    return label


def _some(clients: list[dict[str, Any]]) -> str:
    return ", ".join(str(c["client"]) for c in clients[:3])


def _coded(code: str, **params: Any) -> dict[str, Any]:
    return coded_fields(code, params, help_for(code))


def prepare(bundle: Bundle, hyperparameters: Hyperparameters, workdir: str | Path) -> dict[str, Any]:
    """Instantiate the user's Dataset once, partition its training split among
    `hyperparameters.num_clients` clients (method and seed from the hyperparameters) and write
    `workdir/client-<i>/` (ONLY client i's samples: its training share and a local validation
    share) and `workdir/server/` (the validation split, for central evaluation).

    Returns the `partition_summary` event's fields: {"method", "options", "seed",
    "num_classes", "clients": [{client, train_examples, val_examples, label_counts}],
    "warnings": [{message, hint, client}]} (a warning for a client holding one class or very
    few examples). Raises FlautimError (file:line) when the user's Dataset fails.
    """
    hp = hyperparameters
    workdir = Path(workdir)
    dataset = _instantiate(bundle, tracked(hp.to_dict()))
    train = _split(bundle, dataset, "train")
    validation = _split(bundle, dataset, "validation")
    train_items = _read_items(bundle, train, "train")
    labels = _labels(bundle, dataset, train_items, "train")
    parts = partition_indices(labels, hp.num_clients, hp.partitioning, hp.seed, **hp.partitioning_options)

    clients = []
    for client, part in enumerate(parts):
        rng = np.random.default_rng([hp.seed, client])
        shuffled = rng.permutation(part)
        n_val = int(round(len(part) * hp.client_validation_fraction))
        if len(part) - n_val < 1:
            n_val = 0
        val_idx, train_idx = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
        folder = workdir / f"client-{client}"
        folder.mkdir(parents=True, exist_ok=True)
        _save([train_items[i] for i in train_idx], folder / "train.pt")
        _save([train_items[i] for i in val_idx], folder / "validation.pt")
        (train_counts,) = label_counts(labels, [train_idx])
        entry = {
            "client": client,
            "train_examples": int(len(train_idx)),
            "val_examples": int(len(val_idx)),
            "label_counts": {str(k): v for k, v in train_counts.items()},
        }
        (folder / "partition.json").write_text(json.dumps(entry))
        clients.append(entry)

    server = workdir / "server"
    server.mkdir(parents=True, exist_ok=True)
    _save(_read_items(bundle, validation, "validation"), server / "validation.pt")
    write_reads(hp, server)

    summary = {
        "method": hp.partitioning,
        "options": dict(hp.partitioning_options),
        "seed": hp.seed,
        "num_classes": int(len(np.unique(labels))),
        "clients": clients,
        "warnings": _warnings(clients, hp.batch_size),
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _describe_split(bundle: Bundle, dataset: Dataset, data: Any, split: str) -> dict[str, Any]:
    items = _read_items(bundle, data, split)
    info: dict[str, Any] = {"examples": len(items)}
    if items:
        labels = _labels(bundle, dataset, items, split)
        info["label_counts"] = {str(k): v for k, v in sorted(Counter(labels.tolist()).items())}
        sample = items[0][0]
        tensor = sample if isinstance(sample, torch.Tensor) else torch.as_tensor(np.asarray(sample))
        info["sample_shape"] = list(tensor.shape)
        info["sample_dtype"] = str(tensor.dtype).removeprefix("torch.")
    return info


def inspect_dataset(bundle: Bundle | str | Path, hyperparameters: Hyperparameters | None = None) -> dict[str, Any]:
    """What the upload page shows about a dataset (dataset.py + data/):
    {"splits": {"train": {examples, label_counts, sample_shape, sample_dtype},
    "validation": {...}}, "num_classes"}. Raises FlautimError (file:line) on failure."""
    if not isinstance(bundle, Bundle):
        bundle = Bundle.load_dataset_folder(bundle)
    hp = hyperparameters or (
        bundle.hyperparameters() if bundle.hyperparameters_py.is_file() else Hyperparameters()
    )
    dataset = _instantiate(bundle, hp.to_dict())
    splits = {
        name: _describe_split(bundle, dataset, _split(bundle, dataset, name), name)
        for name in ("train", "validation")
    }
    classes = set(splits["train"].get("label_counts", {})) | set(splits["validation"].get("label_counts", {}))
    return {"splits": splits, "num_classes": len(classes)}
