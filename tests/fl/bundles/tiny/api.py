"""A small MLP on 8x8 digits."""

import torch
from torch import nn

from flautim.fl import Experiment


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


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
        return total / max(seen, 1), {}

    def validation_loop(self, data_loader):
        self.model.eval()
        total, correct, seen = 0.0, 0, 0
        with torch.no_grad():
            for x, y in data_loader:
                out = self.model(x)
                total += nn.functional.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
                seen += len(y)
        return total / max(seen, 1), {"accuracy": correct / max(seen, 1)}
