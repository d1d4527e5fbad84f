"""scikit-learn's diabetes data (442 patients, 10 features, a disease progression score;
shipped with scikit-learn): a small real regression set, targets standardised."""

import torch
from sklearn.datasets import load_diabetes
from torch.utils.data import TensorDataset

from flautim.fl import Dataset


class Diabetes(Dataset):
    def __init__(self, data_dir, hyperparameters):
        super().__init__(data_dir, hyperparameters)
        x, y = load_diabetes(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32)
        x = (x - x.mean(0)) / x.std(0)
        y = torch.tensor(y, dtype=torch.float32)
        y = ((y - y.mean()) / y.std()).unsqueeze(1)
        self._train = TensorDataset(x[:370], y[:370])
        self._validation = TensorDataset(x[370:], y[370:])
        self._targets = {"train": y[:370, 0], "validation": y[370:, 0]}

    def train(self):
        return self._train

    def validation(self):
        return self._validation

    def labels(self, split):
        # A regression target has no classes: the partition balances the target's quartiles.
        target = self._targets[split]
        edges = torch.quantile(target, torch.tensor([0.25, 0.5, 0.75]))
        return torch.bucketize(target, edges).tolist()
