"""scikit-learn's 1,797 8x8 digits (shipped with scikit-learn): a quick real dataset."""

import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from flautim.fl import Dataset


class Digits(Dataset):
    def __init__(self, data_dir, hyperparameters):
        super().__init__(data_dir, hyperparameters)
        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        y = torch.tensor(digits.target, dtype=torch.long)
        self._train = TensorDataset(x[:1500], y[:1500])
        self._validation = TensorDataset(x[1500:], y[1500:])

    def train(self):
        return self._train

    def validation(self):
        return self._validation
