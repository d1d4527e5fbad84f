"""Breast-cancer diagnosis (scikit-learn's Wisconsin data set, 569 patients, 30 features):
a non-image example. Features are standardised with the training split's statistics."""

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from flautim.fl import Dataset


class BreastCancer(Dataset):
    def __init__(self, data_dir, hyperparameters):
        super().__init__(data_dir, hyperparameters)
        x, y = load_breast_cancer(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=0.25, stratify=y, random_state=int(hyperparameters.get("seed", 42))
        )
        mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
        self.splits = {
            "train": self._tensors((x_train - mean) / std, y_train),
            "validation": self._tensors((x_val - mean) / std, y_val),
        }

    @staticmethod
    def _tensors(x, y):
        return TensorDataset(
            torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
        )

    def train(self):
        return self.splits["train"]

    def validation(self):
        return self.splits["validation"]
