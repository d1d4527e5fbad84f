"""prepare(): every client's folder holds exactly its own examples; a bad Dataset is named."""

from __future__ import annotations

import json

import pytest
import torch

from flautim.fl.bundle import Bundle
from flautim.fl.errors import FlautimError
from flautim.fl.prepare import (
    CLIENT_WARNINGS_EACH,
    FEW_EXAMPLES,
    _warnings,
    inspect_dataset,
    load_partition,
    prepare,
)
from tests.fl import conftest as fl_conftest


def _rows(dataset):
    return {tuple(dataset[i][0].tolist()) + (int(dataset[i][1]),) for i in range(len(dataset))}


def test_each_client_gets_only_its_own_partition(digits_bundle, tmp_path):
    bundle = Bundle.load(digits_bundle())
    hp = bundle.hyperparameters().with_overrides(
        num_clients=4, partitioning="dirichlet", partitioning_options={"alpha": 0.5}
    )
    summary = prepare(bundle, hp, tmp_path / "work")
    assert summary["method"] == "dirichlet" and summary["num_classes"] == 10
    assert [c["client"] for c in summary["clients"]] == [0, 1, 2, 3]

    seen: set = set()
    total = 0
    for entry in summary["clients"]:
        folder = tmp_path / "work" / f"client-{entry['client']}"
        assert sorted(p.name for p in folder.iterdir()) == ["partition.json", "train.pt", "validation.pt"]
        train, val = load_partition(folder)
        assert (len(train), len(val)) == (entry["train_examples"], entry["val_examples"])
        assert val and abs(len(val) - 0.1 * (len(train) + len(val))) <= 1
        counts = {}
        for label in train.labels():
            counts[str(label)] = counts.get(str(label), 0) + 1
        assert counts == entry["label_counts"]
        rows = _rows(train) | _rows(val)
        assert not rows & seen, "an example reached two clients"
        seen |= rows
        total += len(train) + len(val)
        assert json.loads((folder / "partition.json").read_text()) == entry
    # Everything of the training split is used, and nothing of the validation split.
    train_split = torch.utils.data.TensorDataset(*_digits()[:2])
    assert total == 1500 and seen == _rows(train_split)
    _, server_val = load_partition(tmp_path / "work" / "server")
    assert len(server_val) == 297 and not _rows(server_val) & seen
    assert json.loads((tmp_path / "work" / "summary.json").read_text()) == summary


def _digits():
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.from_numpy((x / 16.0).astype(np.float32))[:1500], torch.from_numpy(y)[:1500], None


def test_same_seed_same_partition(digits_bundle, tmp_path):
    bundle = Bundle.load(digits_bundle())
    hp = bundle.hyperparameters()
    first = prepare(bundle, hp, tmp_path / "a")
    second = prepare(bundle, hp, tmp_path / "b")
    assert first == second
    assert torch.equal(
        load_partition(tmp_path / "a" / "client-1")[0].columns[0],
        load_partition(tmp_path / "b" / "client-1")[0].columns[0],
    )


def test_heterogeneity_warnings(digits_bundle, tmp_path):
    bundle = Bundle.load(digits_bundle())
    hp = bundle.hyperparameters().with_overrides(
        num_clients=10, partitioning="pathological", partitioning_options={"classes_per_client": 1}
    )
    summary = prepare(bundle, hp, tmp_path / "w")
    # Ten clients with one class each: one warning that counts them, not ten.
    (single,) = [w for w in summary["warnings"] if w["code"].startswith("data.single_class")]
    assert single["code"] == "data.single_class_clients" and "client" not in single
    assert single["params"] == {"count": 10, "clients": 10, "first": "0, 1, 2"} and single["hint"]
    assert single["message"].startswith("10 of 10 clients hold only one class")

    hp = hp.with_overrides(num_clients=CLIENT_WARNINGS_EACH)
    summary = prepare(bundle, hp, tmp_path / "v")
    single = [w for w in summary["warnings"] if w["code"].startswith("data.single_class")]
    assert [w["client"] for w in single] == list(range(CLIENT_WARNINGS_EACH))  # few enough to name each
    assert all(w["code"] == "data.single_class_client" and "holds only class" in w["message"] for w in single)

    hp = bundle.hyperparameters().with_overrides(
        num_clients=40, batch_size=64, partitioning="size_skew", partitioning_options={"sigma": 2.5}
    )
    summary = prepare(bundle, hp, tmp_path / "x")
    few = [w for w in summary["warnings"] if "training examples" in w["message"]]
    smallest = min(c["train_examples"] for c in summary["clients"])
    assert few and smallest < 64


