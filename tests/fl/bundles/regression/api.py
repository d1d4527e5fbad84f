"""A small MLP regressor: MSE as the loss, MAE (and MSE) as metrics, no accuracy."""

import torch
from torch import nn

from flautim.fl import Experiment


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


class DiabetesRegression(Experiment):
    def training_loop(self, data_loader):
        self.model.train()
        squared, absolute, seen = 0.0, 0.0, 0
        for x, y in data_loader:
            self.optimizer.zero_grad()
            out = self.model(x)
            loss = nn.functional.mse_loss(out, y)
            loss.backward()
            self.optimizer.step()
            squared += loss.item() * len(y)
            absolute += (out - y).abs().sum().item()
            seen += len(y)
        return squared / max(seen, 1), {"mae": absolute / max(seen, 1)}

    def validation_loop(self, data_loader):
        self.model.eval()
        squared, absolute, seen = 0.0, 0.0, 0
        with torch.no_grad():
            for x, y in data_loader:
                out = self.model(x)
                squared += nn.functional.mse_loss(out, y, reduction="sum").item()
                absolute += (out - y).abs().sum().item()
                seen += len(y)
        mse = squared / max(seen, 1)
        return mse, {"mse": mse, "mae": absolute / max(seen, 1)}
