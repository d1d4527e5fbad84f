"""Fixtures for the runtime core tests: small real bundles written from source strings.

`digits_bundle(tmp_path, api=..., dataset=..., hyperparameters=...)` writes a bundle over
scikit-learn's 1,797 real 8x8 digits with a small MLP; each test swaps in the broken piece it
is about. Torch runs on one thread: the machine's two cores are shared.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

DIGITS_DATASET = '''
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from flautim.fl import Dataset


class Digits(Dataset):
    def __init__(self, data_dir, hyperparameters):
        super().__init__(data_dir, hyperparameters)
        x, y = load_digits(return_X_y=True)
        x = torch.from_numpy((x / 16.0).astype(np.float32))
        y = torch.from_numpy(y.astype(np.int64))
        self.parts = {"train": TensorDataset(x[:1500], y[:1500]),
                      "validation": TensorDataset(x[1500:], y[1500:])}

    def train(self):
        return self.parts["train"]

    def validation(self):
        return self.parts["validation"]
'''

DIGITS_API = '''
import torch
from torch import nn

from flautim.fl import Experiment, metric


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


class DigitsExperiment(Experiment):
    def training_loop(self, data_loader):
        self.model.train()
        total, seen = 0.0, 0
        for x, y in data_loader:
            self.optimizer.zero_grad()
            loss = nn.functional.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(y)
            seen += len(y)
        metric("batches_seen", len(data_loader))
        return total / seen, {"train_examples": seen}

    def validation_loop(self, data_loader):
        self.model.eval()
        total, correct, seen = 0.0, 0, 0
        with torch.no_grad():
            for x, y in data_loader:
                out = self.model(x)
                total += nn.functional.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
                seen += len(y)
        return total / seen, {"accuracy": correct / seen}
'''

DIGITS_HYPERPARAMETERS = '''
rounds = 3
num_clients = 3
local_epochs = 1
batch_size = 32
learning_rate = 0.1
momentum = 0.9
seed = 5
'''


def write_bundle(
    root: Path,
    api: str = DIGITS_API,
    dataset: str = DIGITS_DATASET,
    hyperparameters: str = DIGITS_HYPERPARAMETERS,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "api.py").write_text(textwrap.dedent(api).lstrip())
    (root / "dataset.py").write_text(textwrap.dedent(dataset).lstrip())
    (root / "hyperparameters.py").write_text(textwrap.dedent(hyperparameters).lstrip())
    return root


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of `path` containing `text`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


@pytest.fixture
def digits_bundle(tmp_path):
    """A factory: digits_bundle(api=..., dataset=..., hyperparameters=...) -> bundle path."""
    counter = iter(range(1000))

    def make(**sources: str) -> Path:
        return write_bundle(tmp_path / f"bundle{next(counter)}", **sources)

    return make