def test_a_thousand_small_clients_get_one_warning_per_kind():
    """At 1,000 clients a warning each would be 2,000 events and bury the rest of the run's."""
    clients = [{"client": i, "label_counts": {"3": 4} if i % 2 else {"1": 2, "7": 3},
                "train_examples": 4 + i % 2} for i in range(1000)]
    clients += [{"client": 1000 + i, "label_counts": {"1": 10, "2": 10}, "train_examples": 20 + i}
                for i in range(CLIENT_WARNINGS_EACH + 1)]
    warnings = _warnings(clients, batch_size=32)
    assert [w["code"] for w in warnings] == [
        "data.single_class_clients", "data.few_examples_clients", "data.smaller_than_batch_clients"]
    single, few, small = (w["params"] for w in warnings)
    assert single == {"count": 500, "clients": 1006, "first": "1, 3, 5"}
    assert few == {"count": 1000, "clients": 1006, "threshold": FEW_EXAMPLES, "low": 4, "first": "0, 1, 2"}
    assert small == {"count": CLIENT_WARNINGS_EACH + 1, "clients": 1006, "batch_size": 32, "low": 20,
                     "first": "1000, 1001, 1002"}
    assert warnings[1]["message"] == ("1000 of 1006 clients hold fewer than 10 training examples "
                                      "(the fewest: 4; e.g. clients 0, 1, 2)")


BROKEN_GETITEM = '''
import torch
from flautim.fl import Dataset


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 50

    def __getitem__(self, index):
        if index == 17:
            raise ValueError("corrupt record")
        return torch.zeros(64), index % 10


class Broken(Dataset):
    def train(self):
        return Items()

    def validation(self):
        return Items()
'''


def test_dataset_getitem_raising_names_the_item_and_the_line(digits_bundle, tmp_path):
    root = digits_bundle(dataset=BROKEN_GETITEM)
    bundle = Bundle.load(root)
    with pytest.raises(FlautimError) as info:
        prepare(bundle, bundle.hyperparameters(), tmp_path / "w")
    error = info.value
    assert "reading item 17 of the train split" in error.what
    assert "ValueError: corrupt record" in error.what
    assert error.where == "dataset.py:11"
    assert error.kind == "data" and "__getitem__" in error.hint
    assert "dataset.py" in error.traceback and str(root) not in error.traceback


def test_dataset_init_failing_and_items_not_pairs(digits_bundle, tmp_path):
    root = digits_bundle(dataset=fl_conftest.DIGITS_DATASET.replace(
        "x, y = load_digits(return_X_y=True)", "x, y = load_digits(return_X_y=True)\n        open(self.data_dir / 'missing.csv')"))
    bundle = Bundle.load(root)
    with pytest.raises(FlautimError) as info:
        prepare(bundle, bundle.hyperparameters(), tmp_path / "w")
    assert "FileNotFoundError" in info.value.what and info.value.where == "dataset.py:13"

    root = digits_bundle(dataset=BROKEN_GETITEM.replace("return torch.zeros(64), index % 10", "return torch.zeros(64)"))
    bundle = Bundle.load(root)
    with pytest.raises(FlautimError) as info:
        prepare(bundle, bundle.hyperparameters(), tmp_path / "v")
    assert "not an (input, label) pair" in info.value.what


def test_inspect_dataset_for_the_upload_page(digits_bundle):
    root = digits_bundle()
    (root / "api.py").unlink()
    (root / "hyperparameters.py").unlink()
    info = inspect_dataset(root)
    assert info["num_classes"] == 10
    train = info["splits"]["train"]
    assert train["examples"] == 1500 and sum(train["label_counts"].values()) == 1500
    assert train["sample_shape"] == [64] and train["sample_dtype"] == "float32"
    assert info["splits"]["validation"]["examples"] == 297
